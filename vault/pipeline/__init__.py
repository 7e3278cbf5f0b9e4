"""Concurrency for the data path: one CPU pool, one I/O pool, ordered bounded maps over them."""
