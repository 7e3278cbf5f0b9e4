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

import contextlib
import dataclasses
import logging
from dataclasses import dataclass, field

from vault import format as fmt
from vault import witness
from vault.errors import IntegrityError, ObjectNotFoundError, UnknownGenerationError
from vault.pipeline.runner import Pipeline
from vault.repo import catalog
from vault.repo.index import Index, write_index
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
    index = Index()
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
        index.add_pack(bytes.fromhex(name), good, generation)
        readable.append(fmt.IndexedPack(bytes.fromhex(name), generation, good))
    old_index = [i.handle for i in backend.list(Kind.INDEX)]
    new_handle = write_index(backend, repo.key, repo.vault_id, readable) if readable else None
    for h in old_index:
        with contextlib.suppress(ObjectNotFoundError):
            backend.remove(h)
    repo._index = index
    report.actions.append(
        f"rebuilt the index from {len(readable)} verified pack(s) ({len(index)} blobs), replacing "
        f"{len(old_index)} index object(s)"
    )

    # -- version records -----------------------------------------------------------------------------------
    broken_records: list[Handle] = []
    records = catalog.load_records(
        backend, repo.key, repo.vault_id, on_error=lambda h, exc: broken_records.append(h)
    )
    witness.removing([h.name for h in broken_records])
    for h in broken_records:
        backend.remove(h)
        report.actions.append(f"removed version record {h}: it failed authentication")

    refs = collect(repo, records)
    for rec in records:
        lost = tuple(refs.damaged.get(rec.record_id, ()))
        label = f"{rec.item} version {rec.version}"
        if lost:
            report.damaged_versions.append(label)
        if lost == rec.damaged:
            continue
        # Records are immutable: write the replacement first, then remove the old one.
        catalog.write_record(
            backend, repo.key, repo.vault_id,
            dataclasses.replace(rec, record_id=catalog.new_record_id(), damaged=lost),
        )
        witness.removing([rec.record_id])
        backend.remove(rec.handle)
        if lost:
            report.actions.append(f"marked {label} as damaged: {len(lost)} path(s) lost")
        else:
            report.actions.append(f"{label} is whole again: unmarked as damaged")

    # -- unreferenced packs ----------------------------------------------------------------------------------
    needed = refs.all
    unused = [p.pack_id for p in readable if not any(e.blob_id in needed for e in p.entries)]
    if unused:
        keep = [p for p in readable if p.pack_id not in set(unused)]
        replacement = write_index(backend, repo.key, repo.vault_id, keep) if keep else None
        if new_handle is not None:
            backend.remove(new_handle)
        new_handle = replacement
        for pid in unused:
            name = pid.hex()
            with contextlib.suppress(ObjectNotFoundError):
                backend.remove(Handle(Kind.DATA, name))
            report.bytes_freed += sizes.get(name, 0)
        report.actions.append(
            f"removed {len(unused)} pack(s) that no version references ({report.bytes_freed} bytes)"
        )
    return report


def _verify_pack(repo: Repository, name: str) -> tuple[str, int, list[fmt.BlobEntry], int, str]:
    """Read one whole pack; returns its name, its key generation, the entries whose blobs verify, how many did
    not, and an error when the pack itself (size, preamble, header) can't be read."""
    try:
        data = load_pack(repo.backend, name)
        header = parse_pack_header(lambda o, n: data[o : o + n], len(data), repo.key, repo.vault_id, name)
    except UnknownGenerationError:
        raise  # the opening key predates a rekey: rebuilding the index without this pack would lose it
    except (IntegrityError, ObjectNotFoundError) as exc:
        return name, 0, [], 0, str(exc)
    good, bad = verify_blobs(repo.key, repo.vault_id, name, data, header.entries, header.generation)
    return name, header.generation, good, len(bad), ""
