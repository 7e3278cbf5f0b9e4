"""`vault rekey`: a new master key for new data, and `--reencrypt` to rewrite everything under it, resumable
and verified (docs/security.md, "Key rotation"). Driven through the real `vault` command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import VaultCli, assert_error, random_bytes, snapshot, text_bytes, write_file

SECOND = "a second password"


def _generations(vault_path: Path) -> dict[str, set[int]]:
    """The key generation every pack and encrypted object names in its header, by kind."""
    found: dict[str, set[int]] = {}
    for kind in ("data", "index", "versions"):
        for path in (vault_path / kind).rglob("*"):
            if not path.is_file() or path.name.startswith(".tmp"):
                continue
            head = path.read_bytes()[:10]
            if kind == "data":
                gen = 0 if head[4] == 1 else int.from_bytes(head[5:9], "little")
            else:
                gen = 0 if head[4] == 1 else int.from_bytes(head[6:10], "little")
            found.setdefault(kind, set()).add(gen)
    return found


def _all_generations(vault_path: Path) -> set[int]:
    return set().union(*_generations(vault_path).values())


def _stored(vault: VaultCli, tmp_path: Path) -> Path:
    src = tmp_path / "src"
    write_file(src / "docs" / "a.txt", text_bytes(300_000, seed=1))
    write_file(src / "docs" / "b.bin", random_bytes(700_000, seed=2))
    write_file(src / "big.bin", random_bytes(2_500_000, seed=3))
    vault("put", str(src / "docs"), str(src / "big.bin"), check=0)
    return src


def _restore_all(vault: VaultCli, tmp_path: Path, src: Path, tag: str) -> None:
    out = tmp_path / f"restored-{tag}"
    out.mkdir()
    vault("get", "docs", "-o", str(out / "docs"), check=0)
    vault("get", "big.bin", "-o", str(out / "big.bin"), check=0)
    assert snapshot(out / "docs") == snapshot(src / "docs")
    assert (out / "big.bin").read_bytes() == (src / "big.bin").read_bytes()


def test_rekey_seals_new_data_under_a_new_key_and_keeps_old_data_readable(vault: VaultCli, tmp_path: Path) -> None:
    src = _stored(vault, tmp_path)
    vault("key", "add", env={"VAULT_NEW_PASSWORD": SECOND}, check=0)
    vault("key", "add", "--recovery", str(tmp_path / "recovery.txt"), check=0)
    before = {p.name for p in (vault.vault_path / "keys").iterdir()}

    result = vault("rekey", check=0)
    assert "key generation 1 is current" in result.stdout
    assert result.stdout.count("removed") == 2 and "vault key add --recovery FILE" in result.stdout
    after = {p.name for p in (vault.vault_path / "keys").iterdir()}
    assert len(after) == 1 and after < before  # the opening slot, rewrapped in place
    # A new vault is made at format 3 (catalog segments), which has key generations already: no change.
    assert json.loads((vault.vault_path / "config").read_text())["format_version"] == 3
    info = json.loads(vault("info", "--json", check=0).stdout)
    assert (info["format_version"], info["key_generation"], info["older_key_generations"]) == (3, 1, [0])
    assert "key generation:  1 (data from before it under 0" in vault("info", check=0).stdout
    # The removed password and recovery key no longer open the vault.
    assert_error(vault("ls", env={"VAULT_PASSWORD": SECOND}), 12)
    assert_error(vault("ls", env={"VAULT_PASSWORD": "", "VAULT_PASSWORD_FILE": str(tmp_path / "recovery.txt")}), 12)

    new = write_file(tmp_path / "new.bin", random_bytes(600_000, seed=4))
    vault("put", str(new), check=0)
    assert _generations(vault.vault_path)["data"] == {0, 1}
    _restore_all(vault, tmp_path, src, "after-rekey")
    vault("get", "new.bin", "-o", str(tmp_path / "new-out.bin"), check=0)
    assert (tmp_path / "new-out.bin").read_bytes() == new.read_bytes()
    vault("check", "--read-data", check=0)

    # Identity keys are kept: the same data stored again after the rekey deduplicates against the old packs.
    again = json.loads(vault("put", str(src / "big.bin"), "--name", "big-again", "--json", check=0).stdout)
    assert again[0]["bytes_added"] < 10_000

    # A key added afterwards holds every generation.
    vault("key", "add", env={"VAULT_NEW_PASSWORD": SECOND}, check=0)
    _restore_all(VaultCli(vault.vault_path, dict(vault.env, VAULT_PASSWORD=SECOND)), tmp_path, src, "second")


def test_reencrypt_leaves_nothing_the_old_key_can_read(vault: VaultCli, tmp_path: Path) -> None:
    src = _stored(vault, tmp_path)
    vault("rm", "big.bin", check=0)  # a removed item's records must not survive under the old key either
    vault("put", str(src / "big.bin"), check=0)
    (old_slot,) = (vault.vault_path / "keys").iterdir()
    leaked = old_slot.read_bytes()  # someone copied the key slot, and knows the password

    # A lock left under generation 0 by a process that is still alive (this one) after generation 0 was
    # retired: later lockers remove it as damage instead of being blocked by it forever.
    from vault.repo.locks import Lock
    from vault.repo.repository import Repository
    from vault.storage.local import LocalBackend

    old_repo = Repository.open(LocalBackend(str(vault.vault_path)), vault.env["VAULT_PASSWORD"].encode(), rehash=False)

    result = vault("rekey", "--reencrypt", check=0)
    assert "re-encrypted" in result.stdout and "the old keys are gone" in result.stdout
    Lock(old_repo, False, "put").refresh()  # written late by a process that unlocked before the rekey
    assert len(list((vault.vault_path / "locks").iterdir())) == 1
    vault("put", str(src / "big.bin"), "--name", "after", check=0)
    assert not any((vault.vault_path / "locks").iterdir())
    assert _all_generations(vault.vault_path) == {1}
    _restore_all(vault, tmp_path, src, "reencrypted")
    vault("check", "--read-data", check=0)

    # The leaked slot (generation 0 only) opens nothing the storage now holds: every read fails as a key that
    # predates the rekey, not as damage to repair, and it can't start a rekey of its own.
    current = old_slot.read_bytes()
    old_slot.write_bytes(leaked)
    assert_error(vault("ls"), 20, "key generation 1")
    assert_error(vault("rekey"), 20, "key generation 1")  # refused: it would reuse generation 1's number
    assert_error(vault("get", "big.bin", "-o", str(tmp_path / "leak.bin")), 20)
    assert not (tmp_path / "leak.bin").exists()
    # Nor may it "repair" what it can't read as damage: repair, prune and check change nothing.
    stored = {k: snapshot(vault.vault_path / k) for k in ("data", "index", "versions", "keys")}
    for command in (["repair"], ["prune"], ["check", "--read-data"], ["rm", "docs"]):
        assert_error(vault(*command), 20, "key generation")
    assert {k: snapshot(vault.vault_path / k) for k in stored} == stored
    assert not any((vault.vault_path / "locks").iterdir())  # and leaves no lock of its own behind
    old_slot.write_bytes(current)
    # Put back beside the current one (a replayed old slot), `key list` names it as not of the current key,
    # like a slot planted from another vault, and `key remove` takes it out.
    planted = vault.vault_path / "keys" / "00112233aabbccdd"
    planted.write_bytes(leaked.replace(old_slot.name.encode(), planted.name.encode()))
    assert_error(vault("key", "list"), 20, planted.name)
    vault("key", "remove", planted.name, check=0)
    assert [r["id"] for r in json.loads(vault("key", "list", "--json", check=0).stdout)] == [old_slot.name]
    _restore_all(vault, tmp_path, src, "still")


def test_a_second_reencrypt_and_a_rekey_then_reencrypt(vault: VaultCli, tmp_path: Path) -> None:
    src = _stored(vault, tmp_path)
    vault("rekey", check=0)
    new = write_file(tmp_path / "new.bin", random_bytes(400_000, seed=5))
    vault("put", str(new), check=0)
    assert _all_generations(vault.vault_path) == {0, 1}
    vault("rekey", "--reencrypt", check=0)
    assert _all_generations(vault.vault_path) == {2}
    report = json.loads(vault("rekey", "--reencrypt", "--json", check=0).stdout)
    assert report["generation"] == 3 and report["reencrypted"] and report["older_generations"] == []
    assert _all_generations(vault.vault_path) == {3}
    _restore_all(vault, tmp_path, src, "gen3")
    vault("check", "--read-data", check=0)


def test_prune_reseals_blobs_it_repacks_from_an_older_generation(vault: VaultCli, tmp_path: Path) -> None:
    a = write_file(tmp_path / "a.bin", random_bytes(900_000, seed=6))
    b = write_file(tmp_path / "b.bin", random_bytes(200_000, seed=7))
    vault("put", str(a), str(b), check=0)  # one generation-0 pack holding both
    vault("rekey", check=0)
    vault("rm", "a.bin", check=0)
    report = json.loads(vault("prune", "--json", check=0).stdout)
    assert report["packs_repacked"] == 1
    assert _generations(vault.vault_path)["data"] == {1}
    vault("get", "b.bin", "-o", str(tmp_path / "b-out"), check=0)
    assert (tmp_path / "b-out").read_bytes() == b.read_bytes()
    vault("check", "--read-data", check=0)


def test_the_recovery_key_can_rekey_and_keeps_working(vault: VaultCli, tmp_path: Path) -> None:
    src = _stored(vault, tmp_path)
    key_file = tmp_path / "recovery.txt"
    vault("key", "add", "--recovery", str(key_file), check=0)
    with_key = VaultCli(vault.vault_path, dict(vault.env, VAULT_PASSWORD="", VAULT_PASSWORD_FILE=str(key_file)))
    with_key("rekey", "--reencrypt", check=0)
    assert_error(vault("ls"), 12)  # the password's slot was removed
    _restore_all(with_key, tmp_path, src, "recovery")


def test_rekey_is_refused_while_another_process_holds_a_lock(vault: VaultCli, tmp_path: Path) -> None:
    _stored(vault, tmp_path)
    locks = vault.vault_path / "locks"
    # A live shared lock: `get` streaming to a pipe we do not read yet.
    reader = subprocess.Popen([*vault.exe, "get", "big.bin", "-o", "-"], env=vault.env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not any(locks.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert_error(vault("rekey"), 11)
    finally:
        reader.kill()
        reader.wait()
    assert _all_generations(vault.vault_path) == {0}


@pytest.mark.parametrize("delay", [0.25, 0.5, 0.8, 1.2])
def test_an_interrupted_reencrypt_resumes_and_loses_nothing(vault: VaultCli, tmp_path: Path, delay: float) -> None:
    """SIGKILL `rekey --reencrypt` part way; the vault stays readable, and rerunning it finishes the job."""
    src = tmp_path / "src"
    for i in range(4):
        write_file(src / "docs" / f"part{i}.bin", random_bytes(9_000_000, seed=10 + i))
    write_file(src / "docs" / "a.txt", text_bytes(300_000, seed=1))
    vault("put", str(src / "docs"), "--compression", "0", check=0)
    write_file(src / "big.bin", random_bytes(2_500_000, seed=3))
    vault("put", str(src / "big.bin"), check=0)

    proc = subprocess.Popen([*vault.exe, "rekey", "--reencrypt"], env=vault.env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(delay)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # Whatever instant it died at, every version restores and check passes.
    out = tmp_path / "mid"
    vault("get", "docs", "-o", str(out), check=0)
    assert snapshot(out) == snapshot(src / "docs")
    vault("check", check=0)

    vault("rekey", "--reencrypt", check=0)
    gens = _all_generations(vault.vault_path)
    assert len(gens) == 1 and gens != {0}
    out2 = tmp_path / "end"
    vault("get", "docs", "-o", str(out2), check=0)
    vault("get", "big.bin", "-o", str(tmp_path / "big-out"), check=0)
    assert (tmp_path / "big-out").read_bytes() == (src / "big.bin").read_bytes()
    vault("check", "--read-data", check=0)
    history = json.loads(vault("history", "docs", "--json", check=0).stdout)
    assert [h["version"] for h in history] == [1]  # no duplicated record from the interrupted run


def test_a_rekey_interrupted_between_rewrap_and_slot_removal_is_finished_by_the_rerun(
    vault: VaultCli, tmp_path: Path
) -> None:
    """The crash window of the first step: the opening slot holds the new keyring, the others still exist.
    `key list` still works (the keyring still holds their generation), and the rerun (resuming the pending
    re-encryption) removes them."""
    from vault.ops import rekey as rekey_op
    from vault.repo.repository import Repository
    from vault.storage.local import LocalBackend

    src = _stored(vault, tmp_path)
    vault("key", "add", env={"VAULT_NEW_PASSWORD": SECOND}, check=0)
    repo = Repository.open(LocalBackend(str(vault.vault_path)), vault.env["VAULT_PASSWORD"].encode(), rehash=False)
    rekey_op._new_generation(repo, vault.env["VAULT_PASSWORD"].encode(), reencrypt=True)  # ... and the crash
    assert len(json.loads(vault("key", "list", "--json", check=0).stdout)) == 2
    report = json.loads(vault("rekey", "--reencrypt", "--json", check=0).stdout)
    assert report["resumed"] and report["generation"] == 1 and len(report["removed_keys"]) == 1
    assert len(json.loads(vault("key", "list", "--json", check=0).stdout)) == 1
    assert _all_generations(vault.vault_path) == {1}
    _restore_all(vault, tmp_path, src, "resumed")
    # A key added while a re-encryption is pending holds the current key and is kept by the rerun.
    repo = Repository.open(LocalBackend(str(vault.vault_path)), vault.env["VAULT_PASSWORD"].encode(), rehash=False)
    rekey_op._new_generation(repo, vault.env["VAULT_PASSWORD"].encode(), reencrypt=True)
    vault("key", "add", env={"VAULT_NEW_PASSWORD": SECOND}, check=0)
    report = json.loads(vault("rekey", "--reencrypt", "--json", check=0).stdout)
    assert report["resumed"] and report["generation"] == 2 and report["removed_keys"] == []
    _restore_all(VaultCli(vault.vault_path, dict(vault.env, VAULT_PASSWORD=SECOND)), tmp_path, src, "added")


def test_a_damaged_key_slot_does_not_stop_a_rekey(vault: VaultCli, tmp_path: Path) -> None:
    """A slot that does not parse can't hold the new key: rekey removes it (and `key remove` can too)."""
    _stored(vault, tmp_path)
    (vault.vault_path / "keys" / "0000000000000000").write_text("{}")
    report = json.loads(vault("rekey", "--json", check=0).stdout)
    assert report["removed_keys"] == [{"id": "0000000000000000", "type": "damaged"}]
    (vault.vault_path / "keys" / "0000000000000001").write_text("{}")
    vault("key", "remove", "0000000000000001", check=0)
    assert len(list((vault.vault_path / "keys").iterdir())) == 1
