"""``--json`` outputs (spec/cli.md, "Output for scripts") and the logs' discretion about passwords.

Each ``--json`` prints exactly one JSON document on standard output, with the contract's keys and types:
sizes are ints, times ISO 8601 in UTC ending in ``Z``.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

from helpers import (
    ISO_UTC,
    PASSWORD,
    assert_error,
    parse_json,
    random_bytes,
    secret_variants,
    text_bytes,
    write_file,
)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_time(v: object) -> bool:
    return isinstance(v, str) and ISO_UTC.match(v) is not None


def test_json_outputs(vault, tmp_path: Path) -> None:
    f = write_file(tmp_path / "notes.txt", text_bytes(300_000, seed=2))
    d = tmp_path / "docs"
    write_file(d / "a.txt", b"alpha")
    write_file(d / "sub" / "b.bin", random_bytes(1000, seed=3))
    os.symlink("a.txt", d / "link")

    put = parse_json(vault("put", str(f), str(d), "--json"))
    assert isinstance(put, list) and len(put) == 2
    by_name = {p["name"]: p for p in put}
    assert set(by_name) == {"notes.txt", "docs"}
    for p in put:
        for key in ("version", "files", "bytes_read", "bytes_added"):
            assert _is_int(p[key]), (key, p)
        assert p["version"] == 1
    assert by_name["notes.txt"]["files"] == 1 and by_name["notes.txt"]["bytes_read"] == 300_000
    assert by_name["docs"]["files"] == 2 and by_name["docs"]["bytes_read"] == 1005
    assert 0 < by_name["notes.txt"]["bytes_added"] < 300_000  # compressed

    put2 = parse_json(vault("put", str(f), "--json"))
    assert put2[0]["version"] == 2 and put2[0]["bytes_added"] < 1000  # nothing new but a little metadata

    items = parse_json(vault("ls", "--json"))
    assert [i["name"] for i in items] == ["docs", "notes.txt"]
    for i in items:
        assert i["type"] in ("file", "dir")
        assert _is_int(i["size"]) and _is_int(i["versions"]) and _is_time(i["updated"]), i
    assert {i["name"]: (i["type"], i["size"], i["versions"]) for i in items} == {
        "docs": ("dir", 1005, 1),
        "notes.txt": ("file", 300_000, 2),
    }

    entries = parse_json(vault("ls", "docs", "--json"))
    assert isinstance(entries, list)
    got = {e["name"]: e for e in entries}
    assert set(got) >= {"a.txt", "sub", "sub/b.bin", "link"}, got
    assert (got["a.txt"]["type"], got["a.txt"]["size"]) == ("file", 5)
    assert (got["sub/b.bin"]["type"], got["sub/b.bin"]["size"]) == ("file", 1000)
    assert got["sub"]["type"] == "dir" and got["link"]["type"] == "link"
    assert all(_is_int(e["size"]) for e in entries)
    sub = parse_json(vault("ls", "docs/sub", "--json"))
    assert [(e["name"], e["size"]) for e in sub] == [("b.bin", 1000)]

    hist = parse_json(vault("history", "notes.txt", "--json"))
    assert [h["version"] for h in hist] == [1, 2]  # oldest first
    for h in hist:
        assert _is_time(h["created"]) and h["size"] == 300_000 and h["files"] == 1, h
    assert hist[0]["created"] <= hist[1]["created"]

    info = parse_json(vault("info", "--json"))
    assert _is_int(info["format_version"]) and info["format_version"] >= 1
    assert (info["items"], info["versions"]) == (2, 3)
    assert _is_int(info["stored_bytes"]) and _is_int(info["original_bytes"])
    assert info["original_bytes"] == 2 * 300_000 + 1005
    assert 0 < info["stored_bytes"] < info["original_bytes"]
    kdf = info["kdf"]
    assert (kdf["memory_kib"], kdf["time_cost"], kdf["parallelism"]) == (8 * 1024, 1, 1)

    keys = parse_json(vault("key", "list", "--json"))
    assert len(keys) == 1
    assert isinstance(keys[0]["id"], str) and _is_time(keys[0]["created"]) and keys[0]["current"] is True

    log = parse_json(vault("log", "--json"))
    _check_log(log)
    commands = [r["command"] for r in log]
    assert commands[:2] == ["put", "put"] and commands.count("ls") == 3, commands
    assert all(r["exit_code"] == 0 and r["outcome"] == "success" for r in log)


def _check_log(log: list[dict]) -> None:  # type: ignore[type-arg]
    assert isinstance(log, list) and log
    for r in log:
        assert _is_time(r["time"]), r
        assert isinstance(r["command"], str) and r["command"]
        assert r["outcome"] in ("success", "error", "partial", "interrupted"), r
        assert _is_int(r["exit_code"])
        assert isinstance(r["duration_s"], int | float) and r["duration_s"] >= 0
    times = [r["time"] for r in log]
    assert times == sorted(times), "log --json is oldest first"


def test_empty_vault_json(vault) -> None:
    assert parse_json(vault("ls", "--json")) == []
    info = parse_json(vault("info", "--json"))
    assert (info["items"], info["versions"], info["original_bytes"]) == (0, 0, 0)
    assert _is_int(info["stored_bytes"])


def test_log_records_failures_and_limits(vault) -> None:
    assert_error(vault("get", "missing"), 4)
    assert_error(vault("ls", env={"VAULT_PASSWORD": "nope"}), 12)
    log = parse_json(vault("log", "--json"))
    _check_log(log)
    assert [(r["command"], r["exit_code"], r["outcome"]) for r in log][-2:] == [
        ("get", 4, "error"),
        ("ls", 12, "error"),
    ]
    last = parse_json(vault("log", "-n", "1", "--json"))
    assert len(last) == 1 and last[0]["command"] == "ls" and last[0]["exit_code"] == 12
    text = vault("log", "-n", "2", check=0).stdout
    assert "get" in text and "ls" in text


def test_logs_never_hold_a_password(vault, clean_env: Path, tmp_path: Path) -> None:
    """A session with wrong passwords, a password command, a password file and new passwords; then every
    file under $HOME (the operation log, the debug log) is searched for each of them."""
    secrets = {
        "main": PASSWORD,
        "wrong": "Wrong-Pass-QQ7781",
        "cmd": "Command-Pass-ZZ9134",
        "file": "File-Pass-KK2290",
        "new": "New-Pass-MM5521",
        "added": "Added-Pass-JJ4407",
    }
    src = write_file(tmp_path / "f.txt", b"log test")
    pwfile = write_file(tmp_path / "pwfile", (secrets["file"] + "\n").encode())
    newfile = write_file(tmp_path / "newfile", (secrets["new"] + "\n").encode())
    cmd = shlex.join([sys.executable, "-c", f"print({secrets['cmd']!r})"])
    failing = shlex.join([sys.executable, "-c", f"import sys; print({secrets['cmd']!r}); sys.exit(3)"])

    vault("-vv", "put", str(src), check=0)
    assert_error(vault("-vv", "ls", env={"VAULT_PASSWORD": secrets["wrong"]}), 12)
    assert_error(vault("-vv", "--password-command", cmd, "ls"), 12)
    assert_error(vault("-vv", "--password-command", failing, "ls"), 12)
    assert_error(vault("-vv", "--password-file", str(pwfile), "get", "f.txt", "-o", "-"), 12)
    assert_error(vault("-vv", "ls", env={"VAULT_PASSWORD_COMMAND": cmd}), 12)
    vault("-vv", "key", "add", env={"VAULT_NEW_PASSWORD": secrets["added"]}, check=0)
    r = vault("-vv", "passwd", "--new-password-file", str(newfile), check=0)
    for s in secrets.values():
        assert s not in r.err
    vault("-vv", "ls", env={"VAULT_PASSWORD": secrets["new"]}, check=0)
    assert_error(vault("-vv", "ls", env={"VAULT_PASSWORD": secrets["main"]}), 12)  # changed by passwd
    assert_error(vault("-vv", "get", "nothing", env={"VAULT_PASSWORD": secrets["added"]}), 4)

    files = [p for p in clean_env.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert any(n.endswith(".jsonl") for n in names), names  # the operation log
    assert "vault-debug.log" in names, names
    log = parse_json(vault("log", "-n", "100", "--json"))
    assert len(log) >= 10
    for p in files:
        data = p.read_bytes()
        for label, s in secrets.items():
            for needle in secret_variants(s):
                assert needle not in data, (label, needle, str(p))
    # The debug log did record the session (so the search above searched something).
    debug = next(p for p in files if p.name == "vault-debug.log").read_bytes()
    assert b"password" in debug
    json.dumps(log)  # serializable
