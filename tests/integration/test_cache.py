"""The local metadata cache (spec: "The local cache"): correct answers whatever happens to it or to the vault
behind its back, never trusted, safe to delete at any moment, private to its owner.

Each "machine" here is the real `vault` command with its own cache directory (VAULT_CACHE_DIR) and its own state
directory (the replay witness)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import stat
import subprocess
import time
from pathlib import Path

import pytest
from helpers import VaultCli, find_in_files, parse_json, random_bytes, write_file


def _machine(vault: VaultCli, tmp_path: Path, name: str) -> VaultCli:
    home = tmp_path / name
    home.mkdir(exist_ok=True)
    return VaultCli(vault.vault_path, dict(vault.env, VAULT_CACHE_DIR=str(home / "cache"),
                                           XDG_STATE_HOME=str(home / "state")))


def _cache_files(machine: VaultCli) -> list[Path]:
    return [p for p in Path(machine.env["VAULT_CACHE_DIR"]).rglob("*") if p.is_file()]


def _answers(machine: VaultCli, *extra: str) -> dict[str, object]:
    """What a user sees: the items, the history of a few of them, and what info counts."""
    items = parse_json(machine(*extra, "ls", "--json"))
    info = parse_json(machine(*extra, "info", "--json"))
    sample = [i["name"] for i in items if i["name"] in ("docs", "big.bin", "f01.txt", "new.txt")]
    return {
        "ls": items,
        "history": {name: parse_json(machine(*extra, "history", name, "--json")) for name in sample},
        "info": {k: info[k] for k in ("items", "versions", "blobs", "original_bytes", "unique_bytes")},
    }


@pytest.fixture
def populated(vault: VaultCli, tmp_path: Path) -> tuple[VaultCli, Path]:
    """A vault with a directory item (two versions), 70 small file items (enough to fold loose version
    records into a segment) and a bigger file."""
    src = tmp_path / "src"
    for i in range(70):
        write_file(src / "many" / f"f{i:02}.txt", f"file {i}\n".encode())
    write_file(src / "docs" / "a.txt", b"alpha\n")
    write_file(src / "docs" / "sub" / "b.bin", random_bytes(300_000, seed=1))
    write_file(src / "big.bin", random_bytes(2_000_000, seed=2))
    a = _machine(vault, tmp_path, "a")
    a("put", str(src / "docs"), str(src / "big.bin"), check=0)
    a("put", *[str(p) for p in sorted((src / "many").iterdir())], check=0)
    write_file(src / "docs" / "c.txt", b"gamma\n")
    a("put", str(src / "docs"), check=0)
    return a, src


def test_no_cache_gives_the_same_answers(populated: tuple[VaultCli, Path], tmp_path: Path) -> None:
    a, src = populated
    assert _answers(a) == _answers(a, "--no-cache")
    assert a("--no-cache", "get", "big.bin", "-o", "-", check=0).out == (src / "big.bin").read_bytes()
    assert not list(Path(tmp_path / "a" / "cache").rglob("*.tmp"))


def test_another_machine_adds_removes_and_prunes(populated: tuple[VaultCli, Path], tmp_path: Path) -> None:
    a, src = populated
    before = _answers(a)
    b = _machine(a, tmp_path, "b")
    assert _answers(b) == before  # a cold cache answers like a warm one
    write_file(src / "new.txt", b"from machine b\n")
    b("put", str(src / "new.txt"), check=0)
    b("rm", "f00.txt", check=0)
    b("rm", "docs", "--version", "1", check=0)
    b("forget", "--keep-last", "1", check=0)
    b("prune", check=0)
    seen_by_a, seen_by_b = _answers(a), _answers(b)
    assert seen_by_a == seen_by_b == _answers(a, "--no-cache")
    names = {i["name"] for i in seen_by_a["ls"]}  # type: ignore[union-attr]
    assert "new.txt" in names and "f00.txt" not in names
    assert [h["version"] for h in seen_by_a["history"]["docs"]] == [2]  # type: ignore[index]
    assert a("get", "new.txt", "-o", "-", check=0).out == b"from machine b\n"
    a("check", "--read-data", check=0)


def test_deleting_the_cache_mid_rebuild_is_safe(populated: tuple[VaultCli, Path], tmp_path: Path) -> None:
    a, src = populated
    expected = _answers(a, "--no-cache")
    cache = Path(a.env["VAULT_CACHE_DIR"])
    rng = random.Random(20261207)
    for _ in range(4):
        for p in _cache_files(a):
            p.unlink()
        # The rebuild runs as part of the command's opening; kill it somewhere in there (seeded).
        proc = subprocess.Popen([*a.exe, "ls", "--json"], env=a.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 1.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert cache.exists()
    assert _answers(a) == expected
    assert a("get", "docs/sub/b.bin", "-o", "-", check=0).out == (src / "docs" / "sub" / "b.bin").read_bytes()


def _db(machine: VaultCli) -> Path:
    (db,) = [p for p in _cache_files(machine) if p.name == "cache.sqlite"]
    return db


@pytest.mark.parametrize("damage", [
    "UPDATE blobs SET offset = offset + 1",  # every location points one byte off
    "UPDATE blobs SET mac = zeroblob(16)",
    "UPDATE records SET sealed = substr(sealed, 1, 20) || x'00' || substr(sealed, 22)",
    "UPDATE records SET version = version + 5",
    "DELETE FROM records WHERE record_id IN (SELECT record_id FROM records LIMIT 3)",
    "DELETE FROM blobs",
    "UPDATE meta SET value = x'00' WHERE key = 'binding'",
    # An object row whose id changed holds no records any more (they drop out of every join).
    "UPDATE catalog_objects SET id = id + 100000 WHERE id = (SELECT max(id) FROM catalog_objects)",
    "DELETE FROM catalog_objects",  # every row cut off: the join returns nothing at all
    "UPDATE catalog_objects SET generation = generation + 1",
    "UPDATE catalog_objects SET kind = 3 - kind",
])
def test_an_altered_cache_is_rebuilt_never_trusted(populated: tuple[VaultCli, Path], damage: str) -> None:
    a, src = populated
    expected = _answers(a)
    with sqlite3.connect(_db(a)) as db:
        db.execute(damage)
    r = a("get", "docs/sub/b.bin", "-o", "-", check=0)
    assert r.out == (src / "docs" / "sub" / "b.bin").read_bytes()
    assert _answers(a) == expected
    a("check", check=0)


def test_a_flipped_byte_anywhere_in_the_cache_never_changes_an_answer(populated: tuple[VaultCli, Path]) -> None:
    a, src = populated
    expected = _answers(a)
    db = _db(a)
    pristine = db.read_bytes()
    rng = random.Random(7)
    for offset in sorted(rng.sample(range(len(pristine)), 4)):
        raw = bytearray(pristine)
        raw[offset] ^= 0x40
        db.write_bytes(bytes(raw))
        for extra in (db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            extra.unlink(missing_ok=True)
        assert _answers(a) == expected, offset
        assert a("get", "big.bin", "-o", "-", check=0).out == (src / "big.bin").read_bytes()


def test_the_cache_of_another_vault_is_not_used(populated: tuple[VaultCli, Path], tmp_path: Path) -> None:
    a, _ = populated
    other = VaultCli(tmp_path / "other-vault", dict(a.env, VAULT_PATH=str(tmp_path / "other-vault")))
    other.init()
    write_file(tmp_path / "o.txt", b"the other vault\n")
    other("put", str(tmp_path / "o.txt"), check=0)
    mine = Path(a.env["VAULT_CACHE_DIR"])

    def cache_of(vault_dir: Path) -> Path:  # vault.cache.db: the directory is named by the vault id's hash
        vault_id = bytes.fromhex(json.loads((vault_dir / "config").read_text())["id"])
        return mine / hashlib.sha256(vault_id).hexdigest()[:32]

    a_dir, b_dir = cache_of(a.vault_path), cache_of(other.vault_path)
    assert a_dir.is_dir() and b_dir.is_dir()
    # Put vault A's cache where vault B's belongs.
    for p in b_dir.iterdir():
        p.unlink()
    for p in a_dir.iterdir():
        (b_dir / p.name).write_bytes(p.read_bytes())
    assert [i["name"] for i in parse_json(other("ls", "--json"))] == ["o.txt"]
    assert other("get", "o.txt", "-o", "-", check=0).out == b"the other vault\n"


def test_the_cache_is_private_and_holds_no_name(populated: tuple[VaultCli, Path]) -> None:
    a, _ = populated
    files = _cache_files(a)
    assert files
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    for d in {p.parent for p in files}:
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    names = [b"docs", b"sub/b.bin", b"b.bin", b"alpha", b"f07.txt", b"big.bin"]
    assert find_in_files(files, names) == []


def test_a_put_of_many_items_reads_the_catalog_once_and_folds_records(vault: VaultCli, tmp_path: Path) -> None:
    """Loose version records are folded into a segment once there are enough of them: versions/ stays short."""
    src = tmp_path / "many"
    paths = [str(write_file(src / f"{i:03}.txt", f"{i}\n".encode())) for i in range(150)]
    result = json.loads(vault("put", *paths, "--json", check=0).stdout)
    assert sorted(r["version"] for r in result) == [1] * 150
    assert len(os.listdir(vault.vault_path / "versions")) < 64
    again = json.loads(vault("put", *paths[:3], "--json", check=0).stdout)
    assert [r["version"] for r in again] == [2, 2, 2]
    assert len(parse_json(vault("--no-cache", "ls", "--json"))) == 150
