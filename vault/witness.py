"""What this machine has seen of a vault's versions, to notice a replayed, deleted or rolled-back version record.

A version record is an authenticated object, but nothing in the store says that it *should* (or should no
longer) exist: whoever can write to the storage can delete one, put back one that `rm` removed, or roll the
whole store back to an older state, and every object still authenticates. borg answers this with a local
record of the newest manifest each client has seen; vault keeps, per vault and per machine, the names of the
version records it saw when its last command ended (``seen``) and of those it saw disappear (``gone``,
whoever removed them). Record names are 32 random bytes, unique for the life of a vault, so at the start of
each command:

- a name in ``gone`` that is back is a **replay**: the record was removed and has been put back (`check`
  fails on it, exit 20; other commands warn);
- a name in ``seen`` that is missing was removed by someone else than this machine: **another machine's**
  `rm`, `forget` or `rekey`, or a **deletion or rollback** of the storage. With one machine that can only be
  the latter; with several, compare `vault log` on each. Commands warn once; `check` notes it.

This machine's own removals (`rm`, `forget`, `repair`, `rekey --reencrypt`) are taken in at the end of the
command that made them. The file (``user_state_path("vault") / "witness" / <hash of vault id>.json``, 0600)
holds only record names, never item names. A machine that has not seen a state can't tell it was changed,
and anyone who can edit this file can silence it: that is the same limit as borg's.

Like the operation log, none of this ever fails a command: an unreadable or corrupt file starts afresh.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from vault.oplog import ensure_private_dir
from vault.storage.base import Backend, Kind

log = logging.getLogger(__name__)

MAX_GONE = 200_000  # names of removed records remembered (oldest forgotten first): ~13 MiB at most
MAX_FILE = 64 * 1024 * 1024


def default_dir() -> Path:
    return platformdirs.user_state_path("vault") / "witness"


@dataclass
class Findings:
    replayed: list[str] = field(default_factory=list)  # record names removed earlier and back now
    vanished: list[str] = field(default_factory=list)  # record names seen here and gone, not removed here

    def messages(self) -> list[str]:
        out = []
        if self.replayed:
            out.append(
                f"{len(self.replayed)} version record(s) that were removed earlier are back (first: "
                f"versions/{self.replayed[0][:10]}): the storage replayed them; `vault check` names the versions"
            )
        if self.vanished:
            out.append(
                f"{len(self.vanished)} version(s) that this machine saw are gone and it did not remove them: "
                "another machine's rm, forget or rekey, or the storage was rolled back or altered (compare "
                "`vault log` on each machine)"
            )
        return out


class Witness:
    """The record names one machine remembers for one vault. Not thread-safe; one per command."""

    def __init__(self, vault_id: bytes, directory: Path | None = None) -> None:
        self.path = (directory or default_dir()) / f"{hashlib.sha256(vault_id).hexdigest()[:32]}.json"
        self._start: set[str] | None = None

    def _load(self) -> tuple[set[str], list[str]]:
        try:
            if self.path.stat().st_size > MAX_FILE:
                return set(), []
            doc = json.loads(self.path.read_bytes())
            seen, gone = doc["seen"], doc["gone"]
            if doc.get("v") != 1 or not all(isinstance(x, str) for x in [*seen, *gone]):
                return set(), []
            return set(seen), list(gone)
        except (OSError, ValueError, KeyError, TypeError):
            return set(), []

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialize this user's commands on one vault while they read and rewrite the file."""
        ensure_private_dir(self.path.parent)
        fd = os.open(str(self.path) + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _save(self, seen: set[str], gone: list[str]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        data = json.dumps({"v": 1, "seen": sorted(seen), "gone": gone[-MAX_GONE:]}).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)

    def start(self, backend: Backend) -> Findings:
        """Compare the store's record names with what this machine saw last. Never raises."""
        try:
            names = {info.handle.name for info in backend.list(Kind.VERSIONS)}
            with self._locked():
                seen, gone = self._load()
                findings = Findings(sorted(names & set(gone)), sorted(seen - names))
                if findings.vanished:  # reported once; a later return of one of them is a replay
                    gone.extend(findings.vanished)
                    self._save(seen - set(findings.vanished), gone)
            self._start = names
            return findings
        except Exception:  # a witness must never fail a command
            log.debug("witness: could not compare with %s", self.path, exc_info=True)
            return Findings()

    def finish(self, backend: Backend) -> None:
        """Take in the store's record names as this command leaves them: what it removed becomes ``gone``,
        what it (or anyone) added becomes ``seen``. Never raises."""
        if self._start is None:
            return
        try:
            with self._locked():
                # Listed under the file lock, and only this command's own view counts as removed: another
                # command of this user may have added records (to ``seen``) since this one started.
                names = {info.handle.name for info in backend.list(Kind.VERSIONS)}
                seen, gone = self._load()
                known_gone = set(gone)
                gone.extend(sorted(n for n in self._start - names if n not in known_gone))
                # A replayed name stays in `gone` (and is reported again) until it is removed again.
                self._save((seen | names) - set(gone), gone)
        except Exception:
            log.debug("witness: could not update %s", self.path, exc_info=True)

    def removing(self, names: list[str]) -> None:
        """Called before this command deletes version records: they are ``gone`` already, so a command killed
        half way is not taken for a rollback by the next one. Never raises."""
        try:
            with self._locked():
                seen, gone = self._load()
                known_gone = set(gone)
                gone.extend(n for n in names if n not in known_gone)
                self._save(seen - set(names), gone)
        except Exception:
            log.debug("witness: could not update %s", self.path, exc_info=True)
