"""`vault check`: verify structure, and with ``read_data`` every stored byte.

Structure: every version record decrypts, every tree decodes, every blob the trees need is in the index, every
pack the index names exists and its authenticated header lists the same blobs at the same places. With
``read_data`` every indexed blob is read, authenticated, decompressed and its keyed id recomputed.
Problems are collected, not raised, and reported with the items and versions they affect.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from vault import format as fmt
from vault.cache import BlobLocation
from vault.errors import IntegrityError, ObjectNotFoundError, StorageError, UnknownGenerationError
from vault.pipeline.runner import Pipeline
from vault.repo.blobs import open_blob, verify_blob_id
from vault.repo.catalog import VersionRecord
from vault.repo.packs import load_pack, read_pack_header, verify_blobs
from vault.repo.repository import Repository
from vault.repo.tree import Node
from vault.repo.walk import collect
from vault.storage.base import Handle, Kind

Progress = Callable[[int], None]


@dataclass
class CheckReport:
    versions: int = 0
    packs: int = 0
    blobs_read: int = 0
    bytes_read: int = 0
    problems: list[str] = field(default_factory=list)
    known_damaged: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "versions": self.versions,
            "packs": self.packs,
            "blobs_read": self.blobs_read,
            "bytes_read": self.bytes_read,
            "problems": self.problems,
            "known_damaged": self.known_damaged,
            "notes": self.notes,
        }


def _label(rec: VersionRecord) -> str:
    return f"{rec.item} version {rec.version}"


def _check_pack(repo: Repository, pack: fmt.IndexedPack) -> list[str]:
    name = pack.pack_id.hex()
    try:
        header, _ = read_pack_header(repo.backend, repo.key, repo.vault_id, name)
    except ObjectNotFoundError:
        return [f"pack {Handle(Kind.DATA, name)} is missing ({len(pack.entries)} blobs)"]
    except IntegrityError as exc:
        return [str(exc)]
    in_header = {e.blob_id: e for e in header.entries}
    wrong = sum(1 for e in pack.entries if in_header.get(e.blob_id) != e)
    problems = [f"pack {Handle(Kind.DATA, name)}: {wrong} blob(s) differ from the index"] if wrong else []
    if header.generation != pack.generation:
        problems.append(
            f"pack {Handle(Kind.DATA, name)} is sealed under key generation {header.generation}, the index says "
            f"{pack.generation}"
        )
    return problems


def _read_pack(repo: Repository, pack: fmt.IndexedPack) -> tuple[list[bytes], int, int]:
    """Read a whole pack and verify each blob. Returns (bad blob ids, blobs read, bytes read)."""
    entries = list(pack.entries)
    try:
        data = load_pack(repo.backend, pack.pack_id.hex())
    except IntegrityError:  # missing or oversized: every blob in it is lost
        return [e.blob_id for e in entries], 0, 0
    _, bad = verify_blobs(repo.key, repo.vault_id, pack.pack_id.hex(), data, entries, pack.generation)
    return [e.blob_id for e in bad], len(entries), len(data)


def check(
    repo: Repository, pipeline: Pipeline, read_data: bool = False, on_progress: Progress | None = None
) -> CheckReport:
    """Verify the vault against the storage itself: the index and the catalog are rebuilt from every index
    object and version record (never taken from the cache), then every tree is walked and every pack's header
    compared with the index; ``read_data`` also reads and verifies every blob. Problems are collected in the
    report, not raised. Memory stays bounded: packs stream from the cache's tables, references go to a table."""
    report = CheckReport()
    repo.refresh_catalog(full=True, on_error=lambda h, exc: report.problems.append(f"version record {h}: {exc}"))
    repo.refresh_blobs(full=True, on_error=lambda h, exc: report.problems.append(f"index object {h}: {exc}"))
    records = sorted(repo.catalog.all(), key=lambda r: (r.item, r.version, r.record_id))
    report.versions = len(records)
    refs = collect(repo, records)
    for rec in records:
        found = refs.damaged.get(rec.record_id)
        if rec.damaged:
            report.known_damaged.append(f"{_label(rec)} (marked damaged by repair)")
        elif found:
            report.problems.extend(f"{_label(rec)}: {p}" for p in found)

    bad_blobs: set[bytes] = set()
    packs = repo.index.packs()
    for pack, problems in pipeline.ordered(lambda p: (p, _check_pack(repo, p)), packs):
        report.packs += 1
        if problems:
            report.problems.extend(problems)
            bad_blobs.update(e.blob_id for e in pack.entries)
    if read_data:
        # Few packs in flight: each may be up to MAX_PACK_SIZE in memory.
        read = pipeline.ordered(lambda p: (p.pack_id, _read_pack(repo, p)), repo.index.packs(), max_in_flight=3,
                                pool=pipeline.io)
        failed: set[tuple[bytes, bytes]] = set()  # (blob id, pack id)
        for pack_id, (bad, blobs, nbytes) in read:
            report.blobs_read += blobs
            report.bytes_read += nbytes
            if on_progress:
                on_progress(nbytes)
            for blob_id in bad:
                if blob_id not in {b for b, _ in failed}:
                    report.problems.append(f"blob {blob_id.hex()[:10]} failed verification")
                failed.add((blob_id, pack_id))
        bad_blobs.update(_without_a_good_copy(repo, failed))
    if bad_blobs:
        for rec in affected(repo, records, bad_blobs):
            report.problems.append(f"{_label(rec)} needs damaged or missing data")
    try:
        stray = repo.index.unindexed_packs(info.handle.name for info in repo.backend.list(Kind.DATA))
    except StorageError:
        stray = []
    if stray:
        report.notes.append(
            f"{len(stray)} pack(s) are not in the index (a put in progress, or an interrupted one; "
            "`vault repair` indexes or removes them)"
        )
    return report


def _without_a_good_copy(repo: Repository, failed: set[tuple[bytes, bytes]]) -> set[bytes]:
    """The ids among ``failed`` (blob id, pack) that no other copy holds: a copy a write-only key sealed that is
    not what its id says (forged, or damaged) is a problem to report, but versions are damaged only when the
    blob has no good copy (the reader falls back on it: Repository.load_blob)."""
    out = set()
    for blob_id in {b for b, _ in failed}:
        others = [loc for loc in repo.index.locations(blob_id) if (blob_id, loc.pack_id) not in failed]
        if not any(_verifies(repo, loc) for loc in others):
            out.add(blob_id)
    return out


def _verifies(repo: Repository, loc: BlobLocation) -> bool:
    """Whether the copy at ``loc`` (one the pass over resolved copies did not read) opens and matches its id."""
    what = f"blob {loc.entry.blob_id.hex()[:10]} in pack {loc.pack_handle}"
    try:
        sealed = repo.backend.load(loc.pack_handle, loc.entry.offset, loc.entry.length)
        verify_blob_id(repo.key, open_blob(repo.key, repo.vault_id, loc.entry, sealed, what, loc.generation),
                       loc.entry, what)
    except (IntegrityError, UnknownGenerationError, ObjectNotFoundError):
        return False
    return True


@dataclass
class _Reach:
    """A tree being walked by :func:`affected`: its entries still to come and the sub-tree awaited."""

    tree_id: bytes
    entries: Iterator[Node]
    waiting: bytes | None = None


def affected(repo: Repository, records: list[VersionRecord], bad: set[bytes]) -> list[VersionRecord]:
    """The versions whose trees reach any of ``bad`` (trees or data). Walks with a stack of its own (any
    depth), each tree once; a tree that can't be read counts as reaching ``bad``, a directory that contains
    itself adds nothing (collect() reports the cycle)."""
    memo: dict[bytes, bool] = {}

    def start(tree_id: bytes) -> _Reach | None:
        """A frame to walk ``tree_id`` with, or None when memo has its answer already."""
        if tree_id in memo:
            return None
        if tree_id in bad:
            memo[tree_id] = True
            return None
        try:
            return _Reach(tree_id, iter(repo.load_tree(tree_id)))
        except IntegrityError:
            memo[tree_id] = True
            return None

    def reaches(root: bytes) -> bool:
        first = start(root)
        stack = [first] if first is not None else []
        on_stack = {root}
        while stack:
            frame = stack[-1]
            hit = frame.waiting is not None and memo[frame.waiting]
            frame.waiting = None
            descended = False
            while not hit and not descended and (n := next(frame.entries, None)) is not None:
                if n.type == "file":
                    hit = any(c in bad for c in n.content)
                elif n.type == "dir" and n.subtree is not None and n.subtree not in on_stack:
                    child = start(n.subtree)
                    if child is None:
                        hit = memo[n.subtree]
                    else:
                        frame.waiting = n.subtree
                        stack.append(child)
                        on_stack.add(n.subtree)
                        descended = True
            if not descended:
                memo[frame.tree_id] = hit
                stack.pop()
                on_stack.discard(frame.tree_id)
        return memo[root]

    return [r for r in records if not r.damaged and reaches(r.tree)]
