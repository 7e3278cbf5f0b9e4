"""The contract's exit-code table (spec/cli.md, "Exit codes") in one place, through the installed entry point.

Every code reachable so far: 0, 2, 3, 4, 10, 12, 20, 21, 30, 40. Every failure prints one
``vault: error: ...`` line (maybe a ``vault: hint: ...`` line), never a traceback (``assert_error``).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from helpers import (
    STORED_DATA,
    Result,
    assert_error,
    flip_byte,
    objects,
    snapshot,
    unreadable_prefix,
    unwritable_prefix,
    write_file,
)

BAD_NAMES = ["/abs", "a//b", "a/../b", ".", "..", "a/./b"]


# ----------------------------------------------------------------------------------------------- 0


@pytest.mark.stored
def test_0_success(vault, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    r = vault("get", "f.bin", "-o", str(out))
    assert r.code == 0 and r.err == ""
    assert (out / "f.bin").read_bytes() == STORED_DATA
    assert vault("--version").code == 0
    assert vault("get", "--help").code == 0


# ----------------------------------------------------------------------------------------------- 2


def test_2_malformed_name(vault) -> None:  # names are checked before any lookup
    for name in BAD_NAMES:
        assert_error(vault("get", name), 2)
    for command, name in [("history", "/abs"), ("history", "a/../b"), ("rm", "a//b"), ("rm", "."),
                          ("ls", "a/../b")]:
        assert_error(vault(command, name), 2)


def test_2_malformed_put_name(vault, tmp_path: Path) -> None:
    src = write_file(tmp_path / "f.txt", b"x")
    for name in ("/abs", "a//b", "a/../b", ".", "a/"):
        assert_error(vault("put", str(src), "--name", name), 2)
    for name in ("..", "a/./b"):
        assert_error(vault("put", "-", "--name", name, input=b"data"), 2)
    assert vault("ls", "--json", check=0).stdout.strip() == "[]"


def test_2_name_with_two_paths(vault, tmp_path: Path) -> None:
    a = write_file(tmp_path / "a.txt", b"a")
    b = write_file(tmp_path / "b.txt", b"b")
    assert_error(vault("put", str(a), str(b), "--name", "both"), 2)


def test_2_stdin_without_name(vault) -> None:
    assert_error(vault("put", "-", input=b"data"), 2)


def test_2_empty_new_password(vault, tmp_path: Path) -> None:
    empty = write_file(tmp_path / "empty", b"\n")
    assert_error(vault("passwd", "--new-password-file", str(empty)), 2)
    assert_error(vault("key", "add", "--new-password-file", str(empty)), 2)


def test_2_empty_password_at_init(cli, tmp_path: Path) -> None:
    empty = write_file(tmp_path / "empty", b"")
    assert_error(cli("--password-file", str(empty), "init", "--kdf-memory", "8", "--kdf-time", "1"), 2)
    assert not (cli.vault_path / "config").exists()


def test_2_kdf_memory_below_minimum(cli) -> None:
    assert_error(cli("init", "--kdf-memory", "4", "--kdf-time", "1"), 2)
    assert not (cli.vault_path / "config").exists()


def test_2_bad_compression_level(vault, tmp_path: Path) -> None:
    src = write_file(tmp_path / "f.txt", b"x")
    assert_error(vault("put", str(src), "--compression", "99"), 2)


@pytest.mark.parametrize(
    "args",
    [
        ["--bogus-option", "ls"],
        ["ls", "--bogus-option"],
        ["frobnicate"],
        ["get"],  # missing NAME
        ["--threads", "0", "ls"],
        ["get", "x", "--version", "zero"],
    ],
    ids=["global-option", "command-option", "unknown-command", "missing-argument", "threads-0", "not-int"],
)
def test_2_bad_option(vault, args: list[str]) -> None:
    assert_error(vault(*args), 2)


# ----------------------------------------------------------------------------------------------- 3


def test_3_partial_put_skips_unreadable_file(vault, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    write_file(tree / "ok.txt", b"readable")
    write_file(tree / "sub" / "also-ok.txt", b"readable too")
    secret = write_file(tree / "sub" / "locked.txt", b"nobody may read this")
    secret.chmod(0o000)
    prefix = unreadable_prefix(secret)
    if prefix is None:
        pytest.skip("no way to make a file unreadable here (root without setpriv)")
    proc = subprocess.run(
        [*prefix, *vault.exe, "put", str(tree)], env=vault.env, capture_output=True, timeout=60
    )
    err = proc.stderr.decode()
    assert_error(Result(proc.returncode, proc.stdout, err), 3)
    assert "locked.txt" in err, err
    # What could be read was stored; the unreadable file is absent from the version.
    listing = json.loads(vault("ls", "tree", "--json", check=0).out)
    names = {e["name"] for e in listing}
    assert {"ok.txt", "sub", "sub/also-ok.txt"} <= names
    assert "sub/locked.txt" not in names
    # ... and named in the log too.
    last = [r for r in json.loads(vault("log", "--json", check=0).out) if r["command"] == "put"][-1]
    assert (last["command"], last["exit_code"], last["outcome"]) == ("put", 3, "partial")
    assert "locked.txt" in json.dumps(last), last


# ----------------------------------------------------------------------------------------------- 4


@pytest.mark.stored
def test_4_not_found(vault, tmp_path: Path) -> None:
    assert_error(vault("get", "no-such-item"), 4)
    assert_error(vault("get", "f.bin", "--version", "7"), 4)
    assert_error(vault("get", "f.bin/inside"), 4)
    assert_error(vault("history", "no-such-item"), 4)
    assert_error(vault("rm", "no-such-item"), 4)
    assert_error(vault("rm", "f.bin", "--version", "9"), 4)
    assert_error(vault("ls", "no-such-item"), 4)
    assert_error(vault("put", str(tmp_path / "missing.txt")), 4)
    assert_error(vault("key", "remove", "0123456789abcdef"), 4)
    assert json.loads(vault("ls", "--json", check=0).out)[0]["versions"] == 1


# ---------------------------------------------------------------------------------------------- 10


def test_10_no_vault(cli, tmp_path: Path) -> None:
    assert_error(cli("ls"), 10)
    assert_error(cli("get", "x"), 10)
    empty = tmp_path / "empty-dir"
    empty.mkdir()
    assert_error(cli("--vault", str(empty), "ls"), 10)
    assert_error(cli("ls", env={"VAULT_PATH": str(empty)}), 10)
    assert list(empty.iterdir()) == []
    # Before any password is looked for: no password source at all is still "no vault".
    assert_error(cli("ls", env={"VAULT_PASSWORD": ""}), 10)


# ---------------------------------------------------------------------------------------------- 12


def test_12_wrong_password(vault) -> None:
    assert_error(vault("ls", env={"VAULT_PASSWORD": "not the password"}), 12)


def test_12_no_password_source_stdin_closed(vault) -> None:
    env = {"VAULT_PASSWORD": ""}
    assert_error(vault("ls", env=env), 12)  # stdin: an empty pipe, closed at once
    proc = subprocess.run(
        [*vault.exe, "ls"], env={**vault.env, **env}, stdin=subprocess.DEVNULL, capture_output=True,
        timeout=30,
    )
    assert proc.returncode == 12, proc.stderr
    assert proc.stderr.decode().startswith("vault: error: ")


def test_12_no_password_source_never_closing_stdin(vault) -> None:
    """A standard input that is a pipe nobody writes to or closes: exit 12 at once, never a hang."""
    env = {k: v for k, v in vault.env.items() if k != "VAULT_PASSWORD"}
    for args in (["get", "x"], ["passwd"]):
        started = time.monotonic()
        proc = subprocess.Popen(
            [*vault.exe, *args], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            _, err = proc.communicate(timeout=8)  # communicate() closes stdin: read the result first
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            pytest.fail(f"vault {' '.join(args)} waited on a standard input that is not a terminal")
        assert proc.returncode == 12, (args, err)
        assert time.monotonic() - started < 8
        assert err.decode().startswith("vault: error: ")


def test_12_never_closing_stdin_stays_open(vault) -> None:
    """The same, without communicate(): stdin is held open while vault runs."""
    env = {k: v for k, v in vault.env.items() if k != "VAULT_PASSWORD"}
    proc = subprocess.Popen([*vault.exe, "ls"], env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        code = proc.wait(timeout=8)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("vault ls waited on a never-closing standard input")
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
    assert code == 12
    assert proc.stderr is not None
    proc.stderr.close()


def test_12_failing_password_command_names_status(vault) -> None:
    r = vault("--password-command", "python3 -c 'import sys; sys.exit(7)'", "ls")
    assert_error(r, 12, contains="7")
    assert "exit status 7" in r.err
    r = vault("ls", env={"VAULT_PASSWORD_COMMAND": "python3 -c 'import sys; sys.exit(5)'"})
    assert_error(r, 12, contains="exit status 5")
    assert_error(vault("--password-command", "/no/such/program", "ls"), 12)


def test_12_empty_password_file(vault, tmp_path: Path) -> None:
    empty = write_file(tmp_path / "empty", b"")
    assert_error(vault("--password-file", str(empty), "ls"), 12)
    newline_only = write_file(tmp_path / "nl", b"\n")
    assert_error(vault("--password-file", str(newline_only), "ls"), 12)
    assert_error(vault("--password-file", str(tmp_path / "missing"), "ls"), 12)
    assert_error(vault("--password-command", "python3 -c 'print()'", "ls"), 12)


# ---------------------------------------------------------------------------------------------- 20


@pytest.mark.stored
def test_20_integrity(vault) -> None:
    (pack,) = objects(vault.vault_path, "data")
    flip_byte(pack)
    assert_error(vault("get", "f.bin", "-o", "-"), 20)


# ---------------------------------------------------------------------------------------------- 21


@pytest.mark.stored
def test_21_newer_format(vault) -> None:
    config = vault.vault_path / "config"
    doc = json.loads(config.read_bytes())
    doc["format_version"] = 99
    config.write_text(json.dumps(doc))
    assert_error(vault("ls"), 21)
    assert_error(vault("get", "f.bin", "-o", "-"), 21)


# ---------------------------------------------------------------------------------------------- 30


@pytest.mark.stored
def test_30_destination_cannot_be_written(vault, tmp_path: Path) -> None:
    blocker = write_file(tmp_path / "blocker", b"i am a file")
    assert_error(vault("get", "f.bin", "-o", str(blocker / "f.bin")), 30)  # the parent is a regular file
    assert blocker.read_bytes() == b"i am a file"
    assert_error(vault("get", "f.bin", "-o", str(tmp_path / "no" / "such" / "dir" / "f.bin")), 30)
    assert not (tmp_path / "no").exists()

    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o555)
    prefix = unwritable_prefix(readonly)
    if prefix is None:
        pytest.skip("no way to make a directory unwritable here (root without setpriv)")
    proc = subprocess.run([*prefix, *vault.exe, "get", "f.bin", "-o", str(readonly)], env=vault.env,
                          capture_output=True, timeout=60)
    assert_error(Result(proc.returncode, proc.stdout, proc.stderr.decode()), 30)
    assert list(readonly.iterdir()) == []


# ---------------------------------------------------------------------------------------------- 40


def test_40_init_twice_leaves_vault_byte_identical(vault) -> None:
    before = snapshot(vault.vault_path)
    assert before
    r = vault("init", "--kdf-memory", "8", "--kdf-time", "1", "--kdf-parallelism", "1")
    assert_error(r, 40)
    r = vault("init", env={"VAULT_PASSWORD": "another password"})
    assert_error(r, 40)
    assert snapshot(vault.vault_path) == before


@pytest.mark.stored
def test_40_existing_destination(vault, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    existing = write_file(out / "f.bin", b"precious")
    assert_error(vault("get", "f.bin", "-o", str(out)), 40)
    assert_error(vault("get", "f.bin", "-o", str(existing)), 40)
    assert existing.read_bytes() == b"precious"
    assert sorted(p.name for p in out.iterdir()) == ["f.bin"]
    assert_error(vault("get", "f.bin", cwd=out), 40)  # default destination ./f.bin
    assert existing.read_bytes() == b"precious"


def test_40_remove_last_key(vault) -> None:
    keys = json.loads(vault("key", "list", "--json", check=0).out)
    assert len(keys) == 1
    assert_error(vault("key", "remove", keys[0]["id"]), 40)
    assert len(json.loads(vault("key", "list", "--json", check=0).out)) == 1
