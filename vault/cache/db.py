"""The local cache's database: one SQLite file per vault and key generation, private to its owner, never trusted.

Where: ``VAULT_CACHE_DIR`` or the per-user cache directory (``~/.cache/vault``), then ``<sha256(vault id)[:32]>/
cache.sqlite``; the directory is 0700 and the files 0600. With ``--no-cache`` the same tables live in a private
temporary SQLite database (spilled to a deleted temporary file), so both paths run the same code.

What makes it safe to keep and safe to lose:

- It holds only what the storage holds, re-encoded for fast queries: blob locations (blob ids are keyed hashes,
  as in the storage) and version records sealed under a key derived from the vault's master key. Item names,
  file names and contents never appear in it unencrypted. What it shows beyond the storage: which version
  records belong to the same item (a keyed tag of the name), their numbers, and whether a version is marked
  damaged.
- Every row that could mislead is authenticated on the way out: blob locations carry a keyed MAC over the index
  object, pack and entry they came from; version records are AEAD-sealed and bound to their record id and
  object. The file itself is bound to its vault and key: a ``binding`` MAC in ``meta`` that only the right key
  reproduces. A cache of another vault, of an older key, of another schema, or one SQLite can't read is deleted
  and rebuilt from the storage, never used.
- What the storage holds is decided by listing it at every command: rows of objects that are gone are dropped,
  objects that are new are fetched. So a cache that lost rows, or was rolled back, heals itself; deleting it
  costs one rebuild. Each object is taken in in one transaction (all its rows or none), so a process killed
  mid-rebuild leaves a cache that the next command completes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import platformdirs

from vault.errors import StorageError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
DB_NAME = "cache.sqlite"
OPEN_LOCK_NAME = "open.lock"  # flock'ed while a process checks, creates or replaces the database
_BUSY_TIMEOUT_MS = 120_000  # another command of this user may hold the write lock while it syncs a big vault
_PAGE_CACHE_KIB = 32 * 1024  # SQLite's own page cache; the rest is the kernel's page cache, not our RSS

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS index_objects (
    id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, checkpoint INTEGER NOT NULL, entries INTEGER NOT NULL,
    tag TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS packs (
    id INTEGER PRIMARY KEY, obj INTEGER NOT NULL, pack_id BLOB NOT NULL, generation INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS packs_by_obj ON packs(obj);
CREATE INDEX IF NOT EXISTS packs_by_id ON packs(pack_id);
CREATE TABLE IF NOT EXISTS blobs (
    pack INTEGER NOT NULL, offset INTEGER NOT NULL, blob_id BLOB NOT NULL, type INTEGER NOT NULL,
    flags INTEGER NOT NULL, length INTEGER NOT NULL, raw_length INTEGER NOT NULL, mac BLOB NOT NULL,
    PRIMARY KEY (pack, offset)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blobs_by_id ON blobs(blob_id);

CREATE TABLE IF NOT EXISTS catalog_objects (
    id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, kind INTEGER NOT NULL, generation INTEGER NOT NULL,
    tag TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    obj INTEGER NOT NULL, record_id TEXT NOT NULL, item_tag BLOB NOT NULL, version INTEGER NOT NULL,
    damaged INTEGER NOT NULL, sealed BLOB NOT NULL, mac BLOB NOT NULL, PRIMARY KEY (obj, record_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_by_item ON records(item_tag, version);
CREATE INDEX IF NOT EXISTS records_by_id ON records(record_id);
"""


def default_root() -> Path:
    """The per-user cache directory (``~/.cache/vault`` on Linux)."""
    return platformdirs.user_cache_path("vault")


class CacheDB:
    """One SQLite connection, shared by the threads of one command under a lock (SQLite releases the GIL while
    it works). Several commands of one user may have the same file open: SQLite's WAL mode and its busy
    timeout serialize their writes; reads never wait."""

    def __init__(self, conn: sqlite3.Connection, path: Path | None, binding: bytes) -> None:
        self._conn = conn
        self.path = path  # None: a private temporary database
        self._binding = binding
        self.lock = threading.RLock()

    def reset(self) -> None:
        """Start afresh: an empty database in place of this one (when SQLite itself can't read it any more).
        Threads holding this object simply go on with the new connection. StorageError."""
        with self.lock:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            try:
                if self.path is None:
                    self._conn = _configure(sqlite3.connect("", isolation_level=None, check_same_thread=False))
                    _initialize(self._conn, self._binding)
                else:
                    with opening(self.path.parent):
                        remove_db_files(self.path)
                        self._conn = connect_file(self.path)
                        _initialize(self._conn, self._binding)
            except (OSError, sqlite3.Error) as exc:
                raise StorageError(f"cannot make a new cache in {self.path}: {exc}",
                                   hint="delete it, or run with --no-cache") from None

    # -- opening -------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, root: Path | None, vault_id: bytes, binding: bytes) -> CacheDB:
        """The cache of vault ``vault_id`` under ``root``, or with None a private temporary database that SQLite
        deletes when it is closed or the process ends (``--no-cache``). ``binding`` is a MAC that only the
        vault's key reproduces; a file without exactly that binding (another vault or key, an older schema,
        damage SQLite notices) is replaced by an empty one. StorageError when the directory or file can't be
        made or written."""
        directory = None if root is None else root / hashlib.sha256(vault_id).hexdigest()[:32]
        try:
            if directory is None:
                conn = _configure(sqlite3.connect("", isolation_level=None, check_same_thread=False))
                _initialize(conn, binding)
                return cls(conn, None, binding)
            private_dir(directory)
            path = directory / DB_NAME
            # Two commands of this user starting at once on a new (or replaced) cache would otherwise both find
            # it unbound, and one would delete the file the other is initializing: checking, creating and
            # replacing happen one process at a time. Using an open database needs no such lock (SQLite's own).
            with opening(directory):
                conn = connect_file(path)
                if not _bound(conn, binding):
                    conn.close()
                    log.info("the cache in %s is not this vault's (or is damaged): starting it afresh", directory)
                    remove_db_files(path)
                    conn = connect_file(path)
                    _initialize(conn, binding)
            return cls(conn, path, binding)
        except (OSError, sqlite3.Error) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise StorageError(f"cannot use the cache in {directory}: {reason}",
                               hint="delete it, or run with --no-cache") from None

    def close(self) -> None:
        with self.lock, contextlib.suppress(sqlite3.Error):
            self._conn.close()

    # -- queries -------------------------------------------------------------------------------------------
    def query(self, sql: str, params: tuple[object, ...] | list[object] = ()) -> list[tuple[Any, ...]]:
        """All rows of one read. Raises CacheDamaged for anything SQLite reports."""
        with self.lock, _translated():
            return self._conn.execute(sql, params).fetchall()

    def one(self, sql: str, params: tuple[object, ...] | list[object] = ()) -> tuple[Any, ...] | None:
        with self.lock, _translated():
            row: tuple[Any, ...] | None = self._conn.execute(sql, params).fetchone()
            return row

    def rows(self, sql: str, params: tuple[object, ...] = (), batch: int = 10_000) -> Iterator[tuple[Any, ...]]:
        """Stream a big result in batches (bounded memory). The lock is taken per batch, so a long iteration
        does not stall the pool's lookups; the statement runs on a cursor of its own."""
        with self.lock, _translated():
            cursor = self._conn.cursor()
            cursor.execute(sql, params)
        try:
            while True:
                with self.lock, _translated():
                    chunk = cursor.fetchmany(batch)
                if not chunk:
                    return
                yield from chunk
        finally:
            with self.lock, contextlib.suppress(sqlite3.Error):
                cursor.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back on any exception), holding the connection's lock: the
        rows of one object go in together or not at all, whoever kills the process."""
        with self.lock, _translated():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def get_meta(self, key: str) -> bytes | None:
        row = self.one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else bytes(row[0])

    def set_meta(self, conn: sqlite3.Connection, key: str, value: bytes) -> None:
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


class CacheDamaged(StorageError):
    """The cache failed its own checks, or SQLite reported an error (a damaged or vanished file). Where the
    cache's user can, it rebuilds from the storage; where one escapes, it is an I/O failure of the cache (exit
    30, with a hint to delete it or use --no-cache)."""

    def __init__(self, message: str) -> None:
        super().__init__(f"the local cache is unusable: {message}", hint="delete it, or run with --no-cache")


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise CacheDamaged(str(exc)) from exc


def private_dir(directory: Path) -> None:
    """Make the directory (and missing parents) 0700; refuse one that is a link or that another user owns."""
    from vault.oplog import ensure_private_dir

    ensure_private_dir(directory)
    st = os.lstat(directory)
    if not os.path.isdir(directory) or os.path.islink(directory) or st.st_uid != os.getuid():
        raise OSError(0, "not a private directory of this user")
    if st.st_mode & 0o077:
        os.chmod(directory, 0o700)


def connect_file(path: Path) -> sqlite3.Connection:
    # Created 0600 before SQLite opens it: SQLite gives its -wal and -shm files the database file's mode.
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        st = os.fstat(fd)
        if st.st_uid != os.getuid():
            raise OSError(0, "the cache file belongs to another user")
        if st.st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=_BUSY_TIMEOUT_MS / 1000)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")  # a lost last transaction is refetched; never a torn one
        return _configure(conn)
    except sqlite3.Error:
        conn.close()
        raise


def _configure(conn: sqlite3.Connection) -> sqlite3.Connection:
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    conn.execute(f"PRAGMA cache_size = -{_PAGE_CACHE_KIB}")
    conn.execute("PRAGMA temp_store = FILE")  # big sorts (prune, check) spill to disk, not to memory
    return conn


def _bound(conn: sqlite3.Connection, binding: bytes) -> bool:
    """True when the file is a cache of this schema, vault and key. Any SQLite error counts as no."""
    try:
        rows = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('schema', 'binding')").fetchall())
    except sqlite3.Error:
        return False
    schema, stored = rows.get("schema"), rows.get("binding")
    return (
        schema == str(SCHEMA_VERSION).encode()
        and isinstance(stored, bytes)
        and hmac.compare_digest(stored, binding)
    )


def _initialize(conn: sqlite3.Connection, binding: bytes) -> None:
    conn.executescript(_SCHEMA)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION).encode(),))
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('binding', ?)", (binding,))
    conn.execute("COMMIT")


@contextlib.contextmanager
def opening(directory: Path) -> Iterator[None]:
    """Hold the cache directory's open lock (an exclusive flock, released when the process dies). OSError."""
    fd = os.open(directory / OPEN_LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


def remove_db_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")
