"""MemoryBackend: the Backend contract over a dict, for unit tests and dry runs.

It follows :class:`~vault.storage.local.LocalBackend`'s semantics exactly (same name checks, same errors,
same behaviour when the root is missing), so a test that passes on it says something about the others.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from vault.errors import ObjectNotFoundError, StorageError
from vault.storage import object_key
from vault.storage.base import Handle, Kind, ObjectInfo

__all__ = ["MemoryBackend"]


class MemoryBackend:
    """Objects in a dict of immutable ``bytes`` copies, guarded by one lock (safe for many threads).

    ``root_exists=False`` gives a store whose "location" does not exist yet: ``exists_root`` is False,
    loads find nothing and saves raise ``StorageError`` until :meth:`create_root` is called.
    """

    def __init__(self, *, root_exists: bool = True) -> None:
        self.location: str = "memory:"
        self._lock = threading.Lock()
        self._objects: dict[tuple[Kind, str], bytes] = {}
        self._writes: dict[tuple[Kind, str], int] = {}  # which save made each object (its listing tag)
        self._saves = 0
        self._root_exists = root_exists

    def exists_root(self) -> bool:
        """True once the store "exists" (from the start unless ``root_exists=False``)."""
        with self._lock:
            return self._root_exists

    def create_root(self) -> None:
        """Make the store exist. Idempotent."""
        with self._lock:
            self._root_exists = True

    def save(self, h: Handle, data: bytes | bytearray | memoryview) -> str:
        """Store a copy of ``data`` under ``h``, replacing any object there. Raises ``ValueError`` for an
        invalid name and ``StorageError`` when the root does not exist."""
        object_key(h)  # validates the name exactly like the other backends
        blob = bytes(data)  # a copy: the caller may reuse its buffer
        with self._lock:
            if not self._root_exists:
                raise StorageError(f"cannot write {h}: {self.location} does not exist")
            self._objects[(h.kind, h.name)] = blob
            self._saves += 1
            self._writes[(h.kind, h.name)] = self._saves
            return str(self._saves)

    def load(self, h: Handle, offset: int = 0, length: int | None = None) -> bytes:
        """Up to ``length`` bytes from ``offset``. Raises ``ValueError`` for negative values and
        ``ObjectNotFoundError`` when missing."""
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        blob = self._get(h)
        end = len(blob) if length is None else offset + length
        return blob[offset:end]

    def stat(self, h: Handle) -> ObjectInfo:
        """Size of the object; ``ObjectNotFoundError`` when missing."""
        blob = self._get(h)
        return ObjectInfo(h, len(blob), str(self._writes.get((h.kind, h.name), 0)))

    def list(self, kind: Kind) -> Iterator[ObjectInfo]:
        """Every object of ``kind``, from a snapshot taken when iteration starts."""
        with self._lock:
            snapshot = [(name, len(blob), str(self._writes.get((k, name), 0)))
                        for (k, name), blob in self._objects.items() if k is kind]
        for name, size, tag in snapshot:
            yield ObjectInfo(Handle(kind, name), size, tag)

    def remove(self, h: Handle) -> None:
        """Delete the object; ``ObjectNotFoundError`` when missing."""
        object_key(h)
        with self._lock:
            if self._objects.pop((h.kind, h.name), None) is None:
                raise ObjectNotFoundError(f"{h} not found in {self.location}")

    def _get(self, h: Handle) -> bytes:
        object_key(h)
        with self._lock:
            blob = self._objects.get((h.kind, h.name))
        if blob is None:
            raise ObjectNotFoundError(f"{h} not found in {self.location}")
        return blob
