"""Index objects, trees and version records: round trips, tampering and hostile contents."""

from __future__ import annotations

import json
import os
import struct
from typing import Any

import pytest
import zstandard

from vault import format as fmt
from vault.cache import BlobIndex, CacheDB
from vault.crypto.keyring import Keyring
from vault.errors import IntegrityError, UnsupportedVersionError
from vault.repo import catalog
from vault.repo.index import load_index, write_index
from vault.repo.objects import open_object, seal_object
from vault.repo.tree import Node, decode_tree, encode_tree, valid_segment
from vault.storage.base import Handle, Kind
from vault.storage.memory import MemoryBackend

VID = bytes(range(16))
KEY = Keyring.from_master_key(bytes(range(32)), VID)
ID1, ID2 = b"\x11" * 32, b"\x22" * 32


def entry(i: int, **over: Any) -> fmt.BlobEntry:
    fields: dict[str, Any] = {
        "blob_id": bytes([i]) * 32,
        "blob_type": fmt.BlobType.DATA,
        "flags": 0,
        "offset": fmt.PACK_PREAMBLE_SIZE + 100 * i,
        "length": 100,
        "raw_length": 72,
    }
    fields.update(over)
    return fmt.BlobEntry(**fields)


# -- objects -------------------------------------------------------------------------------------------------
def test_object_round_trip_and_binding() -> None:
    h = Handle(Kind.INDEX, "ab" * 32)
    raw = seal_object(KEY, VID, h, fmt.ObjectType.INDEX, b"payload" * 100)
    assert open_object(KEY, VID, h, fmt.ObjectType.INDEX, raw) == b"payload" * 100
    assert b"payload" not in raw
    with pytest.raises(IntegrityError):  # renamed
        open_object(KEY, VID, Handle(Kind.INDEX, "cd" * 32), fmt.ObjectType.INDEX, raw)
    with pytest.raises(IntegrityError):  # read as the other type
        open_object(KEY, VID, h, fmt.ObjectType.VERSION, raw)
    with pytest.raises(IntegrityError):  # type byte rewritten to match: the AAD still binds it
        forged = raw[:5] + bytes([fmt.ObjectType.VERSION]) + raw[6:]
        open_object(KEY, VID, h, fmt.ObjectType.VERSION, forged)
    with pytest.raises(IntegrityError):  # another vault
        open_object(KEY, bytes(16), h, fmt.ObjectType.INDEX, raw)
    with pytest.raises(IntegrityError):  # the data key instead of the metadata key
        open_object(Keyring.from_master_key(bytes(32), VID), VID, h, fmt.ObjectType.INDEX, raw)
    for n in range(0, len(raw), 7):
        with pytest.raises(IntegrityError):
            open_object(KEY, VID, h, fmt.ObjectType.INDEX, raw[:n])


def test_object_with_a_newer_version_is_unsupported() -> None:
    h = Handle(Kind.INDEX, "ab" * 32)
    raw = seal_object(KEY, VID, h, fmt.ObjectType.INDEX, b"x")
    with pytest.raises(UnsupportedVersionError):
        open_object(
            KEY, VID, h, fmt.ObjectType.INDEX, raw[:4] + bytes([fmt.FORMAT_VERSION_MAX + 1]) + raw[5:]
        )


@pytest.mark.parametrize("declared", [fmt.MAX_METADATA_RAW + 1, 2**40])
def test_object_declaring_a_huge_size_is_refused(declared: int) -> None:
    """Even an authentic object can't make us allocate more than MAX_METADATA_RAW."""
    h = Handle(Kind.INDEX, "ab" * 32)
    frame = b"\x28\xb5\x2f\xfd" + bytes([0xC0, 0x00]) + struct.pack("<Q", declared)
    frame += struct.pack("<I", (3 << 3) | 1)[:3] + b"abc"
    prefix = fmt.object_prefix(fmt.ObjectType.INDEX)
    raw = prefix + KEY.meta.seal(frame, fmt.object_aad(prefix, VID, h.name))
    with pytest.raises(IntegrityError):
        open_object(KEY, VID, h, fmt.ObjectType.INDEX, raw)


def test_object_that_does_not_decompress() -> None:
    h = Handle(Kind.INDEX, "ab" * 32)
    prefix = fmt.object_prefix(fmt.ObjectType.INDEX)
    raw = prefix + KEY.meta.seal(b"plain, not zstd", fmt.object_aad(prefix, VID, h.name))
    with pytest.raises(IntegrityError):
        open_object(KEY, VID, h, fmt.ObjectType.INDEX, raw)


# -- index ---------------------------------------------------------------------------------------------------
def test_index_in_the_cache() -> None:
    idx = BlobIndex(CacheDB.open(None, VID, b""), b"k" * 32)
    idx.add_object("aa" * 32, False, [fmt.IndexedPack(ID1, 0, [entry(1), entry(2)])])
    idx.add_object("bb" * 32, False, [fmt.IndexedPack(ID2, 0, [entry(2), entry(3)])])  # blob 2 twice: ID1 < ID2
    assert len(idx) == 3
    assert bytes([2]) * 32 in idx and bytes([9]) * 32 not in idx
    loc = idx.get(bytes([2]) * 32)
    assert loc is not None and loc.pack_id == ID1
    assert loc.pack_handle == Handle(Kind.DATA, ID1.hex())
    assert idx.get(bytes([9]) * 32) is None
    assert {p.pack_id: len(p.entries) for p in idx.packs()} == {ID1: 2, ID2: 1}
    assert sum(len(p.entries) for p in idx.packs()) == 3


def test_index_objects_round_trip() -> None:
    backend = MemoryBackend()
    h1 = write_index(backend, KEY, VID, [fmt.IndexedPack(ID1, 0, [entry(1), entry(2)])])
    tree_entry = entry(3, blob_type=fmt.BlobType.TREE, flags=fmt.FLAG_ZSTD)
    h2 = write_index(backend, KEY, VID, [fmt.IndexedPack(ID2, 0, [tree_entry])])
    assert h1 != h2 and h1.kind is Kind.INDEX
    idx = load_index(backend, KEY, VID)
    assert len(idx) == 3 and sorted(idx.index_names) == sorted([h1.name, h2.name])
    loc = idx.get(bytes([3]) * 32)
    assert loc is not None and loc.pack_id == ID2 and loc.entry.flags == fmt.FLAG_ZSTD
    # The store never sees blob or pack ids in the clear.
    stored = backend.load(h1)
    assert ID1 not in stored and bytes([1]) * 32 not in stored


def test_tampered_or_moved_index_object_is_integrity_error() -> None:
    backend = MemoryBackend()
    h = write_index(backend, KEY, VID, [fmt.IndexedPack(ID1, 0, [entry(1)])])
    raw = backend.load(h)
    bad = bytearray(raw)
    bad[len(bad) // 2] ^= 1
    backend.save(h, bytes(bad))
    with pytest.raises(IntegrityError):
        load_index(backend, KEY, VID)
    backend.remove(h)
    backend.save(Handle(Kind.INDEX, "ef" * 32), raw)
    with pytest.raises(IntegrityError):
        load_index(backend, KEY, VID)


def test_authentic_index_object_with_malformed_contents() -> None:
    backend = MemoryBackend()
    h = Handle(Kind.INDEX, "ab" * 32)
    good = fmt.encode_index([fmt.IndexedPack(ID1, 0, [entry(1)])], False)
    bad_type = fmt.encode_index([fmt.IndexedPack(ID1, 0, [entry(1, blob_type=9)])], False)
    for payload in (good[:-1], good + b"\0", b"", bad_type):
        backend.save(h, seal_object(KEY, VID, h, fmt.ObjectType.INDEX, payload))
        with pytest.raises(IntegrityError):
            load_index(backend, KEY, VID)


# -- trees ---------------------------------------------------------------------------------------------------
def sample_nodes() -> list[Node]:
    return [
        Node("b.txt", "file", 0o640, 123_456_789, 10, content=(ID1, ID2, ID1)),
        Node("a-dir", "dir", 0o755, -5, subtree=ID2),
        Node("link", "link", 0o777, 0, target="../elsewhere/\u00e9"),
        Node("empty", "file", 0o600, 2**62, 0, content=()),
    ]


def test_tree_round_trip_is_sorted_and_canonical() -> None:
    nodes = sample_nodes()
    raw = encode_tree(nodes)
    decoded = decode_tree(raw, "tree")
    assert decoded == sorted(nodes, key=lambda n: n.name)
    assert encode_tree(list(reversed(nodes))) == raw


def test_non_utf8_names_survive() -> None:
    name = os.fsdecode(b"caf\xe9-\xff\xfe.bin")  # surrogate escapes for bytes that are not UTF-8
    target = os.fsdecode(b"/tmp/\x80target")
    nodes = [Node(name, "file", content=(ID1,)), Node(os.fsdecode(b"l\xc3"), "link", target=target)]
    decoded = decode_tree(encode_tree(nodes), "tree")
    assert {n.name for n in decoded} == {name, os.fsdecode(b"l\xc3")}
    assert os.fsencode(decoded[0].name) == b"caf\xe9-\xff\xfe.bin"
    assert [n.target for n in decoded if n.type == "link"] == [target]


def tree_doc(**node_over: Any) -> dict[str, Any]:
    node = {"name": "f", "type": "file", "mode": 0o644, "mtime_ns": 0, "size": 1, "content": [ID1.hex()]}
    node.update(node_over)
    return {"v": 1, "nodes": [{k: v for k, v in node.items() if v is not _DROP}]}


_DROP = object()


@pytest.mark.parametrize(
    "name", ["", ".", "..", "a/b", "/", "/abs", "a\0b", "\0", None, 5, ["a"], "x" * 4097]
)
def test_decode_tree_rejects_unsafe_names(name: Any) -> None:
    with pytest.raises(IntegrityError):
        decode_tree(json.dumps(tree_doc(name=name)).encode(), "tree")


def test_valid_segment() -> None:
    assert valid_segment("a") and valid_segment("...") and valid_segment(".hidden") and valid_segment("a b")
    assert not any(valid_segment(s) for s in ("", ".", "..", "a/b", "a\0"))


def test_decode_tree_rejects_duplicate_names() -> None:
    doc = tree_doc()
    doc["nodes"].append(dict(doc["nodes"][0]))
    with pytest.raises(IntegrityError):
        decode_tree(json.dumps(doc).encode(), "tree")


@pytest.mark.parametrize(
    "over",
    [
        {"type": "socket"},
        {"type": None},
        {"type": 1},
        {"type": ["file"]},
        {"mode": True},
        {"mode": "644"},
        {"mode": -1},
        {"mode": 0o10000},
        {"mode": 1.5},
        {"mtime_ns": True},
        {"mtime_ns": False},
        {"mtime_ns": 2**64},
        {"mtime_ns": "0"},
        {"size": True},
        {"size": -1},
        {"size": None},
        {"content": None},
        {"content": "ab" * 32},
        {"content": ["zz" * 32]},
        {"content": ["ab" * 31]},
        {"content": [True]},
        {"content": [ID1.hex().upper() + "0"]},
        {"content": [" " * 64]},
        {"mode": _DROP},
        {"mtime_ns": _DROP},
        {"content": _DROP},
        {"size": _DROP},
    ],
)
def test_decode_tree_rejects_bad_file_nodes(over: dict[str, Any]) -> None:
    with pytest.raises(IntegrityError):
        decode_tree(json.dumps(tree_doc(**over)).encode(), "tree")


@pytest.mark.parametrize("subtree", [None, "", "zz" * 32, "ab" * 31, 5, True, ["ab" * 32]])
def test_decode_tree_rejects_bad_dir_ids(subtree: Any) -> None:
    doc = tree_doc(type="dir", subtree=subtree, content=_DROP, size=_DROP)
    with pytest.raises(IntegrityError):
        decode_tree(json.dumps(doc).encode(), "tree")


@pytest.mark.parametrize("target", [None, "", "a\0b", 5, "x" * 4097, ["a"]])
def test_decode_tree_rejects_bad_links(target: Any) -> None:
    doc = tree_doc(type="link", target=target, content=_DROP, size=_DROP)
    with pytest.raises(IntegrityError):
        decode_tree(json.dumps(doc).encode(), "tree")


@pytest.mark.parametrize(
    "doc",
    [
        {"nodes": []},
        {"v": True, "nodes": []},
        {"v": "1", "nodes": []},
        {"v": 0, "nodes": []},
        {"v": 1},
        {"v": 1, "nodes": {}},
        {"v": 1, "nodes": "x"},
        {"v": 1, "nodes": [1]},
        {"v": 1, "nodes": [[]]},
    ],
)
def test_decode_tree_rejects_bad_documents(doc: Any) -> None:
    with pytest.raises(IntegrityError):
        decode_tree(json.dumps(doc).encode(), "tree")


def test_decode_tree_newer_version() -> None:
    with pytest.raises(UnsupportedVersionError):
        decode_tree(json.dumps({"v": fmt.FORMAT_VERSION_MAX + 1, "nodes": []}).encode(), "tree")


def test_decode_tree_accepts_an_empty_tree() -> None:
    assert decode_tree(encode_tree([]), "tree") == []


# Tree version 2 (issue 18, item 1): owners. docs/format.md, "Trees", pins the fields.
def test_tree_version_2_stores_owners_and_round_trips() -> None:
    nodes = [
        Node("f", "file", 0o4755, 1, 3, content=(ID1,), uid=1000, gid=100, user="alice", group="users"),
        Node("d", "dir", 0o2775, 2, subtree=ID2, uid=0, gid=0, user="root", group="root"),
        Node("l", "link", 0o777, 3, target="f", uid=4242, gid=4343),  # ids without names on the storing machine
        Node("u", "file", 0o644, 4, 0, content=()),  # owner unknown
    ]
    raw = encode_tree(nodes)
    doc = json.loads(raw)
    assert doc["v"] == fmt.TREE_VERSION == 2
    by_name = {n["name"]: n for n in doc["nodes"]}
    assert {k: by_name["f"][k] for k in ("uid", "gid", "user", "group")} == {
        "uid": 1000, "gid": 100, "user": "alice", "group": "users"}
    assert "user" not in by_name["l"] and by_name["l"]["uid"] == 4242
    assert not {"uid", "gid", "user", "group"} & set(by_name["u"])
    assert decode_tree(raw, "tree") == sorted(nodes, key=lambda n: n.name)


def test_a_version_1_tree_still_reads_with_owners_unknown() -> None:
    doc = tree_doc(uid=5, user="ignored")  # version 1 had no owners: such fields are not read
    (node,) = decode_tree(json.dumps(doc).encode(), "tree")
    assert (node.uid, node.gid, node.user, node.group) == (None, None, "", "")


@pytest.mark.parametrize("over", [
    {"uid": -1}, {"uid": 2**32 - 1}, {"uid": "0"}, {"uid": True}, {"gid": 1.5}, {"gid": None},
    {"user": ""}, {"user": 5}, {"user": "a\0b"}, {"user": "a\nb"}, {"group": "x" * 257}, {"group": ["root"]},
])
def test_decode_tree_rejects_bad_owners(over: dict[str, Any]) -> None:
    doc = tree_doc(**over)
    doc["v"] = 2
    with pytest.raises(IntegrityError):
        decode_tree(json.dumps(doc).encode(), "tree")


# -- version records -----------------------------------------------------------------------------------------
def record(item: str, version: int, **over: Any) -> catalog.VersionRecord:
    fields: dict[str, Any] = {
        "record_id": catalog.new_record_id(),
        "item": item,
        "version": version,
        "created": "2026-01-01T00:00:00Z",
        "type": "file",
        "tree": ID1,
        "size": 10,
        "files": 1,
        "bytes_added": 5,
        "host": "host",
    }
    fields.update(over)
    return catalog.VersionRecord(**fields)


def test_records_round_trip_and_sort() -> None:
    backend = MemoryBackend()
    recs = [record("b", 1), record("a/x", 2, type="dir"), record("a/x", 1), record(os.fsdecode(b"\xff"), 1)]
    for r in recs:
        catalog.write_record(backend, KEY, VID, r)
    loaded = catalog.load_records(backend, KEY, VID)
    assert loaded == sorted(recs, key=lambda r: (r.item, r.version))
    for info in backend.list(Kind.VERSIONS):
        assert b"a/x" not in backend.load(info.handle)


def test_record_moved_or_tampered_is_integrity_error() -> None:
    backend = MemoryBackend()
    r = record("secret-name", 1)
    catalog.write_record(backend, KEY, VID, r)
    raw = backend.load(r.handle)
    backend.remove(r.handle)
    backend.save(Handle(Kind.VERSIONS, catalog.new_record_id()), raw)
    with pytest.raises(IntegrityError):
        catalog.load_records(backend, KEY, VID)
    backend2 = MemoryBackend()
    backend2.save(r.handle, raw[:-1])
    with pytest.raises(IntegrityError):
        catalog.load_records(backend2, KEY, VID)
    backend3 = MemoryBackend()
    backend3.save(r.handle, raw)
    with pytest.raises(IntegrityError):  # a record from one vault read as another's
        catalog.load_records(backend3, Keyring.from_master_key(KEY.generation.raw, bytes(16)), bytes(16))


@pytest.mark.parametrize(
    "over",
    [
        {"v": True},
        {"v": None},
        {"v": 0},
        {"item": None},
        {"item": 5},
        {"created": None},
        {"host": 1},
        {"type": "link"},
        {"type": None},
        {"version": True},
        {"version": -1},
        {"version": "1"},
        {"size": -1},
        {"files": 1.0},
        {"bytes_added": None},
        {"tree": "zz" * 32},
        {"tree": None},
        {"tree": " " * 64},
    ],
)
def test_authentic_record_with_malformed_fields(over: dict[str, Any]) -> None:
    backend = MemoryBackend()
    r = record("x", 1)
    doc = r.to_json() | over
    backend.save(
        r.handle, seal_object(KEY, VID, r.handle, fmt.ObjectType.VERSION, json.dumps(doc).encode())
    )
    with pytest.raises(IntegrityError):
        catalog.load_records(backend, KEY, VID)


def test_record_newer_version_is_unsupported() -> None:
    backend = MemoryBackend()
    r = record("x", 1)
    doc = r.to_json() | {"v": fmt.FORMAT_VERSION_MAX + 1}
    backend.save(
        r.handle, seal_object(KEY, VID, r.handle, fmt.ObjectType.VERSION, json.dumps(doc).encode())
    )
    with pytest.raises(UnsupportedVersionError):
        catalog.load_records(backend, KEY, VID)


# -- decompression caps per object type (issue 18, item 5) ------------------------------------------------------------
def _sealed(obj_type: int, payload: bytes, content_size: bool = True) -> tuple[Handle, bytes]:
    """An object of ``obj_type`` whose zstd frame inflates to ``payload`` (with or without the frame's declared
    content size, which a writer may leave out)."""
    kind = {fmt.ObjectType.VERSION: Kind.VERSIONS, fmt.ObjectType.LOCK: Kind.LOCKS}.get(obj_type, Kind.INDEX)
    h = Handle(kind, os.urandom(32).hex())
    prefix = fmt.object_prefix(obj_type)
    cctx = zstandard.ZstdCompressor(level=3, write_content_size=content_size)
    chunker = cctx.compressobj()
    body = chunker.compress(payload) + chunker.flush()
    return h, prefix + KEY.meta.seal(body, fmt.object_aad(prefix, VID, h.name))


@pytest.mark.parametrize("content_size", [True, False], ids=["declared", "undeclared"])
def test_a_small_record_or_lock_that_inflates_is_refused_before_it_is_inflated(content_size: bool) -> None:
    """An 8 KiB version record used to inflate to 250 MiB: every metadata object was capped at 256 MiB, the
    index's cap. Each type now has its own: records 16 MiB, locks 64 KiB, index objects 256 MiB."""
    h, raw = _sealed(fmt.ObjectType.VERSION, b" " * (32 << 20), content_size)
    assert len(raw) < 8192
    with pytest.raises(IntegrityError, match="too large"):
        open_object(KEY, VID, h, fmt.ObjectType.VERSION, raw)
    h, raw = _sealed(fmt.ObjectType.LOCK, b" " * (1 << 20), content_size)
    with pytest.raises(IntegrityError, match="too large"):
        open_object(KEY, VID, h, fmt.ObjectType.LOCK, raw)
    # What fits its type's cap still opens, whichever way the frame was written.
    for obj_type, size in ((fmt.ObjectType.VERSION, 16 << 20), (fmt.ObjectType.LOCK, 64 << 10),
                           (fmt.ObjectType.INDEX, 32 << 20)):
        h, raw = _sealed(obj_type, b"x" * size, content_size)
        assert open_object(KEY, VID, h, obj_type, raw) == b"x" * size
