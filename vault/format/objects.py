"""Standalone encrypted objects (index, version records, locks): their header prefix and associated data."""

from __future__ import annotations

import struct
from typing import NamedTuple

from vault.errors import IntegrityError
from vault.format.constants import (
    AAD_OBJECT,
    AEAD_OVERHEAD,
    FORMAT_VERSION,
    FORMAT_VERSION_GENERATIONS,
    HEADER_LOCK_KEY,
    HEADER_SEALED,
    HEADER_VERSION_MAX,
    MAX_METADATA_RAW,
    OBJECT_MAGIC,
    PUBLIC_KEY_SIZE,
    ObjectType,
    check_version,
)

# version 1: OBJECT_MAGIC(4) | 1 | type(1) | nonce(12) | ciphertext | tag(16)                  (key generation 0)
# version 2: OBJECT_MAGIC(4) | 2 | type(1) | generation u32 | nonce(12) | ciphertext | tag(16)
# version 3: OBJECT_MAGIC(4) | 3 | type(1) | nonce(12) | ciphertext | tag(16)       (a lock, under the lock key)
# version 4: OBJECT_MAGIC(4) | 4 | type(1) | generation u32 | ephemeral public key(32) | nonce | ciphertext | tag
#            (sealed to the public key of ``generation``: format.sealed)
OBJECT_PREFIX_SIZE = 6
OBJECT_PREFIX_SEALED_SIZE = OBJECT_PREFIX_SIZE + 4 + PUBLIC_KEY_SIZE
OBJECT_PREFIX_MAX_SIZE = OBJECT_PREFIX_SEALED_SIZE
# The types a write-only key writes, sealed to the public key (it never writes segments, and seals locks under
# the lock key).
SEALED_TYPES = (ObjectType.INDEX, ObjectType.VERSION, ObjectType.INDEX_CHECKPOINT)


class ObjectHeader(NamedTuple):
    """What an object's header says (not yet authenticated: the prefix is part of the AAD)."""

    prefix: bytes  # the header bytes, bound into the AAD
    version: int  # 1, 2, 3 or 4
    generation: int  # the key generation (0 for versions 1 and 3)
    ephemeral: bytes  # version 4: the ephemeral public key of the exchange; else empty

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


def lock_prefix() -> bytes:
    """The header of a lock sealed under the lock key (version 4 vaults)."""
    return OBJECT_MAGIC + bytes([HEADER_LOCK_KEY, ObjectType.LOCK])


def sealed_prefix(obj_type: int, generation: int, ephemeral_public: bytes) -> bytes:
    """The header of an object sealed to the public key of ``generation`` (version 4)."""
    if obj_type not in SEALED_TYPES or len(ephemeral_public) != PUBLIC_KEY_SIZE:
        raise ValueError("only index objects and version records are sealed to the public key")
    return OBJECT_MAGIC + bytes([HEADER_SEALED, obj_type]) + struct.pack("<I", generation) + ephemeral_public


def object_aad(prefix: bytes, vault_id: bytes, name: str) -> bytes:
    """Binds the object's header bytes (generation and ephemeral key included), the vault and the object name: a
    swapped, renamed or relabelled object fails."""
    return AAD_OBJECT + prefix + vault_id + name.encode("ascii")


def parse_object_header(buf: bytes, expected_type: int | tuple[int, ...], what: str) -> ObjectHeader:
    """Check magic, version and type (one of ``expected_type``, and one that the version may hold); return what
    the header says. IntegrityError, UnsupportedVersionError."""
    if len(buf) < OBJECT_PREFIX_SIZE + AEAD_OVERHEAD or buf[:4] != OBJECT_MAGIC:
        raise IntegrityError(f"{what} is not a vault object (bad magic or truncated)")
    version, obj_type = buf[4], buf[5]
    check_version(version, what, maximum=HEADER_VERSION_MAX)
    if obj_type not in (expected_type if isinstance(expected_type, tuple) else (expected_type,)):
        raise IntegrityError(f"{what} has the wrong object type")
    if version == FORMAT_VERSION:
        return ObjectHeader(bytes(buf[:OBJECT_PREFIX_SIZE]), version, 0, b"")
    if version == HEADER_LOCK_KEY:
        if obj_type != ObjectType.LOCK:
            raise IntegrityError(f"{what} has a malformed header")
        return ObjectHeader(bytes(buf[:OBJECT_PREFIX_SIZE]), version, 0, b"")
    size = OBJECT_PREFIX_SEALED_SIZE if version == HEADER_SEALED else OBJECT_PREFIX_SIZE + 4
    if len(buf) < size + AEAD_OVERHEAD:
        raise IntegrityError(f"{what} is truncated")
    (generation,) = struct.unpack_from("<I", buf, OBJECT_PREFIX_SIZE)
    if version == HEADER_SEALED:
        if obj_type not in SEALED_TYPES:
            raise IntegrityError(f"{what} has a malformed header")
        return ObjectHeader(bytes(buf[:size]), version, int(generation), bytes(buf[OBJECT_PREFIX_SIZE + 4 : size]))
    if generation == 0:  # generation 0 has exactly one symmetric encoding, version 1
        raise IntegrityError(f"{what} has a malformed header")
    return ObjectHeader(bytes(buf[:size]), version, int(generation), b"")


def parse_object_prefix(buf: bytes, expected_type: int | tuple[int, ...], what: str) -> tuple[bytes, int]:
    """:func:`parse_object_header`'s prefix bytes and key generation."""
    header = parse_object_header(buf, expected_type, what)
    return header.prefix, header.generation


def object_type(buf: bytes) -> int:
    """The type byte of an object whose prefix :func:`parse_object_prefix` accepted."""
    return buf[5]
