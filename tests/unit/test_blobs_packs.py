"""Blobs (compress, seal, open) and packs (build, header, trailer) at boundary sizes and under tampering."""

from __future__ import annotations

import dataclasses
import os
import struct
import tracemalloc

import pytest
import zstandard

from vault import format as fmt
from vault.crypto.keyring import Keyring
from vault.errors import IntegrityError, UnsupportedVersionError
from vault.repo.blobs import SealedBlob, open_blob, seal_blob, verify_blob_id
from vault.repo.packs import PackBuilder, read_pack_header
from vault.storage.base import Handle, Kind
from vault.storage.memory import MemoryBackend

VID = bytes(range(16))
KEY = Keyring.from_master_key(bytes(range(32)), VID)
MIB = 1024 * 1024


def half_compressible(size: int) -> bytes:
    return os.urandom(size // 2) + bytes(size - size // 2)


def entry_for(blob: SealedBlob, offset: int = fmt.PACK_PREAMBLE_SIZE) -> fmt.BlobEntry:
    return fmt.BlobEntry(blob.blob_id, blob.blob_type, blob.flags, offset, len(blob.sealed), blob.raw_length)


def seal(data: bytes, level: int = 3, blob_type: int = fmt.BlobType.DATA) -> SealedBlob:
    return seal_blob(KEY, VID, blob_type, KEY.blob_id(data), data, level)


def seal_payload(payload: bytes, raw_length: int, flags: int = fmt.FLAG_ZSTD) -> tuple[fmt.BlobEntry, bytes]:
    """Seal arbitrary bytes with the right key and AAD, as a writer with a bug (or an insider) could."""
    blob_id = b"\x42" * 32
    sealed = KEY.data.seal(payload, fmt.blob_aad(VID, fmt.BlobType.DATA, flags, raw_length, blob_id))
    return fmt.BlobEntry(
        blob_id, fmt.BlobType.DATA, flags, fmt.PACK_PREAMBLE_SIZE, len(sealed), raw_length
    ), sealed


# -- blobs ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("level", [0, 3])
@pytest.mark.parametrize("size", [0, 1, fmt.CHUNK_MIN - 1, fmt.CHUNK_MIN, fmt.CHUNK_MIN + 1, fmt.CHUNK_MAX])
def test_seal_open_round_trip(size: int, level: int) -> None:
    data = half_compressible(size)
    blob = seal(data, level)
    assert blob.raw_length == size
    if level == 0 or size == 0:
        assert blob.flags == 0 and len(blob.sealed) == size + fmt.AEAD_OVERHEAD
    e = entry_for(blob)
    out = open_blob(KEY, VID, e, blob.sealed, "blob", 0)
    assert out == data
    verify_blob_id(KEY, out, e, "blob")


def test_incompressible_data_is_stored_raw() -> None:
    data = os.urandom(fmt.CHUNK_MIN)
    blob = seal(data, 3)
    assert blob.flags == 0
    assert len(blob.sealed) == len(data) + fmt.AEAD_OVERHEAD
    assert open_blob(KEY, VID, entry_for(blob), blob.sealed, "b", 0) == data


@pytest.mark.parametrize("level", [1, 3, 19])
def test_compressible_data_is_smaller(level: int) -> None:
    data = b"all work and no play makes jack a dull boy\n" * 5000
    blob = seal(data, level)
    assert blob.flags == fmt.FLAG_ZSTD
    assert len(blob.sealed) < len(data) // 10
    assert open_blob(KEY, VID, entry_for(blob), blob.sealed, "b", 0) == data


def test_blob_larger_than_the_limit_is_refused() -> None:
    with pytest.raises(ValueError):
        seal_blob(KEY, VID, fmt.BlobType.DATA, b"\0" * 32, memoryview(bytearray(fmt.MAX_BLOB_RAW + 1)), 0)


@pytest.mark.parametrize(
    "change",
    [
        {"raw_length": +1},
        {"raw_length": -1},
        {"flags": "toggle"},
        {"blob_id": "other"},
        {"blob_type": "other"},
        {"length": -1},
    ],
)
@pytest.mark.parametrize("compressible", [True, False])
def test_open_blob_detects_a_changed_entry(change: dict[str, object], compressible: bool) -> None:
    data = b"abc" * 30_000 if compressible else os.urandom(90_000)
    blob = seal(data)
    assert bool(blob.flags) == compressible
    e = entry_for(blob)
    [(field, how)] = change.items()
    if field == "raw_length":
        e = dataclasses.replace(e, raw_length=e.raw_length + int(how))  # type: ignore[call-overload]
    elif field == "flags":
        e = dataclasses.replace(e, flags=e.flags ^ fmt.FLAG_ZSTD)
    elif field == "blob_id":
        e = dataclasses.replace(e, blob_id=bytes(32))
    elif field == "blob_type":
        e = dataclasses.replace(e, blob_type=fmt.BlobType.TREE)
    else:
        e = dataclasses.replace(e, length=e.length - 1)
    with pytest.raises(IntegrityError):
        open_blob(KEY, VID, e, blob.sealed, "b", 0)


def test_open_blob_detects_changed_bytes_and_other_keys() -> None:
    blob = seal(b"hello world" * 1000)
    e = entry_for(blob)
    for pos in (0, fmt.NONCE_SIZE, len(blob.sealed) // 2, len(blob.sealed) - 1):
        bad = bytearray(blob.sealed)
        bad[pos] ^= 1
        with pytest.raises(IntegrityError):
            open_blob(KEY, VID, e, bytes(bad), "b", 0)
    with pytest.raises(IntegrityError):
        open_blob(KEY, VID, e, blob.sealed[:-1], "b", 0)
    with pytest.raises(IntegrityError):
        open_blob(KEY, VID, e, blob.sealed + b"\0", "b", 0)
    with pytest.raises(IntegrityError):
        open_blob(KEY, bytes(16), e, blob.sealed, "b", 0)
    with pytest.raises(IntegrityError):
        open_blob(Keyring.from_master_key(bytes(32), VID), VID, e, blob.sealed, "b", 0)


def test_verify_blob_id_detects_other_data() -> None:
    blob = seal(b"one")
    with pytest.raises(IntegrityError):
        verify_blob_id(KEY, b"two", entry_for(blob), "b")


def _frame_declaring(declared: int, content: bytes) -> bytes:
    """A hand-made zstd frame: the header declares ``declared`` bytes; one raw block holds ``content``."""
    header = b"\x28\xb5\x2f\xfd" + bytes([0xC0, 0x00]) + struct.pack("<Q", declared)
    return header + struct.pack("<I", (len(content) << 3) | 1)[:3] + content


def _peak_during(fn: object, *args: object) -> tuple[int, BaseException | None]:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        err: BaseException | None = None
        try:
            fn(*args)  # type: ignore[operator]
        except BaseException as exc:
            err = exc
        return tracemalloc.get_traced_memory()[1], err
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("declared", [32 * MIB, 2**40, 2**63])
def test_zstd_bomb_with_declared_size_cannot_allocate(declared: int) -> None:
    """A frame that claims far more than the entry's raw_length, sealed with the right key: IntegrityError,
    and no allocation anywhere near the claimed size (python-zstandard trusts the frame's content size)."""
    payload = _frame_declaring(declared, b"x" * 100)
    e, sealed = seal_payload(payload, raw_length=100)
    peak, err = _peak_during(open_blob, KEY, VID, e, sealed, "bomb", 0)
    assert isinstance(err, IntegrityError), repr(err)
    assert peak < 4 * MIB


def test_zstd_bomb_real_data_cannot_allocate() -> None:
    payload = zstandard.ZstdCompressor(write_content_size=True).compress(bytes(48 * MIB))
    assert len(payload) < 64 * 1024
    e, sealed = seal_payload(payload, raw_length=1000)
    peak, err = _peak_during(open_blob, KEY, VID, e, sealed, "bomb", 0)
    assert isinstance(err, IntegrityError), repr(err)
    assert peak < 4 * MIB


def test_zstd_bomb_without_declared_size_is_capped() -> None:
    payload = zstandard.ZstdCompressor(write_content_size=False).compress(bytes(48 * MIB))
    assert zstandard.frame_content_size(payload) == -1
    e, sealed = seal_payload(payload, raw_length=1000)
    peak, err = _peak_during(open_blob, KEY, VID, e, sealed, "bomb", 0)
    assert isinstance(err, IntegrityError), repr(err)
    assert peak < 4 * MIB


@pytest.mark.parametrize(
    "payload, raw_length",
    [
        (b"", 0),  # FLAG_ZSTD on an empty payload
        (b"not zstd at all", 15),
        (zstandard.ZstdCompressor(write_content_size=False).compress(b"abc"), 0),
        (zstandard.ZstdCompressor(write_content_size=False).compress(b"abc"), 2),
        (zstandard.ZstdCompressor(write_content_size=False).compress(b"abc"), 4),
        (zstandard.ZstdCompressor().compress(b"abc"), 4),
        (zstandard.ZstdCompressor().compress(b"abc")[:-1], 3),
    ],
)
def test_bad_zstd_payloads_are_integrity_errors(payload: bytes, raw_length: int) -> None:
    e, sealed = seal_payload(payload, raw_length)
    with pytest.raises(IntegrityError):
        open_blob(KEY, VID, e, sealed, "b", 0)


def test_uncompressed_payload_must_match_raw_length() -> None:
    e, sealed = seal_payload(b"12345", 4, flags=0)
    with pytest.raises(IntegrityError):
        open_blob(KEY, VID, e, sealed, "b", 0)


# -- packs ---------------------------------------------------------------------------------------------------
def build_pack(blobs: list[bytes], vault_id: bytes = VID, key: Keyring = KEY) -> tuple[PackBuilder, bytes]:
    pb = PackBuilder(0)
    for data in blobs:
        pb.add(seal_blob(key, vault_id, fmt.BlobType.DATA, key.blob_id(data), data, 3))
    return pb, pb.finish(key, vault_id)


def test_pack_round_trip_through_memory_backend() -> None:
    blobs = [b"", b"a", half_compressible(100_000), os.urandom(5000), b"tree" * 100]
    pb, data = build_pack(blobs)
    assert data.startswith(fmt.PACK_PREAMBLE)
    assert len(pb.name) == 64 and bytes.fromhex(pb.name) == pb.pack_id
    backend = MemoryBackend()
    backend.save(Handle(Kind.DATA, pb.name), data)
    header, size = read_pack_header(backend, KEY, VID, pb.name)
    assert header.entries == pb.entries and header.generation == 0 and size == len(data)
    for e, original in zip(header.entries, blobs, strict=True):
        sealed = backend.load(Handle(Kind.DATA, pb.name), e.offset, e.length)
        assert open_blob(KEY, VID, e, sealed, "b", 0) == original


def test_empty_pack_header_round_trips() -> None:
    pb, data = build_pack([])
    backend = MemoryBackend()
    backend.save(Handle(Kind.DATA, pb.name), data)
    header, size = read_pack_header(backend, KEY, VID, pb.name)
    assert header.entries == [] and size == len(data)


def test_pack_builder_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fmt, "PACK_TARGET_SIZE", 1000)
    pb = PackBuilder(0)
    assert not pb.full()
    pb.add(seal(os.urandom(2000), 0))
    assert pb.full()
    assert PackBuilder(0).pack_id != pb.pack_id


def test_header_swapped_between_two_packs() -> None:
    a, data_a = build_pack([b"first pack blob"])
    b, data_b = build_pack([b"second pack blob"])
    backend = MemoryBackend()
    # Pack A's bytes stored under B's name: its header is bound to A's name.
    backend.save(Handle(Kind.DATA, b.name), data_a)
    with pytest.raises(IntegrityError):
        read_pack_header(backend, KEY, VID, b.name)
    # A's blobs with B's header and trailer, under A's name.
    hlen_b = struct.unpack("<I", data_b[-4:])[0]
    hlen_a = struct.unpack("<I", data_a[-4:])[0]
    spliced = data_a[: len(data_a) - 4 - hlen_a] + data_b[len(data_b) - 4 - hlen_b :]
    backend.save(Handle(Kind.DATA, a.name), spliced)
    with pytest.raises(IntegrityError):
        read_pack_header(backend, KEY, VID, a.name)


def test_pack_from_another_vault_or_key() -> None:
    pb, data = build_pack([b"x"])
    backend = MemoryBackend()
    backend.save(Handle(Kind.DATA, pb.name), data)
    with pytest.raises(IntegrityError):
        read_pack_header(backend, KEY, bytes(16), pb.name)
    with pytest.raises(IntegrityError):
        read_pack_header(backend, Keyring.from_master_key(bytes(32), VID), VID, pb.name)


def test_every_truncation_of_a_pack_is_detected() -> None:
    pb, data = build_pack([b"abc", b"def"])
    backend = MemoryBackend()
    for n in range(len(data)):
        backend.save(Handle(Kind.DATA, pb.name), data[:n])
        with pytest.raises(IntegrityError):
            read_pack_header(backend, KEY, VID, pb.name)


def test_every_flipped_byte_outside_the_blobs_is_detected() -> None:
    pb, data = build_pack([b"abc"])
    backend = MemoryBackend()
    blob_end = pb.entries[-1].offset + pb.entries[-1].length
    for pos in [*range(fmt.PACK_PREAMBLE_SIZE), *range(blob_end, len(data))]:
        bad = bytearray(data)
        bad[pos] ^= 0x10
        backend.save(Handle(Kind.DATA, pb.name), bytes(bad))
        with pytest.raises((IntegrityError, UnsupportedVersionError)):
            read_pack_header(backend, KEY, VID, pb.name)


def test_newer_pack_version_is_unsupported() -> None:
    pb, data = build_pack([b"abc"])
    backend = MemoryBackend()
    backend.save(Handle(Kind.DATA, pb.name), fmt.PACK_MAGIC + bytes([fmt.FORMAT_VERSION_MAX + 1]) + data[5:])
    with pytest.raises(UnsupportedVersionError):
        read_pack_header(backend, KEY, VID, pb.name)


def test_missing_pack_is_integrity_error() -> None:
    with pytest.raises(IntegrityError):
        read_pack_header(MemoryBackend(), KEY, VID, "ab" * 32)


def test_authentic_header_with_out_of_range_entries() -> None:
    """A header that authenticates but lists blobs overlapping the header itself is still refused."""
    pb, data = build_pack([b"abc"])
    bad_entries = [dataclasses.replace(pb.entries[0], length=len(data))]
    header = KEY.meta.seal(fmt.encode_entries(bad_entries), fmt.pack_header_aad(VID, pb.name))
    body = data[: pb.entries[0].offset + pb.entries[0].length]
    backend = MemoryBackend()
    backend.save(Handle(Kind.DATA, pb.name), body + header + struct.pack("<I", len(header)))
    with pytest.raises(IntegrityError):
        read_pack_header(backend, KEY, VID, pb.name)
    # trailing bytes after the entries, inside an authentic header
    header = KEY.meta.seal(fmt.encode_entries(pb.entries) + b"\0", fmt.pack_header_aad(VID, pb.name))
    backend.save(Handle(Kind.DATA, pb.name), body + header + struct.pack("<I", len(header)))
    with pytest.raises(IntegrityError):
        read_pack_header(backend, KEY, VID, pb.name)


def test_finish_parts_is_finish_unjoined(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same builder state gives the same bytes either way (the header's nonce is pinned for the check)."""
    import copy

    blobs = [b"", b"a", half_compressible(100_000), os.urandom(5000)]
    pb = PackBuilder(0)
    for data in blobs:
        pb.add(seal_blob(KEY, VID, fmt.BlobType.DATA, KEY.blob_id(data), data, 3))
    twin = copy.deepcopy(pb)
    monkeypatch.setattr(os, "urandom", lambda n: b"\x07" * n)
    joined = pb.finish(KEY, VID)
    parts = twin.finish_parts(KEY, VID)
    monkeypatch.undo()
    assert len(parts) == len(blobs) + 3 and parts[0] == fmt.PACK_PREAMBLE
    assert b"".join(parts) == joined
    header, size = read_pack_header(_memory_with(pb.name, joined), KEY, VID, pb.name)
    assert (header.entries, header.generation, size) == (pb.entries, 0, len(joined))


def _memory_with(name: str, data: bytes) -> MemoryBackend:
    backend = MemoryBackend()
    backend.save(Handle(Kind.DATA, name), data)
    return backend
