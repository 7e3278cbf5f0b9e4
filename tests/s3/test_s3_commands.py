"""Every `vault` command against a vault in an S3 bucket (moto's server over HTTP): init, put/get, versions,
history, dedup, check, forget/prune, rm, ls, info, log, passwd, keys, repair, and the bucket's contents.

Each command is a child process that starts Python and boto3 (about half a second), so the tests are
grouped to keep the number of commands down; what a test covers is in its name and its docstring.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from helpers import CHEAP_INIT_ARGS, MiB, assert_error, parse_json, random_bytes, snapshot, text_bytes, write_file

CHEAP_INIT = ("init", *CHEAP_INIT_ARGS)

# ------------------------------------------------------------------------------------- init, round trips


def test_init_creates_the_bucket_then_small_round_trips(s3_any, tmp_path: Path) -> None:
    """`init` creates the missing bucket; a second `init` is exit 40 and touches nothing; a directory tree
    and a file go in with one `put` and come back byte for byte."""
    assert not s3_any.bucket_exists()
    r = s3_any.init()
    assert s3_any.bucket_exists()
    assert s3_any.location in r.stdout + r.err
    keys = s3_any.all_keys()
    assert s3_any.key("config") in keys and len(s3_any.keys_of("keys")) == 1
    before = {k: s3_any.body(k) for k in keys}
    assert_error(s3_any(*CHEAP_INIT), 40)
    assert {k: s3_any.body(k) for k in s3_any.all_keys()} == before

    src = tmp_path / "docs"
    write_file(src / "a.txt", b"hello s3\n")
    write_file(src / "sub" / "b.bin", random_bytes(300_000, seed=1))
    write_file(src / "empty", b"")
    (src / "link").symlink_to("a.txt")
    single = write_file(tmp_path / "note.txt", text_bytes(5000, seed=2))
    s3_any("put", str(src), str(single), check=0)
    out = tmp_path / "out"
    s3_any("get", "docs", "-o", str(out), check=0)
    assert snapshot(out) == snapshot(src)
    assert s3_any("get", "note.txt", "-o", "-", check=0).out == single.read_bytes()


def test_init_in_an_existing_bucket_beside_another_vault(s3) -> None:
    """Two vaults under two prefixes of one bucket: the second init finds the bucket there, and neither
    vault sees the other's items."""
    s3.init()
    other = {"env": {"VAULT_PATH": f"s3://{s3.bucket}/elsewhere"}}
    s3(*CHEAP_INIT, check=0, **other)
    s3("put", "-", "--name", "mine", input=b"one", check=0)
    s3("put", "-", "--name", "theirs", input=b"two", check=0, **other)
    assert [i["name"] for i in parse_json(s3("ls", "--json"))] == ["mine"]
    assert [i["name"] for i in parse_json(s3("ls", "--json", **other))] == ["theirs"]
    assert all(k.startswith(("backups/host-1/", "elsewhere/")) for k in s3.all_keys())


def test_no_vault_at_the_location_is_exit_10(s3) -> None:
    assert_error(s3("ls"), 10)  # no bucket
    assert not s3.bucket_exists()  # only init creates buckets
    s3.client.create_bucket(Bucket=s3.bucket)
    assert_error(s3("put", "-", "--name", "x", input=b"x"), 10)  # a bucket, but no vault in it


def test_many_packs_40_mib_and_dedup(s3_vault, tmp_path: Path, record_property) -> None:
    """~40 MiB of random data spans several packs (uploaded in parallel) and restores byte for byte; a
    second put of the same data adds less than 1% to the bucket (info --json stored_bytes). The
    throughput against moto is recorded as test properties (put_MBps, get_MBps)."""
    data = random_bytes(40 * MiB + 12345, seed=7)
    src = write_file(tmp_path / "big.bin", data)
    started = time.monotonic()
    s3_vault("put", str(src), "--compression", "0", check=0)
    put_s = time.monotonic() - started
    assert len(s3_vault.keys_of("data")) >= 3

    out = tmp_path / "out"
    out.mkdir()
    started = time.monotonic()
    s3_vault("get", "big.bin", "-o", str(out), check=0)
    get_s = time.monotonic() - started
    assert (out / "big.bin").read_bytes() == data
    record_property("put_MBps", round(len(data) / put_s / 1e6, 1))
    record_property("get_MBps", round(len(data) / get_s / 1e6, 1))

    stored = s3_vault.info()["stored_bytes"]
    assert stored == s3_vault.stored_bytes() >= len(data)
    again = parse_json(s3_vault("put", str(src), "--name", "copy.bin", "--json"))
    assert again[0]["bytes_added"] < len(data) // 100
    assert s3_vault.info()["stored_bytes"] - stored < len(data) // 100


def test_standard_input_to_standard_output_and_the_log(s3_vault) -> None:
    data = text_bytes(3 * MiB, seed=8) + random_bytes(2 * MiB + 17, seed=9)
    r = parse_json(s3_vault("put", "-", "--name", "streams/dump.sql", "--json", input=data))
    assert (r[0]["name"], r[0]["bytes_read"]) == ("streams/dump.sql", len(data))
    assert s3_vault("get", "streams/dump.sql", "-o", "-", check=0).out == data
    assert_error(s3_vault("get", "nope", "-o", "-"), 4)

    records = parse_json(s3_vault("log", "--json"))
    assert [(r["command"], r["exit_code"], r["outcome"]) for r in records] == [
        ("put", 0, "success"), ("get", 0, "success"), ("get", 4, "error")
    ]
    assert records[0]["bytes"] == len(data)
    text = s3_vault("log", check=0).stdout
    assert "put" in text and "get" in text


# ------------------------------------------------------------------------------- versions and catalogue


def test_versions_history_ls_info(s3_vault, tmp_path: Path) -> None:
    src = tmp_path / "notes.txt"
    contents = [text_bytes(400_000, seed=s) for s in (11, 12, 13)]
    for data in contents:
        write_file(src, data)
        s3_vault("put", str(src), check=0)

    history = parse_json(s3_vault("history", "notes.txt", "--json"))
    assert [h["version"] for h in history] == [1, 2, 3]
    assert [h["size"] for h in history] == [len(c) for c in contents]
    assert all(h["files"] == 1 for h in history)
    for version in (1, 3):
        data = contents[version - 1]
        assert s3_vault("get", "notes.txt", "--version", str(version), "-o", "-", check=0).out == data

    listing = parse_json(s3_vault("ls", "--json"))
    assert [(e["name"], e["type"], e["versions"]) for e in listing] == [("notes.txt", "file", 3)]
    assert listing[0]["size"] == len(contents[-1])

    info = s3_vault.info()
    assert (info["items"], info["versions"], info["format_version"]) == (1, 3, 3)  # new vaults: format 3
    assert info["kdf"]["memory_kib"] == 8 * 1024
    assert info["original_bytes"] == sum(len(c) for c in contents)
    assert info["stored_bytes"] == s3_vault.stored_bytes()  # what the bucket holds in data/


def test_rm_forget_prune_then_every_kept_version_restores(s3_vault, tmp_path: Path) -> None:
    contents = [random_bytes(700_000, seed=20 + i) for i in range(3)]
    db = tmp_path / "db.dump"
    other = write_file(tmp_path / "other", random_bytes(300_000, seed=24))
    write_file(db, contents[0])
    s3_vault("put", str(db), str(other), check=0)
    for data in contents[1:]:
        write_file(db, data)
        s3_vault("put", str(db), check=0)
    before = s3_vault.stored_bytes()

    s3_vault("rm", "other", check=0)
    s3_vault("forget", "db.dump", "--keep-last", "2", check=0)
    assert [h["version"] for h in parse_json(s3_vault("history", "db.dump", "--json"))] == [2, 3]
    assert [e["name"] for e in parse_json(s3_vault("ls", "--json"))] == ["db.dump"]
    assert s3_vault.stored_bytes() == before  # space comes back with prune only

    report = parse_json(s3_vault("prune", "--json"))
    assert report["bytes_freed"] > 700_000 + 250_000
    assert s3_vault.stored_bytes() == before - report["bytes_freed"]
    for version in (2, 3):
        data = contents[version - 1]
        assert s3_vault("get", "db.dump", "--version", str(version), "-o", "-", check=0).out == data
    s3_vault("check", "--read-data", check=0)


# ------------------------------------------------------------------------------------- passwords, keys


def test_key_add_list_remove_and_passwd(s3_vault) -> None:
    s3_vault("put", "-", "--name", "x", input=b"secret data", check=0)
    s3_vault("key", "add", env={"VAULT_NEW_PASSWORD": "second"}, check=0)
    second = {"VAULT_PASSWORD": "second"}
    keys = parse_json(s3_vault("key", "list", "--json"))
    assert len(keys) == 2 and sum(k["current"] for k in keys) == 1
    assert len(s3_vault.keys_of("keys")) == 2
    first_id = next(k["id"] for k in keys if k["current"])
    assert s3_vault("get", "x", "-o", "-", env=second, check=0).out == b"secret data"

    s3_vault("key", "remove", first_id, env=second, check=0)
    assert len(s3_vault.keys_of("keys")) == 1
    assert_error(s3_vault("ls"), 12)  # the first password opens nothing any more

    s3_vault("passwd", env={**second, "VAULT_NEW_PASSWORD": "third"}, check=0)
    assert len(s3_vault.keys_of("keys")) == 1
    assert_error(s3_vault("ls", env=second), 12)
    assert s3_vault("get", "x", "-o", "-", env={"VAULT_PASSWORD": "third"}, check=0).out == b"secret data"


# ------------------------------------------------------------------------------------------------ repair


def test_repair_after_losing_an_index_object(s3_vault, tmp_path: Path) -> None:
    src = tmp_path / "tree"
    for i in range(3):
        write_file(src / f"f{i}", random_bytes(300_000, seed=30 + i))
    s3_vault("put", str(src), check=0)
    [index_key] = s3_vault.keys_of("index")
    s3_vault.client.delete_object(Bucket=s3_vault.bucket, Key=index_key)

    assert_error(s3_vault("check"), 20)
    report = parse_json(s3_vault("repair", "--json"))
    assert report
    assert s3_vault.keys_of("index")
    s3_vault("check", "--read-data", check=0)
    out = tmp_path / "out"
    s3_vault("get", "tree", "-o", str(out), check=0)
    assert snapshot(out) == snapshot(src)


def test_an_altered_object_in_the_bucket_is_found(s3_vault) -> None:
    """One byte changed inside a pack, through boto3: check --read-data finds it, get refuses (exit 20)
    and writes nothing to standard output."""
    s3_vault("put", "-", "--name", "x", input=random_bytes(200_000, seed=35), check=0)
    [pack] = s3_vault.keys_of("data")
    body = bytearray(s3_vault.body(pack))
    body[len(body) // 2] ^= 0x40
    s3_vault.client.put_object(Bucket=s3_vault.bucket, Key=pack, Body=bytes(body))
    assert_error(s3_vault("check", "--read-data"), 20)
    r = s3_vault("get", "x", "-o", "-")
    assert_error(r, 20)
    assert r.out == b""


# ----------------------------------------------------------------------------------- what the bucket holds


def test_the_bucket_reveals_no_names_contents_or_passwords(s3_any, tmp_path: Path) -> None:
    """List every key and read every body: no item name, file name, content marker, password or credential;
    keys are the layout's directories and hex names only, all under the prefix, and no lock is left."""
    s3_any.init()
    marker = b"CONTENT-MARKER-7f3a91"
    src = tmp_path / "ItemNameMarker"
    write_file(src / "FileNameMarker-Quarterly.txt", marker * 5000)
    write_file(src / "DirNameMarker" / "small.txt", marker)
    s3_any("put", str(src), check=0)
    s3_any("put", "-", "--name", "StreamNameMarker/x", input=marker + b" streamed", check=0)
    s3_any("key", "add", env={"VAULT_NEW_PASSWORD": "SecondPasswordMarker"}, check=0)

    needles = [
        b"ItemNameMarker", b"FileNameMarker", b"Quarterly", b"DirNameMarker", b"StreamNameMarker",
        marker, s3_any.PASSWORD.encode(), b"SecondPasswordMarker", b"horse battery",
        s3_any.SECRET_KEY.encode(), s3_any.ACCESS_KEY_ID.encode(),
    ]
    keys = s3_any.all_keys()
    assert len(keys) >= 6
    base = s3_any.key("")
    for key in keys:
        assert key.startswith(base)
        rel = key[len(base):]
        top, _, rest = rel.partition("/")
        assert top in ("config", "keys", "data", "index", "versions"), key
        if top != "config":
            assert all(c in "0123456789abcdef/" for c in rest), key
        body = s3_any.body(key)
        for needle in needles:
            assert needle.lower() not in body.lower(), (key, needle)
            assert needle.lower() not in key.encode().lower(), (key, needle)


def test_the_bucket_does_not_name_the_host(s3_vault) -> None:
    host = socket.gethostname().encode()
    for key in s3_vault.keys_of("keys"):
        body = s3_vault.body(key)
        assert b'"host"' not in body and b'"host":"' + host + b'"' not in body, key
