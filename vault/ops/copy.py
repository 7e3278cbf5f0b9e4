"""`vault copy`: versions of items copied into another vault, which has keys of its own.

Each source version becomes a new version of the item of the same name in the destination, with the source's
creation time, host, sizes and contents (vault.ops.copy_tree re-seals its chunks and writes its trees again). The
destination's record says where it came from (``origin``: source vault id, record id, version number;
docs/format.md), and that is what makes a copy idempotent and resumable: a source version whose copy the
destination holds is skipped. Versions are copied oldest first, each committed on its own (data durable, then
indexed, then its record: the order of a put), so a copy killed at any instant leaves whole versions and
packs that the rerun finds in the index (its checkpoints are adopted, as a put adopts an interrupted put's) and
does not store again.

The copy of the previous version, when the destination has one, is the *parent* of the next: sub-trees and files
that did not change are taken over from it by id, without reading their data.

Two copies into one destination at the same time could both copy a version (there is no lock that would order
them without also stopping puts); run one at a time per destination.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from vault import format as fmt
from vault.errors import IntegrityError, NotFoundError, UsageError
from vault.names import check_name
from vault.ops.copy_tree import Translations, TreeCopier
from vault.repo import catalog
from vault.repo.catalog import VersionRecord
from vault.repo.locks import others_hold_locks
from vault.repo.tree import encode_tree
from vault.repo.writer import BlobWriter
from vault.session import Session

COMPRESSION = 3  # trees only: chunks keep the source's compression


@dataclass
class Copied:
    name: str
    version: int
    to_version: int
    bytes_added: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "to_version": self.to_version,
                "bytes_added": self.bytes_added}


@dataclass
class CopyReport:
    copied: list[Copied] = field(default_factory=list)
    already: int = 0  # versions the destination held already
    failed: list[str] = field(default_factory=list)  # "NAME version N: why"


def copied_from(record: VersionRecord, source_vault: str, src: VersionRecord) -> bool:
    """Whether destination ``record`` is a copy of source version ``src`` (by record id, or, should the source
    record have been written again under a new id, by its number and creation time)."""
    origin = record.origin
    if origin is None or origin.vault_id != source_vault:
        return False
    return origin.record_id == src.record_id or (origin.version == src.version and record.created == src.created)


class Copier:
    """One `vault copy` from ``source`` into ``dest`` (two open sessions: the source read under a shared lock,
    the destination written under one)."""

    def __init__(self, source: Session, dest: Session, on_copied: Callable[[Copied], None] | None = None,
                 note: Callable[[str], None] | None = None) -> None:
        self.src = source.repo
        self.dst = dest.repo
        self.dest = dest
        if self.src.vault_id == self.dst.vault_id:
            raise UsageError("the destination is the vault being copied from")
        self.source_vault = self.src.vault_id.hex()
        self.on_copied = on_copied
        self.note = note or (lambda text: None)
        self.memo = Translations()
        self.report = CopyReport()
        self._adopt = True

    def items(self, names: Sequence[str], version: int | None) -> list[str]:
        """The items to copy: ``names`` (each must exist, with ``version`` if given), else every item.
        NotFoundError, UsageError; checked before anything is copied."""
        if not names:
            return [latest.item for latest, _ in self.src.catalog.items()]
        for name in names:
            check_name(name)
            if not self.src.catalog.has_item(name):
                raise NotFoundError(f"no item named {name!r}")
            if version is not None and all(r.version != version for r in self.src.catalog.versions(name)):
                raise NotFoundError(f"{name!r} has no version {version}")
        return list(dict.fromkeys(names))

    def run(self, names: Sequence[str], version: int | None = None) -> CopyReport:
        for item in self.items(names, version):
            self.copy_item(item, version)
        self.dest.compact()
        return self.report

    def copy_item(self, item: str, version: int | None) -> None:
        mine = self.src.catalog.versions(item)
        theirs = [r for r in self.dst.catalog.versions(item) if r.origin is not None]
        copies: dict[int, VersionRecord] = {}  # source version number -> its copy in the destination
        for src in mine:
            match = next((r for r in theirs if copied_from(r, self.source_vault, src)), None)
            if match is not None:
                copies[src.version] = match
        for src in mine:
            if version is not None and src.version != version:
                continue
            if src.version in copies:
                self.report.already += 1
                continue
            parent = self._parent(src, mine, copies)
            try:
                record = self.copy_version(src, parent)
            except IntegrityError as exc:
                self.report.failed.append(f"{item} version {src.version}: {exc.message}")
                self.note(f"warning: could not copy {item} version {src.version}: {exc.message}")
                continue
            copies[src.version] = record
            done = Copied(item, src.version, record.version, record.bytes_added)
            self.report.copied.append(done)
            if self.on_copied is not None:
                self.on_copied(done)

    def _parent(self, src: VersionRecord, mine: list[VersionRecord], copies: dict[int, VersionRecord]
                ) -> tuple[VersionRecord, VersionRecord] | None:
        """The nearest earlier source version whose copy the destination holds (else the nearest later one)."""
        usable = [(r, copies[r.version]) for r in mine if r.version in copies and not copies[r.version].damaged]
        earlier = [pair for pair in usable if pair[0].version < src.version]
        if earlier:
            return earlier[-1]
        return usable[0] if usable else None

    def copy_version(self, src: VersionRecord, parent: tuple[VersionRecord, VersionRecord] | None) -> VersionRecord:
        """Copy one version and commit its record in the destination; returns the record. IntegrityError when
        the source's data is damaged (nothing is committed then)."""
        writer = BlobWriter(self.dst, self.dest.pipeline, COMPRESSION)
        if self._adopt:
            self._adopt = False
            self._adopt_interrupted(writer)
        try:
            root = self.src.root_node(src)
            pair = None
            if parent is not None:
                pair = (self.src.root_node(parent[0]), self.dst.root_node(parent[1]))
            new_root = TreeCopier(self.src, writer, self.dest.pipeline, self.memo).copy_root(root, pair)
            tree_id = writer.store_one(encode_tree([new_root]), fmt.BlobType.TREE)
            writer.finish()  # data and index durable before the record names them
        except BaseException:
            writer.abort()
            raise
        self.dst.refresh_catalog()
        record = VersionRecord(
            record_id=catalog.new_record_id(), item=src.item, version=self.dst.catalog.max_version(src.item) + 1,
            created=src.created, type=src.type, tree=tree_id, size=src.size, files=src.files,
            bytes_added=writer.bytes_added, host=src.host or socket.gethostname(),
            origin=fmt.RecordOrigin(self.source_vault, src.record_id, src.version),
        )
        return self.dst.commit_record(record)

    def _adopt_interrupted(self, writer: BlobWriter) -> None:
        """Checkpoints of a copy (or put) that died, while no other process holds a lock: fold them in."""
        lock = self.dest.lock
        if self.dst.index.checkpoints and lock is not None and not others_hold_locks(self.dst, lock):
            packs = writer.adopt_checkpoints()
            self.dest.notes.append(f"found {packs} pack(s) stored by an interrupted copy or put; reusing them")
