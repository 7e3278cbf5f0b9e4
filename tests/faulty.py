"""FaultyBackend: a wrapper that injects failures, for tests of everything above the storage.

Test code only: it lives in tests/ (importable as ``faulty``, tests/ is on pytest's ``pythonpath``), not in the
vault package, and nothing in vault/ may import it. mypy checks it with the package (pyproject's ``files``).

Typical uses::

    store = FaultyBackend(MemoryBackend())
    store.fail_save_after(3)                                   # 4th save on: StorageError
    store.fail("load", TransientStorageError("slow down"), times=2)   # two transient failures, then fine
    store.disk_full_after_bytes(10_000)                        # ENOSPC once 10 kB would be exceeded
    store.half_write()                                         # crash mid-write (LocalBackend: leaves .tmp-*)
    store.fail_list(after_items=5)                             # listing breaks after 5 objects
    store.delay_s = 0.01                                       # a slow backend
    store.heal()                                               # no more faults

Faults never store anything: a failed save leaves what was there before, as the real backends promise.
``calls`` counts every call per method name (failed ones included), for asserting how often a layer
above retried. All methods are safe to call from several threads.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from vault.errors import StorageError
from vault.storage.base import Backend, Handle, Kind, ObjectInfo
from vault.storage.local import TEMP_PREFIX, LocalBackend

__all__ = ["METHODS", "ExcSpec", "FaultyBackend"]

METHODS = frozenset({"exists_root", "create_root", "save", "load", "stat", "list", "remove"})
"""The method names that :meth:`FaultyBackend.fail` accepts."""

ExcSpec = BaseException | Callable[[], BaseException] | None
"""What a fault raises: an exception, a factory making a fresh one per failure, or None for a default
:class:`StorageError` that names the call."""


@dataclass
class _Rule:
    method: str
    exc: ExcSpec
    after: int
    times: int | None
    kinds: frozenset[Kind] | None
    after_items: int = 0
    seen: int = 0
    fired: int = 0


class FaultyBackend:
    """Passes every call to ``inner`` unless a configured fault fires first.

    ``delay_s`` seconds are slept (with ``sleep``) before every call, to play a slow backend.
    """

    def __init__(
        self, inner: Backend, *, delay_s: float = 0.0, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.inner = inner
        self.location: str = inner.location
        self.delay_s = delay_s
        self.calls: Counter[str] = Counter()
        self.saved_bytes = 0
        self._sleep = sleep
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._disk_limit: int | None = None
        self._half_write: _Rule | None = None

    # -- configuring faults --------------------------------------------------------------------------

    def fail(
        self,
        method: str,
        exc: ExcSpec = None,
        *,
        after: int = 0,
        times: int | None = None,
        kinds: set[Kind] | frozenset[Kind] | None = None,
        after_items: int = 0,
    ) -> None:
        """Make ``method`` raise ``exc`` once ``after`` matching calls have gone through, for ``times``
        calls (None: for ever). ``kinds`` limits the fault to handles (or, for ``list``, listings) of those
        kinds. For ``list`` the failure comes while iterating, after ``after_items`` objects were yielded.
        Rules add up; the first one that fires wins. Raises ``ValueError`` for an unknown method."""
        if method not in METHODS:
            raise ValueError(f"unknown backend method {method!r}")
        rule = _Rule(method, exc, after, times, frozenset(kinds) if kinds else None, after_items)
        with self._lock:
            self._rules.append(rule)

    def fail_save_after(self, n_calls: int, exc: ExcSpec = None, *, times: int | None = None) -> None:
        """The first ``n_calls`` saves succeed; the following ones (``times`` of them, default all) raise."""
        self.fail("save", exc, after=n_calls, times=times)

    def fail_load(self, exc: ExcSpec = None, *, after: int = 0, times: int | None = None) -> None:
        """Loads raise ``exc`` after ``after`` successful ones, ``times`` times (default: for ever)."""
        self.fail("load", exc, after=after, times=times)

    def fail_list(self, exc: ExcSpec = None, *, after_items: int = 0, times: int | None = None) -> None:
        """Listings break after yielding ``after_items`` objects, ``times`` times (default: for ever)."""
        self.fail("list", exc, after_items=after_items, times=times)

    def disk_full_after_bytes(self, n: int) -> None:
        """Saves raise ``StorageError(... No space left on device)`` once the bytes saved through this
        wrapper (counted from its creation) plus the new object would exceed ``n``. Nothing is stored."""
        with self._lock:
            self._disk_limit = n

    def half_write(self, enabled: bool = True, *, after: int = 0, times: int | None = None) -> None:
        """Simulate a crash in the middle of a save (after ``after`` good saves, ``times`` times).

        On a :class:`LocalBackend` it leaves a ``.tmp-*`` file holding the first half of the data in the
        destination directory, as a killed process would, and raises ``StorageError``; on other backends
        (whose saves are atomic on the server) it only raises. The object itself is never written."""
        with self._lock:
            self._half_write = _Rule("save", None, after, times, None) if enabled else None

    def heal(self) -> None:
        """Remove every fault, the disk limit and the delay. ``calls`` and ``saved_bytes`` are kept."""
        with self._lock:
            self._rules.clear()
            self._disk_limit = None
            self._half_write = None
            self.delay_s = 0.0

    # -- Backend -------------------------------------------------------------------------------------

    def __getattr__(self, name: str) -> object:
        # Extras beyond the Protocol (LocalBackend.cleanup_temporary, used by repair) pass through.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def exists_root(self) -> bool:
        self._enter("exists_root", None, None)
        return self.inner.exists_root()

    def create_root(self) -> None:
        self._enter("create_root", None, None)
        self.inner.create_root()

    def save(self, h: Handle, data: bytes | bytearray | memoryview) -> str:
        self._enter("save", h.kind, str(h))
        size = memoryview(data).nbytes
        with self._lock:
            crash = self._half_write is not None and _fires(self._half_write)
            limit = self._disk_limit
            if not crash and limit is not None and self.saved_bytes + size > limit:
                raise StorageError(f"cannot write {h} in {self.location}: No space left on device")
            if not crash:
                self.saved_bytes += size
        if crash:
            self._leave_half_written(h, data)
            raise StorageError(f"cannot write {h} in {self.location}: simulated crash mid-write")
        return self.inner.save(h, data)

    def load(self, h: Handle, offset: int = 0, length: int | None = None) -> bytes:
        self._enter("load", h.kind, str(h))
        return self.inner.load(h, offset, length)

    def stat(self, h: Handle) -> ObjectInfo:
        self._enter("stat", h.kind, str(h))
        return self.inner.stat(h)

    def remove(self, h: Handle) -> None:
        self._enter("remove", h.kind, str(h))
        self.inner.remove(h)

    def list(self, kind: Kind) -> Iterator[ObjectInfo]:
        rule = self._enter("list", kind, f"{kind.value} objects", defer=True)
        for count, info in enumerate(self.inner.list(kind)):
            if rule is not None and count >= rule.after_items:
                raise _make(rule, "list", f"{kind.value} objects", self.location)
            yield info
        if rule is not None:  # fewer objects than after_items: fail at the end of the listing
            raise _make(rule, "list", f"{kind.value} objects", self.location)

    # -- internals -----------------------------------------------------------------------------------

    def _enter(self, method: str, kind: Kind | None, target: str | None, defer: bool = False) -> _Rule | None:
        """Count the call, sleep the delay, and raise the first fault that fires (or, with ``defer``,
        return its rule so that the caller raises it later)."""
        with self._lock:
            self.calls[method] += 1
            delay = self.delay_s
            fired: _Rule | None = None
            for rule in self._rules:
                if rule.method == method and (rule.kinds is None or kind in rule.kinds) and _fires(rule):
                    fired = rule
                    break
        if delay > 0:
            self._sleep(delay)
        if fired is not None and not defer:
            raise _make(fired, method, target or self.location, self.location)
        return fired

    def _leave_half_written(self, h: Handle, data: bytes | bytearray | memoryview) -> None:
        if not isinstance(self.inner, LocalBackend):
            return
        view = memoryview(data).cast("B")
        directory = self.inner.path_of(h).parent
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = directory / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, view[: len(view) // 2])
        finally:
            os.close(fd)


def _fires(rule: _Rule) -> bool:
    """Count one matching call against ``rule``; True when it should fail. Called with the lock held."""
    rule.seen += 1
    if rule.seen <= rule.after or (rule.times is not None and rule.fired >= rule.times):
        return False
    rule.fired += 1
    return True


def _make(rule: _Rule, method: str, target: str, location: str) -> BaseException:
    if rule.exc is None:
        return StorageError(f"cannot {method} {target} in {location}: injected fault")
    if isinstance(rule.exc, BaseException):
        return rule.exc
    return rule.exc()
