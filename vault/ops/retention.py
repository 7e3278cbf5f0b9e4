"""`vault forget` (which versions a policy keeps) and `vault prune` (free the space nothing references).

forget follows restic's policy semantics, per item: ``keep_last`` keeps the N newest versions; ``keep_daily``
keeps the newest version of each of the N most recent days that have one (likewise ISO weeks and months). A
version kept by any rule is kept.

prune runs under the exclusive lock. Packs with no referenced blob are deleted; packs whose referenced bytes
are under REPACK_THRESHOLD of the pack are repacked: their live blobs are copied into new packs (vault.repo.repack:
still sealed when under the current key generation, sealed again when under an older one). The order keeps a
crash harmless: new packs, then the new index, then old index objects go, then old packs go.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vault import format as fmt
from vault.errors import IntegrityError, NotFoundError, UsageError
from vault.names import check_name
from vault.pipeline.runner import Pipeline
from vault.repo.catalog import VersionRecord
from vault.repo.repack import copy_blobs
from vault.repo.repository import Repository
from vault.repo.walk import collect
from vault.storage.base import Kind

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

    @property
    def dropped(self) -> int:
        return sum(1 for e in self.entries if e["action"] == "drop")


def forget(repo: Repository, names: list[str], policy: Policy, dry_run: bool) -> ForgetReport:
    policy.check()
    records = repo.records()
    by_item: dict[str, list[VersionRecord]] = {}
    for r in records:
        by_item.setdefault(r.item, []).append(r)
    for name in names:
        check_name(name)
        if name not in by_item:
            raise NotFoundError(f"no item named {name!r}")
    report = ForgetReport()
    for item in sorted(names or by_item):
        versions = by_item[item]
        reasons = apply_policy(versions, policy)
        for r in sorted(versions, key=lambda x: x.version):
            keep = bool(reasons[r.record_id])
            report.entries.append(
                {"name": item, "version": r.version, "created": r.created,
                 "action": "keep" if keep else "drop", "reasons": reasons[r.record_id]}
            )
            if not keep and not dry_run:
                repo.remove_records([r.record_id])
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
        }


def prune(
    repo: Repository,
    pipeline: Pipeline,
    dry_run: bool,
    on_total: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> PruneReport:
    """Delete what no version references; repack mostly-unused packs. ``on_total`` gets the bytes the repack
    will read, ``on_progress`` each pack's size as it is read. IntegrityError when a version needs data the
    index does not list (run `check`, then `repair`)."""
    report = PruneReport(dry_run=dry_run)
    backend = repo.backend
    records = repo.records()
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
    needed = refs.all
    sizes = {o.handle.name: o.size for o in backend.list(Kind.DATA)}
    packs = repo.index.packs()

    keep: list[fmt.IndexedPack] = []
    repack: list[fmt.IndexedPack] = []
    delete: list[bytes] = []
    for pack_id, entries in packs.items():
        generation = repo.index.generation_of(pack_id)
        if pack_id.hex() not in sizes:
            continue  # indexed but missing: `check` reports it, nothing to free
        live = [e for e in entries if e.blob_id in needed]
        live_bytes = sum(e.length for e in live)
        report.blobs_kept += len(live)
        report.blobs_dropped += len(entries) - len(live)
        if not live:
            delete.append(pack_id)
        elif live_bytes < REPACK_THRESHOLD * sizes[pack_id.hex()]:
            repack.append(fmt.IndexedPack(pack_id, generation, live))
        else:
            keep.append(fmt.IndexedPack(pack_id, generation, entries))
    indexed = {p.hex() for p in packs}
    orphans = [bytes.fromhex(n) for n in sizes if n not in indexed]  # from interrupted puts

    report.packs_deleted = len(delete) + len(orphans)
    report.packs_repacked = len(repack)
    repacked = [p.pack_id for p in repack]
    report.bytes_deleted = sum(sizes[p.hex()] for p in delete + orphans + repacked)
    if dry_run:
        report.packs_written, report.bytes_written = _repack_size(repack, len(fmt.pack_preamble(repo.key.current)))
        return report

    if on_total is not None:
        on_total(sum(sizes[p.hex()] for p in repacked))
    copied = copy_blobs(repo, pipeline, repack, on_progress)
    written = copied.packs
    report.packs_written, report.bytes_written = len(written), copied.bytes_written
    if delete or repack or orphans or len(repo.index.index_names) > 1:
        repo.reindex(keep + written)
    repo.delete_packs(delete + orphans + repacked)
    return report


def _repack_size(repack: list[fmt.IndexedPack], preamble_size: int) -> tuple[int, int]:
    """The packs and bytes that :func:`copy_blobs` would write (same order, dedup and pack boundaries, and each
    pack's preamble, sealed header and trailer), so a dry run reports what the real prune frees."""
    packs = total = count = 0
    size = preamble_size
    seen: set[bytes] = set()

    def flush() -> None:
        nonlocal packs, total, count, size
        if count:
            packs += 1
            total += size + 4 + count * fmt.ENTRY_SIZE + fmt.AEAD_OVERHEAD + fmt.PACK_TRAILER_SIZE
        count, size = 0, preamble_size

    for source in repack:
        for e in source.entries:
            if e.blob_id in seen:
                continue
            seen.add(e.blob_id)
            size += e.length
            count += 1
            if size >= fmt.PACK_TARGET_SIZE:
                flush()
    flush()
    return packs, total
