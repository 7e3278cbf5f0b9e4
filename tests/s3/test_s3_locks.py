"""Locks on S3: objects in ``locks/`` that block exclusive commands (exit 11), wait with --retry-lock, are
broken when their holder is dead, and let several `put`s run at once."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from helpers import assert_error, parse_json, random_bytes

from vault.repo.locks import acquire
from vault.repo.repository import Repository
from vault.storage import open_backend

# A second process that takes an exclusive lock on the vault and dies without releasing it.
_DIE_HOLDING_A_LOCK = """
import os
from vault.repo.locks import acquire
from vault.repo.repository import Repository
from vault.storage import open_backend

repo = Repository.open(open_backend(os.environ["VAULT_PATH"]), os.environ["VAULT_PASSWORD"].encode())
lock = acquire(repo, exclusive=True, command="prune")
print(lock.handle.name, flush=True)
os._exit(0)
"""


def _open(s3) -> Repository:  # type: ignore[no-untyped-def]
    return Repository.open(open_backend(s3.location), s3.PASSWORD.encode(), rehash=False)


def test_exclusive_lock_blocks_prune_then_retry_lock_waits_for_it(s3_vault) -> None:
    repo = _open(s3_vault)
    lock = acquire(repo, exclusive=True, command="test")
    released = False
    try:
        assert len(s3_vault.keys_of("locks")) == 1
        busy = s3_vault("prune")
        assert_error(busy, 11, "locked")
        assert "vault test" in busy.err  # names the holder
        assert len(s3_vault.keys_of("locks")) == 1  # the loser removed its own lock object

        timer = threading.Timer(1.5, lock.release)
        timer.start()
        started = time.monotonic()
        s3_vault("--retry-lock", "10", "prune", check=0)
        waited = time.monotonic() - started
        timer.join()
        released = True
        assert 1.0 < waited < 10, waited
    finally:
        if not released:
            lock.release()
        repo.backend.inner.close()  # type: ignore[attr-defined]
    assert s3_vault.keys_of("locks") == []


def test_stale_lock_of_a_dead_process_is_broken_and_logged(s3_vault) -> None:
    env = dict(s3_vault.env, VAULT_PATH=s3_vault.location)
    child = subprocess.run(
        [sys.executable, "-c", _DIE_HOLDING_A_LOCK], env=env, capture_output=True, timeout=60, check=True
    )
    name = child.stdout.decode().strip()
    assert [k.rsplit("/", 1)[1] for k in s3_vault.keys_of("locks")] == [name]

    s3_vault("prune", check=0)  # the holder is dead: its lock is stale, removed, and the prune goes on
    assert s3_vault.keys_of("locks") == []
    last = parse_json(s3_vault("log", "--json"))[-1]
    assert (last["command"], last["exit_code"]) == ("prune", 0)
    recovery = " ".join(last["extra"]["recovery"])
    assert "stale" in recovery and "exclusive" in recovery and "vault prune" in recovery


def test_two_puts_at_once(s3_vault, tmp_path: Path) -> None:
    """Several `put`s may run at once on one vault (shared locks), then everything restores."""
    data = {f"p{i}": random_bytes(2_500_000, seed=40 + i) + random_bytes(600_000, seed=49) for i in range(2)}
    env = dict(s3_vault.env, VAULT_PATH=s3_vault.location)

    def put(name: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [*s3_vault.run.exe, "put", "-", "--name", name],
            env=env, input=data[name], capture_output=True, timeout=120,
        )

    with ThreadPoolExecutor(len(data)) as pool:
        done = list(pool.map(put, data))
    for proc in done:
        assert proc.returncode == 0, proc.stderr.decode()
    assert s3_vault.keys_of("locks") == []
    for name, content in data.items():
        assert s3_vault("get", name, "-o", "-", check=0).out == content
