"""The keyring: the vault's identity keys and one master key per key generation, with the subkeys of each.

A key slot (vault.crypto.slots) unwraps a keyring; everything else that encrypts, decrypts or names a blob
uses it. Subkeys come from a generation's master key through HKDF, one label per purpose (vault.format). Each
generation also has an X25519 key pair (format version 4) derived from its master key: write-only keys
(vault.crypto.write_only) hold its public half and seal to it; this keyring opens what they sealed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import blake3
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault import format as fmt
from vault.crypto.aead import Aead
from vault.crypto.recipient import Recipient, RecipientKey
from vault.errors import ConflictError, IntegrityError, UnknownGenerationError


class Generation:
    """One key generation's encryption keys, derived from its 32-byte master key. ``repr`` hides the bytes."""

    __slots__ = ("_recipient_key", "_vault_id", "data", "meta", "number", "raw")

    def __init__(self, number: int, raw: bytes, vault_id: bytes) -> None:
        if len(raw) != fmt.KEY_SIZE:
            raise ValueError("master keys are 32 bytes")
        self.number = number
        self.raw = raw
        self._vault_id = vault_id
        self.data = Aead(_derive(raw, vault_id, fmt.LABEL_DATA))
        self.meta = Aead(_derive(raw, vault_id, fmt.LABEL_META))
        self._recipient_key: RecipientKey | None = None

    @property
    def recipient_key(self) -> RecipientKey:
        """This generation's X25519 private key (derived on first use): opens what write-only keys sealed to it."""
        if self._recipient_key is None:
            self._recipient_key = RecipientKey(_derive(self.raw, self._vault_id, fmt.LABEL_X25519), self._vault_id)
        return self._recipient_key

    def __repr__(self) -> str:
        return f"Generation({self.number}, <hidden>)"


def _derive(raw: bytes, vault_id: bytes, label: bytes, length: int = fmt.KEY_SIZE) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=vault_id, info=label).derive(raw)


def lock_aead(id_key: bytes, vault_id: bytes) -> Aead:
    """The AEAD of lock objects in a version 4 vault: derived from the data id key, which full and write-only keys
    both hold, so each kind can read and honour the other's locks. (A lock says who holds the vault and since
    when; nothing else.)"""
    return Aead(_derive(id_key, vault_id, fmt.LABEL_LOCKS))


@dataclass(frozen=True, slots=True)
class BlobSealer:
    """How one put seals its blobs: under the current generation's data key, or (a write-only put) under the key
    of its ephemeral exchange with the vault's public key, whose public half goes in front of every blob."""

    aead: Aead
    prefix: bytes = b""  # the put's ephemeral public key (write-only puts), else nothing
    flags: int = 0  # fmt.FLAG_SEALED for a write-only put's blobs

    def seal(self, payload: bytes | memoryview, aad: bytes) -> bytes:
        return self.aead.seal(payload, aad, self.prefix)


class Keyring:
    """Everything a key slot unlocks: the vault's identity keys and one master key per key generation.

    - Identity keys name blobs (keyed BLAKE3) and seed the chunker. They are derived from the first master key
      and never change, so data stored before and after `vault rekey` deduplicates.
    - Each generation has its own master key, and from it the AEAD keys for blobs (``data``) and for pack
      headers and objects (``meta``). New bytes are sealed under the current generation; every stored pack and
      object names the generation it was sealed under, and older generations stay here until
      `rekey --reencrypt` has rewritten their data.

    A vault that was never rekeyed holds generation 0 only, whose master key is the one a version 1 slot wraps
    and from which the identity keys come (so version 1 vaults read and write exactly as before).
    Never logged or printed: ``repr`` hides the bytes.
    """

    __slots__ = ("_gens", "_id_key", "_lock_aead", "_tree_id_key", "chunker_seed", "current", "flags", "vault_id")
    write_only = False  # see vault.crypto.write_only.WriteOnlyKeyring

    def __init__(
        self,
        vault_id: bytes,
        id_key: bytes,
        tree_id_key: bytes,
        chunker_seed: int,
        generations: dict[int, bytes],
        current: int,
        flags: int = 0,
    ) -> None:
        if current not in generations:
            raise ValueError("the current generation must be held")
        self.vault_id = vault_id
        self._id_key = id_key
        self._tree_id_key = tree_id_key
        self.chunker_seed = chunker_seed
        self._gens = {n: Generation(n, raw, vault_id) for n, raw in sorted(generations.items())}
        self.current = current
        self.flags = flags
        self._lock_aead: Aead | None = None

    @classmethod
    def from_master_key(cls, raw: bytes, vault_id: bytes) -> Keyring:
        """The keyring of a never-rekeyed vault: generation 0 is ``raw``, the identity keys derive from it."""
        if len(raw) != fmt.KEY_SIZE:
            raise ValueError("master keys are 32 bytes")
        seed = int.from_bytes(_derive(raw, vault_id, fmt.LABEL_CHUNKER, 8), "little")
        return cls(
            vault_id,
            _derive(raw, vault_id, fmt.LABEL_ID),
            _derive(raw, vault_id, fmt.LABEL_TREE_ID),
            # pyfastcdc XORs the seed into its 64-bit gear table; keep it non-zero (0 means "default table").
            (seed & ((1 << 63) - 1)) | 1,
            {0: raw},
            0,
        )

    # -- the generations -----------------------------------------------------------------------------------
    @property
    def generation(self) -> Generation:
        return self._gens[self.current]

    @property
    def data(self) -> Aead:
        """AEAD for new blobs (the current generation's)."""
        return self.generation.data

    @property
    def meta(self) -> Aead:
        """AEAD for new pack headers and objects (the current generation's)."""
        return self.generation.meta

    @property
    def generations(self) -> tuple[int, ...]:
        return tuple(self._gens)

    def get(self, number: int, what: str) -> Generation:
        """The keys of generation ``number``. UnknownGenerationError when it is newer than any this keyring holds
        (sealed after a `rekey` that the opening slot predates: not damage); plain IntegrityError when it is
        older (a generation `rekey --reencrypt` retired: an old object put back, or an altered header)."""
        gen = self._gens.get(number)
        if gen is None and number < max(self._gens):
            raise IntegrityError(
                f"{what} is sealed under key generation {number}, which this vault no longer uses: an old object "
                "was put back, or its header was altered"
            )
        if gen is None:
            raise UnknownGenerationError(
                f"{what} is sealed under key generation {number}, which the key that opened the vault does not "
                f"hold (it holds {', '.join(map(str, self._gens))})",
                hint="a key made before the last `vault rekey` can't read newer data; use a current password",
            )
        return gen

    @property
    def reencrypt_pending(self) -> bool:
        return bool(self.flags & fmt.FLAG_REENCRYPT_PENDING)

    @property
    def is_legacy(self) -> bool:
        """True while the vault was never rekeyed: its slots stay version 1 (a 32-byte master key)."""
        return self.current == 0 and len(self._gens) == 1 and not self.flags

    def rotated(self, reencrypt: bool) -> Keyring:
        """A keyring with a new random current generation, holding the older ones for the data under them."""
        if len(self._gens) >= fmt.MAX_GENERATIONS_HELD:
            raise ConflictError(
                f"this vault holds {len(self._gens)} key generations, the most it can",
                hint="run `vault rekey --reencrypt` to rewrite old data under one key",
            )
        number = max(self._gens) + 1
        if number > fmt.MAX_GENERATION:
            raise ConflictError("this vault has used every key generation number")
        gens = {n: g.raw for n, g in self._gens.items()} | {number: os.urandom(fmt.KEY_SIZE)}
        flags = self.flags | (fmt.FLAG_REENCRYPT_PENDING if reencrypt else 0)
        return Keyring(self.vault_id, self._id_key, self._tree_id_key, self.chunker_seed, gens, number, flags)

    def blob_sealer(self) -> BlobSealer:
        """How a put under this keyring seals its blobs: the current generation's data key."""
        return BlobSealer(self.data)

    @property
    def lock_aead(self) -> Aead:
        """The AEAD of lock objects in a version 4 vault (see :func:`lock_aead`)."""
        if self._lock_aead is None:
            self._lock_aead = lock_aead(self._id_key, self.vault_id)
        return self._lock_aead

    def recipient(self, number: int | None = None) -> Recipient:
        """The public key of generation ``number`` (default: the current one), which write-only keys seal to."""
        gen = self.generation if number is None else self.get(number, f"key generation {number}")
        return Recipient(gen.recipient_key.public_key, gen.number, self.vault_id)

    def identity(self) -> tuple[bytes, bytes, int]:
        """The identity keys (data id key, tree id key, chunker seed): what a write-only keyring copies so that
        its chunks have everyone's boundaries and ids. Secrets: never log them."""
        return self._id_key, self._tree_id_key, self.chunker_seed

    def cache_key(self) -> bytes:
        """The root key of this machine's local cache of the vault (vault.cache): from the current generation's
        master key, so only a key that reads the vault reads or forges its cache, and a `vault rekey` starts a
        new cache rather than keeping names sealed under a key that may have leaked."""
        return _derive(self.generation.raw, self.vault_id, fmt.LABEL_CACHE)

    def current_only(self) -> Keyring:
        """This keyring without the older generations (once no stored byte is sealed under them)."""
        gens = {self.current: self.generation.raw}
        return Keyring(self.vault_id, self._id_key, self._tree_id_key, self.chunker_seed, gens, self.current, 0)

    # -- identity --------------------------------------------------------------------------------------------
    def blob_id(self, data: bytes | memoryview, blob_type: int = fmt.BlobType.DATA) -> bytes:
        """Keyed BLAKE3 of a blob's plaintext: the storage cannot confirm a guess of the contents. Each blob
        type has its own key, so a file whose bytes equal a tree's encoding is a different blob."""
        key = self._tree_id_key if blob_type == fmt.BlobType.TREE else self._id_key
        return blake3.blake3(data, key=key).digest()

    # -- serialization (the plaintext a version 2 slot wraps) ------------------------------------------------
    def wrapped_plaintext(self) -> bytes:
        """What a slot wraps: the 32-byte master key (version 1) or the encoded keyring (version 2)."""
        if self.is_legacy:
            return self._gens[0].raw
        gens = {n: g.raw for n, g in self._gens.items()}
        fields = fmt.KeyringFields(self._id_key, self._tree_id_key, self.chunker_seed, self.current, self.flags, gens)
        return fmt.encode_keyring(fields)

    @classmethod
    def decode(cls, buf: bytes, vault_id: bytes, what: str) -> Keyring:
        """Parse an encoded keyring (already authenticated by the slot's AEAD, still bounds-checked).
        Raises IntegrityError."""
        r = fmt.decode_keyring(buf, what)
        return cls(vault_id, r.id_key, r.tree_id_key, r.chunker_seed, r.generations, r.current, r.flags)

    def __repr__(self) -> str:
        return f"Keyring(generations={list(self._gens)}, <hidden>)"


def new_keyring(vault_id: bytes) -> Keyring:
    """A new vault's keyring: generation 0, from a random master key."""
    return Keyring.from_master_key(os.urandom(fmt.KEY_SIZE), vault_id)
