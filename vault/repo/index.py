"""Index objects in the storage (which pack holds which blob): reading, writing, compacting, and keeping the cache's
BlobIndex in step with them.

Each `put` writes a checkpoint object per pack as the pack becomes durable, then one index object for all its
packs, before its version record (design invariant 7). The authoritative index is the union of all index objects;
a blob listed twice (two concurrent puts stored the same chunk) resolves to either copy, both valid.

So that listing the objects stays one request and a cold cache fetches few objects, index objects are compacted:
when more than COMPACT_OBJECTS of them exist, the small ones are merged into objects of up to
TARGET_ENTRIES entries (the merged object durable before the small ones go). Readers that meet an object that
was merged away between their listing and their read simply list again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

from vault import format as fmt
from vault.cache import BlobIndex, CacheDB
from vault.cache.listing import catch_up
from vault.crypto.keyring import Keyring
from vault.errors import IntegrityError, ObjectNotFoundError
from vault.repo.objects import object_generation, open_object, seal_object
from vault.storage.base import Backend, Handle, Kind, ObjectInfo, remove_all

log = logging.getLogger(__name__)

TARGET_ENTRIES = 100_000  # entries per compacted object: ~4.6 MB before compression
COMPACT_OBJECTS = 32  # more index objects than this (checkpoints aside): merge the small ones
FETCHERS = 4  # index objects fetched at once while the cache catches up

T = TypeVar("T")
R = TypeVar("R")
OnError = Callable[[Handle, IntegrityError], None]


def read_index_object(
    backend: Backend, key: Keyring, vault_id: bytes, info: ObjectInfo
) -> tuple[bool, list[fmt.IndexedPack]] | None:
    """One index object: whether it is a checkpoint, and its packs. None when it is gone (merged away by a
    concurrent put). Raises IntegrityError (damaged, too large), UnknownGenerationError, StorageError."""
    if info.size > fmt.MAX_METADATA_RAW:
        raise IntegrityError(f"index object {info.handle} is too large")
    try:
        raw = backend.load(info.handle, 0, fmt.MAX_METADATA_RAW + 1)  # capped: it may have grown since listed
    except ObjectNotFoundError:
        return None
    if len(raw) > fmt.MAX_METADATA_RAW:
        raise IntegrityError(f"index object {info.handle} is too large")
    types = (fmt.ObjectType.INDEX, fmt.ObjectType.INDEX_CHECKPOINT)
    plain = open_object(key, vault_id, info.handle, types, raw)
    with_generations = object_generation(raw, types, f"index object {info.handle}") != 0
    packs = fmt.decode_index(plain, f"index object {info.handle}", with_generations)
    if raw[4] == fmt.HEADER_SEALED and any(not e.flags & fmt.FLAG_SEALED for p in packs for e in p.entries):
        # Sealed to the public key: any write-only key could have written it, so it may vouch only for blobs
        # that are themselves sealed (whose ids are checked against their contents when read), never for a copy
        # that would be trusted as a full key's (docs/security.md, "Write-only keys").
        raise IntegrityError(f"index object {info.handle} lists blobs a write-only key can't have stored")
    return raw[5] == fmt.ObjectType.INDEX_CHECKPOINT, packs


def load_index(backend: Backend, key: Keyring, vault_id: bytes, on_error: OnError | None = None) -> BlobIndex:
    """Every index object, read into a private temporary cache (for tools and tests; commands use the
    repository's index, which the local cache keeps). IntegrityError unless ``on_error`` takes each damaged
    object (which is then skipped)."""
    index = BlobIndex(CacheDB.open(None, vault_id, b""), os.urandom(fmt.KEY_SIZE))
    sync_index(index, backend, key, vault_id, on_error=on_error)
    return index


def write_index(
    backend: Backend, key: Keyring, vault_id: bytes, packs: Sequence[fmt.IndexedPack], checkpoint: bool = False
) -> Handle:
    """Write one index object for ``packs`` (sealed under the current key generation); returns its handle.
    Call only once the packs are durable. ``checkpoint`` marks the one-pack objects a running put writes."""
    return write_index_object(backend, key, vault_id, packs, checkpoint).handle


def write_index_object(
    backend: Backend, key: Keyring, vault_id: bytes, packs: Sequence[fmt.IndexedPack], checkpoint: bool = False
) -> ObjectInfo:
    """:func:`write_index`, returning what a listing will show of the new object (its tag too)."""
    handle = Handle(Kind.INDEX, os.urandom(fmt.ID_SIZE).hex())
    payload = fmt.encode_index(packs, with_generations=key.current != 0)
    obj_type = fmt.ObjectType.INDEX_CHECKPOINT if checkpoint else fmt.ObjectType.INDEX
    sealed = seal_object(key, vault_id, handle, obj_type, payload)
    return ObjectInfo(handle, len(sealed), backend.save(handle, sealed) or "")


def split_packs(packs: Iterable[fmt.IndexedPack], max_entries: int = TARGET_ENTRIES) -> Iterator[list[fmt.IndexedPack]]:
    """Group packs into lists of at most ``max_entries`` entries (one pack is never split)."""
    group: list[fmt.IndexedPack] = []
    count = 0
    for p in packs:
        if group and count + len(p.entries) > max_entries:
            yield group
            group, count = [], 0
        group.append(p)
        count += len(p.entries)
    if group:
        yield group


def sync_index(
    index: BlobIndex, backend: Backend, key: Keyring, vault_id: bytes, *, full: bool = False,
    on_error: OnError | None = None,
) -> None:
    """Bring the cache's index in step with the storage's index objects: drop the rows of objects that are gone,
    fetch and take in the new ones (``full``: every one, as `check`, `prune` and `repair` need). A damaged object
    raises IntegrityError, or with ``on_error`` is reported to it and skipped. StorageError."""
    if full:
        index.clear()
    catch_up(
        lambda: backend.list(Kind.INDEX), index, lambda info: read_index_object(backend, key, vault_id, info),
        lambda info, got: index.add_object(info.handle.name, got[0], got[1], info.tag), on_error,
        "index objects", FETCHERS,
    )


def compact_index(index: BlobIndex, backend: Backend, key: Keyring, vault_id: bytes) -> int:
    """Merge small index objects when there are more than COMPACT_OBJECTS (checkpoints aside): the merged
    objects are durable before the small ones are deleted, so a crash leaves duplicates, never a gap. Safe
    beside concurrent puts (they never delete others' index objects). Returns how many objects were merged."""
    sizes = index.object_entries(checkpoint=False)
    if len(sizes) <= COMPACT_OBJECTS:
        return 0
    small = sorted((n for n, count in sizes.items() if count < TARGET_ENTRIES // 2), key=lambda n: sizes[n])
    if len(small) < 2:
        return 0
    packs = index.object_packs(small)
    written = [write_index_object(backend, key, vault_id, group) for group in split_packs(packs)]
    for info, group in zip(written, split_packs(packs), strict=True):
        index.add_object(info.handle.name, False, group, info.tag)
    remove_all(backend, (Handle(Kind.INDEX, name) for name in small))
    index.drop_objects(small)
    log.info("compacted %d index objects into %d", len(small), len(written))
    return len(small)
