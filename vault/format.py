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
FORMAT_VERSION_MAX = 1

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


def check_version(version: int, what: str) -> None:
    """Refuse a version this program does not read. Raises UnsupportedVersionError or IntegrityError."""
    if version > FORMAT_VERSION_MAX:
        raise UnsupportedVersionError(
            f"{what} uses format version {version}, newer than this program reads "
            f"({FORMAT_VERSION_MAX}); upgrade vault to read it"
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
# PACK_MAGIC(4) | version(1) | blob... | encrypted header | header_length u32 LE (length of the encrypted header)
PACK_PREAMBLE = PACK_MAGIC + bytes([FORMAT_VERSION])
PACK_PREAMBLE_SIZE = len(PACK_PREAMBLE)
PACK_TRAILER_SIZE = 4
MAX_PACK_HEADER = 4 + MAX_PACK_ENTRIES * ENTRY_SIZE + AEAD_OVERHEAD


def blob_aad(vault_id: bytes, blob_type: int, flags: int, raw_length: int, blob_id: bytes) -> bytes:
    """Associated data of a blob: binds the vault, the blob's type, flags, plaintext length and id, so a blob
    swapped for another, moved to another vault, or relabelled fails authentication (age's stream binds its
    chunks the same way through the nonce)."""
    return (
        AAD_BLOB
        + bytes([FORMAT_VERSION])
        + vault_id
        + struct.pack("<BBI", blob_type, flags, raw_length)
        + blob_id
    )


def pack_header_aad(vault_id: bytes, pack_name: str) -> bytes:
    """A pack header is bound to its vault and its object name: swapping two packs is detected."""
    return AAD_PACK_HEADER + bytes([FORMAT_VERSION]) + vault_id + pack_name.encode("ascii")


def parse_pack_preamble(buf: bytes, what: str) -> None:
    """Check the first bytes of a pack. Raises IntegrityError or UnsupportedVersionError."""
    if len(buf) < PACK_PREAMBLE_SIZE or buf[:4] != PACK_MAGIC:
        raise IntegrityError(f"{what} is not a vault pack (bad magic)")
    check_version(buf[4], what)


def parse_pack_trailer(trailer: bytes, pack_size: int, what: str) -> int:
    """Length of the encrypted header, checked against the pack's size."""
    if len(trailer) != PACK_TRAILER_SIZE:
        raise IntegrityError(f"{what} is truncated")
    hlen = int(struct.unpack("<I", trailer)[0])
    if hlen < AEAD_OVERHEAD + 4 or hlen > MAX_PACK_HEADER or hlen > pack_size - PACK_PREAMBLE_SIZE - 4:
        raise IntegrityError(f"{what} has an invalid header length")
    return hlen


def check_pack_entries(entries: Iterable[BlobEntry], header_start: int, what: str) -> None:
    """Every blob must lie between the preamble and the header, without overlapping its neighbours."""
    end = PACK_PREAMBLE_SIZE
    for e in sorted(entries, key=lambda x: x.offset):
        if e.offset < end or e.offset + e.length > header_start:
            raise IntegrityError(f"{what} has overlapping or out-of-range blobs")
        end = e.offset + e.length


# -- standalone encrypted objects (index, version records) ---------------------------------------------------
# OBJECT_MAGIC(4) | version(1) | type(1) | nonce(12) | ciphertext | tag(16)
OBJECT_PREFIX_SIZE = 6


def object_prefix(obj_type: int) -> bytes:
    return OBJECT_MAGIC + bytes([FORMAT_VERSION, obj_type])


def object_aad(prefix: bytes, vault_id: bytes, name: str) -> bytes:
    """Binds the object's header bytes, the vault and the object name: a swapped or renamed object fails."""
    return AAD_OBJECT + prefix + vault_id + name.encode("ascii")


def parse_object_prefix(buf: bytes, expected_type: int | tuple[int, ...], what: str) -> bytes:
    """Check magic, version and type (one of ``expected_type``); return the prefix bytes (part of the AAD)."""
    if len(buf) < OBJECT_PREFIX_SIZE + AEAD_OVERHEAD or buf[:4] != OBJECT_MAGIC:
        raise IntegrityError(f"{what} is not a vault object (bad magic or truncated)")
    check_version(buf[4], what)
    if buf[5] not in (expected_type if isinstance(expected_type, tuple) else (expected_type,)):
        raise IntegrityError(f"{what} has the wrong object type")
    return bytes(buf[:OBJECT_PREFIX_SIZE])


# -- index objects -------------------------------------------------------------------------------------------
# u32 pack count; per pack: pack id (32 raw bytes) followed by encode_entries()


def encode_index(packs: Sequence[tuple[bytes, Sequence[BlobEntry]]]) -> bytes:
    out = bytearray(struct.pack("<I", len(packs)))
    for pack_id, entries in packs:
        out += pack_id
        out += encode_entries(entries)
    return bytes(out)


def decode_index(buf: bytes, what: str) -> list[tuple[bytes, list[BlobEntry]]]:
    if len(buf) < 4:
        raise IntegrityError(f"{what} is truncated")
    (count,) = struct.unpack_from("<I", buf, 0)
    pos = 4
    packs: list[tuple[bytes, list[BlobEntry]]] = []
    for _ in range(count):
        if pos + ID_SIZE > len(buf):
            raise IntegrityError(f"{what} is truncated")
        pack_id = bytes(buf[pos : pos + ID_SIZE])
        entries, pos = decode_entries(buf, pos + ID_SIZE, what)
        packs.append((pack_id, entries))
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
