"""AES-256-GCM at the boundary: round trips, every kind of tampering becomes IntegrityError, known answers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from vault import format as fmt
from vault.crypto.aead import Aead
from vault.errors import IntegrityError

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
KEY = bytes(range(32))
AAD = b"vault/test-aad"


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 4096, 1 << 20])
def test_round_trip(size: int) -> None:
    aead = Aead(KEY)
    plaintext = os.urandom(size)
    sealed = aead.seal(plaintext, AAD)
    assert len(sealed) == size + fmt.AEAD_OVERHEAD
    assert aead.open(sealed, AAD, "thing") == plaintext
    assert aead.open(memoryview(sealed), AAD, "thing") == plaintext


def test_seal_uses_a_fresh_nonce_each_time() -> None:
    aead = Aead(KEY)
    nonces = {aead.seal(b"same", AAD)[: fmt.NONCE_SIZE] for _ in range(64)}
    assert len(nonces) == 64


@pytest.mark.parametrize("size", [31, 33])
def test_key_size_is_checked(size: int) -> None:
    with pytest.raises(ValueError):
        Aead(bytes(size))


def test_wrong_aad_is_integrity_error() -> None:
    aead = Aead(KEY)
    sealed = aead.seal(b"payload", AAD)
    with pytest.raises(IntegrityError) as info:
        aead.open(sealed, AAD + b"x", "blob 0123")
    assert info.value.exit_code == 20
    assert "blob 0123" in str(info.value)
    assert not isinstance(info.value.__cause__, InvalidTag)
    assert info.value.__suppress_context__


def test_wrong_key_is_integrity_error() -> None:
    sealed = Aead(KEY).seal(b"payload", AAD)
    with pytest.raises(IntegrityError):
        Aead(bytes(32)).open(sealed, AAD, "thing")


def test_every_flipped_bit_is_detected() -> None:
    aead = Aead(KEY)
    sealed = aead.seal(b"sixteen byte msg", AAD)
    for pos in range(len(sealed)):
        for bit in (0, 3, 7):
            bad = bytearray(sealed)
            bad[pos] ^= 1 << bit
            with pytest.raises(IntegrityError):
                aead.open(bytes(bad), AAD, "thing")


def test_every_truncation_and_extension_is_detected() -> None:
    aead = Aead(KEY)
    sealed = aead.seal(b"some plaintext bytes", AAD)
    for n in range(len(sealed)):
        with pytest.raises(IntegrityError):
            aead.open(sealed[:n], AAD, "thing")
    with pytest.raises(IntegrityError):
        aead.open(sealed + b"\0", AAD, "thing")
    with pytest.raises(IntegrityError):
        aead.open(sealed[1:], AAD, "thing")


def test_message_never_names_the_key() -> None:
    aead = Aead(KEY)
    with pytest.raises(IntegrityError) as info:
        aead.open(bytes(40), AAD, "object <index/abc>")
    text = str(info.value)
    assert KEY.hex() not in text and repr(KEY) not in text


def _vectors() -> list[dict[str, str]]:
    return json.loads((VECTORS / "aead.json").read_text())["vectors"]


@pytest.mark.parametrize("vec", _vectors(), ids=lambda v: v["source"][:40])
def test_known_answer(vec: dict[str, str]) -> None:
    key, nonce, pt, aad, sealed = (
        bytes.fromhex(vec[k]) for k in ("key", "nonce", "plaintext", "aad", "sealed")
    )
    aead = Aead(key)
    assert aead._seal_with(nonce, pt, aad) == sealed
    assert aead.open(sealed, aad, "vector") == pt
