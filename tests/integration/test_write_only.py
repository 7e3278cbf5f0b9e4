"""Write-only keys through the `vault` command (spec/cli.md, "Keys that can only add data"): what such a key may
run, what it is refused before it reads or prints a name, what a full key reads of what it stored, incremental
puts from its local record, the numbers its versions get, and a SIGKILL in the middle of its put."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import VaultCli, assert_error, objects, random_bytes, snapshot, text_bytes, write_file

WO_PASSWORD = "a write-only password for the nightly job"
ITEM = "precious-documents"  # names that must never be printed to a write-only key
FILE = "salary-2026.txt"


def _wo(cli: VaultCli, *args: str, env: dict[str, str] | None = None, **kw: Any):  # type: ignore[no-untyped-def]
    """Run `vault` with the write-only password."""
    return cli(*args, env={**(env or {}), "VAULT_PASSWORD": WO_PASSWORD}, **kw)


@pytest.fixture
def wo_vault(vault: VaultCli, tmp_path: Path) -> VaultCli:
    """A vault with one full-key version of ITEM and a write-only key."""
    src = tmp_path / "full" / ITEM
    write_file(src / FILE, text_bytes(200_000, seed=1))
    vault("put", str(src), check=0)
    vault("key", "add", "--write-only", env={"VAULT_NEW_PASSWORD": WO_PASSWORD}, check=0)
    return vault


def _tree(root: Path, seed: int) -> Path:
    write_file(root / FILE, text_bytes(300_000, seed=seed))
    write_file(root / "photos" / "big.raw", random_bytes(3 << 20, seed=seed + 1))
    write_file(root / "photos" / "small.jpg", random_bytes(10_000, seed=seed + 2))
    (root / "empty").mkdir(exist_ok=True)
    if not (root / "link").is_symlink():
        os.symlink("photos/small.jpg", root / "link")
    return root


def test_key_list_shows_each_keys_kind(wo_vault: VaultCli) -> None:
    keys = json.loads(wo_vault("key", "list", "--json", check=0).out)
    assert sorted(k["kind"] for k in keys) == ["full", "write-only"]
    assert next(k for k in keys if k["current"])["kind"] == "full"
    assert "write-only" in wo_vault("key", "list", check=0).stdout
    assert json.loads(wo_vault("info", "--json", check=0).out)["format_version"] == 4


@pytest.mark.parametrize(
    "args",
    [
        ("get", ITEM), ("get", f"{ITEM}/{FILE}", "-o", "-"), ("ls",), ("ls", ITEM), ("history", ITEM),
        ("rm", ITEM), ("forget", "--keep-last", "1"), ("prune",), ("repair",), ("rekey",),
        ("key", "add"), ("key", "remove", "0123456789abcdef"), ("key", "list"), ("passwd",),
        ("check", "--read-data"), ("diff", ITEM), ("find", "*.txt"), ("find", FILE, "--item", ITEM),
        ("mount", "{empty_dir}"), ("copy", ITEM, "--to", "/nonexistent-destination"),
        ("get", ITEM, "-o", "-"),
    ],
)
def test_each_forbidden_command_exits_13_and_prints_no_name(wo_vault: VaultCli, vault_dir: Path,
                                                            args: tuple[str, ...]) -> None:
    empty_dir = vault_dir.parent / "empty-mountpoint"
    empty_dir.mkdir(exist_ok=True)
    args = tuple(a.replace("{empty_dir}", str(empty_dir)) for a in args)
    before = snapshot(vault_dir)
    result = _wo(wo_vault, *args, env={"VAULT_NEW_PASSWORD": "x"})
    assert_error(result, 13, "can only add data")
    assert len(result.err.strip().splitlines()) == 1
    assert result.out == b""
    assert ITEM not in result.err and FILE not in result.err  # not even the name the user typed
    assert snapshot(vault_dir) == before  # refused before it touched anything (no lock left behind either)


def test_put_info_check_and_log_work_with_a_write_only_key(wo_vault: VaultCli, tmp_path: Path) -> None:
    src = _tree(tmp_path / "src" / ITEM, seed=10)
    put = json.loads(_wo(wo_vault, "put", str(src), "--json", check=0).out)
    assert [(p["name"], p["version"], p["files"]) for p in put] == [(ITEM, None, 3)]
    info = json.loads(_wo(wo_vault, "info", "--json", check=0).out)
    assert info["items"] is None and info["versions"] is None and info["format_version"] == 4
    assert info["stored_bytes"] > 3 << 20 and info["kdf"]["memory_kib"] == 8 * 1024
    text = _wo(wo_vault, "info", check=0).stdout + _wo(wo_vault, "check", check=0).stdout
    checked = json.loads(_wo(wo_vault, "check", "--json", check=0).out)
    assert checked["verified"] is False and checked["packs"] >= 2
    assert ITEM not in text and FILE not in text
    assert _wo(wo_vault, "log", "--json", check=0).out.startswith(b"[")
    # Standard input and --stdin-from-command too.
    _wo(wo_vault, "put", "-", "--name", "stdin.bin", input=b"piped bytes" * 1000, check=0)
    _wo(wo_vault, "put", "--stdin-from-command", "printf dump", "--name", "db.sql", check=0)
    out = tmp_path / "out"
    out.mkdir()
    wo_vault("get", "stdin.bin", "-o", str(out), check=0)
    assert (out / "stdin.bin").read_bytes() == b"piped bytes" * 1000
    assert wo_vault("get", "db.sql", "-o", "-", check=0).out == b"dump"


def test_full_key_restores_byte_identical_every_incremental_version(wo_vault: VaultCli, tmp_path: Path) -> None:
    src = _tree(tmp_path / "src" / ITEM, seed=20)
    states = []
    for step in range(3):
        if step == 1:
            write_file(src / FILE, text_bytes(300_000, seed=99))  # changed
            write_file(src / "photos" / "new.bin", random_bytes(500_000, seed=98))  # added
        if step == 2:
            (src / "photos" / "small.jpg").unlink()  # deleted
        states.append(snapshot(src))
        _wo(wo_vault, "put", str(src), check=0)
    history = json.loads(wo_vault("history", ITEM, "--json", check=0).out)
    assert [h["version"] for h in history] == [1, 2, 3, 4]  # the full key's version 1, then the three puts
    for number, state in zip((2, 3, 4), states, strict=True):
        out = tmp_path / f"out{number}"
        out.mkdir()
        wo_vault("get", ITEM, "--version", str(number), "-o", str(out), check=0)
        assert snapshot(out / ITEM) == state
    assert json.loads(wo_vault("check", "--read-data", "--json", check=0).out)["ok"]


def test_a_second_put_of_an_unchanged_tree_reads_no_file_and_stores_one_record(wo_vault: VaultCli,
                                                                               vault_dir: Path,
                                                                               tmp_path: Path) -> None:
    src = _tree(tmp_path / "src" / ITEM, seed=30)
    _wo(wo_vault, "put", str(src), check=0)
    before = {kind: len(objects(vault_dir, kind)) for kind in ("data", "index", "versions")}
    again = json.loads(_wo(wo_vault, "put", str(src), "--json", check=0).out)[0]
    assert again["bytes_read"] == 0 and again["bytes_added"] == 0
    after = {kind: len(objects(vault_dir, kind)) for kind in ("data", "index", "versions")}
    assert after == before | {"versions": before["versions"] + 1}
    # One changed file is the only one read again.
    write_file(src / FILE, text_bytes(300_000, seed=31))
    third = json.loads(_wo(wo_vault, "put", str(src), "--json", check=0).out)[0]
    assert third["bytes_read"] == 300_000


def test_the_local_record_follows_a_prune_and_can_be_deleted(wo_vault: VaultCli, tmp_path: Path,
                                                             clean_env: Path) -> None:
    src = _tree(tmp_path / "src" / "scratch", seed=40)
    _wo(wo_vault, "put", str(src), check=0)
    # A full key removes that version and prunes its data: the write-only key must not think it still stored.
    wo_vault("rm", "scratch", check=0)
    wo_vault("prune", check=0)
    _wo(wo_vault, "put", str(src), check=0)
    out = tmp_path / "out"
    out.mkdir()
    wo_vault("get", "scratch", "-o", str(out), check=0)
    assert snapshot(out / "scratch") == snapshot(src)
    # Deleting the record costs one full read, never data.
    for record in (clean_env / ".cache" / "vault").rglob("write-only-*"):
        record.unlink()
    assert json.loads(_wo(wo_vault, "put", str(src), "--json", check=0).out)[0]["bytes_read"] > 3 << 20
    assert json.loads(wo_vault("check", "--read-data", "--json", check=0).out)["ok"]


def test_no_dedup_against_other_keys_data_and_prune_frees_the_copy(wo_vault: VaultCli, tmp_path: Path) -> None:
    data = random_bytes(2 << 20, seed=50)
    write_file(tmp_path / "a" / "same.bin", data)
    write_file(tmp_path / "b" / "same.bin", data)
    wo_vault("put", str(tmp_path / "a" / "same.bin"), check=0)
    # The write-only key can't learn that these chunks are stored: it stores them again (no dedup oracle).
    added = json.loads(_wo(wo_vault, "put", str(tmp_path / "b" / "same.bin"), "--json", check=0).out)[0]
    assert added["bytes_added"] >= len(data)
    stored = json.loads(wo_vault("info", "--json", check=0).out)["stored_bytes"]
    freed = json.loads(wo_vault("prune", "--json", check=0).out)["bytes_freed"]
    assert freed >= len(data) // 2 and json.loads(wo_vault("info", "--json", check=0).out)["stored_bytes"] < stored
    assert wo_vault("get", "same.bin", "-o", "-", check=0).out == data
    # A full key's put of the same bytes deduplicates against the full key's copy that prune kept.
    write_file(tmp_path / "c" / "other.bin", data)
    assert json.loads(wo_vault("put", str(tmp_path / "c" / "other.bin"), "--json", check=0).out)[0][
        "bytes_added"] == 0
    # The other way round, a full key does not rely on a copy a write-only key sealed (anyone holding such a key
    # could seal other contents under a known chunk's id): it stores its own, and prune frees the other.
    fresh = random_bytes(1 << 20, seed=51)
    write_file(tmp_path / "d" / "fresh.bin", fresh)
    _wo(wo_vault, "put", str(tmp_path / "d" / "fresh.bin"), check=0)
    write_file(tmp_path / "e" / "fresh.bin", fresh)
    again = json.loads(wo_vault("put", str(tmp_path / "e" / "fresh.bin"), "--json", check=0).out)[0]
    assert again["bytes_added"] >= len(fresh)
    assert json.loads(wo_vault("prune", "--json", check=0).out)["bytes_freed"] >= len(fresh) // 2
    assert wo_vault("get", "fresh.bin", "--version", "1", "-o", "-", check=0).out == fresh


def test_versions_get_numbers_readers_agree_on_and_a_full_key_settles_them(wo_vault: VaultCli,
                                                                           vault_dir: Path,
                                                                           tmp_path: Path) -> None:
    src = _tree(tmp_path / "src" / ITEM, seed=60)
    _wo(wo_vault, "put", str(src), check=0)
    time.sleep(0.01)
    write_file(src / FILE, b"second")
    _wo(wo_vault, "put", str(src), check=0)
    shown = [(h["version"], h["created"]) for h in json.loads(wo_vault("history", ITEM, "--json", check=0).out)]
    assert [v for v, _ in shown] == [1, 2, 3]
    assert [v for v, _ in shown] == [h["version"] for h in json.loads(wo_vault("history", ITEM, "--json").out)]
    # A full key's put (alone on the vault) takes the next number and settles the others where they were shown.
    write_file(src / FILE, b"third")
    assert json.loads(wo_vault("put", str(src), "--json", check=0).out)[0]["version"] == 4
    assert [(h["version"], h["created"]) for h in
            json.loads(wo_vault("history", ITEM, "--json", check=0).out)][:3] == shown
    from vault.repo.catalog import load_records
    from vault.repo.repository import Repository
    from vault.storage import open_backend

    repo = Repository.open(open_backend(str(vault_dir)), wo_vault.env["VAULT_PASSWORD"].encode())
    assert sorted(r.version for r in load_records(repo.backend, repo.key, repo.vault_id)) == [1, 2, 3, 4]
    repo.close()


def test_a_write_only_put_honours_an_exclusive_lock_and_full_keys_see_its_lock(wo_vault: VaultCli,
                                                                               vault_dir: Path,
                                                                               tmp_path: Path) -> None:
    from vault.repo.locks import acquire, read_lock
    from vault.repo.repository import Repository
    from vault.storage import Kind, open_backend

    src = write_file(tmp_path / "f.bin", random_bytes(10_000, seed=70))
    full = Repository.open(open_backend(str(vault_dir)), wo_vault.env["VAULT_PASSWORD"].encode())
    with acquire(full, exclusive=True, command="prune"):
        assert_error(_wo(wo_vault, "put", str(src)), 11, "exclusive lock held by `vault prune`")
    # A write-only put's lock is sealed under the lock key: a full key reads it (and waits for it).
    proc = subprocess.Popen([*wo_vault.exe, "put", "-", "--name", "slow"], env={**wo_vault.env,
                            "VAULT_PASSWORD": WO_PASSWORD}, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(b"x" * 1000)
    proc.stdin.flush()
    deadline = time.monotonic() + 60
    while not list(full.backend.list(Kind.LOCKS)) and time.monotonic() < deadline:
        time.sleep(0.05)
    info = read_lock(full, next(iter(full.backend.list(Kind.LOCKS))).handle)
    assert (info.command, info.exclusive, info.pid) == ("put", False, proc.pid)
    assert_error(wo_vault("prune"), 11, "shared lock held by `vault put`")
    proc.stdin.close()
    assert proc.wait(60) == 0
    full.close()


def test_sigkill_during_a_write_only_put_leaves_the_vault_valid(wo_vault: VaultCli, vault_dir: Path,
                                                                tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as f:
        for _ in range(8):
            f.write(os.urandom(8 << 20))  # 64 MiB, four packs
    env = {**wo_vault.env, "VAULT_PASSWORD": WO_PASSWORD}
    proc = subprocess.Popen([*wo_vault.exe, "--threads", "2", "put", str(big)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        # The full key's index object and two checkpoints: the first checkpoint's pack is then in the local record
        # too (taken in right after its checkpoint is durable, before the next pack is indexed).
        if len([p for p in objects(vault_dir, "index") if ".tmp" not in p.name]) >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    checked = json.loads(wo_vault("check", "--read-data", "--json").out)
    assert checked["ok"], checked
    names = [i["name"] for i in json.loads(wo_vault("ls", "--json", check=0).out)]
    assert names in ([ITEM], sorted([ITEM, "big.bin"]))
    rerun = json.loads(_wo(wo_vault, "put", str(big), "--json", check=0).out)[0]
    assert rerun["bytes_added"] < big.stat().st_size  # the packs indexed before the kill are reused
    assert wo_vault("get", "big.bin", "-o", "-", check=0).out == big.read_bytes()
    assert json.loads(wo_vault("check", "--read-data", "--json", check=0).out)["ok"]


def test_rekey_keeps_write_only_keys_and_reencrypt_asks_to_issue_them_again(wo_vault: VaultCli,
                                                                            tmp_path: Path) -> None:
    src = _tree(tmp_path / "src" / ITEM, seed=80)
    _wo(wo_vault, "put", str(src), check=0)
    kept = wo_vault("rekey", check=0).stdout
    assert "kept write-only key" in kept and "key generation 0" in kept
    write_file(src / FILE, b"after the rekey")
    _wo(wo_vault, "put", str(src), check=0)  # still works: the keyring keeps generation 0
    assert [k["kind"] for k in json.loads(wo_vault("key", "list", "--json", check=0).out)].count("write-only") == 1
    report = json.loads(wo_vault("rekey", "--reencrypt", "--json", check=0).out)
    assert [k["type"] for k in report["removed_keys"]] == ["write-only"]
    assert report["reencrypted"] and report["write_only_kept"] == []
    assert_error(_wo(wo_vault, "info"), 12)  # its slot is gone: issue a new one
    out = tmp_path / "out"
    out.mkdir()
    wo_vault("get", ITEM, "-o", str(out), check=0)
    assert snapshot(out / ITEM) == snapshot(src)
    wo_vault("key", "add", "--write-only", env={"VAULT_NEW_PASSWORD": WO_PASSWORD}, check=0)
    _wo(wo_vault, "put", str(src), check=0)
    assert json.loads(wo_vault("check", "--read-data", "--json", check=0).out)["ok"]
