"""The bounded, ordered thread-pool runner every data path goes through.

The main thread reads and feeds work; at most ``max_in_flight`` items are queued or running at once, so memory
is bounded by the number of chunks in flight, never by a file's size. Results come back in input order. zstd,
AES-GCM, BLAKE3 and argon2 release the GIL, so the workers really use both cores. On the first error every
pending item is cancelled and the runner waits for the running ones before re-raising, so nothing keeps
writing after a failure (restic's deferred cleanup does the same job).

The pipeline also carries the stage timer of the run (:mod:`vault.pipeline.timing`): what hands work to the
pools reads it from here and passes it on to the stages.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TypeVar

from vault.pipeline.timing import NO_TIMING, Stage, StageTimer

T = TypeVar("T")
R = TypeVar("R")


def default_threads() -> int:
    return os.cpu_count() or 1


class Pipeline:
    """Owns the pools. Use as a context manager; closing waits for every worker.

    ``timer`` is told about every stage the data path runs on this pipeline's behalf (default: nothing is timed,
    at no measurable cost); the writer, the chunker and the restorer take it from :attr:`timer`."""

    def __init__(self, threads: int | None = None, *, timer: StageTimer = NO_TIMING) -> None:
        self.timer = timer
        self.threads = max(1, threads or default_threads())
        self.cpu = ThreadPoolExecutor(self.threads, thread_name_prefix="vault-cpu")
        # Uploads and fsyncs block; keep them off the CPU pool so both cores stay busy meanwhile.
        self.io = ThreadPoolExecutor(max(2, self.threads), thread_name_prefix="vault-io")
        # Enough queued work to keep every worker fed while the main thread reads or writes.
        self.max_in_flight = 2 * self.threads + 2

    def ordered(
        self,
        fn: Callable[[T], R],
        items: Iterable[T],
        max_in_flight: int | None = None,
        pool: ThreadPoolExecutor | None = None,
    ) -> Iterator[R]:
        """``map(fn, items)`` on the pool, in order, with at most ``max_in_flight`` outstanding. Waiting for a
        result is the stage :attr:`Stage.WAIT_RESULT` of the consumer's thread."""
        limit = max_in_flight or self.max_in_flight
        executor = pool or self.cpu
        window: deque[Future[R]] = deque()
        try:
            for item in items:
                window.append(executor.submit(fn, item))
                if len(window) >= limit:
                    yield self._next_result(window)
            while window:
                yield self._next_result(window)
        finally:
            # Reached on success (empty), on an error, or when the consumer stops early.
            # Wait only for what could not be cancelled (it is running): a cancelled future counts as done for
            # wait() only once a worker has dequeued it, which never happens after the pool shut down (a
            # generator closed late, e.g. by a traceback that held it, would then hang here).
            wait([fut for fut in window if not fut.cancel()])

    def _next_result(self, window: deque[Future[R]]) -> R:
        # A method, not inline: the generator must not keep a result alive after handing it out.
        with self.timer.stage(Stage.WAIT_RESULT):
            return window.popleft().result()

    def close(self) -> None:
        self.cpu.shutdown(wait=True, cancel_futures=True)
        self.io.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
