"""A write-only key's local record: what this machine stored under that key, so that its puts stay incremental.

A write-only key can read nothing in the vault: no index (to deduplicate against) and no version record or tree
(to find the files that did not change since the last put). What it needs of both it wrote itself, so it keeps it
here, on the machine that runs it, as it writes:

- ``blobs``: the id of every blob it stored, and the pack that holds it, taken in once the pack is indexed (its
  checkpoint object is durable). A blob counts as stored only while its pack is still in the storage: each put
  lists ``data/`` once, under its shared lock, and forgets the packs that are gone (a full key's `prune` deleted or
  repacked them). A pack that exists is listed in full by some index object (prune keeps every entry of the packs
  it keeps), so a blob found here is one the vault still has and indexes.
- ``trees``, ``items``: the trees of the latest version this machine put of each item, and each item's root, so the
  next put compares every file's size, mtime, inode and ctime with them and reuses the chunks of unchanged files
  without reading them (restic's parent-snapshot rule, as a full key's put does with the catalog).

It lives beside the cache: ``<cache dir>/<sha256(vault id)[:32]>/write-only-<id>.sqlite`` (0700/0600), one file per
write-only key (``id`` derives from the key's local secret); with ``--no-cache`` a private temporary database, and
puts are then not incremental. Its keys derive from the key's local secret (WriteOnlyKeyring.local_key): nobody else,
not even a full key, reads it. Never trusted: blob rows carry a keyed MAC over (blob id, pack), trees and items are
sealed (AES-GCM, bound to their tree id or item tag), and the file is bound to its vault and key; a row that fails
is ignored, a file that is not this key's is replaced. Deleting it at any time costs one full put, never data.

What it reveals to whoever holds the write-only password and the file: the names, sizes and times of the files
this machine last stored (which are on this machine anyway), and which chunks it stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import blake3
import zstandard

from vault import format as fmt
from vault.cache.db import connect_file, opening, private_dir, remove_db_files
from vault.crypto.aead import Aead
from vault.crypto.write_only import WriteOnlyKeyring
from vault.errors import IntegrityError, StorageError
from vault.storage.base import Handle

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_MAC_SIZE = 16
_SQL_BATCH = 500
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blobs (tag BLOB PRIMARY KEY, pack_id BLOB NOT NULL, mac BLOB NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blobs_by_pack ON blobs(pack_id);
CREATE TABLE IF NOT EXISTS trees (tree_id BLOB PRIMARY KEY, sealed BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tree_uses (put INTEGER NOT NULL, tree_id BLOB NOT NULL, PRIMARY KEY (put, tree_id))
    WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tree_uses_by_tree ON tree_uses(tree_id);
CREATE TABLE IF NOT EXISTS items (tag BLOB PRIMARY KEY, put INTEGER NOT NULL, sealed BLOB NOT NULL) WITHOUT ROWID;
"""


class LocalRecord:
    """The local record of one write-only key on this machine (see the module docstring). Thread-safe: one SQLite
    connection under a lock. It answers the index questions a put asks (``in``, :meth:`missing`), takes in the
    packs the put indexes (:meth:`add_object`), and keeps trees and item roots for the next put."""

    def __init__(self, conn: sqlite3.Connection, path: Path | None, key: WriteOnlyKeyring) -> None:
        self._conn = conn
        self.path = path
        self._lock = threading.RLock()
        self._mac_key = key.local_key(b"mac")
        self._seal = Aead(key.local_key(b"seal"))
        self._put = 0

    # -- opening ---------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, root: Path | None, key: WriteOnlyKeyring) -> LocalRecord:
        """The record of ``key`` under ``root`` (the cache directory; None: a private temporary database). A file
        that is not this key's (another vault or key, another schema, damage SQLite notices) is started afresh.
        StorageError when it can't be made or written."""
        binding = blake3.blake3(b"binding\0" + str(SCHEMA_VERSION).encode() + key.vault_id,
                                key=key.local_key(b"mac")).digest()
        path = None
        try:
            if root is not None:
                directory = root / hashlib.sha256(key.vault_id).hexdigest()[:32]
                private_dir(directory)
                path = directory / f"write-only-{key.local_id}.sqlite"
            # Checked and replaced one process at a time, under the cache directory's open lock (vault.cache.db).
            with contextlib.nullcontext() if path is None else opening(path.parent):
                conn = _connect(path)
                if not _bound(conn, binding):
                    conn.close()
                    if path is not None:
                        log.info("the local record %s is not this key's (or is damaged): starting it afresh", path)
                        remove_db_files(path)
                    conn = _connect(path)
                    conn.executescript(_SCHEMA)
                    with _transaction(conn):
                        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('binding', ?)", (binding,))
            return cls(conn, path, key)
        except (OSError, sqlite3.Error) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise StorageError(f"cannot use the write-only key's local record {path}: {reason}",
                               hint="delete it, or run with --no-cache (the put is then not incremental)") from None

    def close(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._conn.close()

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StorageError(f"the write-only key's local record is unusable: {exc}",
                                   hint="delete it; the next put reads every file again") from None

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                with _transaction(self._conn) as conn:
                    yield conn
            except sqlite3.Error as exc:
                raise StorageError(f"the write-only key's local record is unusable: {exc}",
                                   hint="delete it; the next put reads every file again") from None

    # -- blobs -----------------------------------------------------------------------------------------------
    def _tag(self, blob_id: bytes) -> bytes:
        return blake3.blake3(b"blob\0" + blob_id, key=self._mac_key).digest(_MAC_SIZE)

    def _row_mac(self, blob_id: bytes, pack_id: bytes) -> bytes:
        return blake3.blake3(b"row\0" + blob_id + pack_id, key=self._mac_key).digest(_MAC_SIZE)

    def keep_packs(self, present: Iterable[str]) -> int:
        """Forget every blob whose pack is not among ``present`` (a listing of ``data/`` taken under the put's
        lock). Returns how many blob rows were forgotten."""
        with self._write() as conn:
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS present (pack_id BLOB PRIMARY KEY) WITHOUT ROWID")
            conn.execute("DELETE FROM temp.present")
            batch: list[tuple[bytes]] = []
            for name in present:
                batch.append((bytes.fromhex(name),))
                if len(batch) >= 5000:
                    conn.executemany("INSERT OR IGNORE INTO temp.present VALUES (?)", batch)
                    batch.clear()
            conn.executemany("INSERT OR IGNORE INTO temp.present VALUES (?)", batch)
            gone = conn.execute(
                "DELETE FROM blobs WHERE pack_id NOT IN (SELECT pack_id FROM temp.present)").rowcount
            conn.execute("DELETE FROM temp.present")
        return int(gone)

    def __contains__(self, blob_id: object) -> bool:
        return isinstance(blob_id, bytes) and not self.missing([blob_id])

    def missing(self, blob_ids: Iterable[bytes], trusted_only: bool = False) -> set[bytes]:
        """The ids among ``blob_ids`` that this key has not stored, or whose pack is gone (one query per 500).
        (``trusted_only``: the BlobIndex signature; what this key stored itself is all it ever trusts.)"""
        wanted = list(dict.fromkeys(blob_ids))
        found: set[bytes] = set()
        for i in range(0, len(wanted), _SQL_BATCH):
            batch = wanted[i : i + _SQL_BATCH]
            by_tag = {self._tag(b): b for b in batch}
            marks = ",".join("?" * len(by_tag))
            rows = self._query(f"SELECT tag, pack_id, mac FROM blobs WHERE tag IN ({marks})",  # noqa: S608
                               list(by_tag))
            for tag, pack_id, mac in rows:
                blob_id = by_tag.get(bytes(tag))
                if blob_id is not None and hmac.compare_digest(self._row_mac(blob_id, bytes(pack_id)), bytes(mac)):
                    found.add(blob_id)
        return set(wanted) - found

    def add_object(self, name: str, checkpoint: bool, packs: Sequence[fmt.IndexedPack], tag: str = "") -> None:
        """Take in the packs an index object (a checkpoint, or the merged one) just made durable: their blobs
        count as stored from now on. The same interface as the cache's BlobIndex, which a full key's put uses."""
        rows = [(self._tag(e.blob_id), p.pack_id, self._row_mac(e.blob_id, p.pack_id))
                for p in packs for e in p.entries]
        with self._write() as conn:
            conn.executemany("INSERT OR REPLACE INTO blobs (tag, pack_id, mac) VALUES (?, ?, ?)", rows)

    def drop_objects(self, names: Iterable[str]) -> None:
        """Index objects this put retired (its checkpoints, folded into its merged object): nothing to forget,
        the merged object lists the same packs."""

    @property
    def checkpoints(self) -> list[tuple[Handle, list[fmt.IndexedPack]]]:
        """A write-only key can't read other puts' checkpoints, so it never adopts them (a full key's next put
        does)."""
        return []

    # -- trees and items -------------------------------------------------------------------------------------
    def begin_put(self) -> None:
        """Number this put: the trees it uses are kept while an item's latest version needs them."""
        row = self._query("SELECT max(put) FROM (SELECT put FROM items UNION ALL SELECT put FROM tree_uses)")
        self._put = int(row[0][0] or 0) + 1

    def remember_tree(self, tree_id: bytes, plain: bytes) -> None:
        """A tree this put stored or reused (its encoding): kept for the next put of the item."""
        sealed = self._seal.seal(zstandard.ZstdCompressor(level=3).compress(plain), b"tree\0" + tree_id)
        with self._write() as conn:
            conn.execute("INSERT OR IGNORE INTO trees (tree_id, sealed) VALUES (?, ?)", (tree_id, sealed))
            conn.execute("INSERT OR IGNORE INTO tree_uses (put, tree_id) VALUES (?, ?)", (self._put, tree_id))

    def load_tree(self, tree_id: bytes) -> bytes:
        """The encoding of a tree this key stored. IntegrityError when it is not here or fails authentication
        (the caller then reads the files again)."""
        rows = self._query("SELECT sealed FROM trees WHERE tree_id = ?", (tree_id,))
        if not rows:
            raise IntegrityError(f"tree {tree_id.hex()[:10]} is not in the write-only key's local record")
        body = self._seal.open(bytes(rows[0][0]), b"tree\0" + tree_id, "a tree in the local record")
        try:
            return zstandard.ZstdDecompressor().decompress(body, max_output_size=fmt.MAX_BLOB_RAW)
        except zstandard.ZstdError as exc:
            raise IntegrityError("a tree in the local record does not decompress") from exc

    def _item_tag(self, item: str) -> bytes:
        return blake3.blake3(b"item\0" + item.encode("utf-8", "surrogateescape"), key=self._mac_key).digest(16)

    def latest(self, item: str) -> tuple[bytes, str] | None:
        """(root tree id, type) of the latest version of ``item`` this machine put under this key, or None."""
        tag = self._item_tag(item)
        rows = self._query("SELECT sealed FROM items WHERE tag = ?", (tag,))
        if not rows:
            return None
        try:
            doc = fmt.decode_json_object(self._seal.open(bytes(rows[0][0]), b"item\0" + tag, "an item"), "an item")
            tree, kind = fmt.id_from_hex(doc.get("tree"), "an item"), doc.get("type")
        except IntegrityError:
            log.info("an item of the local record fails its checks; its files are read again")
            return None
        if doc.get("item") != item or kind not in ("file", "dir"):
            return None
        return tree, str(kind)

    def commit(self, items: Sequence[tuple[str, bytes, str]]) -> None:
        """``(item, root tree id, type)`` of the versions this put committed: the next put of each compares with
        them. Trees no item's latest version uses any more are forgotten."""
        with self._write() as conn:
            for item, tree, kind in items:
                tag = self._item_tag(item)
                doc = fmt.encode_json({"item": item, "tree": tree.hex(), "type": kind})
                conn.execute("INSERT OR REPLACE INTO items (tag, put, sealed) VALUES (?, ?, ?)",
                             (tag, self._put, self._seal.seal(doc, b"item\0" + tag)))
            # Earlier puts that no item's latest version comes from (a later put of theirs replaced it, or they
            # died before committing); a put still running has a higher number and keeps its trees.
            conn.execute("DELETE FROM tree_uses WHERE put < ? AND put NOT IN (SELECT put FROM items)", (self._put,))
            conn.execute("DELETE FROM trees WHERE tree_id NOT IN (SELECT tree_id FROM tree_uses)")


# -- SQLite, private to its owner -----------------------------------------------------------------------------
@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _connect(path: Path | None) -> sqlite3.Connection:
    if path is None:
        conn = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        conn.executescript(_SCHEMA)
        return conn
    return connect_file(path)  # 0600, this user's, WAL: as the metadata cache beside it


def _bound(conn: sqlite3.Connection, binding: bytes) -> bool:
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'binding'").fetchone()
    except sqlite3.Error:
        return False
    return row is not None and isinstance(row[0], bytes) and hmac.compare_digest(row[0], binding)
