"""What this machine has seen of a vault's versions, to notice a replayed, deleted or rolled-back version record.

A version record is an authenticated object, but nothing in the store says that it *should* (or should no
longer) exist: whoever can write to the storage can delete one, put back one that `rm` removed, or roll the
whole store back to an older state, and every object still authenticates. borg answers this with a local
record of the newest manifest each client has seen; vault keeps, per vault and per machine, the ids of the
version records it saw when its last command ended (``seen``) and of those it knows were removed (``removed``).
Record ids are 32 random bytes, unique for the life of a vault, taken only from records that authenticated
(the catalog hands them over), never from a listing of the storage. At the start of each command:

- an id this machine *confirmed* removed that is back is a **replay**: the record was removed and has been put
  back (`check` fails on it, exit 20; other commands warn);
- an id in ``seen`` that is missing was removed by someone else than this machine: **another machine's** `rm`,
  `forget` or `rekey`, or a **deletion or rollback** of the storage. Commands warn once; `check` notes it. Its
  return later is a replay.

This machine's own removals go in two steps. Before a record is deleted its id is written down as an
**intent**; once it is gone, the intent is **confirmed**. A command killed in between leaves intents: an intent
whose record is still there is an interrupted removal, never a replay; the next command that holds the vault's
exclusive lock (or `repair`, or the same command run again) finishes it before anything is judged
(:attr:`Findings.pending`); an intent whose record is gone is simply confirmed. A record that is being
*replaced* (written again with a change, under a new id) names its replacement in the intent, written before
the replacement is: if the replacement never made it, the intent is dropped and the record stays. Nothing is
ever evicted: an id this machine removed stays remembered for the life of the file (a few dozen bytes per
removed version), so no flood of planted records can push a real removal out.

The file (``user_state_path("vault") / "witness" / <hash of vault id>.sqlite``, 0600, in a 0700 directory)
holds only record ids, never item names. A machine that has not seen a state can't tell it was changed, and
anyone who can edit this file can silence it: that is the same limit as borg's. The witness never fails a
command: a file it can't read or write is reported as a warning (the check could not be made), not as silence.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from vault.oplog import ensure_private_dir

log = logging.getLogger(__name__)

_INTENT, _CONFIRMED = 0, 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS removed (id TEXT PRIMARY KEY, state INTEGER NOT NULL, replacement TEXT NOT NULL)
    WITHOUT ROWID;
"""


def default_dir() -> Path:
    return platformdirs.user_state_path("vault") / "witness"


@dataclass
class Findings:
    replayed: list[str] = field(default_factory=list)  # ids this machine removed and that are back
    vanished: list[str] = field(default_factory=list)  # ids seen here and gone, not removed here
    pending: list[str] = field(default_factory=list)  # removals this machine began and did not finish
    unusable: str = ""  # why the witness could not compare this time (its file can't be read or written)

    def messages(self) -> list[str]:
        out = []
        if self.replayed:
            out.append(
                f"{len(self.replayed)} version record(s) that were removed earlier are back (first: "
                f"{self.replayed[0][:10]}): the storage replayed them; `vault check` names the versions"
            )
        if self.vanished:
            out.append(
                f"{len(self.vanished)} version(s) that this machine saw are gone and it did not remove them: "
                "another machine's rm, forget or rekey, or the storage was rolled back or altered (compare "
                "`vault log` on each machine)"
            )
        if self.unusable:
            out.append(f"replays and deletions of version records can't be noticed this time: {self.unusable}")
        return out


class Witness:
    """The record ids one machine remembers for one vault. One per command; not thread-safe."""

    def __init__(self, vault_id: bytes, directory: Path | None = None) -> None:
        self.path = (directory or default_dir()) / f"{hashlib.sha256(vault_id).hexdigest()[:32]}.sqlite"
        self._started = False

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """The file, opened for one transaction (``BEGIN IMMEDIATE``: this user's commands on one vault take turns
        while they read and rewrite it)."""
        ensure_private_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        os.close(fd)
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=60)
        try:
            # A rollback journal that is truncated, not deleted, after each transaction: the witness makes no
            # unlink of its own, so a removal can be pinned to exactly the records' deletions (the kill trials).
            conn.execute("PRAGMA journal_mode = TRUNCATE")
            conn.execute("PRAGMA temp_store = MEMORY")  # the comparison's table: no temporary file either
            conn.executescript(_SCHEMA)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(removed)")}
            if "replacement" not in columns:  # a file written before replacements were recorded
                conn.execute("ALTER TABLE removed ADD COLUMN replacement TEXT NOT NULL DEFAULT ''")
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        finally:
            conn.close()

    def start(self, current: Iterable[str]) -> Findings:
        """Compare the vault's record ids (authenticated, from the catalog) with what this machine remembers.
        Intents whose records are gone are confirmed; those still there are reported as ``pending``. Never
        raises. The comparison runs in SQL (the ids go into a temporary table), so no set of every id this
        machine saw or removed is held in Python."""
        try:
            with self._db() as db:
                _take_current(db, current)
                # An intent to replace a record whose replacement never made it is dropped: the record stays.
                db.execute("DELETE FROM removed WHERE state = ? AND replacement != '' "
                           "AND replacement NOT IN (SELECT id FROM temp.cur)", (_INTENT,))
                in_vault = "SELECT r.id FROM removed r JOIN temp.cur c ON c.id = r.id WHERE r.state = ? ORDER BY r.id"
                findings = Findings(
                    replayed=[r[0] for r in db.execute(in_vault, (_CONFIRMED,))],
                    vanished=[r[0] for r in db.execute(
                        "SELECT s.id FROM seen s WHERE s.id NOT IN (SELECT id FROM temp.cur) "
                        "AND s.id NOT IN (SELECT id FROM removed) ORDER BY s.id")],
                    pending=[r[0] for r in db.execute(in_vault, (_INTENT,))],
                )
                db.execute("UPDATE removed SET state = ? WHERE state = ? AND id NOT IN (SELECT id FROM temp.cur)",
                           (_CONFIRMED, _INTENT))
                # Reported once; a later return of one of them is a replay.
                db.executemany("INSERT OR REPLACE INTO removed (id, state, replacement) VALUES (?, 1, '')",
                               [(i,) for i in findings.vanished])
                db.executemany("DELETE FROM seen WHERE id = ?", [(i,) for i in findings.vanished])
            self._started = True
            return findings
        except (OSError, sqlite3.Error) as exc:
            log.debug("witness: could not compare with %s", self.path, exc_info=True)
            return Findings(unusable=f"{self.path}: {getattr(exc, 'strerror', None) or exc}")

    def removing(self, record_ids: list[str], replaced_by: dict[str, str] | None = None) -> None:
        """Called before this machine deletes version records (or writes their replacements, named in
        ``replaced_by``): they are intents now. Never raises."""
        new = replaced_by or {}
        self._mark([(i, _INTENT, new.get(i, "")) for i in record_ids], "INSERT OR IGNORE")

    def removed(self, record_ids: list[str]) -> None:
        """Called once the records are gone: their removal is confirmed. Never raises."""
        self._mark([(i, _CONFIRMED, "") for i in record_ids], "INSERT OR REPLACE")

    def _mark(self, rows: list[tuple[str, int, str]], verb: str) -> None:
        try:
            with self._db() as db:
                db.executemany(f"{verb} INTO removed (id, state, replacement) VALUES (?, ?, ?)", rows)
                db.executemany("DELETE FROM seen WHERE id = ?", [(i,) for i, _, _ in rows])
        except (OSError, sqlite3.Error):
            log.debug("witness: could not update %s", self.path, exc_info=True)

    def finish(self, current: Iterable[str]) -> None:
        """Take in the record ids as this command leaves them (from the catalog as it knows them: its own
        changes and what it read). Never raises."""
        if not self._started:
            return
        try:
            with self._db() as db:
                _take_current(db, current)
                # A replayed id stays in `removed` (and is reported again) until it is removed again.
                db.execute("INSERT OR IGNORE INTO seen (id) SELECT id FROM temp.cur "
                           "WHERE id NOT IN (SELECT id FROM removed)")
        except (OSError, sqlite3.Error):
            log.debug("witness: could not update %s", self.path, exc_info=True)


_BATCH = 10_000


def _take_current(db: sqlite3.Connection, current: Iterable[str]) -> None:
    """The vault's record ids into the connection's temporary table ``cur``, in batches (a stream is fine)."""
    db.execute("CREATE TEMP TABLE IF NOT EXISTS cur (id TEXT PRIMARY KEY) WITHOUT ROWID")
    db.execute("DELETE FROM temp.cur")
    batch: list[tuple[str]] = []
    for record_id in current:
        batch.append((record_id,))
        if len(batch) >= _BATCH:
            db.executemany("INSERT OR IGNORE INTO temp.cur (id) VALUES (?)", batch)
            batch = []
    db.executemany("INSERT OR IGNORE INTO temp.cur (id) VALUES (?)", batch)
