"""The catalog in the cache: every version record the storage holds, sealed, queryable by item without reading
every record.

A row is one record as found in one catalog object (a loose record object, or a segment of many): its record id,
a keyed tag of its item name (so the rows of one item are found without the name in clear), its version number,
whether it is marked damaged, and the record itself sealed with AES-GCM under a key of the cache (bound to the
record id and object). A MAC covers the clear columns. Nothing read from the table is used before it is
authenticated: the MAC for the clear columns, the AEAD for the record, and the record must say what the clear
columns say. A count of the rows, MAC'd, is kept in ``meta`` and checked when the catalog is brought up to date,
so rows deleted behind our back are noticed too; any mismatch raises :class:`CacheDamaged`, and the caller
rebuilds the catalog from the storage.
"""

from __future__ import annotations

import hmac
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import blake3

from vault.cache.db import CacheDamaged, CacheDB
from vault.cache.listing import Held
from vault.crypto.aead import Aead
from vault.errors import IntegrityError

MAC_SIZE = 16
TAG_SIZE = 16
_COUNT = struct.Struct("<Q")
_SELECT = (
    "SELECT o.name, o.kind, o.generation, r.record_id, r.item_tag, r.version, r.damaged, r.sealed, r.mac "
    "FROM records r JOIN catalog_objects o ON o.id = r.obj WHERE "
)
_COUNT_SQL = "(SELECT value FROM meta WHERE key = 'records')"
_TOTAL_SQL = (
    "SELECT (SELECT count(*) FROM records r JOIN catalog_objects o ON o.id = r.obj), "
    "(SELECT value FROM meta WHERE key = 'records')"
)
_ROW = struct.Struct("<16sQBBIH")  # item tag, version, damaged, object kind, generation, length of its name
_AAD = b"vault/cache/record"

# What a catalog object is: one loose version record, or a segment of many (docs/format.md).
KIND_RECORD = 1
KIND_SEGMENT = 2


@dataclass(frozen=True, slots=True)
class NewRow:
    """One record to take in: its id, item, number, damaged mark and its plaintext (canonical JSON)."""

    record_id: str
    item: str
    version: int
    damaged: bool
    plain: bytes


@dataclass(frozen=True, slots=True)
class CachedRecord:
    """One authenticated row: where the record lives in the storage, and its plaintext."""

    obj: str
    kind: int
    generation: int
    record_id: str
    version: int
    plain: bytes


@dataclass(frozen=True, slots=True)
class ItemRows:
    """How many versions an item has and its latest record (for `ls`)."""

    count: int
    latest: CachedRecord


class CatalogCache(Held):
    """Rows of ``catalog_objects`` and ``records``. Thread-safe through the database's lock."""

    def __init__(self, db: CacheDB, seal_key: bytes, mac_key: bytes) -> None:
        self.db = db
        self._aead = Aead(seal_key)
        self._mac_key = mac_key

    def tag(self, item: str) -> bytes:
        """The keyed tag of an item name: equal names, equal tags; nothing else learned."""
        return blake3.blake3(b"item\0" + item.encode("utf-8", "surrogateescape"), key=self._mac_key).digest(TAG_SIZE)

    def _mac(self, obj: str, kind: int, generation: int, record_id: str, tag: bytes, version: int,
             damaged: int) -> bytes:
        # Fixed-size fields, then the two hex names with their lengths: no two rows share an encoding. The
        # object's columns are covered too (the row is read joined to them), so an altered object row fails the
        # MAC of every record it holds; one whose id changed holds none, which the row count notices.
        data = (_ROW.pack(tag, version, damaged, kind, generation, len(obj)) + obj.encode("ascii")
                + record_id.encode("ascii"))
        return blake3.blake3(b"row\0" + data, key=self._mac_key).digest(MAC_SIZE)

    def _count_mac(self, count: int) -> bytes:
        return _COUNT.pack(count) + blake3.blake3(b"count\0" + _COUNT.pack(count), key=self._mac_key).digest(MAC_SIZE)

    # -- changes -------------------------------------------------------------------------------------------
    def add_object(self, name: str, kind: int, generation: int, rows: Sequence[NewRow], tag: str = "") -> None:
        """Take in one catalog object (fetched with the listing's ``tag``, or written by this process).
        Idempotent by name."""
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM catalog_objects WHERE name = ?", (name,)).fetchone():
                return
            obj_id = conn.execute(
                "INSERT INTO catalog_objects (name, kind, generation, tag) VALUES (?, ?, ?, ?)",
                (name, kind, generation, tag),
            ).lastrowid
            values = []
            for r in rows:
                item_tag = self.tag(r.item)
                sealed = self._aead.seal(r.plain, _AAD + b"\0" + name.encode() + b"\0" + r.record_id.encode())
                values.append((obj_id, r.record_id, item_tag, r.version, int(r.damaged), sealed,
                               self._mac(name, kind, generation, r.record_id, item_tag, r.version,
                                         int(r.damaged))))
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO records (obj, record_id, item_tag, version, damaged, sealed, mac) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)", values,
            )
            self._adjust_count(conn, conn.total_changes - before)

    def drop_objects(self, names: Iterable[str]) -> None:
        names = list(names)
        if not names:
            return
        with self.db.transaction() as conn:
            removed = 0
            for name in names:
                row = conn.execute("SELECT id FROM catalog_objects WHERE name = ?", (name,)).fetchone()
                if row is None:
                    continue
                removed += conn.execute("DELETE FROM records WHERE obj = ?", (row[0],)).rowcount
                conn.execute("DELETE FROM catalog_objects WHERE id = ?", (row[0],))
            self._adjust_count(conn, -removed)

    def clear(self) -> None:
        """Forget every catalog row (to rebuild from the storage); a database SQLite can't use is replaced."""
        try:
            with self.db.transaction() as conn:
                conn.execute("DELETE FROM records")
                conn.execute("DELETE FROM catalog_objects")
                self.db.set_meta(conn, "records", self._count_mac(0))
        except CacheDamaged:
            self.db.reset()
            with self.db.transaction() as conn:
                self.db.set_meta(conn, "records", self._count_mac(0))

    def _adjust_count(self, conn: object, delta: int) -> None:
        import sqlite3

        assert isinstance(conn, sqlite3.Connection)
        row = conn.execute("SELECT value FROM meta WHERE key = 'records'").fetchone()
        count = self._read_count(row[0] if row else None)
        self.db.set_meta(conn, "records", self._count_mac(count + delta))

    def _read_count(self, value: object) -> int:
        if value is None:
            return 0
        if not isinstance(value, bytes) or len(value) != _COUNT.size + MAC_SIZE or not hmac.compare_digest(
            value, self._count_mac(_COUNT.unpack_from(value)[0])
        ):
            raise CacheDamaged("the cached catalog's row count is altered")
        return int(_COUNT.unpack_from(value)[0])

    def verify_count(self) -> None:
        """Rows deleted (or added) behind the cache's back, or cut off from their object: raises CacheDamaged.
        Counted through the join every query makes, so a row no query would return is not counted."""
        # One statement, so one snapshot: another process adding rows meanwhile can't make the two disagree.
        row = self.db.one(_TOTAL_SQL)
        assert row is not None
        self._check_total(int(row[0]), row[1])

    def _check_total(self, seen: int, stored_count: object) -> None:
        if seen != self._read_count(stored_count):
            raise CacheDamaged("the cached catalog lost or gained rows")

    # -- queries -------------------------------------------------------------------------------------------
    def known_objects(self) -> dict[str, str]:
        """name → listing tag of every catalog object held."""
        return {str(n): str(t) for n, t in self.db.query("SELECT name, tag FROM catalog_objects")}

    def set_tags(self, tags: dict[str, str]) -> None:
        if tags:
            with self.db.transaction() as conn:
                conn.executemany("UPDATE catalog_objects SET tag = ? WHERE name = ?", [(t, n) for n, t in tags.items()])

    def _select(self, where: str, params: tuple[Any, ...] | list[object]) -> str:
        return _SELECT + where  # ``where`` is a constant of this module; values go in as parameters

    def _open(self, row: tuple[Any, ...]) -> CachedRecord:
        obj, kind, generation, record_id, tag, version, damaged, sealed, mac = row
        assert isinstance(obj, str) and isinstance(record_id, str) and isinstance(tag, bytes)
        assert isinstance(sealed, bytes) and isinstance(mac, bytes)
        if not hmac.compare_digest(self._mac(obj, int(kind), int(generation), record_id, tag, int(version),
                                             int(damaged)), mac):
            raise CacheDamaged("a cached version record's columns are altered")
        try:
            plain = self._aead.open(sealed, _AAD + b"\0" + obj.encode() + b"\0" + record_id.encode(), "cache row")
        except IntegrityError as exc:
            raise CacheDamaged("a cached version record is altered") from exc
        return CachedRecord(obj, int(kind), int(generation), record_id, int(version), plain)

    def _check_columns(self, row: tuple[Any, ...]) -> None:
        obj, kind, generation, record_id, tag, version, damaged, _, mac = row
        if not hmac.compare_digest(self._mac(str(obj), int(kind), int(generation), str(record_id), bytes(tag),
                                             int(version), int(damaged)), mac):
            raise CacheDamaged("a cached version record's columns are altered")

    def item_rows(self, item: str) -> list[CachedRecord]:
        """Every row of one item, ordered by version (then record id), each authenticated."""
        sql = self._select("r.item_tag = ?", ()) + " ORDER BY r.version, r.record_id"
        return [self._open(row) for row in self.db.query(sql, (self.tag(item),))]

    def latest(self, item: str, undamaged: bool = False) -> CachedRecord | None:
        where = "r.item_tag = ?" + (" AND r.damaged = 0" if undamaged else "")
        sql = self._select(where, ()) + " ORDER BY r.version DESC, r.record_id LIMIT 1"
        row = self.db.one(sql, (self.tag(item),))
        return None if row is None else self._open(row)

    def max_version(self, item: str) -> int:
        rows = self.db.query(self._select("r.item_tag = ?", ()) + " ORDER BY r.version DESC LIMIT 1",
                             (self.tag(item),))
        for row in rows:
            self._check_columns(row)
            return int(row[5])
        return 0

    def has_item(self, item: str) -> bool:
        return self.db.one("SELECT 1 FROM records WHERE item_tag = ? LIMIT 1", (self.tag(item),)) is not None

    def items(self) -> list[ItemRows]:
        """One entry per item: its number of versions and its latest record. Reads every row's clear columns
        (and checks their MACs) but decrypts only one record per item."""
        latest: dict[bytes, tuple[int, tuple[Any, ...]]] = {}
        counts: dict[bytes, int] = {}
        # Every row, and the MAC'd row count in the same statement (one snapshot): a row some damage hid from
        # the join is noticed, not silently left out of the listing.
        sql = _SELECT.replace("r.sealed", "NULL").replace(" FROM records", f", {_COUNT_SQL} FROM records", 1) + "1"
        stored_count: object = None
        for row in self.db.rows(sql, ()):
            stored_count = row[9]
            self._check_columns(row[:9])
            tag = row[4]
            assert isinstance(tag, bytes)
            counts[tag] = counts.get(tag, 0) + 1
            key = (int(row[5]), str(row[3]))
            best = latest.get(tag)
            if best is None or key > (best[0], str(best[1][3])):
                latest[tag] = (key[0], row)
        if not counts:  # no row came back: the stored count must say so too
            stored_count = self.db.get_meta("records")
        self._check_total(sum(counts.values()), stored_count)
        out = []
        for tag, (_, row) in latest.items():
            full = self.db.one(self._select("o.name = ? AND r.record_id = ?", ()), (row[0], row[3]))
            if full is None:
                raise CacheDamaged("a cached version record vanished while it was read")
            out.append(ItemRows(counts[tag], self._open(full)))
        return out

    def all(self) -> Iterator[CachedRecord]:
        """Every row, streamed (bounded memory), each authenticated."""
        for row in self.db.rows(self._select("1", ()), ()):
            yield self._open(row)

    def record_ids(self) -> set[str]:
        return {str(r[0]) for r in self.db.query("SELECT DISTINCT record_id FROM records")}

    def object_kinds(self) -> dict[str, int]:
        """Every catalog object the cache holds: name → kind."""
        return {str(n): int(k) for n, k in self.db.query("SELECT name, kind FROM catalog_objects")}

    def object_sizes(self) -> dict[str, tuple[int, int]]:
        """name → (kind, number of records) of every catalog object."""
        rows = self.db.query(
            "SELECT o.name, o.kind, count(r.record_id) FROM catalog_objects o LEFT JOIN records r ON r.obj = o.id "
            "GROUP BY o.id"
        )
        return {str(n): (int(k), int(c)) for n, k, c in rows}

    def object_rows(self, name: str) -> list[CachedRecord]:
        """The records one catalog object holds, each authenticated."""
        return [self._open(row) for row in self.db.query(self._select("o.name = ?", ()), (name,))]

    def holding(self, record_ids: Iterable[str]) -> dict[str, list[tuple[str, int]]]:
        """record id → the catalog objects (name, kind) that hold it."""
        out: dict[str, list[tuple[str, int]]] = {}
        for rid in record_ids:
            rows = self.db.query(
                "SELECT o.name, o.kind FROM records r JOIN catalog_objects o ON o.id = r.obj WHERE r.record_id = ?",
                (rid,),
            )
            out[rid] = [(str(n), int(k)) for n, k in rows]
        return out
