"""Standalone encrypted objects (index, version records, locks): their header prefix and associated data."""

from __future__ import annotations

import struct

from vault.errors import IntegrityError
from vault.format.constants import (
    AAD_OBJECT,
    AEAD_OVERHEAD,
    FORMAT_VERSION,
    FORMAT_VERSION_GENERATIONS,
    HEADER_VERSION_MAX,
    MAX_METADATA_RAW,
    OBJECT_MAGIC,
    ObjectType,
    check_version,
)

# version 1: OBJECT_MAGIC(4) | 1 | type(1) | nonce(12) | ciphertext | tag(16)                  (key generation 0)
# version 2: OBJECT_MAGIC(4) | 2 | type(1) | generation u32 | nonce(12) | ciphertext | tag(16)
OBJECT_PREFIX_SIZE = 6
OBJECT_PREFIX_MAX_SIZE = OBJECT_PREFIX_SIZE + 4

# The most an object's payload may decompress to, by type. A version record is a small JSON document (its
# sealed object is read up to 1 MiB, format/records.py; JSON compresses maybe tenfold, a record with a long
# `damaged` list included), a lock a tiny one; index objects list blobs by the million. One cap for all (256 MiB)
# let an 8 KiB record inflate to 250 MiB in every command that lists items.
MAX_RECORD_RAW = 16 * 1024 * 1024
MAX_LOCK_RAW = 64 * 1024
MAX_OBJECT_RAW = {
    ObjectType.INDEX: MAX_METADATA_RAW,
    ObjectType.INDEX_CHECKPOINT: MAX_METADATA_RAW,
    ObjectType.VERSION: MAX_RECORD_RAW,
    ObjectType.CATALOG_SEGMENT: MAX_METADATA_RAW,  # up to 4096 records (repo/catalog.py SEGMENT_RECORDS)
    ObjectType.LOCK: MAX_LOCK_RAW,
}


def object_prefix(obj_type: int, generation: int = 0) -> bytes:
    if generation == 0:
        return OBJECT_MAGIC + bytes([FORMAT_VERSION, obj_type])
    return OBJECT_MAGIC + bytes([FORMAT_VERSION_GENERATIONS, obj_type]) + struct.pack("<I", generation)


def object_aad(prefix: bytes, vault_id: bytes, name: str) -> bytes:
    """Binds the object's header bytes (generation included), the vault and the object name: a swapped,
    renamed or relabelled object fails."""
    return AAD_OBJECT + prefix + vault_id + name.encode("ascii")


def parse_object_prefix(buf: bytes, expected_type: int | tuple[int, ...], what: str) -> tuple[bytes, int]:
    """Check magic, version and type (one of ``expected_type``); return the prefix bytes (part of the AAD) and
    the key generation the object is sealed under."""
    if len(buf) < OBJECT_PREFIX_SIZE + AEAD_OVERHEAD or buf[:4] != OBJECT_MAGIC:
        raise IntegrityError(f"{what} is not a vault object (bad magic or truncated)")
    check_version(buf[4], what, maximum=HEADER_VERSION_MAX)
    if buf[5] not in (expected_type if isinstance(expected_type, tuple) else (expected_type,)):
        raise IntegrityError(f"{what} has the wrong object type")
    if buf[4] == FORMAT_VERSION:
        return bytes(buf[:OBJECT_PREFIX_SIZE]), 0
    if len(buf) < OBJECT_PREFIX_MAX_SIZE + AEAD_OVERHEAD:
        raise IntegrityError(f"{what} is truncated")
    (generation,) = struct.unpack_from("<I", buf, OBJECT_PREFIX_SIZE)
    if generation == 0:
        raise IntegrityError(f"{what} has a malformed header")
    return bytes(buf[:OBJECT_PREFIX_MAX_SIZE]), int(generation)


def object_type(buf: bytes) -> int:
    """The type byte of an object whose prefix :func:`parse_object_prefix` accepted."""
    return buf[5]
