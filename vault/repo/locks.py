"""Locks as encrypted objects in ``locks/``, as restic does: many shared holders, or one exclusive holder.

`put`, `get` and `check` take a shared lock (content addressing makes concurrent writers safe); `rm`,
`forget`, `prune`, `repair` and key changes take an exclusive one. Acquiring writes our lock object first, then
looks at the others, so two processes that race both see each other and at least one backs off.

A holder rewrites its lock every REFRESH_S seconds. A lock is stale when its process is gone (same host: the
pid no longer exists) or, from another host, when it was not refreshed for STALE_S seconds. Stale locks are
removed, and each removal is reported to the caller for the operation log.

Lock objects are encrypted and bound to their names like every other object: the storage learns nothing from
them, and nobody without a key can plant one that we would honour or break. In a vault of format version 4 they
are sealed under the lock key, which full and write-only keys both derive (vault.crypto.keyring.lock_aead): a
write-only put takes a shared lock like any put, sees every other holder, honours exclusive ones, and breaks stale
ones by the same rules. A lock it can't read (sealed under a generation's metadata key: written before the vault
became version 4) is a holder it can't judge, so it counts as an exclusive one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from vault import format as fmt
from vault.errors import (
    IntegrityError,
    NotPermittedError,
    ObjectNotFoundError,
    UnknownGenerationError,
    VaultError,
    VaultLockedError,
)
from vault.repo.objects import open_object, seal_lock
from vault.repo.repository import Repository
from vault.storage.base import Handle, Kind

log = logging.getLogger(__name__)

REFRESH_S = 60.0
STALE_S = 300.0
POLL_S = 0.5
LOCK_OBJECT_TYPE = fmt.ObjectType.LOCK


@dataclass(frozen=True)
class LockInfo:
    name: str
    exclusive: bool
    host: str
    pid: int
    time: float  # last refresh, seconds since the epoch
    command: str

    def describe(self) -> str:
        when = datetime.fromtimestamp(self.time, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        kind = "exclusive" if self.exclusive else "shared"
        return f"{kind} lock held by `vault {self.command}` (pid {self.pid} on {self.host}, refreshed {when})"


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host still runs. A zombie does not: it has exited and holds nothing, but
    answers signal 0 until its parent reaps it, and a parent that never does (a killed tracer, a container's pid
    1 that reaps nothing) would otherwise keep a dead command's lock alive for good."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read(4096)
    except OSError:
        return True  # no /proc (not Linux): signal 0 is all there is
    state = stat.rpartition(b")")[2].split()[:1]  # the field after the command name, which may hold ")"
    return state not in ([b"Z"], [b"X"])


def is_stale(info: LockInfo, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    if info.host == socket.gethostname():
        return not _pid_alive(info.pid)
    return now - info.time > STALE_S


class Lock:
    """A held lock. Release it with ``release()`` or use it as a context manager."""

    def __init__(self, repo: Repository, exclusive: bool, command: str) -> None:
        self.repo = repo
        self.exclusive = exclusive
        self.command = command
        self.handle = Handle(Kind.LOCKS, secrets.token_hex(fmt.ID_SIZE))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> None:
        """Write the lock again now (under the keyring's current generation: `rekey` calls this)."""
        self._write()

    def _write(self) -> None:
        doc = fmt.encode_lock(
            fmt.LockFields(
                exclusive=self.exclusive,
                host=socket.gethostname(),
                pid=os.getpid(),
                time=time.time(),
                command=self.command,
            )
        )
        lock_key = self.repo.config.format_version >= fmt.FORMAT_VERSION_WRITE_ONLY  # write-only keys read it
        raw = seal_lock(self.repo.key, self.repo.vault_id, self.handle, doc, lock_key)
        self.repo.backend.save(self.handle, raw)

    def _refresh_loop(self) -> None:
        while not self._stop.wait(REFRESH_S):
            try:
                self._write()
            except VaultError as exc:  # the next refresh may work; holders elsewhere judge by age
                log.warning("could not refresh the lock: %s", exc)

    def start_refreshing(self) -> None:
        self._thread = threading.Thread(target=self._refresh_loop, name="vault-lock-refresh", daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(VaultError):
            self.repo.backend.remove(self.handle)

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_lock(repo: Repository, handle: Handle) -> LockInfo:
    what = f"lock {handle}"
    plain = open_object(repo.key, repo.vault_id, handle, LOCK_OBJECT_TYPE, repo.backend.load(handle, 0, 65536))
    return LockInfo(handle.name, **fmt.decode_lock(plain, what)._asdict())


def acquire(
    repo: Repository,
    *,
    exclusive: bool,
    command: str,
    wait_s: float = 0.0,
    on_stale: Callable[[LockInfo], None] | None = None,
) -> Lock:
    """Take a lock, waiting up to ``wait_s`` seconds for conflicting holders. Raises VaultLockedError (exit 11)
    naming the holder. Stale locks in the way are removed and reported through ``on_stale``."""
    lock = Lock(repo, exclusive, command)
    deadline = time.monotonic() + wait_s
    while True:
        lock._write()
        try:
            blocker = _first_conflict(repo, lock, on_stale)
        except BaseException:
            with contextlib.suppress(VaultError):  # never leave our own lock behind
                repo.backend.remove(lock.handle)
            raise
        if blocker is None:
            lock.start_refreshing()
            return lock
        with contextlib.suppress(VaultError):
            repo.backend.remove(lock.handle)
        if time.monotonic() >= deadline:
            raise VaultLockedError(
                f"the vault is locked: {blocker.describe()}",
                hint="wait for it to finish, or retry with --retry-lock SECONDS",
            )
        # Jitter, so two exclusive lockers that keep seeing each other stop colliding.
        time.sleep(POLL_S + secrets.randbelow(500) / 1000)


def _first_conflict(
    repo: Repository, mine: Lock, on_stale: Callable[[LockInfo], None] | None
) -> LockInfo | None:
    for obj in repo.backend.list(Kind.LOCKS):
        if obj.handle.name == mine.handle.name:
            continue
        try:
            info = read_lock(repo, obj.handle)
        except ObjectNotFoundError:
            continue  # released while we looked
        except NotPermittedError:
            # A write-only key meets a lock sealed under a metadata key: a holder it can neither judge nor break.
            raise VaultLockedError(
                f"the vault is locked by {obj.handle}, which this write-only key can't read",
                hint="wait for it to finish; if no command is running, any command run with a full key removes a "
                "stale lock",
            ) from None
        # UnknownGenerationError (sealed under a generation newer than ours: a live holder with a current
        # key, maybe) is not damage and propagates: never remove such a lock; our key can't read newer data.
        except IntegrityError:
            # Every real holder shares our master key, and saves are atomic, so a lock that fails
            # authentication was never written by vault: it protects nothing and would block forever.
            with contextlib.suppress(ObjectNotFoundError):
                repo.backend.remove(obj.handle)
            log.warning("removed a damaged lock object %s", obj.handle)
            continue
        if is_stale(info):
            with contextlib.suppress(ObjectNotFoundError):
                repo.backend.remove(obj.handle)
            log.warning("removed a stale %s", info.describe())
            if on_stale:
                on_stale(info)
            continue
        if mine.exclusive or info.exclusive:
            return info
    return None


def others_hold_locks(repo: Repository, mine: Lock) -> bool:
    """True when a live lock other than ``mine`` exists (stale ones were removed when ``mine`` was taken)."""
    for obj in repo.backend.list(Kind.LOCKS):
        if obj.handle.name == mine.handle.name:
            continue
        try:
            if not is_stale(read_lock(repo, obj.handle)):
                return True
        except (UnknownGenerationError, NotPermittedError):
            return True
        except (ObjectNotFoundError, IntegrityError):
            continue
    return False
