"""Tree restores write their files without an fsync each, make them durable in batches (syncfs) and only then
put them into place (vault/restore/directory.py, "tree restores"). These tests run ``Restorer.restore`` in-process
with small batch sizes, so that one small tree goes through many batches, both pools, the syncfs path and the
fsync-per-file fallback, with unnamed temporary files (O_TMPFILE, linked in) and named ones (renamed in); and they
break it at each step to check that no temporary file survives a failure and that nothing appears under a final
name before it is durable.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import PASSWORD, VaultCli

from vault.errors import StorageError, VaultError
from vault.pipeline.runner import Pipeline
from vault.repo.repository import Repository
from vault.restore import GetResult, Restorer, directory, durability, files, resolve
from vault.storage.local import LocalBackend

T = 1_600_000_000 * 10**9 + 123_456_789


def _make_source(root: Path) -> None:
    """Several directories of small files, a few bigger multi-chunk files, odd modes, a read-only directory
    (its files must still go in: its mode is set after its last rename), an empty file and a link."""
    for d in range(4):
        sub = root / f"d{d}" / "inner"
        sub.mkdir(parents=True)
        for i in range(9):
            (root / f"d{d}" / f"f{i}.txt").write_bytes(f"file {d}/{i}\n".encode() * (i * 37 + 1))
            (sub / f"g{i}.bin").write_bytes(os.urandom(i * 1000))
    (root / "big.bin").write_bytes(os.urandom(3 << 20))
    (root / "d1" / "big2.bin").write_bytes(os.urandom((2 << 20) + 12345))
    (root / "empty").write_bytes(b"")
    os.chmod(root / "d0" / "f1.txt", 0o751)
    os.chmod(root / "d2" / "f2.txt", 0o400)
    os.symlink("d0/f1.txt", root / "link")
    ro = root / "readonly"
    ro.mkdir()
    (ro / "a.txt").write_bytes(b"in a read-only directory\n")
    for p in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        os.utime(p, ns=(T, T), follow_symlinks=False)
    os.chmod(ro, 0o555)
    os.utime(ro, ns=(T, T))
    os.utime(root, ns=(T, T))


def _state(root: Path) -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {}
    for p in sorted(root.rglob("*")):
        st = os.lstat(p)
        rel = str(p.relative_to(root))
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("link", os.readlink(p))
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = ("dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns)
        else:
            out[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_mtime_ns, p.read_bytes())
    return out


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp") and ".vault-" in p.name]


@pytest.fixture
def stored(vault: VaultCli, tmp_path: Path) -> Iterator[Path]:
    src = tmp_path / "src"
    src.mkdir()
    _make_source(src)
    vault("put", str(src), check=0)
    yield src
    for p in tmp_path.rglob("*"):  # let pytest remove the read-only directories
        if p.is_dir() and not p.is_symlink():
            os.chmod(p, 0o755)


@pytest.fixture(params=["unnamed", "named"])
def temporaries(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test twice: with unnamed temporary files where this system has them, and with named ones (the
    fallback elsewhere)."""
    if request.param == "named":
        monkeypatch.setattr(files, "_TMPFILE", 0)
    elif not files._TMPFILE:
        pytest.skip("no O_TMPFILE here")
    return str(request.param)


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch, temporaries: str) -> None:
    monkeypatch.setattr(directory, "SMALL_FILE_BYTES", 4000)  # the g*.bin files above 4000 bytes take the I/O pool
    monkeypatch.setattr(directory, "SMALL_BATCH_FILES", 3)
    monkeypatch.setattr(directory, "SMALL_BATCH_BYTES", 5000)
    monkeypatch.setattr(directory, "SYNC_BATCH_FILES", 5)
    monkeypatch.setattr(directory, "SYNC_BATCH_BYTES", 20_000)
    monkeypatch.setattr(directory, "SYNC_BATCH_DIRS", 2)


def _restore(vault: VaultCli, dest: Path, force: bool = False, threads: int = 2) -> GetResult:
    repo = Repository.open(LocalBackend(vault.vault_path), PASSWORD.encode(), rehash=False)
    record, node, _ = resolve(repo, "src", None)
    with Pipeline(threads) as pipe:
        return Restorer(repo, pipe).restore(record, node, str(dest), force)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("syncfs", [True, False], ids=["syncfs", "fsync-per-file"])
def test_batched_restore_gives_the_same_tree(
    vault: VaultCli, stored: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_batches: None,
    syncfs: bool, threads: int,
) -> None:
    syncs: list[int] = []
    fsynced: list[int] = []
    real_fsync = os.fsync
    if syncfs:
        if durability._SYNCFS is None:
            pytest.skip("no syncfs(2) here")
        real_syncfs = durability._SYNCFS

        def counting_syncfs(fd: int) -> None:
            syncs.append(fd)
            real_syncfs(fd)

        monkeypatch.setattr(durability, "_SYNCFS", counting_syncfs)
    else:
        monkeypatch.setattr(durability, "_SYNCFS", None)
    monkeypatch.setattr(os, "fsync", lambda fd: (fsynced.append(fd), real_fsync(fd))[1])
    dest = tmp_path / "out"
    result = _restore(vault, dest, threads=threads)
    monkeypatch.undo()
    assert _state(dest) == _state(stored)
    assert _temp_files(dest) == []
    files = [p for p in stored.rglob("*") if p.is_file() and not p.is_symlink()]
    n_files = len(files)
    assert result.files == n_files and not result.failed
    assert result.bytes_written == sum(p.stat().st_size for p in files)
    if syncfs:
        assert len(syncs) > 3  # several batches, and a last one for the renames
        assert len(fsynced) <= 1  # only DEST's parent, not one per file
    else:
        assert len(fsynced) > n_files  # each file, each directory


def test_force_replaces_existing_files_and_keeps_others(
    vault: VaultCli, stored: Path, tmp_path: Path, small_batches: None,
) -> None:
    dest = tmp_path / "out"
    (dest / "d0").mkdir(parents=True)
    (dest / "d0" / "f0.txt").write_bytes(b"old content, replaced\n")
    (dest / "mine.txt").write_bytes(b"not in the vault, kept\n")
    with pytest.raises(VaultError) as raised:
        _restore(vault, dest)
    assert raised.value.exit_code == 40  # DEST exists: --force needed
    _restore(vault, dest, force=True)
    got = _state(dest)
    assert got.pop("mine.txt")[-1] == b"not in the vault, kept\n"
    assert got == _state(stored)
    assert _temp_files(dest) == []


@pytest.mark.parametrize("where", ["syncfs", "rename", "write", "load"])
def test_a_failure_mid_restore_leaves_no_temporary_file(
    vault: VaultCli, stored: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_batches: None,
    where: str,
) -> None:
    calls = 0

    def eio(*_args: object) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    def after(n: int, real: object) -> object:
        def fn(*args: object, **kwargs: object) -> object:
            nonlocal calls
            calls += 1
            if calls > n:
                eio()
            return real(*args, **kwargs)  # type: ignore[operator]
        return fn

    if where == "syncfs":
        if durability._SYNCFS is None:
            pytest.skip("no syncfs(2) here")
        monkeypatch.setattr(durability, "_SYNCFS", after(2, durability._SYNCFS))
    elif where == "rename":  # putting files in place: link(2) of an unnamed one, rename(2) of a named one
        monkeypatch.setattr(os, "rename", after(7, os.rename))
        monkeypatch.setattr(os, "link", after(7, os.link))
    elif where == "write":
        monkeypatch.setattr(os, "write", after(20, os.write))
    else:
        real_load = LocalBackend.load

        def load(self: LocalBackend, h: object, offset: int = 0, length: int | None = None) -> bytes:
            nonlocal calls
            calls += 1
            if calls > 25:
                raise StorageError("cannot read <data/x>: Input/output error")
            return real_load(self, h, offset, length)  # type: ignore[arg-type]

        monkeypatch.setattr(LocalBackend, "load", load)
    dest = tmp_path / "out"
    with pytest.raises(StorageError):
        _restore(vault, dest)
    monkeypatch.undo()
    assert _temp_files(dest) == []
    # What is there is complete: every file under its final name has the source's bytes.
    for p in dest.rglob("*"):
        if p.is_file() and not p.is_symlink():
            assert p.read_bytes() == (stored / p.relative_to(dest)).read_bytes(), p


def test_no_file_is_renamed_into_place_before_it_is_durable(
    vault: VaultCli, stored: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_batches: None,
) -> None:
    if durability._SYNCFS is None:
        pytest.skip("no syncfs(2) here")
    real_syncfs, real_rename, real_open, real_link = durability._SYNCFS, os.rename, os.open, os.link
    written: set[str] = set()  # temporary files created since the last syncfs (names, or "/proc/self/fd/N")
    durable: set[str] = set()
    early: list[str] = []
    placed: list[str] = []

    def syncfs(fd: int) -> None:
        real_syncfs(fd)
        durable.update(written)

    def open_(path: str, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        fd = real_open(path, flags, mode, dir_fd=dir_fd)
        if files._TMPFILE and flags & files._TMPFILE == files._TMPFILE:
            key = f"/proc/self/fd/{fd}"  # a descriptor number is reused once closed: forget its past
            durable.discard(key)
            written.add(key)
        elif isinstance(path, str) and path.endswith(".tmp"):
            written.add(path)
        return fd

    def rename(src: str, dst: str, **kwargs: object) -> None:
        if isinstance(src, str) and src.endswith(".tmp") and src not in durable and src not in linked:
            early.append(src)
        placed.append(dst)
        real_rename(src, dst, **kwargs)  # type: ignore[arg-type]

    linked: set[str] = set()  # temporary names of unnamed files (made at the moment they are put in place)

    def link(src: str, dst: str, **kwargs: object) -> None:
        if src.startswith("/proc/self/fd/"):
            if src not in durable:
                early.append(src)
            placed.append(dst)
            linked.add(dst)
        real_link(src, dst, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(durability, "_SYNCFS", syncfs)
    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "link", link)
    _restore(vault, tmp_path / "out")
    monkeypatch.undo()
    assert placed  # the checks above did see the files go in
    assert not early
    assert _state(tmp_path / "out") == _state(stored)


@pytest.mark.parametrize("what", ["src/big.bin", "src"])
def test_big_files_are_flushed_while_written(
    vault: VaultCli, stored: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, what: str,
) -> None:
    """A file of 3 MiB with FLUSH_EVERY_BYTES at 256 KiB: fdatasync runs during the write (on a
    thread of its own), and the result is the same file; alone or inside a tree."""
    monkeypatch.setattr(durability, "FLUSH_EVERY_BYTES", 256 << 10)
    real = os.fdatasync
    calls: list[int] = []
    monkeypatch.setattr(os, "fdatasync", lambda fd: (calls.append(fd), real(fd))[1])
    repo = Repository.open(LocalBackend(vault.vault_path), PASSWORD.encode(), rehash=False)
    record, node, _ = resolve(repo, what, None)
    dest = tmp_path / "out"
    with Pipeline(2) as pipe:
        Restorer(repo, pipe).restore(record, node, str(dest), False)
    monkeypatch.undo()
    assert calls  # at least once (once per chunk at most: a 3 MiB file has a few)
    if what == "src":
        assert _state(dest) == _state(stored)
    else:
        assert dest.read_bytes() == (stored / "big.bin").read_bytes()
    assert _temp_files(tmp_path) == []


def test_a_failed_flush_fails_the_file_and_leaves_nothing(
    vault: VaultCli, stored: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(durability, "FLUSH_EVERY_BYTES", 256 << 10)

    def eio(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fdatasync", eio)
    repo = Repository.open(LocalBackend(vault.vault_path), PASSWORD.encode(), rehash=False)
    record, node, _ = resolve(repo, "src/big.bin", None)
    with Pipeline(2) as pipe, pytest.raises(StorageError, match="Input/output error"):
        Restorer(repo, pipe).restore(record, node, str(tmp_path / "big.out"), False)
    monkeypatch.undo()
    assert not (tmp_path / "big.out").exists()
    assert _temp_files(tmp_path) == []


def test_too_few_descriptors_for_unnamed_files_fall_back_to_named_ones(
    vault: VaultCli, stored: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unnamed temporary files stay open until their batch is in place. Where the hard RLIMIT_NOFILE leaves too
    few descriptors for that, a tree restore uses named ones instead (and still gives the same tree)."""
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda which: (256, 256))
    named: list[str] = []
    real_open = os.open

    def open_(path: str, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        if isinstance(path, str) and path.endswith(".tmp"):
            named.append(path)
        assert not files._TMPFILE or flags & files._TMPFILE != files._TMPFILE, "an unnamed file was opened"
        return real_open(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "open", open_)
    _restore(vault, tmp_path / "out")
    monkeypatch.undo()
    assert named
    assert _state(tmp_path / "out") == _state(stored)
    assert _temp_files(tmp_path / "out") == []
