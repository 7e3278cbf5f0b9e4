"""Interactive use, as a person at a terminal: `vault init`, `vault passwd` and a wrong password, driven through
a real pseudo-terminal with pexpect.

None of these tests gives the password through VAULT_PASSWORD (``clean_env`` removed every VAULT_* variable):
the point is the prompt. Vaults that a test only needs to exist are made with a password file.

- the prompt hides what is typed: echo is off while it waits, and the typed password never appears in
  anything the terminal shows;
- a confirmation that does not match asks again (and gives up after three tries);
- Ctrl-C at a prompt exits 130 and leaves no trace: no vault directory, no config, an unchanged key slot;
- questions go to the terminal, not standard output, so `vault ls --json > file` typed at a terminal still
  writes pure JSON.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from helpers import CHEAP_INIT_ARGS, vault_exe, write_file

pexpect = pytest.importorskip("pexpect", reason="pexpect drives the pseudo-terminal (the `test` extra has it)")

FIRST = "first interactive passphrase"
OTHER = "a different passphrase"
NEW = "the changed passphrase"
WRONG = "not-the-passphrase-42"
TIMEOUT = 60
MISMATCH = r"(?i)passwords do(?: not|n.t) match"  # the warning before asking again


@pytest.fixture
def env(clean_env: Path, tmp_path: Path) -> dict[str, str]:
    e = dict(os.environ)
    assert not any(k.startswith("VAULT_") for k in e), "clean_env should have removed VAULT_*"
    e["VAULT_PATH"] = str(tmp_path / "vault")
    e["TERM"] = "dumb"
    return e


def _spawn(env: dict[str, str], *args: str, cwd: Path | None = None) -> pexpect.spawn:
    exe = vault_exe()
    child = pexpect.spawn(
        exe[0], [*exe[1:], *args], env=env, cwd=str(cwd) if cwd else None, timeout=TIMEOUT,
        encoding="utf-8", codec_errors="replace", dimensions=(24, 200),
    )
    child.logfile_read = io.StringIO()  # everything the terminal shows
    return child


def _answer(child: pexpect.spawn, prompt: str, text: str) -> None:
    """Wait for ``prompt``, check that the terminal no longer echoes, type ``text`` and Enter."""
    child.expect_exact(prompt)
    assert child.waitnoecho(timeout=10), f"echo is on at {prompt!r}: the password would be shown"
    child.sendline(text)


def _finish(child: pexpect.spawn) -> tuple[int | None, str]:
    child.expect(pexpect.EOF)
    child.close()
    shown = child.logfile_read.getvalue()
    assert "Traceback" not in shown, shown
    return child.exitstatus, shown


def _make_vault(env: dict[str, str], tmp_path: Path, password: str = FIRST) -> Path:
    """A vault made without a terminal, from a password file (not VAULT_PASSWORD)."""
    pw = write_file(tmp_path / "pw-init", password.encode() + b"\n")
    done = subprocess.run([*vault_exe(), "--password-file", str(pw), "init", *CHEAP_INIT_ARGS],
                          env=env, capture_output=True, stdin=subprocess.DEVNULL, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    return Path(env["VAULT_PATH"])


def _opens(env: dict[str, str], tmp_path: Path, password: str) -> int:
    pw = write_file(tmp_path / "pw-probe", password.encode() + b"\n")
    done = subprocess.run([*vault_exe(), "--password-file", str(pw), "ls"],
                          env=env, capture_output=True, stdin=subprocess.DEVNULL, timeout=TIMEOUT)
    return done.returncode


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------ init


def test_init_hides_the_password_and_asks_again_on_a_mismatch(env: dict[str, str], tmp_path: Path) -> None:
    child = _spawn(env, "init", *CHEAP_INIT_ARGS)
    _answer(child, "New password: ", FIRST)
    _answer(child, "Repeat password: ", OTHER)
    child.expect(MISMATCH)
    _answer(child, "New password: ", FIRST)
    _answer(child, "Repeat password: ", FIRST)
    code, shown = _finish(child)
    assert code == 0, shown
    assert "created vault at" in shown
    assert FIRST not in shown and OTHER not in shown
    assert (Path(env["VAULT_PATH"]) / "config").is_file()

    # The password typed at the prompt is the one that opens it (asked for at the prompt again).
    child = _spawn(env, "ls")
    _answer(child, "Password: ", FIRST)
    code, shown = _finish(child)
    assert code == 0, shown
    assert FIRST not in shown


def test_init_gives_up_after_three_mismatches(env: dict[str, str]) -> None:
    child = _spawn(env, "init", *CHEAP_INIT_ARGS)
    for _ in range(3):
        _answer(child, "New password: ", FIRST)
        _answer(child, "Repeat password: ", OTHER)
    code, shown = _finish(child)
    assert code == 2, shown
    assert "vault: error: the passwords did not match" in shown
    assert not Path(env["VAULT_PATH"]).exists()


@pytest.mark.parametrize("at", ["New password: ", "Repeat password: "])
def test_ctrl_c_at_init_leaves_no_vault(env: dict[str, str], at: str) -> None:
    child = _spawn(env, "init", *CHEAP_INIT_ARGS)
    if at == "Repeat password: ":
        _answer(child, "New password: ", FIRST)
    child.expect_exact(at)
    child.sendintr()
    code, shown = _finish(child)
    assert code == 130, shown
    assert "vault: error: interrupted" in shown
    assert not Path(env["VAULT_PATH"]).exists()


def test_ctrl_c_at_init_in_an_existing_directory_leaves_it_empty(env: dict[str, str]) -> None:
    target = Path(env["VAULT_PATH"])
    target.mkdir()
    child = _spawn(env, "init", *CHEAP_INIT_ARGS)
    _answer(child, "New password: ", FIRST)
    child.expect_exact("Repeat password: ")
    child.sendintr()
    code, shown = _finish(child)
    assert code == 130, shown
    assert list(target.iterdir()) == []


# ----------------------------------------------------------------------------------------- passwd


def test_passwd_at_the_prompt(env: dict[str, str], tmp_path: Path) -> None:
    _make_vault(env, tmp_path)
    child = _spawn(env, "passwd")
    _answer(child, "Password: ", FIRST)
    _answer(child, "New password: ", NEW)
    _answer(child, "Repeat password: ", OTHER)
    child.expect(MISMATCH)
    _answer(child, "New password: ", NEW)
    _answer(child, "Repeat password: ", NEW)
    code, shown = _finish(child)
    assert code == 0, shown
    assert "changed" in shown
    for secret in (FIRST, NEW, OTHER):
        assert secret not in shown
    assert _opens(env, tmp_path, NEW) == 0
    assert _opens(env, tmp_path, FIRST) == 12


def test_ctrl_c_at_passwd_changes_nothing(env: dict[str, str], tmp_path: Path) -> None:
    vault_dir = _make_vault(env, tmp_path)
    before = _files(vault_dir)
    child = _spawn(env, "passwd")
    _answer(child, "Password: ", FIRST)
    _answer(child, "New password: ", NEW)
    child.expect_exact("Repeat password: ")
    child.sendintr()
    code, shown = _finish(child)
    assert code == 130, shown
    assert _files(vault_dir) == before  # same key slot, and the lock passwd held is gone
    assert _opens(env, tmp_path, FIRST) == 0


# --------------------------------------------------------------------------------- wrong password


def test_wrong_password_at_the_prompt(env: dict[str, str], tmp_path: Path) -> None:
    _make_vault(env, tmp_path)
    child = _spawn(env, "ls")
    _answer(child, "Password: ", WRONG)
    code, shown = _finish(child)
    assert code == 12, shown
    assert re.search(r"vault: error: .*password", shown), shown
    assert WRONG not in shown


def test_ctrl_c_at_the_password_prompt(env: dict[str, str], tmp_path: Path) -> None:
    vault_dir = _make_vault(env, tmp_path)
    before = _files(vault_dir)
    child = _spawn(env, "check")
    child.expect_exact("Password: ")
    child.sendintr()
    code, shown = _finish(child)
    assert code == 130, shown
    assert _files(vault_dir) == before


# ------------------------------------------------------------------------------- standard output


def test_the_prompt_is_not_on_standard_output(env: dict[str, str], tmp_path: Path) -> None:
    """`vault ls --json > items.json` typed at a terminal: the question goes to the terminal, the file gets
    exactly the JSON."""
    _make_vault(env, tmp_path)
    out = tmp_path / "items.json"
    command = shlex.join([*vault_exe(), "ls", "--json"]) + " > " + shlex.quote(str(out))
    child = pexpect.spawn("/bin/sh", ["-c", command], env=env, timeout=TIMEOUT, encoding="utf-8",
                          dimensions=(24, 200))
    child.logfile_read = io.StringIO()
    _answer(child, "Password: ", FIRST)
    code, shown = _finish(child)
    assert code == 0, shown
    assert json.loads(out.read_text()) == []
