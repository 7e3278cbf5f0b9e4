"""Storage faults end in one clear line with exit 30, and the vault stays intact.

Two kinds of faults: injected ones (FaultyBackend wrapped around the real LocalBackend, driven through the
real `vault.cli.run`), and real ones (a full tmpfs, in a private mount namespace so nothing leaks out).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from faulty import FaultyBackend
from helpers import CHEAP_INIT_ARGS, PASSWORD

import vault.storage
from vault.cli import run
from vault.errors import StorageError
from vault.storage.local import LocalBackend


@pytest.fixture
def faulty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> FaultyBackend:
    """An initialised vault whose backend, for every later in-process command, is this FaultyBackend."""
    root = tmp_path / "vault"
    monkeypatch.setenv("VAULT_PATH", str(root))
    monkeypatch.setenv("VAULT_PASSWORD", PASSWORD)
    assert run(["init", *CHEAP_INIT_ARGS]) == 0
    backend = FaultyBackend(LocalBackend(root))
    monkeypatch.setattr(vault.storage, "open_backend", lambda location: backend)
    capsys.readouterr()
    return backend


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err: str) -> None:
    lines = err.strip().splitlines()
    assert lines and lines[0].startswith("vault: error: "), err
    assert all(line.startswith("vault: ") for line in lines), err
    assert "Traceback" not in err


def _file(tmp_path: Path, name: str, size: int) -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


FAULTS: dict[str, Callable[[FaultyBackend], None]] = {
    "disk full": lambda b: b.disk_full_after_bytes(3 << 20),
    "EIO on the third save": lambda b: b.fail("save", StorageError("cannot write: Input/output error"), after=2),
    "write fails half way": lambda b: b.half_write(after=1),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_put_fault_is_exit_30_and_vault_intact(faulty: FaultyBackend, tmp_path: Path, capsys, fault: str) -> None:
    before = _file(tmp_path, "before.bin", 100_000)
    assert _run(capsys, "put", str(before))[0] == 0
    FAULTS[fault](faulty)
    code, _, err = _run(capsys, "put", str(_file(tmp_path, "big.bin", 40 << 20)))
    assert code == 30, err
    _one_error_line(err)
    faulty.heal()
    code, out, err = _run(capsys, "ls")
    assert code == 0 and "before.bin" in out and "big.bin" not in out, (out, err)
    assert _run(capsys, "repair")[0] == 0
    code, _, err = _run(capsys, "check", "--read-data")
    assert code == 0, err
    assert not list((tmp_path / "vault").rglob(".tmp-*"))
    dest = tmp_path / "out"
    dest.mkdir()
    assert _run(capsys, "get", "before.bin", "-o", str(dest))[0] == 0
    assert (dest / "before.bin").read_bytes() == before.read_bytes()


def test_get_read_fault_is_exit_30_and_leaves_no_file(faulty: FaultyBackend, tmp_path: Path, capsys) -> None:
    src = _file(tmp_path, "data.bin", 20 << 20)
    assert _run(capsys, "put", str(src))[0] == 0
    faulty.fail_load(StorageError("cannot read: Input/output error"), after=5)
    dest = tmp_path / "out"
    dest.mkdir()
    code, _, err = _run(capsys, "get", "data.bin", "-o", str(dest))
    assert code == 30, err
    _one_error_line(err)
    assert list(dest.iterdir()) == []


def test_slow_backend_still_works(faulty: FaultyBackend, tmp_path: Path, capsys) -> None:
    faulty.delay_s = 0.005
    src = _file(tmp_path, "slow.bin", 3 << 20)
    assert _run(capsys, "put", str(src))[0] == 0
    assert _run(capsys, "get", "slow.bin", "-o", str(tmp_path / "slow.out"))[0] == 0
    assert (tmp_path / "slow.out").read_bytes() == src.read_bytes()


# -- real full disks --------------------------------------------------------------------------------------


def _in_small_tmpfs(mountpoint: Path, size: str, script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (sh) in a private mount namespace with a tmpfs of ``size`` on ``mountpoint``."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    mountpoint.mkdir(exist_ok=True)
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", f'mount -t tmpfs -o size={size} tmpfs "{mountpoint}" && {script}'],
        capture_output=True, text=True, env=env, timeout=300,
    )
    if "mount:" in proc.stderr and "permission denied" in proc.stderr.lower():
        pytest.skip("this machine does not allow mounting a tmpfs")  # only where mounting is forbidden
    return proc


def test_full_disk_under_get_destination_leaves_no_partial_file(vault, tmp_path: Path) -> None:
    src = _file(tmp_path, "big.bin", 6 << 20)
    vault("put", str(src), check=0)
    dest = tmp_path / "small-disk"
    vault_exe = " ".join(vault.exe)
    proc = _in_small_tmpfs(
        dest, "2m",
        f'{vault_exe} get big.bin -o "{dest}"; code=$?; ls -A "{dest}"; exit $code',
        vault.env,
    )
    assert proc.returncode == 30, proc.stderr
    _one_error_line(proc.stderr)
    assert "No space left on device" in proc.stderr
    assert proc.stdout.strip() == "", f"left behind: {proc.stdout!r}"


def test_full_disk_under_the_vault_is_exit_30_and_vault_intact(cli, tmp_path: Path) -> None:
    vault_dir = tmp_path / "small-vault"
    src_small = _file(tmp_path, "small.bin", 200_000)
    src_big = _file(tmp_path, "big.bin", 20 << 20)
    vault_exe = " ".join(cli.exe)
    env = dict(cli.env, VAULT_PATH=str(vault_dir / "v"))
    init = " ".join(["init", *CHEAP_INIT_ARGS])
    script = (
        f'{vault_exe} {init} >/dev/null 2>&1 && {vault_exe} put "{src_small}" >/dev/null && '
        f'{{ {vault_exe} put "{src_big}"; code=$?; '
        f'{vault_exe} check --read-data >&2 && {vault_exe} get small.bin -o - | cmp - "{src_small}" >&2 && '
        f'find "{vault_dir}" -name ".tmp-*" | wc -l; exit $code; }}'
    )
    proc = _in_small_tmpfs(vault_dir, "8m", script, env)
    assert proc.returncode == 30, proc.stderr
    assert "No space left on device" in proc.stderr
    assert proc.stdout.strip() == "0", proc.stdout
    assert "no problems found" in proc.stderr or "problem" not in proc.stderr, proc.stderr
