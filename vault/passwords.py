"""Where passwords come from (``spec/cli.md``, "Passwords").

The password that opens a vault comes from the first source that is set, in this order:

1. ``--password-file FILE`` or ``VAULT_PASSWORD_FILE``: the file's first line without its line ending
   (``\\n`` or ``\\r\\n``; any other whitespace, including a lone ``\\r`` at the very end of the file, is
   part of the password).
2. ``--password-command CMD`` or ``VAULT_PASSWORD_COMMAND``: CMD split like a shell does (``shlex``), run
   without a shell, standard input from ``/dev/null``; the first line of its standard output.
3. ``VAULT_PASSWORD`` (set and empty counts as not set).
4. A hidden prompt on the terminal, only when standard input is a terminal.

With none of them the command fails at once (exit 12): it never waits on a standard input that is not a
terminal, so a backup script without a password fails loudly instead of hanging.

A *new* password (``init``, ``passwd``, ``key add``) follows :func:`read_new_password`.

Secrecy rules of this module, and why
-------------------------------------

* A password never appears in an exception message, a log record or a ``repr``. Error messages name the
  *source* (the file's path, the command's exit status), never what was read from it. age and restic
  behave the same way: their errors say "no identity matched" / "wrong password or no key found" and
  never echo what was typed or read, because error text ends up in terminals, CI logs, cron mail and bug
  reports, all far less protected than the password file itself.
* The standard error of a password command is discarded (/dev/null), never shown or logged: password
  helpers (``pass``, ``gpg``, ``op``, a script with ``set -x``) may echo the secret there.
* At most 64 KiB + 1 byte of a password command's standard output is read (:data:`MAX_PASSWORD_LINE`); a
  command that prints more is stopped (killed) and refused, so a runaway one (``yes``, a dump) costs neither
  memory nor the timeout.
* :class:`PasswordOptions` carries a snapshot of the environment (it holds ``VAULT_PASSWORD`` and maybe
  cloud credentials), so that field is left out of its ``repr``.
* ``VAULT_PASSWORD`` is convenient but weak: on Linux the environment of a process can be read by every
  other process of the same user (``/proc/PID/environ``) and it is inherited by every child process.
  restic documents the same caveat for ``RESTIC_PASSWORD``. Prefer ``--password-file`` (mode 0600) or
  ``--password-command`` in scripts.

Passwords are ``bytes``: exactly the bytes of the file or of the command's output, and the UTF-8 encoding
of text typed at the prompt or given in the environment (undecodable environment bytes are recovered
unchanged through ``surrogateescape``).

Password sources never read ``os.environ`` themselves: the caller passes a snapshot in ``PasswordOptions.env``
and decides whether standard input is a terminal (``PasswordOptions.interactive``). The one exception is
:func:`child_environment`, which builds the environment of the programs vault starts without the passwords.
"""

from __future__ import annotations

import getpass
import hmac
import logging
import os
import selectors
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from vault.errors import AuthenticationError, Interrupted, UsageError

__all__ = [
    "ENV_NEW_PASSWORD",
    "ENV_PASSWORD",
    "ENV_PASSWORD_COMMAND",
    "ENV_PASSWORD_FILE",
    "ENV_TO_PASSWORD",
    "ENV_TO_PASSWORD_FILE",
    "PasswordOptions",
    "Prompt",
    "read_destination_password",
    "read_new_password",
    "read_password",
    "terminal_prompt",
]

log = logging.getLogger(__name__)

ENV_PASSWORD_FILE = "VAULT_PASSWORD_FILE"  # noqa: S105 (a variable's name, not a password)
ENV_PASSWORD_COMMAND = "VAULT_PASSWORD_COMMAND"  # noqa: S105 (a variable's name, not a password)
ENV_PASSWORD = "VAULT_PASSWORD"  # noqa: S105 (a variable's name, not a password)
ENV_NEW_PASSWORD = "VAULT_NEW_PASSWORD"  # noqa: S105 (a variable's name, not a password)
ENV_TO_PASSWORD_FILE = "VAULT_TO_PASSWORD_FILE"  # noqa: S105 (a variable's name, not a password)
ENV_TO_PASSWORD = "VAULT_TO_PASSWORD"  # noqa: S105 (a variable's name, not a password)

#: Asks for one password: ``prompt(text, confirm)``; ``confirm`` is True for the "repeat" question.
Prompt = Callable[[str, bool], bytes]

#: The longest first line accepted from a password file or command (a guard against /dev/zero and the like).
MAX_PASSWORD_LINE = 64 * 1024

#: How many times a new password is asked for at the prompt before giving up on mismatches.
NEW_PASSWORD_ATTEMPTS = 3

_NO_PASSWORD_HINT = "run the command from a terminal to be asked for it, or see 'vault --help'"  # noqa: S105


@dataclass(frozen=True)
class PasswordOptions:
    """Where to look for passwords. Holds no password itself (but ``env`` may: it is kept out of repr)."""

    password_file: str | None = None
    password_command: str | None = None
    new_password_file: str | None = None
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    interactive: bool = False
    command_timeout_s: float = 60.0


# ----------------------------------------------------------------------------------------------- helpers


def _env(opts: PasswordOptions, name: str) -> str | None:
    """An environment variable of the snapshot; set and empty counts as not set."""
    value = opts.env.get(name)
    return value if value else None


def _env_bytes(text: str) -> bytes:
    # os.environ decodes undecodable bytes with surrogateescape; this gives the original bytes back.
    return text.encode("utf-8", "surrogateescape")


def _strip_line_ending(line: bytes) -> bytes:
    """``line`` up to its first ``\\n``, without the ``\\n`` or ``\\r\\n`` that ends it."""
    head, newline, _ = line.partition(b"\n")
    if newline and head.endswith(b"\r"):
        head = head[:-1]
    return head


def _read_password_file(path: str, *, what: str = "password file") -> bytes:
    """The first line of ``path``. Any failure to read is an :class:`AuthenticationError` naming the path."""
    try:
        with open(path, "rb") as f:
            line = f.readline(MAX_PASSWORD_LINE + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise AuthenticationError(
            f"can't read {what} '{path}': {reason}",
            hint="check the path and that the file is readable by this user",
        ) from None
    if len(line) > MAX_PASSWORD_LINE and not line.endswith(b"\n"):
        raise AuthenticationError(
            f"the first line of {what} '{path}' is longer than {MAX_PASSWORD_LINE} bytes"
        )
    return _strip_line_ending(line)


def child_environment() -> dict[str, str]:
    """The environment for processes vault starts (a password command, --stdin-from-command): everything but
    the passwords themselves, which those programs have no business reading."""
    return {k: v for k, v in os.environ.items() if k not in (ENV_PASSWORD, ENV_NEW_PASSWORD)}


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _run_password_command(command: str, timeout_s: float) -> bytes:
    """The first line of the command's standard output, of which at most MAX_PASSWORD_LINE + 1 bytes are read.

    The command string and its standard error are never put in a message: either may hold the secret
    (``echo hunter2``, ``set -x``). Exceptions are raised ``from None`` so that the subprocess exception,
    whose text includes the argument list, is not chained into tracebacks written to the debug log. The command
    is killed if it is still running when this returns or raises.
    """
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise UsageError(
            f"the password command can't be parsed: {exc}",
            hint="it is split like a shell does; check its quotes and backslashes",
        ) from None
    if not argv:
        raise UsageError("the password command is empty")
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # never shown: it may echo the secret
            env=child_environment(),
        )
    except FileNotFoundError:
        raise AuthenticationError(
            f"password command not found: '{argv[0]}'", hint="check the program name and PATH"
        ) from None
    except PermissionError:
        raise AuthenticationError(f"password command can't be run: '{argv[0]}': permission denied") from None
    except OSError as exc:
        raise AuthenticationError(
            f"password command can't be run: '{argv[0]}': {exc.strerror or type(exc).__name__}"
        ) from None
    deadline = time.monotonic() + timeout_s
    try:
        assert proc.stdout is not None
        out = _read_at_most(proc.stdout.fileno(), MAX_PASSWORD_LINE + 1, deadline)
        if out is not None and len(out) <= MAX_PASSWORD_LINE:
            code = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        out = None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    # Raised from None: no subprocess exception (its text holds the argument list) is chained to these.
    if out is None:
        raise AuthenticationError(
            f"password command timed out after {timeout_s:g} seconds",
            hint="the command must print the password and exit; it gets no standard input",
        ) from None
    if len(out) > MAX_PASSWORD_LINE:
        raise AuthenticationError(
            f"the password command printed more than {MAX_PASSWORD_LINE} bytes; it was stopped",
            hint="the command must print the password on its first line and exit",
        ) from None
    if code != 0:
        detail = f" (killed by {_signal_name(-code)})" if code < 0 else ""
        raise AuthenticationError(
            f"password command failed with exit status {code}{detail}",
            hint="run the command by hand to see its error output (vault does not show it)",
        ) from None
    return _strip_line_ending(out)


def _read_at_most(fd: int, limit: int, deadline: float) -> bytes | None:
    """What ``fd`` gives until end of file, or its first ``limit`` bytes when it gives more; None when the
    deadline passes first."""
    out = bytearray()
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while len(out) < limit:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sel.select(remaining):
                return None
            chunk = os.read(fd, min(65536, limit - len(out)))
            if not chunk:
                break
            out += chunk
    return bytes(out)


def _from_opening_sources(opts: PasswordOptions) -> tuple[bytes, str, bool] | None:
    """The password from sources 1 to 3 as ``(password, source description, from_file_or_command)``.

    ``None`` when none of those sources is set. Errors of a source that is set propagate: a set source
    that fails never falls through to the next one.
    """
    path = opts.password_file if opts.password_file is not None else _env(opts, ENV_PASSWORD_FILE)
    if path is not None:
        origin = "--password-file" if opts.password_file is not None else ENV_PASSWORD_FILE
        log.debug("reading the password from %s '%s'", origin, path)
        return _read_password_file(path), f"password file '{path}'", True
    command = opts.password_command if opts.password_command is not None else _env(opts, ENV_PASSWORD_COMMAND)
    if command is not None:
        origin = "--password-command" if opts.password_command is not None else ENV_PASSWORD_COMMAND
        log.debug("running the password command from %s", origin)
        return _run_password_command(command, opts.command_timeout_s), "password command", True
    env_password = _env(opts, ENV_PASSWORD)
    if env_password is not None:
        log.debug("using the password from %s", ENV_PASSWORD)
        return _env_bytes(env_password), ENV_PASSWORD, False
    return None


def _ask_new_password(prompt: Prompt) -> bytes:
    """Ask twice; a mismatch asks again, up to :data:`NEW_PASSWORD_ATTEMPTS` times."""
    for attempt in range(1, NEW_PASSWORD_ATTEMPTS + 1):
        first = prompt("New password: ", False)
        if not first:
            raise UsageError("an empty password is refused")
        second = prompt("Repeat password: ", True)
        if hmac.compare_digest(first, second):
            return first
        if attempt < NEW_PASSWORD_ATTEMPTS:
            log.warning("the passwords do not match; try again")
    raise UsageError(f"the passwords did not match ({NEW_PASSWORD_ATTEMPTS} attempts)")


# ------------------------------------------------------------------------------------------------ public


def read_password(opts: PasswordOptions, *, prompt: Prompt | None = None) -> bytes:
    """The password that opens the vault, from the first source that is set (see the module docstring).

    Raises :class:`AuthenticationError` (exit 12) when no source is set (and standard input is not a
    terminal), when a set source fails, or when it yields an empty password; :class:`UsageError` (exit 2)
    for a password command that can't be parsed.
    """
    found = _from_opening_sources(opts)
    if found is not None:
        password, source, _ = found
        if not password:
            raise AuthenticationError(
                f"the {source} gave an empty password", hint="the password is the first line, which is empty"
            )
        return password
    if opts.interactive and prompt is not None:
        password = prompt("Password: ", False)
        if not password:
            raise AuthenticationError("an empty password was entered")
        return password
    raise AuthenticationError(
        "no password given: use --password-file, --password-command or VAULT_PASSWORD", hint=_NO_PASSWORD_HINT
    )


def read_new_password(
    opts: PasswordOptions, *, prompt: Prompt | None = None, for_init: bool = False
) -> bytes:
    """A new password, for ``init`` (``for_init=True``), ``passwd`` or ``key add``.

    * ``init``: the same sources as :func:`read_password` (file, command, ``VAULT_PASSWORD``), then the
      prompt asked twice. ``opts.new_password_file`` is not consulted.
    * ``passwd`` / ``key add``: ``opts.new_password_file``, then ``VAULT_NEW_PASSWORD`` (empty = not set),
      then the prompt asked twice when interactive.

    No source: :class:`AuthenticationError` (exit 12). A source that fails: :class:`AuthenticationError`.
    An empty new password from any source: :class:`UsageError` (exit 2). At the prompt, a mismatch asks
    again; after :data:`NEW_PASSWORD_ATTEMPTS` mismatches, :class:`UsageError`.
    """
    empty = UsageError("an empty password is refused", hint="a new password must have at least one character")
    if for_init:
        found = _from_opening_sources(opts)
        if found is not None:
            password = found[0]
            if not password:
                raise empty
            return password
        missing = "no password given: use --password-file, --password-command or VAULT_PASSWORD"
    else:
        if opts.new_password_file is not None:
            log.debug("reading the new password from --new-password-file '%s'", opts.new_password_file)
            password = _read_password_file(opts.new_password_file, what="new password file")
            if not password:
                raise empty
            return password
        env_password = _env(opts, ENV_NEW_PASSWORD)
        if env_password is not None:
            log.debug("using the new password from %s", ENV_NEW_PASSWORD)
            return _env_bytes(env_password)
        missing = "no new password given: use --new-password-file or VAULT_NEW_PASSWORD"
    if opts.interactive and prompt is not None:
        return _ask_new_password(prompt)
    raise AuthenticationError(missing, hint=_NO_PASSWORD_HINT)


def read_destination_password(opts: PasswordOptions, path: str | None, *, prompt: Prompt | None = None) -> bytes:
    """The password of the vault `vault copy` writes to: ``--to-password-file FILE`` (``path``), then
    ``VAULT_TO_PASSWORD_FILE``, then ``VAULT_TO_PASSWORD`` (empty = not set), then the prompt when interactive.
    AuthenticationError (exit 12) when there is none, a file can't be read, or the password is empty."""
    path = path if path is not None else _env(opts, ENV_TO_PASSWORD_FILE)
    if path is not None:
        password = _read_password_file(path, what="destination password file")
    elif (text := _env(opts, ENV_TO_PASSWORD)) is not None:
        password = _env_bytes(text)
    elif opts.interactive and prompt is not None:
        password = prompt("Password of the destination: ", False)
    else:
        raise AuthenticationError(
            "no password for the destination: use --to-password-file, VAULT_TO_PASSWORD_FILE or VAULT_TO_PASSWORD",
            hint=_NO_PASSWORD_HINT,
        )
    if not password:
        raise AuthenticationError("the destination's password is empty")
    return password


def terminal_prompt(text: str, confirm: bool) -> bytes:
    """Hidden input on the terminal; the question goes to standard error, never standard output.

    ``confirm`` marks the "repeat" question; it changes nothing here. End of input raises
    :class:`AuthenticationError`; Ctrl-C raises :class:`Interrupted` (exit 130).
    """
    del confirm
    try:
        answer = getpass.getpass(text, stream=sys.stderr)
    except EOFError:
        raise AuthenticationError("no password entered (end of input)") from None
    except KeyboardInterrupt:
        # getpass leaves the cursor after the question; end the line so the error starts on its own.
        try:
            sys.stderr.write("\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        raise Interrupted("interrupted") from None
    return answer.encode("utf-8", "surrogateescape")
