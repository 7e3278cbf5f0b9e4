"""Every `vault` command against a vault in an S3 bucket (moto's server over HTTP): init, put/get, versions,
history, dedup, check, forget/prune, rm, ls, info, log, passwd, keys, repair, and the bucket's contents."""

from __future__ import annotations

import time
from pathlib import Path

from helpers import MiB, assert_error, parse_json, random_bytes, snapshot, text_bytes, write_file

# ------------------------------------------------------------------------------------------------- init


def test_init_creates_the_bucket_and_refuses_a_second_time(s3_any) -> None:
    assert not s3_any.bucket_exists()
    r = s3_any.init()
    assert s3_any.bucket_exists()
    assert s3_any.location in r.stdout + r.err
    keys = s3_any.all_keys()
    assert s3_any.key("config") in keys
    assert len(s3_any.keys_of("keys")) == 1
    before = {k: s3_any.body(k) for k in keys}

    again = s3_any("init", "--kdf-memory", "8", "--kdf-time", "1", "--kdf-parallelism", "1")
    assert_error(again, 40)
    assert {k: s3_any.body(k) for k in s3_any.all_keys()} == before  # nothing touched


def test_init_in_an_existing_bucket_beside_another_vault(s3) -> None:
    """Two vaults under two prefixes of one bucket: the second init finds the bucket there, and neither
    vault sees the other's items."""
    s3.init()
    other = {"env": {"VAULT_PATH": f"s3://{s3.bucket}/elsewhere"}}
    s3("init", "--kdf-memory", "8", "--kdf-time", "1", "--kdf-parallelism", "1", check=0, **other)
    s3("put", "-", "--name", "mine", input=b"one", check=0)
    s3("put", "-", "--name", "theirs", input=b"two", check=0, **other)
    assert [i["name"] for i in parse_json(s3("ls", "--json"))] == ["mine"]
    assert [i["name"] for i in parse_json(s3("ls", "--json", **other))] == ["theirs"]
    assert all(k.startswith(("backups/host-1/", "elsewhere/")) for k in s3.all_keys())


def test_no_vault_in_the_bucket_is_exit_10(s3) -> None:
    s3.client.create_bucket(Bucket=s3.bucket)
    assert_error(s3("ls"), 10)
    assert_error(s3("put", "-", "--name", "x", input=b"x"), 10)


def test_missing_bucket_is_exit_10(s3) -> None:
    assert_error(s3("ls"), 10)
    assert not s3.bucket_exists()  # only init creates buckets


# ------------------------------------------------------------------------------------------ round trips


def test_small_round_trip_file_and_tree(s3_any, tmp_path: Path) -> None:
    s3_any.init()
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
    s3_any("check", "--read-data", check=0)


def test_many_packs_40_mib(s3_vault, tmp_path: Path, record_property) -> None:
    """~40 MiB of random data spans several packs (uploaded in parallel); restored to a file and to
    standard output. The throughput against moto is recorded as test properties."""
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

    # The same data again: dedup adds (almost) nothing to the bucket.
    stored = s3_vault.info()["stored_bytes"]
    again = parse_json(s3_vault("put", str(src), "--name", "copy.bin", "--json"))
    assert again[0]["bytes_added"] < len(data) // 100
    assert s3_vault.info()["stored_bytes"] - stored < len(data) // 100


def test_standard_input_to_standard_output(s3_vault) -> None:
    data = text_bytes(3 * MiB, seed=8) + random_bytes(2 * MiB + 17, seed=9)
    r = parse_json(s3_vault("put", "-", "--name", "streams/dump.sql", "--json", input=data))
    assert (r[0]["name"], r[0]["bytes_read"]) == ("streams/dump.sql", len(data))
    assert s3_vault("get", "streams/dump.sql", "-o", "-", check=0).out == data


# ------------------------------------------------------------------------------- versions and catalogue


def test_versions_history_ls_info_and_dedup(s3_vault, tmp_path: Path) -> None:
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
    assert (info["items"], info["versions"], info["format_version"]) == (1, 3, 1)
    assert info["kdf"]["memory_kib"] == 8 * 1024
    assert info["original_bytes"] == sum(len(c) for c in contents)
    # stored_bytes is what the bucket holds in data/ (packs), nothing else.
    assert info["stored_bytes"] == s3_vault.stored_bytes()

    # A put of unchanged data: a new version, almost no new bytes.
    s3_vault("put", str(src), check=0)
    again = s3_vault.info()
    assert again["versions"] == 4
    assert again["stored_bytes"] - info["stored_bytes"] < len(contents[-1]) // 100


def test_rm_item_and_version(s3_vault) -> None:
    for i in range(2):
        s3_vault("put", "-", "--name", "a", input=b"a%d" % i, check=0)
    s3_vault("put", "-", "--name", "b", input=b"b", check=0)
    s3_vault("rm", "a", "--version", "1", check=0)
    assert [h["version"] for h in parse_json(s3_vault("history", "a", "--json"))] == [2]
    s3_vault("rm", "b", check=0)
    assert [e["name"] for e in parse_json(s3_vault("ls", "--json"))] == ["a"]
    assert_error(s3_vault("get", "b", "-o", "-"), 4)


def test_forget_prune_keeps_what_it_should(s3_vault, tmp_path: Path) -> None:
    contents = [random_bytes(700_000, seed=20 + i) for i in range(3)]
    for data in contents:
        s3_vault("put", "-", "--name", "db.dump", input=data, check=0)
    before = s3_vault.stored_bytes()

    s3_vault("forget", "db.dump", "--keep-last", "2", check=0)
    assert [h["version"] for h in parse_json(s3_vault("history", "db.dump", "--json"))] == [2, 3]
    report = parse_json(s3_vault("prune", "--json"))
    assert report["bytes_freed"] > 600_000
    assert s3_vault.stored_bytes() == before - report["bytes_freed"]
    for version in (2, 3):
        data = contents[version - 1]
        assert s3_vault("get", "db.dump", "--version", str(version), "-o", "-", check=0).out == data
    s3_vault("check", "--read-data", check=0)


def test_log_records_s3_commands(s3_vault) -> None:
    s3_vault("put", "-", "--name", "x", input=b"x", check=0)
    assert_error(s3_vault("get", "nope", "-o", "-"), 4)
    records = parse_json(s3_vault("log", "--json"))
    assert [(r["command"], r["exit_code"]) for r in records][-3:] == [("init", 0), ("put", 0), ("get", 4)]
    assert all(r["outcome"] in ("success", "error") for r in records)
    text = s3_vault("log", check=0).stdout
    assert "put" in text and "get" in text


# ------------------------------------------------------------------------------------- passwords, keys


def test_passwd(s3_vault) -> None:
    s3_vault("put", "-", "--name", "x", input=b"secret data", check=0)
    slots_before = s3_vault.keys_of("keys")
    s3_vault("passwd", env={"VAULT_NEW_PASSWORD": "a new password"}, check=0)
    assert_error(s3_vault("ls"), 12)
    new = {"VAULT_PASSWORD": "a new password"}
    assert s3_vault("get", "x", "-o", "-", env=new, check=0).out == b"secret data"
    assert len(s3_vault.keys_of("keys")) == len(slots_before)


def test_key_add_list_remove(s3_vault) -> None:
    s3_vault("put", "-", "--name", "x", input=b"data", check=0)
    s3_vault("key", "add", env={"VAULT_NEW_PASSWORD": "second"}, check=0)
    second = {"VAULT_PASSWORD": "second"}
    keys = parse_json(s3_vault("key", "list", "--json"))
    assert len(keys) == 2 and sum(k["current"] for k in keys) == 1
    assert len(s3_vault.keys_of("keys")) == 2
    mine = next(k["id"] for k in keys if k["current"])
    assert s3_vault("get", "x", "-o", "-", env=second, check=0).out == b"data"

    s3_vault("key", "remove", mine, env=second, check=0)
    assert_error(s3_vault("ls"), 12)  # the first password is gone
    remaining = parse_json(s3_vault("key", "list", "--json", env=second))
    assert [k["current"] for k in remaining] == [True]
    assert len(s3_vault.keys_of("keys")) == 1


# ------------------------------------------------------------------------------------------------ repair


def test_repair_after_losing_an_index_object(s3_vault, tmp_path: Path) -> None:
    src = tmp_path / "tree"
    for i in range(3):
        write_file(src / f"f{i}", random_bytes(300_000, seed=30 + i))
    s3_vault("put", str(src), check=0)
    s3_vault("put", "-", "--name", "more", input=random_bytes(100_000, seed=34), check=0)
    index_keys = s3_vault.keys_of("index")
    assert len(index_keys) == 2
    s3_vault.client.delete_object(Bucket=s3_vault.bucket, Key=index_keys[0])

    assert_error(s3_vault("check"), 20)
    report = parse_json(s3_vault("repair", "--json"))
    assert report
    s3_vault("check", "--read-data", check=0)
    out = tmp_path / "out"
    s3_vault("get", "tree", "-o", str(out), check=0)
    assert snapshot(out) == snapshot(src)
    assert s3_vault.keys_of("index")


# ----------------------------------------------------------------------------------- what the bucket holds


def test_the_bucket_reveals_no_names_contents_or_passwords(s3_any, tmp_path: Path) -> None:
    """List every key and read every body: no item name, file name, content marker, password or credential;
    keys are the layout's directories and hex names only."""
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
        assert top in ("config", "keys", "data", "index", "versions"), key  # no lock left behind
        if top != "config":
            assert all(c in "0123456789abcdef/" for c in rest), key
        body = s3_any.body(key)
        for needle in needles:
            assert needle.lower() not in body.lower(), (key, needle)
            assert needle.lower() not in key.encode().lower(), (key, needle)
