"""The storage contract: a flat store of immutable named objects, grouped by kind.

Everything above this module speaks only to :class:`Backend`; nothing there knows whether the objects live
in a local directory or an S3 bucket. Object names are lowercase hex strings chosen by the caller (random or
keyed-hash ids), so the store never sees an item name, a file name or a size other than the object's own.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol


class Kind(enum.Enum):
    """The namespaces of the store, like restic's FileType.

    ``CONFIG`` holds a single object named ``config``; every other kind holds objects with lowercase hex
    names (see :func:`vault.storage.object_key` for the layout).
    """

    CONFIG = "config"
    KEYS = "keys"
    DATA = "data"
    INDEX = "index"
    VERSIONS = "versions"
    LOCKS = "locks"


@dataclass(frozen=True, slots=True)
class Handle:
    """Names one object. ``str()`` is short and safe to log (restic's Handle.String)."""

    kind: Kind
    name: str

    def __str__(self) -> str:
        return f"<{self.kind.value}/{self.name[:10]}>"


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    handle: Handle
    size: int
    # What the store says about this particular write of the object, where it says anything (S3's ETag; a
    # local file's inode and mtime): the cache takes an object whose tag changed for a new one and reads it
    # again, so a replaced object is noticed without a second request. Empty when unknown. Not authenticated.
    tag: str = field(default="", compare=False)


class Backend(Protocol):
    """A store of whole objects. Implementations are safe to call from several threads at once.

    Errors: a missing object raises ``ObjectNotFoundError``; a failure worth retrying raises
    ``TransientStorageError``; any other I/O failure raises ``StorageError``. Nothing else escapes.
    """

    location: str  # printable, with any credentials stripped

    def exists_root(self) -> bool:
        """True when the location itself exists (a directory, a bucket); says nothing about a vault."""
        ...

    def create_root(self) -> None:
        """Create the location (directory with mode 0700, or bucket) if missing. Idempotent."""
        ...

    def save(self, h: Handle, data: bytes | bytearray | memoryview) -> str:
        """Store ``data`` under ``h`` atomically: afterwards readers see the whole object or, if this
        raised, whatever was there before (nothing, for a new name). Durable when it returns (fsync).
        Saving over an existing name replaces it atomically (used only for key slots and locks). Returns the
        tag a listing will show for this write (:attr:`ObjectInfo.tag`), or "" where the backend can't tell."""
        ...

    def load(self, h: Handle, offset: int = 0, length: int | None = None) -> bytes:
        """Return ``length`` bytes from ``offset`` (to the end when ``length`` is None). Returns fewer
        bytes only when the object is shorter; the caller checks lengths."""
        ...

    def stat(self, h: Handle) -> ObjectInfo:
        """Size of the object; ``ObjectNotFoundError`` when missing."""
        ...

    def list(self, kind: Kind) -> Iterator[ObjectInfo]:
        """Every object of ``kind``, in no particular order. Objects saved or removed while the
        iteration runs may or may not appear. Temporary files of interrupted saves never appear."""
        ...

    def remove(self, h: Handle) -> None:
        """Delete an object; ``ObjectNotFoundError`` when missing."""
        ...


@dataclass
class Held:
    """What removals could only hide: objects that retention keeps stored (out of every listing) until a date.

    ``count`` objects (or versions of objects), the latest of whose locks ends at ``until`` (UTC; None when the
    store did not say). Empty (falsy) when nothing was held. Callers of removals collect these to report them
    ("N object(s) held by retention until DATE"); a later `prune` deletes them once their locks have passed."""

    count: int = 0
    until: datetime | None = None

    def __bool__(self) -> bool:
        return self.count > 0

    def add(self, until: datetime | None, count: int = 1) -> None:
        """Count ``count`` more held objects whose locks end at ``until``."""
        if count <= 0:
            return
        self.count += count
        if until is not None and (self.until is None or until > self.until):
            self.until = until

    def merge(self, other: Held) -> None:
        """Count everything ``other`` counts as well."""
        self.add(other.until, other.count)

    def until_iso(self) -> str | None:
        """:attr:`until` as ISO 8601 UTC with ``Z`` (whole seconds), or None."""
        return self.until.strftime("%Y-%m-%dT%H:%M:%SZ") if self.until is not None else None

    def to_json(self) -> dict[str, object]:
        """``held_objects`` and ``held_until``, as the JSON outputs show them."""
        return {"held_objects": self.count, "held_until": self.until_iso()}


@dataclass
class Purge:
    """What :meth:`RetainingBackend.purge_expired` did: ``deleted`` versions (and delete markers) whose locks had
    passed, and what it found still ``held``."""

    deleted: int = 0
    held: Held = field(default_factory=Held)


class RetainingBackend(Backend, Protocol):
    """A backend that can lock what it writes against deletion for a while (S3 Object Lock, compliance mode):
    :func:`supports_retention` tells whether a backend is one.

    ``remove`` of an object whose lock has not ended *hides* it: the object is gone from ``list``, ``stat`` and
    ``load`` at once (S3: a delete marker on top), while the locked bytes stay stored (a noncurrent version)
    until the lock ends; then ``remove`` raises :class:`~vault.errors.RetentionHeldError` naming that date. So a
    caller that catches it has removed the object as far as the vault can see, and only has to report it as
    held. :meth:`purge_expired` later deletes what is hidden and no longer locked."""

    retention: timedelta | None

    def set_retention(self, period: timedelta | None) -> None:
        """Lock each retained object saved from now on for ``period`` from its save (None: stop locking)."""
        ...

    def retention_until(self, h: Handle) -> datetime | None:
        """When the lock on ``h`` ends (UTC, maybe past), or None without one; ``ObjectNotFoundError``."""
        ...

    def extend_retention(self, h: Handle, until: datetime) -> datetime:
        """Make ``h``'s lock last at least until ``until`` (never shortens one); returns its end now."""
        ...

    def purge_expired(self) -> Purge:
        """Delete every stored-but-hidden thing of the vault's retained kinds whose lock has passed (noncurrent
        versions, and delete markers with nothing left under them); never the current version of an object.
        Returns what it deleted and what is still held. ``StorageError``."""
        ...


def supports_retention(backend: Backend) -> bool:
    """True when ``backend`` (or the backend a wrapper like RetryingBackend wraps) can lock objects, i.e. is a
    :class:`RetainingBackend`."""
    return bool(getattr(backend, "supports_retention", False))


Buffer = bytes | bytearray | memoryview


def save_parts(backend: Backend, h: Handle, parts: Sequence[Buffer]) -> str:
    """``backend.save(h, b"".join(parts))``, without the join where the backend's class has its own
    ``save_parts`` (LocalBackend writes the parts with ``os.writev``): a 16 MiB pack is then stored from its
    sealed blobs with no 16 MiB copy. Looked up on the class, not the instance: a wrapper (RetryingBackend, the
    tests' FaultyBackend) passes unknown attributes through to its inner backend, which would skip its retries or
    faults; a wrapper without a ``save_parts`` of its own therefore gets the joined bytes through its ``save``."""
    own = getattr(type(backend), "save_parts", None)
    if own is not None:
        return str(own(backend, h, parts))
    return backend.save(h, b"".join(parts))


def remove_all(backend: Backend, handles: Iterable[Handle]) -> Held:
    """Delete every object of ``handles``; missing ones are fine. One request per 1,000 objects where the
    backend's class has a ``remove_many`` of its own (S3's DeleteObjects), else one ``remove`` each. Looked up
    on the class for the reason :func:`save_parts` gives.

    Returns what retention holds (see :class:`RetainingBackend`): those objects are gone from listings like the
    others, but stay stored until the date it names. Never raises ``RetentionHeldError``; other storage errors
    pass through."""
    from vault.errors import ObjectNotFoundError, RetentionHeldError

    held = Held()
    handles = list(handles)
    if not handles:
        return held
    own = getattr(type(backend), "remove_many", None)
    if own is not None:
        try:
            result = own(backend, handles)  # a Held where the backend can hide (S3Backend, RetryingBackend)
        except RetentionHeldError as exc:
            _count_held(held, exc)
        else:
            if isinstance(result, Held):
                held.merge(result)
        return held
    for h in handles:
        try:
            backend.remove(h)
        except ObjectNotFoundError:
            continue
        except RetentionHeldError as exc:
            _count_held(held, exc)
    return held


def remove_held(backend: Backend, h: Handle) -> Held:
    """``backend.remove(h)``, with retention's refusal counted instead of raised (the object is hidden then:
    see :class:`RetainingBackend`). ``ObjectNotFoundError`` and other storage errors pass through."""
    from vault.errors import RetentionHeldError

    held = Held()
    try:
        backend.remove(h)
    except RetentionHeldError as exc:
        _count_held(held, exc)
    return held


def _count_held(held: Held, exc: Any) -> None:
    """Add a RetentionHeldError's objects to ``held``: its ``held`` map when it names several, else one."""
    if exc.held:
        for until in exc.held.values():
            held.add(until)
    else:
        held.add(exc.held_until)


def is_remote(backend: Backend) -> bool:
    """True when every call on ``backend`` (or the backend a wrapper wraps) is a network round trip (S3), so
    that overlapping requests pays; False for a local directory or memory."""
    return bool(getattr(backend, "remote", False))


def saves_parts(backend: Backend) -> bool:
    """True when :func:`save_parts` writes the parts without joining them (a local directory)."""
    return getattr(type(backend), "save_parts", None) is not None
