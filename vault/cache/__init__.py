"""The local metadata cache (contract: "The local cache" in spec/cli.md): the index and the catalog of one vault in
SQLite, so commands read from the storage only what changed since their last run. See vault/cache/db.py for
where it lives and why it is never trusted."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import blake3

from vault.cache.blob_index import BlobIndex, BlobLocation
from vault.cache.db import CacheDamaged, CacheDB, default_root
from vault.cache.records import CachedRecord, CatalogCache, ItemRows, NewRow
from vault.cache.rounds import ExtensionRounds

__all__ = [
    "BlobIndex",
    "BlobLocation",
    "Cache",
    "CacheDB",
    "CacheDamaged",
    "CachedRecord",
    "CatalogCache",
    "ExtensionRounds",
    "ItemRows",
    "NewRow",
    "default_root",
    "open_cache",
]

# Keys of the cache, derived from its root key (Keyring.cache_key: from the current generation's master key, so
# a key that can't read the vault can't read or forge its cache, and a `vault rekey` starts a new one).
_LABEL_BINDING = "vault/v1/cache/binding"
_LABEL_MAC = "vault/v1/cache/mac"
_LABEL_SEAL = "vault/v1/cache/seal"


@dataclass
class Cache:
    db: CacheDB
    index: BlobIndex
    catalog: CatalogCache
    rounds: ExtensionRounds

    def close(self) -> None:
        self.db.close()


def open_cache(root: Path | None, vault_id: bytes, cache_key: bytes) -> Cache:
    """The cache of ``vault_id`` under ``root`` (None: a private temporary one that goes with the process),
    keyed by ``cache_key``. A cache that is not this vault's and key's is replaced. StorageError."""
    def derive(label: str) -> bytes:
        # BLAKE3's key derivation mode: one independent key per context string.
        return blake3.blake3(cache_key, derive_key_context=label).digest()

    db = CacheDB.open(root, vault_id, derive(_LABEL_BINDING))
    mac = derive(_LABEL_MAC)
    return Cache(db, BlobIndex(db, mac), CatalogCache(db, derive(_LABEL_SEAL), mac), ExtensionRounds(db, mac))
