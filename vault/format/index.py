"""Index objects: the payload listing packs, their key generations and their blob entries."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from vault.errors import IntegrityError
from vault.format.constants import ID_SIZE
from vault.format.entries import BlobEntry, decode_entries, encode_entries

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
