"""An opened vault: its backend, config, keys, and its index and catalog as the local cache holds them.

Everything above builds on this. Reading: blobs, trees, version records (vault.repo.catalog), through the cache
(vault.cache), which is brought up to date from the storage the first time a command needs the index or the
catalog. Changing stored metadata is the job of the methods in vault.repo.changes (a base class of
:class:`Repository`), which keep the design's order.

Which copy is trusted: the storage is the truth. The cache answers lookups only after it has listed the storage
and taken in every object it did not hold; its rows are authenticated when read. A blob the cache can't find is
looked up again after catching up with the storage and, failing that, after rebuilding the index from the
storage, before it is reported missing: a damaged cache costs time, never a false "your vault is damaged".
`check`, `prune` and `repair` rebuild the index and catalog from the storage itself (``full=True``) before they
judge or delete anything.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from vault import format as fmt
from vault.cache import BlobIndex, BlobLocation, Cache, open_cache
from vault.crypto import kdf
from vault.crypto.keyring import Keyring, new_keyring
from vault.crypto.slot_store import KeyStore
from vault.crypto.slots import POLICY_DEFAULT, KeySlot
from vault.errors import ConflictError, IntegrityError, ObjectNotFoundError, UnknownGenerationError
from vault.pipeline.timing import NO_TIMING, Stage, StageTimer
from vault.repo import catalog as catalog_objects
from vault.repo.blobs import open_blob
from vault.repo.changes import Changes, OnError, RemovalWatcher
from vault.repo.config import CONFIG_HANDLE, VaultConfig, load_config, new_config
from vault.repo.index import sync_index
from vault.repo.tree import Node, decode_tree
from vault.storage.base import Backend, Held, Kind

log = logging.getLogger(__name__)


@dataclass
class Repository(Changes):
    backend: Backend
    config: VaultConfig
    key: Keyring
    slot: KeySlot
    witness: RemovalWatcher | None = field(default=None, repr=False)
    # Where the local cache lives (its per-vault directory is made below it); None: a private temporary one
    # that goes with the process (``--no-cache``, and what a Repository made without a cache gets).
    cache_dir: Path | None = field(default=None, repr=False)
    _cache: Cache | None = field(default=None, repr=False)
    _index_synced: bool = field(default=False, repr=False)
    _index_rebuilt: bool = field(default=False, repr=False)
    _catalog: catalog_objects.Catalog | None = field(default=None, repr=False)
    _sync_lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    # What this repository's deletions could only hide (retention holds it stored until a date); see
    # vault.repo.changes and :meth:`take_held`.
    held: Held = field(default_factory=Held, repr=False)

    @property
    def vault_id(self) -> bytes:
        return self.config.vault_id

    @property
    def keys(self) -> KeyStore:
        return KeyStore(self.backend, self.vault_id)

    @property
    def write_only(self) -> bool:
        """True when a write-only key opened the vault (then this is a vault.repo.write_only.WriteOnlyRepository)."""
        return self.key.write_only

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
        cls, backend: Backend, password: bytes, *, rehash: bool = True, config: VaultConfig | None = None,
        cache_dir: Path | None = None,
    ) -> Repository:
        """Open an existing vault. VaultNotFoundError, UnsupportedVersionError, AuthenticationError,
        IntegrityError. Slots that follow the defaults are rewrapped when the defaults grew. ``config`` is the
        vault's config when the caller has read it already (it checks for a vault before asking for a password).
        ``cache_dir``: where the local cache lives (None: a temporary one)."""
        config = config or load_config(backend)
        store = KeyStore(backend, config.vault_id)
        key, slot = store.unlock(password)
        if rehash:
            slot = store.rehash_if_weak(slot, key, password)
        if key.write_only:  # a write-only key: a repository that adds data and reads nothing (exit 13 otherwise)
            from vault.repo.write_only import WriteOnlyRepository

            return WriteOnlyRepository(backend, config, key, slot, cache_dir=cache_dir)
        return cls(backend, config, key, slot, cache_dir=cache_dir)

    def close(self) -> None:
        """Close the cache (a temporary one is deleted). The repository can't be used afterwards."""
        with self._sync_lock:
            if self._cache is not None:
                self._cache.close()
                self._cache = None
                self._catalog = None

    def use_keyring(self, keyring: Keyring) -> None:
        """Work under ``keyring`` from now on (`rekey`): new objects are sealed under its current generation, and
        the cache, keyed by it, starts afresh (it is brought up to date from the storage on next use)."""
        self.close()
        self.key = keyring
        self._index_synced = False

    def slot_changed(self) -> bool:
        """True when the slot that opened the vault was rewritten or removed since (`rekey`, `passwd` or
        `key remove` in another process between our unlock and our lock): our keyring may be out of date."""
        try:
            # Ciphertext as stored, not a secret; compared in constant time all the same (the review's rule).
            return not hmac.compare_digest(self.keys.read_slot(self.slot.slot_id).wrapped, self.slot.wrapped)
        except (ObjectNotFoundError, IntegrityError):
            return True

    # -- the cache -------------------------------------------------------------------------------------------
    @property
    def cache(self) -> Cache:
        with self._sync_lock:
            if self._cache is None:
                # Keyed by the master key of generation 0 when the keyring still holds it, else the current one:
                # a `rekey` without --reencrypt keeps the cache; one that drops old keys starts a new one.
                self._cache = open_cache(self.cache_dir, self.vault_id, self.key.cache_key())
            return self._cache

    @property
    def index(self) -> BlobIndex:
        """The index, brought up to date with the storage's index objects on first use."""
        index = self.cache.index
        if not self._index_synced:
            with self._sync_lock:
                if not self._index_synced:
                    sync_index(index, self.backend, self.key, self.vault_id)
                    self._index_synced = True
        return index

    def refresh_blobs(self, *, full: bool = False, on_error: OnError | None = None) -> BlobIndex:
        """Catch up with the storage's index objects now (``full``: rebuild from every one of them, as `check`,
        `prune` and `repair` need; ``on_error`` gets each damaged one, which is then skipped)."""
        with self._sync_lock:
            sync_index(self.cache.index, self.backend, self.key, self.vault_id, full=full, on_error=on_error)
            self._index_synced = True
            if full:
                self._index_rebuilt = True
        return self.cache.index

    @property
    def catalog(self) -> catalog_objects.Catalog:
        """The version records, brought up to date with ``versions/`` on first use. IntegrityError when an object
        of ``versions/`` failed authentication (commands that report damage, `check` and `repair`, read the
        catalog through :meth:`refresh_catalog` with an ``on_error`` instead)."""
        catalog = self._catalog_read()
        if catalog.damaged:
            raise catalog.damaged[0][1]
        return catalog

    def readable_record_ids(self) -> set[str]:
        """The ids of every version record that authenticates (damaged objects left out): what the replay
        witness compares, whatever else is wrong."""
        return self._catalog_read().record_ids()

    def _catalog_read(self) -> catalog_objects.Catalog:
        with self._sync_lock:
            if self._catalog is None:
                self._catalog = catalog_objects.Catalog(self.backend, self.key, self.vault_id, self.cache.catalog,
                                                       self.held)
                self._catalog.sync(on_error=self._catalog.note_damage)
            return self._catalog

    def refresh_catalog(self, *, full: bool = False, on_error: OnError | None = None) -> catalog_objects.Catalog:
        """Catch up with ``versions/`` now (``full``: read every object again, as `check` and `repair` need)."""
        with self._sync_lock:
            if self._catalog is None:
                self._catalog = catalog_objects.Catalog(self.backend, self.key, self.vault_id, self.cache.catalog,
                                                       self.held)
            self._catalog.sync(full=full, on_error=on_error)
            if self._catalog.damaged and on_error is None:
                raise self._catalog.damaged[0][1]
            return self._catalog

    # -- blobs -----------------------------------------------------------------------------------------------
    def locate(self, blob_id: bytes, blob_type: int) -> BlobLocation:
        loc = self.index.get(blob_id)
        if loc is None:
            with self._sync_lock:
                loc = self.index.get(blob_id)
                if loc is None:
                    # A concurrent put may have committed (or merged its checkpoints) since we last looked.
                    self.refresh_blobs()
                    loc = self.index.get(blob_id)
                if loc is None and not self._index_rebuilt:
                    # The cache may have lost rows (or held altered ones): ask the storage itself before calling
                    # the blob missing.
                    log.info("blob %s is not in the cached index; rebuilding it from the storage", blob_id.hex()[:10])
                    self.refresh_blobs(full=True)
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
        try:
            return self._load_at(loc, timer)
        except (IntegrityError, UnknownGenerationError):
            if not loc.entry.flags & fmt.FLAG_SEALED:
                raise
            # A copy a write-only key sealed that is not what its id says (any such key can seal one): another
            # copy may be (docs/security.md, "Write-only keys").
            for other in self.index.locations(blob_id)[1:]:
                with contextlib.suppress(IntegrityError, UnknownGenerationError):
                    return self._load_at(other, timer)
            raise

    def _load_at(self, loc: BlobLocation, timer: StageTimer) -> bytes:
        what = f"blob {loc.entry.blob_id.hex()[:10]} in pack {loc.pack_handle}"
        try:
            with timer.stage(Stage.FETCH):
                sealed = self.backend.load(loc.pack_handle, loc.entry.offset, loc.entry.length)
        except ObjectNotFoundError:
            raise IntegrityError(f"pack {loc.pack_handle} is missing; run `vault check`") from None
        return open_blob(self.key, self.vault_id, loc.entry, sealed, what, loc.generation, timer=timer)

    def load_tree(self, tree_id: bytes) -> list[Node]:
        return decode_tree(self.load_blob(tree_id, fmt.BlobType.TREE), f"tree {tree_id.hex()[:10]}")

    # -- versions --------------------------------------------------------------------------------------------
    def records(self) -> list[catalog_objects.VersionRecord]:
        """Every version record, by item and version. Reads the whole catalog: commands that need one item's
        versions ask ``catalog`` instead."""
        return sorted(self.catalog.all(), key=lambda r: (r.item, r.version, r.created, r.record_id))

    def root_node(self, record: catalog_objects.VersionRecord) -> Node:
        nodes = self.load_tree(record.tree)
        if len(nodes) != 1 or nodes[0].type != record.type:
            raise IntegrityError(f"the root tree of {record.item} version {record.version} is malformed")
        return nodes[0]

    def stored_bytes(self) -> int:
        return sum(info.size for info in self.backend.list(Kind.DATA))
