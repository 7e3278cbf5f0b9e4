"""The keyring of a write-only key: what adding data needs, and nothing that opens anything stored.

`vault key add --write-only` wraps one of these in a key slot of version 3 (vault.crypto.slots). It holds:

- the vault's X25519 **public key** of the generation current when the key was made (vault.crypto.recipient): a
  write-only put seals its blobs, pack headers, index objects and version records to it, each under a key from a
  fresh ephemeral exchange that the put forgets;
- the **identity keys** (data and tree id keys, chunker seed): its chunks get the boundaries and ids everyone's do,
  so a full key's later put deduplicates against them, and `prune` frees duplicates;
- a random **local secret** of this key alone: the keys of its local record on the machine that runs it
  (vault.repo.local_record), which makes its puts incremental without reading anything from the vault.

It derives the **lock key** (from the data id key, as full keys do: vault.crypto.keyring.lock_aead), so it reads and
honours every lock in a version 4 vault. It holds no generation's master key, hence no data, metadata or cache key
and no private key: every attribute a full keyring would answer with such a key raises NotPermittedError (exit 13)
here instead, so code that reads by mistake fails loudly, never silently. ``repr`` hides the bytes.
"""

from __future__ import annotations

import os
from typing import NoReturn

from vault import format as fmt
from vault.crypto.aead import Aead
from vault.crypto.keyring import BlobSealer, Generation, Keyring, _derive, lock_aead
from vault.crypto.recipient import Recipient
from vault.errors import NotPermittedError


def not_permitted(what: str = "this") -> NoReturn:
    """Raise the one error every refusal of a write-only key is: exit 13, one line."""
    raise NotPermittedError(f"{what} needs a full key: the key in use can only add data (a write-only key)")


class WriteOnlyKeyring(Keyring):
    """A write-only key's keyring (see the module docstring). A :class:`Keyring` for the code that adds data; any
    use of a symmetric key raises NotPermittedError."""

    __slots__ = ("_local_secret", "_public_key")
    write_only = True

    def __init__(
        self,
        vault_id: bytes,
        generation: int,
        public_key: bytes,
        id_key: bytes,
        tree_id_key: bytes,
        chunker_seed: int,
        local_secret: bytes,
    ) -> None:
        # Deliberately not Keyring.__init__: there is no master key to hold.
        self.vault_id = vault_id
        self._id_key = id_key
        self._tree_id_key = tree_id_key
        self.chunker_seed = chunker_seed
        self._gens: dict[int, Generation] = {}
        self.current = generation  # the generation whose public key this key seals to
        self.flags = 0
        self._lock_aead: Aead | None = None
        self._public_key = public_key
        self._local_secret = local_secret

    @classmethod
    def issue(cls, full: Keyring) -> WriteOnlyKeyring:
        """A new write-only keyring from a full one: its current generation's public key, its identity keys, and
        a new random local secret."""
        id_key, tree_id_key, seed = full.identity()
        recipient = full.recipient()
        return cls(full.vault_id, recipient.generation, recipient.public_key, id_key, tree_id_key, seed,
                   os.urandom(fmt.KEY_SIZE))

    # -- what adding data needs ------------------------------------------------------------------------------
    def recipient(self, number: int | None = None) -> Recipient:
        """The public key this key seals to (there is only the one)."""
        return Recipient(self._public_key, self.current, self.vault_id)

    def blob_sealer(self) -> BlobSealer:
        """A put's blob sealer: a fresh ephemeral exchange per call (one per put), its public half in front of
        every blob. Once the put lets go of it, nobody but a full key can open those blobs."""
        epk, aead = self.recipient().sealer(fmt.LABEL_SEALED_BLOB)
        return BlobSealer(aead, epk, fmt.FLAG_SEALED)

    def local_key(self, label: bytes) -> bytes:
        """A key of this write-only key's local record (vault.repo.local_record): only this key derives it."""
        return _derive(self._local_secret, self.vault_id, fmt.LABEL_LOCAL_RECORD + b"/" + label)

    @property
    def local_id(self) -> str:
        """A name for this key's local record, the same on every run and telling nothing about the secret."""
        return _derive(self._local_secret, self.vault_id, fmt.LABEL_LOCAL_RECORD + b"/name", 16).hex()

    @property
    def lock_aead(self) -> Aead:
        if self._lock_aead is None:
            self._lock_aead = lock_aead(self._id_key, self.vault_id)
        return self._lock_aead

    # -- everything else needs a master key ------------------------------------------------------------------
    @property
    def generation(self) -> Generation:
        not_permitted("reading the vault")

    @property
    def data(self) -> Aead:
        not_permitted("reading the vault")

    @property
    def meta(self) -> Aead:
        not_permitted("reading the vault")

    @property
    def generations(self) -> tuple[int, ...]:
        return ()

    def get(self, number: int, what: str) -> Generation:
        not_permitted(f"opening {what}")

    @property
    def reencrypt_pending(self) -> bool:
        return False

    @property
    def is_legacy(self) -> bool:
        return False

    def rotated(self, reencrypt: bool) -> Keyring:
        not_permitted("`vault rekey`")

    def cache_key(self) -> bytes:
        not_permitted("the local cache of the vault's metadata")

    def current_only(self) -> Keyring:
        not_permitted("`vault rekey`")

    def identity(self) -> tuple[bytes, bytes, int]:
        not_permitted("issuing keys")

    # -- serialization (what a version 3 slot wraps) ---------------------------------------------------------
    def wrapped_plaintext(self) -> bytes:
        return fmt.encode_write_only_keyring(
            fmt.WriteOnlyFields(self.current, self._public_key, self._id_key, self._tree_id_key, self.chunker_seed,
                                self._local_secret)
        )

    @classmethod
    def decode(cls, buf: bytes, vault_id: bytes, what: str) -> WriteOnlyKeyring:
        """Parse a write-only keyring (authenticated by the slot's AEAD, still checked). IntegrityError."""
        r = fmt.decode_write_only_keyring(buf, what)
        return cls(vault_id, r.generation, r.public_key, r.id_key, r.tree_id_key, r.chunker_seed, r.local_secret)

    def __repr__(self) -> str:
        return f"WriteOnlyKeyring(generation={self.current}, <hidden>)"
