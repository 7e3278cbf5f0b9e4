"""Write-only keys inside (format version 4): what the slot holds, what it can open (nothing stored), the sealed
layouts and their parsers, and the numbers readers give unnumbered versions."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault import format as fmt
from vault.crypto import kdf, slots
from vault.crypto.aead import Aead
from vault.crypto.keyring import Keyring
from vault.crypto.write_only import WriteOnlyKeyring
from vault.errors import IntegrityError, NotPermittedError, UnknownGenerationError
from vault.ops.write_only import add_write_only_key
from vault.repo.catalog import VersionRecord
from vault.repo.numbering import numbered
from vault.repo.objects import open_object, seal_object
from vault.repo.packs import read_pack_header
from vault.session import create_vault, open_session
from vault.storage import Handle, Kind, open_backend

FULL, WRITE_ONLY = b"the full password", b"the write-only password"
LABELS = [getattr(fmt, n) for n in dir(fmt) if n.startswith("LABEL_")]


@pytest.fixture
def vault_with_both(tmp_path: Path, cheap_kdf: kdf.KdfParams) -> Path:
    """A vault with data stored by a full key and by a write-only key (two puts of each, a segment-free catalog),
    and no lock left."""
    where = tmp_path / "vault"
    create_vault(where, password=FULL, kdf_params=cheap_kdf)
    src = tmp_path / "src"
    (src / "tree").mkdir(parents=True)
    (src / "tree" / "a.txt").write_bytes(b"full key data " * 5000)
    with open_session(where, password=FULL, lock="exclusive", cache=tmp_path / "cache") as s:
        s.put(src / "tree")
        add_write_only_key(s.repo, WRITE_ONLY, cheap_kdf, slots.POLICY_DEFAULT, s.lock.refresh if s.lock else None)
    (src / "wo").mkdir()
    (src / "wo" / "secret.txt").write_bytes(b"what the write-only key stored " * 4000)
    for step in range(2):
        (src / "wo" / f"more{step}.bin").write_bytes(bytes([step]) * 300_000)
        with open_session(where, password=WRITE_ONLY, lock="shared", write_only_ok=True,
                          cache=tmp_path / "wocache") as s:
            assert s.repo.write_only
            s.put(src / "wo")
    return where


def _hkdf(key: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(key)


def _candidates(plain: bytes, vault_id: bytes) -> list[bytes]:
    """Every 32 bytes the unwrapped write-only keyring holds (at every offset), and every key derivable from
    them with any label of the format (and the local record's)."""
    windows = {plain[i : i + 32] for i in range(len(plain) - 31)}
    derived = {_hkdf(w, vault_id, label) for w in windows for label in LABELS}
    derived |= {_hkdf(w, vault_id, fmt.LABEL_LOCAL_RECORD + b"/" + x) for w in windows for x in (b"mac", b"seal")}
    return sorted(windows | derived)


def _units(where: Path, full: Keyring) -> list[tuple[str, bytes, bytes, bytes, str, bool]]:
    """(what, sealed bytes, aad, label, name, sealed-to-public-key) of every encrypted unit in the vault: pack
    headers and blobs, index objects, version records, key slots' wrapped keys and details. Each is opened with
    the full key here, which proves the AAD is right."""
    backend = open_backend(str(where))
    vid = full.vault_id
    out = []
    for info in backend.list(Kind.DATA):
        name = info.handle.name
        raw = backend.load(info.handle)
        header = read_pack_header(backend, full, vid, name)[0]
        sealed = fmt.pack_is_sealed(raw[:9])
        hlen = int.from_bytes(raw[-4:], "little")
        aad = fmt.pack_header_aad(vid, name, header.generation, sealed)
        out.append(("pack header", raw[-4 - hlen : -4], aad, fmt.LABEL_SEALED_PACK_HEADER, name, sealed))
        for e in header.entries:
            blob_aad = fmt.blob_aad(vid, e.blob_type, e.flags, e.raw_length, e.blob_id)
            out.append(("blob", raw[e.offset : e.offset + e.length], blob_aad, fmt.LABEL_SEALED_BLOB, "",
                        bool(e.flags & fmt.FLAG_SEALED)))
    for kind in (Kind.INDEX, Kind.VERSIONS):
        for info in backend.list(kind):
            raw = backend.load(info.handle)
            open_object(full, vid, info.handle, fmt.ObjectType.ALL, raw)  # the full key opens it
            head = fmt.parse_object_header(raw, fmt.ObjectType.ALL, "x")
            aad = fmt.object_aad(head.prefix, vid, info.handle.name)
            body = raw[len(head.prefix) :]
            if head.ephemeral:
                body = head.ephemeral + body
            out.append((kind.value, body, aad, fmt.LABEL_SEALED_OBJECT, info.handle.name, bool(head.ephemeral)))
    from vault.crypto.slot_store import KeyStore

    for slot in KeyStore(backend, vid).slots():
        aad = fmt.slot_wrap_aad(vid, slot.slot_id, slot.params, slot.salt, slot.policy, slot.version)
        out.append(("key slot", slot.wrapped, aad, b"", "", False))
        out.append(("key slot details", slot.info, fmt.slot_info_aad(vid, slot.slot_id, slot.version), b"", "",
                    False))
    return out


def _opens(key: bytes, unit: tuple[str, bytes, bytes, bytes, str, bool], vault_id: bytes, public: bytes) -> bool:
    """Does ``key`` open ``unit``: as an AES-GCM key, or as an X25519 private key in the exchange (with the vault's
    public key, which the write-only keyring holds, in the salt)?"""
    _, body, aad, label, name, sealed = unit
    attempts = [(Aead(key), body)]
    if sealed:
        epk, rest = body[:32], body[32:]
        try:
            shared = X25519PrivateKey.from_private_bytes(key).exchange(X25519PublicKey.from_public_bytes(epk))
        except ValueError:
            shared = None
        if shared is not None:
            unit_key = _hkdf(shared, fmt.sealed_key_salt(epk, public), fmt.sealed_key_info(label, vault_id, name))
            attempts.append((Aead(unit_key), rest))
        attempts.append((Aead(key), rest))
    for aead, ct in attempts:
        try:
            aead.open(ct, aad, "x")
        except IntegrityError:
            continue
        return True
    return False


def test_the_write_only_slot_holds_no_key_that_opens_any_stored_object(vault_with_both: Path) -> None:
    backend = open_backend(str(vault_with_both))
    from vault.crypto.slot_store import KeyStore
    from vault.repo.config import load_config

    vid = load_config(backend).vault_id
    store = KeyStore(backend, vid)
    full, _ = store.unlock(FULL)
    wo_slot = next(s for s in store.slots() if s.write_only)
    ring = slots.unwrap(wo_slot, vid, WRITE_ONLY)
    assert isinstance(ring, WriteOnlyKeyring)
    plain = ring.wrapped_plaintext()
    assert len(plain) == fmt.WRITE_ONLY_KEYRING_SIZE
    assert not list(backend.list(Kind.LOCKS))  # the lock key opens locks by design; none is stored now
    units = _units(vault_with_both, full)
    kinds = {(u[0], u[5]) for u in units}
    assert {("pack header", True), ("pack header", False), ("blob", True), ("blob", False), ("index", True),
            ("index", False), ("versions", True), ("versions", False), ("key slot", False)} <= kinds
    candidates = [*_candidates(plain, vid), ring.local_key(b"mac"), ring.local_key(b"seal")]
    public = ring.recipient().public_key
    opened = [(u[0], c.hex()[:8]) for u, c in itertools.product(units, candidates) if _opens(c, u, vid, public)]
    assert opened == []
    # And the keyring itself refuses every question a symmetric key would answer.
    for attempt in (lambda: ring.data, lambda: ring.meta, lambda: ring.get(0, "x"), ring.cache_key):
        with pytest.raises(NotPermittedError):
            attempt()


def test_a_write_only_keyring_round_trips_and_its_parser_refuses_damage() -> None:
    full = Keyring.from_master_key(bytes(range(32)), bytes(16))
    ring = WriteOnlyKeyring.issue(full)
    raw = ring.wrapped_plaintext()
    back = WriteOnlyKeyring.decode(raw, bytes(16), "slot")
    assert back.wrapped_plaintext() == raw and back.blob_id(b"x") == full.blob_id(b"x")
    assert back.chunker_seed == full.chunker_seed and "hidden" in repr(back) and raw.hex() not in repr(back)
    assert back.recipient().public_key == full.generation.recipient_key.public_key
    for bad in (raw[:-1], raw + b"\0", b"XXXX" + raw[4:], raw[:-40] + (2).to_bytes(8, "little") + raw[-32:]):
        with pytest.raises(IntegrityError):
            WriteOnlyKeyring.decode(bad, bytes(16), "slot")


def test_sealed_objects_open_only_with_the_full_key_and_detect_tampering() -> None:
    vid = bytes(16)
    full = Keyring.from_master_key(bytes(range(32)), vid)
    ring = WriteOnlyKeyring.issue(full)
    handle = Handle(Kind.VERSIONS, "ab" * 32)
    sealed = seal_object(ring, vid, handle, fmt.ObjectType.VERSION, b'{"x":1}')
    assert sealed[4] == fmt.HEADER_SEALED
    assert open_object(full, vid, handle, fmt.ObjectType.VERSION, sealed) == b'{"x":1}'
    with pytest.raises(NotPermittedError):
        open_object(ring, vid, handle, fmt.ObjectType.VERSION, sealed)
    with pytest.raises(IntegrityError):  # bound to its name
        open_object(full, vid, Handle(Kind.VERSIONS, "cd" * 32), fmt.ObjectType.VERSION, sealed)
    for offset in (6, 10, 20, len(sealed) - 1):  # generation, ephemeral key, body
        edited = bytearray(sealed)
        edited[offset] ^= 1
        with pytest.raises((IntegrityError, UnknownGenerationError)):
            open_object(full, vid, handle, fmt.ObjectType.VERSION, bytes(edited))
    low_order = sealed[:10] + bytes(32) + sealed[42:]  # an all-zero ephemeral key: no shared secret
    with pytest.raises(IntegrityError, match="invalid ephemeral key"):
        open_object(full, vid, handle, fmt.ObjectType.VERSION, low_order)
    with pytest.raises(IntegrityError):  # only locks may use the lock-key header, and only index/records seal
        fmt.parse_object_header(fmt.OBJECT_MAGIC + bytes([3, fmt.ObjectType.INDEX]) + bytes(40), 1, "x")
    with pytest.raises(IntegrityError):
        fmt.parse_object_header(fmt.OBJECT_MAGIC + bytes([4, fmt.ObjectType.LOCK]) + bytes(80), 3, "x")


def test_locks_in_a_version_4_vault_are_read_by_both_kinds_of_keys() -> None:
    from vault.repo.objects import seal_lock

    vid = bytes(16)
    full = Keyring.from_master_key(bytes(range(32)), vid)
    ring = WriteOnlyKeyring.issue(full)
    h = Handle(Kind.LOCKS, "ef" * 32)
    for writer, reader in ((full, ring), (ring, full)):
        raw = seal_lock(writer, vid, h, b'{"lock":1}', lock_key=True)
        assert raw[4] == fmt.HEADER_LOCK_KEY and open_object(reader, vid, h, fmt.ObjectType.LOCK, raw) == b'{"lock":1}'
    with pytest.raises(NotPermittedError):  # a lock of an older vault, under a metadata key
        open_object(ring, vid, h, fmt.ObjectType.LOCK, seal_lock(full, vid, h, b"{}", lock_key=False))


def _rec(version: int, created: str, rid: str) -> VersionRecord:
    return VersionRecord(rid * 64, "item", version, created, "file", bytes(32), 0, 0, 0, "h")


def test_readers_number_unnumbered_versions_alike_and_never_twice() -> None:
    t = [f"2026-12-07T10:00:0{i}.000000Z" for i in range(8)]
    base = [_rec(1, t[0], "a"), _rec(0, t[1], "b"), _rec(0, t[2], "c")]
    assert [(r.version, r.settled) for r in numbered(base)] == [(1, True), (2, False), (3, False)]
    # A full key's put takes max + 1 = 4: nothing moves.
    assert [r.version for r in numbered([*base, _rec(4, t[3], "d")])] == [1, 2, 3, 4]
    # A full put that did not see them took 2 first: the unnumbered ones step around it, never onto it.
    shuffled = [_rec(1, t[0], "a"), _rec(0, t[1], "b"), _rec(2, t[3], "d"), _rec(0, t[4], "c")]
    got = numbered(shuffled)
    assert sorted(r.version for r in got) == [1, 2, 3, 4] and len({r.version for r in got}) == 4
    # The same records in any order give the same numbers.
    assert [(r.record_id, r.version) for r in numbered(list(reversed(shuffled)))] == [
        (r.record_id, r.version) for r in got]
    # Only unnumbered: 1, 2, 3 by creation time, ties by record id.
    only = numbered([_rec(0, t[5], "z"), _rec(0, t[5], "y"), _rec(0, t[2], "x")])
    assert [(r.record_id[0], r.version) for r in only] == [("x", 1), ("y", 2), ("z", 3)]


def test_a_forged_copy_neither_replaces_nor_deletes_the_true_one(tmp_path: Path, cheap_kdf: kdf.KdfParams) -> None:
    """Whoever holds a write-only key can seal other contents under the id of a chunk they know (the identity keys
    are in the keyring) and index it. Full keys never take such a copy for a full key's, fall back from it to
    another copy, and prune keeps every write-only copy of a needed blob that has no full key's copy."""
    from vault.crypto.slot_store import KeyStore
    from vault.ops.check import check
    from vault.ops.retention import prune
    from vault.repo.blobs import seal_blob
    from vault.repo.index import write_index_object
    from vault.repo.packs import PackBuilder
    from vault.storage.base import save_parts

    where = tmp_path / "vault"
    create_vault(where, password=FULL, kdf_params=cheap_kdf)
    (tmp_path / "doc.txt").write_bytes(b"stored by a full key " * 100)
    (tmp_path / "laptop.txt").write_bytes(b"stored by the write-only key " * 100)
    with open_session(where, password=FULL, lock="exclusive", cache=False) as s:
        s.put(tmp_path / "doc.txt")
        add_write_only_key(s.repo, WRITE_ONLY, cheap_kdf, slots.POLICY_DEFAULT, s.lock.refresh if s.lock else None)
    with open_session(where, password=WRITE_ONLY, lock="shared", write_only_ok=True, cache=False) as s:
        s.put(tmp_path / "laptop.txt")
    backend = open_backend(str(where))
    from vault.repo.config import load_config

    vid = load_config(backend).vault_id
    ring = KeyStore(backend, vid).unlock(WRITE_ONLY)[0]
    assert isinstance(ring, WriteOnlyKeyring)
    forged = PackBuilder(ring.current, sealed=True)
    forged.pack_id = bytes(32)  # the lowest pack id: the one an index would pick among equals
    sealer = ring.blob_sealer()
    for name in ("doc.txt", "laptop.txt"):
        blob_id = ring.blob_id((tmp_path / name).read_bytes())
        forged.add(seal_blob(sealer, vid, fmt.BlobType.DATA, blob_id, b"ransom note", 0))
    save_parts(backend, Handle(Kind.DATA, forged.name), forged.finish_parts(ring, vid))
    write_index_object(backend, ring, vid, [fmt.IndexedPack(forged.pack_id, ring.current, forged.entries)])
    # An index object a write-only key wrote may not vouch for a copy as if a full key had sealed it.
    fake = [fmt.IndexedPack(bytes([1]) * 32, ring.current, [e.__class__(e.blob_id, e.blob_type, 0, e.offset,
                                                                        e.length, e.raw_length)
                                                           for e in forged.entries])]
    bad = write_index_object(backend, ring, vid, fake).handle

    with open_session(where, password=FULL, lock="exclusive", cache=False) as s:
        damaged: list[str] = []
        s.repo.refresh_blobs(full=True, on_error=lambda h, exc: damaged.append(h.name))
        assert damaged == [bad.name]
        backend.remove(bad)  # (repair would; it is damage)
        s.repo.refresh_blobs(full=True)
        for name in ("doc.txt", "laptop.txt"):
            assert b"".join(s.read(name)) == (tmp_path / name).read_bytes()
        report = check(s.repo, s.pipeline, read_data=True)
        assert [p for p in report.problems if "failed verification" in p]  # the forged copies are found out
        assert not [p for p in report.problems if "version" in p]  # and no version is affected
        # prune copies the true contents out of the true copy and drops the forged one.
        prune(s.repo, s.pipeline, dry_run=False)
        s.repo.refresh_blobs(full=True)
        for name in ("doc.txt", "laptop.txt"):
            assert b"".join(s.read(name)) == (tmp_path / name).read_bytes()
        assert check(s.repo, s.pipeline, read_data=True).ok


def test_a_record_a_write_only_key_sealed_may_not_claim_a_number() -> None:
    from vault.repo.catalog import read_catalog_object, write_record
    from vault.storage.memory import MemoryBackend

    vid = bytes(16)
    full = Keyring.from_master_key(bytes(range(32)), vid)
    ring = WriteOnlyKeyring.issue(full)
    backend = MemoryBackend()
    for version, ok in ((0, True), (5, False)):
        record = _rec(version, "2026-12-07T10:00:00.000000Z", str(version))
        write_record(backend, ring, vid, record)
        info = next(i for i in backend.list(Kind.VERSIONS) if i.handle.name == record.record_id)
        if ok:
            assert read_catalog_object(backend, full, vid, info) is not None
        else:
            with pytest.raises(IntegrityError, match="claims a version number"):
                read_catalog_object(backend, full, vid, info)
