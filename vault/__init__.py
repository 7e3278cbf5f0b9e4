"""vault: a secure, deduplicating, encrypted file vault. See docs/design.md for the map."""

__version__ = "0.1.0"
