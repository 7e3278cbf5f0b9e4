"""An opened vault: its backend, config, master key and (lazily) index. Everything above builds on this."""

from __future__ import annotations

import hmac
import logging
import threading
from dataclasses import dataclass, field

from vault import format as fmt
from vault.crypto import kdf
from vault.crypto.keyring import Keyring, new_keyring
from vault.crypto.slot_store import KeyStore
from vault.crypto.slots import POLICY_DEFAULT, KeySlot
from vault.errors import ConflictError, IntegrityError, ObjectNotFoundError
from vault.repo import catalog
from vault.repo.blobs import open_blob
from vault.repo.config import CONFIG_HANDLE, VaultConfig, load_config, new_config
from vault.repo.index import BlobLocation, Index, load_index
from vault.repo.tree import Node, decode_tree
from vault.storage.base import Backend, Kind

log = logging.getLogger(__name__)


@dataclass
class Repository:
    backend: Backend
    config: VaultConfig
    key: Keyring
    slot: KeySlot
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

    def load_blob(self, blob_id: bytes, blob_type: int = fmt.BlobType.DATA) -> bytes:
        """Fetch, authenticate and decode one blob. Raises IntegrityError (also for a missing pack)."""
        loc = self.locate(blob_id, blob_type)
        what = f"blob {blob_id.hex()[:10]} in pack {loc.pack_handle}"
        try:
            sealed = self.backend.load(loc.pack_handle, loc.entry.offset, loc.entry.length)
        except ObjectNotFoundError:
            raise IntegrityError(f"pack {loc.pack_handle} is missing; run `vault check`") from None
        return open_blob(self.key, self.vault_id, loc.entry, sealed, what, loc.generation)

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
