"""An opened vault: its backend, config, keys and (lazily) index; and every change of its stored metadata.

Everything above builds on this. Reading: blobs, trees, version records. Changing: the methods under "changing
stored metadata" are the only code that writes or deletes index objects and version records, and they keep the
design's order (invariant 7) so callers can't get it wrong:

- data first: a pack is indexed (checkpoint or merged object) only once it is durable, and a version record only
  names blobs that are durable and indexed;
- new before old: an object that supersedes others (a merged index, a replacement record) is durable before the
  objects it replaces are deleted, so a crash in between leaves both, never neither;
- removals of version records are announced to ``witness`` first (vault.witness), so the machine that made them
  never takes them for a rollback of the storage.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from vault import format as fmt
from vault.crypto import kdf
from vault.crypto.keyring import Keyring, new_keyring
from vault.crypto.slot_store import KeyStore
from vault.crypto.slots import POLICY_DEFAULT, KeySlot
from vault.errors import ConflictError, IntegrityError, ObjectNotFoundError
from vault.pipeline.timing import NO_TIMING, Stage, StageTimer
from vault.repo import catalog
from vault.repo.blobs import open_blob
from vault.repo.config import CONFIG_HANDLE, VaultConfig, load_config, new_config
from vault.repo.index import BlobLocation, Index, load_index, write_index
from vault.repo.tree import Node, decode_tree
from vault.storage.base import Backend, Handle, Kind

log = logging.getLogger(__name__)

# How often commit_record moves its record to a fresh number when another put keeps taking the same one.
_RENUMBER_ATTEMPTS = 8


class RemovalWatcher(Protocol):
    """Told about version records before they are deleted (vault.witness.Witness)."""

    def removing(self, names: list[str]) -> None: ...


@dataclass
class Repository:
    backend: Backend
    config: VaultConfig
    key: Keyring
    slot: KeySlot
    witness: RemovalWatcher | None = field(default=None, repr=False)
    _index: Index | None = field(default=None, repr=False)
    _reload_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def vault_id(self) -> bytes:
        return self.config.vault_id

    @property
    def keys(self) -> KeyStore:
        return KeyStore(self.backend, self.vault_id)

    # -- lifecycle -------------------------------------------------------------------------------------------
    @classmethod
    def create(
        cls, backend: Backend, password: bytes, params: kdf.KdfParams, policy: str = POLICY_DEFAULT
    ) -> Repository:
        """Make a new vault: one key slot, then the config (its presence is what makes a vault, so a crash
        before it leaves no half-made vault). ConflictError when one exists already; nothing is touched."""
        if backend.exists_root():
            try:
                backend.stat(CONFIG_HANDLE)
                raise ConflictError(f"a vault already exists at {backend.location}")
            except ObjectNotFoundError:
                pass
        backend.create_root()
        config = new_config()
        key = new_keyring(config.vault_id)
        slot = KeyStore(backend, config.vault_id).add(key, password, params, policy)
        backend.save(CONFIG_HANDLE, config.to_bytes())
        return cls(backend, config, key, slot)

    @classmethod
    def open(
        cls, backend: Backend, password: bytes, *, rehash: bool = True, config: VaultConfig | None = None
    ) -> Repository:
        """Open an existing vault. VaultNotFoundError, UnsupportedVersionError, AuthenticationError,
        IntegrityError. Slots that follow the defaults are rewrapped when the defaults grew. ``config`` is the
        vault's config when the caller has read it already (it checks for a vault before asking for a password)."""
        config = config or load_config(backend)
        store = KeyStore(backend, config.vault_id)
        key, slot = store.unlock(password)
        if rehash:
            slot = store.rehash_if_weak(slot, key, password)
        return cls(backend, config, key, slot)

    def slot_changed(self) -> bool:
        """True when the slot that opened the vault was rewritten or removed since (`rekey`, `passwd` or
        `key remove` in another process between our unlock and our lock): our keyring may be out of date."""
        try:
            # Ciphertext as stored, not a secret; compared in constant time all the same (the review's rule).
            return not hmac.compare_digest(self.keys.read_slot(self.slot.slot_id).wrapped, self.slot.wrapped)
        except (ObjectNotFoundError, IntegrityError):
            return True

    # -- index and blobs -------------------------------------------------------------------------------------
    @property
    def index(self) -> Index:
        if self._index is None:
            self._index = load_index(self.backend, self.key, self.vault_id)
        return self._index

    def locate(self, blob_id: bytes, blob_type: int) -> BlobLocation:
        loc = self.index.get(blob_id)
        if loc is None and self._index is not None:
            # A concurrent put may have merged its checkpoint index objects between our listing and our
            # reads; the version we are reading was committed after its index, so a fresh read finds it.
            with self._reload_lock:
                if self.index.get(blob_id) is None:
                    self._index = load_index(self.backend, self.key, self.vault_id)
            loc = self.index.get(blob_id)
        if loc is None or loc.entry.blob_type != blob_type:
            raise IntegrityError(f"blob {blob_id.hex()[:10]} is missing from the index; run `vault check`")
        return loc

    def load_blob(
        self, blob_id: bytes, blob_type: int = fmt.BlobType.DATA, *, timer: StageTimer = NO_TIMING
    ) -> bytes:
        """Fetch, authenticate and decode one blob. Raises IntegrityError (also for a missing pack). Reading it
        from the backend is the stage :attr:`Stage.FETCH` of ``timer``, then :func:`open_blob`'s stages."""
        loc = self.locate(blob_id, blob_type)
        what = f"blob {blob_id.hex()[:10]} in pack {loc.pack_handle}"
        try:
            with timer.stage(Stage.FETCH):
                sealed = self.backend.load(loc.pack_handle, loc.entry.offset, loc.entry.length)
        except ObjectNotFoundError:
            raise IntegrityError(f"pack {loc.pack_handle} is missing; run `vault check`") from None
        return open_blob(self.key, self.vault_id, loc.entry, sealed, what, loc.generation, timer=timer)

    def load_tree(self, tree_id: bytes) -> list[Node]:
        return decode_tree(self.load_blob(tree_id, fmt.BlobType.TREE), f"tree {tree_id.hex()[:10]}")

    # -- versions --------------------------------------------------------------------------------------------
    def records(self) -> list[catalog.VersionRecord]:
        return catalog.load_records(self.backend, self.key, self.vault_id)

    def root_node(self, record: catalog.VersionRecord) -> Node:
        nodes = self.load_tree(record.tree)
        if len(nodes) != 1 or nodes[0].type != record.type:
            raise IntegrityError(f"the root tree of {record.item} version {record.version} is malformed")
        return nodes[0]

    def stored_bytes(self) -> int:
        return sum(info.size for info in self.backend.list(Kind.DATA))

    def index_from_storage(self, on_error: Callable[[Handle, IntegrityError], None] | None = None) -> Index:
        """Read every index object again (check: ``on_error`` gets each damaged one, which is then skipped)."""
        self._index = load_index(self.backend, self.key, self.vault_id, on_error)
        return self._index

    # -- changing stored metadata: the index -----------------------------------------------------------------
    def save_checkpoint(self, pack: fmt.IndexedPack) -> Handle:
        """Index one pack that is durable already, in a checkpoint object of its own (a running put's, so a
        rerun after a crash reuses it), and add it to the index in memory. Thread-safe."""
        handle = write_index(self.backend, self.key, self.vault_id, [pack], checkpoint=True)
        self.index.add_pack(pack.pack_id, pack.entries, pack.generation)
        return handle

    def commit_packs(self, packs: Sequence[fmt.IndexedPack], retire: Iterable[Handle]) -> None:
        """Index ``packs`` (durable already) in one object; once it is durable, delete the index objects in
        ``retire`` (the checkpoints it says everything of). Adds the packs to the index in memory."""
        write_index(self.backend, self.key, self.vault_id, packs)
        for p in packs:
            self.index.add_pack(p.pack_id, p.entries, p.generation)
        self._delete(retire)

    def reindex(self, packs: Sequence[fmt.IndexedPack]) -> None:
        """Make ``packs`` the whole index: one object listing them, durable before every index object that
        existed before is deleted. Only under the exclusive lock (a put's objects written meanwhile would go).
        The index in memory becomes exactly ``packs``."""
        old = [info.handle for info in self.backend.list(Kind.INDEX)]
        if packs:
            write_index(self.backend, self.key, self.vault_id, packs)
        self._delete(old)
        index = Index()
        for p in packs:
            index.add_pack(p.pack_id, p.entries, p.generation)
        self._index = index

    def delete_packs(self, pack_ids: Iterable[bytes]) -> None:
        """Delete packs that the index no longer lists (after :meth:`reindex`); missing ones are fine."""
        self._delete(Handle(Kind.DATA, p.hex()) for p in pack_ids)

    # -- changing stored metadata: version records -----------------------------------------------------------
    def commit_record(self, record: catalog.VersionRecord) -> catalog.VersionRecord:
        """Write a version record (its data durable and indexed already), then make sure no other record of
        the item holds the same number, and return the record as committed.

        Two puts of one item at the same time may both pick ``max + 1``. After writing, we look again; if another
        record has our number we move ours to a fresh ``max + 1`` (write the new record, then delete ours). Both
        racers may move, which leaves a gap in the numbers but never two versions with one number once both have
        returned; random pauses break repeated ties.
        """
        catalog.write_record(self.backend, self.key, self.vault_id, record)
        for _ in range(_RENUMBER_ATTEMPTS):
            mine = [r for r in self.records() if r.item == record.item]
            if not any(r.version == record.version and r.record_id != record.record_id for r in mine):
                return record
            time.sleep(secrets.randbelow(200) / 1000)
            number = max(r.version for r in mine) + 1
            record = self.replace_record(record, version=number)
        return record

    def replace_record(self, old: catalog.VersionRecord, **changes: object) -> catalog.VersionRecord:
        """Write ``old`` with ``changes`` (sealed under the current key generation) as a new record object, then
        delete ``old``. Returns the new record."""
        new = dataclasses.replace(old, record_id=catalog.new_record_id(), **changes)  # type: ignore[arg-type]
        catalog.write_record(self.backend, self.key, self.vault_id, new)
        self.remove_records([old.record_id])
        return new

    def remove_records(self, record_ids: Sequence[str]) -> None:
        """Delete version records (by record id); already missing ones are fine. The witness hears of them
        first, so a command killed half way is not taken for a rollback by the next one."""
        if not record_ids:
            return
        if self.witness is not None:
            self.witness.removing(list(record_ids))
        self._delete(Handle(Kind.VERSIONS, r) for r in record_ids)

    def _delete(self, handles: Iterable[Handle]) -> None:
        for handle in handles:
            with contextlib.suppress(ObjectNotFoundError):
                self.backend.remove(handle)
