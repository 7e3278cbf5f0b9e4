"""`vault copy` between two vaults with their own keys: contents and creation times kept, data deduplicated at
the destination, versions copied before skipped, and a copy killed with SIGKILL finished by a rerun with no
version twice; `check --read-data` passes on both vaults afterwards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from helpers import CHEAP_INIT_ARGS, PASSWORD, assert_error, parse_json, random_bytes, snapshot, write_file

import vault as vault_lib

OTHER_PASSWORD = "the destination's own password"


@pytest.fixture
def dest(vault, tmp_path: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """A second vault (its own keys); the environment that makes `copy` reach it."""
    location = tmp_path / "offsite"
    vault("--vault", str(location), "init", *CHEAP_INIT_ARGS, env={"VAULT_PASSWORD": OTHER_PASSWORD}, check=0)
    return {"location": str(location), "VAULT_TO_PASSWORD": OTHER_PASSWORD}


def _in_dest(cli, dest: dict[str, str], *args: str, check: int | None = 0):  # type: ignore[no-untyped-def]
    return cli("--vault", dest["location"], *args, env={"VAULT_PASSWORD": OTHER_PASSWORD}, check=check)


def _copy(cli, dest: dict[str, str], *args: str, check: int | None = 0):  # type: ignore[no-untyped-def]
    return cli("copy", *args, "--to", dest["location"], env={"VAULT_TO_PASSWORD": dest["VAULT_TO_PASSWORD"]},
               check=check)


def test_copy_keeps_contents_and_times_and_skips_what_is_there(vault, dest, tmp_path: Path) -> None:
    src = tmp_path / "src" / "photos"
    write_file(src / "a.jpg", random_bytes(3_000_000, seed=1))
    write_file(src / "sub" / "b.txt", b"bee\n")
    os.symlink("a.jpg", src / "cover")
    vault("put", str(src), check=0)
    write_file(src / "sub" / "b.txt", b"bee, edited\n")
    vault("put", str(src), check=0)
    f = write_file(tmp_path / "notes.txt", b"notes\n")
    vault("put", str(f), check=0)
    first = parse_json(_copy(vault, dest, "--json"))
    assert [(c["name"], c["version"], c["to_version"]) for c in first] == [
        ("notes.txt", 1, 1), ("photos", 1, 1), ("photos", 2, 2)]
    assert first[2]["bytes_added"] < 5_000  # version 2 after version 1: only what changed
    assert parse_json(_copy(vault, dest, "--json")) == []  # everything is there already
    mine, theirs = (parse_json(vault("history", "photos", "--json")),
                    parse_json(_in_dest(vault, dest, "history", "photos", "--json")))
    assert [(h["version"], h["created"], h["size"], h["files"], h["host"]) for h in mine] == [
        (h["version"], h["created"], h["size"], h["files"], h["host"]) for h in theirs]
    for version in ("1", "2"):
        a, b = tmp_path / f"mine{version}", tmp_path / f"theirs{version}"
        vault("get", "photos", "--version", version, "-o", str(a), check=0)
        _in_dest(vault, dest, "get", "photos", "--version", version, "-o", str(b))
        assert snapshot(a) == snapshot(b)
    assert _in_dest(vault, dest, "check", "--read-data").code == 0
    assert vault("check", "--read-data").code == 0


def test_a_second_copy_dedups_at_the_destination(vault, dest, tmp_path: Path) -> None:
    src = tmp_path / "src" / "big"
    for i in range(4):
        write_file(src / f"part{i}.bin", random_bytes(2_000_000, seed=10 + i))
    vault("put", str(src), "--compression", "0", check=0)
    one = parse_json(_copy(vault, dest, "big", "--json"))
    assert one[0]["bytes_added"] > 8_000_000
    write_file(src / "part2.bin", random_bytes(2_000_000, seed=99))  # a quarter of it changes
    vault("put", str(src), "--compression", "0", check=0)
    two = parse_json(_copy(vault, dest, "big", "--json"))
    assert [c["version"] for c in two] == [2]
    assert 1_900_000 < two[0]["bytes_added"] < 2_300_000
    # The same data under another name dedups too (no parent to compare with: every chunk is looked up).
    vault("put", str(src), "--name", "big-again", "--compression", "0", check=0)
    three = parse_json(_copy(vault, dest, "big-again", "--json"))
    assert three[0]["bytes_added"] < 10_000


def test_copy_one_version_and_errors(vault, dest, tmp_path: Path) -> None:
    f = write_file(tmp_path / "f.txt", b"1")
    vault("put", str(f), check=0)
    write_file(f, b"22")
    vault("put", str(f), check=0)
    r = _copy(vault, dest, "f.txt", "--version", "2")
    assert r.stdout.splitlines() == ["copied f.txt version 2 to version 1, " + r.stdout.split(", ")[1].strip()]
    assert [h["size"] for h in parse_json(_in_dest(vault, dest, "history", "f.txt", "--json"))] == [2]
    assert_error(_copy(vault, dest, "missing", check=None), 4)
    assert_error(_copy(vault, dest, "f.txt", "--version", "9", check=None), 4)
    assert_error(vault("copy", "--to", dest["location"]), 12)  # no password for the destination
    pw = write_file(tmp_path / "pw", OTHER_PASSWORD.encode() + b"\n")
    assert vault("copy", "--to", dest["location"], "--to-password-file", str(pw)).code == 0
    assert vault("copy", "--to", dest["location"], env={"VAULT_TO_PASSWORD_FILE": str(pw)}).code == 0
    assert_error(vault("copy", "--to", dest["location"], env={"VAULT_TO_PASSWORD": "wrong"}), 12)
    assert_error(vault("copy", "--to", str(tmp_path / "no-vault-here"), env={"VAULT_TO_PASSWORD": "x"}), 10)
    assert_error(vault("copy", "--to", str(vault.vault_path), env={"VAULT_TO_PASSWORD": PASSWORD}), 2)
    assert_error(vault("copy"), 2)


def test_a_killed_copy_is_finished_by_a_rerun(vault, dest, tmp_path: Path) -> None:
    src = tmp_path / "src" / "data"
    for version in range(6):
        for i in range(3):
            write_file(src / f"f{i}.bin", random_bytes(1_500_000, seed=100 * version + i))
        vault("put", str(src), "--compression", "0", check=0)
    env = dict(vault.env, VAULT_TO_PASSWORD=OTHER_PASSWORD)
    proc = subprocess.Popen([*vault.exe, "copy", "--to", dest["location"]], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None
    first = proc.stdout.readline()  # one version is in: kill it in the middle of the next one
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert first.startswith(b"copied data version 1")
    done_before = len(parse_json(_in_dest(vault, dest, "history", "data", "--json")))
    assert 1 <= done_before < 6
    rerun = parse_json(_copy(vault, dest, "--json"))
    assert [c["version"] for c in rerun] == list(range(done_before + 1, 7))
    history = parse_json(_in_dest(vault, dest, "history", "data", "--json"))
    assert [h["version"] for h in history] == [1, 2, 3, 4, 5, 6]
    assert _in_dest(vault, dest, "check", "--read-data").code == 0
    assert vault("check", "--read-data").code == 0
    out = tmp_path / "out"
    _in_dest(vault, dest, "get", "data", "-o", str(out))
    assert snapshot(out) == snapshot(src)


def test_copied_records_name_their_origin(vault, dest, tmp_path: Path, cheap_kdf: object) -> None:
    f = write_file(tmp_path / "f.txt", b"x")
    vault("put", str(f), check=0)
    _copy(vault, dest)
    with vault_lib.open(dest["location"], password=OTHER_PASSWORD, lock=None, cache=False) as session:
        (record,) = session.repo.catalog.versions("f.txt")
    with vault_lib.open(vault.vault_path, password=PASSWORD, lock=None, cache=False) as session:
        (original,) = session.repo.catalog.versions("f.txt")
        source_id = session.repo.vault_id.hex()
    assert record.origin is not None
    assert (record.origin.vault_id, record.origin.record_id, record.origin.version) == (
        source_id, original.record_id, 1)
    assert original.origin is None
    assert json.loads(json.dumps(record.to_json()))["origin"] == {
        "vault": source_id, "record": original.record_id, "version": 1}
