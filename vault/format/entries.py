"""Blob entries: the fixed-size record pack headers and index objects share, and its hostile-input parser."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from vault.errors import IntegrityError, UnsupportedVersionError
from vault.format.constants import AEAD_OVERHEAD, KNOWN_FLAGS, MAX_BLOB_RAW, MAX_PACK_ENTRIES, BlobType

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
