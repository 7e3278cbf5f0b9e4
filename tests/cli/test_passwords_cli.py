"""Password sources through the command line, their precedence, and the key commands (spec/cli.md,
"Passwords").

Order: 1. ``--password-file`` / ``VAULT_PASSWORD_FILE`` (the option wins over its variable), 2.
``--password-command`` / ``VAULT_PASSWORD_COMMAND`` (likewise), 3. ``VAULT_PASSWORD``, 4. a prompt (never
here: standard input is not a terminal). The first source that is set wins, even when it is wrong.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest
from helpers import CHEAP_INIT_ARGS, ISO_UTC, PASSWORD, assert_error, write_file

WRONG = "wrong password 1"


def _cmd(password: str) -> str:
    """A password command: a python one-liner printing ``password`` (split like a shell, no shell)."""
    return shlex.join([sys.executable, "-c", f"print({password!r})"])


@pytest.fixture
def pwfiles(tmp_path: Path) -> dict[str, str]:
    d = tmp_path / "pw"
    return {
        "good": str(write_file(d / "good", PASSWORD.encode() + b"\nsecond line is ignored\n")),
        "bad": str(write_file(d / "bad", WRONG.encode() + b"\n")),
    }


def _opens(r) -> bool:  # type: ignore[no-untyped-def]
    if r.code == 0:
        return True
    assert_error(r, 12)
    return False


def test_each_source_opens_the_vault(vault, pwfiles: dict[str, str]) -> None:
    no_env = {"VAULT_PASSWORD": ""}  # set and empty counts as not set
    assert _opens(vault("--password-file", pwfiles["good"], "ls", env=no_env))
    assert _opens(vault("ls", env={**no_env, "VAULT_PASSWORD_FILE": pwfiles["good"]}))
    assert _opens(vault("--password-command", _cmd(PASSWORD), "ls", env=no_env))
    assert _opens(vault("ls", env={**no_env, "VAULT_PASSWORD_COMMAND": _cmd(PASSWORD)}))
    assert _opens(vault("ls"))


def test_option_beats_its_variable(vault, pwfiles: dict[str, str]) -> None:
    good, bad = pwfiles["good"], pwfiles["bad"]
    assert _opens(vault("--password-file", good, "ls", env={"VAULT_PASSWORD_FILE": bad}))
    assert not _opens(vault("--password-file", bad, "ls", env={"VAULT_PASSWORD_FILE": good}))
    right, wrong = _cmd(PASSWORD), _cmd(WRONG)
    assert _opens(vault("--password-command", right, "ls", env={"VAULT_PASSWORD_COMMAND": wrong}))
    assert not _opens(vault("--password-command", wrong, "ls", env={"VAULT_PASSWORD_COMMAND": right}))


def test_file_beats_command_beats_env(vault, pwfiles: dict[str, str]) -> None:
    # File (right) over command (wrong) over VAULT_PASSWORD (wrong); then each wrong one proves it was used.
    assert _opens(vault("--password-file", pwfiles["good"], "--password-command", _cmd(WRONG), "ls",
                        env={"VAULT_PASSWORD": WRONG}))
    assert not _opens(vault("--password-file", pwfiles["bad"], "--password-command", _cmd(PASSWORD), "ls"))
    # The variable of source 1 beats the option of source 2: the order is by source, not by option/env.
    assert not _opens(
        vault("--password-command", _cmd(PASSWORD), "ls", env={"VAULT_PASSWORD_FILE": pwfiles["bad"]})
    )
    assert _opens(vault("--password-command", _cmd(PASSWORD), "ls", env={"VAULT_PASSWORD": WRONG}))
    assert not _opens(vault("ls", env={"VAULT_PASSWORD_COMMAND": _cmd(WRONG)}))  # VAULT_PASSWORD is right


def test_a_failing_source_does_not_fall_through(vault, tmp_path: Path) -> None:
    # A set source that fails is an error, even though VAULT_PASSWORD (the next source) is right.
    assert_error(vault("--password-file", str(tmp_path / "missing"), "ls"), 12)
    assert_error(vault("--password-command", f"{shlex.quote(sys.executable)} -c 'raise SystemExit(4)'", "ls"),
                 12, contains="exit status 4")


def test_password_file_line_endings(cli, tmp_path: Path) -> None:
    crlf = write_file(tmp_path / "crlf", b"pass word\r\n")
    lf = write_file(tmp_path / "lf", b"pass word\n")
    bare = write_file(tmp_path / "bare", b"pass word")
    spaced = write_file(tmp_path / "spaced", b"pass word \n")
    cli("--password-file", str(crlf), "init", *CHEAP_INIT_ARGS, check=0, env={"VAULT_PASSWORD": ""})
    for f in (crlf, lf, bare):
        assert _opens(cli("--password-file", str(f), "ls", env={"VAULT_PASSWORD": ""}))
    assert _opens(cli("ls", env={"VAULT_PASSWORD": "pass word"}))
    # Other whitespace is part of the password.
    assert not _opens(cli("--password-file", str(spaced), "ls"))


def test_passwd(vault, tmp_path: Path) -> None:
    src = write_file(tmp_path / "data.txt", b"kept across password changes\n" * 100)
    vault("put", str(src), check=0)
    stored_before = sorted(p.name for p in (vault.vault_path / "data").rglob("*") if p.is_file())
    new_file = write_file(tmp_path / "new-pw", b"the new password\r\n")
    vault("passwd", "--new-password-file", str(new_file), check=0)
    assert_error(vault("ls"), 12)  # the old password stops working
    new = {"VAULT_PASSWORD": "the new password"}
    assert vault("get", "data.txt", "-o", "-", env=new, check=0).out == src.read_bytes()
    # Stored data is not rewritten.
    assert sorted(p.name for p in (vault.vault_path / "data").rglob("*") if p.is_file()) == stored_before
    # VAULT_NEW_PASSWORD, then --new-password-file beats it.
    vault("passwd", env={**new, "VAULT_NEW_PASSWORD": "third password"}, check=0)
    third = {"VAULT_PASSWORD": "third password"}
    assert_error(vault("ls", env=new), 12)
    fourth = write_file(tmp_path / "fourth", b"fourth password\n")
    vault("passwd", "--new-password-file", str(fourth), env={**third, "VAULT_NEW_PASSWORD": "not this"},
          check=0)
    assert_error(vault("ls", env={"VAULT_PASSWORD": "not this"}), 12)
    assert vault("get", "data.txt", "-o", "-", env={"VAULT_PASSWORD": "fourth password"}, check=0).out == \
        src.read_bytes()
    assert len(json.loads(vault("key", "list", "--json", env={"VAULT_PASSWORD": "fourth password"},
                                check=0).out)) == 1


def test_new_password_required_and_nonempty(vault, tmp_path: Path) -> None:
    # No new password source (VAULT_NEW_PASSWORD empty counts as unset, stdin is no terminal): exit 12.
    assert_error(vault("passwd"), 12)
    assert_error(vault("key", "add", env={"VAULT_NEW_PASSWORD": ""}), 12)
    # An empty new password from a file: exit 2.
    empty = write_file(tmp_path / "empty", b"\r\n")
    assert_error(vault("passwd", "--new-password-file", str(empty)), 2)
    assert_error(vault("key", "add", "--new-password-file", str(empty), env={"VAULT_NEW_PASSWORD": "x"}), 2)
    assert_error(vault("passwd", "--new-password-file", str(tmp_path / "missing")), 12)
    assert _opens(vault("ls"))
    assert len(json.loads(vault("key", "list", "--json", check=0).out)) == 1


def test_keys_add_list_remove(vault, tmp_path: Path) -> None:
    src = write_file(tmp_path / "data.txt", b"one vault, several passwords")
    vault("put", str(src), check=0)
    (first,) = json.loads(vault("key", "list", "--json", check=0).out)
    assert first["current"] is True
    vault("key", "add", env={"VAULT_NEW_PASSWORD": "second password"}, check=0)
    third = write_file(tmp_path / "third", b"third password\n")
    vault("key", "add", "--new-password-file", str(third), check=0)

    second_env = {"VAULT_PASSWORD": "second password"}
    keys = json.loads(vault("key", "list", "--json", env=second_env, check=0).out)
    assert len(keys) == 3
    for k in keys:
        assert isinstance(k["id"], str) and k["id"]
        assert ISO_UTC.match(k["created"]), k
        assert isinstance(k["current"], bool)
    assert len({k["id"] for k in keys}) == 3
    current = [k for k in keys if k["current"]]
    assert len(current) == 1 and current[0]["id"] != first["id"]
    second_id = current[0]["id"]

    for pw in (PASSWORD, "second password", "third password"):
        got = vault("get", "data.txt", "-o", "-", env={"VAULT_PASSWORD": pw}, check=0).out
        assert got == src.read_bytes()

    # Removing the key in use with another password; then that password no longer opens the vault.
    vault("key", "remove", second_id, check=0)
    assert_error(vault("ls", env=second_env), 12)
    assert_error(vault("key", "remove", second_id), 4)
    ids = {k["id"] for k in json.loads(vault("key", "list", "--json", check=0).out)}
    assert second_id not in ids and first["id"] in ids and len(ids) == 2
    (other,) = ids - {first["id"]}
    vault("key", "remove", first["id"], env={"VAULT_PASSWORD": "third password"}, check=0)
    assert_error(vault("key", "remove", other, env={"VAULT_PASSWORD": "third password"}), 40)
    assert_error(vault("ls"), 12)


def test_programs_vault_starts_do_not_inherit_the_password(cli, tmp_path) -> None:
    """The password command and --stdin-from-command see the environment without VAULT_PASSWORD and
    VAULT_NEW_PASSWORD: they have no business reading them."""
    import shlex
    import sys

    seen = tmp_path / "seen.txt"
    spy = (
        f"import os; open({str(seen)!r}, 'a').write(repr(sorted(k for k in os.environ if 'PASSWORD' in k)) + '\\n'); "
        "print('correct horse battery staple')"
    )
    command = f"{shlex.quote(sys.executable)} -c {shlex.quote(spy)}"
    cli.init()
    cli("--password-command", command, "ls", check=0)
    cli("put", "--stdin-from-command", command, "--name", "dump.txt", check=0)
    lines = seen.read_text().splitlines()
    assert len(lines) == 2
    assert all("'VAULT_PASSWORD'" not in line for line in lines), lines


def test_a_password_command_that_prints_too_much_costs_no_memory(vault, tmp_path: Path) -> None:
    """Issue 18, item 6: 300 MB printed by a password command were all read into memory before being refused
    (the process grew by as much again). Now `vault` reads 64 KiB + 1 byte, stops the command, exits 12."""
    import subprocess

    from helpers import measured_command

    flood = "head -c 300000000 /dev/zero"  # streams: the command itself stays small
    rss_file = tmp_path / "rss"
    proc = subprocess.run(measured_command([*vault.exe, "--password-command", flood, "ls"], rss_file),
                          env={**vault.env, "VAULT_PASSWORD": ""}, capture_output=True, timeout=120)
    assert proc.returncode == 12, proc.stderr
    assert int(rss_file.read_text()) < 150 * 1024  # KiB
    assert b"more than 65536 bytes" in proc.stderr
