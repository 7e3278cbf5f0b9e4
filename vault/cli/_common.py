"""What every command shares: the resolved settings, opening the vault, printing results.

Heavy modules (cryptography, zstandard, argon2, boto3) are imported inside functions so that `vault --help`
starts fast.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from vault.passwords import PasswordOptions
    from vault.pipeline.runner import Pipeline
    from vault.repo.locks import Lock
    from vault.repo.repository import Repository
    from vault.storage.base import Backend
    from vault.witness import Findings


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


@dataclass
class RunState:
    """What the operation log records about this run; commands fill in what they know."""

    command: str = ""
    location: str | None = None
    nbytes: int | None = None
    extra: dict[str, object] = field(default_factory=dict)
    secrets: list[bytes] = field(default_factory=list)
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    lock: Lock | None = None
    witnessed: Findings | None = None  # what vault.witness found when the vault was opened

    def reset(self) -> None:
        """Start a new run (the library can run several commands in one process, as tests do)."""
        self.command, self.location, self.nbytes = "", None, None
        self.extra, self.secrets, self.cleanups, self.lock = {}, [], [], None
        self.witnessed = None
        from vault.witness import activate

        activate(None)

    def recovery(self, action: str) -> None:
        """Note a recovery action (a stale lock broken, orphans removed) for the operation log."""
        actions = self.extra.setdefault("recovery", [])
        assert isinstance(actions, list)
        actions.append(action)


STATE = RunState()


def settings(ctx: typer.Context) -> Settings:
    obj = ctx.find_root().obj
    assert isinstance(obj, Settings)
    return obj


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


def remember_secret(secret: bytes) -> None:
    """Every password or key this run handles is scrubbed from the debug log and the operation log, a last
    line of defence behind the rule that no message ever contains one."""
    from vault.logsetup import register_secret

    register_secret(secret)
    STATE.secrets.append(secret)


def read_password(s: Settings) -> bytes:
    from vault.passwords import read_password as _read
    from vault.passwords import terminal_prompt

    password = _read(password_options(s), prompt=terminal_prompt)
    remember_secret(password)
    return password


def new_recovery_key(path: str, location: str) -> str:
    """Generate a recovery key and write it to ``path`` (0600, never over a file). The file comes first: a slot
    whose key was never written down would be useless. ConflictError, StorageError."""
    from datetime import UTC, datetime

    from vault.crypto import recovery

    key = recovery.generate()
    remember_secret(key.encode("ascii"))
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    recovery.write_key_file(path, key, location, created)
    return key


def open_repo(s: Settings, lock: str | None = None) -> Repository:
    """Open the vault at the configured location with the configured password, and take a ``"shared"`` or
    ``"exclusive"`` lock for the rest of the command (released by ``vault.cli.run`` whatever happens)."""
    return open_repo_with_password(s, lock)[0]


def open_repo_with_password(s: Settings, lock: str | None = None) -> tuple[Repository, bytes]:
    """:func:`open_repo`, also returning the password that opened it (for `rekey`, which rewraps that slot)."""
    from vault.errors import UnknownGenerationError, VaultLockedError
    from vault.repo.config import load_config
    from vault.repo.repository import Repository

    backend = backend_for(s)
    config = load_config(backend)  # "no vault here" (exit 10) before asking for a password
    password = read_password(s)
    repo = Repository.open(backend, password, config=config, rehash=False)
    if lock is not None:
        from vault.repo.locks import acquire

        for attempt in range(3):
            # Unlocking happens before locking: a `rekey` (or `passwd`) that ran in between changed the keyring
            # this command would write under (and other holders' locks may be sealed under a newer generation).
            # Under our lock no such change can start, so look once more, and unlock again if it happened.
            try:
                held = acquire(
                    repo,
                    exclusive=lock == "exclusive",
                    command=STATE.command,
                    wait_s=s.retry_lock_s,
                    on_stale=lambda info: STATE.recovery(f"removed stale {info.describe()}"),
                )
            except UnknownGenerationError:
                if attempt == 2 or not repo.slot_changed():
                    raise
                repo = Repository.open(backend, password, config=config, rehash=False)
                continue
            if not repo.slot_changed():
                break
            held.release()
            if attempt == 2:
                raise VaultLockedError("the key that opened the vault keeps changing (`rekey` or `passwd` elsewhere)",
                                    hint="run the command again once they are done")
            repo = Repository.open(backend, password, config=config, rehash=False)
        STATE.cleanups.append(held.release)
        STATE.lock = held
        # Rewrapping a slot is a key change: only under a lock, so it never races a `rekey` of that slot.
        repo.slot = repo.keys.rehash_if_weak(repo.slot, repo.key, password)
    _witness(repo)
    return repo, password


def _witness(repo: Repository) -> None:
    """Compare the vault's version records with what this machine saw last (vault.witness), warn about a
    replay, deletion or rollback, and take in this command's own changes when it ends."""
    from vault.witness import Witness, activate

    witness = Witness(repo.vault_id)
    STATE.witnessed = findings = witness.start(repo.backend)
    activate(witness)
    for message in findings.messages():
        note(f"warning: {message}")
        STATE.recovery(f"noticed: {message}")
    backend = repo.backend
    STATE.cleanups.append(lambda: witness.finish(backend))  # runs before the lock is released


@contextmanager
def pipeline(s: Settings) -> Iterator[Pipeline]:
    from vault.pipeline.runner import Pipeline

    with Pipeline(s.threads) as p:
        yield p


def print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def say(s: Settings, text: str) -> None:
    """A human-readable result line on standard output (suppressed with -q)."""
    if s.verbosity >= 0:
        typer.echo(text)


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


def default_location() -> str:
    from platformdirs import user_data_dir

    return user_data_dir("vault", appauthor=False)


def environ() -> dict[str, str]:
    return dict(os.environ)
