"""Argon2id parameters: bounds for new ones, a ceiling for stored ones, enforced before argon2 ever runs."""

from __future__ import annotations

import json
from typing import Any

import argon2
import argon2.low_level
import pytest

from vault import format as fmt
from vault.crypto import kdf, keyring, slot_store, slots
from vault.errors import IntegrityError, UsageError
from vault.storage.base import Handle, Kind
from vault.storage.memory import MemoryBackend

MIB = 1024
PASSWORD = b"correct horse battery staple"


def params_doc(**over: Any) -> dict[str, Any]:
    doc = kdf.KdfParams(8 * MIB, 1, 1).to_json()
    doc.update(over)
    return doc


# -- validate_new: what a user may ask for at init ---------------------------------------------------------
def test_validate_new_accepts_defaults_without_warning() -> None:
    assert kdf.validate_new(kdf.KdfParams(64 * MIB, 3, 4)) == []
    assert kdf.validate_new(kdf.KdfParams(19 * MIB, 2, 1)) == []


def test_validate_new_minimum_memory_is_8_mib() -> None:
    assert kdf.validate_new(kdf.KdfParams(8 * MIB, 1, 1))  # accepted, with a warning
    with pytest.raises(UsageError) as info:
        kdf.validate_new(kdf.KdfParams(8 * MIB - 1, 1, 1))
    assert info.value.exit_code == 2


@pytest.mark.parametrize("memory", [8 * MIB, 12 * MIB, 19 * MIB - 1])
def test_validate_new_warns_below_owasp_minimum(memory: int) -> None:
    warnings = kdf.validate_new(kdf.KdfParams(memory, 1, 1))
    assert len(warnings) == 1 and "19 MiB" in warnings[0]


@pytest.mark.parametrize(
    "params",
    [
        kdf.KdfParams(kdf.MAX_MEMORY_KIB + 1, 1, 1),
        kdf.KdfParams(64 * MIB, 0, 1),
        kdf.KdfParams(64 * MIB, kdf.MAX_TIME_COST + 1, 1),
        kdf.KdfParams(64 * MIB, 1, 0),
        kdf.KdfParams(64 * MIB, 1, kdf.MAX_PARALLELISM + 1),
        kdf.KdfParams(0, 1, 1),
        kdf.KdfParams(-1, 1, 1),
    ],
)
def test_validate_new_refuses_out_of_range(params: kdf.KdfParams) -> None:
    with pytest.raises(UsageError):
        kdf.validate_new(params)


def test_validate_new_accepts_the_ceilings() -> None:
    kdf.validate_new(kdf.KdfParams(kdf.MAX_MEMORY_KIB, kdf.MAX_TIME_COST, kdf.MAX_PARALLELISM))


# -- decode_kdf_params: parameters read from storage ---------------------------------------------------------
def test_check_untrusted_round_trips_to_json() -> None:
    p = kdf.KdfParams(64 * MIB, 3, 4)
    assert fmt.decode_kdf_params(p.to_json(), "slot") == p


@pytest.mark.parametrize(
    "over",
    [
        {"memory_kib": 64 * 1024 * 1024},  # 64 GiB
        {"memory_kib": 2**62},
        {"memory_kib": kdf.MAX_MEMORY_KIB + 1},
        {"memory_kib": 8 * MIB - 1},
        {"memory_kib": 0},
        {"memory_kib": -8 * MIB},
        {"time_cost": 10**9},
        {"time_cost": kdf.MAX_TIME_COST + 1},
        {"time_cost": 0},
        {"time_cost": -1},
        {"parallelism": 2**24},
        {"parallelism": kdf.MAX_PARALLELISM + 1},
        {"parallelism": 0},
    ],
)
def test_check_untrusted_refuses_absurd_values(over: dict[str, Any]) -> None:
    with pytest.raises(IntegrityError) as info:
        fmt.decode_kdf_params(params_doc(**over), "key slot x")
    assert info.value.exit_code == 20


@pytest.mark.parametrize(
    "over",
    [
        {"memory_kib": True},
        {"time_cost": True},
        {"parallelism": True},
        {"parallelism": False},
        {"memory_kib": "8192"},
        {"time_cost": "1"},
        {"memory_kib": 8192.0},
        {"time_cost": None},
        {"parallelism": [1]},
        {"memory_kib": {"v": 1}},
    ],
)
def test_check_untrusted_refuses_wrong_types(over: dict[str, Any]) -> None:
    with pytest.raises(IntegrityError):
        fmt.decode_kdf_params(params_doc(**over), "key slot x")


@pytest.mark.parametrize(
    "doc",
    [
        params_doc(algorithm="argon2i"),
        params_doc(algorithm="scrypt"),
        params_doc(algorithm=None),
        params_doc(version=16),
        params_doc(version="19"),
        {k: v for k, v in params_doc().items() if k != "algorithm"},
        {k: v for k, v in params_doc().items() if k != "memory_kib"},
        None,
        [],
        "argon2id",
        7,
    ],
)
def test_check_untrusted_refuses_unknown_algorithms(doc: Any) -> None:
    with pytest.raises(IntegrityError):
        fmt.decode_kdf_params(doc, "key slot x")


def test_weaker_than() -> None:
    base = kdf.KdfParams(16 * MIB, 2, 2)
    assert not base.weaker_than(base)
    assert kdf.KdfParams(8 * MIB, 2, 2).weaker_than(base)
    assert kdf.KdfParams(16 * MIB, 1, 2).weaker_than(base)
    assert kdf.KdfParams(16 * MIB, 2, 1).weaker_than(base)
    assert not kdf.KdfParams(32 * MIB, 3, 4).weaker_than(base)


def test_derive_key_is_deterministic_and_salted() -> None:
    p = kdf.KdfParams(8 * MIB, 1, 1)
    salt = bytes(16)
    k1 = kdf.derive_key(PASSWORD, salt, p)
    assert len(k1) == fmt.KEY_SIZE
    assert kdf.derive_key(PASSWORD, salt, p) == k1
    assert kdf.derive_key(PASSWORD, b"\1" * 16, p) != k1
    assert kdf.derive_key(PASSWORD + b"!", salt, p) != k1
    assert kdf.derive_key(PASSWORD, salt, kdf.KdfParams(8 * MIB, 2, 1)) != k1


def test_unb64() -> None:
    assert fmt.unb64(fmt.b64(b"\0" * 16), "x", 16) == b"\0" * 16
    for bad in ["!!!!", "AAA", 5, None, "A" * 5000, "ÄÄÄÄ"]:
        with pytest.raises(IntegrityError):
            fmt.unb64(bad, "x")
    with pytest.raises(IntegrityError):
        fmt.unb64(fmt.b64(b"\0" * 15), "x", 16)


# -- argon2 never runs for refused parameters ----------------------------------------------------------------
@pytest.fixture(scope="module")
def slot() -> tuple[bytes, bytes]:
    """A valid slot (built with argon2 before it is forbidden) and its vault id."""
    vault_id = bytes(range(16))
    master = keyring.Keyring.from_master_key(bytes(32), vault_id)
    _, raw = slots.build_slot(master, vault_id, PASSWORD, kdf.KdfParams(8 * MIB, 1, 1), slots.POLICY_DEFAULT)
    return raw, vault_id


@pytest.fixture
def no_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        pytest.fail("argon2 ran for parameters that should have been refused")

    monkeypatch.setattr(kdf, "derive_key", boom)
    monkeypatch.setattr(kdf, "hash_secret_raw", boom)
    monkeypatch.setattr(argon2.low_level, "hash_secret_raw", boom)
    monkeypatch.setattr(argon2.low_level, "verify_secret", boom)
    monkeypatch.setattr(argon2.PasswordHasher, "verify", boom)
    monkeypatch.setattr(argon2.PasswordHasher, "hash", boom)
    monkeypatch.setattr(slots, "_hasher", boom)


@pytest.mark.parametrize(
    "over",
    [
        {"memory_kib": 64 * 1024 * 1024},
        {"time_cost": 1000},
        {"parallelism": 1 << 20},
        {"memory_kib": True},
        {"time_cost": "3"},
        {"algorithm": "argon2d"},
    ],
)
def test_refused_parameters_never_reach_argon2(
    over: dict[str, Any], slot: tuple[bytes, bytes], no_argon2: None
) -> None:
    slot_bytes, vault_id = slot
    backend = MemoryBackend()
    doc = json.loads(slot_bytes)
    doc["kdf"].update(over)
    backend.save(Handle(Kind.KEYS, doc["id"]), json.dumps(doc).encode())
    with pytest.raises(IntegrityError):
        slots.parse_slot(json.dumps(doc).encode(), doc["id"])
    with pytest.raises(IntegrityError):
        slot_store.KeyStore(backend, vault_id).unlock(PASSWORD)


def test_the_argon2_guard_bites(slot: tuple[bytes, bytes], no_argon2: None) -> None:
    """Sanity check of the fixture above: an untampered slot does reach argon2, and the guard notices."""
    slot_bytes, vault_id = slot
    backend = MemoryBackend()
    backend.save(Handle(Kind.KEYS, json.loads(slot_bytes)["id"]), slot_bytes)
    with pytest.raises(pytest.fail.Exception):
        slot_store.KeyStore(backend, vault_id).unlock(PASSWORD)
