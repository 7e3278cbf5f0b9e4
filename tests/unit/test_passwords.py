"""Password sources (spec/cli.md, "Passwords"): precedence, parsing, failures, and secrecy."""

from __future__ import annotations

import getpass
import logging
import shlex
import sys
import time
from pathlib import Path

import pytest

from vault import passwords
from vault.errors import AuthenticationError, Interrupted, UsageError, VaultError
from vault.passwords import PasswordOptions, read_new_password, read_password, terminal_prompt

SECRET = "correct horse battery staple"
SECRET_B = SECRET.encode()


def py_cmd(code: str) -> str:
    """A password command that runs ``code`` with this Python, quoted for shlex.split."""
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"


def write(tmp_path: Path, content: bytes, name: str = "pw") -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def never_prompt(text: str, confirm: bool) -> bytes:
    raise AssertionError(f"prompted ({text!r}) although it must not be")


class Scripted:
    """A prompt that gives the answers it was given, in order, and records the questions."""

    def __init__(self, *answers: bytes) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[str, bool]] = []

    def __call__(self, text: str, confirm: bool) -> bytes:
        self.asked.append((text, confirm))
        return self.answers.pop(0)


def assert_secret_free(exc: VaultError, *secrets: bytes) -> None:
    texts = [str(exc), exc.message, exc.hint or "", repr(exc)]
    for secret in secrets:
        for text in texts:
            assert secret.decode() not in text


# ------------------------------------------------------------------------------------------- password file


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"secret\n", b"secret"),
        (b"secret\r\n", b"secret"),
        (b"secret", b"secret"),
        (b"secret\nsecond line\n", b"secret"),
        (b"secret\r\nsecond\r\n", b"secret"),
        (b"  sec ret\t \n", b"  sec ret\t "),  # other whitespace is part of the password
        (b"\tsecret\r\r\n", b"\tsecret\r"),  # only one \r, the one of \r\n, is a line ending
        (b"secret\r", b"secret\r"),  # a lone \r is not a line ending in the contract
        (b"\xffbin\x00ary\n", b"\xffbin\x00ary"),  # bytes as they are
        ("pässwörd\n".encode(), "pässwörd".encode()),
    ],
)
def test_password_file_first_line_without_line_ending(
    tmp_path: Path, content: bytes, expected: bytes
) -> None:
    assert read_password(PasswordOptions(password_file=write(tmp_path, content))) == expected


def test_password_file_from_environment(tmp_path: Path) -> None:
    env = {"VAULT_PASSWORD_FILE": write(tmp_path, b"from-env\n")}
    assert read_password(PasswordOptions(env=env)) == b"from-env"


def test_password_file_option_beats_environment_file(tmp_path: Path) -> None:
    env = {"VAULT_PASSWORD_FILE": write(tmp_path, b"from-env\n", "a")}
    opts = PasswordOptions(password_file=write(tmp_path, b"from-option\n", "b"), env=env)
    assert read_password(opts) == b"from-option"


@pytest.mark.parametrize("content", [b"", b"\n", b"\r\n", b"\nsecond line\n"])
def test_empty_password_from_file_is_authentication_failure(tmp_path: Path, content: bytes) -> None:
    with pytest.raises(AuthenticationError) as info:
        read_password(PasswordOptions(password_file=write(tmp_path, content)))
    assert info.value.exit_code == 12


def test_missing_password_file_is_exit_12_and_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    with pytest.raises(AuthenticationError) as info:
        read_password(PasswordOptions(password_file=str(missing)))
    assert info.value.exit_code == 12
    assert str(missing) in str(info.value)


def test_unreadable_password_file_is_exit_12(tmp_path: Path) -> None:
    # A directory can't be read as a file even by root (IsADirectoryError): an honest "can't read".
    with pytest.raises(AuthenticationError) as info:
        read_password(PasswordOptions(password_file=str(tmp_path)))
    assert info.value.exit_code == 12
    assert str(tmp_path) in str(info.value)


def test_failing_password_file_does_not_fall_through(tmp_path: Path) -> None:
    env = {"VAULT_PASSWORD": "env-password"}
    with pytest.raises(AuthenticationError):
        read_password(PasswordOptions(password_file=str(tmp_path / "missing"), env=env))


def test_huge_first_line_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, b"x" * (passwords.MAX_PASSWORD_LINE + 10))
    with pytest.raises(AuthenticationError) as info:
        read_password(PasswordOptions(password_file=path))
    assert "longer than" in str(info.value)


# ---------------------------------------------------------------------------------------- password command


def test_password_command_first_line_of_stdout() -> None:
    cmd = py_cmd("import sys; sys.stdout.write('cmd-secret\\r\\nsecond\\n')")
    assert read_password(PasswordOptions(password_command=cmd)) == b"cmd-secret"


def test_password_command_output_without_newline() -> None:
    cmd = py_cmd("import sys; sys.stdout.write(' spaced ')")
    assert read_password(PasswordOptions(password_command=cmd)) == b" spaced "


def test_password_command_from_environment() -> None:
    env = {"VAULT_PASSWORD_COMMAND": py_cmd("print('env-cmd')")}
    assert read_password(PasswordOptions(env=env)) == b"env-cmd"


def test_password_command_option_beats_environment_command() -> None:
    env = {"VAULT_PASSWORD_COMMAND": py_cmd("print('env-cmd')")}
    assert read_password(PasswordOptions(password_command=py_cmd("print('opt-cmd')"), env=env)) == b"opt-cmd"


def test_password_command_gets_no_stdin() -> None:
    # stdin is /dev/null: reading it gives EOF at once instead of waiting on the terminal or a pipe.
    cmd = py_cmd("import sys; data = sys.stdin.read(); print('eof' if data == '' else 'data')")
    assert read_password(PasswordOptions(password_command=cmd)) == b"eof"


def test_failing_password_command_names_exit_status_and_hides_output() -> None:
    cmd = py_cmd(f"import sys; print({SECRET!r}); print({SECRET!r}, file=sys.stderr); sys.exit(3)")
    with pytest.raises(AuthenticationError) as info:
        read_password(PasswordOptions(password_command=cmd))
    assert info.value.exit_code == 12
    assert "exit status 3" in str(info.value)
    assert_secret_free(info.value, SECRET_B)
    assert info.value.__cause__ is None


def test_password_command_killed_by_signal() -> None:
    cmd = py_cmd("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    with pytest.raises(AuthenticationError) as info:
        read_password(PasswordOptions(password_command=cmd))
    assert "exit status -9" in str(info.value)
    assert "SIGKILL" in str(info.value)


def test_password_command_timeout() -> None:
    cmd = py_cmd(f"import time; print({SECRET!r}, flush=True); time.sleep(30)")
    started = time.monotonic()
    with pytest.raises(AuthenticationError) as info:
        read_password(PasswordOptions(password_command=cmd, command_timeout_s=0.5))
    assert time.monotonic() - started < 10
    assert info.value.exit_code == 12
    assert "timed out" in str(info.value)
    assert_secret_free(info.value, SECRET_B)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_password_command_not_found(tmp_path: Path) -> None:
    with pytest.raises(AuthenticationError) as info:
        read_password(PasswordOptions(password_command=shlex.quote(str(tmp_path / "no-such-program"))))
    assert info.value.exit_code == 12
    assert "not found" in str(info.value)


def test_password_command_not_executable(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    with pytest.raises(AuthenticationError):
        read_password(PasswordOptions(password_command=shlex.quote(str(script))))


@pytest.mark.parametrize("command", ["echo 'unterminated", "   "])
def test_unparseable_or_empty_password_command_is_usage_error(command: str) -> None:
    with pytest.raises(UsageError) as info:
        read_password(PasswordOptions(password_command=command))
    assert info.value.exit_code == 2


def test_empty_output_of_password_command_is_authentication_failure() -> None:
    for code in ("pass", "print()", "print(); print('second')"):
        with pytest.raises(AuthenticationError) as info:
            read_password(PasswordOptions(password_command=py_cmd(code)))
        assert info.value.exit_code == 12


def test_empty_environment_command_counts_as_unset() -> None:
    env = {"VAULT_PASSWORD_COMMAND": "", "VAULT_PASSWORD_FILE": "", "VAULT_PASSWORD": "env-pw"}
    assert read_password(PasswordOptions(env=env)) == b"env-pw"


# ---------------------------------------------------------------------------------- environment and prompt


def test_vault_password_environment() -> None:
    assert read_password(PasswordOptions(env={"VAULT_PASSWORD": SECRET})) == SECRET_B


def test_vault_password_environment_undecodable_bytes_come_back() -> None:
    # os.environ holds undecodable bytes as surrogate escapes.
    env_value = b"\xffpw".decode("utf-8", "surrogateescape")
    assert read_password(PasswordOptions(env={"VAULT_PASSWORD": env_value})) == b"\xffpw"


def test_empty_vault_password_counts_as_unset() -> None:
    with pytest.raises(AuthenticationError) as info:
        read_password(PasswordOptions(env={"VAULT_PASSWORD": ""}), prompt=never_prompt)
    assert info.value.exit_code == 12
    prompt = Scripted(b"typed")
    opts = PasswordOptions(env={"VAULT_PASSWORD": ""}, interactive=True)
    assert read_password(opts, prompt=prompt) == b"typed"


def test_no_source_non_interactive_fails_at_once_without_prompting() -> None:
    started = time.monotonic()
    with pytest.raises(AuthenticationError) as info:
        read_password(PasswordOptions(interactive=False), prompt=never_prompt)
    assert time.monotonic() - started < 1
    assert info.value.exit_code == 12
    assert "no password given" in str(info.value)
    assert info.value.hint


def test_interactive_without_prompt_function_fails() -> None:
    with pytest.raises(AuthenticationError):
        read_password(PasswordOptions(interactive=True), prompt=None)


def test_interactive_prompt_is_used_last() -> None:
    prompt = Scripted(b"typed")
    assert read_password(PasswordOptions(interactive=True), prompt=prompt) == b"typed"
    assert prompt.asked == [("Password: ", False)]


def test_empty_password_at_prompt_is_authentication_failure() -> None:
    with pytest.raises(AuthenticationError):
        read_password(PasswordOptions(interactive=True), prompt=Scripted(b""))


def test_precedence_file_command_env_prompt(tmp_path: Path) -> None:
    path = write(tmp_path, b"from-file\n")
    cmd = py_cmd("print('from-command')")
    env_all = {"VAULT_PASSWORD": "from-env"}
    full = PasswordOptions(password_file=path, password_command=cmd, env=env_all, interactive=True)
    assert read_password(full, prompt=never_prompt) == b"from-file"
    no_file = PasswordOptions(password_command=cmd, env=env_all, interactive=True)
    assert read_password(no_file, prompt=never_prompt) == b"from-command"
    env_only = PasswordOptions(env=env_all, interactive=True)
    assert read_password(env_only, prompt=never_prompt) == b"from-env"
    assert read_password(PasswordOptions(interactive=True), prompt=Scripted(b"typed")) == b"typed"


def test_environment_file_beats_option_command(tmp_path: Path) -> None:
    # Source 1 (file, by option or environment) beats source 2 (command, by option or environment).
    env = {"VAULT_PASSWORD_FILE": write(tmp_path, b"env-file\n")}
    opts = PasswordOptions(password_command=py_cmd("print('opt-cmd')"), env=env)
    assert read_password(opts) == b"env-file"


# ------------------------------------------------------------------------------------------- new passwords


def test_new_password_file(tmp_path: Path) -> None:
    opts = PasswordOptions(new_password_file=write(tmp_path, b"new-secret\r\nrest"))
    assert read_new_password(opts, prompt=never_prompt) == b"new-secret"


def test_new_password_file_beats_environment(tmp_path: Path) -> None:
    opts = PasswordOptions(
        new_password_file=write(tmp_path, b"from-file\n"), env={"VAULT_NEW_PASSWORD": "env"}
    )
    assert read_new_password(opts) == b"from-file"


def test_new_password_environment() -> None:
    assert read_new_password(PasswordOptions(env={"VAULT_NEW_PASSWORD": "env-new"})) == b"env-new"


def test_new_password_ignores_opening_sources(tmp_path: Path) -> None:
    env = {"VAULT_PASSWORD": "old", "VAULT_PASSWORD_FILE": write(tmp_path, b"old-file\n")}
    with pytest.raises(AuthenticationError) as info:
        read_new_password(PasswordOptions(password_command=py_cmd("print('old')"), env=env))
    assert info.value.exit_code == 12
    assert "no new password" in str(info.value)


def test_empty_vault_new_password_counts_as_unset() -> None:
    with pytest.raises(AuthenticationError) as info:
        read_new_password(PasswordOptions(env={"VAULT_NEW_PASSWORD": ""}), prompt=never_prompt)
    assert info.value.exit_code == 12
    opts = PasswordOptions(env={"VAULT_NEW_PASSWORD": ""}, interactive=True)
    assert read_new_password(opts, prompt=Scripted(b"typed", b"typed")) == b"typed"


@pytest.mark.parametrize("content", [b"", b"\n", b"\r\nsecond\n"])
def test_empty_new_password_file_is_usage_error(tmp_path: Path, content: bytes) -> None:
    with pytest.raises(UsageError) as info:
        read_new_password(PasswordOptions(new_password_file=write(tmp_path, content)))
    assert info.value.exit_code == 2


def test_missing_new_password_file_is_exit_12(tmp_path: Path) -> None:
    with pytest.raises(AuthenticationError) as info:
        read_new_password(PasswordOptions(new_password_file=str(tmp_path / "missing")))
    assert info.value.exit_code == 12


def test_new_password_prompt_asks_twice() -> None:
    prompt = Scripted(b"pw1", b"pw1")
    assert read_new_password(PasswordOptions(interactive=True), prompt=prompt) == b"pw1"
    assert prompt.asked == [("New password: ", False), ("Repeat password: ", True)]


def test_new_password_mismatch_then_match(caplog: pytest.LogCaptureFixture) -> None:
    prompt = Scripted(b"pw1", b"typo", b"pw2", b"pw2")
    with caplog.at_level(logging.DEBUG, logger="vault"):
        assert read_new_password(PasswordOptions(interactive=True), prompt=prompt) == b"pw2"
    assert len(prompt.asked) == 4
    assert "do not match" in caplog.text
    assert "pw1" not in caplog.text and "typo" not in caplog.text


def test_three_mismatches_is_usage_error() -> None:
    prompt = Scripted(b"a1", b"b1", b"a2", b"b2", b"a3", b"b3", b"never-asked")
    with pytest.raises(UsageError) as info:
        read_new_password(PasswordOptions(interactive=True), prompt=prompt)
    assert info.value.exit_code == 2
    assert len(prompt.asked) == 6
    assert_secret_free(info.value, b"a1", b"b1", b"a3", b"b3")


def test_empty_new_password_at_prompt_is_usage_error() -> None:
    with pytest.raises(UsageError) as info:
        read_new_password(PasswordOptions(interactive=True), prompt=Scripted(b""))
    assert info.value.exit_code == 2


def test_new_password_no_source_non_interactive_is_exit_12() -> None:
    with pytest.raises(AuthenticationError) as info:
        read_new_password(PasswordOptions(interactive=False), prompt=never_prompt)
    assert info.value.exit_code == 12


def test_init_uses_the_opening_sources(tmp_path: Path) -> None:
    path = write(tmp_path, b"init-file\n")
    assert read_new_password(PasswordOptions(password_file=path), for_init=True) == b"init-file"
    cmd = py_cmd("print('init-cmd')")
    assert read_new_password(PasswordOptions(password_command=cmd), for_init=True) == b"init-cmd"
    env = {"VAULT_PASSWORD": "init-env", "VAULT_NEW_PASSWORD": "not-this"}
    assert read_new_password(PasswordOptions(env=env), for_init=True) == b"init-env"


def test_init_prompt_asks_twice() -> None:
    prompt = Scripted(b"x", b"y", b"z", b"z")
    assert read_new_password(PasswordOptions(interactive=True), prompt=prompt, for_init=True) == b"z"
    assert prompt.asked[1] == ("Repeat password: ", True)


def test_init_empty_password_is_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        read_new_password(PasswordOptions(password_file=write(tmp_path, b"\n")), for_init=True)
    assert info.value.exit_code == 2
    with pytest.raises(UsageError):
        read_new_password(PasswordOptions(password_command=py_cmd("print()")), for_init=True)


def test_init_without_source_is_exit_12() -> None:
    with pytest.raises(AuthenticationError) as info:
        read_new_password(PasswordOptions(env={"VAULT_PASSWORD": ""}), prompt=never_prompt, for_init=True)
    assert info.value.exit_code == 12


def test_init_failing_source_is_exit_12(tmp_path: Path) -> None:
    with pytest.raises(AuthenticationError):
        read_new_password(PasswordOptions(password_file=str(tmp_path / "missing")), for_init=True)
    with pytest.raises(AuthenticationError):
        read_new_password(PasswordOptions(password_command=py_cmd("raise SystemExit(5)")), for_init=True)


# ---------------------------------------------------------------------------------------------- secrecy


def test_options_repr_hides_environment() -> None:
    opts = PasswordOptions(env={"VAULT_PASSWORD": SECRET, "AWS_SECRET_ACCESS_KEY": "aws-secret-value"})
    assert SECRET not in repr(opts)
    assert "aws-secret-value" not in repr(opts)


def test_no_message_or_log_record_contains_the_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every failure path, with the secret present somewhere nearby; none of them may show it."""
    failures: list[VaultError] = []
    scenarios = [
        # a command that prints the secret and fails, or hangs
        (PasswordOptions(password_command=py_cmd(f"print({SECRET!r}); raise SystemExit(1)")), False),
        (
            PasswordOptions(
                password_command=py_cmd(f"import time; print({SECRET!r}, flush=True); time.sleep(20)"),
                command_timeout_s=0.3,
            ),
            False,
        ),
        # a working password elsewhere, and a failing source that wins
        (PasswordOptions(password_file=str(tmp_path / "missing"), env={"VAULT_PASSWORD": SECRET}), False),
        (PasswordOptions(password_command="'unterminated", env={"VAULT_PASSWORD": SECRET}), False),
        # new passwords
        (PasswordOptions(env={"VAULT_PASSWORD": SECRET}), True),
    ]
    with caplog.at_level(logging.DEBUG):
        for opts, new in scenarios:
            with pytest.raises(VaultError) as info:
                if new:
                    read_new_password(opts)
                else:
                    read_password(opts)
            failures.append(info.value)
        # successes log nothing secret either
        assert read_password(PasswordOptions(env={"VAULT_PASSWORD": SECRET})) == SECRET_B
        assert read_password(PasswordOptions(password_command=py_cmd(f"print({SECRET!r})"))) == SECRET_B
        assert read_password(PasswordOptions(password_file=write(tmp_path, SECRET_B))) == SECRET_B
    for exc in failures:
        assert_secret_free(exc, SECRET_B)
    assert SECRET not in caplog.text
    for record in caplog.records:
        assert SECRET not in record.getMessage()


# --------------------------------------------------------------------------------------- terminal prompt


def test_terminal_prompt_writes_to_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}

    def fake_getpass(prompt: str = "Password: ", stream: object = None) -> str:
        seen["prompt"], seen["stream"] = prompt, stream
        return "pässword"

    monkeypatch.setattr(getpass, "getpass", fake_getpass)
    assert terminal_prompt("Password: ", False) == "pässword".encode()
    assert seen == {"prompt": "Password: ", "stream": sys.stderr}


def test_terminal_prompt_eof_is_authentication_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def eof(prompt: str = "", stream: object = None) -> str:
        raise EOFError

    monkeypatch.setattr(getpass, "getpass", eof)
    with pytest.raises(AuthenticationError) as info:
        terminal_prompt("Password: ", False)
    assert info.value.exit_code == 12


def test_terminal_prompt_ctrl_c_is_interrupted(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(prompt: str = "", stream: object = None) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(getpass, "getpass", interrupt)
    with pytest.raises(Interrupted) as info:
        terminal_prompt("Password: ", True)
    assert info.value.exit_code == 130


def test_password_command_output_is_read_up_to_the_limit_then_the_command_is_stopped(tmp_path: Path) -> None:
    """Issue 18, item 6: the output was read whole until the command exited (500 MB of it took 1 GB of memory;
    one that never stops printing, like `yes`, until the timeout). Now at most 64 KiB + 1 byte is read, then
    the command is killed: exit 12 at once, naming the limit."""
    alive = tmp_path / "still-running"
    cmd = py_cmd(
        "import sys, time\n"
        "for _ in range(2000): sys.stdout.write('x' * 65536)\n"
        f"open({str(alive)!r}, 'w').close()\n"  # only reached if vault read all 128 MiB
        "time.sleep(60)"
    )
    started = time.monotonic()
    with pytest.raises(AuthenticationError) as info:
        read_password(PasswordOptions(password_command=cmd, command_timeout_s=30))
    assert time.monotonic() - started < 10
    assert info.value.exit_code == 12
    assert "more than 65536 bytes" in str(info.value)
    assert not alive.exists()
    assert info.value.__cause__ is None


def test_a_short_password_line_followed_by_endless_output_is_refused_too() -> None:
    with pytest.raises(AuthenticationError) as info:
        read_password(PasswordOptions(password_command="yes correct-horse", command_timeout_s=30))
    assert "more than 65536 bytes" in str(info.value)
