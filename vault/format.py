"""Every byte layout and constant of the vault format, in one place. docs/format.md describes the same bytes.

Readers accept ``FORMAT_VERSION_MIN..FORMAT_VERSION_MAX``; writers emit ``FORMAT_VERSION`` (restic's
Min/Max/Stable). Every parser here treats its input as hostile: lengths are checked before use, counts are
bounded by the bytes actually present, and any mismatch raises :class:`IntegrityError` (never IndexError,
struct.error or a huge allocation). A version byte newer than we know raises :class:`UnsupportedVersionError`.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from vault.errors import IntegrityError, UnsupportedVersionError

# -- versions ------------------------------------------------------------------------------------------------
FORMAT_VERSION = 1
FORMAT_VERSION_MIN = 1
FORMAT_VERSION_MAX = 2
# Version 2 adds key generations (`vault rekey`): packs, encrypted objects and key slots written under a
# generation other than 0 carry its number. A vault that was never rekeyed writes version 1 bytes only, so
# everything made before generations existed reads and is written exactly as before.
FORMAT_VERSION_GENERATIONS = 2
MAX_GENERATION = 2**32 - 1

# -- sizes ---------------------------------------------------------------------------------------------------
KEY_SIZE = 32  # AES-256-GCM keys, BLAKE3 keys, master key
NONCE_SIZE = 12  # AES-GCM's 96-bit nonce, random per encryption
TAG_SIZE = 16
ID_SIZE = 32  # blob ids (keyed BLAKE3) and pack ids (random)
VAULT_ID_SIZE = 16
SALT_SIZE = 16
AEAD_OVERHEAD = NONCE_SIZE + TAG_SIZE

# Chunking (FastCDC): pyfastcdc's real average is avg + min, so this gives ~1.25 MiB average chunks.
CHUNK_MIN = 256 * 1024
CHUNK_AVG = 1024 * 1024
CHUNK_MAX = 4 * 1024 * 1024

PACK_TARGET_SIZE = 16 * 1024 * 1024
# A blob's plaintext may be at most this big: a chunk is at most CHUNK_MAX; trees may be larger.
MAX_BLOB_RAW = 64 * 1024 * 1024
# Upper bound on any decoded metadata object (index, version record) after decompression.
MAX_METADATA_RAW = 256 * 1024 * 1024
# A pack's header can't list more blobs than this (16 MiB packs of tiny blobs stay far below it).
MAX_PACK_ENTRIES = 1_000_000
# No pack vault writes is larger: the target, plus one blob that crossed it, plus a header of tiny blobs.
# Readers that load whole packs refuse anything bigger before allocating for it.
MAX_PACK_SIZE = 128 * 1024 * 1024

# -- HKDF labels: one subkey per purpose, derived from the master key ----------------------------------------
LABEL_DATA = b"vault/v1/data"  # AEAD key for blobs
LABEL_META = b"vault/v1/meta"  # AEAD key for pack headers, index objects and version records
LABEL_ID = b"vault/v1/id"  # BLAKE3 key for data blob ids
LABEL_TREE_ID = b"vault/v1/id/tree"  # BLAKE3 key for tree blob ids: a file can never collide with a tree
LABEL_CHUNKER = b"vault/v1/chunker"  # seed of the FastCDC gear table

# -- magics (4 bytes) and AAD prefixes -----------------------------------------------------------------------
PACK_MAGIC = b"VLTP"
OBJECT_MAGIC = b"VLTO"
AAD_BLOB = b"vault/blob"
AAD_PACK_HEADER = b"vault/pack-header"
AAD_OBJECT = b"vault/object"
AAD_KEY_SLOT = b"vault/key-slot"


class BlobType:
    DATA = 1
    TREE = 2
    ALL = (1, 2)


class ObjectType:
    """The type byte of standalone encrypted objects (bound into their AAD)."""

    INDEX = 1
    VERSION = 2
    LOCK = 3
    INDEX_CHECKPOINT = 4  # a one-pack index written while a put runs; merged into an INDEX when it ends
    ALL = (1, 2, 3, 4)


FLAG_ZSTD = 0x01  # the blob's plaintext was zstd-compressed before encryption
KNOWN_FLAGS = FLAG_ZSTD


def check_version(version: int, what: str, maximum: int = FORMAT_VERSION_MAX) -> None:
    """Refuse a version this program does not read (documents with their own numbering, like trees and
    version records, pass their own ``maximum``). Raises UnsupportedVersionError or IntegrityError."""
    if version > maximum:
        raise UnsupportedVersionError(
            f"{what} uses format version {version}, newer than this program reads "
            f"({maximum}); upgrade vault to read it"
        )
    if version < FORMAT_VERSION_MIN:
        raise IntegrityError(f"{what} has an invalid format version {version}")


# -- blob entries (pack headers and index objects share this record) -----------------------------------------
# id(32) | type(1) | flags(1) | offset u32 | length u32 (encrypted length in the pack) | raw_length u32
_ENTRY = struct.Struct("<32sBBIII")
ENTRY_SIZE = _ENTRY.size


@dataclass(frozen=True, slots=True)
class BlobEntry:
    """Where one blob lives inside a pack, and what it decrypts to."""

    blob_id: bytes
    blob_type: int
    flags: int
    offset: int
    length: int
    raw_length: int


def _check_entry(e: BlobEntry, what: str) -> None:
    if e.blob_type not in BlobType.ALL:
        raise IntegrityError(f"{what} names an unknown blob type {e.blob_type}")
    if e.flags & ~KNOWN_FLAGS:
        raise UnsupportedVersionError(f"{what} uses blob flags this program does not know; upgrade vault")
    if e.length < AEAD_OVERHEAD or e.raw_length > MAX_BLOB_RAW:
        raise IntegrityError(f"{what} has a blob entry with impossible sizes")


def encode_entries(entries: Sequence[BlobEntry]) -> bytes:
    """u32 count followed by ``count`` fixed-size entries."""
    out = bytearray(struct.pack("<I", len(entries)))
    for e in entries:
        out += _ENTRY.pack(e.blob_id, e.blob_type, e.flags, e.offset, e.length, e.raw_length)
    return bytes(out)


def decode_entries(buf: bytes | memoryview, pos: int, what: str) -> tuple[list[BlobEntry], int]:
    """Parse what :func:`encode_entries` wrote, starting at ``pos``; return the entries and the end position."""
    mv = memoryview(buf)
    if pos + 4 > len(mv):
        raise IntegrityError(f"{what} is truncated")
    (count,) = struct.unpack_from("<I", mv, pos)
    pos += 4
    if count > MAX_PACK_ENTRIES or pos + count * ENTRY_SIZE > len(mv):
        raise IntegrityError(f"{what} is truncated or claims too many entries")
    entries = []
    for _ in range(count):
        blob_id, btype, flags, offset, length, raw = _ENTRY.unpack_from(mv, pos)
        pos += ENTRY_SIZE
        entry = BlobEntry(blob_id, btype, flags, offset, length, raw)
        _check_entry(entry, what)
        entries.append(entry)
    return entries, pos


# -- packs ---------------------------------------------------------------------------------------------------
# PACK_MAGIC(4) | version(1) | [generation u32, version 2 only] | blob... | encrypted header | header_length u32
PACK_PREAMBLE = PACK_MAGIC + bytes([FORMAT_VERSION])  # version 1: key generation 0
PACK_PREAMBLE_SIZE = len(PACK_PREAMBLE)
PACK_PREAMBLE_MAX_SIZE = PACK_PREAMBLE_SIZE + 4
PACK_TRAILER_SIZE = 4
MAX_PACK_HEADER = 4 + MAX_PACK_ENTRIES * ENTRY_SIZE + AEAD_OVERHEAD


def pack_preamble(generation: int) -> bytes:
    """The first bytes of a pack whose blobs and header are sealed under key ``generation``."""
    if generation == 0:
        return PACK_PREAMBLE
    return PACK_MAGIC + bytes([FORMAT_VERSION_GENERATIONS]) + struct.pack("<I", generation)


def blob_aad(vault_id: bytes, blob_type: int, flags: int, raw_length: int, blob_id: bytes) -> bytes:
    """Associated data of a blob: binds the vault, the blob's type, flags, plaintext length and id, so a blob
    swapped for another, moved to another vault, or relabelled fails authentication (age's stream binds its
    chunks the same way through the nonce). The key generation needs no place here: each has its own key."""
    return (
        AAD_BLOB
        + bytes([FORMAT_VERSION])
        + vault_id
        + struct.pack("<BBI", blob_type, flags, raw_length)
        + blob_id
    )


def pack_header_aad(vault_id: bytes, pack_name: str, generation: int = 0) -> bytes:
    """A pack header is bound to its vault, its object name and (version 2) its preamble's generation:
    swapping two packs, or editing the generation field, is detected."""
    if generation == 0:
        return AAD_PACK_HEADER + bytes([FORMAT_VERSION]) + vault_id + pack_name.encode("ascii")
    return (
        AAD_PACK_HEADER
        + bytes([FORMAT_VERSION_GENERATIONS])
        + vault_id
        + struct.pack("<I", generation)
        + pack_name.encode("ascii")
    )


def parse_pack_preamble(buf: bytes, what: str) -> tuple[int, int]:
    """Check the first bytes of a pack (at least PACK_PREAMBLE_MAX_SIZE of them when the pack is that long);
    return its key generation and the preamble's size. Raises IntegrityError or UnsupportedVersionError."""
    if len(buf) < PACK_PREAMBLE_SIZE or buf[:4] != PACK_MAGIC:
        raise IntegrityError(f"{what} is not a vault pack (bad magic)")
    check_version(buf[4], what)
    if buf[4] == FORMAT_VERSION:
        return 0, PACK_PREAMBLE_SIZE
    if len(buf) < PACK_PREAMBLE_MAX_SIZE:
        raise IntegrityError(f"{what} is truncated")
    (generation,) = struct.unpack_from("<I", buf, 5)
    if generation == 0:  # generation 0 has exactly one encoding, version 1
        raise IntegrityError(f"{what} has a malformed preamble")
    return int(generation), PACK_PREAMBLE_MAX_SIZE


def parse_pack_trailer(trailer: bytes, pack_size: int, what: str) -> int:
    """Length of the encrypted header, checked against the pack's size."""
    if len(trailer) != PACK_TRAILER_SIZE:
        raise IntegrityError(f"{what} is truncated")
    hlen = int(struct.unpack("<I", trailer)[0])
    if hlen < AEAD_OVERHEAD + 4 or hlen > MAX_PACK_HEADER or hlen > pack_size - PACK_PREAMBLE_SIZE - 4:
        raise IntegrityError(f"{what} has an invalid header length")
    return hlen


def check_pack_entries(
    entries: Iterable[BlobEntry], header_start: int, what: str, preamble_size: int = PACK_PREAMBLE_SIZE
) -> None:
    """Every blob must lie between the preamble and the header, without overlapping its neighbours."""
    end = preamble_size
    for e in sorted(entries, key=lambda x: x.offset):
        if e.offset < end or e.offset + e.length > header_start:
            raise IntegrityError(f"{what} has overlapping or out-of-range blobs")
        end = e.offset + e.length


# -- standalone encrypted objects (index, version records, locks) --------------------------------------------
# version 1: OBJECT_MAGIC(4) | 1 | type(1) | nonce(12) | ciphertext | tag(16)                  (key generation 0)
# version 2: OBJECT_MAGIC(4) | 2 | type(1) | generation u32 | nonce(12) | ciphertext | tag(16)
OBJECT_PREFIX_SIZE = 6
OBJECT_PREFIX_MAX_SIZE = OBJECT_PREFIX_SIZE + 4


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
    check_version(buf[4], what)
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


# -- index objects -------------------------------------------------------------------------------------------
# Payload of a version 1 object: u32 pack count; per pack: pack id (32 raw bytes), then encode_entries().
# Version 2 (an object sealed under generation >= 1) adds each pack's key generation after its id (u32).


@dataclass(frozen=True, slots=True)
class IndexedPack:
    pack_id: bytes
    generation: int
    entries: Sequence[BlobEntry]


def encode_index(packs: Sequence[IndexedPack], with_generations: bool) -> bytes:
    """``with_generations`` is True for an index object sealed under a generation >= 1 (version 2); a version
    1 object can only list generation-0 packs."""
    out = bytearray(struct.pack("<I", len(packs)))
    for p in packs:
        out += p.pack_id
        if with_generations:
            out += struct.pack("<I", p.generation)
        elif p.generation != 0:
            raise ValueError("a version 1 index object can only list generation-0 packs")
        out += encode_entries(p.entries)
    return bytes(out)


def decode_index(buf: bytes, what: str, with_generations: bool = False) -> list[IndexedPack]:
    if len(buf) < 4:
        raise IntegrityError(f"{what} is truncated")
    (count,) = struct.unpack_from("<I", buf, 0)
    pos = 4
    head = ID_SIZE + (4 if with_generations else 0)
    packs: list[IndexedPack] = []
    for _ in range(count):
        if pos + head > len(buf):
            raise IntegrityError(f"{what} is truncated")
        pack_id = bytes(buf[pos : pos + ID_SIZE])
        generation = struct.unpack_from("<I", buf, pos + ID_SIZE)[0] if with_generations else 0
        entries, pos = decode_entries(buf, pos + head, what)
        packs.append(IndexedPack(pack_id, int(generation), entries))
    if pos != len(buf):
        raise IntegrityError(f"{what} has trailing bytes")
    return packs


# -- JSON documents (trees, version records, key slots, config) ----------------------------------------------


def encode_json(doc: Any) -> bytes:
    """Canonical JSON: sorted keys, no spaces. Names that are not valid UTF-8 travel as surrogate escapes,
    which ``ensure_ascii`` writes as \\udcXX and json reads back unchanged."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def decode_json_object(buf: bytes, what: str) -> dict[str, Any]:
    """Parse a JSON object; anything else (bad UTF-8, bad JSON, a list, deep nesting) is IntegrityError."""
    try:
        doc = json.loads(buf)
    except (ValueError, RecursionError) as exc:
        raise IntegrityError(f"{what} is not valid JSON") from exc
    if not isinstance(doc, dict):
        raise IntegrityError(f"{what} is not a JSON object")
    return doc


def id_hex(raw: bytes) -> str:
    return raw.hex()


def id_from_hex(text: object, what: str) -> bytes:
    """Parse a 64-hex-digit id from an untrusted document."""
    if not isinstance(text, str) or len(text) != 2 * ID_SIZE:
        raise IntegrityError(f"{what} holds a malformed id")
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise IntegrityError(f"{what} holds a malformed id") from exc
    if len(raw) != ID_SIZE:  # fromhex skips whitespace, so 64 characters may hold fewer bytes
        raise IntegrityError(f"{what} holds a malformed id")
    return raw
