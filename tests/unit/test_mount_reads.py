"""The mount's read path without FUSE: offsets to chunks, each chunk decoded once, damage never read as bytes; the
catalog laid out as directories; and what `vault mount` says when the machine has no FUSE."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import PASSWORD, chunk_places, flip_byte, random_bytes, write_file

import vault
from vault.browse.trees import TreeReader
from vault.errors import IntegrityError, StorageError
from vault.mount import run as mount_run
from vault.mount.files import ChunkCache, OpenFile
from vault.mount.view import ItemDir, Latest, NotThere, Stored, View
from vault.restore import resolve


@pytest.fixture
def stored(tmp_path: Path, cheap_kdf: object) -> tuple[Path, bytes]:
    data = random_bytes(6_000_000, seed=11)
    src = write_file(tmp_path / "src" / "big.bin", data)
    location = tmp_path / "vault"
    vault.init(location, password=PASSWORD)
    with vault.open(location, password=PASSWORD, cache=False) as session:
        session.put(src, compression=0)
        session.put(src, name="group/big.bin", compression=0)
    return location, data


def test_sequential_reads_decode_each_chunk_once(stored: tuple[Path, bytes]) -> None:
    location, data = stored
    with vault.open(location, password=PASSWORD, lock=None, cache=False) as session, \
            ThreadPoolExecutor(2) as pool:
        _, node, _ = resolve(session.repo, "big.bin", None)
        assert len(node.content) > 2
        cache = ChunkCache(session.repo, pool)
        f = OpenFile(session.repo, node, cache)
        out = bytearray()
        for offset in range(0, len(data) + 200_000, 128 * 1024):
            out += f.read(offset, 128 * 1024)
        assert bytes(out) == data
        assert cache.decoded == len(node.content)
        assert f.read(len(data), 10) == b"" and f.read(len(data) - 3, 10) == data[-3:]
        # Reads across a chunk boundary, and a cache too small for one chunk still gives the right bytes.
        tiny = OpenFile(session.repo, node, ChunkCache(session.repo, pool, capacity=1))
        edge = f.starts[1]
        assert tiny.read(edge - 5, 10) == data[edge - 5 : edge + 5]


def test_a_damaged_chunk_is_an_error_never_bytes(stored: tuple[Path, bytes]) -> None:
    location, data = stored
    place = chunk_places(location, "big.bin")[1]
    flip_byte(place.pack, place.offset + 100)
    with vault.open(location, password=PASSWORD, lock=None, cache=False) as session, \
            ThreadPoolExecutor(2) as pool:
        _, node, _ = resolve(session.repo, "big.bin", None)
        f = OpenFile(session.repo, node, ChunkCache(session.repo, pool))
        assert f.read(0, 1000) == data[:1000]
        with pytest.raises(IntegrityError):
            f.read(f.starts[1], 1000)
        with pytest.raises(IntegrityError):  # not kept as a failure, nor as bytes: tried again, fails again
            f.read(f.starts[1] + 10, 10)


def test_the_catalog_as_directories(stored: tuple[Path, bytes]) -> None:
    location, _ = stored
    with vault.open(location, password=PASSWORD, lock=None, cache=False) as session:
        view = View(session.repo, TreeReader(session.repo))
        assert sorted(view.root.children) == ["big.bin", "group"]
        item = view.resolve("/group/big.bin")
        assert isinstance(item, ItemDir) and item.item == "group/big.bin"
        assert [name for name, _ in view.listing(item)] == ["1", "latest"]
        latest = view.resolve("/big.bin/latest")
        assert isinstance(latest, Latest) and latest.target == "1"
        version = view.resolve("/big.bin/1")
        assert isinstance(version, Stored) and version.node.type == "file"
        for missing in ("/nope", "/big.bin/2", "/big.bin/01", "/group/big.bin/1/inside"):
            with pytest.raises(NotThere):
                view.resolve(missing)


def test_no_fuse_is_exit_30_with_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mount_run.ctypes.util, "find_library", lambda name: None)
    with pytest.raises(StorageError) as exc:
        mount_run.load_fuse()
    assert exc.value.exit_code == 30 and exc.value.hint is not None and "fuse3" in exc.value.hint
    real_exists = os.path.exists
    monkeypatch.setattr(mount_run.os.path, "exists", lambda p: False if p == "/dev/fuse" else real_exists(p))
    with pytest.raises(StorageError, match="/dev/fuse"):
        mount_run.load_fuse()
