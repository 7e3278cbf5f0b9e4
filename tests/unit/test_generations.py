"""Key generations (format 2, `vault rekey`): the keyring a version 2 slot wraps, and packs and objects sealed
under a generation other than 0."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault import format as fmt
from vault.crypto import kdf, keyring, slot_store, slots
from vault.errors import IntegrityError, UnknownGenerationError, UnsupportedVersionError
from vault.repo.blobs import open_blob, reseal, seal_blob
from vault.repo.index import load_index, write_index
from vault.repo.objects import open_object, seal_object
from vault.repo.packs import PackBuilder, read_pack_header
from vault.storage.base import Handle, Kind
from vault.storage.memory import MemoryBackend

VID = bytes(range(16))
PASSWORD = b"generations"


@pytest.fixture
def ring() -> keyring.Keyring:
    return keyring.Keyring.from_master_key(bytes(range(32)), VID)


def test_a_never_rekeyed_keyring_is_legacy_and_wraps_its_master_key(ring: keyring.Keyring) -> None:
    assert ring.is_legacy and ring.current == 0 and ring.generations == (0,)
    assert ring.wrapped_plaintext() == bytes(range(32))


def test_rotation_keeps_identity_and_older_generations(ring: keyring.Keyring) -> None:
    new = ring.rotated(reencrypt=False)
    assert new.current == 1 and new.generations == (0, 1) and not new.is_legacy and not new.reencrypt_pending
    assert new.blob_id(b"chunk") == ring.blob_id(b"chunk") and new.chunker_seed == ring.chunker_seed
    assert new.get(0, "x").data.open(ring.data.seal(b"old", b"a"), b"a", "x") == b"old"
    with pytest.raises(IntegrityError):  # a new, independent key
        ring.data.open(new.data.seal(b"new", b"a"), b"a", "x")
    pending = new.rotated(reencrypt=True)
    assert pending.current == 2 and pending.reencrypt_pending
    done = pending.current_only()
    assert done.generations == (2,) and not done.reencrypt_pending and not done.is_legacy
    with pytest.raises(IntegrityError, match="no longer uses") as info:  # retired: an old object put back
        done.get(0, "pack x")
    assert not isinstance(info.value, UnknownGenerationError)
    with pytest.raises(UnknownGenerationError, match="generation 3"):  # newer than this key: not damage
        done.get(3, "pack x")


def test_keyring_round_trips_and_hides_its_bytes(ring: keyring.Keyring) -> None:
    new = ring.rotated(reencrypt=True).rotated(reencrypt=False)
    raw = new.wrapped_plaintext()
    back = keyring.Keyring.decode(raw, VID, "slot")
    assert back.wrapped_plaintext() == raw and back.generations == (0, 1, 2) and back.reencrypt_pending
    assert all(back.get(n, "x").raw == new.get(n, "x").raw for n in (0, 1, 2))
    assert back.blob_id(b"c") == ring.blob_id(b"c") and back.chunker_seed == ring.chunker_seed
    assert raw.hex() not in repr(new) and "hidden" in repr(new) and "hidden" in repr(new.generation)


def test_every_truncation_or_extension_of_a_keyring_is_refused(ring: keyring.Keyring) -> None:
    raw = ring.rotated(reencrypt=False).wrapped_plaintext()
    for n in range(len(raw)):
        with pytest.raises(IntegrityError):
            keyring.Keyring.decode(raw[:n], VID, "slot")
    with pytest.raises(IntegrityError):
        keyring.Keyring.decode(raw + bytes(36), VID, "slot")


def _edited(raw: bytes, offset: int, value: bytes) -> bytes:
    return raw[:offset] + value + raw[offset + len(value) :]


def test_malformed_keyrings_are_refused(ring: keyring.Keyring) -> None:
    raw = ring.rotated(reencrypt=False).wrapped_plaintext()
    head = 4 + 32 + 32
    cases = [
        _edited(raw, 0, b"XKR\x01"),  # magic
        _edited(raw, head, struct.pack("<Q", 2)),  # even chunker seed
        _edited(raw, head + 8, struct.pack("<I", 9)),  # current generation not held
        _edited(raw, head + 12, b"\x80"),  # unknown flag
        _edited(raw, head + 13, b"\x00"),  # no generations
        _edited(raw, head + 14 + 36, struct.pack("<I", 0)),  # generation 0 twice
    ]
    for bad in cases:
        with pytest.raises(IntegrityError):
            keyring.Keyring.decode(bad, VID, "slot")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=fmt.MAX_KEYRING_SIZE + 8))
def test_keyring_decode_of_arbitrary_bytes_is_a_keyring_or_integrity_error(data: bytes) -> None:
    with contextlib.suppress(IntegrityError):  # anything else (ValueError, struct.error) fails the test
        keyring.Keyring.decode(data, VID, "slot")


def test_version_2_slots_wrap_the_keyring_and_unlock(ring: keyring.Keyring, cheap_kdf: kdf.KdfParams) -> None:
    backend = MemoryBackend()
    store = slot_store.KeyStore(backend, VID)
    legacy = store.add(ring, PASSWORD, cheap_kdf, slots.POLICY_DEFAULT)
    assert legacy.version == 1
    rotated = ring.rotated(reencrypt=False)
    slot = store.rewrap(legacy, rotated, PASSWORD)
    assert slot.version == 2 and slot.slot_id == legacy.slot_id
    opened, opened_slot = store.unlock(PASSWORD)
    assert opened.generations == (0, 1) and opened.current == 1 and opened_slot.version == 2
    assert slot.details(opened, VID)[1]  # details sealed under generation 1
    # A version 2 slot relabelled as version 1 (or the reverse) fails to unwrap: the version is in the AAD.
    raw = backend.load(Handle(Kind.KEYS, slot.slot_id))
    with pytest.raises(IntegrityError):
        slots.unwrap(slots.parse_slot(raw.replace(b'"version":2', b'"version":1'), slot.slot_id), VID, PASSWORD)


def test_packs_and_objects_under_a_later_generation(ring: keyring.Keyring) -> None:
    new = ring.rotated(reencrypt=False)
    backend = MemoryBackend()
    pb = PackBuilder(new.current)
    data = b"sealed under generation one" * 100
    pb.add(seal_blob(new, VID, fmt.BlobType.DATA, new.blob_id(data), data, 3))
    raw = pb.finish(new, VID)
    assert raw[:9] == b"VLTP\x02\x01\x00\x00\x00"
    handle = Handle(Kind.DATA, pb.name)
    backend.save(handle, raw)
    header, _ = read_pack_header(backend, new, VID, pb.name)
    assert header.generation == 1 and header.entries[0].offset == 9
    e = header.entries[0]
    assert open_blob(new, VID, e, raw[e.offset : e.offset + e.length], "b", 1) == data
    with pytest.raises(UnknownGenerationError):
        read_pack_header(backend, ring, VID, pb.name)
    for bad_generation in (2, 7):  # the preamble's generation is bound into the header's AAD
        backend.save(handle, _edited(raw, 5, struct.pack("<I", bad_generation)))
        # Refused either way (exit 20): generation 2 is held and fails authentication; generation 7 is newer than
        # any the keyring holds, which it can't tell from a later rekey's data (UnknownGenerationError, not damage).
        with pytest.raises((IntegrityError, UnknownGenerationError)):
            read_pack_header(backend, new.rotated(reencrypt=False).rotated(reencrypt=False), VID, pb.name)
    backend.save(handle, _edited(raw, 4, b"\x01"))  # relabelled as a version 1 pack
    with pytest.raises(IntegrityError):
        read_pack_header(backend, new, VID, pb.name)

    # Reseal: generation 0 -> 1, same payload; a blob already current is copied as it is.
    old = seal_blob(ring, VID, fmt.BlobType.DATA, ring.blob_id(data), data, 3)
    entry = fmt.BlobEntry(old.blob_id, old.blob_type, old.flags, 0, len(old.sealed), old.raw_length)
    moved = reseal(new, VID, entry, old.sealed, 0)
    assert moved.sealed != old.sealed and open_blob(new, VID, entry, moved.sealed, "b", 1) == data
    assert reseal(new, VID, entry, moved.sealed, 1).sealed == moved.sealed

    # Objects: the generation is in the header and the AAD; index objects carry each pack's generation.
    obj = Handle(Kind.INDEX, "ab" * 32)
    sealed = seal_object(new, VID, obj, fmt.ObjectType.INDEX, b"payload")
    assert sealed[:10] == b"VLTO\x02\x01\x01\x00\x00\x00"
    assert open_object(new, VID, obj, fmt.ObjectType.INDEX, sealed) == b"payload"
    with pytest.raises(IntegrityError):
        open_object(new, VID, obj, fmt.ObjectType.INDEX, _edited(sealed, 6, struct.pack("<I", 0)))
    with pytest.raises(UnsupportedVersionError):
        open_object(new, VID, obj, fmt.ObjectType.INDEX, _edited(sealed, 4, bytes([fmt.FORMAT_VERSION_MAX + 1])))
    index_backend = MemoryBackend()
    packs = [fmt.IndexedPack(b"\x01" * 32, 0, [entry]), fmt.IndexedPack(pb.pack_id, 1, [e])]
    write_index(index_backend, new, VID, packs)
    loaded = load_index(index_backend, new, VID)
    assert loaded.generation_of(b"\x01" * 32) == 0 and loaded.generation_of(pb.pack_id) == 1
    # The same blob under two generations resolves to the later copy.
    loc = loaded.get(e.blob_id)
    assert loc is not None and loc.generation == 1 and loc.pack_id == pb.pack_id
    with pytest.raises(UnknownGenerationError):
        load_index(index_backend, ring, VID, on_error=lambda h, exc: None)  # never skipped as damage


def test_version_2_layouts_known_answers() -> None:
    """Pinned bytes of the version 2 framing (the version 1 ones are in tests/vectors/keys.json)."""
    assert fmt.pack_header_aad(VID, "cd" * 32, 3).hex() == (
        b"vault/pack-header".hex() + "02" + VID.hex() + "03000000" + ("cd" * 32).encode().hex()
    )
    prefix = fmt.object_prefix(fmt.ObjectType.VERSION, 258)
    assert prefix == b"VLTO\x02\x02\x02\x01\x00\x00"
    assert fmt.object_aad(prefix, VID, "ef" * 32) == b"vault/object" + prefix + VID + b"ef" * 32


def test_a_repository_notices_its_slot_was_rewrapped_after_it_unlocked(cheap_kdf: kdf.KdfParams) -> None:
    """The CLI unlocks, then locks; `slot_changed` tells it a `rekey` ran in between (it then unlocks again)."""
    from vault.repo.repository import Repository

    backend = MemoryBackend()
    Repository.create(backend, PASSWORD, cheap_kdf)
    early = Repository.open(backend, PASSWORD, rehash=False)
    assert not early.slot_changed()
    other = Repository.open(backend, PASSWORD, rehash=False)
    other.keys.rewrap(other.slot, other.key.rotated(reencrypt=False), PASSWORD)
    assert early.slot_changed()
    assert Repository.open(backend, PASSWORD, rehash=False).key.current == 1
    backend.remove(Handle(Kind.KEYS, early.slot.slot_id))
    assert early.slot_changed()
