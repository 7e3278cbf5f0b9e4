"""Packs: the preamble, the trailer, the associated data of blobs and pack headers, and their checks."""

from __future__ import annotations

import struct
from collections.abc import Iterable

from vault.errors import IntegrityError
from vault.format.constants import (
    AAD_BLOB,
    AAD_PACK_HEADER,
    AEAD_OVERHEAD,
    FORMAT_VERSION,
    FORMAT_VERSION_GENERATIONS,
    HEADER_SEALED,
    HEADER_VERSION_MAX,
    MAX_PACK_ENTRIES,
    PACK_MAGIC,
    PUBLIC_KEY_SIZE,
    check_version,
)
from vault.format.entries import ENTRY_SIZE, BlobEntry, decode_entries

# PACK_MAGIC(4) | version(1) | [generation u32, versions 2 and 4] | blob... | encrypted header | header_length u32
# Version 4: the pack of a write-only put, its blobs and header sealed to the public key of ``generation``
# (format.sealed); there is no pack version 3.
PACK_PREAMBLE = PACK_MAGIC + bytes([FORMAT_VERSION])  # version 1: key generation 0
PACK_PREAMBLE_SIZE = len(PACK_PREAMBLE)
PACK_PREAMBLE_MAX_SIZE = PACK_PREAMBLE_SIZE + 4
PACK_TRAILER_SIZE = 4
MAX_PACK_HEADER = 4 + MAX_PACK_ENTRIES * ENTRY_SIZE + AEAD_OVERHEAD + PUBLIC_KEY_SIZE  # a sealed header: + its key


def pack_preamble(generation: int, sealed: bool = False) -> bytes:
    """The first bytes of a pack whose blobs and header are sealed under key ``generation`` (``sealed``: to the
    public key of ``generation``, a write-only put's pack)."""
    if sealed:
        return PACK_MAGIC + bytes([HEADER_SEALED]) + struct.pack("<I", generation)
    if generation == 0:
        return PACK_PREAMBLE
    return PACK_MAGIC + bytes([FORMAT_VERSION_GENERATIONS]) + struct.pack("<I", generation)


def pack_is_sealed(preamble: bytes) -> bool:
    """True for the preamble of a pack sealed to the public key (version 4), once parse_pack_preamble took it."""
    return preamble[4] == HEADER_SEALED


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


def pack_header_aad(vault_id: bytes, pack_name: str, generation: int = 0, sealed: bool = False) -> bytes:
    """A pack header is bound to its vault, its object name and (versions 2 and 4) its preamble's version and
    generation: swapping two packs, or editing the generation field, is detected."""
    if sealed:
        return (
            AAD_PACK_HEADER + bytes([HEADER_SEALED]) + vault_id + struct.pack("<I", generation)
            + pack_name.encode("ascii")
        )
    if generation == 0:
        return AAD_PACK_HEADER + bytes([FORMAT_VERSION]) + vault_id + pack_name.encode("ascii")
    return (
        AAD_PACK_HEADER
        + bytes([FORMAT_VERSION_GENERATIONS])
        + vault_id
        + struct.pack("<I", generation)
        + pack_name.encode("ascii")
    )


def pack_trailer(header_length: int) -> bytes:
    """The last bytes of a pack: the length of its sealed header."""
    return struct.pack("<I", header_length)


def parse_pack_preamble(buf: bytes, what: str) -> tuple[int, int]:
    """Check the first bytes of a pack (at least PACK_PREAMBLE_MAX_SIZE of them when the pack is that long);
    return its key generation and the preamble's size. Raises IntegrityError or UnsupportedVersionError."""
    if len(buf) < PACK_PREAMBLE_SIZE or buf[:4] != PACK_MAGIC:
        raise IntegrityError(f"{what} is not a vault pack (bad magic)")
    check_version(buf[4], what, maximum=HEADER_VERSION_MAX)
    if buf[4] == FORMAT_VERSION:
        return 0, PACK_PREAMBLE_SIZE
    if buf[4] not in (FORMAT_VERSION_GENERATIONS, HEADER_SEALED):
        raise IntegrityError(f"{what} has a malformed preamble")
    if len(buf) < PACK_PREAMBLE_MAX_SIZE:
        raise IntegrityError(f"{what} is truncated")
    (generation,) = struct.unpack_from("<I", buf, 5)
    if generation == 0 and buf[4] != HEADER_SEALED:  # generation 0 has one symmetric encoding, version 1
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


def decode_pack_header(
    plain: bytes, header_start: int, what: str, preamble_size: int = PACK_PREAMBLE_SIZE
) -> list[BlobEntry]:
    """The entries of a pack's header (already authenticated), checked against the pack: no trailing bytes,
    every blob between the preamble and the header. Raises IntegrityError."""
    entries, end = decode_entries(plain, 0, f"header of {what}")
    if end != len(plain):
        raise IntegrityError(f"header of {what} has trailing bytes")
    check_pack_entries(entries, header_start, what, preamble_size)
    return entries
