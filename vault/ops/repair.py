"""`vault repair`: rebuild what can be rebuilt from the stored data, and say what was done.

Runs under the exclusive lock, so no put is in flight and everything unreferenced is a leftover:
1. temporary files of interrupted writes are removed;
2. every pack is read and every blob verified (authenticated, decompressed, its keyed id recomputed); the
   index is rebuilt from the authenticated pack headers without the blobs that failed (one new index object,
   durable before the old ones are removed), so damaged, missing or stale index objects stop mattering, and a
   later `put` of the intact original stores a damaged chunk afresh instead of reusing it;
3. version records that fail authentication are removed (they can't be read by anyone);
4. versions whose data is gone are marked damaged (a replacement record listing what is lost), never deleted;
   a version marked damaged whose data is all there again (the lost files were put again) is unmarked;
5. packs that no version references are removed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from vault import format as fmt
from vault.errors import IntegrityError, ObjectNotFoundError
from vault.pipeline.runner import Pipeline
from vault.repo.packs import load_pack, parse_pack_header, verify_blobs
from vault.repo.repository import Repository
from vault.repo.walk import collect
from vault.storage.base import Handle, Kind

log = logging.getLogger(__name__)


@dataclass
class RepairReport:
    actions: list[str] = field(default_factory=list)
    damaged_versions: list[str] = field(default_factory=list)
    bytes_freed: int = 0

    def to_json(self) -> dict[str, object]:
        return {"actions": self.actions, "damaged_versions": self.damaged_versions, "bytes_freed": self.bytes_freed}


def repair(repo: Repository, pipeline: Pipeline) -> RepairReport:
    report = RepairReport()
    backend = repo.backend

    sweep = getattr(backend, "cleanup_temporary", None)
    if sweep is not None:
        for path in sweep(0.0):
            report.actions.append(f"removed temporary file {path}")

    # -- index from verified packs -------------------------------------------------------------------------
    pack_infos = list(backend.list(Kind.DATA))
    sizes = {i.handle.name: i.size for i in pack_infos}
    readable: list[fmt.IndexedPack] = []
    damaged_blobs = 0
    for name, generation, good, bad, error in pipeline.ordered(
        lambda name: _verify_pack(repo, name), list(sizes), max_in_flight=4, pool=pipeline.io
    ):
        if error:
            report.actions.append(f"pack <data/{name[:10]}> is unreadable and was left in place: {error}")
            continue
        if bad:
            damaged_blobs += bad
            report.actions.append(f"pack <data/{name[:10]}>: {bad} damaged blob(s) left out of the index")
        readable.append(fmt.IndexedPack(bytes.fromhex(name), generation, good))
    old_objects = sum(1 for _ in backend.list(Kind.INDEX))
    repo.reindex(readable)
    report.actions.append(
        f"rebuilt the index from {len(readable)} verified pack(s) ({len(repo.index)} blobs), replacing "
        f"{old_objects} index object(s)"
    )

    # -- version records -----------------------------------------------------------------------------------
    broken_records: list[Handle] = []
    repo.refresh_catalog(full=True, on_error=lambda h, exc: broken_records.append(h))
    repo.remove_catalog_objects(broken_records)
    records = sorted(repo.catalog.all(), key=lambda r: (r.item, r.version, r.record_id))
    for h in broken_records:
        report.actions.append(f"removed version record {h}: it failed authentication")

    refs = collect(repo, records)
    for rec in records:
        lost = tuple(refs.damaged.get(rec.record_id, ()))
        label = f"{rec.item} version {rec.version}"
        if lost:
            report.damaged_versions.append(label)
        if lost == rec.damaged:
            continue
        repo.replace_record(rec, damaged=lost)  # records are immutable: a replacement, then the old one goes
        if lost:
            report.actions.append(f"marked {label} as damaged: {len(lost)} path(s) lost")
        else:
            report.actions.append(f"{label} is whole again: unmarked as damaged")

    # -- unreferenced packs ----------------------------------------------------------------------------------
    unused = [p.pack_id for p in readable if not any(e.blob_id in refs for e in p.entries)]
    if unused:
        gone = set(unused)
        repo.reindex([p for p in readable if p.pack_id not in gone])
        repo.delete_packs(unused)
        report.bytes_freed += sum(sizes.get(pid.hex(), 0) for pid in unused)
        report.actions.append(
            f"removed {len(unused)} pack(s) that no version references ({report.bytes_freed} bytes)"
        )
    held = repo.take_held()
    if held:  # a retention holds some of what was removed: hidden from the vault, deleted by a later prune
        report.actions.append(f"{held.count} removed object(s) stay stored, hidden, until {held.until_iso()} "
                              "(retention); a later `vault prune` deletes them then")
    return report


def _verify_pack(repo: Repository, name: str) -> tuple[str, int, list[fmt.BlobEntry], int, str]:
    """Read one whole pack; returns its name, its key generation, the entries whose blobs verify, how many did
    not, and an error when the pack itself (size, preamble, header) can't be read."""
    try:
        data = load_pack(repo.backend, name)
        header = parse_pack_header(lambda o, n: data[o : o + n], len(data), repo.key, repo.vault_id, name)
    except (IntegrityError, ObjectNotFoundError) as exc:
        return name, 0, [], 0, str(exc)
    good, bad = verify_blobs(repo.key, repo.vault_id, name, data, header.entries, header.generation)
    return name, header.generation, good, len(bad), ""
