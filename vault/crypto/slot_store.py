"""Where key slots are stored (``keys/`` of the backend): listing, unlocking, adding, rewrapping, removing."""

from __future__ import annotations

import contextlib
import logging

from vault import format as fmt
from vault.crypto import kdf, recovery
from vault.crypto.keyring import Keyring
from vault.crypto.slots import (
    POLICY_DEFAULT,
    POLICY_RECOVERY,
    RECOVERY_PARAMS,
    KeySlot,
    build_slot,
    parse_slot,
    unwrap,
    verify_password,
    with_details,
)
from vault.crypto.write_only import WriteOnlyKeyring
from vault.errors import AuthenticationError, ConflictError, IntegrityError, NotFoundError, ObjectNotFoundError
from vault.storage.base import Backend, Handle, Held, Kind, ObjectInfo, remove_held

log = logging.getLogger(__name__)


class KeyStore:
    """The key slots of one vault, in ``keys/`` of its backend."""

    def __init__(self, backend: Backend, vault_id: bytes) -> None:
        self.backend = backend
        self.vault_id = vault_id

    def _read_slot(self, info: ObjectInfo) -> KeySlot:
        """Load (size-capped) and parse one slot. IntegrityError."""
        if info.size > fmt.MAX_SLOT_SIZE:
            raise IntegrityError(f"key slot {info.handle.name} is too large")
        return self.read_slot(info.handle.name)

    def read_slot(self, slot_id: str) -> KeySlot:
        """One slot by id. ObjectNotFoundError, IntegrityError."""
        raw = self.backend.load(Handle(Kind.KEYS, slot_id), 0, fmt.MAX_SLOT_SIZE + 1)
        return parse_slot(raw, slot_id)

    def slots(self) -> list[KeySlot]:
        """Every slot, ordered by id. A slot that fails to parse raises IntegrityError."""
        return sorted((self._read_slot(info) for info in self.backend.list(Kind.KEYS)), key=lambda s: s.slot_id)

    def unlock(self, password: bytes) -> tuple[Keyring, KeySlot]:
        """Try every slot. Raises AuthenticationError when no slot takes the password, IntegrityError when
        the slot that verifies the password fails to unwrap (it was altered), or when every slot is damaged."""
        if not password:
            raise AuthenticationError("the password is empty")
        # A recovery key typed with other grouping or case still opens its slot.
        password = recovery.normalize(password) or password
        damaged: list[IntegrityError] = []
        mismatched = 0
        slot_list: list[KeySlot] = []
        for info in self.backend.list(Kind.KEYS):
            try:
                slot_list.append(self._read_slot(info))
            except IntegrityError as exc:
                damaged.append(exc)
        # One argon2id per slot tried: unwrap first (the AEAD tag proves the password right), and only when no
        # slot unwraps, check the PHC hashes to tell a wrong password (exit 12) from an altered slot (exit 20).
        # The right password thus costs one KDF run, not two; a wrong one costs two per slot.
        slot_list.sort(key=lambda s: s.slot_id)
        for slot in slot_list:
            with contextlib.suppress(IntegrityError):
                return unwrap(slot, self.vault_id, password), slot
        unwrap_failed: IntegrityError | None = None
        for slot in slot_list:
            try:
                if not verify_password(slot, password):
                    mismatched += 1
                    continue
            except IntegrityError as exc:
                damaged.append(exc)
                continue
            # The password is right for this slot, so this is damage or tampering (a changed vault id, a slot
            # copied from another vault), never a wrong password: other slots that merely mismatch must not
            # turn it into exit 12.
            unwrap_failed = unwrap_failed or IntegrityError(
                f"key slot {slot.slot_id} takes this password but its key does not unwrap: the slot was "
                "altered or copied from another vault, or the vault's config was changed",
                hint="the storage may have been tampered with: compare `config` and `keys/` with an older copy",
            )
        if unwrap_failed is not None:
            raise unwrap_failed
        if mismatched or not damaged:
            hint = f"{len(damaged)} key slot(s) are damaged; `vault check` tells more" if damaged else None
            if recovery.looks_like_a_mistyped_key(password):
                hint = "this looks like a recovery key, but its checksum does not match: check each group of 4 "
                hint += "characters for a typo (0, 1 and 8 are read as O, I and B)"
            raise AuthenticationError("wrong password: no key slot of this vault opens with it", hint=hint)
        raise damaged[0]

    def save_slot(self, slot_bytes: bytes, slot_id: str) -> None:
        self.backend.save(Handle(Kind.KEYS, slot_id), slot_bytes)

    def add(
        self, master: Keyring, password: bytes, params: kdf.KdfParams, policy: str
    ) -> KeySlot:
        """Write a new slot for ``password``."""
        slot, raw = build_slot(master, self.vault_id, password, params, policy)
        self.save_slot(raw, slot.slot_id)
        return slot

    def add_write_only(self, master: Keyring, password: bytes, params: kdf.KdfParams, policy: str) -> KeySlot:
        """Write a new write-only slot for ``password``, issued by the full keyring ``master``: it wraps the
        public key of ``master``'s current generation, the identity keys and a new local secret (its details are
        sealed under ``master``)."""
        slot, raw = build_slot(WriteOnlyKeyring.issue(master), self.vault_id, password, params, policy,
                               issuer=master)
        self.save_slot(raw, slot.slot_id)
        return slot

    def reseal_details(self, slot: KeySlot, master: Keyring) -> KeySlot:
        """Seal ``slot``'s details again under ``master``'s current generation (its wrap unchanged): `rekey` does it
        for the write-only slots it keeps. The save replaces the slot atomically. IntegrityError."""
        new, raw = with_details(slot, master, self.vault_id)
        self.save_slot(raw, slot.slot_id)
        return new

    def add_recovery(self, master: Keyring, recovery_key: str) -> KeySlot:
        """Write a slot that a recovery key (crypto/recovery.py) opens; minimum KDF cost, never rewrapped."""
        return self.add(master, recovery_key.encode("ascii"), RECOVERY_PARAMS, POLICY_RECOVERY)

    def replace(self, old: KeySlot, master: Keyring, password: bytes, params: kdf.KdfParams) -> KeySlot:
        """Rewrap under the same slot id (passwd, rehash). The save replaces the slot atomically. A write-only
        slot keeps its sealed details as they are (its keyring can't seal new ones)."""
        if master.write_only:
            slot, raw = build_slot(master, self.vault_id, password, params, old.policy, slot_id=old.slot_id,
                                   info=old.info)
            self.save_slot(raw, slot.slot_id)
            return slot
        try:
            created: str | None = old.details(master, self.vault_id)[0]
        except IntegrityError:
            created = None  # damaged details: the rewrapped slot starts afresh
        slot, raw = build_slot(
            master, self.vault_id, password, params, old.policy, slot_id=old.slot_id, created=created
        )
        self.save_slot(raw, slot.slot_id)
        return slot

    def rewrap(self, slot: KeySlot, keyring: Keyring, password: bytes) -> KeySlot:
        """Wrap another keyring (`vault rekey`) in ``slot``, for the same password (or recovery key) and KDF
        parameters; the save replaces the slot atomically."""
        password = recovery.normalize(password) or password  # as unlock() tried it
        return self.replace(slot, keyring, password, slot.params)

    def remove(self, slot_id: str) -> Held:
        """Remove a slot. NotFoundError for an unknown id; ConflictError for the last slot. Returns what
        retention holds: a locked slot is hidden from every listing (the vault no longer sees it) but stays
        stored until its lock ends (docs/security.md, "Retention")."""
        ids = [info.handle.name for info in self.backend.list(Kind.KEYS)]  # also slots that don't parse
        if slot_id not in ids:
            raise NotFoundError(f"no key with id {slot_id!r}")
        if len(ids) == 1:
            raise ConflictError("refusing to remove the last key: the vault could never be opened again")
        try:
            return remove_held(self.backend, Handle(Kind.KEYS, slot_id))
        except ObjectNotFoundError as exc:
            raise NotFoundError(f"no key with id {slot_id!r}") from exc

    def rehash_if_weak(self, slot: KeySlot, master: Keyring, password: bytes) -> KeySlot:
        """argon2-cffi's check_needs_rehash, for slots that follow the defaults: rewrap when they grew."""
        defaults = kdf.current_defaults()
        if slot.policy != POLICY_DEFAULT or not slot.params.weaker_than(defaults):
            return slot
        new = self.replace(slot, master, password, defaults)
        log.info("key %s rewrapped with stronger key derivation parameters", slot.slot_id)
        return new

