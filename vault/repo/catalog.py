"""The catalog: every version record, as objects in ``versions/`` and rows in the cache, queried by item.

A version record names its item, its version number and the root tree. In the storage it is either a loose
record object (one record; the object's name is the record id; what `put` writes to commit a version) or a
segment (many records, each with its record id; what compaction writes). Record ids are 32 random bytes, unique
for the life of the vault, and stay the same when a record moves from a loose object into a segment.

The catalog is brought up to date from the storage by listing ``versions/`` and fetching only the objects the
cache does not hold (:meth:`Catalog.sync`); queries then run on the cache (vault.cache.records). A record can be
held by two objects for a while (a segment written, the loose objects it replaces not yet deleted): queries count
it once.

So that listing ``versions/`` stays one request however many versions there are, loose records are compacted
into segments once there are COMPACT_LOOSE of them, by a command that holds a lock while no other process does
(a `put` moves its own record when it finds its version number taken, which must not race a compaction).
Segments exist only in vaults of format version 3 or later; `prune` upgrades older vaults.

Version records that write-only keys wrote carry no number yet; the queries below number them as every reader
does (vault.repo.numbering).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from vault import format as fmt
from vault.cache import CacheDamaged, CachedRecord, CatalogCache, NewRow
from vault.cache.listing import catch_up
from vault.cache.records import KIND_RECORD, KIND_SEGMENT
from vault.crypto.keyring import Keyring
from vault.errors import IntegrityError, ObjectNotFoundError
from vault.repo.numbering import UNNUMBERED_BASE, numbered, sort_column
from vault.repo.objects import object_generation, open_object, seal_object
from vault.storage.base import Backend, Handle, Held, Kind, ObjectInfo, remove_all

log = logging.getLogger(__name__)
T = TypeVar("T")

COMPACT_LOOSE = 64  # loose record objects that make a command fold them into a segment
SEGMENT_RECORDS = 4096  # records per segment at most (~1.5 MB of JSON)
FETCHERS = 8
OnError = Callable[[Handle, IntegrityError], None]


@dataclass(frozen=True)
class VersionRecord:
    record_id: str  # 64 hex digits, unique for the life of the vault
    item: str
    version: int
    created: str  # ISO 8601 UTC
    type: str  # "file" or "dir"
    tree: bytes  # tree blob whose single node is the item's root
    size: int  # original bytes
    files: int
    bytes_added: int
    host: str
    damaged: tuple[str, ...] = ()  # set by `repair` when data this version needs is lost
    origin: fmt.RecordOrigin | None = None  # set by `copy`: the version (of another vault) this one copies
    # False for a record of a write-only key whose ``version`` is the number readers give it for now (see the
    # module docstring); never stored.
    settled: bool = field(default=True, compare=False)

    def stored(self) -> fmt.RecordFields:
        """What the record holds: everything but its id."""
        return fmt.RecordFields(
            item=self.item, version=self.version, created=self.created, type=self.type, tree=self.tree,
            size=self.size, files=self.files, bytes_added=self.bytes_added, host=self.host, damaged=self.damaged,
            origin=self.origin,
        )

    def to_json(self) -> dict[str, Any]:
        return fmt.record_doc(self.stored())

    @property
    def handle(self) -> Handle:
        """The handle of the loose record object of this record (a record in a segment has none of its own)."""
        return Handle(Kind.VERSIONS, self.record_id)


def new_record_id() -> str:
    return os.urandom(fmt.ID_SIZE).hex()


def _record(record_id: str, plain: bytes, what: str) -> VersionRecord:
    return VersionRecord(record_id, **fmt.decode_record(plain, what)._asdict())


@dataclass(frozen=True)
class CatalogObject:
    """One object of ``versions/`` as read: what it is, its key generation, and the records it holds."""

    kind: int  # KIND_RECORD or KIND_SEGMENT
    generation: int
    records: list[tuple[str, bytes]]  # (record id, canonical JSON of the record)


def read_catalog_object(backend: Backend, key: Keyring, vault_id: bytes, info: ObjectInfo) -> CatalogObject | None:
    """Fetch and authenticate one object of ``versions/``; None when it is gone (removed or compacted away
    since it was listed). Raises IntegrityError, UnknownGenerationError, UnsupportedVersionError, StorageError."""
    handle = info.handle
    what = f"version record {handle}"
    cap = fmt.MAX_SEGMENT_SIZE
    if info.size > cap:
        raise IntegrityError(f"{what} is too large")
    try:
        raw = backend.load(handle, 0, cap + 1)
    except ObjectNotFoundError:
        return None
    if len(raw) > cap:
        raise IntegrityError(f"{what} is too large")
    types = (fmt.ObjectType.VERSION, fmt.ObjectType.CATALOG_SEGMENT)
    generation = object_generation(raw, types, what)
    obj_type = fmt.object_type(raw)
    if obj_type == fmt.ObjectType.VERSION and len(raw) > fmt.MAX_RECORD_SIZE:
        raise IntegrityError(f"{what} is too large")
    plain = open_object(key, vault_id, handle, types, raw)
    if obj_type == fmt.ObjectType.VERSION:
        fields = fmt.decode_record(plain, what)
        if raw[4] == fmt.HEADER_SEALED and fields.version:  # a write-only key may not pick (or take) a number
            raise IntegrityError(f"{what} was sealed by a write-only key and claims a version number")
        return CatalogObject(KIND_RECORD, generation, [(handle.name, fmt.encode_record(fields))])
    segment = fmt.decode_segment(plain, f"catalog segment {handle}")
    return CatalogObject(KIND_SEGMENT, generation, [(rid, fmt.encode_record(f)) for rid, f in segment])



class Catalog:
    """The version records of one vault: kept in step with ``versions/`` through the cache, changed only by the
    repository (which keeps the commit order), queried by item."""

    def __init__(self, backend: Backend, key: Keyring, vault_id: bytes, cache: CatalogCache,
                 held: Held | None = None) -> None:
        self.backend = backend
        self.key = key
        self.vault_id = vault_id
        self.cache = cache
        # Objects of versions/ that deletions could only hide (retention): counted here, reported by the
        # command (the repository passes its own tally).
        self.held = held if held is not None else Held()
        # Objects of versions/ the last sync could not read (without an ``on_error`` of the caller's).
        self.damaged: list[tuple[Handle, IntegrityError]] = []

    def note_damage(self, handle: Handle, exc: IntegrityError) -> None:
        self.damaged.append((handle, exc))

    # -- keeping up with the storage -------------------------------------------------------------------------
    def sync(self, *, full: bool = False, on_error: OnError | None = None) -> None:
        """List ``versions/``, drop what is gone, fetch what is new (``full``: everything again, as `check`,
        `prune` and `repair` need). A damaged object is reported to ``on_error`` and skipped; without one it is
        remembered in :attr:`damaged`. A cache that fails its own checks is rebuilt. StorageError."""
        self.damaged = []
        on_error = on_error or self.note_damage
        try:
            if full:
                self.cache.clear()
            else:
                self.cache.verify_count()
            self._sync(on_error)
        except CacheDamaged as exc:
            log.warning("the cached catalog failed its checks (%s): rebuilding it from the storage", exc)
            self.cache.clear()
            self._sync(on_error)

    def _sync(self, on_error: OnError | None) -> None:
        catch_up(
            lambda: self.backend.list(Kind.VERSIONS), self.cache,
            lambda info: read_catalog_object(self.backend, self.key, self.vault_id, info),
            lambda info, obj: self._take_in(info.handle.name, obj, info.tag), on_error, "version records", FETCHERS,
        )

    def _take_in(self, name: str, obj: CatalogObject, tag: str = "") -> None:
        rows = []
        for record_id, plain in obj.records:
            rec = _record(record_id, plain, f"version record {record_id[:10]}")
            rows.append(NewRow(record_id, rec.item, sort_column(rec), bool(rec.damaged), plain))
        self.cache.add_object(name, obj.kind, obj.generation, rows, tag)

    # -- queries ---------------------------------------------------------------------------------------------
    def _decoded(self, rows: Iterable[CachedRecord]) -> list[VersionRecord]:
        seen: set[str] = set()
        out = []
        for row in rows:
            if row.record_id in seen:
                continue  # held by a segment and by the loose object it replaces, for a moment
            seen.add(row.record_id)
            out.append(_record(row.record_id, row.plain, f"version record {row.record_id[:10]}"))
        return out

    def _guarded(self, query: Callable[[], T]) -> T:
        """Run a query on the cache; if the cache fails its checks on the way (a row altered or lost, a page
        SQLite can't read), rebuild the catalog from the storage and run it again: never a wrong answer."""
        try:
            return query()
        except CacheDamaged as exc:
            log.warning("the cached catalog failed its checks (%s): rebuilding it from the storage", exc)
            self.cache.clear()
            self._sync(self.note_damage)
            return query()

    def versions(self, item: str) -> list[VersionRecord]:
        """The records of ``item``, by version number (oldest first; unnumbered ones numbered as readers number
        them); empty when there is no such item."""
        rows = self._guarded(lambda: self.cache.item_rows(item))
        return numbered(self._decoded(rows))

    def latest(self, item: str, undamaged: bool = False) -> VersionRecord | None:
        row = self._guarded(lambda: self.cache.latest(item, undamaged))
        if row is not None and row.version >= UNNUMBERED_BASE:  # not numbered yet: number the item's records
            found = [r for r in self.versions(item) if not (undamaged and r.damaged)]
            return found[-1] if found else None
        return None if row is None else self._decoded([row])[0]

    def max_version(self, item: str) -> int:
        top = self._guarded(lambda: self.cache.max_version(item))
        if top >= UNNUMBERED_BASE:
            return max(r.version for r in self.versions(item))
        return top

    def unsettled_items(self) -> list[str]:
        """Items that have versions not numbered yet (a write-only key's). One scan of the clear columns when
        there are none; the hint it gives is checked against authenticated rows before anything is changed."""
        if self.cache.db.one("SELECT 1 FROM records WHERE version >= ? LIMIT 1", (UNNUMBERED_BASE,)) is None:
            return []
        rows = self._guarded(self.cache.items)
        return sorted(self._decoded([r.latest])[0].item for r in rows if r.latest.version >= UNNUMBERED_BASE)

    def has_item(self, item: str) -> bool:
        return self._guarded(lambda: self.cache.has_item(item))

    def items(self) -> list[tuple[VersionRecord, int]]:
        """(latest record, number of versions) of every item, by item name."""
        out = []
        for r in self._guarded(self.cache.items):
            latest = self._decoded([r.latest])[0]
            if r.latest.version >= UNNUMBERED_BASE:  # not numbered yet: number the item's records
                latest = self.versions(latest.item)[-1]
            out.append((latest, r.count))
        return sorted(out, key=lambda pair: pair[0].item)

    def all(self) -> Iterator[VersionRecord]:
        """Every record once, in no particular order (authenticated first, then decoded one by one)."""
        seen: set[str] = set()
        for row in self._guarded(lambda: list(self.cache.all())):
            if row.record_id not in seen:
                seen.add(row.record_id)
                yield _record(row.record_id, row.plain, f"version record {row.record_id[:10]}")

    def with_generations(self) -> Iterator[tuple[VersionRecord, int, str]]:
        """Every (record, key generation of the object holding it, object name), for `rekey --reencrypt`."""
        for row in self._guarded(lambda: list(self.cache.all())):
            yield _record(row.record_id, row.plain, f"version record {row.record_id[:10]}"), row.generation, row.obj

    def record_ids(self) -> set[str]:
        return self._guarded(self.cache.record_ids)

    def at(self, item: str, version: int) -> list[str]:
        """Record ids of ``item`` holding number ``version`` (more than one: two puts raced), unnumbered records
        counted at the numbers readers give them."""
        return sorted({r.record_id for r in self.versions(item) if r.version == version})

    # -- changes (through the repository, which keeps the order) ---------------------------------------------
    def write(self, record: VersionRecord) -> None:
        """Write ``record`` as a loose record object (named by its record id) and take it into the cache."""
        plain, tag = write_record(self.backend, self.key, self.vault_id, record)
        self.cache.add_object(record.record_id, KIND_RECORD, self.key.current,
                              [NewRow(record.record_id, record.item, record.version, bool(record.damaged), plain)], tag)

    def write_segment(self, records: Sequence[tuple[str, bytes]]) -> str:
        """Write one segment holding ``records`` ((record id, canonical JSON)), durable before it returns, and
        take it into the cache. Returns its object name."""
        name = new_record_id()
        handle = Handle(Kind.VERSIONS, name)
        payload = fmt.encode_segment([(rid, fmt.decode_record(plain, "a record")) for rid, plain in records])
        sealed = seal_object(self.key, self.vault_id, handle, fmt.ObjectType.CATALOG_SEGMENT, payload)
        tag = self.backend.save(handle, sealed) or ""  # "" where a backend can't tell
        self._take_in(name, CatalogObject(KIND_SEGMENT, self.key.current, list(records)), tag)
        return name

    def delete_objects(self, names: Iterable[str]) -> None:
        """Delete objects of ``versions/`` and drop them from the cache. Those retention holds are hidden from
        every listing all the same (so dropped as well) and counted in :attr:`held`."""
        names = list(names)
        self.held.merge(remove_all(self.backend, (Handle(Kind.VERSIONS, name) for name in names)))
        self.cache.drop_objects(names)

    def remove(self, record_ids: Sequence[str]) -> None:
        """Delete records wherever they are held: loose objects are deleted; a segment is written again without
        them (the new segment durable first), then the old one is deleted."""
        gone = set(record_ids)
        holders = self._guarded(lambda: self.cache.holding(gone))
        loose = {name for held in holders.values() for name, kind in held if kind == KIND_RECORD}
        segments = {name for held in holders.values() for name, kind in held if kind == KIND_SEGMENT}
        for name in sorted(segments):
            rows = self._guarded(lambda name=name: self.cache.object_rows(name))  # type: ignore[misc]
            keep = [(row.record_id, row.plain) for row in rows if row.record_id not in gone]
            if keep:
                self.write_segment(keep)
        self.delete_objects(sorted(loose | segments))

    def rewrite_segment(self, name: str) -> int:
        """Write the records of segment ``name`` again as a new segment (sealed under the current key generation;
        ids kept), then delete the old one. Returns how many records it holds."""
        rows = [(row.record_id, row.plain) for row in self.cache.object_rows(name)]
        if rows:
            self.write_segment(rows)
        self.delete_objects([name])
        return len(rows)

    def needs_compaction(self) -> bool:
        return sum(1 for kind in self.cache.object_kinds().values() if kind == KIND_RECORD) >= COMPACT_LOOSE

    def compact(self) -> int:
        """Fold loose records (and small segments) into segments once there are COMPACT_LOOSE loose ones; the
        segments are durable before the objects they replace are deleted. Call only when no other process holds
        a lock, in a vault of format 3 or later. Returns how many objects were folded."""
        objects = self.cache.object_kinds()
        loose = sorted(name for name, kind in objects.items() if kind == KIND_RECORD)
        if len(loose) < COMPACT_LOOSE:
            return 0
        small = sorted(name for name, (kind, count) in self.cache.object_sizes().items()
                       if kind == KIND_SEGMENT and count < SEGMENT_RECORDS // 4)
        folded = loose + small
        records: dict[str, bytes] = {}
        for name in folded:
            for row in self.cache.object_rows(name):
                records.setdefault(row.record_id, row.plain)
        items = sorted(records.items())
        for i in range(0, len(items), SEGMENT_RECORDS):
            self.write_segment(items[i : i + SEGMENT_RECORDS])
        self.delete_objects(folded)
        log.info("compacted %d catalog objects (%d records) into segments", len(folded), len(items))
        return len(folded)


def write_record(backend: Backend, key: Keyring, vault_id: bytes, record: VersionRecord) -> tuple[bytes, str]:
    """Store ``record`` as a loose record object named by its record id; returns its plaintext and the new
    object's listing tag. (Commands go through the repository's commit_records, which also keeps the cache and
    the numbering right.)"""
    handle = Handle(Kind.VERSIONS, record.record_id)
    plain = fmt.encode_record(record.stored())
    return plain, backend.save(handle, seal_object(key, vault_id, handle, fmt.ObjectType.VERSION, plain)) or ""


def load_records(
    backend: Backend, key: Keyring, vault_id: bytes, on_error: OnError | None = None
) -> list[VersionRecord]:
    """Every version record in the storage, read straight from ``versions/`` (no cache; for tools and tests),
    ordered by item, then version. A damaged object raises IntegrityError, or with ``on_error`` is reported to
    it and skipped."""
    records: dict[str, VersionRecord] = {}
    for info in backend.list(Kind.VERSIONS):
        try:
            obj = read_catalog_object(backend, key, vault_id, info)
        except IntegrityError as exc:
            if on_error is None:
                raise
            on_error(info.handle, exc)
            continue
        for record_id, plain in obj.records if obj is not None else []:
            records.setdefault(record_id, _record(record_id, plain, f"version record {info.handle}"))
    return sorted(records.values(), key=lambda r: (r.item, r.version, r.created, r.record_id))


def replaced(record: VersionRecord, **changes: Any) -> VersionRecord:
    """``record`` with ``changes`` under a new record id (records are immutable; a changed one is a new one)."""
    return dataclasses.replace(record, record_id=new_record_id(), **changes)
