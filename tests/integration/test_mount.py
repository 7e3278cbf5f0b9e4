"""`vault mount` for real: a FUSE mount served by the installed command, read with ordinary open, os.scandir and
shutil.copyfileobj, and compared with the originals.

CI runs as root with /dev/fuse and fuse3 installed (.ci/run); there a missing FUSE fails these tests instead of
skipping them (CI=true).
"""

from __future__ import annotations

import ctypes.util
import errno
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import (
    assert_error,
    chunk_places,
    flip_byte,
    parse_json,
    random_bytes,
    text_bytes,
    write_file,
)

MOUNT_TIMEOUT = 60.0


def _fuse_missing() -> str | None:
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    if ctypes.util.find_library("fuse3") is None:
        return "libfuse3 is missing"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is missing"
    try:
        import mfusepy  # noqa: F401
    except (ImportError, OSError, AttributeError) as exc:
        return f"mfusepy can't be used: {exc}"
    return None


@pytest.fixture(autouse=True)
def _fuse() -> None:
    missing = _fuse_missing()
    if missing is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"FUSE is needed in CI: {missing}")
        pytest.skip(f"no FUSE here: {missing}")


def _wait(predicate, timeout: float = MOUNT_TIMEOUT, what: str = "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextmanager
def mounted(cli, mountpoint: Path, *extra: str) -> Iterator[subprocess.Popen[bytes]]:  # type: ignore[no-untyped-def]
    """`vault mount MOUNTPOINT` running; it is unmounted and the process reaped afterwards whatever happens."""
    mountpoint.mkdir(exist_ok=True)
    proc = subprocess.Popen([*cli.exe, "mount", str(mountpoint), *extra], env=cli.env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait(lambda: os.path.ismount(mountpoint) or proc.poll() is not None, what="the mount")
        if proc.poll() is not None:
            raise AssertionError(f"mount exited {proc.returncode}: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
        yield proc
    finally:
        if os.path.ismount(mountpoint):
            subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], capture_output=True)
        try:
            proc.wait(timeout=MOUNT_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _finish(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    _, err = proc.communicate(timeout=MOUNT_TIMEOUT)
    return proc.returncode, err.decode()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    src = tmp_path / "src" / "docs"
    write_file(src / "a.txt", b"alpha\n")
    write_file(src / "big.bin", random_bytes(3_500_000, seed=3))  # several chunks
    write_file(src / "sub" / "deep" / "notes.txt", text_bytes(200_000, seed=4))
    write_file(src / "empty", b"")
    os.symlink("a.txt", src / "link")
    os.symlink("/nowhere/at/all", src / "dangling")
    (src / "sub" / "deep" / "notes.txt").chmod(0o640)
    os.utime(src / "a.txt", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    return src


def _compare(original: Path, through: Path) -> None:
    """Same entries, kinds, modes, sizes, times, link targets and contents (read with copyfileobj)."""
    stack = [(original, through)]
    while stack:
        a, b = stack.pop()
        names_a = sorted(e.name for e in os.scandir(a))
        names_b = sorted(e.name for e in os.scandir(b))
        assert names_a == names_b, (a, names_a, names_b)
        for name in names_a:
            sa, sb = os.lstat(a / name), os.lstat(b / name)
            assert stat.S_IFMT(sa.st_mode) == stat.S_IFMT(sb.st_mode), name
            if not stat.S_ISLNK(sa.st_mode):
                assert stat.S_IMODE(sa.st_mode) == stat.S_IMODE(sb.st_mode), name
            assert sa.st_mtime_ns == sb.st_mtime_ns, name
            if stat.S_ISDIR(sa.st_mode):
                stack.append((a / name, b / name))
            elif stat.S_ISLNK(sa.st_mode):
                assert os.readlink(a / name) == os.readlink(b / name)
            else:
                assert sa.st_size == sb.st_size, name
                sink = io.BytesIO()
                with open(b / name, "rb") as fb:
                    shutil.copyfileobj(fb, sink)
                assert sink.getvalue() == (a / name).read_bytes(), name


def test_mount_shows_every_version_and_reads_like_the_originals(vault, tree: Path, tmp_path: Path) -> None:
    first = tmp_path / "v1"
    shutil.copytree(tree, first, symlinks=True)
    vault("put", str(tree), check=0)
    write_file(tree / "a.txt", b"alpha, changed\n")
    (tree / "empty").unlink()
    vault("put", str(tree), check=0)
    single = write_file(tmp_path / "notes" / "todo.txt", b"buy milk\n")
    vault("put", str(single), "--name", "lists/todo.txt", check=0)
    mp = tmp_path / "mnt"
    with mounted(vault, mp) as proc:
        assert sorted(os.listdir(mp)) == ["docs", "lists"]
        assert sorted(os.listdir(mp / "docs")) == ["1", "2", "latest"]
        assert os.readlink(mp / "docs" / "latest") == "2"
        assert stat.S_ISLNK(os.lstat(mp / "docs" / "latest").st_mode)
        _compare(first, mp / "docs" / "1")
        _compare(tree, mp / "docs" / "latest")
        # A file item's versions are the file itself.
        assert (mp / "lists" / "todo.txt" / "1").read_bytes() == b"buy milk\n"
        assert (mp / "lists" / "todo.txt" / "latest").read_bytes() == b"buy milk\n"
        # Random access inside a multi-chunk file.
        data = (tree / "big.bin").read_bytes()
        with open(mp / "docs" / "2" / "big.bin", "rb") as f:
            for offset in (0, 1_000_000, 2_999_999, 3_499_990, 3_500_000):
                f.seek(offset)
                assert f.read(4096) == data[offset : offset + 4096]
        with pytest.raises(OSError) as exc:
            (mp / "docs" / "2" / "new.txt").write_bytes(b"x")
        assert exc.value.errno in (errno.EROFS, errno.EACCES)
        assert not (mp / "docs" / "3").exists()
        subprocess.run(["fusermount3", "-u", str(mp)], check=True)
        code, err = _finish(proc)
    assert code == 0, err
    assert not os.path.ismount(mp)
    assert os.listdir(mp) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_mount_ends_cleanly_on_a_signal(vault, tree: Path, tmp_path: Path, sig: int) -> None:
    vault("put", str(tree), check=0)
    mp = tmp_path / "mnt"
    with mounted(vault, mp) as proc:
        assert (mp / "docs" / "1" / "a.txt").read_bytes() == b"alpha\n"
        proc.send_signal(sig)
        code, err = _finish(proc)
    assert code == 0, err
    assert not os.path.ismount(mp)
    log = parse_json(vault("log", "-n", "1", "--json"))
    assert log[-1]["command"] == "mount" and log[-1]["exit_code"] == 0


def test_a_damaged_pack_reads_as_eio_and_is_logged(vault, tree: Path, tmp_path: Path) -> None:
    vault("put", str(tree), "--compression", "0", check=0)
    place = chunk_places(vault.vault_path, "docs/big.bin")[1]
    flip_byte(place.pack, place.offset + 40)
    mp = tmp_path / "mnt"
    with mounted(vault, mp) as proc:
        with pytest.raises(OSError) as exc, open(mp / "docs" / "1" / "big.bin", "rb") as f, \
                open(os.devnull, "wb") as sink:
            shutil.copyfileobj(f, sink)
        assert exc.value.errno == errno.EIO
        assert (mp / "docs" / "1" / "a.txt").read_bytes() == b"alpha\n"  # the rest reads
        proc.send_signal(signal.SIGINT)
        code, err = _finish(proc)
    assert code == 0
    assert "failed authentication" in err and "big.bin" in err
    record = parse_json(vault("log", "-n", "1", "--json"))[-1]
    assert any("big.bin" in line for line in record["extra"]["damaged"])


def test_new_versions_appear_while_mounted(vault, tree: Path, tmp_path: Path) -> None:
    vault("put", str(tree), check=0)
    mp = tmp_path / "mnt"
    with mounted(vault, mp, "--refresh", "1") as proc:
        assert sorted(os.listdir(mp / "docs")) == ["1", "latest"]
        write_file(tree / "a.txt", b"later\n")
        vault("put", str(tree), check=0)
        other = write_file(tmp_path / "more" / "x.txt", b"x")
        vault("put", str(other), check=0)
        _wait(lambda: "2" in os.listdir(mp / "docs") and "x.txt" in os.listdir(mp), 30, "the new versions")
        assert os.readlink(mp / "docs" / "latest") == "2"
        assert (mp / "docs" / "latest" / "a.txt").read_bytes() == b"later\n"
        proc.send_signal(signal.SIGTERM)
        assert _finish(proc)[0] == 0


def test_mountpoint_errors(vault, tree: Path, tmp_path: Path) -> None:
    vault("put", str(tree), check=0)
    assert_error(vault("mount", str(tmp_path / "missing")), 4, "does not exist")
    assert_error(vault("mount", str(tree / "a.txt")), 30, "not a directory")
    assert_error(vault("mount", str(tree)), 30, "not empty")
    assert_error(vault("mount", str(vault.vault_path / "data")), 30)
    mp = tmp_path / "mnt"
    with mounted(vault, mp) as proc:
        assert_error(vault("mount", str(mp)), 30, "busy")
        proc.send_signal(signal.SIGINT)
        assert _finish(proc)[0] == 0
    empty = tmp_path / "no-password"
    empty.mkdir()
    assert_error(vault("mount", str(empty), env={"VAULT_PASSWORD": ""}), 12)
    assert not os.path.ismount(empty)


def test_a_busy_mountpoint_is_detached_on_a_signal(vault, tree: Path, tmp_path: Path) -> None:
    vault("put", str(tree), check=0)
    mp = tmp_path / "mnt"
    with mounted(vault, mp) as proc:
        holder = open(mp / "docs" / "1" / "big.bin", "rb")  # noqa: SIM115 (kept open on purpose)
        proc.send_signal(signal.SIGINT)
        _wait(lambda: not os.path.ismount(mp), 30, "the lazy unmount")
        holder.read(10)
        holder.close()
        code, err = _finish(proc)
    assert code == 0, err
    assert "in use" in err


def test_deep_and_oddly_named_paths(vault, tmp_path: Path) -> None:
    src = tmp_path / "src" / "deep"
    path = src
    for i in range(60):
        path = path / f"d{i}"
    write_file(path / "leaf.txt", b"deep\n")
    write_file(src / "sp ace" / "ü.txt", "ünï\n".encode())
    write_file(src / os.fsdecode(b"raw\xff"), b"not utf-8\n")
    vault("put", str(src), check=0)
    mp = tmp_path / "mnt"
    with mounted(vault, mp) as proc:
        _compare(src, mp / "deep" / "1")
        proc.send_signal(signal.SIGINT)
        assert _finish(proc)[0] == 0


def test_mount_json_free_and_no_lock(vault, tree: Path, tmp_path: Path) -> None:
    """The mount takes no lock: prune (exclusive) runs while it is up, and the mount keeps reading."""
    vault("put", str(tree), check=0)
    mp = tmp_path / "mnt"
    with mounted(vault, mp) as proc:
        assert vault("prune", "--json").code == 0
        assert json.loads(vault("ls", "--json").stdout)[0]["name"] == "docs"
        assert (mp / "docs" / "1" / "big.bin").read_bytes() == (tree / "big.bin").read_bytes()
        proc.send_signal(signal.SIGINT)
        assert _finish(proc)[0] == 0
