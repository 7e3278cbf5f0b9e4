"""The keyrings key slots wrap (version 2: a full keyring; version 3: a write-only one): byte layouts and parsers
(bounds-checked after the AEAD)."""

from __future__ import annotations

import struct
from typing import NamedTuple

from vault.errors import IntegrityError

# "VKR" 0x01 | data id key (32) | tree id key (32) | chunker seed (u64) | current generation (u32) | flags (u8)
# | count (u8) | count x (generation u32 | master key 32)
KEYRING_MAGIC = b"VKR\x01"
_KEYRING_HEAD = struct.Struct("<4s32s32sQIBB")
_KEYRING_GEN = struct.Struct("<I32s")
FLAG_REENCRYPT_PENDING = 0x01  # `rekey --reencrypt` started and has not finished: rerunning it resumes
MAX_GENERATIONS_HELD = 64  # each rekey without --reencrypt keeps the older generations: bounded all the same
MAX_KEYRING_SIZE = _KEYRING_HEAD.size + MAX_GENERATIONS_HELD * _KEYRING_GEN.size


class KeyringFields(NamedTuple):
    """What an encoded keyring holds (vault.crypto.keyring.Keyring is built from it). ``repr`` hides the bytes."""

    id_key: bytes
    tree_id_key: bytes
    chunker_seed: int
    current: int
    flags: int
    generations: dict[int, bytes]  # generation number -> its 32-byte master key

    def __repr__(self) -> str:
        return f"KeyringFields(generations={list(self.generations)}, <hidden>)"


def encode_keyring(ring: KeyringFields) -> bytes:
    """The plaintext a version 2 slot wraps, generations in ascending order."""
    gens = sorted(ring.generations.items())
    out = bytearray(
        _KEYRING_HEAD.pack(
            KEYRING_MAGIC, ring.id_key, ring.tree_id_key, ring.chunker_seed, ring.current, ring.flags, len(gens)
        )
    )
    for n, raw in gens:
        out += _KEYRING_GEN.pack(n, raw)
    return bytes(out)


def decode_keyring(buf: bytes, what: str) -> KeyringFields:
    """Parse an encoded keyring (already authenticated by the slot's AEAD, still bounds-checked).
    Raises IntegrityError."""
    if len(buf) < _KEYRING_HEAD.size or len(buf) > MAX_KEYRING_SIZE:
        raise IntegrityError(f"{what} holds a malformed keyring")
    magic, id_key, tree_id_key, seed, current, flags, count = _KEYRING_HEAD.unpack_from(buf, 0)
    if magic != KEYRING_MAGIC or flags & ~FLAG_REENCRYPT_PENDING or not seed & 1 or seed >= 1 << 63:
        raise IntegrityError(f"{what} holds a malformed keyring")
    if count == 0 or len(buf) != _KEYRING_HEAD.size + count * _KEYRING_GEN.size:
        raise IntegrityError(f"{what} holds a malformed keyring")
    gens: dict[int, bytes] = {}
    for i in range(count):
        n, raw = _KEYRING_GEN.unpack_from(buf, _KEYRING_HEAD.size + i * _KEYRING_GEN.size)
        if n in gens:
            raise IntegrityError(f"{what} holds a malformed keyring")
        gens[n] = raw
    if current not in gens:
        raise IntegrityError(f"{what} holds a malformed keyring")
    return KeyringFields(id_key, tree_id_key, seed, current, flags, gens)


# -- the keyring of a write-only key (a version 3 slot wraps it) ---------------------------------------------
# "VKW" 0x01 | generation (u32) | public key (32) | data id key (32) | tree id key (32) | chunker seed (u64)
# | local secret (32). What adding data needs and nothing that opens stored data: the public key of one key
# generation (what it seals to), the identity keys (so its chunks have everyone's ids and boundaries), and a
# random secret of this key alone, from which its local record's keys derive (vault.repo.local_record).
WRITE_ONLY_MAGIC = b"VKW\x01"
_WRITE_ONLY = struct.Struct("<4sI32s32s32sQ32s")
WRITE_ONLY_KEYRING_SIZE = _WRITE_ONLY.size


class WriteOnlyFields(NamedTuple):
    """What a write-only keyring holds (vault.crypto.write_only.WriteOnlyKeyring). ``repr`` hides the bytes."""

    generation: int
    public_key: bytes
    id_key: bytes
    tree_id_key: bytes
    chunker_seed: int
    local_secret: bytes

    def __repr__(self) -> str:
        return f"WriteOnlyFields(generation={self.generation}, <hidden>)"


def encode_write_only_keyring(ring: WriteOnlyFields) -> bytes:
    return _WRITE_ONLY.pack(
        WRITE_ONLY_MAGIC, ring.generation, ring.public_key, ring.id_key, ring.tree_id_key, ring.chunker_seed,
        ring.local_secret,
    )


def decode_write_only_keyring(buf: bytes, what: str) -> WriteOnlyFields:
    """Parse a write-only keyring (authenticated by the slot's AEAD, still checked). IntegrityError."""
    if len(buf) != _WRITE_ONLY.size:
        raise IntegrityError(f"{what} holds a malformed write-only keyring")
    magic, generation, public_key, id_key, tree_id_key, seed, secret = _WRITE_ONLY.unpack(buf)
    if magic != WRITE_ONLY_MAGIC or not seed & 1 or seed >= 1 << 63:
        raise IntegrityError(f"{what} holds a malformed write-only keyring")
    return WriteOnlyFields(int(generation), public_key, id_key, tree_id_key, int(seed), secret)
