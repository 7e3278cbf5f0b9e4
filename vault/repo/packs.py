"""Packs: many sealed blobs in one object of about 16 MiB, with an encrypted header listing them.

``"VLTP" | version | [key generation] | blob... | sealed header | u32 header length``. The header lets
`repair` rebuild the index from packs alone (restic's pack format works the same way). Pack names are 32
random bytes in hex. A write-only put's pack (version 4) has its blobs sealed to the vault's public key (each
starts with the put's ephemeral key) and its header sealed to it under a key of its own (the header then starts
with its ephemeral key): vault.crypto.recipient.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from vault import format as fmt
from vault.crypto.keyring import Keyring
from vault.errors import IntegrityError, ObjectNotFoundError
from vault.repo.blobs import SealedBlob, open_blob, verify_blob_id
from vault.storage.base import Backend, Handle, Kind


class PackBuilder:
    """Accumulates sealed blobs in memory until the pack is full. Not thread-safe: one owner."""

    def __init__(self, generation: int, sealed: bool = False, target_size: int | None = None) -> None:
        """``generation``: the key generation every blob added was sealed under (the keyring's current one);
        ``sealed``: to that generation's public key (a write-only keyring's pack). ``target_size``: the pack is
        full at this many bytes (default ``fmt.PACK_TARGET_SIZE``); readers accept any size up to
        ``fmt.MAX_PACK_SIZE``, so this is the writer's choice alone."""
        self.pack_id = os.urandom(fmt.ID_SIZE)
        self.target_size = target_size
        self.generation = generation
        self.sealed = sealed
        preamble = fmt.pack_preamble(generation, sealed)
        self._parts: list[bytes] = [preamble]
        self.size = len(preamble)
        self.entries: list[fmt.BlobEntry] = []

    @property
    def name(self) -> str:
        return self.pack_id.hex()

    def add(self, blob: SealedBlob) -> fmt.BlobEntry:
        entry = fmt.BlobEntry(
            blob.blob_id, blob.blob_type, blob.flags, self.size, len(blob.sealed), blob.raw_length
        )
        self._parts.append(blob.sealed)
        self.size += len(blob.sealed)
        self.entries.append(entry)
        return entry

    def full(self) -> bool:
        return self.size >= (self.target_size if self.target_size is not None else fmt.PACK_TARGET_SIZE)

    def finish(self, key: Keyring, vault_id: bytes) -> bytes:
        """The whole pack's bytes, header and trailer included."""
        return b"".join(self.finish_parts(key, vault_id))

    def finish_parts(self, key: Keyring, vault_id: bytes) -> list[bytes]:
        """The whole pack as its parts, unjoined (preamble, sealed blobs, header, trailer): ``finish`` without
        the 16 MiB copy, for ``storage.base.save_parts``."""
        aad = fmt.pack_header_aad(vault_id, self.name, self.generation, self.sealed)
        entries = fmt.encode_entries(self.entries)
        if self.sealed:
            header = key.recipient(self.generation).seal(fmt.LABEL_SEALED_PACK_HEADER, self.name, entries, aad)
        else:
            header = key.get(self.generation, f"pack {self.name}").meta.seal(entries, aad)
        parts, self._parts = self._parts, []
        parts.append(header)
        parts.append(fmt.pack_trailer(len(header)))
        return parts


def read_pack_header(
    backend: Backend, key: Keyring, vault_id: bytes, name: str
) -> tuple[PackHeader, int]:
    """Read and authenticate a pack's header from the end of the pack; returns it and the pack size.
    Raises IntegrityError (also for a missing pack: the vault needs it) or StorageError."""
    handle = Handle(Kind.DATA, name)
    try:
        size = backend.stat(handle).size
    except ObjectNotFoundError:
        raise IntegrityError(f"pack {handle} is missing; run `vault check`") from None
    entries = parse_pack_header(lambda offset, length: backend.load(handle, offset, length), size, key, vault_id, name)
    return entries, size


@dataclass(frozen=True)
class PackHeader:
    generation: int  # the key generation its blobs and header are sealed under
    entries: list[fmt.BlobEntry]


def parse_pack_header(
    read: Callable[[int, int], bytes], size: int, key: Keyring, vault_id: bytes, name: str
) -> PackHeader:
    """The authenticated header of a pack of ``size`` bytes, reading through ``read(offset, length)`` (ranged
    loads from the store, or slices of a pack already in memory). Raises IntegrityError."""
    what = f"pack {Handle(Kind.DATA, name)}"
    if size < fmt.PACK_PREAMBLE_SIZE + fmt.PACK_TRAILER_SIZE + fmt.AEAD_OVERHEAD:
        raise IntegrityError(f"{what} is truncated")
    preamble = read(0, min(size, fmt.PACK_PREAMBLE_MAX_SIZE))
    generation, preamble_size = fmt.parse_pack_preamble(preamble, what)
    sealed = fmt.pack_is_sealed(preamble)
    hlen = fmt.parse_pack_trailer(read(size - fmt.PACK_TRAILER_SIZE, fmt.PACK_TRAILER_SIZE), size, what)
    header_start = size - fmt.PACK_TRAILER_SIZE - hlen
    if header_start < preamble_size:
        raise IntegrityError(f"{what} has an invalid header length")
    aad = fmt.pack_header_aad(vault_id, name, generation, sealed)
    gen = key.get(generation, what)
    if sealed:
        plain = gen.recipient_key.open(fmt.LABEL_SEALED_PACK_HEADER, name, read(header_start, hlen), aad,
                                       f"header of {what}")
    else:
        plain = gen.meta.open(read(header_start, hlen), aad, f"header of {what}")
    entries = fmt.decode_pack_header(plain, header_start, what, preamble_size)
    if any(bool(e.flags & fmt.FLAG_SEALED) != sealed for e in entries):  # a write-only pack vouches for its own
        raise IntegrityError(f"{what} mixes blobs sealed to the public key with others")
    return PackHeader(generation, entries)


def load_pack(backend: Backend, name: str) -> bytes:
    """A whole pack, for readers that verify every blob (check --read-data, repair, prune's repack). The size
    is checked first: a pack replaced by a huge (even sparse) file is damage, not something to allocate.
    Raises IntegrityError (too large, or missing) or StorageError."""
    handle = Handle(Kind.DATA, name)
    try:
        size = backend.stat(handle).size
    except ObjectNotFoundError:
        raise IntegrityError(f"pack {handle} is missing; run `vault check`") from None
    if size > fmt.MAX_PACK_SIZE:
        raise IntegrityError(f"pack {handle} is larger than any pack vault writes ({size} bytes); it was altered")
    data = backend.load(handle, 0, fmt.MAX_PACK_SIZE + 1)  # capped: it may have grown since the stat
    if len(data) > fmt.MAX_PACK_SIZE:
        raise IntegrityError(f"pack {handle} is larger than any pack vault writes; it was altered")
    return data


def verify_blobs(
    key: Keyring, vault_id: bytes, name: str, data: bytes, entries: list[fmt.BlobEntry], generation: int
) -> tuple[list[fmt.BlobEntry], list[fmt.BlobEntry]]:
    """Authenticate, decompress and re-hash every listed blob of a pack already in memory (``load_pack``),
    sealed under key ``generation``. Returns the entries that verify and those that do not; raises nothing for
    a damaged blob. UnknownGenerationError when the keyring lacks ``generation`` (not damage: nothing is
    reported bad for it)."""
    good, bad = [], []
    for e in entries:
        what = f"blob {e.blob_id.hex()[:10]} in pack {Handle(Kind.DATA, name)}"
        try:
            sealed = data[e.offset : e.offset + e.length]
            verify_blob_id(key, open_blob(key, vault_id, e, sealed, what, generation), e, what)
        except IntegrityError:
            bad.append(e)
            continue
        good.append(e)
    return good, bad
