"""Sealing to the vault's X25519 public key, and opening with its private key (format version 4).

A write-only key holds a :class:`Recipient` (a generation's public key): every unit it writes gets a fresh ephemeral
key pair, and the AES-256-GCM key of the unit comes from the exchange (vault.format.sealed has the layout; age's
X25519 recipient stanza is the model). The ephemeral private key lives only while the unit, or for blobs the put,
is being written, so the writer can't open afterwards anything it wrote. A full key holds a :class:`RecipientKey`
for each generation (its private key derives from the generation's master key: vault.crypto.keyring) and opens
what any write-only key of that generation sealed.

X25519 with cryptography's primitives; an exchange that yields the all-zero secret (a low-order point planted in
the storage) raises ValueError there and IntegrityError here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault import format as fmt
from vault.crypto.aead import Aead
from vault.errors import IntegrityError

# Blobs of one put share one ephemeral key, so a reader derives their key once per put it meets; this many are
# remembered per generation (a restore of a tree stored by many write-only puts meets many).
_OPENERS_KEPT = 1024


def _unit_key(shared: bytes, ephemeral: bytes, public: bytes, label: bytes, vault_id: bytes, name: str) -> bytes:
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=fmt.KEY_SIZE,
        salt=fmt.sealed_key_salt(ephemeral, public),
        info=fmt.sealed_key_info(label, vault_id, name),
    )
    return hkdf.derive(shared)


class Recipient:
    """The public key of one key generation, which write-only keys seal to. Holds no secret."""

    __slots__ = ("generation", "public_key", "vault_id")

    def __init__(self, public_key: bytes, generation: int, vault_id: bytes) -> None:
        if len(public_key) != fmt.PUBLIC_KEY_SIZE:
            raise ValueError("X25519 public keys are 32 bytes")
        self.public_key = public_key
        self.generation = generation
        self.vault_id = vault_id

    def sealer(self, label: bytes, name: str = "") -> tuple[bytes, Aead]:
        """A fresh ephemeral exchange: ``(ephemeral public key, the AEAD of the unit)``. The ephemeral private
        key is dropped here; whoever keeps the returned AEAD can seal (and open) under it until it lets go."""
        ephemeral = X25519PrivateKey.generate()
        epk = ephemeral.public_key().public_bytes_raw()
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(self.public_key))
        return epk, Aead(_unit_key(shared, epk, self.public_key, label, self.vault_id, name))

    def seal(self, label: bytes, name: str, plaintext: bytes | memoryview, aad: bytes) -> bytes:
        """One unit under a key of its own: ``ephemeral public key | nonce | ciphertext | tag``."""
        epk, aead = self.sealer(label, name)
        return aead.seal(plaintext, aad, epk)


class RecipientKey:
    """The private key of one key generation: opens what was sealed to its public key. ``repr`` hides it.
    Thread-safe."""

    __slots__ = ("_lock", "_openers", "_private", "public_key", "vault_id")

    def __init__(self, private: bytes, vault_id: bytes) -> None:
        self._private = X25519PrivateKey.from_private_bytes(private)
        self.public_key = self._private.public_key().public_bytes_raw()
        self.vault_id = vault_id
        self._openers: OrderedDict[tuple[bytes, bytes, str], Aead] = OrderedDict()
        self._lock = threading.Lock()

    def opener(self, ephemeral: bytes, label: bytes, name: str, what: str) -> Aead:
        """The AEAD a unit sealed with ``ephemeral`` was sealed under. IntegrityError for a public key that yields
        no shared secret (a planted low-order point)."""
        cache_key = (ephemeral, label, name)
        with self._lock:
            aead = self._openers.get(cache_key)
            if aead is not None:
                self._openers.move_to_end(cache_key)
                return aead
        try:
            shared = self._private.exchange(X25519PublicKey.from_public_bytes(ephemeral))
        except ValueError:
            raise IntegrityError(f"{what} names an invalid ephemeral key; it was altered") from None
        aead = Aead(_unit_key(shared, ephemeral, self.public_key, label, self.vault_id, name))
        if not name:  # blobs share their put's key: worth remembering; objects and headers are opened once
            with self._lock:
                self._openers[cache_key] = aead
                while len(self._openers) > _OPENERS_KEPT:
                    self._openers.popitem(last=False)
        return aead

    def open(self, label: bytes, name: str, unit: bytes | memoryview, aad: bytes, what: str) -> bytes:
        """Authenticate and decrypt one sealed unit (``ephemeral public key | nonce | ciphertext | tag``).
        IntegrityError."""
        ephemeral, sealed = fmt.split_sealed(unit, what)
        return self.opener(ephemeral, label, name, what).open(sealed, aad, what)

    def __repr__(self) -> str:
        return "RecipientKey(<hidden>)"
