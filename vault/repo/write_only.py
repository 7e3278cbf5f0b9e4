"""A vault opened with a write-only key: it adds data (a put) and reads nothing that is stored.

:class:`WriteOnlyRepository` is a Repository whose index is the key's local record (vault.repo.local_record) and
whose catalog knows only the item roots this machine put (:class:`LocalCatalog`); everything it writes is sealed
to the vault's public key (vault.repo.objects, vault.repo.packs, vault.repo.blobs). A put runs the same code as
under a full key (vault.archive): packs, checkpoints, the merged index and the version records, in the same order,
so a crash leaves what a full key's interrupted put leaves. What differs:

- dedup and unchanged files come from the local record, and only from it: the key never learns whether data it
  did not store itself is in the vault (no dedup oracle; docs/security.md);
- its version records carry no number (0): full keys number them by creation time after the numbered ones, and
  the next full-key command that has the vault to itself settles those numbers (vault.repo.changes);
- it merges no index objects and folds no records (it can read neither), and removes nothing but its own
  checkpoints once its merged index object is durable.

Every other operation a Repository offers raises NotPermittedError (exit 13): the session refuses commands
outside the write-only set before they start (vault.session), so reaching one of these is a bug that fails
loudly instead of reading with a key that can't.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from vault import format as fmt
from vault.cache import BlobIndex, Cache
from vault.crypto.write_only import WriteOnlyKeyring, not_permitted
from vault.errors import IntegrityError, NotPermittedError, VaultError
from vault.pipeline.timing import NO_TIMING, StageTimer
from vault.repo.catalog import Catalog, VersionRecord, write_record
from vault.repo.local_record import LocalRecord
from vault.repo.repository import Repository
from vault.repo.tree import Node, decode_tree
from vault.storage.base import Handle, Kind

log = logging.getLogger(__name__)


def refuse(repo: Repository, command: str) -> NoReturn:
    """Refuse ``command`` (not in the write-only set) for a write-only key: NotPermittedError, exit 13, one line,
    raised before the command locks or reads anything. Closes ``repo``."""
    repo.close()
    what = f"`vault {command}`" if command and command != "python" else "this"
    raise NotPermittedError(f"{what} needs a full key: the key in use can only add data (a write-only key)")


class _Refused:
    """Stands where a full key has its metadata cache: any use is NotPermittedError."""

    def __getattr__(self, name: str) -> NoReturn:
        not_permitted("reading the vault's metadata")


class LocalCatalog(Catalog):
    """The catalog as a write-only put sees it: the latest root this machine put of each item, from the local
    record. Anything else a catalog answers needs the vault's records, which this key can't read."""

    def __init__(self, record: LocalRecord) -> None:  # not Catalog.__init__: there is nothing to sync
        self.record = record
        self.cache = _Refused()  # type: ignore[assignment]
        self.damaged = []

    def sync(self, *, full: bool = False, on_error: Any = None) -> None:
        """Nothing to catch up with: the records in the storage are sealed to a key this one does not hold."""

    def latest(self, item: str, undamaged: bool = False) -> VersionRecord | None:
        """A stand-in for the item's latest version as this machine put it (only ``tree`` and ``type`` are real):
        what an incremental put compares with. None when this machine never put the item under this key."""
        found = self.record.latest(item)
        if found is None:
            return None
        tree, kind = found
        return VersionRecord("", item, 0, "", kind, tree, 0, 0, 0, "")

    def max_version(self, item: str) -> int:
        """Version records of a write-only key carry no number; readers number them (``-1``: the put commits
        number 0, "not numbered yet")."""
        return -1

    # Every query reads the cache, which refuses; the changes that would touch the storage first refuse here.
    def write(self, record: VersionRecord) -> None:
        not_permitted("writing version records through the catalog")

    def write_segment(self, records: Sequence[tuple[str, bytes]]) -> str:
        not_permitted("folding version records")

    def delete_objects(self, names: Any) -> None:
        not_permitted("removing versions")


@dataclass
class WriteOnlyRepository(Repository):
    """An opened vault under a write-only key (see the module docstring)."""

    _local: LocalRecord | None = field(default=None, repr=False)

    @property
    def write_only(self) -> bool:
        return True

    @property
    def local(self) -> LocalRecord:
        """The key's local record, opened on first use, once the storage was listed: its blobs count only while
        their packs are still stored (the put holds its shared lock by then, so no prune runs meanwhile)."""
        with self._sync_lock:
            if self._local is None:
                assert isinstance(self.key, WriteOnlyKeyring)
                record = LocalRecord.open(self.cache_dir, self.key)
                forgotten = record.keep_packs(info.handle.name for info in self.backend.list(Kind.DATA))
                if forgotten:
                    log.info("%d blob(s) this key stored are gone from the storage (pruned); stored again if needed",
                             forgotten)
                record.begin_put()
                self._local = record
            return self._local

    # -- what a put reads: the local record ------------------------------------------------------------------
    @property
    def index(self) -> BlobIndex:
        return self.local  # type: ignore[return-value]  # the subset of BlobIndex a put uses

    @property
    def catalog(self) -> Catalog:
        return LocalCatalog(self.local)

    def refresh_catalog(self, *, full: bool = False, on_error: Any = None) -> Catalog:
        return self.catalog

    def load_tree(self, tree_id: bytes) -> list[Node]:
        """A tree this machine stored under this key (the local record's copy). IntegrityError when it is not
        there: the put then reads the files again."""
        return decode_tree(self.local.load_tree(tree_id), f"tree {tree_id.hex()[:10]}")

    def remember_tree(self, tree_id: bytes, plain: bytes) -> None:
        """Every tree a put stores or reuses goes to the local record (vault.repo.writer calls this)."""
        self.local.remember_tree(tree_id, plain)

    # -- committing ------------------------------------------------------------------------------------------
    def commit_records(self, records: Sequence[VersionRecord]) -> list[VersionRecord]:
        """Write the version records (unnumbered, sealed to the public key; their data durable and indexed
        already), then remember each item's root for the next put. No renumbering: numbers are the readers'."""
        for record in records:
            write_record(self.backend, self.key, self.vault_id, record)
        try:
            self.local.commit([(r.item, r.tree, r.type) for r in records])
        except VaultError as exc:  # committed all the same: the next put just reads the files again
            log.warning("could not update the write-only key's local record: %s", exc)
        return list(records)

    def compact(self, alone: Callable[[], bool]) -> None:
        """Nothing: merging index objects or folding records needs reading them."""

    def close(self) -> None:
        with self._sync_lock:
            if self._local is not None:
                self._local.close()
                self._local = None

    # -- everything else reads or removes: refused -----------------------------------------------------------
    @property
    def cache(self) -> Cache:
        not_permitted("reading the vault's metadata")

    def refresh_blobs(self, *, full: bool = False, on_error: Any = None) -> BlobIndex:
        not_permitted("reading the vault's index")

    def readable_record_ids(self) -> set[str]:
        not_permitted("reading the vault's version records")

    def locate(self, blob_id: bytes, blob_type: int) -> Any:
        not_permitted("reading stored data")

    def load_blob(self, blob_id: bytes, blob_type: int = fmt.BlobType.DATA, *, timer: StageTimer = NO_TIMING) -> bytes:
        not_permitted("reading stored data")

    def records(self) -> list[VersionRecord]:
        not_permitted("reading the vault's version records")

    def root_node(self, record: VersionRecord) -> Node:
        nodes = self.load_tree(record.tree)
        if len(nodes) != 1 or nodes[0].type != record.type:
            raise IntegrityError(f"the root tree of {record.item} in the local record is malformed")
        return nodes[0]

    def reindex(self, packs: Any) -> None:
        not_permitted("rewriting the index")

    def delete_packs(self, pack_ids: Any) -> None:
        not_permitted("deleting data")

    def remove_records(self, record_ids: Sequence[str]) -> None:
        not_permitted("removing versions")

    def replace_record(self, old: VersionRecord, **changes: object) -> VersionRecord:
        not_permitted("changing versions")

    def remove_catalog_objects(self, handles: Sequence[Handle]) -> None:
        not_permitted("removing versions")

    def use_keyring(self, keyring: Any) -> None:
        not_permitted("changing keys")

    def object_counts(self) -> dict[str, int]:
        """How many objects of each kind the storage lists (what a write-only key may know: counts and sizes)."""
        return {kind.value: sum(1 for _ in self.backend.list(kind))
                for kind in (Kind.DATA, Kind.INDEX, Kind.VERSIONS, Kind.KEYS)}
