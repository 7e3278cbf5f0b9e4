"""Key slots and the master key: wrapping, unlocking, tampering, rehashing, removal, subkeys."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import argon2
import pytest
from argon2 import PasswordHasher, Type

from vault import format as fmt
from vault.crypto import kdf, keyring, slot_store, slots
from vault.crypto.aead import Aead
from vault.errors import AuthenticationError, ConflictError, IntegrityError, NotFoundError
from vault.storage.base import Handle, Kind
from vault.storage.memory import MemoryBackend

PASSWORD = b"correct horse battery staple"
VAULT_ID = bytes(range(16))
OTHER_VAULT_ID = bytes(range(1, 17))
VECTORS = Path(__file__).resolve().parent.parent / "vectors"


@pytest.fixture
def master() -> keyring.Keyring:
    return keyring.Keyring.from_master_key(bytes(range(32)), VAULT_ID)


@pytest.fixture
def store(cheap_kdf: kdf.KdfParams, master: keyring.Keyring) -> slot_store.KeyStore:
    ks = slot_store.KeyStore(MemoryBackend(), VAULT_ID)
    ks.add(master, PASSWORD, cheap_kdf, slots.POLICY_DEFAULT)
    return ks


def only_slot(ks: slot_store.KeyStore) -> tuple[Handle, dict[str, Any]]:
    [info] = list(ks.backend.list(Kind.KEYS))
    return info.handle, json.loads(ks.backend.load(info.handle))


def rewrite(ks: slot_store.KeyStore, handle: Handle, doc: dict[str, Any]) -> None:
    ks.backend.save(handle, json.dumps(doc).encode())


# -- slots ---------------------------------------------------------------------------------------------------
def test_build_parse_round_trip(cheap_kdf: kdf.KdfParams, master: keyring.Keyring) -> None:
    slot, raw = slots.build_slot(master, VAULT_ID, PASSWORD, cheap_kdf, slots.POLICY_EXPLICIT)
    parsed = slots.parse_slot(raw, slot.slot_id)
    assert parsed == slot
    assert parsed.params == cheap_kdf
    assert parsed.policy == slots.POLICY_EXPLICIT
    assert len(parsed.salt) == fmt.SALT_SIZE
    assert parsed.phc_hash.startswith("$argon2id$")
    # The master key is stored only wrapped; the password only as a one-way hash.
    assert master.generation.raw.hex() not in raw.decode() and PASSWORD.decode() not in raw.decode()
    assert slots.unwrap(parsed, VAULT_ID, PASSWORD).generation.raw == master.generation.raw


def test_parse_slot_checks_its_name(cheap_kdf: kdf.KdfParams, master: keyring.Keyring) -> None:
    _, raw = slots.build_slot(master, VAULT_ID, PASSWORD, cheap_kdf, slots.POLICY_DEFAULT)
    with pytest.raises(IntegrityError):
        slots.parse_slot(raw, "0" * 16)


def test_public_info_holds_no_secret(cheap_kdf: kdf.KdfParams, master: keyring.Keyring) -> None:
    slot, _ = slots.build_slot(master, VAULT_ID, PASSWORD, cheap_kdf, slots.POLICY_DEFAULT)
    info = json.dumps(slot.public_info(master, VAULT_ID))
    assert slot.phc_hash not in info and fmt.b64(slot.wrapped) not in info
    assert json.loads(info)["kdf"] == {"memory_kib": 8192, "time_cost": 1, "parallelism": 1}


def test_the_slot_hides_its_host_and_time_from_the_storage(cheap_kdf: kdf.KdfParams, master: keyring.Keyring) -> None:
    import socket

    slot, raw = slots.build_slot(master, VAULT_ID, PASSWORD, cheap_kdf, slots.POLICY_DEFAULT)
    doc = json.loads(raw)
    assert "host" not in doc and "created" not in doc
    assert socket.gethostname() not in doc.values()
    created, host = slots.parse_slot(raw, slot.slot_id).details(master, VAULT_ID)
    assert host == socket.gethostname() and created.endswith("Z")
    other = keyring.Keyring.from_master_key(b"\x07" * 32, VAULT_ID)
    with pytest.raises(IntegrityError):
        slot.details(other, VAULT_ID)


def test_unlock_with_the_right_password(store: slot_store.KeyStore, master: keyring.Keyring) -> None:
    key, slot = store.unlock(PASSWORD)
    assert key.generation.raw == master.generation.raw
    assert slot.slot_id == only_slot(store)[0].name


@pytest.mark.parametrize("password", [b"Tr0ub4dor&3", PASSWORD + b" ", PASSWORD.upper()])
def test_wrong_password_is_authentication_error(store: slot_store.KeyStore, password: bytes) -> None:
    with pytest.raises(AuthenticationError) as info:
        store.unlock(password)
    assert info.value.exit_code == 12
    assert password.decode() not in str(info.value)


def test_empty_password_is_refused(store: slot_store.KeyStore) -> None:
    with pytest.raises(AuthenticationError):
        store.unlock(b"")


def test_no_slot_at_all_is_authentication_error() -> None:
    with pytest.raises(AuthenticationError):
        slot_store.KeyStore(MemoryBackend(), VAULT_ID).unlock(PASSWORD)


def test_any_of_several_passwords_unlocks(store: slot_store.KeyStore, master: keyring.Keyring) -> None:
    second = store.add(master, b"second password", kdf.current_defaults(), slots.POLICY_DEFAULT)
    key, slot = store.unlock(b"second password")
    assert key.generation.raw == master.generation.raw and slot.slot_id == second.slot_id
    assert store.unlock(PASSWORD)[0].generation.raw == master.generation.raw
    assert {s.slot_id for s in store.slots()} >= {second.slot_id}


@pytest.mark.parametrize("index", [0, 5, fmt.NONCE_SIZE, fmt.NONCE_SIZE + 10, -1])
def test_flipped_byte_in_wrapped_key_is_integrity_error(store: slot_store.KeyStore, index: int) -> None:
    handle, doc = only_slot(store)
    wrapped = bytearray(fmt.unb64(doc["wrapped_key"], "t"))
    wrapped[index] ^= 0x40
    doc["wrapped_key"] = fmt.b64(bytes(wrapped))
    rewrite(store, handle, doc)
    with pytest.raises(IntegrityError) as info:
        store.unlock(PASSWORD)
    assert info.value.exit_code == 20


def test_slot_from_another_vault_does_not_open(cheap_kdf: kdf.KdfParams) -> None:
    other_master = keyring.Keyring.from_master_key(bytes(32), OTHER_VAULT_ID)
    foreign = slot_store.KeyStore(MemoryBackend(), OTHER_VAULT_ID)
    slot = foreign.add(other_master, PASSWORD, cheap_kdf, slots.POLICY_DEFAULT)
    ours = slot_store.KeyStore(MemoryBackend(), VAULT_ID)
    ours.save_slot(foreign.backend.load(Handle(Kind.KEYS, slot.slot_id)), slot.slot_id)
    with pytest.raises(IntegrityError):
        ours.unlock(PASSWORD)
    with pytest.raises(IntegrityError):
        slots.unwrap(slot, VAULT_ID, PASSWORD)


@pytest.mark.parametrize("field", ["salt", "policy", "memory_kib"])
def test_edited_slot_fields_fail_the_wrap(
    store: slot_store.KeyStore, field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wrap's associated data binds salt, policy and parameters: editing any of them is detected."""
    handle, doc = only_slot(store)
    if field == "salt":
        doc["kdf"]["salt"] = fmt.b64(bytes(16))
    elif field == "policy":
        doc["policy"] = slots.POLICY_EXPLICIT
    else:
        # A within-bounds change, with a matching hash so the PHC check passes: the wrap must still fail.
        doc["kdf"]["memory_kib"] = 9 * 1024
        doc["hash"] = slots._hasher(kdf.KdfParams(9 * 1024, 1, 1)).hash(PASSWORD)
    rewrite(store, handle, doc)
    with pytest.raises(IntegrityError):
        store.unlock(PASSWORD)


def test_absurd_kdf_params_fail_before_argon2(store: slot_store.KeyStore, monkeypatch: pytest.MonkeyPatch) -> None:
    handle, doc = only_slot(store)
    doc["kdf"]["memory_kib"] = 1 << 40
    rewrite(store, handle, doc)

    def boom(*a: object, **k: object) -> None:
        pytest.fail("argon2 ran on tampered parameters")

    monkeypatch.setattr(kdf, "derive_key", boom)
    monkeypatch.setattr(slots, "_hasher", boom)
    monkeypatch.setattr(argon2.PasswordHasher, "verify", boom)
    with pytest.raises(IntegrityError) as info:
        store.unlock(PASSWORD)
    assert info.value.exit_code == 20


def test_phc_params_not_matching_slot_params(store: slot_store.KeyStore, monkeypatch: pytest.MonkeyPatch) -> None:
    handle, doc = only_slot(store)
    # A genuine hash of the right password, but made with other (higher) costs than the slot states.
    doc["hash"] = PasswordHasher(time_cost=2, memory_cost=16 * 1024, parallelism=1, type=Type.ID).hash(
        PASSWORD
    )
    rewrite(store, handle, doc)

    def boom(*a: object, **k: object) -> None:
        pytest.fail("argon2 ran for a hash whose parameters differ from the slot's")

    monkeypatch.setattr(argon2.PasswordHasher, "verify", boom)
    monkeypatch.setattr(kdf, "derive_key", boom)
    with pytest.raises(IntegrityError):
        store.unlock(PASSWORD)


@pytest.mark.parametrize(
    "bad_hash",
    [
        "",
        "not a hash",
        "$argon2i$v=19$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNo",
        "$argon2id$v=19$m=8192,t=1,p=1$ééééééééééé$aGFzaGhhc2hoYXNoaGFzaA",
        "$argon2id$v=19$m=٨١٩٢,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNo",
        "$argon2id$v=19$m=8192,t=1,p=1$$",
        "$argon2id$v=19$m=8192,t=1,p=1$!!$!!",
    ],
)
def test_malformed_phc_hash_is_integrity_error(store: slot_store.KeyStore, bad_hash: str) -> None:
    handle, doc = only_slot(store)
    doc["hash"] = bad_hash
    rewrite(store, handle, doc)
    with pytest.raises(IntegrityError):
        store.unlock(PASSWORD)


def test_one_damaged_slot_does_not_lock_out_the_others(store: slot_store.KeyStore, master: keyring.Keyring) -> None:
    store.save_slot(b"{not json", "00" * 8)
    assert store.unlock(PASSWORD)[0].generation.raw == master.generation.raw
    with pytest.raises(AuthenticationError) as info:
        store.unlock(b"wrong")
    assert info.value.hint and "damaged" in info.value.hint


def test_all_slots_damaged_is_integrity_error() -> None:
    ks = slot_store.KeyStore(MemoryBackend(), VAULT_ID)
    ks.save_slot(b"[]", "00" * 8)
    ks.save_slot(b"x" * (fmt.MAX_SLOT_SIZE + 1), "11" * 8)
    with pytest.raises(IntegrityError):
        ks.unlock(PASSWORD)
    with pytest.raises(IntegrityError):
        ks.slots()


# -- rehash --------------------------------------------------------------------------------------------------
STRONGER = kdf.KdfParams(16 * 1024, 1, 1)


def test_rehash_if_weak_rewraps_a_default_slot(
    store: slot_store.KeyStore,
    master: keyring.Keyring,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key, slot = store.unlock(PASSWORD)
    monkeypatch.setattr(kdf, "DEFAULT_PARAMS", STRONGER)
    with caplog.at_level(logging.DEBUG):
        new = store.rehash_if_weak(slot, key, PASSWORD)
    assert new.slot_id == slot.slot_id
    assert new.params == STRONGER and new.policy == slots.POLICY_DEFAULT
    assert new.salt != slot.salt and new.wrapped != slot.wrapped
    [stored] = store.slots()
    assert stored.slot_id == slot.slot_id and stored.params == STRONGER
    key2, slot2 = store.unlock(PASSWORD)
    assert key2.generation.raw == master.generation.raw and slot2.slot_id == slot.slot_id
    assert PASSWORD.decode() not in caplog.text
    # Already strong enough: nothing is rewritten.
    before = store.backend.load(Handle(Kind.KEYS, slot.slot_id))
    assert store.rehash_if_weak(slot2, key2, PASSWORD) is slot2
    assert store.backend.load(Handle(Kind.KEYS, slot.slot_id)) == before


def test_rehash_leaves_an_explicit_slot_alone(
    cheap_kdf: kdf.KdfParams, master: keyring.Keyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    ks = slot_store.KeyStore(MemoryBackend(), VAULT_ID)
    ks.add(master, PASSWORD, cheap_kdf, slots.POLICY_EXPLICIT)
    key, slot = ks.unlock(PASSWORD)
    before = list(ks.backend.list(Kind.KEYS))
    raw_before = ks.backend.load(before[0].handle)
    monkeypatch.setattr(kdf, "DEFAULT_PARAMS", STRONGER)
    assert ks.rehash_if_weak(slot, key, PASSWORD) is slot
    assert ks.backend.load(before[0].handle) == raw_before
    assert ks.slots()[0].params == cheap_kdf


def test_replace_keeps_id_and_policy(store: slot_store.KeyStore, master: keyring.Keyring) -> None:
    key, slot = store.unlock(PASSWORD)
    new = store.replace(slot, key, b"new password", kdf.current_defaults())
    assert new.slot_id == slot.slot_id and new.policy == slot.policy
    with pytest.raises(AuthenticationError):
        store.unlock(PASSWORD)
    assert store.unlock(b"new password")[0].generation.raw == master.generation.raw


# -- removal -------------------------------------------------------------------------------------------------
def test_remove_last_slot_is_conflict(store: slot_store.KeyStore) -> None:
    handle, _ = only_slot(store)
    with pytest.raises(ConflictError) as info:
        store.remove(handle.name)
    assert info.value.exit_code == 40
    assert len(store.slots()) == 1


def test_remove_unknown_slot_is_not_found(store: slot_store.KeyStore) -> None:
    with pytest.raises(NotFoundError) as info:
        store.remove("ff" * 8)
    assert info.value.exit_code == 4


def test_remove_one_of_two(store: slot_store.KeyStore, master: keyring.Keyring) -> None:
    first, _ = only_slot(store)
    store.add(master, b"other", kdf.current_defaults(), slots.POLICY_DEFAULT)
    store.remove(first.name)
    assert len(store.slots()) == 1
    with pytest.raises(AuthenticationError):
        store.unlock(PASSWORD)
    assert store.unlock(b"other")[0].generation.raw == master.generation.raw


# -- the master key and its subkeys --------------------------------------------------------------------------
def test_master_key_repr_hides_the_bytes(master: keyring.Keyring) -> None:
    for text in (repr(master), str(master), f"{master!r}"):
        assert master.generation.raw.hex() not in text and repr(master.generation.raw) not in text
        assert "hidden" in text


def test_master_key_must_be_32_bytes() -> None:
    with pytest.raises(ValueError):
        keyring.Keyring.from_master_key(bytes(31), VAULT_ID)


def test_subkeys_differ_per_label_and_per_vault(master: keyring.Keyring) -> None:
    subkeys = {
        label: keyring._derive(master.generation.raw, VAULT_ID, label)
        for label in (fmt.LABEL_DATA, fmt.LABEL_META, fmt.LABEL_ID, fmt.LABEL_CHUNKER)
    }
    assert len(set(subkeys.values())) == 4
    assert master.generation.raw not in subkeys.values()
    other = keyring.Keyring.from_master_key(master.generation.raw, OTHER_VAULT_ID)
    for label, sub in subkeys.items():
        assert keyring._derive(other.generation.raw, OTHER_VAULT_ID, label) != sub
    assert other.chunker_seed != master.chunker_seed
    assert other.blob_id(b"data") != master.blob_id(b"data")
    # data and meta keys really are different keys
    sealed = master.data.seal(b"x", b"aad")
    with pytest.raises(IntegrityError):
        master.meta.open(sealed, b"aad", "x")
    with pytest.raises(IntegrityError):
        other.data.open(sealed, b"aad", "x")


def test_blob_id_is_keyed(master: keyring.Keyring) -> None:
    other = keyring.Keyring.from_master_key(bytes(32), VAULT_ID)
    data = b"the same chunk"
    assert master.blob_id(data) == master.blob_id(memoryview(data))
    assert len(master.blob_id(data)) == fmt.ID_SIZE
    assert master.blob_id(data) != other.blob_id(data)
    import hashlib

    import blake3

    assert master.blob_id(data) not in (blake3.blake3(data).digest(), hashlib.sha256(data).digest())


def test_chunker_seed_is_odd_and_63_bits(master: keyring.Keyring) -> None:
    assert master.chunker_seed & 1 and 0 < master.chunker_seed < 2**63


def test_subkey_known_answers() -> None:
    v = json.loads((VECTORS / "keys.json").read_text())
    master = keyring.Keyring.from_master_key(bytes.fromhex(v["master_key"]), bytes.fromhex(v["vault_id"]))
    vid = bytes.fromhex(v["vault_id"])
    assert keyring._derive(master.generation.raw, vid, fmt.LABEL_DATA).hex() == v["data_key"]
    assert keyring._derive(master.generation.raw, vid, fmt.LABEL_META).hex() == v["meta_key"]
    assert keyring._derive(master.generation.raw, vid, fmt.LABEL_ID).hex() == v["id_key"]
    assert master.chunker_seed == v["chunker_seed"]
    chunk = bytes.fromhex(v["chunk"])
    blob_id = master.blob_id(chunk)
    assert blob_id.hex() == v["blob_id"]
    aad = fmt.blob_aad(vid, fmt.BlobType.DATA, 0, len(chunk), blob_id)
    assert aad.hex() == v["blob_aad"]
    assert master.data._seal_with(bytes.fromhex(v["blob_nonce"]), chunk, aad).hex() == v["blob_sealed"]
    assert Aead(bytes.fromhex(v["data_key"])).open(bytes.fromhex(v["blob_sealed"]), aad, "v") == chunk
    assert fmt.pack_header_aad(vid, v["pack_name"]).hex() == v["pack_header_aad"]
    prefix = fmt.object_prefix(fmt.ObjectType.INDEX)
    assert fmt.object_aad(prefix, vid, v["object_name"]).hex() == v["object_aad_index"]


def test_new_master_keys_are_random() -> None:
    assert keyring.new_keyring(VAULT_ID).generation.raw != keyring.new_keyring(VAULT_ID).generation.raw


def test_slot_parse_accepts_only_known_policies(cheap_kdf: kdf.KdfParams, master: keyring.Keyring) -> None:
    slot, raw = slots.build_slot(master, VAULT_ID, PASSWORD, cheap_kdf, slots.POLICY_DEFAULT)
    doc = json.loads(raw)
    for bad in ("sometimes", None, 1):
        doc["policy"] = bad
        with pytest.raises(IntegrityError):
            slots.parse_slot(json.dumps(doc).encode(), slot.slot_id)


def test_slot_version_newer_is_unsupported(cheap_kdf: kdf.KdfParams, master: keyring.Keyring) -> None:
    from vault.errors import UnsupportedVersionError

    slot, raw = slots.build_slot(master, VAULT_ID, PASSWORD, cheap_kdf, slots.POLICY_DEFAULT)
    doc = json.loads(raw)
    doc["version"] = fmt.FORMAT_VERSION_MAX + 1
    with pytest.raises(UnsupportedVersionError):
        slots.parse_slot(json.dumps(doc).encode(), slot.slot_id)
    for bad in (True, "1", None, 0):
        doc["version"] = bad
        with pytest.raises(IntegrityError):
            slots.parse_slot(json.dumps(doc).encode(), slot.slot_id)
