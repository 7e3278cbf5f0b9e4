"""`vault forget` (which versions a policy keeps) and `vault prune` (free the space nothing references).

forget follows restic's policy semantics, per item: ``keep_last`` keeps the N newest versions; ``keep_daily``
keeps the newest version of each of the N most recent days that have one (likewise ISO weeks and months). A
version kept by any rule is kept.

prune runs under the exclusive lock. Packs with no referenced blob are deleted; packs whose referenced bytes
are under REPACK_THRESHOLD of the pack are repacked: their live blobs are copied into new packs (vault.repo.repack:
still sealed when under the current key generation, sealed again when under an older one). The order keeps a
crash harmless: new packs, then the new index, then old index objects go, then old packs go.

With a retention (S3 Object Lock), deletions that the locks refuse hide the objects instead (they vanish from
listings and stay stored until their locks end), and prune ends with vault.ops.retention_lock: a sweep that
deletes hidden versions whose locks have passed, and the extension of the locks of everything kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vault import format as fmt
from vault.errors import IntegrityError, NotFoundError, UsageError
from vault.names import check_name
from vault.ops.retention_lock import LockReport, after_prune
from vault.pipeline.runner import Pipeline
from vault.repo.catalog import VersionRecord
from vault.repo.repack import copy_blobs
from vault.repo.repository import Repository
from vault.repo.walk import References, collect
from vault.storage.base import Held, Kind

REPACK_THRESHOLD = 0.5


@dataclass(frozen=True)
class Policy:
    last: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0

    def check(self) -> None:
        if min(self.last, self.daily, self.weekly, self.monthly) < 0:
            raise UsageError("--keep-* values can't be negative")
        if not any((self.last, self.daily, self.weekly, self.monthly)):
            raise UsageError("the policy keeps nothing; give --keep-last N (N >= 1), or use `vault rm`")


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def apply_policy(versions: list[VersionRecord], policy: Policy) -> dict[str, list[str]]:
    """record id → reasons it is kept (empty list: dropped). ``versions`` are one item's, any order."""
    newest_first = sorted(versions, key=lambda r: (r.created, r.version), reverse=True)
    reasons: dict[str, list[str]] = {r.record_id: [] for r in versions}
    for r in newest_first[: policy.last]:
        reasons[r.record_id].append("last")
    buckets: list[tuple[str, int, Callable[[datetime], Any]]] = [
        ("daily", policy.daily, lambda t: t.date()),
        ("weekly", policy.weekly, lambda t: t.isocalendar()[:2]),
        ("monthly", policy.monthly, lambda t: (t.year, t.month)),
    ]
    for label, count, key in buckets:
        seen: set[Any] = set()
        for r in newest_first:
            if len(seen) >= count:
                break
            bucket = key(_parse_time(r.created))
            if bucket not in seen:
                seen.add(bucket)
                reasons[r.record_id].append(label)
    return reasons


@dataclass
class ForgetReport:
    entries: list[dict[str, Any]] = field(default_factory=list)
    held: Held = field(default_factory=Held)  # records retention keeps stored (hidden) until a date

    @property
    def dropped(self) -> int:
        return sum(1 for e in self.entries if e["action"] == "drop")


def forget(repo: Repository, names: list[str], policy: Policy, dry_run: bool) -> ForgetReport:
    """Apply ``policy`` to each named item (every item when none is named). Reads one item's versions at a time."""
    policy.check()
    for name in names:
        check_name(name)
        if not repo.catalog.has_item(name):
            raise NotFoundError(f"no item named {name!r}")
    report = ForgetReport()
    for item in sorted(names or [latest.item for latest, _ in repo.catalog.items()]):
        versions = repo.catalog.versions(item)
        reasons = apply_policy(versions, policy)
        dropped = []
        entries = []
        for r in versions:
            keep = bool(reasons[r.record_id])
            entries.append(
                {"name": item, "version": r.version, "created": r.created,
                 "action": "keep" if keep else "drop", "reasons": reasons[r.record_id], "held_until": None}
            )
            if not keep:
                dropped.append(r.record_id)
        if not dry_run and dropped:
            repo.take_held()
            repo.remove_records(dropped)
            held = repo.take_held()  # the objects that held this item's dropped records, hidden, not deleted
            report.held.merge(held)
            if held:
                until = held.until_iso()
                for e in entries:
                    if e["action"] == "drop":
                        e["held_until"] = until
        report.entries.extend(entries)
    return report


@dataclass
class PruneReport:
    packs_deleted: int = 0
    packs_repacked: int = 0
    packs_written: int = 0
    bytes_deleted: int = 0
    bytes_written: int = 0
    blobs_kept: int = 0
    blobs_dropped: int = 0
    dry_run: bool = False
    retention: LockReport = field(default_factory=LockReport)

    @property
    def bytes_freed(self) -> int:
        return self.bytes_deleted - self.bytes_written

    def to_json(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "packs_deleted": self.packs_deleted,
            "packs_repacked": self.packs_repacked,
            "packs_written": self.packs_written,
            "blobs_kept": self.blobs_kept,
            "blobs_dropped": self.blobs_dropped,
            "bytes_freed": self.bytes_freed,
            **self.retention.held.to_json(),
            "purged_objects": self.retention.purged,
            "retention_extended": self.retention.extended,
            "retention_extended_until": _iso(self.retention.extended_until),
        }


def _iso(when: datetime | None) -> str | None:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when is not None else None


def prune(
    repo: Repository,
    pipeline: Pipeline,
    dry_run: bool,
    on_total: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> PruneReport:
    """Delete what no version references; repack mostly-unused packs. ``on_total`` gets the bytes the repack
    will read, ``on_progress`` each pack's size as it is read. IntegrityError when a version needs data the
    index does not list (run `check`, then `repair`).

    It judges by the storage itself (the index and the catalog are rebuilt from every object first, never taken
    from the cache) and keeps memory flat however big the vault: references, the plan per pack and the storage's
    pack sizes live in tables of the cache's database, and packs stream from there."""
    report = PruneReport(dry_run=dry_run)
    repo.refresh_catalog(full=True)
    repo.refresh_blobs(full=True)
    records = list(repo.catalog.all())
    refs = collect(repo, records)
    # A version that needs a blob the index does not list (a lost index object) or a tree that can't be read:
    # its data may sit in a pack that would look unreferenced or orphaned here, and deleting it would lose a
    # version that `repair` can still save. Only versions that repair already marked damaged are pruned past.
    unknown = [r for r in records if r.record_id in refs.damaged and not r.damaged]
    if unknown:
        raise IntegrityError(
            f"{len(unknown)} version(s) need data that the index does not list or that can't be read; "
            "pruning now could delete it",
            hint="run `vault check`, then `vault repair`, and prune again",
        )
    del records
    plan = _Plan(repo)

    def decide(pack: fmt.IndexedPack, live: list[fmt.BlobEntry]) -> None:
        size = plan.stored_size(pack.pack_id)
        if size is None:
            return  # indexed but missing: `check` reports it, nothing to free
        kept = _sealed_copies_kept(repo, refs, pack.pack_id, live)
        report.blobs_kept += len(kept)
        report.blobs_dropped += len(pack.entries) - len(live)
        if not kept:
            plan.decide(pack.pack_id, _DELETE)
        elif len(kept) == len(live) and sum(e.length for e in live) < REPACK_THRESHOLD * size:
            plan.decide(pack.pack_id, _REPACK)
        else:  # (a write-only pack holding copies kept for safety is kept whole: repack copies resolved ones)
            plan.decide(pack.pack_id, _KEEP)

    for pack, live in repo.index.packs_with_refs():
        decide(pack, live)
    for pack in plan.undecided():  # indexed packs every blob of which resolves to another copy
        decide(pack, [])
    orphans = plan.orphans()  # packs no index object lists: left by interrupted puts
    report.packs_deleted = plan.count(_DELETE) + len(orphans)
    report.packs_repacked = plan.count(_REPACK)
    report.bytes_deleted = plan.bytes_of(_DELETE) + plan.bytes_of(_REPACK) + sum(size for _, size in orphans)
    if dry_run:
        report.packs_written, report.bytes_written = _repack_size(
            plan.repack_sources(), len(fmt.pack_preamble(repo.key.current))
        )
        return report

    if on_total is not None:
        on_total(plan.bytes_of(_REPACK))
    # New packs are indexed by checkpoint objects as they become durable (the cache takes them in as well), so
    # the index written below streams them from the cache like every kept pack.
    copied = copy_blobs(repo, pipeline, plan.repack_sources(), on_progress, on_pack=plan.written, keep_packs=False)
    report.packs_written, report.bytes_written = copied.packs_written, copied.bytes_written
    if report.packs_deleted or report.packs_repacked or len(repo.index.index_names) > 1 or repo.index.checkpoints:
        repo.reindex(plan.kept_packs())
    repo.delete_packs(plan.packs(_DELETE) + plan.packs(_REPACK) + [p for p, _ in orphans])
    repo.compact(alone=lambda: True)  # under the exclusive lock
    # With a retention: what the deletions above could only hide is counted by the sweep that follows (it finds
    # every hidden version still locked, these among them), then the locks of everything kept are extended.
    repo.take_held()
    report.retention = after_prune(repo)
    return report


def _sealed_copies_kept(
    repo: Repository, refs: References, pack_id: bytes, live: list[fmt.BlobEntry]
) -> list[fmt.BlobEntry]:
    """``live`` plus the entries of a write-only key's pack that versions need although the index resolves them
    to another copy, when no full key's copy exists: any write-only key could have sealed the copy the index
    picked, under that id, with other contents, and prune can't tell which copy is the true one without reading
    both. Such copies stay until the blob has a full key's copy or no version needs it (docs/security.md)."""
    every = repo.index.pack(pack_id)
    if every is None or not every.entries or not every.entries[0].flags & fmt.FLAG_SEALED:
        return live
    have = {e.offset for e in live}
    out = list(live)
    for e in every.entries:
        if e.offset in have or e.blob_id not in refs:
            continue
        best = repo.index.get(e.blob_id)
        if best is None or best.entry.flags & fmt.FLAG_SEALED:
            out.append(e)
    return out


_KEEP, _REPACK, _DELETE = 0, 1, 2


class _Plan:
    """What prune does with each pack, in temporary tables of the cache's database (bounded memory)."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.db = repo.cache.db
        self.new: set[bytes] = set()  # packs this prune wrote (ids only)
        with self.db.transaction() as conn:
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS prune_plan (pack_id BLOB PRIMARY KEY, action INTEGER, "
                         "size INTEGER) WITHOUT ROWID")
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS stored_packs (pack_id BLOB PRIMARY KEY, size INTEGER) "
                         "WITHOUT ROWID")
            conn.execute("DELETE FROM temp.prune_plan")
            conn.execute("DELETE FROM temp.stored_packs")
        batch: list[tuple[bytes, int]] = []
        for info in repo.backend.list(Kind.DATA):
            batch.append((bytes.fromhex(info.handle.name), info.size))
            if len(batch) >= 5000:
                self._store(batch)
        self._store(batch)

    def _store(self, batch: list[tuple[bytes, int]]) -> None:
        if batch:
            with self.db.transaction() as conn:
                conn.executemany("INSERT OR REPLACE INTO temp.stored_packs (pack_id, size) VALUES (?, ?)", batch)
            batch.clear()

    def written(self, pack: fmt.IndexedPack) -> None:
        """A new pack is durable: index it by a checkpoint object (the cache takes it in as well)."""
        self.repo.save_checkpoint(pack)
        self.new.add(pack.pack_id)

    def stored_size(self, pack_id: bytes) -> int | None:
        row = self.db.one("SELECT size FROM temp.stored_packs WHERE pack_id = ?", (pack_id,))
        return None if row is None else int(row[0])

    def decide(self, pack_id: bytes, action: int) -> None:
        with self.db.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO temp.prune_plan (pack_id, action, size) "
                         "SELECT ?, ?, size FROM temp.stored_packs WHERE pack_id = ?", (pack_id, action, pack_id))

    def count(self, action: int) -> int:
        row = self.db.one("SELECT count(*) FROM temp.prune_plan WHERE action = ?", (action,))
        return 0 if row is None else int(row[0])

    def bytes_of(self, action: int) -> int:
        row = self.db.one("SELECT coalesce(sum(size), 0) FROM temp.prune_plan WHERE action = ?", (action,))
        return 0 if row is None else int(row[0])

    def packs(self, action: int) -> list[bytes]:
        return [bytes(r[0]) for r in self.db.query(
            "SELECT pack_id FROM temp.prune_plan WHERE action = ?", (action,))]

    def orphans(self) -> list[tuple[bytes, int]]:
        rows = self.db.query("SELECT s.pack_id, s.size FROM temp.stored_packs s "
                             "WHERE NOT EXISTS (SELECT 1 FROM packs p WHERE p.pack_id = s.pack_id)")
        return [(bytes(p), int(n)) for p, n in rows]

    def _action(self, pack_id: bytes) -> int | None:
        row = self.db.one("SELECT action FROM temp.prune_plan WHERE pack_id = ?", (pack_id,))
        return None if row is None else int(row[0])

    def repack_sources(self) -> Iterator[fmt.IndexedPack]:
        """The packs to repack, each with only its live entries (streamed)."""
        for pack, live in self.repo.index.packs_with_refs():
            if live and self._action(pack.pack_id) == _REPACK:
                yield fmt.IndexedPack(pack.pack_id, pack.generation, live)

    def undecided(self) -> Iterator[fmt.IndexedPack]:
        """Indexed packs with no decision yet: those none of whose blobs the index resolves to them."""
        rows = self.db.query("SELECT DISTINCT pack_id FROM packs p WHERE NOT EXISTS "
                             "(SELECT 1 FROM temp.prune_plan t WHERE t.pack_id = p.pack_id)")
        for (pack_id,) in rows:
            pack = self.repo.index.pack(bytes(pack_id))
            if pack is not None and pack.pack_id not in self.new:
                yield pack

    def kept_packs(self) -> Iterator[fmt.IndexedPack]:
        """What the new index lists: the kept packs and the ones this prune wrote. (Packs the index lists but the
        storage lost are left out, as is everything deleted or repacked.) A kept pack is listed with every entry,
        also those the index resolves to another copy: a pack that exists is then always fully indexed, which is
        what a write-only key's local record relies on (a blob it stored counts while its pack exists)."""
        index = self.repo.index
        for pack_id in self.packs(_KEEP):
            if pack_id not in self.new and (pack := index.pack(pack_id)) is not None:
                yield pack
        for pack_id in sorted(self.new):
            # Every entry: its blobs are also in the packs they were copied from, which the index may still
            # resolve them to until those are gone.
            new = index.pack(pack_id)
            if new is not None:
                yield new


def _repack_size(repack: Iterable[fmt.IndexedPack], preamble_size: int) -> tuple[int, int]:
    """The packs and bytes that :func:`copy_blobs` would write (same order, dedup and pack boundaries, and each
    pack's preamble, sealed header and trailer), so a dry run reports what the real prune frees."""
    packs = total = count = 0
    size = preamble_size

    def flush() -> None:
        nonlocal packs, total, count, size
        if count:
            packs += 1
            total += size + 4 + count * fmt.ENTRY_SIZE + fmt.AEAD_OVERHEAD + fmt.PACK_TRAILER_SIZE
        count, size = 0, preamble_size

    for source in repack:
        for e in source.entries:
            size += e.length
            count += 1
            if size >= fmt.PACK_TARGET_SIZE:
                flush()
    flush()
    return packs, total
