"""`vault repair`: rebuild what can be rebuilt from the stored data, and say what was done.

Runs under the exclusive lock, so no put is in flight and everything unreferenced is a leftover:
1. temporary files of interrupted writes are removed;
2. the index is rebuilt from the authenticated pack headers (one new index object, durable before the old
   ones are removed), so damaged, missing or stale index objects stop mattering;
3. version records that fail authentication are removed (they can't be read by anyone);
4. versions whose data is gone are marked damaged (a replacement record listing what is lost), never deleted;
5. packs that no version references are removed.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Protocol

from vault import format as fmt
from vault.errors import IntegrityError, ObjectNotFoundError
from vault.pipeline.runner import Pipeline
from vault.repo import catalog
from vault.repo.index import Index, write_index
from vault.repo.packs import read_pack_header
from vault.repo.repository import Repository
from vault.repo.walk import collect
from vault.storage.base import Handle, Kind

log = logging.getLogger(__name__)


class _SweepsTemporary(Protocol):
    def cleanup_temporary(self, max_age_s: float) -> list[str]: ...


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

    # -- index from pack headers ---------------------------------------------------------------------------
    pack_infos = list(backend.list(Kind.DATA))

    def header(name: str) -> tuple[str, list[fmt.BlobEntry] | None, str]:
        try:
            entries, _ = read_pack_header(backend, repo.key, repo.vault_id, name)
            return name, entries, ""
        except (IntegrityError, ObjectNotFoundError) as exc:
            return name, None, str(exc)

    index = Index()
    readable: list[tuple[bytes, list[fmt.BlobEntry]]] = []
    sizes = {i.handle.name: i.size for i in pack_infos}
    for name, entries, error in pipeline.ordered(header, [i.handle.name for i in pack_infos], pool=pipeline.io):
        if entries is None:
            report.actions.append(f"pack <data/{name[:10]}> is unreadable and was left in place: {error}")
            continue
        index.add_pack(bytes.fromhex(name), entries)
        readable.append((bytes.fromhex(name), entries))
    old_index = [i.handle for i in backend.list(Kind.INDEX)]
    new_handle = write_index(backend, repo.key, repo.vault_id, readable) if readable else None
    for h in old_index:
        with contextlib.suppress(ObjectNotFoundError):
            backend.remove(h)
    repo._index = index
    report.actions.append(
        f"rebuilt the index from {len(readable)} pack(s) ({len(index)} blobs), replacing {len(old_index)} "
        "index object(s)"
    )

    # -- version records -----------------------------------------------------------------------------------
    broken_records: list[Handle] = []
    records = catalog.load_records(
        backend, repo.key, repo.vault_id, on_error=lambda h, exc: broken_records.append(h)
    )
    for h in broken_records:
        backend.remove(h)
        report.actions.append(f"removed version record {h}: it failed authentication")

    refs = collect(repo, records)
    for rec in records:
        lost = refs.damaged.get(rec.record_id)
        label = f"{rec.item} version {rec.version}"
        if not lost:
            continue
        report.damaged_versions.append(label)
        if tuple(lost) == rec.damaged:
            continue
        marked = catalog.VersionRecord(
            record_id=catalog.new_record_id(), item=rec.item, version=rec.version, created=rec.created,
            type=rec.type, tree=rec.tree, size=rec.size, files=rec.files, bytes_added=rec.bytes_added,
            host=rec.host, damaged=tuple(lost),
        )
        catalog.write_record(backend, repo.key, repo.vault_id, marked)
        backend.remove(rec.handle)
        report.actions.append(f"marked {label} as damaged: {len(lost)} path(s) lost")

    # -- unreferenced packs ----------------------------------------------------------------------------------
    needed = refs.all
    unused = [pid for pid, entries in readable if not any(e.blob_id in needed for e in entries)]
    if unused:
        keep = [(pid, entries) for pid, entries in readable if pid not in set(unused)]
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
