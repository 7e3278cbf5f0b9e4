"""Every change of a vault's stored metadata (index objects and version records), in the order that keeps a crash
harmless. :class:`Changes` is a base class of vault.repo.repository.Repository, so callers write
``repo.commit_records(...)``; nothing else writes or deletes index objects or version records.

The order (design invariant 7):

- data first: a pack is indexed (checkpoint or merged object) only once it is durable, and a version record only
  names blobs that are durable and indexed;
- new before old: an object that supersedes others (a merged index, a replacement record, a segment) is durable
  before the objects it replaces are deleted, so a crash in between leaves both, never neither;
- removals of version records are announced to ``witness`` first (vault.witness), so the machine that made them
  never takes them for a rollback of the storage.

The cache is told about each change as it is made, so the command that made it need not read it back.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

from vault import format as fmt
from vault.errors import IntegrityError
from vault.repo.catalog import VersionRecord, replaced
from vault.repo.index import compact_index, split_packs, write_index, write_index_object
from vault.storage.base import Handle, Held, Kind, remove_all

if TYPE_CHECKING:
    from vault.cache import BlobIndex, Cache
    from vault.crypto.keyring import Keyring
    from vault.repo.catalog import Catalog
    from vault.repo.config import VaultConfig
    from vault.storage.base import Backend

log = logging.getLogger(__name__)

OnError = Callable[[Handle, IntegrityError], None]

# How often commit_records moves a record to a fresh number when another put keeps taking the same one.
_RENUMBER_ATTEMPTS = 8


class RemovalWatcher(Protocol):
    """Told about version records before they are deleted, and after (vault.witness.Witness)."""

    def removing(self, record_ids: list[str], replaced_by: dict[str, str] | None = None) -> None: ...

    def removed(self, record_ids: list[str]) -> None: ...


class Changes:
    """The metadata-changing methods of a repository. Needs ``backend``, ``key``, ``vault_id``, ``config``,
    ``witness``, ``cache``, ``index`` and ``catalog`` from the class it is mixed into."""

    backend: Backend
    key: Keyring
    config: VaultConfig
    witness: RemovalWatcher | None
    held: Held

    @property
    def vault_id(self) -> bytes:
        raise NotImplementedError

    @property
    def cache(self) -> Cache:
        raise NotImplementedError

    @property
    def index(self) -> BlobIndex:
        raise NotImplementedError

    @property
    def catalog(self) -> Catalog:
        raise NotImplementedError

    def refresh_blobs(self, *, full: bool = False, on_error: OnError | None = None) -> BlobIndex:
        raise NotImplementedError

    # -- the index -------------------------------------------------------------------------------------------
    def save_checkpoint(self, pack: fmt.IndexedPack) -> Handle:
        """Index one pack that is durable already, in a checkpoint object of its own (a running put's, so a
        rerun after a crash reuses it), and take it into the index. Thread-safe."""
        info = write_index_object(self.backend, self.key, self.vault_id, [pack], checkpoint=True)
        self.index.add_object(info.handle.name, True, [pack], info.tag)
        return info.handle

    def commit_packs(self, packs: Sequence[fmt.IndexedPack], retire: Iterable[Handle]) -> None:
        """Index ``packs`` (durable already) in as few objects as their size allows; once they are durable,
        delete the index objects in ``retire`` (the checkpoints they say everything of)."""
        for group in split_packs(packs):
            info = write_index_object(self.backend, self.key, self.vault_id, group)
            self.index.add_object(info.handle.name, False, group, info.tag)
        self._delete_index_objects([h.name for h in retire])

    def reindex(self, packs: Iterable[fmt.IndexedPack]) -> None:
        """Make ``packs`` the whole index: objects listing them (split by size), durable before every index
        object that existed before is deleted. Only under the exclusive lock (a put's objects written meanwhile
        would go). ``packs`` may be a stream (prune reads it from the cache): it is written as it comes."""
        old = [info.handle.name for info in self.backend.list(Kind.INDEX)]
        for group in split_packs(packs):  # only the storage changes while the cache streams ``packs``
            write_index(self.backend, self.key, self.vault_id, group)
        self._delete_index_objects(old)
        self.refresh_blobs()  # takes in the new objects (nothing of them kept in memory meanwhile)

    def delete_packs(self, pack_ids: Iterable[bytes]) -> None:
        """Delete packs that the index no longer lists (after :meth:`reindex`); missing ones are fine. Packs that
        retention holds are hidden instead (gone from listings, still stored) and counted in :attr:`held`."""
        self.held.merge(remove_all(self.backend, (Handle(Kind.DATA, p.hex()) for p in pack_ids)))

    def take_held(self) -> Held:
        """What deletions since the last call could only hide (retention holds it stored until a date), and
        start counting afresh. Commands report it; a later `prune` deletes it once the date has passed."""
        out = Held(self.held.count, self.held.until)
        self.held.count, self.held.until = 0, None  # in place: the catalog counts into the same object
        return out

    def compact(self, alone: Callable[[], bool]) -> None:
        """Keep listings short: merge small index objects (safe beside other puts), and in a vault of format 3 or
        later fold loose version records into segments, when ``alone()`` says no other process holds a lock (a
        put that finds its number taken moves its record, which must not race a compaction). Versions that
        write-only keys added are numbered first, on the same condition (:meth:`settle_versions`). ``alone`` is
        asked only when there is something to do."""
        compact_index(self.index, self.backend, self.key, self.vault_id)
        unsettled = bool(self.catalog.unsettled_items())
        fold = self.config.format_version >= fmt.FORMAT_VERSION_SEGMENTS and self.catalog.needs_compaction()
        if (unsettled or fold) and alone():
            if unsettled:
                self.settle_versions()
            if fold:
                self.catalog.compact()

    def _delete_index_objects(self, names: Sequence[str]) -> None:
        self.held.merge(remove_all(self.backend, (Handle(Kind.INDEX, name) for name in names)))  # never locked
        self.index.drop_objects(names)

    # -- version records -------------------------------------------------------------------------------------
    def commit_records(self, records: Sequence[VersionRecord]) -> list[VersionRecord]:
        """Write version records (their data durable and indexed already), then make sure no other record of
        their items holds the same numbers; returns the records as committed.

        Two puts of one item at the same time may both pick ``max + 1``. After writing, we look again (one
        listing for all the records); a record whose number another holds is moved to a fresh ``max + 1`` (the
        new record written, then ours deleted). Both racers may move, which leaves a gap in the numbers but never
        two versions with one number once both have returned; random pauses break repeated ties.
        """
        mine = list(records)
        for record in mine:
            self.catalog.write(record)
        for _ in range(_RENUMBER_ATTEMPTS):
            self.catalog.sync()
            clashes = [i for i, r in enumerate(mine) if self.catalog.at(r.item, r.version) != [r.record_id]]
            if not clashes:
                break
            time.sleep(secrets.randbelow(200) / 1000)
            for i in clashes:
                mine[i] = self.replace_record(mine[i], version=self.catalog.max_version(mine[i].item) + 1)
        return mine

    def settle_versions(self) -> int:
        """Write into their records the numbers readers give the versions write-only keys added (vault.repo.numbering):
        each unnumbered record is written again with its number (a new record id), then the old one is removed,
        announced to the witness like any removal. Call only while no other process can write version records of
        the vault (the exclusive lock, or a put that found no other lock holder): two settlers could each write a
        copy. Returns how many versions were numbered."""
        settled = 0
        for item in self.catalog.unsettled_items():
            for record in self.catalog.versions(item):
                if not record.settled:
                    self.replace_record(record, version=record.version, settled=True)
                    settled += 1
        if settled:
            log.info("numbered %d version(s) that write-only keys added", settled)
        return settled

    def commit_record(self, record: VersionRecord) -> VersionRecord:
        """:meth:`commit_records` of one record."""
        return self.commit_records([record])[0]

    def replace_record(self, old: VersionRecord, **changes: object) -> VersionRecord:
        """Write ``old`` with ``changes`` (sealed under the current key generation) as a new record, then delete
        ``old``. Returns the new record. The witness hears of it first, naming the replacement: a command killed
        before the replacement is durable leaves ``old`` in place; one killed after it is finished by the next
        command that holds the exclusive lock, so the version is never shown twice for long, nor lost."""
        new = replaced(old, **changes)
        if self.witness is not None:
            self.witness.removing([old.record_id], replaced_by={old.record_id: new.record_id})
        self.catalog.write(new)
        self.remove_records([old.record_id])
        return new

    def remove_records(self, record_ids: Sequence[str]) -> None:
        """Delete version records (by record id) wherever they are held; already missing ones are fine. The
        witness hears of them first (and after, once they are gone), so a command killed half way is finished
        by the next one instead of being taken for a rollback."""
        if not record_ids:
            return
        ids = list(record_ids)
        if self.witness is not None:
            self.witness.removing(ids)
        self.catalog.remove(ids)
        if self.witness is not None:
            self.witness.removed(ids)

    def remove_catalog_objects(self, handles: Sequence[Handle]) -> None:
        """Delete objects of ``versions/`` that can't be read at all (repair: they failed authentication)."""
        self.catalog.delete_objects([h.name for h in handles])
