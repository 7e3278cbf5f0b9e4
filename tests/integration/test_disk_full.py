"""A full disk, for real: a small tmpfs under `put` (the vault on it), `get` (the destination on it) and
`prune` (the vault on it, nearly full). Each must fail with exit 30 and one line saying so, leave nothing
half-written (no temporary file, no partial destination file), and leave a vault that `check --read-data`
passes and that still restores everything it held (issue 18, item 9; spec/cli.md, exit code 30).

Mounting needs root, which CI has (`mount -t tmpfs -o size=8m tmpfs DIR`).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import CHEAP_INIT_ARGS, Result, VaultCli, assert_error, random_bytes, write_file

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root (CI runs as root)")

MiB = 1 << 20


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs, unmounted afterwards."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _leftovers(root: Path) -> list[str]:
    """Temporary files of the store (``.tmp-*``) or of a restore (``.NAME.vault-*.tmp``)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.name.startswith(".tmp-") or (".vault-" in p.name and p.name.endswith(".tmp")))


def _full(r: Result) -> None:
    assert_error(r, 30)
    assert "No space left on device" in r.err, r.err


def _vault_on(cli: VaultCli, where: Path) -> VaultCli:
    v = VaultCli(where / "vault", {**cli.env, "VAULT_PATH": str(where / "vault")})
    v("init", *CHEAP_INIT_ARGS, check=0)
    return v


def test_put_into_a_full_vault_fails_cleanly(cli: VaultCli, small_fs: Path, tmp_path: Path) -> None:
    vault = _vault_on(cli, small_fs)
    kept = write_file(tmp_path / "src" / "kept.bin", random_bytes(MiB, seed=1))
    vault("put", str(kept), check=0)
    big = write_file(tmp_path / "src" / "big.bin", random_bytes(12 * MiB, seed=2))
    _full(vault("put", str(big), "--compression", "0"))
    assert _leftovers(vault.vault_path) == []
    vault("check", "--read-data", check=0)
    assert [i["name"] for i in json.loads(vault("ls", "--json", check=0).out)] == ["kept.bin"]
    vault("get", "kept.bin", "-o", str(tmp_path / "kept.out"), check=0)
    assert (tmp_path / "kept.out").read_bytes() == kept.read_bytes()


def test_get_to_a_full_disk_leaves_no_partial_file(vault: VaultCli, small_fs: Path, tmp_path: Path) -> None:
    src = tmp_path / "tree"
    write_file(src / "a-small.txt", b"small\n")
    for i in range(4):
        write_file(src / f"big{i}.bin", random_bytes(3 * MiB, seed=10 + i))
    vault("put", str(src), "--compression", "0", check=0)

    _full(vault("get", "tree", "-o", str(small_fs / "out")))
    assert _leftovers(small_fs) == []
    for p in (small_fs / "out").rglob("*"):  # what is there is whole: each file as stored, nothing cut short
        if p.is_file():
            assert p.read_bytes() == (src / p.relative_to(small_fs / "out")).read_bytes(), p

    subprocess.run(["rm", "-rf", str(small_fs / "out")], check=True)
    write_file(small_fs / "filler", b"\0" * (7 * MiB))  # a single file no longer fits either
    _full(vault("get", "tree/big0.bin", "-o", str(small_fs / "one.bin")))
    assert not (small_fs / "one.bin").exists()
    assert _leftovers(small_fs) == []
    vault("check", check=0)


def test_prune_on_a_full_disk_fails_cleanly(cli: VaultCli, small_fs: Path, tmp_path: Path) -> None:
    vault = _vault_on(cli, small_fs)
    folder = tmp_path / "docs"
    keep = write_file(folder / "keep.bin", random_bytes(MiB, seed=20))
    write_file(folder / "drop.bin", random_bytes(3 * MiB, seed=21))
    vault("put", str(folder), "--compression", "0", check=0)  # one pack holding both
    (folder / "drop.bin").unlink()
    vault("put", str(folder), "--compression", "0", check=0)
    vault("forget", "--keep-last", "1", check=0)  # the pack is now a quarter live: prune repacks it
    free = os.statvfs(small_fs).f_bavail * os.statvfs(small_fs).f_frsize
    write_file(small_fs / "filler", b"\0" * (free - 256 * 1024))  # room for a lock and an index, not a pack
    before = sorted(str(p.relative_to(vault.vault_path)) for p in vault.vault_path.rglob("*") if p.is_file())

    _full(vault("prune"))
    after = sorted(str(p.relative_to(vault.vault_path)) for p in vault.vault_path.rglob("*") if p.is_file())
    assert _leftovers(vault.vault_path) == []
    assert set(after) <= set(before) | {p for p in after if p.startswith(("index/", "data/"))}
    (small_fs / "filler").unlink()
    vault("check", "--read-data", check=0)
    vault("get", "docs", "-o", str(tmp_path / "out"), check=0)
    assert (tmp_path / "out" / "keep.bin").read_bytes() == keep.read_bytes()
    vault("prune", check=0)  # with room again, it finishes
    vault("check", "--read-data", check=0)


def test_put_fails_cleanly_whichever_write_finds_the_disk_full(cli: VaultCli, small_fs: Path, tmp_path: Path) -> None:
    """The disk fills at a different step each time (the lock, the pack, the checkpoint, the index, the version
    record): each put either commits or fails with exit 30 leaving no temporary file, and the vault checks."""
    vault = _vault_on(cli, small_fs)
    kept = write_file(tmp_path / "kept.bin", random_bytes(100_000, seed=30))
    vault("put", str(kept), check=0)
    outcomes = set()
    for i, room in enumerate((1024, 8 << 10, 64 << 10, 100 << 10, 120 << 10, 160 << 10, 400 << 10)):
        (small_fs / "filler").unlink(missing_ok=True)
        st = os.statvfs(small_fs)
        write_file(small_fs / "filler", b"\0" * max(0, st.f_bavail * st.f_frsize - room))
        src = write_file(tmp_path / f"new{i}.bin", random_bytes(100_000, seed=31 + i))
        r = vault("put", str(src), "--compression", "0")
        if r.code != 0:
            _full(r)
        outcomes.add(r.code)
        assert _leftovers(vault.vault_path) == [], room
        (small_fs / "filler").unlink()
        vault("check", "--read-data", check=0)
    assert outcomes == {0, 30}
    vault("get", "kept.bin", "-o", str(tmp_path / "kept.out"), check=0)
    assert (tmp_path / "kept.out").read_bytes() == kept.read_bytes()
