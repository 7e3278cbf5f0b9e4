"""The threat model of docs/security.md, claim by claim, tried as attacks through the real command line.

Someone who can write to the storage swaps objects between two vaults made with the same password, replays
old objects, moves blobs inside and between packs, truncates and extends packs, raises a key slot's KDF
parameters and changes the config's vault id. Each attack is either detected (exit 20, nothing
unauthenticated released) or, where vault can't detect it by design (a replayed or deleted version record,
a rollback of the whole storage, a replayed key slot), the test pins down exactly what happens, so that
docs/security.md stays true; those are "limit" tests, not xfails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest
from helpers import (
    CHEAP_INIT_ARGS,
    PASSWORD,
    MiB,
    VaultCli,
    assert_error,
    chunk_places,
    measured_command,
    random_bytes,
    write_file,
)

OTHER_PASSWORD = "a different password for vault B"


# ------------------------------------------------------------------------------------------------ helpers


def _files(vault_dir: Path, kind: str) -> list[Path]:
    """The stored objects of one kind (``data``, ``index``, ``versions``, ``keys``), temp files excluded."""
    return sorted(p for p in (vault_dir / kind).rglob("*") if p.is_file() and not p.name.startswith("."))


def _only(vault_dir: Path, kind: str) -> Path:
    found = _files(vault_dir, kind)
    assert len(found) == 1, found
    return found[0]


def _out(tmp_path: Path, name: str = "restore") -> Path:
    out = tmp_path / name
    out.mkdir()
    return out


def _get_bytes(cli: VaultCli, name: str, **kw: object) -> bytes:
    return cli("get", name, "-o", "-", check=0, **kw).out  # type: ignore[arg-type]


def _assert_get_fails(cli: VaultCli, name: str, tmp_path: Path) -> None:
    """exit 20, nothing released to stdout, nothing left in the destination directory."""
    r = cli("get", name, "-o", "-")
    assert_error(r, 20)
    assert r.out == b""
    out = tmp_path / f"out-{len(list(tmp_path.glob('out-*')))}"
    out.mkdir()
    assert_error(cli("get", name, "-o", str(out)), 20)
    assert sorted(os.listdir(out)) == []


def _vault_b(cli: VaultCli, tmp_path: Path, password: str = PASSWORD) -> VaultCli:
    """A second vault, B, with its own location (and by default the same password as A)."""
    b = VaultCli(tmp_path / "vault-b", {**cli.env, "VAULT_PATH": str(tmp_path / "vault-b"),
                                         "VAULT_PASSWORD": password})
    b("init", *CHEAP_INIT_ARGS, check=0)
    return b


def _two_vaults(vault: VaultCli, tmp_path: Path, password: str = PASSWORD) -> tuple[VaultCli, VaultCli, bytes]:
    """A (the ``vault`` fixture) and B, each holding an item ``a.bin`` with different contents."""
    data_a = random_bytes(60_000, seed=101)
    src_a = write_file(tmp_path / "src-a" / "a.bin", data_a)
    src_b = write_file(tmp_path / "src-b" / "a.bin", random_bytes(60_000, seed=102))
    vault("put", str(src_a), "--compression", "0", check=0)
    b = _vault_b(vault, tmp_path, password)
    b("put", str(src_b), "--compression", "0", check=0)
    return vault, b, data_a


def _transplant(src: Path, src_root: Path, dst_root: Path, replace: Path | None) -> Path:
    """Copy object ``src`` of one vault into another: under its own name, or over the object ``replace``."""
    if replace is not None:
        shutil.copyfile(src, replace)
        return replace
    dst = dst_root / src.relative_to(src_root)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


def _header_start(pack: bytes) -> int:
    (hlen,) = struct.unpack("<I", pack[-4:])
    return len(pack) - 4 - hlen


def _slot_doc(path: Path) -> dict:  # type: ignore[type-arg]
    return json.loads(path.read_bytes())


def _run_measured(cli: VaultCli, *args: str) -> tuple[int, str, float, int]:
    """Run `vault` and return (exit code, stderr, seconds, the command's own max RSS in KiB)."""
    started = time.monotonic()
    rss_file = Path(cli.env["HOME"]) / f"rss-{time.time_ns()}"
    proc = subprocess.run(measured_command([*cli.exe, *args], rss_file), env=cli.env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    err = proc.stderr.decode("utf-8", "replace")
    return proc.returncode, err, time.monotonic() - started, int(rss_file.read_text())


# ------------------------------------------------- objects swapped between two vaults with one password


@pytest.mark.parametrize("mode", ["added", "replacing"])
def test_version_record_from_another_vault_is_rejected(vault: VaultCli, tmp_path: Path, mode: str) -> None:
    """Same password, but another vault id and another random master key: the record fails authentication
    (its AAD binds the vault id and the object name, and it is sealed under B's key)."""
    a, b, _ = _two_vaults(vault, tmp_path)
    mine = _only(a.vault_path, "versions")
    foreign = _transplant(_only(b.vault_path, "versions"), b.vault_path, a.vault_path,
                          mine if mode == "replacing" else None)
    assert_error(a("ls"), 20, foreign.name[:10])
    _assert_get_fails(a, "a.bin", tmp_path)
    r = a("check")
    assert_error(r, 20)
    assert foreign.name[:10] in r.stdout


@pytest.mark.parametrize("mode", ["added", "replacing"])
def test_index_from_another_vault_is_rejected(vault: VaultCli, tmp_path: Path, mode: str) -> None:
    a, b, _ = _two_vaults(vault, tmp_path)
    mine = _only(a.vault_path, "index")
    _transplant(_only(b.vault_path, "index"), b.vault_path, a.vault_path, mine if mode == "replacing" else None)
    _assert_get_fails(a, "a.bin", tmp_path)
    r = a("check")
    assert_error(r, 20)
    assert "index object" in r.stdout and "failed authentication" in r.stdout


def test_pack_from_another_vault_in_place_of_ours_is_rejected(vault: VaultCli, tmp_path: Path) -> None:
    a, b, _ = _two_vaults(vault, tmp_path)
    _transplant(_only(b.vault_path, "data"), b.vault_path, a.vault_path, _only(a.vault_path, "data"))
    _assert_get_fails(a, "a.bin", tmp_path)
    assert_error(a("check"), 20)  # the pack header's AAD binds vault id and pack name
    assert_error(a("check", "--read-data"), 20)


def test_pack_from_another_vault_added_is_never_used(vault: VaultCli, tmp_path: Path) -> None:
    """A foreign pack beside ours: nothing references it, `repair` refuses to index it (its header does not
    authenticate) and `get` never reads it."""
    a, b, data_a = _two_vaults(vault, tmp_path)
    foreign = _transplant(_only(b.vault_path, "data"), b.vault_path, a.vault_path, None)
    r = a("check", check=0)
    assert "not in the index" in r.err
    r = a("repair", check=0)
    assert foreign.name[:10] in r.stdout and "unreadable" in r.stdout
    assert len(_files(a.vault_path, "data")) == 2  # left in place, not indexed
    assert _get_bytes(a, "a.bin") == data_a
    a("check", "--read-data", check=0)


def test_key_slot_from_another_vault_with_the_same_password_does_not_open(
    vault: VaultCli, tmp_path: Path
) -> None:
    """B's slot takes the password (its argon2 hash verifies) but the master key it wraps is bound to B's
    vault id: with A's own slot gone, A does not open: exit 20, naming the slot and what it means."""
    a, b, _ = _two_vaults(vault, tmp_path)
    own = _only(a.vault_path, "keys")
    foreign = _transplant(_only(b.vault_path, "keys"), b.vault_path, a.vault_path, None)
    own.unlink()
    r = a("ls")
    assert_error(r, 20, foreign.name)
    assert "copied from another vault" in r.err
    _assert_get_fails(a, "a.bin", tmp_path)


def test_key_slot_from_another_vault_with_another_password_does_not_open(
    vault: VaultCli, tmp_path: Path
) -> None:
    """B's slot (another password) added to A: A still opens with its own password, and B's password
    does not open A (exit 20, not 12: the slot's hash verified, so this is tampering, not a typo)."""
    a, b, data_a = _two_vaults(vault, tmp_path, password=OTHER_PASSWORD)
    foreign = _transplant(_only(b.vault_path, "keys"), b.vault_path, a.vault_path, None)
    assert _get_bytes(a, "a.bin") == data_a
    r = a("ls", env={"VAULT_PASSWORD": OTHER_PASSWORD})
    assert_error(r, 20, foreign.name)
    assert "does not unwrap" in r.err
    assert_error(a("ls", env={"VAULT_PASSWORD": "neither of them"}), 12, "wrong password")
    # `key list` unseals every slot's details with A's key, so the planted slot shows up there, and it can
    # be removed by its id.
    assert_error(a("key", "list"), 20, foreign.name)
    a("key", "remove", foreign.name, check=0)
    assert [k["id"] for k in json.loads(a("key", "list", "--json", check=0).stdout)] == [
        p.name for p in _files(a.vault_path, "keys")
    ]


@pytest.mark.parametrize("keys", [1, 2])
def test_config_with_another_vault_id_is_rejected(vault: VaultCli, tmp_path: Path, keys: int) -> None:
    """Every subkey is derived with the vault id as HKDF salt and every AAD binds it: a changed id opens
    nothing. With a second key present the answer is still 20, never 'wrong password'."""
    src = write_file(tmp_path / "a.bin", random_bytes(30_000, seed=5))
    vault("put", str(src), check=0)
    if keys == 2:
        vault("key", "add", env={"VAULT_NEW_PASSWORD": OTHER_PASSWORD}, check=0)
    config = vault.vault_path / "config"
    doc = json.loads(config.read_bytes())
    doc["id"] = os.urandom(16).hex()
    config.write_text(json.dumps(doc))
    r = vault("ls")
    assert_error(r, 20, "config")
    _assert_get_fails(vault, "a.bin", tmp_path)


# ------------------------------------------------------------------------------------------- drops


def test_dropped_index_is_detected_and_rebuilt_by_repair(vault: VaultCli, tmp_path: Path) -> None:
    """Every index object deleted: versions name blobs the index does not have: get and check exit 20;
    `repair` rebuilds the index from the packs' authenticated headers and everything restores."""
    data = random_bytes(50_000, seed=6)
    vault("put", str(write_file(tmp_path / "a.bin", data)), check=0)
    for p in _files(vault.vault_path, "index"):
        p.unlink()
    _assert_get_fails(vault, "a.bin", tmp_path)
    assert_error(vault("check"), 20)
    vault("repair", check=0)
    assert _get_bytes(vault, "a.bin") == data
    vault("check", "--read-data", check=0)


def test_dropped_config_means_no_vault(vault: VaultCli) -> None:
    """The config holds the vault id, the HKDF salt of every subkey: without it nothing opens (exit 10,
    'no vault'). It holds no secret: keep a copy of it with the key file (docs/security.md)."""
    (vault.vault_path / "config").unlink()
    assert_error(vault("ls"), 10)


# ------------------------------------------------------------------------------------------- replays


def test_replayed_index_after_prune_is_reported_and_harmless(vault: VaultCli, tmp_path: Path) -> None:
    """An index object that prune removed, put back: check reports the packs it names as missing (exit 20);
    current versions still restore; `repair` rebuilds the index from the packs and check is clean again."""
    data_a = random_bytes(70_000, seed=11)
    vault("put", str(write_file(tmp_path / "a.bin", data_a)), check=0)
    vault("put", str(write_file(tmp_path / "b.bin", random_bytes(80_000, seed=12))), check=0)
    saved = {p.name: p.read_bytes() for p in _files(vault.vault_path, "index")}
    assert len(saved) == 2
    vault("rm", "b.bin", check=0)
    vault("prune", check=0)
    current = {p.name for p in _files(vault.vault_path, "index")}
    replayed = [name for name in saved if name not in current]
    assert replayed
    for name in replayed:
        (vault.vault_path / "index" / name).write_bytes(saved[name])

    r = vault("check")
    assert_error(r, 20)
    assert "missing" in r.stdout
    assert _get_bytes(vault, "a.bin") == data_a
    vault("repair", check=0)
    vault("check", check=0)


def _elsewhere(vault: VaultCli, tmp_path: Path) -> VaultCli:
    """The same vault and password from another machine: a state directory that never saw this vault."""
    state = tmp_path / "other-machine-state"
    return VaultCli(vault.vault_path, dict(vault.env, XDG_STATE_HOME=str(state)))


@pytest.mark.parametrize("pruned", [False, True])
def test_replayed_version_record_after_rm_is_detected_where_it_was_removed(
    vault: VaultCli, tmp_path: Path, pruned: bool
) -> None:
    """A version record removed by `rm` and put back by someone who kept a copy is a valid, authenticated
    object of this vault. The machine that saw it go remembers its name (vault.witness, like borg's client-side
    security directory): every command warns and `check` fails naming the version. LIMIT: a machine that never
    saw it removed can't tell (restic and borg share this). After a prune its data is gone, so it is reported
    either way."""
    data = random_bytes(50_000, seed=21)
    other = _elsewhere(vault, tmp_path)
    vault("put", str(write_file(tmp_path / "a.bin", data)), check=0)
    record = _only(vault.vault_path, "versions")
    kept = record.read_bytes()
    vault("rm", "a.bin", check=0)
    if pruned:
        vault("prune", check=0)
    assert vault("ls", "--json", check=0).stdout.strip() == "[]"
    record.write_bytes(kept)  # the attacker's replay

    listed = vault("ls", "--json", check=0)
    assert [i["name"] for i in json.loads(listed.stdout)] == ["a.bin"]  # it is back ...
    assert "removed earlier are back" in listed.err and "replayed" in listed.err  # ... and this machine says so
    result = vault("check")
    assert_error(result, 20, "check found")
    assert "a.bin version 1: its record was removed earlier and is back" in result.stdout
    assert "vault rm NAME --version N" in result.err
    log = json.loads(vault("log", "--json", check=0).stdout)
    assert any("replayed" in str(e.get("extra")) for e in log if e["command"] == "ls")

    # The LIMIT: from another machine it is a genuine record.
    if not pruned:
        assert _get_bytes(other, "a.bin") == data
        elsewhere = other("check", "--read-data", check=0)
        assert "replayed" not in elsewhere.err
    else:
        _assert_get_fails(other, "a.bin", tmp_path)
        assert_error(other("check"), 20)

    # Removing it again settles it here.
    vault("rm", "a.bin", check=0)
    assert "replayed" not in vault("check", check=0).err


def test_deleted_version_record_is_noticed_by_the_machine_that_saw_it(vault: VaultCli, tmp_path: Path) -> None:
    """Deleting a version record looks exactly like `vault rm --version` from another machine: history no
    longer shows it and check is clean there (the LIMIT). The machine that saw the record, and did not remove
    it, warns once and `check` notes it; its operation log also remembers the put."""
    src = tmp_path / "a.bin"
    write_file(src, random_bytes(40_000, seed=31))
    vault("put", str(src), check=0)
    first = set(_files(vault.vault_path, "versions"))
    write_file(src, random_bytes(40_000, seed=32))
    vault("put", str(src), check=0)
    (v1,) = first
    kept = v1.read_bytes()
    v1.unlink()  # the attacker's deletion
    other = _elsewhere(vault, tmp_path)
    assert "gone" not in other("ls", check=0).err  # never saw it: can't tell
    result = vault("history", "a.bin", "--json", check=0)
    assert [h["version"] for h in json.loads(result.stdout)] == [2]
    assert "1 version(s) that this machine saw are gone and it did not remove them" in result.err
    assert "gone" not in vault("ls", check=0).err  # said once
    other("check", "--read-data", check=0)
    log = json.loads(vault("log", "--json", check=0).stdout)
    assert [e["command"] for e in log if e["outcome"] == "success"].count("put") == 2
    # Put back, the deleted record is a replay.
    v1.write_bytes(kept)
    assert "removed earlier are back" in vault("ls", check=0).err


def test_rollback_of_the_whole_storage_is_noticed_by_a_machine_that_saw_the_newer_state(
    vault: VaultCli, tmp_path: Path
) -> None:
    """A storage reset to an older copy is a consistent older vault. The machine that saw the newer state
    notices versions gone that it did not remove; its operation log lists the put that is gone. LIMIT: a
    machine that never saw the newer state can't tell."""
    src = tmp_path / "a.bin"
    write_file(src, random_bytes(40_000, seed=41))
    vault("put", str(src), check=0)
    old = tmp_path / "old-copy"
    shutil.copytree(vault.vault_path, old)
    write_file(src, random_bytes(40_000, seed=42))
    vault("put", str(src), check=0)
    shutil.rmtree(vault.vault_path)
    shutil.copytree(old, vault.vault_path)  # the rollback
    result = vault("history", "a.bin", "--json", check=0)
    assert [h["version"] for h in json.loads(result.stdout)] == [1]
    assert "saw are gone" in result.err and "rolled back" in result.err
    other = _elsewhere(vault, tmp_path)
    checked = other("check", "--read-data", check=0)
    assert "gone" not in checked.err
    puts = [e for e in json.loads(vault("log", "--json", check=0).stdout) if e["command"] == "put"]
    assert len(puts) == 2


def test_limit_replayed_key_slot_opens_with_its_old_password(vault: VaultCli, tmp_path: Path) -> None:
    """LIMIT: `key remove` and `passwd` don't change the master key. A removed slot (or the pre-`passwd`
    slot) put back by someone who kept a copy opens the vault with the old password again. The remedy is a
    new master key (`vault rekey`, future work), not a new password."""
    vault("key", "add", env={"VAULT_NEW_PASSWORD": OTHER_PASSWORD}, check=0)
    keys = json.loads(vault("key", "list", "--json", check=0).stdout)
    other_id = next(k["id"] for k in keys if not k["current"])
    other_slot = vault.vault_path / "keys" / other_id
    kept_other = other_slot.read_bytes()
    vault("key", "remove", other_id, check=0)
    assert_error(vault("ls", env={"VAULT_PASSWORD": OTHER_PASSWORD}), 12)
    other_slot.write_bytes(kept_other)
    vault("ls", env={"VAULT_PASSWORD": OTHER_PASSWORD}, check=0)  # back

    own_slot = vault.vault_path / "keys" / next(k["id"] for k in keys if k["current"])
    kept_own = own_slot.read_bytes()
    vault("passwd", env={"VAULT_NEW_PASSWORD": "the new password"}, check=0)
    assert_error(vault("ls"), 12)
    own_slot.write_bytes(kept_own)
    vault("ls", check=0)  # the old password works again
    assert_error(vault("ls", env={"VAULT_PASSWORD": "the new password"}), 12)


# ------------------------------------------------------------------------------- blobs inside packs


def _pair(vault: VaultCli, tmp_path: Path) -> tuple[bytes, bytes]:
    """A directory item ``pair`` with two files of the same size, stored raw: one pack, two equal blobs."""
    x, y = random_bytes(40_000, seed=51), random_bytes(40_000, seed=52)
    write_file(tmp_path / "pair" / "x.bin", x)
    write_file(tmp_path / "pair" / "y.bin", y)
    vault("put", str(tmp_path / "pair"), "--compression", "0", check=0)
    return x, y


def test_two_blobs_swapped_inside_a_pack_are_detected(vault: VaultCli, tmp_path: Path) -> None:
    """Two well-formed ciphertexts of the same length, each authentic, trade places. Offsets and lengths all
    still fit the (authenticated) header, so only the blob id in each blob's AAD can tell: it does."""
    _pair(vault, tmp_path)
    (px,) = chunk_places(vault.vault_path, "pair/x.bin")
    (py,) = chunk_places(vault.vault_path, "pair/y.bin")
    assert px.pack == py.pack and px.length == py.length
    data = bytearray(px.pack.read_bytes())
    bx = bytes(data[px.offset : px.offset + px.length])
    data[px.offset : px.offset + px.length] = data[py.offset : py.offset + py.length]
    data[py.offset : py.offset + py.length] = bx
    px.pack.write_bytes(bytes(data))

    _assert_get_fails(vault, "pair/x.bin", tmp_path)
    _assert_get_fails(vault, "pair/y.bin", tmp_path)
    r = vault("check", "--read-data")
    assert_error(r, 20)
    assert "pair version 1" in r.stdout


def test_blob_moved_to_another_offset_is_detected(vault: VaultCli, tmp_path: Path) -> None:
    """Bytes inserted before the first blob shift every blob: the header still authenticates and still
    fits, but nothing is found where the index says it is."""
    _pair(vault, tmp_path)
    (px,) = chunk_places(vault.vault_path, "pair/x.bin")
    data = px.pack.read_bytes()
    px.pack.write_bytes(data[:5] + os.urandom(64) + data[5:])
    _assert_get_fails(vault, "pair/x.bin", tmp_path)
    assert_error(vault("get", "pair", "-o", str(_out(tmp_path))), 20)
    assert_error(vault("check", "--read-data"), 20)


def test_blob_moved_between_packs_is_detected(vault: VaultCli, tmp_path: Path) -> None:
    """a.bin's blob cut out of its pack and put into b.bin's pack (before that pack's header, so b's own
    blobs stay where they were): a.bin fails, b.bin is untouched, check --read-data reports it."""
    data_b = random_bytes(45_000, seed=62)
    vault("put", str(write_file(tmp_path / "a.bin", random_bytes(45_000, seed=61))), "--compression", "0", check=0)
    vault("put", str(write_file(tmp_path / "b.bin", data_b)), "--compression", "0", check=0)
    (pa,) = chunk_places(vault.vault_path, "a.bin")
    (pb,) = chunk_places(vault.vault_path, "b.bin")
    assert pa.pack != pb.pack
    a_bytes, b_bytes = pa.pack.read_bytes(), pb.pack.read_bytes()
    blob = a_bytes[pa.offset : pa.offset + pa.length]
    pa.pack.write_bytes(a_bytes[: pa.offset] + a_bytes[pa.offset + pa.length :])
    hs = _header_start(b_bytes)
    pb.pack.write_bytes(b_bytes[:hs] + blob + b_bytes[hs:])

    _assert_get_fails(vault, "a.bin", tmp_path)
    assert _get_bytes(vault, "b.bin") == data_b
    assert_error(vault("check", "--read-data"), 20)


# ------------------------------------------------------------------------------ truncation, appending


def test_pack_truncated_inside_a_blob(vault: VaultCli, tmp_path: Path) -> None:
    vault("put", str(write_file(tmp_path / "a.bin", random_bytes(45_000, seed=71))), "--compression", "0", check=0)
    (p,) = chunk_places(vault.vault_path, "a.bin")
    with open(p.pack, "r+b") as f:
        f.truncate(p.offset + p.length // 2)
    _assert_get_fails(vault, "a.bin", tmp_path)
    assert_error(vault("check"), 20)
    assert_error(vault("check", "--read-data"), 20)


@pytest.mark.parametrize("change", ["appended", "last-byte-cut"])
def test_pack_end_changed_is_reported_but_data_is_intact(vault: VaultCli, tmp_path: Path, change: str) -> None:
    """Bytes appended to a pack, or its last byte cut: the trailer no longer names a valid header, which
    check reports (exit 20). `get` reads blobs where the authenticated index says they are, and those are
    intact and authenticated, so the file still restores byte for byte: nothing unauthenticated is used."""
    data = random_bytes(45_000, seed=72)
    vault("put", str(write_file(tmp_path / "a.bin", data)), "--compression", "0", check=0)
    (p,) = chunk_places(vault.vault_path, "a.bin")
    raw = p.pack.read_bytes()
    p.pack.write_bytes(raw + bytes(100) if change == "appended" else raw[:-1])
    assert _get_bytes(vault, "a.bin") == data
    assert_error(vault("check"), 20)
    assert_error(vault("check", "--read-data"), 20)


# ------------------------------------------------------------------------------ key derivation bounds


@pytest.mark.parametrize("where", ["slot", "slot-and-hash", "time"])
def test_key_slot_with_absurd_kdf_parameters_fails_fast_without_allocating(
    vault: VaultCli, tmp_path: Path, where: str
) -> None:
    """64 GiB of argon2 memory (or a billion passes) written into the only key slot: refused before argon2
    runs, exit 20 in well under 5 s, and the process never grows beyond what a normal `ls` needs."""
    slot = _only(vault.vault_path, "keys")
    doc = _slot_doc(slot)
    huge = 64 * MiB  # KiB: 64 GiB
    if where == "time":
        doc["kdf"]["time_cost"] = 10**9
        doc["hash"] = re.sub(r"t=\d+", "t=1000000000", doc["hash"])
    else:
        doc["kdf"]["memory_kib"] = huge
        if where == "slot-and-hash":
            doc["hash"] = re.sub(r"m=\d+", f"m={huge}", doc["hash"])
    slot.write_text(json.dumps(doc))
    code, err, seconds, maxrss_kib = _run_measured(vault, "ls")
    assert code == 20, err
    assert "outside the safe bounds" in err
    assert seconds < 5, seconds
    assert maxrss_kib < 200 * 1024, maxrss_kib


def test_key_slot_hash_parameters_differing_from_the_slot_are_refused(vault: VaultCli) -> None:
    """The PHC hash's own parameters must equal the (bounded) slot parameters, so a hash can't smuggle in a
    cost of its own."""
    slot = _only(vault.vault_path, "keys")
    doc = _slot_doc(slot)
    doc["hash"] = re.sub(r"m=\d+", f"m={64 * MiB}", doc["hash"])
    slot.write_text(json.dumps(doc))
    code, err, seconds, maxrss_kib = _run_measured(vault, "ls")
    assert code == 20, err
    assert seconds < 5 and maxrss_kib < 200 * 1024


# ------------------------------------------------------------------------- what a reader still learns


def test_limit_a_single_file_put_shows_its_size_and_chunk_count(vault: VaultCli, tmp_path: Path) -> None:
    """LIMIT (docs/security.md, "What the storage learns"): a put of one small file writes one pack whose size
    is the file's stored size plus a few hundred bytes, and the pack's header length (plaintext, so the
    header can be found) gives the number of blobs in it. Names and contents stay hidden."""
    size = 123_457
    vault("put", str(write_file(tmp_path / "a.bin", random_bytes(size, seed=81))), "--compression", "0", check=0)
    pack = _only(vault.vault_path, "data").read_bytes()
    assert 0 < len(pack) - size < 1024
    (hlen,) = struct.unpack("<I", pack[-4:])
    assert (hlen - 12 - 16 - 4) // 46 == 2  # the file's one chunk and its item's tree


def test_limit_a_planted_file_shows_whether_it_is_stored_already(vault: VaultCli, tmp_path: Path) -> None:
    """LIMIT (docs/security.md, "The deduplication oracle"): someone who can put a file where the next `put`
    reads it (a download folder, a shared directory) and watch the storage learns whether that file's content
    is stored already: deduplication stores it again only if it is not, so the storage grows by about its size
    or by almost nothing. This is inherent to deduplication (restic and borg have it too)."""
    secret = random_bytes(600_000, seed=93)
    folder = tmp_path / "docs"
    write_file(folder / "victims-own.bin", secret)
    vault("put", str(folder), "--compression", "0", check=0)

    def growth_when_planted(name: str, data: bytes) -> int:
        before = sum(p.stat().st_size for p in _files(vault.vault_path, "data"))
        write_file(folder / name, data)  # the attacker plants it; the next backup picks it up
        vault("put", str(folder), "--compression", "0", check=0)
        return sum(p.stat().st_size for p in _files(vault.vault_path, "data")) - before

    stored_already = growth_when_planted("guess-1.bin", secret)
    not_stored = growth_when_planted("guess-2.bin", random_bytes(600_000, seed=94))
    assert stored_already < 10_000 < 600_000 < not_stored


def test_key_slots_do_not_say_which_host_made_them(vault: VaultCli, tmp_path: Path) -> None:
    """A slot's plaintext is its id, KDF parameters, salt, policy, password hash and wrapped key; the host and
    time that `key list` shows are sealed with the vault's metadata key."""
    import socket

    vault("key", "add", "--recovery", str(tmp_path / "recovery.txt"), check=0)
    host = socket.gethostname()
    for slot in _files(vault.vault_path, "keys"):
        doc = _slot_doc(slot)
        assert "host" not in doc and "created" not in doc, doc
        assert host not in [v for v in doc.values() if isinstance(v, str)]
    listed = json.loads(vault("key", "list", "--json", check=0).stdout)
    assert {k["host"] for k in listed} == {host}


def test_a_known_file_is_not_found_by_its_plain_hash(vault: VaultCli, tmp_path: Path) -> None:
    """Blob ids are keyed (BLAKE3 under a key from the master key) and live only inside encrypted headers
    and index objects: the plain hashes of a known file appear nowhere in the storage, and two vaults with
    the same password holding the same file share no stored bytes beyond the format's magics."""
    import hashlib

    import blake3

    data = random_bytes(300_000, seed=91)
    src = write_file(tmp_path / "known.bin", data)
    vault("put", str(src), check=0)
    b = _vault_b(vault, tmp_path)
    b("put", str(src), check=0)
    digests = [hashlib.sha256(data).digest(), blake3.blake3(data).digest(), hashlib.sha256(data[:256 * 1024]).digest()]
    needles = digests + [d.hex().encode() for d in digests]
    stored = [p for v in (vault, b) for p in v.vault_path.rglob("*") if p.is_file()]
    for p in stored:
        content = p.read_bytes()
        assert not [n for n in needles if n in content or n in str(p).encode()], p
    pack_a, pack_b = _only(vault.vault_path, "data").read_bytes(), _only(b.vault_path, "data").read_bytes()
    # No 16-byte run of A's pack body occurs anywhere in B's (random nonces, different keys), so any common
    # run of 31 bytes or more would be found.
    in_b = {pack_b[i : i + 16] for i in range(len(pack_b) - 15)}
    assert not [i for i in range(5, len(pack_a) - 20, 16) if pack_a[i : i + 16] in in_b]


@pytest.mark.parametrize("command", [("check", "--read-data"), ("repair",)])
def test_huge_pack_is_not_read_whole_into_memory(vault: VaultCli, tmp_path: Path, command: tuple[str, ...]) -> None:
    vault("put", str(write_file(tmp_path / "a.bin", random_bytes(45_000, seed=73))), check=0)
    pack = _only(vault.vault_path, "data")
    with open(pack, "r+b") as f:
        f.truncate(768 * MiB)  # sparse: costs no disk, reads as zeros
    code, err, _, maxrss_kib = _run_measured(vault, *command)
    assert "Traceback" not in err and code in (0, 20), (code, err)
    assert maxrss_kib < 300 * 1024, maxrss_kib
