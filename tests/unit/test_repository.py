"""A whole vault in memory: create/open, the write path (dedup, packs, checkpoints) and the read path."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
from faulty import FaultyBackend

from vault import format as fmt
from vault.crypto import kdf, slots
from vault.errors import (
    AuthenticationError,
    ConflictError,
    IntegrityError,
    StorageError,
    UnsupportedVersionError,
    VaultNotFoundError,
)
from vault.pipeline.runner import Pipeline
from vault.repo import catalog
from vault.repo.config import CONFIG_HANDLE, load_config
from vault.repo.index import load_index
from vault.repo.packs import read_pack_header
from vault.repo.repository import Repository
from vault.repo.tree import Node, encode_tree
from vault.repo.writer import BlobWriter
from vault.storage.base import Handle, Kind
from vault.storage.memory import MemoryBackend

PASSWORD = b"correct horse battery staple"
KIB = 1024


@pytest.fixture
def backend() -> MemoryBackend:
    return MemoryBackend()


@pytest.fixture
def repo(backend: MemoryBackend, cheap_kdf: kdf.KdfParams) -> Repository:
    return Repository.create(backend, PASSWORD, cheap_kdf)


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    with Pipeline(2) as p:
        yield p


def chunks(n: int, size: int = 64 * KIB) -> list[bytes]:
    return [os.urandom(size) for _ in range(n)]


def store_all(
    repo: Repository, pipeline: Pipeline, data: list[bytes], level: int = 3
) -> list[tuple[bytes, int, int]]:
    w = BlobWriter(repo, pipeline, level)
    out = list(w.store(data))
    w.finish()
    return out


# -- create and open -----------------------------------------------------------------------------------------
def test_create_then_open(backend: MemoryBackend, repo: Repository, cheap_kdf: kdf.KdfParams) -> None:
    assert len(repo.vault_id) == fmt.VAULT_ID_SIZE
    assert load_config(backend).vault_id == repo.vault_id
    assert [s.slot_id for s in repo.keys.slots()] == [repo.slot.slot_id]
    opened = Repository.open(backend, PASSWORD)
    assert opened.key.generation.raw == repo.key.generation.raw
    assert opened.config == repo.config
    assert opened.slot.slot_id == repo.slot.slot_id
    assert len(opened.index) == 0 and opened.records() == []
    # The config is plaintext but holds no secret.
    assert repo.key.generation.raw.hex() not in backend.load(CONFIG_HANDLE).decode()


def test_second_create_is_conflict_and_changes_nothing(
    backend: MemoryBackend, repo: Repository, cheap_kdf: kdf.KdfParams
) -> None:
    before = {(k, i.handle.name) for k in Kind for i in backend.list(k)}
    config = backend.load(CONFIG_HANDLE)
    with pytest.raises(ConflictError) as info:
        Repository.create(backend, b"other password", cheap_kdf)
    assert info.value.exit_code == 40
    assert {(k, i.handle.name) for k in Kind for i in backend.list(k)} == before
    assert backend.load(CONFIG_HANDLE) == config
    Repository.open(backend, PASSWORD)


def test_create_makes_a_missing_root(cheap_kdf: kdf.KdfParams) -> None:
    b = MemoryBackend(root_exists=False)
    Repository.create(b, PASSWORD, cheap_kdf)
    assert b.exists_root()


def test_open_without_a_vault(cheap_kdf: kdf.KdfParams) -> None:
    for b in (MemoryBackend(), MemoryBackend(root_exists=False)):
        with pytest.raises(VaultNotFoundError) as info:
            Repository.open(b, PASSWORD)
        assert info.value.exit_code == 10


def test_open_with_a_wrong_password(backend: MemoryBackend, repo: Repository) -> None:
    with pytest.raises(AuthenticationError):
        Repository.open(backend, b"wrong")


def test_open_a_newer_vault_is_refused(backend: MemoryBackend, repo: Repository) -> None:
    doc = json.loads(backend.load(CONFIG_HANDLE))
    doc["format_version"] = fmt.CONFIG_VERSION_MAX + 1  # the config has its own maximum (3: retention)
    backend.save(CONFIG_HANDLE, json.dumps(doc).encode())
    with pytest.raises(UnsupportedVersionError) as info:
        Repository.open(backend, PASSWORD)
    assert info.value.exit_code == 21


@pytest.mark.parametrize(
    "edit",
    [
        {"id": "00" * 16},
        {"id": "zz" * 16},
        {"id": " " * 32},
        {"id": "00" * 15},
        {"id": None},
        {"format_version": True},
        {"format_version": "1"},
        {"format_version": 0},
        {"created": 5},
    ],
)
def test_tampered_config_is_refused(
    backend: MemoryBackend, repo: Repository, edit: dict[str, object]
) -> None:
    doc = json.loads(backend.load(CONFIG_HANDLE))
    doc.update(edit)
    backend.save(CONFIG_HANDLE, json.dumps(doc).encode())
    with pytest.raises(IntegrityError):
        Repository.open(backend, PASSWORD)


@pytest.mark.parametrize("raw", [b"", b"[]", b"{", b"x" * (64 * KIB + 1), b'{"format_version": 1}'])
def test_malformed_config(backend: MemoryBackend, raw: bytes) -> None:
    backend.save(CONFIG_HANDLE, raw)
    with pytest.raises(IntegrityError):
        load_config(backend)


def test_open_rehashes_a_weak_default_slot(
    backend: MemoryBackend, repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    stronger = kdf.KdfParams(16 * KIB, 1, 1)
    monkeypatch.setattr(kdf, "DEFAULT_PARAMS", stronger)
    opened = Repository.open(backend, PASSWORD, rehash=False)
    assert opened.slot.params != stronger
    opened = Repository.open(backend, PASSWORD)
    assert opened.slot.params == stronger and opened.slot.slot_id == repo.slot.slot_id
    assert opened.key.generation.raw == repo.key.generation.raw
    assert [s.params for s in opened.keys.slots()] == [stronger]


def test_open_keeps_an_explicit_slot(
    backend: MemoryBackend, cheap_kdf: kdf.KdfParams, monkeypatch: pytest.MonkeyPatch
) -> None:
    Repository.create(backend, PASSWORD, cheap_kdf, policy=slots.POLICY_EXPLICIT)
    monkeypatch.setattr(kdf, "DEFAULT_PARAMS", kdf.KdfParams(16 * KIB, 1, 1))
    assert Repository.open(backend, PASSWORD).slot.params == cheap_kdf


# -- writing and reading blobs -------------------------------------------------------------------------------
def test_store_and_load_round_trip(backend: MemoryBackend, repo: Repository, pipeline: Pipeline) -> None:
    data = [b"", b"x", os.urandom(fmt.CHUNK_MIN), b"compressible " * 20_000, os.urandom(1000)]
    results = store_all(repo, pipeline, data)
    assert [r[0] for r in results] == [repo.key.blob_id(d) for d in data]
    assert [r[1] for r in results] == [len(d) for d in data]
    assert all(r[2] > 0 for r in results)
    for (blob_id, _, _), d in zip(results, data, strict=True):
        assert repo.load_blob(blob_id) == d
    reopened = Repository.open(backend, PASSWORD)
    for (blob_id, _, _), d in zip(results, data, strict=True):
        assert reopened.load_blob(blob_id) == d
    # Nothing in the store shows the plaintext.
    for info in backend.list(Kind.DATA):
        assert b"compressible" not in backend.load(info.handle)


def test_dedup_within_and_across_writers(
    backend: MemoryBackend, repo: Repository, pipeline: Pipeline
) -> None:
    a, b = os.urandom(100 * KIB), os.urandom(100 * KIB)
    w = BlobWriter(repo, pipeline, 0)
    results = list(w.store([a, a, b, a, b]))
    w.finish()
    assert [r[0] for r in results] == [repo.key.blob_id(x) for x in (a, a, b, a, b)]
    # Each distinct chunk is stored once (which occurrence pays for it: whichever worker got there first).
    assert sum(r[2] > 0 for r in results if r[0] == repo.key.blob_id(a)) == 1
    assert sum(r[2] > 0 for r in results if r[0] == repo.key.blob_id(b)) == 1
    assert w.blobs_added == 2
    assert len(repo.index) == 2
    stored = repo.stored_bytes()
    # A second put of the same data stores nothing new.
    w2 = BlobWriter(Repository.open(backend, PASSWORD), pipeline, 0)
    assert [r[2] for r in w2.store([b, a])] == [0, 0]
    w2.finish()
    assert w2.blobs_added == 0 and w2.bytes_added == 0
    assert repo.stored_bytes() == stored
    assert len(list(backend.list(Kind.DATA))) == 1


def test_several_packs_leave_exactly_one_index_object(
    backend: MemoryBackend, repo: Repository, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fmt, "PACK_TARGET_SIZE", 150 * KIB)
    data = chunks(12, 64 * KIB)  # two or three blobs per pack: about five packs
    saved: list[Handle] = []
    real_save = backend.save

    def spy(h: Handle, blob: bytes | bytearray | memoryview) -> None:
        saved.append(h)
        real_save(h, blob)

    monkeypatch.setattr(backend, "save", spy)
    results = store_all(repo, pipeline, data, level=0)
    packs = [i.handle.name for i in backend.list(Kind.DATA)]
    assert len(packs) >= 4
    index_objects = list(backend.list(Kind.INDEX))
    assert len(index_objects) == 1
    # Checkpoints were written along the way (one per pack), then merged and removed.
    assert sum(h.kind is Kind.INDEX for h in saved) == len(packs) + 1
    idx = load_index(backend, repo.key, repo.vault_id)
    assert {p.hex() for p in idx.packs()} == set(packs)
    assert len(idx) == len(data)
    for name in packs:  # every pack's own header agrees with the index
        entries = read_pack_header(backend, repo.key, repo.vault_id, name)[0].entries
        assert sorted(entries, key=lambda e: e.offset) == sorted(
            idx.packs()[bytes.fromhex(name)], key=lambda e: e.offset
        )
    reopened = Repository.open(backend, PASSWORD)
    for (blob_id, _, _), d in zip(results, data, strict=True):
        assert reopened.load_blob(blob_id) == d


def test_one_pack_leaves_one_index_object(
    backend: MemoryBackend, repo: Repository, pipeline: Pipeline
) -> None:
    store_all(repo, pipeline, chunks(3))
    assert len(list(backend.list(Kind.DATA))) == 1
    assert len(list(backend.list(Kind.INDEX))) == 1


def test_nothing_new_writes_no_index(backend: MemoryBackend, repo: Repository, pipeline: Pipeline) -> None:
    store_all(repo, pipeline, [])
    assert list(backend.list(Kind.INDEX)) == [] and list(backend.list(Kind.DATA)) == []


def test_trees_and_records(backend: MemoryBackend, repo: Repository, pipeline: Pipeline) -> None:
    w = BlobWriter(repo, pipeline, 3)
    content = [r[0] for r in w.store([b"hello ", b"world"])]
    file_node = Node("greeting.txt", "file", 0o600, 1, 11, content=tuple(content))
    root_tree = w.store_one(encode_tree([file_node]), fmt.BlobType.TREE)
    w.finish()
    rec = catalog.VersionRecord(
        catalog.new_record_id(),
        "greeting.txt",
        1,
        "2026-01-01T00:00:00Z",
        "file",
        root_tree,
        11,
        1,
        w.bytes_added,
        "host",
    )
    catalog.write_record(backend, repo.key, repo.vault_id, rec)
    reopened = Repository.open(backend, PASSWORD)
    [loaded] = reopened.records()
    node = reopened.root_node(loaded)
    assert node == file_node
    assert b"".join(reopened.load_blob(c) for c in node.content) == b"hello world"
    # A tree blob is not a data blob, and vice versa.
    with pytest.raises(IntegrityError):
        reopened.load_blob(root_tree, fmt.BlobType.DATA)
    with pytest.raises(IntegrityError):
        reopened.load_tree(content[0])


def test_missing_blob_or_pack_is_integrity_error(
    backend: MemoryBackend, repo: Repository, pipeline: Pipeline
) -> None:
    [(blob_id, _, _)] = store_all(repo, pipeline, [b"data"])
    with pytest.raises(IntegrityError):
        repo.load_blob(b"\0" * 32)
    [pack] = list(backend.list(Kind.DATA))
    raw = backend.load(pack.handle)
    backend.remove(pack.handle)
    with pytest.raises(IntegrityError):
        Repository.open(backend, PASSWORD).load_blob(blob_id)
    backend.save(pack.handle, raw[:-30])  # truncated: the blob's bytes still read, the header is gone
    assert Repository.open(backend, PASSWORD).load_blob(blob_id) == b"data"
    backend.save(pack.handle, raw[:8])  # truncated into the blob
    with pytest.raises(IntegrityError):
        Repository.open(backend, PASSWORD).load_blob(blob_id)


def test_blob_moved_within_a_pack_is_detected(
    backend: MemoryBackend, repo: Repository, pipeline: Pipeline
) -> None:
    """Swap two equally long blobs inside a pack: each now sits where the index says the other one is."""
    a, b = os.urandom(1000), os.urandom(1000)
    results = store_all(repo, pipeline, [a, b], level=0)
    [pack] = list(backend.list(Kind.DATA))
    raw = bytearray(backend.load(pack.handle))
    entries = sorted(repo.index.packs()[bytes.fromhex(pack.handle.name)], key=lambda e: e.offset)
    e1, e2 = entries
    blob1, blob2 = raw[e1.offset : e1.offset + e1.length], raw[e2.offset : e2.offset + e2.length]
    raw[e1.offset : e1.offset + e1.length], raw[e2.offset : e2.offset + e2.length] = blob2, blob1
    backend.save(pack.handle, bytes(raw))
    fresh = Repository.open(backend, PASSWORD)
    for blob_id, _, _ in results:
        with pytest.raises(IntegrityError):
            fresh.load_blob(blob_id)


# -- the pipeline under the writer ---------------------------------------------------------------------------
def test_ordered_with_two_threads_in_order_and_first_error(repo: Repository, pipeline: Pipeline) -> None:
    calls: list[int] = []

    def fn(i: int) -> int:
        calls.append(i)
        if i in (7, 9):
            raise ValueError(f"bad item {i}")
        return i

    got: list[int] = []
    with pytest.raises(ValueError, match="bad item 7"):
        for r in pipeline.ordered(fn, range(10_000)):
            got.append(r)
    assert got == list(range(7))
    assert len(calls) <= 7 + pipeline.max_in_flight + 1
    assert list(pipeline.ordered(lambda x: -x, range(100))) == [-x for x in range(100)]


def test_writer_source_error_propagates(backend: MemoryBackend, repo: Repository, pipeline: Pipeline) -> None:
    def source() -> Iterator[bytes]:
        yield os.urandom(1000)
        yield os.urandom(1000)
        raise OSError("read error")

    w = BlobWriter(repo, pipeline, 3)
    with pytest.raises(OSError, match="read error"):
        list(w.store(source()))
    w.abort()
    assert list(backend.list(Kind.INDEX)) == []  # nothing finished, nothing indexed


def test_writer_upload_error_propagates(
    cheap_kdf: kdf.KdfParams, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    faulty = FaultyBackend(MemoryBackend())
    repo = Repository.create(faulty, PASSWORD, cheap_kdf)
    monkeypatch.setattr(fmt, "PACK_TARGET_SIZE", 10 * KIB)
    faulty.fail("save", kinds={Kind.DATA}, after=1)
    w = BlobWriter(repo, pipeline, 0)
    with pytest.raises(StorageError):
        list(w.store(chunks(8, 16 * KIB)))
        w.finish()
    w.abort()
    # The first pack was uploaded and checkpointed before the failure: a rerun finds and reuses it.
    faulty.heal()
    assert len(load_index(faulty, repo.key, repo.vault_id)) == 1


@pytest.mark.parametrize("tree_first", [True, False], ids=["tree-first", "data-first"])
def test_a_data_chunk_equal_to_a_tree_stays_readable(
    backend: MemoryBackend, repo: Repository, pipeline: Pipeline, tree_first: bool
) -> None:
    empty_tree = encode_tree([])
    w = BlobWriter(repo, pipeline, 3)
    if tree_first:
        tree_id = w.store_one(empty_tree, fmt.BlobType.TREE)
        [(data_id, _, _)] = list(w.store([empty_tree]))
    else:
        [(data_id, _, _)] = list(w.store([empty_tree]))
        tree_id = w.store_one(empty_tree, fmt.BlobType.TREE)
    w.finish()
    assert tree_id != data_id  # each blob type hashes under its own key
    fresh = Repository.open(backend, PASSWORD)
    assert fresh.load_tree(tree_id) == []
    assert fresh.load_blob(data_id, fmt.BlobType.DATA) == empty_tree
