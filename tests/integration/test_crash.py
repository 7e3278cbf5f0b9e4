"""Killed, interrupted and concurrent processes: the vault stays valid and nothing is lost.

These run the real `vault` entry point as child processes and really kill them (SIGKILL, SIGINT, SIGTERM).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import syscall_kill
from helpers import VaultCli


def _spawn(cli: VaultCli, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*cli.exe, *args], env=cli.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _data_bytes(vault_dir: Path) -> int:
    """Bytes in complete packs (not the temporary files of packs being written)."""
    return sum(p.stat().st_size for p in (vault_dir / "data").rglob("*") if p.is_file() and ".tmp" not in p.name)


def _wait_for(pred, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def _checkpoint_count(vault_dir: Path) -> int:
    """Index objects of type 4 (checkpoints): the type byte is the sixth byte of the object."""
    index = vault_dir / "index"
    if not index.is_dir():
        return 0
    return sum(1 for p in index.iterdir() if ".tmp" not in p.name and p.read_bytes()[5:6] == b"\x04")


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".tmp" in p.name]


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    with path.open("wb") as f:
        for _ in range(12):
            f.write(os.urandom(8 << 20))  # 96 MiB, incompressible: six packs
    return path


@pytest.mark.skipif(syscall_kill.STRACE is None, reason="needs strace (apt-get install strace)")
def test_sigkill_mid_put_leaves_valid_vault_and_rerun_reuses_data(vault, vault_dir: Path, big_file: Path,
                                                                   tmp_path: Path) -> None:
    first = tmp_path / "first.txt"
    first.write_bytes(b"an earlier version that must survive\n" * 1000)
    vault("put", str(first), check=0)

    size = big_file.stat().st_size
    # strace stops the whole put after each rename (any thread) and kills it, still stopped, as soon as four packs
    # and their checkpoint index objects are durable: at least 64 of the 96 MiB (a pack is full at 16 MiB), while
    # the fifth pack or more, and the merged index, are not. Exact on any machine, however loaded: the put can
    # neither finish first nor get further than that.
    code, killed = syscall_kill.run_until([*vault.exe, "--threads", "2", "put", str(big_file)], vault.env,
                                          "rename", lambda: _checkpoint_count(vault_dir) >= 4)
    # The kill was sent while every thread of the put was stopped by strace, so the put could not go on or exit by
    # itself. strace relays that death as its own -SIGKILL; in two full parallel runs on a loaded machine it exited
    # 1 instead after such a kill (its own status, not the put's). What matters is checked below: the vault.
    assert killed and code in (-signal.SIGKILL, 1), code

    check = vault("check", "--read-data")
    assert check.code == 0, check.err
    listing = json.loads(vault("ls", "--json", check=0).out)
    assert [i["name"] for i in listing if i["name"] == "big.bin"] in ([], ["big.bin"])
    out = tmp_path / "out"
    out.mkdir()
    vault("get", "first.txt", "-o", str(out), check=0)
    assert (out / "first.txt").read_bytes() == first.read_bytes()

    # The rerun reuses every pack that was durable at the kill: what it adds is at most what was not yet
    # in a finished pack (the pack being filled, 16 MiB, and the chunks in flight).
    rerun = json.loads(vault("put", str(big_file), "--json", check=0).out)
    assert rerun[0]["bytes_added"] < 0.1 * size + 24 * 2**20, rerun
    vault("get", "big.bin", "-o", str(out), check=0)
    assert (out / "big.bin").read_bytes() == big_file.read_bytes()
    # The rerun found the dead put's checkpoints, said so in the log, and folded them into its index.
    log = json.loads(vault("log", "--json", check=0).out)
    put = [r for r in log if r["command"] == "put"][-1]
    assert any("interrupted put" in a for a in put["extra"]["recovery"]), put
    assert _checkpoint_count(vault_dir) == 0


@pytest.mark.slow
def test_rerun_after_kill_at_90_percent_of_1gib_writes_under_15_percent(vault, vault_dir: Path,
                                                                         tmp_path: Path) -> None:
    path = tmp_path / "huge.bin"
    with path.open("wb") as f:
        for _ in range(128):
            f.write(os.urandom(8 << 20))
    size = path.stat().st_size
    proc = _spawn(vault, "put", str(path))
    _wait_for(lambda: _data_bytes(vault_dir) >= 0.9 * size or proc.poll() is not None, timeout=300)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rerun = json.loads(vault("put", str(path), "--json", timeout=600, check=0).out)
    assert rerun[0]["bytes_added"] < 0.15 * size, rerun
    vault("check", "--read-data", timeout=600, check=0)


def test_stale_lock_of_killed_process_is_broken_and_logged(vault, vault_dir: Path, big_file: Path) -> None:
    proc = _spawn(vault, "put", str(big_file))
    # The lock itself, not its temporary file (.tmp-*): killed while that is written, a put leaves it for
    # `repair`, and this test would wait for the wrong thing.
    _wait_for(lambda: any(not p.name.startswith(".") for p in (vault_dir / "locks").iterdir())
              if (vault_dir / "locks").exists() else False)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert any((vault_dir / "locks").iterdir())
    vault("prune", check=0)
    assert not any((vault_dir / "locks").iterdir())
    log = json.loads(vault("log", "--json", check=0).out)
    prune = [r for r in log if r["command"] == "prune"][-1]
    assert any("stale" in a for a in prune["extra"]["recovery"]), prune


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_put_cleans_up(vault, vault_dir: Path, big_file: Path, sig: int, code: int) -> None:
    proc = _spawn(vault, "put", str(big_file))
    _wait_for(lambda: _data_bytes(vault_dir) > 0 if (vault_dir / "data").exists() else False)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert b"Traceback" not in err
    assert err.decode().startswith("vault: error:")
    assert _temp_files(vault_dir) == []
    assert not any((vault_dir / "locks").iterdir())
    vault("check", check=0)
    log = json.loads(vault("log", "--json", check=0).out)
    assert [r for r in log if r["command"] == "put"][-1]["outcome"] == "interrupted"


def _writes_into(pid: int, directory: Path) -> bool:
    """True when process ``pid`` holds a file of ``directory`` open that has no name there (O_TMPFILE)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith(f"{directory}/") and target.endswith("(deleted)"):
            return True
    return False


def test_interrupted_get_leaves_no_file(vault, big_file: Path, tmp_path: Path) -> None:
    vault("put", str(big_file), check=0)
    out = tmp_path / "out"
    out.mkdir()
    proc = _spawn(vault, "get", "big.bin", "-o", str(out))
    # Writing has begun: a temporary file in out, named or (O_TMPFILE) only among the process's descriptors.
    _wait_for(lambda: any(out.iterdir()) or _writes_into(proc.pid, out) or proc.poll() is not None)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.fail("get finished before the signal; make the file bigger")
    assert proc.returncode == 130
    assert list(out.iterdir()) == []


def test_concurrent_puts_and_reads(vault, tmp_path: Path, big_file: Path) -> None:
    small = []
    for i in range(3):
        p = tmp_path / f"f{i}.txt"
        p.write_bytes(os.urandom(100_000) + f"file {i}".encode())
        small.append(p)
    vault("put", str(small[0]), check=0)
    writers = [_spawn(vault, "put", str(big_file))] + [_spawn(vault, "put", str(p), "--name", "same") for p in small]
    # Readers work while puts run; exclusive commands wait or exit 11.
    assert vault("ls").code == 0
    assert vault("get", "f0.txt", "-o", "-").out == small[0].read_bytes()
    assert vault("check").code == 0
    busy = vault("prune")
    assert busy.code in (0, 11), busy.err
    for w in writers:
        _, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
    history = json.loads(vault("history", "same", "--json", check=0).out)
    numbers = [h["version"] for h in history]
    assert len(numbers) == 3 and len(set(numbers)) == 3, numbers
    vault("check", "--read-data", check=0)


def test_exclusive_lock_blocks_and_retry_lock_waits(vault, vault_dir: Path) -> None:
    # A put reading from a pipe we control holds its shared lock for exactly as long as we keep it open.
    put = subprocess.Popen([*vault.exe, "put", "-", "--name", "stream"], env=vault.env, stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert put.stdin is not None
    put.stdin.write(os.urandom(1 << 20))
    put.stdin.flush()
    _wait_for(lambda: (vault_dir / "locks").exists() and any((vault_dir / "locks").iterdir()))
    busy = vault("rm", "nothing-here")
    assert busy.code == 11, busy.err
    assert "locked" in busy.err and "vault put" in busy.err
    waiter = _spawn(vault, "--retry-lock", "120", "forget", "--keep-last", "5")
    time.sleep(1.0)
    assert waiter.poll() is None  # still waiting for the put
    put.stdin.close()
    assert put.wait(timeout=60) == 0
    _, err = waiter.communicate(timeout=120)
    assert waiter.returncode == 0, err
