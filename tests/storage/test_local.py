"""LocalBackend: the contract, plus what only a directory has (modes, temp files, errno mapping)."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from contract import BackendContract, hex_name

import vault
from vault.errors import ObjectNotFoundError, StorageError, TransientStorageError, UsageError
from vault.storage import Backend, Handle, Kind, open_backend
from vault.storage.local import LocalBackend

SECRET = b"plaintext that must never reach an error message"


class TestLocalContract(BackendContract):
    @pytest.fixture(autouse=True)
    def _tmp(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    def make_backend(self) -> Backend:
        backend = LocalBackend(self.tmp_path / "vault")
        backend.create_root()
        return backend

    def make_missing_backend(self) -> Backend:
        return LocalBackend(self.tmp_path / "missing" / "vault")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "vault"


@pytest.fixture
def backend(root: Path) -> LocalBackend:
    b = LocalBackend(root)
    b.create_root()
    return b


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".tmp-")]


def test_location_is_the_absolute_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert LocalBackend(Path("rel")).location == str(tmp_path / "rel")


def test_layout_on_disk(backend: LocalBackend, root: Path) -> None:
    name = "3fa2c81b04" + hex_name()
    backend.save(Handle(Kind.CONFIG, "config"), b"c")
    backend.save(Handle(Kind.DATA, name), b"d")
    for kind in (Kind.KEYS, Kind.INDEX, Kind.VERSIONS, Kind.LOCKS):
        backend.save(Handle(kind, name), kind.value.encode())
    assert (root / "config").read_bytes() == b"c"
    assert (root / "data" / "3f" / name).read_bytes() == b"d"
    for kind in (Kind.KEYS, Kind.INDEX, Kind.VERSIONS, Kind.LOCKS):
        assert (root / kind.value / name).read_bytes() == kind.value.encode()


def test_modes_ignore_the_umask(tmp_path: Path) -> None:
    root = tmp_path / "a" / "b" / "vault"
    old = os.umask(0)
    try:
        backend = LocalBackend(root)
        backend.create_root()
        backend.save(Handle(Kind.DATA, "abcdef"), b"x")
        backend.save(Handle(Kind.CONFIG, "config"), b"y")
    finally:
        os.umask(old)
    for d in (tmp_path / "a", tmp_path / "a" / "b", root, root / "data", root / "data" / "ab"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    for f in (root / "data" / "ab" / "abcdef", root / "config"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


def test_create_root_leaves_existing_parents_alone(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    LocalBackend(tmp_path / "vault").create_root()
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755


def test_failed_fsync_leaves_no_temp_file(
    backend: LocalBackend, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = Handle(Kind.DATA, "3fa2c81b04" + hex_name())
    backend.save(h, b"old version")

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(StorageError) as info:
        backend.save(h, SECRET)
    monkeypatch.undo()
    error = info.value
    assert not isinstance(error, (ObjectNotFoundError, TransientStorageError))
    assert error.exit_code == 30
    assert str(error) == f"cannot write <data/3fa2c81b04> in {root}: No space left on device"
    assert SECRET.decode() not in str(error)
    assert temp_files(root) == []
    assert backend.load(h) == b"old version"


@pytest.mark.parametrize("failing", ["write", "replace", "fchmod"])
def test_any_failure_removes_the_temp_file(
    backend: LocalBackend, root: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    real = getattr(os, failing)
    calls = 0

    def flaky(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if failing == "write" and calls == 1:
            return real(args[0], args[1][:100])  # a short write first, then the disk breaks
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, failing, flaky)
    h = Handle(Kind.KEYS, hex_name())
    with pytest.raises(StorageError, match="Input/output error"):
        backend.save(h, SECRET * 100)
    monkeypatch.undo()
    assert temp_files(root) == []
    with pytest.raises(ObjectNotFoundError):
        backend.stat(h)


def test_interrupt_removes_the_temp_file(
    backend: LocalBackend, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        backend.save(Handle(Kind.DATA, "abcd"), b"x")
    monkeypatch.undo()
    assert temp_files(root) == []


def test_short_writes_are_completed(backend: LocalBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real(fd, data[:777]))
    data = os.urandom(100_000)
    h = Handle(Kind.DATA, "abcd")
    backend.save(h, data)
    monkeypatch.undo()
    assert backend.load(h) == data


def test_save_refuses_a_missing_root(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "unmounted")
    with pytest.raises(StorageError, match="does not exist"):
        backend.save(Handle(Kind.DATA, "abcd"), b"x")
    assert not (tmp_path / "unmounted").exists()  # never created behind the user's back


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS, errno.EDQUOT, errno.EPERM])
def test_errno_of_a_failed_create_becomes_storage_error(
    backend: LocalBackend, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    real = os.open

    def refuse(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_CREAT:
            raise OSError(code, os.strerror(code), str(path))
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(StorageError) as info:
        backend.save(Handle(Kind.DATA, "abcd"), b"x")
    assert type(info.value) is StorageError
    assert str(info.value).endswith(os.strerror(code))


def test_unreadable_object_is_a_storage_error_not_a_missing_one(
    backend: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = Handle(Kind.INDEX, "abcd")
    backend.save(h, b"x")

    def denied(*args: Any, **kwargs: Any) -> int:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(StorageError, match="Permission denied") as info:
        backend.load(h)
    assert not isinstance(info.value, ObjectNotFoundError)


def test_unreadable_directory_fails_the_listing(
    backend: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend.save(Handle(Kind.KEYS, "abcd"), b"x")

    def denied(path: Any) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "scandir", denied)
    with pytest.raises(StorageError, match=r"cannot list .*Permission denied"):
        list(backend.list(Kind.KEYS))


_READ_ONLY_SNIPPET = """
import json, sys
from pathlib import Path
from vault.errors import StorageError
from vault.storage import Handle, Kind
from vault.storage.local import LocalBackend
b = LocalBackend(Path(sys.argv[1]))
out = {}
for label, call in [
    ("save_new_dir", lambda: b.save(Handle(Kind.DATA, "cdef"), b"x")),
    ("save_existing_dir", lambda: b.save(Handle(Kind.DATA, "ab99"), b"x")),
    ("load_unreadable", lambda: b.load(Handle(Kind.KEYS, "abcd"))),
    ("remove", lambda: b.remove(Handle(Kind.DATA, "abcd"))),
]:
    try:
        call()
        out[label] = None
    except StorageError as e:
        out[label] = [type(e).__name__, e.exit_code, str(e)]
print(json.dumps(out))
"""


def test_read_only_vault_really_denied(backend: LocalBackend, root: Path) -> None:
    """Honest under root too: the child drops every capability (CAP_DAC_OVERRIDE included) with setpriv,
    so mode bits bind it as they bind any user."""
    backend.save(Handle(Kind.DATA, "abcd"), b"x")
    backend.save(Handle(Kind.KEYS, "abcd"), b"x")
    (root / "keys" / "abcd").chmod(0o000)
    for d in (root / "data" / "ab", root / "data", root):
        d.chmod(0o555)
    try:
        command = [sys.executable, "-c", _READ_ONLY_SNIPPET, str(root)]
        if os.geteuid() == 0:
            command = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", *command]
        env = {**os.environ, "PYTHONPATH": str(Path(vault.__file__).parent.parent)}
        run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    finally:
        for d in (root, root / "data", root / "data" / "ab"):
            d.chmod(0o700)
        (root / "keys" / "abcd").chmod(0o600)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    for label in ("save_new_dir", "save_existing_dir", "load_unreadable", "remove"):
        name, code, message = out[label]
        assert (name, code) == ("StorageError", 30), label
        assert message.endswith("Permission denied"), message
    assert temp_files(root) == []
    assert backend.load(Handle(Kind.DATA, "abcd")) == b"x"


def test_list_skips_temp_files_and_strays(backend: LocalBackend, root: Path) -> None:
    backend.save(Handle(Kind.KEYS, "abcd"), b"k")
    backend.save(Handle(Kind.DATA, "ab12"), b"d")
    (root / "keys" / ".tmp-0123456789abcdef").write_bytes(b"half")
    (root / "keys" / "ABCD").write_bytes(b"upper case")
    (root / "keys" / "notes.txt").write_bytes(b"")
    (root / "keys" / "ef01").mkdir()  # a directory with an object's name
    (root / "keys" / "beef").symlink_to(root / "keys" / "abcd")
    (root / "data" / "ab" / ".tmp-00").write_bytes(b"half")
    (root / "data" / "ab" / "cd34").write_bytes(b"misplaced")
    (root / "data" / "zz").mkdir()
    (root / "data" / "zz" / "zz00").write_bytes(b"")
    (root / "data" / "stray").write_bytes(b"")
    (root / "index").mkdir()
    (root / "index" / "README").write_bytes(b"")
    assert {i.handle.name for i in backend.list(Kind.KEYS)} == {"abcd"}
    assert {i.handle.name for i in backend.list(Kind.DATA)} == {"ab12"}
    assert list(backend.list(Kind.INDEX)) == []


def test_cleanup_temporary(backend: LocalBackend, root: Path) -> None:
    backend.save(Handle(Kind.DATA, "ab12"), b"d")
    old_a = root / "data" / "ab" / ".tmp-aaaa"
    old_b = root / "keys" / ".tmp-bbbb"
    young = root / ".tmp-cccc"
    (root / "keys").mkdir()
    for p in (old_a, old_b, young):
        p.write_bytes(b"half")
    an_hour_ago = time.time() - 3600
    for p in (old_a, old_b):
        os.utime(p, (an_hour_ago, an_hour_ago))
    assert backend.cleanup_temporary(600) == sorted(["data/ab/.tmp-aaaa", "keys/.tmp-bbbb"])
    assert not old_a.exists() and not old_b.exists() and young.exists()
    assert backend.load(Handle(Kind.DATA, "ab12")) == b"d"
    assert backend.cleanup_temporary(0) == [".tmp-cccc"]
    assert backend.cleanup_temporary(0) == []


def test_cleanup_temporary_of_a_missing_root(tmp_path: Path) -> None:
    assert LocalBackend(tmp_path / "nothing").cleanup_temporary(0) == []


def test_root_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    backend = LocalBackend(tmp_path / "file")
    assert not backend.exists_root()
    with pytest.raises(StorageError, match="not a directory"):
        backend.create_root()


def test_open_backend_gives_a_local_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    backend = open_backend("~/vaults/main")
    assert isinstance(backend, LocalBackend)
    assert backend.location == str(tmp_path / "vaults" / "main")
    with pytest.raises(UsageError):
        open_backend("")


# -- save_parts: a pack written with writev from its parts ------------------------------------------------------
def _parts(n: int, seed: int = 0) -> list[bytes | bytearray | memoryview]:
    import random

    rnd = random.Random(seed)
    kinds = (bytes, bytearray, memoryview)
    return [kinds[i % 3](rnd.randbytes(rnd.choice((0, 1, 7, 100, 4096, 70_000)))) for i in range(n)]  # type: ignore[operator]


@pytest.mark.parametrize("n", [0, 1, 3, 2500])  # 2500 > IOV_MAX (1024): several writev calls
def test_save_parts_stores_the_concatenation(backend: LocalBackend, root: Path, n: int) -> None:
    parts = _parts(n, seed=n)
    h = Handle(Kind.DATA, "ab" + hex_name())
    backend.save_parts(h, parts)
    assert backend.load(h) == b"".join(bytes(p) for p in parts)
    assert stat.S_IMODE(backend.path_of(h).stat().st_mode) == 0o600
    assert temp_files(root) == []


def test_save_parts_completes_short_writev(backend: LocalBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.writev

    def short(fd: int, buffers: list[memoryview]) -> int:  # at most 1000 bytes, often mid-buffer
        out, left = [], 1000
        for b in buffers:
            if left <= 0:
                break
            out.append(b[:left])
            left -= len(out[-1])
        return real(fd, out)

    monkeypatch.setattr(os, "writev", short)
    parts = _parts(40, seed=3)
    h = Handle(Kind.DATA, "cd" + hex_name())
    backend.save_parts(h, parts)
    monkeypatch.undo()
    assert backend.load(h) == b"".join(bytes(p) for p in parts)


@pytest.mark.parametrize("failing", ["writev", "fsync", "replace"])
def test_save_parts_failure_removes_the_temp_file(
    backend: LocalBackend, root: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    def eio(*_args: Any) -> Any:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, failing, eio)
    h = Handle(Kind.DATA, "ef" + hex_name())
    with pytest.raises(StorageError, match="Input/output error"):
        backend.save_parts(h, _parts(5, seed=5))
    monkeypatch.undo()
    assert temp_files(root) == []
    with pytest.raises(ObjectNotFoundError):
        backend.stat(h)


def test_save_parts_helper_joins_for_backends_without_it(tmp_path: Path) -> None:
    """Other backends get one joined ``save``; so do wrappers, even around a LocalBackend, so their faults and
    retries still apply (their ``__getattr__`` would otherwise hand out the inner backend's method)."""
    from faulty import FaultyBackend

    from vault.storage.base import save_parts, saves_parts
    from vault.storage.memory import MemoryBackend

    parts = _parts(4, seed=4)
    joined = b"".join(bytes(p) for p in parts)
    memory = MemoryBackend()
    save_parts(memory, Handle(Kind.DATA, "aa11"), parts)
    assert memory.load(Handle(Kind.DATA, "aa11")) == joined and not saves_parts(memory)
    local = LocalBackend(tmp_path / "v")
    local.create_root()
    assert saves_parts(local)
    faulty = FaultyBackend(local)
    assert not saves_parts(faulty)
    faulty.fail_save_after(0)
    with pytest.raises(StorageError):
        save_parts(faulty, Handle(Kind.DATA, "bb22"), parts)
    faulty.heal()
    save_parts(faulty, Handle(Kind.DATA, "bb22"), parts)
    assert local.load(Handle(Kind.DATA, "bb22")) == joined


def test_a_fifo_where_an_object_belongs_fails_instead_of_hanging(backend: LocalBackend, root: Path) -> None:
    """Issue 18, item 7c: a FIFO at ``config`` (or any object's path) made every command hang, forever, in
    open(2) waiting for a writer. Objects are opened non-blocking and must be regular files."""
    backend.save(Handle(Kind.CONFIG, "config"), b"{}")
    pack = Handle(Kind.DATA, hex_name(32))
    for h in (Handle(Kind.CONFIG, "config"), pack):
        path = backend.path_of(h)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        os.mkfifo(path, 0o600)
    # In a child: a hang must fail the test, not stop the suite.
    code = (
        "import sys; from vault.storage.local import LocalBackend; from vault.storage import Handle, Kind\n"
        "from vault.errors import StorageError\n"
        f"b = LocalBackend({str(root)!r})\n"
        f"for h in (Handle(Kind.CONFIG, 'config'), Handle(Kind.DATA, {pack.name!r})):\n"
        "    try:\n"
        "        b.load(h, 0, 100)\n"
        "    except StorageError as exc:\n"
        "        print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and all("is not a regular file" in line for line in lines), lines


def test_a_fifo_at_config_fails_the_command_at_once(tmp_path: Path) -> None:
    vault_dir = tmp_path / "vault"
    vault_dir.mkdir()
    os.mkfifo(vault_dir / "config", 0o600)
    env = {**os.environ, "VAULT_PATH": str(vault_dir), "VAULT_PASSWORD": "pw"}
    vault_cmd = [str(Path(sys.executable).with_name("vault"))]
    started = time.monotonic()
    done = subprocess.run([*vault_cmd, "ls"], env=env, capture_output=True, text=True, timeout=60)
    assert time.monotonic() - started < 30
    assert done.returncode == 30, done.stderr
    assert done.stderr.startswith("vault: error: ") and "not a regular file" in done.stderr
