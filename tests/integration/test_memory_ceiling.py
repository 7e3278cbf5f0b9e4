"""Memory does not grow with file size: a 1 GiB put and get each peak under 200 MiB of resident memory.

Slow (about a minute): run with ``pytest -m slow tests/integration/test_memory.py``. The child's own peak
RSS comes from ``os.wait4`` (its rusage, not the test process's), so other children don't blur it.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import time
from pathlib import Path

import pytest
from helpers import MiB, measured_command, sha256_file

SIZE = 1024 * MiB
LIMIT_KIB = 200 * 1024


def _write_data(path: Path) -> str:
    """Half random, half text-like data (a fresh mix of words in every MiB, so it does not dedup away),
    streamed to ``path``; returns its sha256."""
    rng = random.Random(1234)
    letters = b"etaoinshrdlcumwfgypbvkjxqz"
    words = [bytes(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(4096)]
    vocab = [w + (b"\n" if i % 13 == 0 else b" ") for i, w in enumerate(words)]
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for i in range(SIZE // MiB):
            if i % 2 == 0:
                block = os.urandom(MiB)
            else:
                idx = rng.randbytes(2 * (MiB // 7))
                text = b"".join(vocab[(idx[j] << 8 | idx[j + 1]) & 4095] for j in range(0, len(idx), 2))
                block = (text * 2)[:MiB]
            f.write(block)
            h.update(block)
    return h.hexdigest()


def _run_measured(
    cmd: list[str], env: dict[str, str], stdout: int | None = None
) -> tuple[int, int, float, str]:
    """Run ``cmd``; return (exit code, peak RSS of the child in KiB, seconds, stderr)."""
    started = time.monotonic()
    err_path = Path(env["HOME"]) / f"stderr-{time.time_ns()}"
    with open(err_path, "wb") as err:
        rss_file = Path(env["HOME"]) / f"rss-{time.time_ns()}"
        proc = subprocess.run(measured_command(cmd, rss_file), env=env, stdin=subprocess.DEVNULL,
                              stdout=stdout or subprocess.DEVNULL, stderr=err, check=False)
    return proc.returncode, int(rss_file.read_text()), time.monotonic() - started, err_path.read_text()


@pytest.mark.slow
def test_1gib_put_and_get_stay_under_200mib(vault, tmp_path: Path) -> None:
    src = tmp_path / "big.dat"
    digest = _write_data(src)
    assert src.stat().st_size == SIZE

    code, rss_put, secs_put, err = _run_measured([*vault.exe, "put", str(src)], vault.env)
    assert code == 0, err
    src.unlink()  # room on the disk for the restored copy

    out = tmp_path / "restored.dat"
    code, rss_get, secs_get, err = _run_measured([*vault.exe, "get", "big.dat", "-o", str(out)], vault.env)
    assert code == 0, err
    assert sha256_file(out) == digest
    out.unlink()

    with open(tmp_path / "stdout.dat", "wb") as sink:
        code, rss_stream, secs_stream, err = _run_measured(
            [*vault.exe, "get", "big.dat", "-o", "-"], vault.env, stdout=sink.fileno()
        )
    assert code == 0, err
    assert sha256_file(tmp_path / "stdout.dat") == digest

    print(
        f"\n1 GiB put: {rss_put / 1024:.0f} MiB peak RSS, {secs_put:.1f} s; "
        f"get: {rss_get / 1024:.0f} MiB, {secs_get:.1f} s; "
        f"get -o -: {rss_stream / 1024:.0f} MiB, {secs_stream:.1f} s"
    )
    assert rss_put < LIMIT_KIB, f"put peaked at {rss_put / 1024:.0f} MiB"
    assert rss_get < LIMIT_KIB, f"get peaked at {rss_get / 1024:.0f} MiB"
    assert rss_stream < LIMIT_KIB, f"get -o - peaked at {rss_stream / 1024:.0f} MiB"


TREE_DIRS, TREE_FILES = 1000, 1000  # a tree of a million files


@pytest.mark.slow
def test_a_put_of_a_million_files_stays_under_256mib(vault, tmp_path: Path) -> None:
    """Trees are written, and the previous version's read, one directory at a time: a million files in a
    thousand directories peak under 256 MiB, the first time and the incremental second time."""
    src = tmp_path / "tree"
    for d in range(TREE_DIRS):
        sub = src / f"d{d:04}"
        sub.mkdir(parents=True)
        for f in range(TREE_FILES):
            (sub / f"f{f:04}").write_bytes(b"%d/%d\n" % (d, f))
    for run in ("first", "again"):
        code, rss, secs, err = _run_measured([*vault.exe, "put", str(src)], vault.env)
        assert code == 0, err
        print(f"\nput of {TREE_DIRS * TREE_FILES} files ({run}): {rss / 1024:.0f} MiB peak RSS, {secs:.0f} s")
        assert rss < 256 * 1024, f"put ({run}) peaked at {rss / 1024:.0f} MiB"
