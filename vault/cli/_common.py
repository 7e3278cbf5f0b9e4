"""What every command shares: the resolved settings, opening the vault, printing results.

Heavy modules (cryptography, zstandard, argon2, boto3) are imported inside functions so that `vault --help`
starts fast.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from vault.passwords import PasswordOptions
    from vault.repo.repository import Repository
    from vault.session import LockMode, Session
    from vault.storage.base import Backend, Held


@dataclass
class Settings:
    """Resolved once in the root callback: defaults < environment < flags (style.md 2.5)."""

    location: str
    password_file: str | None
    password_command: str | None
    verbosity: int
    threads: int | None
    env: dict[str, str]
    retry_lock_s: float = 0.0
    cache: bool | str = True  # True: the per-user cache directory; a path: VAULT_CACHE_DIR; False: --no-cache


@dataclass
class RunState:
    """One run of the command line: its settings, the vault it opened, and what the operation log records
    about it. Made by ``vault.cli.run`` and handed to the commands through the click context (``ctx.obj``), so
    nothing about a run outlives it or leaks into the next one in the same process (tests run many)."""

    settings: Settings | None = None
    command: str = ""
    location: str | None = None
    nbytes: int | None = None
    extra: dict[str, object] = field(default_factory=dict)
    secrets: list[bytes] = field(default_factory=list)
    session: Session | None = None

    def recovery(self, action: str) -> None:
        """Note a recovery action (a stale lock broken, orphans removed) for the operation log."""
        actions = self.extra.setdefault("recovery", [])
        assert isinstance(actions, list)
        actions.append(action)

    def close(self) -> None:
        """Close the session (the witness takes in this run's changes, the lock is released) and keep what it
        noticed for the log. Runs however the command ended."""
        if self.session is None:
            return
        session, self.session = self.session, None
        try:
            session.close()
        finally:
            for action in session.notes:
                self.recovery(action)


def run_state(ctx: typer.Context) -> RunState:
    obj = ctx.find_root().obj
    assert isinstance(obj, RunState)
    return obj


def settings(ctx: typer.Context) -> Settings:
    s = run_state(ctx).settings
    assert s is not None
    return s


def password_options(s: Settings, new_password_file: str | None = None) -> PasswordOptions:
    from vault.passwords import PasswordOptions

    return PasswordOptions(
        password_file=s.password_file,
        password_command=s.password_command,
        new_password_file=new_password_file,
        env=s.env,
        interactive=sys.stdin.isatty(),
    )


def backend_for(s: Settings) -> Backend:
    from vault.storage import open_backend

    return open_backend(s.location)


def canonical_location(location: str) -> str:
    """One spelling per vault, so the operation log of `/v`, `/v/` and `./v` is the same file."""
    scheme, sep, rest = location.partition("://")
    if sep:
        # Never keep credentials someone typed into a URL (s3://KEY:SECRET@bucket, any case of the scheme):
        # open_backend refuses such a location, but the log entry for that failure must not hold them either.
        return f"{scheme.lower()}://{rest.rsplit('@', 1)[-1].rstrip('/')}"
    return os.path.realpath(os.path.expanduser(location))


def remember_secret(state: RunState, secret: bytes) -> None:
    """Every password or key this run handles is scrubbed from the debug log and the operation log, a last
    line of defence behind the rule that no message ever contains one."""
    from vault.logsetup import register_secret

    register_secret(secret)
    state.secrets.append(secret)


def read_password(state: RunState) -> bytes:
    from vault.passwords import read_password as _read
    from vault.passwords import terminal_prompt

    assert state.settings is not None
    password = _read(password_options(state.settings), prompt=terminal_prompt)
    remember_secret(state, password)
    return password


def new_recovery_key(state: RunState, path: str, location: str) -> str:
    """Generate a recovery key and write it to ``path`` (0600, never over a file). The file comes first: a slot
    whose key was never written down would be useless. ConflictError, StorageError."""
    from datetime import UTC, datetime

    from vault.crypto import recovery

    key = recovery.generate()
    remember_secret(state, key.encode("ascii"))
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    recovery.write_key_file(path, key, location, created)
    return key


def open_session(ctx: typer.Context, lock: LockMode | None = None, write_only_ok: bool = False) -> Session:
    """Open the configured vault with the configured password through the library's one opener
    (vault.session), holding a ``"shared"`` or ``"exclusive"`` lock, or none, for the rest of the command.
    ``vault.cli.run`` closes it (witness, pools, lock) however the command ends. A write-only key is refused
    (exit 13, before anything is read) unless ``write_only_ok`` (put, info, check without --read-data)."""
    from vault.session import open_session as _open

    state = run_state(ctx)
    s = settings(ctx)
    state.session = _open(
        s.location,
        password=lambda: read_password(state),
        lock=lock,
        threads=s.threads,
        retry_lock_s=s.retry_lock_s,
        command=state.command,
        cache=s.cache,
        on_note=note,
        write_only_ok=write_only_ok,
    )
    return state.session


def open_repo(ctx: typer.Context, lock: LockMode | None = None, write_only_ok: bool = False) -> Repository:
    """:func:`open_session` for commands that need only the repository."""
    return open_session(ctx, lock, write_only_ok).repo


def print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def say(s: Settings, text: str) -> None:
    """A human-readable result line on standard output (suppressed with -q)."""
    if s.verbosity >= 0:
        typer.echo(text)


# What a terminal would act on rather than show: C0 and C1 control characters and DEL (escape sequences move
# the cursor, recolour, retitle or clear the screen; a newline fakes a line of output), the Unicode line and
# paragraph separators and bidirectional overrides and isolates (they reorder what is shown), and lone
# surrogates, which stand for bytes of a name that are not UTF-8. The backslash is escaped so that every
# escape reads one way.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\udc80-\udcff\\]")
_NAMED_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\"}


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    if ch in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[ch]
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the original byte
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` (a stored name, a link target) as human output shows it: control characters, backslashes and
    undecodable bytes as escapes (``\\n``, ``\\x1b``, ``\\\\``, ``\\xe9``), as GNU ``ls -b`` does, so a name
    can't act on the terminal or fake a line. JSON output keeps names exact."""
    return _UNPRINTABLE.sub(_escape, text)


def say_held(s: Settings, held: Held) -> None:
    """The result line for what retention keeps stored although it was deleted (nothing when nothing is held)."""
    if not held:
        return
    when = f"{held.until:%Y-%m-%d %H:%M} UTC" if held.until is not None else "a date the store did not give"
    say(s, f"{held.count} object(s) held by retention until {when}: removed from the vault's view, still "
           "stored; a later `vault prune` deletes them then")


def note(text: str) -> None:
    """A remark for people, on standard error."""
    typer.echo(f"vault: {text}", err=True)


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def env_int(env: dict[str, str], name: str) -> int | None:
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    from vault.errors import UsageError

    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"{name} must be a whole number") from None
    if value < 1:
        raise UsageError(f"{name} must be at least 1")
    return value


def environ() -> dict[str, str]:
    return dict(os.environ)
