"""Authenticated encryption of every stored byte: AES-256-GCM with a random 96-bit nonce per message.

Layout of a sealed message: ``nonce(12) | ciphertext | tag(16)``. Random nonces are safe under one key for
far more than 2**32 messages at a 2**-32 collision risk (NIST SP 800-38D); a vault writes one message per
blob, pack header and metadata object, and each purpose has its own subkey (vault.crypto.keyring), so a vault
would need billions of blobs under one key before that bound matters. cryptography's AESGCM releases the GIL,
so worker threads seal in parallel.

``InvalidTag`` never escapes: it becomes :class:`IntegrityError` at this boundary (as Fernet turns
``InvalidSignature`` into ``InvalidToken``), with a message naming the object, never the key.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.errors import IntegrityError
from vault.format import AEAD_OVERHEAD, KEY_SIZE, NONCE_SIZE


class Aead:
    """One AES-256-GCM key. Thread-safe: AESGCM objects hold no per-call state."""

    __slots__ = ("_cipher",)

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError("AEAD keys are 32 bytes")
        self._cipher = AESGCM(key)

    def seal(self, plaintext: bytes | memoryview, aad: bytes, prefix: bytes = b"") -> bytes:
        """Encrypt with a fresh random nonce; returns ``prefix | nonce | ciphertext | tag`` (``prefix``: bytes that
        belong in front, such as a sealed unit's ephemeral key, joined in the one copy the nonce costs anyway)."""
        return self._seal_with(os.urandom(NONCE_SIZE), plaintext, aad, prefix)

    def _seal_with(self, nonce: bytes, plaintext: bytes | memoryview, aad: bytes, prefix: bytes = b"") -> bytes:
        # A seam for known-answer tests (Fernet's _encrypt_from_parts): production code always passes urandom.
        return (prefix + nonce) + self._cipher.encrypt(nonce, plaintext, aad)

    def open(self, sealed: bytes | memoryview, aad: bytes, what: str) -> bytes:
        """Authenticate and decrypt. Raises IntegrityError when the bytes or the AAD were altered."""
        if len(sealed) < AEAD_OVERHEAD:
            raise IntegrityError(f"{what} is truncated")
        mv = memoryview(sealed)
        try:
            return self._cipher.decrypt(mv[:NONCE_SIZE], mv[NONCE_SIZE:], aad)
        except InvalidTag:
            raise IntegrityError(
                f"{what} failed authentication; it may be corrupted or tampered with"
            ) from None
