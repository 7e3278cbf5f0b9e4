"""RetryingBackend: retries calls that failed with :class:`TransientStorageError`, like restic's RetryBackend.

Only transient failures (throttling, timeouts, 5xx, a dropped connection) are retried: a missing object,
a denied access or a full disk would fail the same way again, so they pass through at once. Every
``Backend`` call is safe to repeat: saves replace whole objects, and a retried ``remove`` that finds the
object gone raises ``ObjectNotFoundError`` exactly as a first try would.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import TypeVar

from vault.errors import StorageError, TransientStorageError
from vault.storage.base import Backend, Buffer, Handle, Held, Kind, ObjectInfo, Purge, remove_all, save_parts

__all__ = ["RetryingBackend"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class RetryingBackend:
    """Wraps ``inner`` and tries each call up to ``attempts`` times in all.

    Between attempts it sleeps with exponential backoff and "equal jitter": the n-th wait (n from 0) is
    uniform in ``[d/2, d]`` with ``d = min(max_delay, base_delay * 2**n)``, so many clients throttled at once
    spread out instead of retrying in lockstep. When every attempt failed it raises a plain (not
    transient) :class:`StorageError` naming the number of attempts and the last error, so that a caller
    with its own retry loop does not multiply the attempts.

    ``sleep`` is injectable so that tests need not wait.
    """

    def __init__(
        self,
        inner: Backend,
        attempts: int = 5,
        base_delay: float = 0.1,
        max_delay: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        if base_delay < 0 or max_delay < 0:
            raise ValueError("delays must not be negative")
        self.inner = inner
        self.location: str = inner.location
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep

    def delay(self, retry: int) -> float:
        """The wait before retry number ``retry`` (0 for the first retry), jitter included."""
        ceiling = min(self.max_delay, self.base_delay * (2.0**retry))
        return random.uniform(ceiling / 2, ceiling)

    def __getattr__(self, name: str) -> object:
        # Extras beyond the Protocol (LocalBackend.cleanup_temporary, used by repair) pass through.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def exists_root(self) -> bool:
        return self._call("check", self.location, self.inner.exists_root)

    def create_root(self) -> None:
        self._call("create", self.location, self.inner.create_root)

    def save(self, h: Handle, data: bytes | bytearray | memoryview) -> str:
        return self._call("write", str(h), lambda: self.inner.save(h, data))

    def save_parts(self, h: Handle, parts: Sequence[Buffer]) -> None:
        """:func:`~vault.storage.base.save_parts` on the inner backend (its own, unjoined, where it has one),
        retried like :meth:`save`."""
        self._call("write", str(h), lambda: save_parts(self.inner, h, parts))

    def load(self, h: Handle, offset: int = 0, length: int | None = None) -> bytes:
        return self._call("read", str(h), lambda: self.inner.load(h, offset, length))

    def stat(self, h: Handle) -> ObjectInfo:
        return self._call("stat", str(h), lambda: self.inner.stat(h))

    def remove(self, h: Handle) -> None:
        self._call("remove", str(h), lambda: self.inner.remove(h))

    def remove_many(self, handles: Sequence[Handle]) -> Held:
        """vault.storage.base.remove_all through the inner backend, each batch retried like any call (a batch
        delete is idempotent: deleting a deleted key is fine). Returns what retention holds (hidden)."""
        return self._call("remove", f"{len(handles)} objects", lambda: remove_all(self.inner, handles))

    def retention_until(self, h: Handle) -> datetime | None:
        """The inner backend's ``retention_until`` (a :class:`~vault.storage.base.RetainingBackend`), retried."""
        inner = self.inner
        return self._call("stat", str(h), lambda: inner.retention_until(h))  # type: ignore[attr-defined, no-any-return]

    def extend_retention(self, h: Handle, until: datetime) -> datetime:
        """The inner backend's ``extend_retention``, retried (repeating it is harmless: it only extends)."""
        inner = self.inner
        return self._call("extend the retention of", str(h), lambda: inner.extend_retention(h, until))  # type: ignore[attr-defined, no-any-return]

    def purge_expired(self) -> Purge:
        """The inner backend's ``purge_expired`` (a :class:`~vault.storage.base.RetainingBackend`), retried as a
        whole (a sweep run again deletes only what is still there to delete)."""
        inner = self.inner
        return self._call("sweep", "hidden object versions", lambda: inner.purge_expired())  # type: ignore[attr-defined, no-any-return]

    def list(self, kind: Kind) -> Iterator[ObjectInfo]:
        """Lists through transient failures: a failed listing starts over and skips the names already
        yielded (restic does the same), so the caller sees each object at most once."""
        seen: set[str] = set()
        failures = 0
        while True:
            try:
                for info in self.inner.list(kind):
                    if info.handle.name not in seen:
                        seen.add(info.handle.name)
                        yield info
                return
            except TransientStorageError as e:
                failures += 1
                self._after_failure("list", f"{kind.value} objects", failures, e)

    def _call(self, what: str, target: str, fn: Callable[[], T]) -> T:
        failures = 0
        while True:
            try:
                return fn()
            except TransientStorageError as e:
                failures += 1
                self._after_failure(what, target, failures, e)

    def _after_failure(self, what: str, target: str, failures: int, e: TransientStorageError) -> None:
        """Sleep before the next attempt, or raise once ``attempts`` calls have failed."""
        if failures >= self.attempts:
            # The last error already names the object and the location; add only what the retries add.
            raise StorageError(f"{e} (gave up after {failures} attempts)", hint=e.hint) from e
        wait = self.delay(failures - 1)
        log.debug("%s %s: attempt %d failed (%s); retrying in %.2fs", what, target, failures, e, wait)
        self._sleep(wait)
