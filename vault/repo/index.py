"""The index: which pack holds which blob. Its authoritative copy is the set of encrypted index objects.

Each `put` writes one index object for the packs it wrote, after those packs are durable and before its
version record (design invariant 7). Loading merges every index object; a blob listed twice (two concurrent
puts stored the same chunk) resolves to either copy, both valid.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from vault import format as fmt
from vault.crypto.keyring import Keyring
from vault.errors import IntegrityError, ObjectNotFoundError
from vault.repo.objects import object_generation, open_object, seal_object
from vault.storage.base import Backend, Handle, Kind


@dataclass(frozen=True, slots=True)
class BlobLocation:
    pack_id: bytes
    entry: fmt.BlobEntry
    generation: int = 0  # the key generation the pack is sealed under

    @property
    def pack_handle(self) -> Handle:
        return Handle(Kind.DATA, self.pack_id.hex())


class Index:
    """In-memory map of blob id → location. Thread-safe for concurrent lookups and additions."""

    def __init__(self) -> None:
        self._blobs: dict[bytes, BlobLocation] = {}
        self._lock = threading.Lock()
        self.index_names: list[str] = []
        # Checkpoint objects seen at load time, with their packs: a put's, or one left by a put that died.
        self.checkpoints: list[tuple[Handle, list[fmt.IndexedPack]]] = []
        # Key generation of every pack listed (a pack is sealed under one generation).
        self._generations: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self._blobs)

    def __contains__(self, blob_id: bytes) -> bool:
        return blob_id in self._blobs

    def get(self, blob_id: bytes) -> BlobLocation | None:
        return self._blobs.get(blob_id)

    def add_pack(self, pack_id: bytes, entries: Iterable[fmt.BlobEntry], generation: int) -> None:
        with self._lock:
            self._generations[pack_id] = generation
            for e in entries:
                # A blob stored twice resolves to either copy, both valid; a copy under a later key generation
                # (made by `rekey --reencrypt`) wins, so reads move to the new key as soon as it exists.
                old = self._blobs.get(e.blob_id)
                if old is None or generation > old.generation:
                    self._blobs[e.blob_id] = BlobLocation(pack_id, e, generation)

    def generation_of(self, pack_id: bytes) -> int:
        return self._generations.get(pack_id, 0)

    def locations(self) -> list[BlobLocation]:
        with self._lock:
            return list(self._blobs.values())

    def packs(self) -> dict[bytes, list[fmt.BlobEntry]]:
        out: dict[bytes, list[fmt.BlobEntry]] = {}
        for loc in self.locations():
            out.setdefault(loc.pack_id, []).append(loc.entry)
        return out

    def indexed_packs(self) -> list[fmt.IndexedPack]:
        """Every pack with the entries this index resolves to it, and its key generation."""
        return [fmt.IndexedPack(p, self.generation_of(p), entries) for p, entries in self.packs().items()]


def load_index(
    backend: Backend,
    key: Keyring,
    vault_id: bytes,
    on_error: Callable[[Handle, IntegrityError], None] | None = None,
) -> Index:
    """Read and merge every index object. A damaged one raises IntegrityError, or, when ``on_error`` is given
    (check, repair), is reported to it and skipped."""
    index = Index()
    for info in backend.list(Kind.INDEX):
        try:
            if info.size > fmt.MAX_METADATA_RAW:
                raise IntegrityError(f"index object {info.handle} is too large")
            # Capped read: the object may have grown since it was listed.
            raw = backend.load(info.handle, 0, fmt.MAX_METADATA_RAW + 1)
            if len(raw) > fmt.MAX_METADATA_RAW:
                raise IntegrityError(f"index object {info.handle} is too large")
            types = (fmt.ObjectType.INDEX, fmt.ObjectType.INDEX_CHECKPOINT)
            plain = open_object(key, vault_id, info.handle, types, raw)
            with_generations = object_generation(raw, types, f"index object {info.handle}") != 0
            packs = fmt.decode_index(plain, f"index object {info.handle}", with_generations)
        except ObjectNotFoundError:
            continue  # merged away by a concurrent put's finish(); its entries are in the merged object
        except IntegrityError as exc:
            if on_error is None:
                raise
            on_error(info.handle, exc)
            continue
        for p in packs:
            index.add_pack(p.pack_id, p.entries, p.generation)
        index.index_names.append(info.handle.name)
        if fmt.object_type(raw) == fmt.ObjectType.INDEX_CHECKPOINT:
            index.checkpoints.append((info.handle, packs))
    return index


def write_index(
    backend: Backend,
    key: Keyring,
    vault_id: bytes,
    packs: Sequence[fmt.IndexedPack],
    checkpoint: bool = False,
) -> Handle:
    """Write one index object for ``packs`` (sealed under the current key generation); returns its handle.
    Call only once the packs are durable. ``checkpoint`` marks the one-pack objects a running put writes (see
    BlobWriter)."""
    handle = Handle(Kind.INDEX, os.urandom(fmt.ID_SIZE).hex())
    payload = fmt.encode_index(packs, with_generations=key.current != 0)
    obj_type = fmt.ObjectType.INDEX_CHECKPOINT if checkpoint else fmt.ObjectType.INDEX
    backend.save(handle, seal_object(key, vault_id, handle, obj_type, payload))
    return handle
