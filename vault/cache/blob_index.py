"""The index in the cache: which pack holds which blob, queried in SQLite instead of held in Python objects.

The authoritative index is the set of encrypted index objects in the storage. :meth:`BlobIndex.sync` lists them
and takes in only what changed: rows of objects that are gone are dropped, new objects are fetched, authenticated,
decoded and inserted, one transaction per object. Lookups then cost one indexed SQLite query, and memory does not
grow with the number of blobs (SQLite's page cache is bounded; the file is in the kernel's page cache).

Every blob row carries a MAC (keyed BLAKE3, 16 bytes) over the index object, pack, key generation and entry it came
from; a row whose MAC fails is treated as absent and dropped. A blob that is absent where the caller expects it
makes the repository sync again and, failing that, rebuild from the storage before it reports damage: a cache that
lost or garbled rows can cost a rebuild, never a wrong answer.

A blob stored in two packs (two puts raced, or `rekey --reencrypt` copied it) resolves to the copy under the
latest key generation, then to the lowest pack id: the same rule everywhere (lookups, :meth:`packs`). A copy a
full key sealed comes before any a write-only key sealed (FLAG_SEALED): any write-only key can seal a blob under
any id, so such a copy never stands in for a full key's (docs/security.md, "Write-only keys").
"""

from __future__ import annotations

import hmac
import logging
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import blake3

from vault import format as fmt
from vault.cache.db import CacheDamaged, CacheDB
from vault.cache.listing import Held
from vault.storage.base import Handle, Kind

log = logging.getLogger(__name__)

MAC_SIZE = 16
_MAC_HEAD = struct.Struct("<32sIBBIII")  # pack id, generation, then the entry's fields (type, flags, offsets)
_COLUMNS = "p.pack_id, p.generation, o.name, b.type, b.flags, b.offset, b.length, b.raw_length, b.mac"
_JOINED = "FROM blobs b JOIN packs p ON p.id = b.pack JOIN index_objects o ON o.id = p.obj"
_LOOKUP = f"SELECT {_COLUMNS} {_JOINED} WHERE b.blob_id = ?"
_SQL_BATCH = 500  # ids per "IN (...)" query (SQLite's default limit on parameters is 32766)


@dataclass(frozen=True, slots=True)
class BlobLocation:
    pack_id: bytes
    entry: fmt.BlobEntry
    generation: int = 0  # the key generation the pack is sealed under

    @property
    def pack_handle(self) -> Handle:
        return Handle(Kind.DATA, self.pack_id.hex())


def _rank(loc: BlobLocation) -> tuple[int, int, bytes]:
    """Which copy of a blob the index resolves to: the lowest rank (see the module docstring)."""
    return loc.entry.flags & fmt.FLAG_SEALED, -loc.generation, loc.pack_id


class BlobIndex(Held):
    """Blob id → location, backed by the cache's ``index_objects``/``packs``/``blobs`` tables. Thread-safe."""

    def __init__(self, db: CacheDB, mac_key: bytes) -> None:
        self.db = db
        self._mac_key = mac_key
        self.damaged_rows = 0  # rows whose MAC failed since this object was made (they are dropped)

    # -- MACs ----------------------------------------------------------------------------------------------
    def _mac(self, obj: str, pack_id: bytes, generation: int, e: fmt.BlobEntry) -> bytes:
        head = _MAC_HEAD.pack(pack_id, generation, e.blob_type, e.flags, e.offset, e.length, e.raw_length)
        return blake3.blake3(head + e.blob_id + obj.encode("ascii"), key=self._mac_key).digest(MAC_SIZE)

    def _location(self, blob_id: bytes, row: tuple[Any, ...]) -> BlobLocation | None:
        pack_id, generation, obj, btype, flags, offset, length, raw, mac = row
        assert isinstance(pack_id, bytes) and isinstance(obj, str) and isinstance(mac, bytes)
        entry = fmt.BlobEntry(blob_id, int(btype), int(flags), int(offset), int(length), int(raw))
        if not hmac.compare_digest(self._mac(obj, pack_id, int(generation), entry), mac):
            self.damaged_rows += 1
            log.warning("the cache holds an altered index row (blob %s); it is ignored", blob_id.hex()[:10])
            return None
        return BlobLocation(pack_id, entry, int(generation))

    # -- lookups -------------------------------------------------------------------------------------------
    def get(self, blob_id: bytes) -> BlobLocation | None:
        """Where the blob is (latest key generation first, then the lowest pack id), or None."""
        found = self.locations(blob_id)
        return found[0] if found else None

    def locations(self, blob_id: bytes) -> list[BlobLocation]:
        """Every copy of the blob the index lists, the one :meth:`get` picks first (a reader falls back on the
        others when a copy a write-only key sealed does not hold what its id says)."""
        try:
            rows = self.db.query(_LOOKUP, (blob_id,))
        except CacheDamaged as exc:  # as absent: the caller catches up with (or rebuilds from) the storage
            self.damaged_rows += 1
            log.warning("the cached index can't be read (%s); the blob counts as not found", exc)
            return []
        found = [loc for loc in (self._location(blob_id, row) for row in rows) if loc is not None]
        return sorted(found, key=_rank)

    def __contains__(self, blob_id: object) -> bool:
        return isinstance(blob_id, bytes) and self.get(blob_id) is not None

    def missing(self, blob_ids: Iterable[bytes], trusted_only: bool = False) -> set[bytes]:
        """The ids among ``blob_ids`` that the index does not hold (one query per 500 ids); ``trusted_only``: or
        holds only copies a write-only key sealed."""
        wanted = list(dict.fromkeys(blob_ids))
        found: set[bytes] = set()
        only = " AND (b.flags & 2) = 0" if trusted_only else ""  # 2: FLAG_SEALED
        for i in range(0, len(wanted), _SQL_BATCH):
            batch: list[object] = list(wanted[i : i + _SQL_BATCH])
            marks = ",".join("?" * len(batch))
            sql = f"SELECT b.blob_id, {_COLUMNS} {_JOINED} WHERE b.blob_id IN ({marks}){only}"
            try:
                rows = self.db.query(sql, batch)
            except CacheDamaged:  # as absent: the files are simply read again
                self.damaged_rows += 1
                rows = []
            for row in rows:
                blob_id = row[0]
                assert isinstance(blob_id, bytes)
                if blob_id not in found and self._location(blob_id, row[1:]) is not None:
                    found.add(blob_id)
        return set(wanted) - found

    def generation_of(self, pack_id: bytes) -> int:
        row = self.db.one("SELECT generation FROM packs WHERE pack_id = ? LIMIT 1", (pack_id,))
        return 0 if row is None else int(row[0])

    def __len__(self) -> int:
        row = self.db.one("SELECT count(DISTINCT blob_id) FROM blobs")
        return 0 if row is None else int(row[0])

    @property
    def index_names(self) -> list[str]:
        return [str(r[0]) for r in self.db.query("SELECT name FROM index_objects WHERE checkpoint = 0")]

    @property
    def checkpoints(self) -> list[tuple[Handle, list[fmt.IndexedPack]]]:
        """Checkpoint objects with their packs: a running put's, or those a put that died left behind."""
        out = []
        for obj_id, name in self.db.query("SELECT id, name FROM index_objects WHERE checkpoint = 1 ORDER BY name"):
            packs = list(self._packs_where("p.obj = ?", (obj_id,), resolved=False))
            out.append((Handle(Kind.INDEX, str(name)), packs))
        return out

    def packs(self) -> Iterator[fmt.IndexedPack]:
        """Every pack with the entries the index resolves to it (a blob stored twice counts in one pack only),
        in pack id order, streamed from SQLite: memory is bounded by one pack's entries."""
        return self._packs_where("1", (), resolved=True)

    def pack(self, pack_id: bytes) -> fmt.IndexedPack | None:
        """One pack with every entry the index lists for it (resolved elsewhere or not)."""
        return next(self._packs_where("p.pack_id = ?", (pack_id,), resolved=False), None)

    def packs_with_refs(self) -> Iterator[tuple[fmt.IndexedPack, list[fmt.BlobEntry]]]:
        """:meth:`packs`, each with the entries that ``temp.refs`` (vault.repo.walk) holds: what versions need."""
        live: list[fmt.BlobEntry] = []
        refs: set[bytes] = set()
        for pack in self.packs():
            ids = [e.blob_id for e in pack.entries]
            refs.clear()
            for i in range(0, len(ids), _SQL_BATCH):
                batch: list[object] = list(ids[i : i + _SQL_BATCH])
                marks = ",".join("?" * len(batch))
                refs.update(bytes(r[0]) for r in self.db.query(
                    f"SELECT DISTINCT blob_id FROM temp.refs WHERE blob_id IN ({marks})", batch))  # noqa: S608
            live = [e for e in pack.entries if e.blob_id in refs]
            yield pack, live

    def _packs_where(self, where: str, params: tuple[object, ...], resolved: bool) -> Iterator[fmt.IndexedPack]:
        # ``resolved``: keep only the row each blob resolves to (window function over the blob id index).
        rank = (
            ", ROW_NUMBER() OVER (PARTITION BY b.blob_id ORDER BY (b.flags & 2), p.generation DESC, p.pack_id)"
            " AS rank"  # _rank's order; 2 is FLAG_SEALED
            if resolved else ", 1 AS rank"
        )
        sql = (
            "SELECT pack_id, generation, name, blob_id, type, flags, offset, length, raw_length, mac FROM ("  # noqa: S608
            "SELECT p.pack_id, p.generation, o.name, b.blob_id, b.type, b.flags, b.offset, b.length, b.raw_length,"
            f" b.mac{rank} {_JOINED} WHERE {where}) WHERE rank = 1 ORDER BY pack_id, offset"
        )
        current: bytes | None = None
        generation = 0
        entries: list[fmt.BlobEntry] = []
        seen_offsets: set[int] = set()
        for row in self.db.rows(sql, params):
            pack_id, gen, obj, blob_id = row[0], row[1], row[2], row[3]
            assert isinstance(pack_id, bytes) and isinstance(blob_id, bytes)
            if pack_id != current:
                if current is not None and entries:
                    yield fmt.IndexedPack(current, generation, entries)
                current, generation, entries, seen_offsets = pack_id, int(gen), [], set()
            loc = self._location(blob_id, (pack_id, gen, obj, *row[4:]))
            if loc is not None and loc.entry.offset not in seen_offsets:  # one pack listed by two objects
                seen_offsets.add(loc.entry.offset)
                entries.append(loc.entry)
        if current is not None and entries:
            yield fmt.IndexedPack(current, generation, entries)

    def unindexed_packs(self, names: Iterable[str]) -> list[str]:
        """The pack names among ``names`` (a listing of ``data/``) that no index object lists."""
        out: list[str] = []
        batch: list[str] = []

        def flush() -> None:
            marks = ",".join("?" * len(batch))
            known = {bytes(r[0]).hex() for r in self.db.query(
                f"SELECT DISTINCT pack_id FROM packs WHERE pack_id IN ({marks})",  # noqa: S608 (placeholders)
                [bytes.fromhex(n) for n in batch])}
            out.extend(n for n in batch if n not in known)
            batch.clear()

        for name in names:
            batch.append(name)
            if len(batch) >= _SQL_BATCH:
                flush()
        if batch:
            flush()
        return out

    def stats(self) -> tuple[int, int]:
        """(plaintext bytes, stored bytes) of the distinct data blobs (for `info`)."""
        row = self.db.one(
            "SELECT coalesce(sum(raw), 0), coalesce(sum(len), 0) FROM (SELECT max(raw_length) AS raw, "
            "max(length) AS len FROM blobs WHERE type = ? GROUP BY blob_id)", (fmt.BlobType.DATA,)
        )
        assert row is not None
        return int(row[0]), int(row[1])

    # -- changes -------------------------------------------------------------------------------------------
    def add_object(self, name: str, checkpoint: bool, packs: Sequence[fmt.IndexedPack], tag: str = "") -> None:
        """Take in one index object (fetched with the listing's ``tag``, or just written by this process).
        Idempotent by name."""
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM index_objects WHERE name = ?", (name,)).fetchone():
                return
            entries = sum(len(p.entries) for p in packs)
            obj_id = conn.execute(
                "INSERT INTO index_objects (name, checkpoint, entries, tag) VALUES (?, ?, ?, ?)",
                (name, int(checkpoint), entries, tag),
            ).lastrowid
            for p in packs:
                pack_row = conn.execute(
                    "INSERT INTO packs (obj, pack_id, generation) VALUES (?, ?, ?)", (obj_id, p.pack_id, p.generation)
                ).lastrowid
                conn.executemany(
                    "INSERT OR IGNORE INTO blobs (pack, offset, blob_id, type, flags, length, raw_length, mac) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (pack_row, e.offset, e.blob_id, e.blob_type, e.flags, e.length, e.raw_length,
                         self._mac(name, p.pack_id, p.generation, e))
                        for e in p.entries
                    ],
                )

    def drop_objects(self, names: Iterable[str]) -> None:
        """Forget index objects (gone from the storage, or retired by this process), with their rows."""
        names = list(names)
        if not names:
            return
        with self.db.transaction() as conn:
            for name in names:
                row = conn.execute("SELECT id FROM index_objects WHERE name = ?", (name,)).fetchone()
                if row is None:
                    continue
                conn.execute("DELETE FROM blobs WHERE pack IN (SELECT id FROM packs WHERE obj = ?)", (row[0],))
                conn.execute("DELETE FROM packs WHERE obj = ?", (row[0],))
                conn.execute("DELETE FROM index_objects WHERE id = ?", (row[0],))

    def clear(self) -> None:
        """Forget every index row (to rebuild from the storage); a database SQLite can't use is replaced."""
        try:
            with self.db.transaction() as conn:
                conn.execute("DELETE FROM blobs")
                conn.execute("DELETE FROM packs")
                conn.execute("DELETE FROM index_objects")
        except CacheDamaged:
            self.db.reset()

    # -- keeping up with the storage -------------------------------------------------------------------------
    def known_objects(self) -> dict[str, str]:
        """name → listing tag of every index object held."""
        return {str(name): str(tag) for name, tag in self.db.query("SELECT name, tag FROM index_objects")}

    def set_tags(self, tags: dict[str, str]) -> None:
        if tags:
            with self.db.transaction() as conn:
                conn.executemany("UPDATE index_objects SET tag = ? WHERE name = ?", [(t, n) for n, t in tags.items()])

    def object_entries(self, checkpoint: bool) -> dict[str, int]:
        """name → number of entries of every index object held (checkpoints, or the others)."""
        rows = self.db.query("SELECT name, entries FROM index_objects WHERE checkpoint = ?", (int(checkpoint),))
        return {str(n): int(c) for n, c in rows}

    def object_packs(self, names: Sequence[str]) -> list[fmt.IndexedPack]:
        """Every pack the named objects list, with all its entries there (a pack listed twice, once)."""
        out: dict[bytes, fmt.IndexedPack] = {}
        for name in names:
            row = self.db.one("SELECT id FROM index_objects WHERE name = ?", (name,))
            if row is None:
                continue
            for pack in self._packs_where("p.obj = ?", (row[0],), resolved=False):
                out.setdefault(pack.pack_id, pack)
        return list(out.values())
