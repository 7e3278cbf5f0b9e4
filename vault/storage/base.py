"""The storage contract: a flat store of immutable named objects, grouped by kind.

Everything above this module speaks only to :class:`Backend`; nothing there knows whether the objects live
in a local directory or an S3 bucket. Object names are lowercase hex strings chosen by the caller (random or
keyed-hash ids), so the store never sees an item name, a file name or a size other than the object's own.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol


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


class RetainingBackend(Backend, Protocol):
    """A backend that can lock what it writes against deletion for a while (S3 Object Lock, compliance mode):
    :func:`supports_retention` tells whether a backend is one. ``remove`` of an object whose lock has not ended
    raises :class:`~vault.errors.RetentionHeldError` (which names the date) and leaves it stored."""

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


def remove_all(backend: Backend, handles: Iterable[Handle]) -> None:
    """Delete every object of ``handles``; missing ones are fine. One request per 1,000 objects where the
    backend's class has a ``remove_many`` of its own (S3's DeleteObjects), else one ``remove`` each. Looked up
    on the class for the reason :func:`save_parts` gives."""
    handles = list(handles)
    if not handles:
        return
    own = getattr(type(backend), "remove_many", None)
    if own is not None:
        own(backend, handles)
        return
    from vault.errors import ObjectNotFoundError

    for h in handles:
        with contextlib.suppress(ObjectNotFoundError):
            backend.remove(h)


def is_remote(backend: Backend) -> bool:
    """True when every call on ``backend`` (or the backend a wrapper wraps) is a network round trip (S3), so
    that overlapping requests pays; False for a local directory or memory."""
    return bool(getattr(backend, "remote", False))


def saves_parts(backend: Backend) -> bool:
    """True when :func:`save_parts` writes the parts without joining them (a local directory)."""
    return getattr(type(backend), "save_parts", None) is not None
