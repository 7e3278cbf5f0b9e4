"""Write-only keys: issuing one (`vault key add --write-only`), and what `info` and `check` tell such a key.

Issuing runs with a full key under the exclusive lock. A vault below format version 4 becomes 4 first (the config
is saved before anything of version 4 is written, and the command's own lock is written again under the lock key,
so a write-only put can read it), then the slot is written: it wraps the public key of the current key generation,
the identity keys and a new local secret (vault.crypto.write_only).

A write-only key may know what the storage shows anyone who lists it: how many objects of each kind there are and
how large. `info` and `check` (without --read-data) tell it that and nothing else; no name, number or content.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from vault import format as fmt
from vault.crypto import kdf
from vault.crypto.slots import KeySlot
from vault.repo.config import CONFIG_HANDLE
from vault.repo.repository import Repository
from vault.storage.base import Kind


def add_write_only_key(
    repo: Repository, password: bytes, params: kdf.KdfParams, policy: str, refresh_lock: Callable[[], None] | None
) -> KeySlot:
    """Add a write-only key for ``password`` (``repo`` opened with a full key, under the exclusive lock, which
    ``refresh_lock`` rewrites). Raises StorageError."""
    if repo.config.format_version < fmt.FORMAT_VERSION_WRITE_ONLY:
        # Readers that know nothing of write-only keys must refuse this vault up front (exit 21), not misread it.
        repo.config = dataclasses.replace(repo.config, format_version=fmt.FORMAT_VERSION_WRITE_ONLY)
        repo.backend.save(CONFIG_HANDLE, repo.config.to_bytes())
        if refresh_lock is not None:
            refresh_lock()  # now under the lock key: write-only keys read it
    return repo.keys.add_write_only(repo.key, password, params, policy)


def _counts(repo: Repository) -> dict[str, tuple[int, int]]:
    """(objects, bytes) per kind, from listings alone."""
    out = {}
    for kind in (Kind.DATA, Kind.INDEX, Kind.VERSIONS, Kind.KEYS):
        sizes = [info.size for info in repo.backend.list(kind)]
        out[kind.value] = (len(sizes), sum(sizes))
    return out


def write_only_info(repo: Repository) -> dict[str, Any]:
    """`vault info` for a write-only key: the format, the key's KDF parameters, and the storage's object counts
    and sizes. Items, versions and sizes before dedup are sealed to a key it does not hold: null."""
    counts = _counts(repo)
    p = repo.slot.params
    return {
        "format_version": repo.config.format_version,
        "location": repo.backend.location,
        "created": repo.config.created,
        "key_kind": "write-only",
        "items": None,
        "versions": None,
        "version_objects": counts["versions"][0],
        "blobs": None,
        "packs": counts["data"][0],
        "index_objects": counts["index"][0],
        "keys": counts["keys"][0],
        "stored_bytes": counts["data"][1],
        "original_bytes": None,
        "unique_bytes": None,
        "dedup_ratio": None,
        "compression_ratio": None,
        "kdf": {"algorithm": "argon2id", "memory_kib": p.memory_kib, "time_cost": p.time_cost,
                "parallelism": p.parallelism},
        "key_generation": repo.key.current,
        "older_key_generations": [],
    }


@dataclasses.dataclass
class CountReport:
    """What `check` tells a write-only key: counts, and that it verified nothing it can't read."""

    packs: int
    index_objects: int
    version_objects: int
    keys: int
    stored_bytes: int

    def to_json(self) -> dict[str, object]:
        return {"ok": True, "key_kind": "write-only", "verified": False, "packs": self.packs,
                "index_objects": self.index_objects, "version_objects": self.version_objects, "keys": self.keys,
                "stored_bytes": self.stored_bytes, "problems": []}


def write_only_check(repo: Repository) -> CountReport:
    """`vault check` for a write-only key: counts from listings. Everything it could verify is sealed to a key
    it does not hold; `check` with a full key verifies it."""
    counts = _counts(repo)
    return CountReport(counts["data"][0], counts["index"][0], counts["versions"][0], counts["keys"][0],
                       counts["data"][1])
