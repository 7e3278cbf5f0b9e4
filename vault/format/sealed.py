"""Units sealed to the vault's X25519 public key (format version 4, write-only keys): how their key is derived.

A write-only key holds a generation's public key, never a symmetric key that opens anything stored. What it writes
is sealed like an age X25519 recipient stanza, with the file key replaced by the key the exchange derives:

    e, epk = a fresh X25519 key pair (random; the private half is forgotten when the unit is written)
    shared = X25519(e, pk_g)                       (pk_g: the vault's public key of generation g)
    key    = HKDF-SHA-256(ikm = shared, salt = epk | pk_g, info = label | 0x00 | vault id | name, length 32)
    unit   = epk (32) | nonce (12) | AES-256-GCM_key(plaintext, aad) | tag (16)

A full key, which holds generation g's master key, derives the private key sk_g from it (LABEL_X25519) and computes
the same ``shared = X25519(sk_g, epk)``. ``label`` says what the unit is (a put's blobs, a pack header, an object),
``name`` which one (an object's name; empty for blobs, which share their put's key and bind their id in the AAD),
so a key derived for one unit opens no other. The AAD of each unit is that of the symmetric layout it replaces
(docs/format.md). This module holds the layout only; vault.crypto.recipient does the arithmetic.
"""

from __future__ import annotations

from vault.errors import IntegrityError
from vault.format.constants import AEAD_OVERHEAD, PUBLIC_KEY_SIZE

SEALED_OVERHEAD = PUBLIC_KEY_SIZE + AEAD_OVERHEAD


def sealed_key_salt(ephemeral_public: bytes, public_key: bytes) -> bytes:
    """HKDF's salt: the ephemeral share, then the recipient (age's X25519 stanza binds both the same way)."""
    return ephemeral_public + public_key


def sealed_key_info(label: bytes, vault_id: bytes, name: str) -> bytes:
    """HKDF's info: what the unit is, the vault, and (for objects and pack headers) the object's name."""
    return label + b"\0" + vault_id + name.encode("ascii")


def split_sealed(unit: bytes | memoryview, what: str) -> tuple[bytes, memoryview]:
    """``(ephemeral public key, nonce | ciphertext | tag)`` of a sealed unit. IntegrityError when too short."""
    mv = memoryview(unit)
    if len(mv) < SEALED_OVERHEAD:
        raise IntegrityError(f"{what} is truncated")
    return bytes(mv[:PUBLIC_KEY_SIZE]), mv[PUBLIC_KEY_SIZE:]
