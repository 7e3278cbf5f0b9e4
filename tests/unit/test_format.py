"""Byte layouts in vault.format: round trips; hostile input always becomes a VaultError with its code."""

from __future__ import annotations

import struct

import pytest

from vault import format as fmt
from vault.errors import IntegrityError, UnsupportedVersionError

VID = bytes(range(16))


def entry(i: int = 0, **over: int | bytes) -> fmt.BlobEntry:
    fields: dict[str, int | bytes] = {
        "blob_id": bytes([i]) * 32,
        "blob_type": fmt.BlobType.DATA,
        "flags": 0,
        "offset": fmt.PACK_PREAMBLE_SIZE + 100 * i,
        "length": 100,
        "raw_length": 72,
    }
    fields.update(over)
    return fmt.BlobEntry(**fields)  # type: ignore[arg-type]


def sample_index(generations: tuple[int, int, int] = (0, 0, 0)) -> list[fmt.IndexedPack]:
    return [
        fmt.IndexedPack(
            b"\xaa" * 32, generations[0], [entry(0), entry(1, blob_type=fmt.BlobType.TREE, flags=fmt.FLAG_ZSTD)]
        ),
        fmt.IndexedPack(b"\xbb" * 32, generations[1], []),
        fmt.IndexedPack(
            b"\xcc" * 32, generations[2], [entry(2, raw_length=fmt.MAX_BLOB_RAW, length=fmt.AEAD_OVERHEAD)]
        ),
    ]


# -- versions ------------------------------------------------------------------------------------------------
def test_check_version_range() -> None:
    for v in range(fmt.FORMAT_VERSION_MIN, fmt.FORMAT_VERSION_MAX + 1):
        fmt.check_version(v, "x")
    with pytest.raises(UnsupportedVersionError) as info:
        fmt.check_version(fmt.FORMAT_VERSION_MAX + 1, "this vault")
    assert info.value.exit_code == 21
    assert "newer" in str(info.value) and "upgrade" in str(info.value)
    with pytest.raises(UnsupportedVersionError):
        fmt.check_version(2**64, "x")
    for bad in (0, -1):
        with pytest.raises(IntegrityError):
            fmt.check_version(bad, "x")


def test_constants_are_consistent() -> None:
    assert fmt.FORMAT_VERSION_MIN <= fmt.FORMAT_VERSION <= fmt.FORMAT_VERSION_MAX
    assert fmt.AEAD_OVERHEAD == fmt.NONCE_SIZE + fmt.TAG_SIZE == 28
    assert fmt.ENTRY_SIZE == 32 + 1 + 1 + 4 + 4 + 4
    assert fmt.CHUNK_MIN < fmt.CHUNK_AVG < fmt.CHUNK_MAX <= fmt.MAX_BLOB_RAW
    assert len({fmt.LABEL_DATA, fmt.LABEL_META, fmt.LABEL_ID, fmt.LABEL_CHUNKER}) == 4
    assert len(fmt.PACK_MAGIC) == len(fmt.OBJECT_MAGIC) == 4 and fmt.PACK_MAGIC != fmt.OBJECT_MAGIC


# -- entries and index objects -------------------------------------------------------------------------------
def test_entries_round_trip() -> None:
    entries = [entry(i) for i in range(5)]
    buf = b"prefix" + fmt.encode_entries(entries) + b"suffix"
    decoded, end = fmt.decode_entries(buf, 6, "t")
    assert decoded == entries
    assert buf[end:] == b"suffix"
    assert fmt.decode_entries(memoryview(fmt.encode_entries([])), 0, "t") == ([], 4)


def test_index_round_trip() -> None:
    packs = sample_index()
    assert fmt.decode_index(fmt.encode_index(packs, False), "t") == packs
    assert fmt.decode_index(fmt.encode_index([], False), "t") == []
    assert fmt.decode_index(fmt.encode_index([], True), "t", True) == []


def test_index_with_generations_round_trip() -> None:
    packs = sample_index((0, 7, 2**32 - 1))
    raw = fmt.encode_index(packs, True)
    assert fmt.decode_index(raw, "t", True) == packs
    assert len(raw) == len(fmt.encode_index(sample_index(), False)) + 3 * 4
    with pytest.raises(IntegrityError):  # read with the other layout: never silently misparsed
        fmt.decode_index(raw, "t", False)


def test_a_version_1_index_can_not_list_later_generations() -> None:
    with pytest.raises(ValueError):
        fmt.encode_index(sample_index((0, 1, 0)), False)


@pytest.mark.parametrize("with_generations", [False, True])
def test_every_truncation_of_an_index_is_integrity_error(with_generations: bool) -> None:
    raw = fmt.encode_index(sample_index(), with_generations)
    for n in range(len(raw)):
        with pytest.raises(IntegrityError):
            fmt.decode_index(raw[:n], "index object", with_generations)


def test_trailing_bytes_in_an_index_are_integrity_error() -> None:
    raw = fmt.encode_index(sample_index(), False)
    with pytest.raises(IntegrityError):
        fmt.decode_index(raw + b"\0", "t")


@pytest.mark.parametrize("count", [1, 2, 0xFFFF, fmt.MAX_PACK_ENTRIES, fmt.MAX_PACK_ENTRIES + 1, 0xFFFFFFFF])
def test_entry_count_larger_than_bytes_present(count: int) -> None:
    raw = struct.pack("<I", count)  # no entries follow
    with pytest.raises(IntegrityError):
        fmt.decode_entries(raw, 0, "t")
    one = fmt.encode_entries([entry()])
    if count > 1:
        with pytest.raises(IntegrityError):
            fmt.decode_entries(struct.pack("<I", count) + one[4:], 0, "t")


@pytest.mark.parametrize("count", [2, 3, 1000, 0xFFFFFFFF])
def test_pack_count_larger_than_bytes_present(count: int) -> None:
    raw = fmt.encode_index([fmt.IndexedPack(b"\1" * 32, 0, [entry()])], False)
    with pytest.raises(IntegrityError):
        fmt.decode_index(struct.pack("<I", count) + raw[4:], "t")


@pytest.mark.parametrize("btype", [0, 3, 255])
def test_unknown_blob_type(btype: int) -> None:
    with pytest.raises(IntegrityError):
        fmt.decode_entries(fmt.encode_entries([entry(blob_type=btype)]), 0, "t")


@pytest.mark.parametrize("flags", [0x04, 0x80, 0xFF, fmt.FLAG_ZSTD | 0x04, fmt.FLAG_SEALED | 0x08])
def test_unknown_flags_are_unsupported_version(flags: int) -> None:
    with pytest.raises(UnsupportedVersionError) as info:
        fmt.decode_entries(fmt.encode_entries([entry(flags=flags)]), 0, "t")
    assert info.value.exit_code == 21


@pytest.mark.parametrize(
    "over", [{"length": 0}, {"length": fmt.AEAD_OVERHEAD - 1}, {"raw_length": fmt.MAX_BLOB_RAW + 1}]
)
def test_impossible_entry_sizes(over: dict[str, int]) -> None:
    with pytest.raises(IntegrityError):
        fmt.decode_entries(fmt.encode_entries([entry(**over)]), 0, "t")


def test_decode_entries_position_past_end() -> None:
    raw = fmt.encode_entries([entry()])
    for pos in (len(raw), len(raw) - 3, len(raw) + 10):
        with pytest.raises(IntegrityError):
            fmt.decode_entries(raw, pos, "t")


# -- packs ---------------------------------------------------------------------------------------------------
def test_pack_preamble() -> None:
    assert fmt.parse_pack_preamble(fmt.PACK_PREAMBLE, "p") == (0, fmt.PACK_PREAMBLE_SIZE)
    assert fmt.parse_pack_preamble(fmt.PACK_PREAMBLE + b"rest", "p") == (0, fmt.PACK_PREAMBLE_SIZE)
    assert fmt.pack_preamble(0) == fmt.PACK_PREAMBLE
    v2 = fmt.pack_preamble(5)
    assert v2 == b"VLTP\x02\x05\x00\x00\x00"
    assert fmt.parse_pack_preamble(v2 + b"rest", "p") == (5, fmt.PACK_PREAMBLE_MAX_SIZE)
    for bad in (v2[:-1], b"VLTP\x02\x00\x00\x00\x00"):  # truncated; generation 0 has only the v1 form
        with pytest.raises(IntegrityError):
            fmt.parse_pack_preamble(bad, "p")
    for bad in (b"", b"VLT", b"VLTP", b"VLTO\x01", b"XLTP\x01"):
        with pytest.raises(IntegrityError):
            fmt.parse_pack_preamble(bad, "p")
    with pytest.raises(UnsupportedVersionError):
        fmt.parse_pack_preamble(fmt.PACK_MAGIC + bytes([fmt.FORMAT_VERSION_MAX + 1]), "p")
    with pytest.raises(IntegrityError):
        fmt.parse_pack_preamble(fmt.PACK_MAGIC + b"\0", "p")


def test_pack_trailer_bounds() -> None:
    smallest = fmt.AEAD_OVERHEAD + 4  # a sealed header listing no blobs
    size = fmt.PACK_PREAMBLE_SIZE + smallest + 4
    assert fmt.parse_pack_trailer(struct.pack("<I", smallest), size, "p") == smallest
    # The header can't extend into the preamble.
    with pytest.raises(IntegrityError):
        fmt.parse_pack_trailer(struct.pack("<I", smallest), size - 1, "p")
    with pytest.raises(IntegrityError):
        fmt.parse_pack_trailer(struct.pack("<I", smallest - 1), 10**6, "p")
    with pytest.raises(IntegrityError):
        fmt.parse_pack_trailer(struct.pack("<I", 0), 10**6, "p")
    with pytest.raises(IntegrityError):
        fmt.parse_pack_trailer(struct.pack("<I", fmt.MAX_PACK_HEADER + 1), 2**40, "p")
    with pytest.raises(IntegrityError):
        fmt.parse_pack_trailer(struct.pack("<I", 0xFFFFFFFF), 2**40, "p")
    assert fmt.parse_pack_trailer(struct.pack("<I", fmt.MAX_PACK_HEADER), 2**40, "p") == fmt.MAX_PACK_HEADER
    for bad in (b"", b"\0\0\0", b"\0" * 5):
        with pytest.raises(IntegrityError):
            fmt.parse_pack_trailer(bad, 10**6, "p")
    with pytest.raises(IntegrityError):
        fmt.parse_pack_trailer(struct.pack("<I", smallest), 0, "p")


def test_check_pack_entries_accepts_adjacent_blobs() -> None:
    p = fmt.PACK_PREAMBLE_SIZE
    entries = [entry(1, offset=p + 100), entry(0, offset=p), entry(2, offset=p + 200)]
    fmt.check_pack_entries(entries, p + 300, "p")
    fmt.check_pack_entries([], p, "p")


@pytest.mark.parametrize(
    "offsets, header_start",
    [
        ([fmt.PACK_PREAMBLE_SIZE, fmt.PACK_PREAMBLE_SIZE + 99], 10_000),  # overlap by one byte
        ([fmt.PACK_PREAMBLE_SIZE, fmt.PACK_PREAMBLE_SIZE], 10_000),  # the same blob twice
        ([fmt.PACK_PREAMBLE_SIZE + 50, fmt.PACK_PREAMBLE_SIZE], 10_000),  # overlap, out of order
        ([fmt.PACK_PREAMBLE_SIZE - 1], 10_000),  # inside the preamble
        ([0], 10_000),
        ([fmt.PACK_PREAMBLE_SIZE], fmt.PACK_PREAMBLE_SIZE + 99),  # runs into the header
        ([fmt.PACK_PREAMBLE_SIZE + 10_000], 10_000),  # beyond the header
    ],
)
def test_check_pack_entries_detects_overlap(offsets: list[int], header_start: int) -> None:
    entries = [entry(i, offset=o) for i, o in enumerate(offsets)]
    with pytest.raises(IntegrityError):
        fmt.check_pack_entries(entries, header_start, "p")


# -- objects -------------------------------------------------------------------------------------------------
def test_object_prefix_round_trip() -> None:
    for t in fmt.ObjectType.ALL:
        prefix = fmt.object_prefix(t)
        assert len(prefix) == fmt.OBJECT_PREFIX_SIZE
        assert fmt.parse_object_prefix(prefix + bytes(fmt.AEAD_OVERHEAD), t, "o") == (prefix, 0)
        later = fmt.object_prefix(t, 3)
        assert later == fmt.OBJECT_MAGIC + bytes([2, t]) + b"\x03\x00\x00\x00"
        assert fmt.parse_object_prefix(later + bytes(fmt.AEAD_OVERHEAD), t, "o") == (later, 3)
        for bad in (later + bytes(fmt.AEAD_OVERHEAD - 1), fmt.OBJECT_MAGIC + bytes([2, t, 0, 0, 0, 0, *bytes(28)])):
            with pytest.raises(IntegrityError):
                fmt.parse_object_prefix(bad, t, "o")


def test_object_prefix_checks() -> None:
    body = bytes(fmt.AEAD_OVERHEAD)
    good = fmt.object_prefix(fmt.ObjectType.INDEX)
    with pytest.raises(IntegrityError):  # wrong type
        fmt.parse_object_prefix(good + body, fmt.ObjectType.VERSION, "o")
    with pytest.raises(IntegrityError):  # bad magic
        fmt.parse_object_prefix(b"VLTP" + good[4:] + body, fmt.ObjectType.INDEX, "o")
    with pytest.raises(IntegrityError):  # too short to hold nonce and tag
        fmt.parse_object_prefix(good + body[:-1], fmt.ObjectType.INDEX, "o")
    for n in range(fmt.OBJECT_PREFIX_SIZE + 1):
        with pytest.raises(IntegrityError):
            fmt.parse_object_prefix((good + body)[:n], fmt.ObjectType.INDEX, "o")
    newer = fmt.OBJECT_MAGIC + bytes([fmt.FORMAT_VERSION_MAX + 1, fmt.ObjectType.INDEX])
    with pytest.raises(UnsupportedVersionError):
        fmt.parse_object_prefix(newer + body, fmt.ObjectType.INDEX, "o")
    with pytest.raises(IntegrityError):
        fmt.parse_object_prefix(fmt.OBJECT_MAGIC + bytes([0, 1]) + body, fmt.ObjectType.INDEX, "o")


def test_aads_bind_what_they_should() -> None:
    bid = b"\1" * 32
    base = fmt.blob_aad(VID, 1, 0, 10, bid)
    assert base.startswith(fmt.AAD_BLOB)
    variants = {
        fmt.blob_aad(bytes(16), 1, 0, 10, bid),
        fmt.blob_aad(VID, 2, 0, 10, bid),
        fmt.blob_aad(VID, 1, 1, 10, bid),
        fmt.blob_aad(VID, 1, 0, 11, bid),
        fmt.blob_aad(VID, 1, 0, 10, b"\2" * 32),
    }
    assert base not in variants and len(variants) == 5
    assert fmt.pack_header_aad(VID, "aa") != fmt.pack_header_aad(VID, "ab")
    assert fmt.pack_header_aad(VID, "aa") != fmt.pack_header_aad(bytes(16), "aa")
    p1, p2 = fmt.object_prefix(1), fmt.object_prefix(2)
    assert fmt.object_aad(p1, VID, "aa") != fmt.object_aad(p2, VID, "aa")
    assert fmt.object_aad(p1, VID, "aa") != fmt.object_aad(p1, VID, "ab")


# -- JSON and ids --------------------------------------------------------------------------------------------
def test_json_is_canonical_and_round_trips_surrogates() -> None:
    doc = {"b": 1, "a": ["x", "caf\u00e9", "bad\udcffname"]}
    raw = fmt.encode_json(doc)
    assert raw == b'{"a":["x","caf\\u00e9","bad\\udcffname"],"b":1}'
    assert fmt.decode_json_object(raw, "t") == doc


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[]",
        b"1",
        b'"s"',
        b"null",
        b"{",
        b"\xff\xfe",
        b"{}x",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b"\xc3\x28",
    ],
)
def test_decode_json_object_rejects(raw: bytes) -> None:
    with pytest.raises(IntegrityError):
        fmt.decode_json_object(raw, "t")


def test_id_from_hex() -> None:
    assert fmt.id_from_hex("ab" * 32, "t") == b"\xab" * 32
    assert fmt.id_hex(b"\xab" * 32) == "ab" * 32
    for bad in [
        "ab" * 31,
        "ab" * 33,
        "zz" * 32,
        None,
        5,
        b"ab" * 32,
        ["ab" * 32],
        " " * 64,
        "ab " * 21 + "a",
        "\u0661" * 64,
        "ab" * 31 + "\n\n",
    ]:
        with pytest.raises(IntegrityError):
            fmt.id_from_hex(bad, "t")
