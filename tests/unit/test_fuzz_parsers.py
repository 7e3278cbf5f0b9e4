"""Every parser of stored bytes, fed mutated valid inputs: only VaultError subclasses may come out.

Two kinds of mutation: byte-level (bit flips, truncations, insertions, deletions, random bytes), which mostly
exercise the checks before authentication, and structure-level on authentic objects (a JSON field replaced
by an odd value, an entry table re-sealed with the right key), which reach the parsers behind the AEAD:
what a buggy or older writer could have stored.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import struct
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vault import format as fmt
from vault.crypto import kdf, slot_store, slots
from vault.crypto.keyring import Keyring
from vault.errors import VaultError
from vault.repo import catalog
from vault.repo.blobs import open_blob, seal_blob
from vault.repo.config import CONFIG_HANDLE, load_config, new_config
from vault.repo.objects import open_object, seal_object
from vault.repo.packs import PackBuilder, read_pack_header
from vault.repo.tree import Node, decode_tree, encode_tree
from vault.storage.base import Handle, Kind
from vault.storage.memory import MemoryBackend

pytestmark = pytest.mark.timeout(120)  # "never a hang"

# CI runs a bounded number of examples per parser; run longer with, for example,
#   VAULT_FUZZ_EXAMPLES=20000 .venv/bin/pytest tests/unit/test_fuzz_parsers.py -n 2 -p no:timeout
EXAMPLES = int(os.environ.get("VAULT_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PASSWORD = b"correct horse battery staple"
CHEAP = kdf.KdfParams(8 * 1024, 1, 1)
VID = bytes(range(16))
KEY = Keyring.from_master_key(bytes(range(32)), VID)
T = TypeVar("T")


def only_vault_errors(fn: Callable[..., T], *args: Any) -> T | None:
    """Run a parser; a VaultError is a fine answer, anything else fails the test (hypothesis shows it)."""
    try:
        return fn(*args)
    except VaultError as exc:
        assert isinstance(exc.exit_code, int) and str(exc)
        return None


# -- mutation strategies -------------------------------------------------------------------------------------
@st.composite
def mutated(draw: st.DrawFn, base: bytes) -> bytes:
    data = bytearray(base)
    ops = draw(
        st.lists(
            st.sampled_from(["flip", "trunc", "insert", "delete", "set", "random", "dup"]),
            min_size=1,
            max_size=4,
        )
    )
    for op in ops:
        n = len(data)
        pos = draw(st.integers(0, max(n - 1, 0)))
        if op == "flip" and n:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "trunc":
            del data[draw(st.integers(0, n)) :]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=40))
        elif op == "delete" and n:
            del data[pos : pos + draw(st.integers(1, 40))]
        elif op == "set" and n:
            data[pos] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]))
        elif op == "dup" and n:
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 64))]
        elif op == "random":
            return draw(st.binary(max_size=2 * n + 16))
    return bytes(data)


ODD_STRINGS = [
    "",
    ".",
    "..",
    "a/b",
    "a\0b",
    "\0",
    " " * 64,
    "ab" * 31,
    "ab" * 32,
    "zz" * 32,
    "00" * 16,
    " " * 32,
    "\udcff",
    "é" * 64,
    "argon2id",
    "$argon2id$v=19$m=8192,t=1,p=1$$",
    "file",
    "dir",
    "link",
    "default",
    "explicit",
    "=" * 8,
    "AAAA",
    "x" * 5000,
]
ODD_INTS = [0, 1, -1, 2, 19, 255, 256, 8191, 8192, 2**31, 2**32, 2**63, 2**64, -(2**63) - 1, 10**30]
json_scalars = (
    st.none()
    | st.booleans()
    | st.sampled_from(ODD_INTS)
    | st.integers()
    | st.floats()
    | st.sampled_from(ODD_STRINGS)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated_json(draw: st.DrawFn, doc: Any) -> bytes:
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if not path:
            if action == "replace":
                doc = draw(json_values)
            continue
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        if action == "replace":
            parent[last] = draw(json_values)
        elif action == "delete":
            del parent[last]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(json_values)
        else:
            parent.insert(last, draw(json_values))
    return json.dumps(doc).encode()


def json_or_bytes(doc: Any, raw: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(mutated_json(doc), mutated(raw))


# -- valid inputs, built once --------------------------------------------------------------------------------
@functools.cache
def valid_slot() -> tuple[str, bytes]:
    slot, raw = slots.build_slot(KEY, VID, PASSWORD, CHEAP, slots.POLICY_DEFAULT)
    return slot.slot_id, raw


def sample_entries() -> list[fmt.BlobEntry]:
    p = fmt.PACK_PREAMBLE_SIZE
    return [
        fmt.BlobEntry(b"\x01" * 32, fmt.BlobType.DATA, 0, p, 100, 72),
        fmt.BlobEntry(b"\x02" * 32, fmt.BlobType.TREE, fmt.FLAG_ZSTD, p + 100, 60, 1000),
    ]


@functools.cache
def valid_pack() -> tuple[str, bytes]:
    pb = PackBuilder(0)
    for data in (b"one", b"two" * 500, b""):
        pb.add(seal_blob(KEY, VID, fmt.BlobType.DATA, KEY.blob_id(data), data, 3))
    return pb.name, pb.finish(KEY, VID)


def sample_tree() -> list[Node]:
    return [
        Node("a.txt", "file", 0o644, 5, 3, content=(b"\x01" * 32, b"\x02" * 32), uid=1000, gid=100,
             user="alice", group="users"),
        Node("sub", "dir", 0o755, 6, subtree=b"\x03" * 32, uid=0, gid=0),
        Node("ln", "link", 0o777, 7, target="a.txt"),
    ]


def sample_record() -> catalog.VersionRecord:
    return catalog.VersionRecord(
        "ab" * 32, "photos/2020", 3, "2026-01-01T00:00:00Z", "dir", b"\x04" * 32, 1000, 10, 500, "host"
    )


INDEX_HANDLE = Handle(Kind.INDEX, "cd" * 32)


# -- key slots and config ------------------------------------------------------------------------------------
@FUZZ
@given(st.data())
def test_parse_slot(data: st.DataObject) -> None:
    slot_id, raw = valid_slot()
    mutant = data.draw(json_or_bytes(json.loads(raw), raw))
    only_vault_errors(slots.parse_slot, mutant, slot_id)


@settings(FUZZ, max_examples=max(1, EXAMPLES // 2))
@given(st.data())
def test_unlock_a_mutated_slot(data: st.DataObject) -> None:
    """Past the parser: the PHC check, argon2 (only for capped, hash-matching parameters), the unwrap."""
    slot_id, raw = valid_slot()
    mutant = data.draw(mutated_json(json.loads(raw)))
    backend = MemoryBackend()
    backend.save(Handle(Kind.KEYS, slot_id), mutant)
    only_vault_errors(slot_store.KeyStore(backend, VID).unlock, PASSWORD)


@FUZZ
@given(st.data())
def test_load_config(data: st.DataObject) -> None:
    raw = new_config().to_bytes()
    backend = MemoryBackend()
    backend.save(CONFIG_HANDLE, data.draw(json_or_bytes(json.loads(raw), raw)))
    config = only_vault_errors(load_config, backend)
    if config is not None:
        assert len(config.vault_id) == fmt.VAULT_ID_SIZE
        assert fmt.FORMAT_VERSION_MIN <= config.format_version <= fmt.FORMAT_VERSION_MAX


# -- entries, index payloads, pack framing -------------------------------------------------------------------
@FUZZ
@given(st.data())
def test_decode_entries_and_index(data: st.DataObject) -> None:
    entries = sample_entries()
    raw_entries = fmt.encode_entries(entries)
    packs = [(b"\xaa" * 32, entries), (b"\xbb" * 32, []), (b"\xcc" * 32, entries[:1])]
    raw_index = fmt.encode_index([fmt.IndexedPack(p, 0, e) for p, e in packs], False)
    got = only_vault_errors(fmt.decode_entries, data.draw(mutated(raw_entries)), 0, "entries")
    if got is not None:
        for e in got[0]:
            assert e.blob_type in fmt.BlobType.ALL and e.length >= fmt.AEAD_OVERHEAD
    only_vault_errors(fmt.decode_index, data.draw(mutated(raw_index)), "index")


@FUZZ
@given(st.binary(max_size=12), st.integers(-10, 2**40), st.data())
def test_pack_preamble_and_trailer(buf: bytes, pack_size: int, data: st.DataObject) -> None:
    only_vault_errors(fmt.parse_pack_preamble, data.draw(mutated(fmt.PACK_PREAMBLE)), "pack")
    only_vault_errors(fmt.parse_pack_preamble, buf, "pack")
    hlen = only_vault_errors(
        fmt.parse_pack_trailer, buf[:4] if data.draw(st.booleans()) else buf, pack_size, "p"
    )
    if hlen is not None:
        assert fmt.AEAD_OVERHEAD < hlen <= pack_size - fmt.PACK_PREAMBLE_SIZE - 4


@FUZZ
@given(st.data())
def test_read_pack_header_over_a_mutated_pack(data: st.DataObject) -> None:
    name, raw = valid_pack()
    backend = MemoryBackend()
    mutant = data.draw(mutated(raw))
    backend.save(Handle(Kind.DATA, name), mutant)
    got = only_vault_errors(read_pack_header, backend, KEY, VID, name)
    if got is not None:
        assert got[1] == len(mutant)


@FUZZ
@given(st.data())
def test_read_pack_header_with_an_authentic_odd_header(data: st.DataObject) -> None:
    name, raw = valid_pack()
    (hlen,) = struct.unpack("<I", raw[-4:])
    body = raw[: len(raw) - 4 - hlen]
    plain = data.draw(mutated(fmt.encode_entries(sample_entries())))
    header = KEY.meta.seal(plain, fmt.pack_header_aad(VID, name))
    backend = MemoryBackend()
    backend.save(Handle(Kind.DATA, name), body + header + struct.pack("<I", len(header)))
    got = only_vault_errors(read_pack_header, backend, KEY, VID, name)
    if got is not None:
        for e in got[0].entries:
            assert e.offset >= fmt.PACK_PREAMBLE_SIZE and e.offset + e.length <= len(body)


# -- standalone objects: index objects and version records ---------------------------------------------------
@FUZZ
@given(st.data())
def test_open_object_over_mutated_objects(data: st.DataObject) -> None:
    payload = fmt.encode_index([fmt.IndexedPack(b"\xaa" * 32, 0, sample_entries())], False)
    raw = seal_object(KEY, VID, INDEX_HANDLE, fmt.ObjectType.INDEX, payload)
    obj_type = data.draw(st.sampled_from([fmt.ObjectType.INDEX, fmt.ObjectType.VERSION, 0, 255]))
    got = only_vault_errors(open_object, KEY, VID, INDEX_HANDLE, obj_type, data.draw(mutated(raw)))
    if got is not None:
        assert got == payload


@FUZZ
@given(st.data())
def test_authentic_index_object_with_odd_contents(data: st.DataObject) -> None:
    packs = [fmt.IndexedPack(b"\xaa" * 32, 0, sample_entries()), fmt.IndexedPack(b"\xbb" * 32, 0, sample_entries()[:1])]
    payload = fmt.encode_index(packs, False)
    compressed = data.draw(st.booleans())
    body = data.draw(mutated(payload))
    if not compressed:  # the object body itself (a zstd frame) altered before sealing
        body = data.draw(mutated(zstandard.ZstdCompressor().compress(payload)))
        prefix = fmt.object_prefix(fmt.ObjectType.INDEX)
        raw = prefix + KEY.meta.seal(body, fmt.object_aad(prefix, VID, INDEX_HANDLE.name))
    else:
        raw = seal_object(KEY, VID, INDEX_HANDLE, fmt.ObjectType.INDEX, body)
    plain = only_vault_errors(open_object, KEY, VID, INDEX_HANDLE, fmt.ObjectType.INDEX, raw)
    if plain is not None:
        only_vault_errors(fmt.decode_index, plain, "index")


@FUZZ
@given(st.data())
def test_load_records_over_mutated_objects(data: st.DataObject) -> None:
    rec = sample_record()
    doc = rec.to_json()
    backend = MemoryBackend()
    if data.draw(st.booleans()):
        # bytes of a genuine record altered in storage
        good = seal_object(KEY, VID, rec.handle, fmt.ObjectType.VERSION, json.dumps(doc).encode())
        backend.save(rec.handle, data.draw(mutated(good)))
    else:
        # a record sealed with the right key whose JSON is odd
        payload = data.draw(json_or_bytes(doc, fmt.encode_json(doc)))
        backend.save(rec.handle, seal_object(KEY, VID, rec.handle, fmt.ObjectType.VERSION, payload))
    got = only_vault_errors(catalog.load_records, backend, KEY, VID)
    if got:
        [r] = got
        assert isinstance(r.item, str) and len(r.tree) == fmt.ID_SIZE and r.type in ("file", "dir")
        assert all(isinstance(n, int) and n >= 0 for n in (r.version, r.size, r.files, r.bytes_added))


# -- trees ---------------------------------------------------------------------------------------------------
@FUZZ
@given(st.data())
def test_decode_tree(data: st.DataObject) -> None:
    raw = encode_tree(sample_tree())
    nodes = only_vault_errors(decode_tree, data.draw(json_or_bytes(json.loads(raw), raw)), "tree")
    for n in nodes or []:
        assert n.name and n.name not in (".", "..") and "/" not in n.name and "\0" not in n.name
        assert n.type in ("file", "dir", "link")
        assert all(len(c) == fmt.ID_SIZE for c in n.content)
        assert n.type != "dir" or (n.subtree is not None and len(n.subtree) == fmt.ID_SIZE)
        assert n.type != "link" or (n.target and "\0" not in n.target)
        assert n.uid is None or 0 <= n.uid < 2**32 - 1
        assert n.gid is None or 0 <= n.gid < 2**32 - 1
        assert "\0" not in n.user and "\0" not in n.group


# -- blobs ---------------------------------------------------------------------------------------------------
BLOB_DATA = b"some blob data " * 200
BLOB = seal_blob(KEY, VID, fmt.BlobType.DATA, KEY.blob_id(BLOB_DATA), BLOB_DATA, 3)
BLOB_ENTRY = fmt.BlobEntry(
    BLOB.blob_id, BLOB.blob_type, BLOB.flags, fmt.PACK_PREAMBLE_SIZE, len(BLOB.sealed), BLOB.raw_length
)


@FUZZ
@given(st.data())
def test_open_blob_with_mutated_bytes_or_entry(data: st.DataObject) -> None:
    assert BLOB.flags == fmt.FLAG_ZSTD
    sealed = BLOB.sealed
    entry = BLOB_ENTRY
    if data.draw(st.booleans()):
        sealed = data.draw(mutated(sealed))
    if data.draw(st.booleans()):
        u32 = st.integers(0, 2**32 - 1)
        entry = fmt.BlobEntry(
            data.draw(st.sampled_from([entry.blob_id, bytes(32), entry.blob_id[:-1] + b"\0"])),
            data.draw(st.sampled_from([entry.blob_type, 0, 2, 3, 255])),
            data.draw(st.sampled_from([entry.flags, 0, 2, 3, 255])),
            entry.offset,
            data.draw(st.sampled_from([entry.length, len(sealed)]) | u32),
            data.draw(st.sampled_from([entry.raw_length, 0, entry.raw_length + 1]) | st.integers(0, 2**20)),
        )
    out = only_vault_errors(open_blob, KEY, VID, entry, sealed, "blob", 0)
    if out is not None:
        assert out == BLOB_DATA


@FUZZ
@given(st.data())
def test_open_blob_with_an_authentic_odd_payload(data: st.DataObject) -> None:
    """Sealed with the right key and AAD, but the payload is a damaged or hostile zstd frame."""
    frame = zstandard.ZstdCompressor(write_content_size=data.draw(st.booleans())).compress(BLOB_DATA)
    payload = data.draw(mutated(frame) | st.just(frame) | st.binary(max_size=64))
    flags = data.draw(st.sampled_from([fmt.FLAG_ZSTD, 0]))
    raw_length = data.draw(
        st.sampled_from([len(BLOB_DATA), 0, 1, len(BLOB_DATA) - 1]) | st.integers(0, 1 << 20)
    )
    blob_id = b"\x07" * 32
    sealed = KEY.data.seal(payload, fmt.blob_aad(VID, fmt.BlobType.DATA, flags, raw_length, blob_id))
    entry = fmt.BlobEntry(blob_id, fmt.BlobType.DATA, flags, fmt.PACK_PREAMBLE_SIZE, len(sealed), raw_length)
    out = only_vault_errors(open_blob, KEY, VID, entry, sealed, "blob", 0)
    if out is not None:
        assert len(out) == raw_length
