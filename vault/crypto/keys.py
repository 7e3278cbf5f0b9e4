"""Key slots: passwords wrap one random master key; subkeys come from the master key.

A slot (``keys/<id>``, JSON) holds:

- the password's argon2id one-way hash (a PHC string from argon2-cffi's PasswordHasher), which tells a wrong
  password (exit 12) apart from a damaged slot (exit 20);
- the master key wrapped with AES-256-GCM under a key derived by argon2id from the password with the slot's
  own salt. The wrap's associated data binds the vault id, the slot id and the KDF parameters, so a slot
  copied from another vault or with edited parameters fails to open.

Changing a password writes a new slot; no stored data is rewritten (restic's and borg's key files work alike).
Named keys.py, not keyring.py, so it is not confused with the python-keyring package.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import blake3
from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault import format as fmt
from vault.crypto import kdf, recovery
from vault.crypto.aead import Aead
from vault.errors import (
    AuthenticationError,
    ConflictError,
    IntegrityError,
    NotFoundError,
    ObjectNotFoundError,
)
from vault.storage.base import Backend, Handle, Kind, ObjectInfo

log = logging.getLogger(__name__)

SLOT_VERSION = 1
MAX_SLOT_SIZE = 64 * 1024
POLICY_DEFAULT = "default"  # follows the program's defaults: rewrapped when they grow
POLICY_EXPLICIT = "explicit"  # chosen by the user at init: kept as chosen
POLICY_RECOVERY = "recovery"  # a recovery key's slot: minimum cost, never rewrapped (see crypto/recovery.py)
POLICIES = (POLICY_DEFAULT, POLICY_EXPLICIT, POLICY_RECOVERY)
RECOVERY_PARAMS = kdf.KdfParams(kdf.HARD_MIN_MEMORY_KIB, 1, 1)


class MasterKey:
    """The vault's random master key and the subkeys derived from it with labelled HKDF-SHA-256.

    Never logged or printed: ``repr`` hides the bytes.
    """

    __slots__ = ("_id_key", "_tree_id_key", "chunker_seed", "data", "meta", "raw")

    def __init__(self, raw: bytes, vault_id: bytes) -> None:
        if len(raw) != fmt.KEY_SIZE:
            raise ValueError("master keys are 32 bytes")
        self.raw = raw
        self.data = Aead(self._derive(vault_id, fmt.LABEL_DATA))
        self.meta = Aead(self._derive(vault_id, fmt.LABEL_META))
        self._id_key = self._derive(vault_id, fmt.LABEL_ID)
        self._tree_id_key = self._derive(vault_id, fmt.LABEL_TREE_ID)
        seed = int.from_bytes(self._derive(vault_id, fmt.LABEL_CHUNKER, 8), "little")
        # pyfastcdc XORs the seed into its 64-bit gear table; keep it non-zero (0 means "default table").
        self.chunker_seed = (seed & ((1 << 63) - 1)) | 1

    def _derive(self, vault_id: bytes, label: bytes, length: int = fmt.KEY_SIZE) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=vault_id, info=label).derive(self.raw)

    def blob_id(self, data: bytes | memoryview, blob_type: int = fmt.BlobType.DATA) -> bytes:
        """Keyed BLAKE3 of a blob's plaintext: the storage cannot confirm a guess of the contents. Each blob
        type has its own key, so a file whose bytes equal a tree's encoding is a different blob."""
        key = self._tree_id_key if blob_type == fmt.BlobType.TREE else self._id_key
        return blake3.blake3(data, key=key).digest()

    def __repr__(self) -> str:
        return "MasterKey(<hidden>)"


@dataclass(frozen=True)
class KeySlot:
    """A parsed, not yet unlocked, slot."""

    slot_id: str
    params: kdf.KdfParams
    policy: str
    salt: bytes
    phc_hash: str
    wrapped: bytes
    info: bytes  # sealed {"created", "host"}: the storage must not learn which machines hold keys

    def details(self, master: MasterKey, vault_id: bytes) -> tuple[str, str]:
        """When and on which host the slot was made (decrypted with the vault's key). IntegrityError."""
        plain = master.meta.open(self.info, _info_aad(vault_id, self.slot_id), f"key slot {self.slot_id}")
        doc = fmt.decode_json_object(plain, f"key slot {self.slot_id}")
        created, host = doc.get("created"), doc.get("host")
        if not isinstance(created, str) or not isinstance(host, str):
            raise IntegrityError(f"key slot {self.slot_id} has malformed details")
        return created, host

    def public_info(self, master: MasterKey, vault_id: bytes) -> dict[str, Any]:
        created, host = self.details(master, vault_id)
        return {
            "id": self.slot_id,
            "created": created,
            "host": host,
            "type": "recovery" if self.policy == POLICY_RECOVERY else "password",
            "kdf": {
                "memory_kib": self.params.memory_kib,
                "time_cost": self.params.time_cost,
                "parallelism": self.params.parallelism,
            },
        }


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _wrap_aad(vault_id: bytes, slot_id: str, params: kdf.KdfParams, salt: bytes, policy: str) -> bytes:
    body = fmt.encode_json({"kdf": params.to_json(), "salt": kdf.b64(salt), "policy": policy})
    return fmt.AAD_KEY_SLOT + bytes([SLOT_VERSION]) + vault_id + slot_id.encode("ascii") + body


def _info_aad(vault_id: bytes, slot_id: str) -> bytes:
    return fmt.AAD_KEY_SLOT + b"/info" + bytes([SLOT_VERSION]) + vault_id + slot_id.encode("ascii")


def _hasher(params: kdf.KdfParams) -> PasswordHasher:
    return PasswordHasher(
        time_cost=params.time_cost,
        memory_cost=params.memory_kib,
        parallelism=params.parallelism,
        hash_len=32,
        salt_len=fmt.SALT_SIZE,
        type=Type.ID,
    )


def build_slot(
    master: MasterKey,
    vault_id: bytes,
    password: bytes,
    params: kdf.KdfParams,
    policy: str,
    slot_id: str | None = None,
    created: str | None = None,
) -> tuple[KeySlot, bytes]:
    """Make a slot for ``password`` wrapping ``master``; returns the slot and its serialized bytes."""
    slot_id = slot_id or secrets.token_hex(8)
    salt = kdf.new_salt()
    kek = Aead(kdf.derive_key(password, salt, params))
    wrapped = kek.seal(master.raw, _wrap_aad(vault_id, slot_id, params, salt, policy))
    info = master.meta.seal(
        fmt.encode_json({"created": created or _now(), "host": socket.gethostname()}), _info_aad(vault_id, slot_id)
    )
    slot = KeySlot(
        slot_id=slot_id,
        params=params,
        policy=policy,
        salt=salt,
        phc_hash=_hasher(params).hash(password),
        wrapped=wrapped,
        info=info,
    )
    doc = {
        "version": SLOT_VERSION,
        "id": slot.slot_id,
        "kdf": params.to_json() | {"salt": kdf.b64(salt)},
        "policy": policy,
        "hash": slot.phc_hash,
        "wrapped_key": kdf.b64(wrapped),
        "info": kdf.b64(info),
    }
    return slot, fmt.encode_json(doc)


def parse_slot(raw: bytes, name: str) -> KeySlot:
    """Parse a stored slot. Every field is checked; KDF parameters are capped. Raises IntegrityError."""
    what = f"key slot {name}"
    if len(raw) > MAX_SLOT_SIZE:
        raise IntegrityError(f"{what} is too large")
    doc = fmt.decode_json_object(raw, what)
    if not isinstance(doc.get("version"), int) or isinstance(doc.get("version"), bool):
        raise IntegrityError(f"{what} has no version")
    fmt.check_version(doc["version"], what)
    kdf_doc = doc.get("kdf")
    params = kdf.check_untrusted(kdf_doc, what)
    assert isinstance(kdf_doc, dict)
    salt = kdf.unb64(kdf_doc.get("salt"), what, fmt.SALT_SIZE)
    fields = {k: doc.get(k) for k in ("id", "policy", "hash")}
    if not all(isinstance(v, str) and len(v) < 1024 for v in fields.values()):
        raise IntegrityError(f"{what} has malformed fields")
    if fields["id"] != name or fields["policy"] not in POLICIES:
        raise IntegrityError(f"{what} does not match its name or has an unknown policy")
    if not str(fields["hash"]).isascii():  # argon2-cffi's verify raises UnicodeEncodeError for these
        raise IntegrityError(f"{what} holds a malformed password hash")
    wrapped = kdf.unb64(doc.get("wrapped_key"), what, fmt.NONCE_SIZE + fmt.KEY_SIZE + fmt.TAG_SIZE)
    info = kdf.unb64(doc.get("info"), what)
    if len(info) < fmt.AEAD_OVERHEAD:
        raise IntegrityError(f"{what} has malformed details")
    return KeySlot(
        slot_id=str(fields["id"]),
        params=params,
        policy=str(fields["policy"]),
        salt=salt,
        phc_hash=str(fields["hash"]),
        wrapped=wrapped,
        info=info,
    )


def _verify_password(slot: KeySlot, password: bytes) -> bool:
    """Check the PHC hash. Its parameters must equal the slot's (already capped) ones, so a tampered hash
    can't smuggle in an absurd cost. Raises IntegrityError for a malformed hash."""
    what = f"key slot {slot.slot_id}"
    try:
        phc = extract_parameters(slot.phc_hash)
    except InvalidHashError as exc:
        raise IntegrityError(f"{what} holds a malformed password hash") from exc
    if (phc.type, phc.memory_cost, phc.time_cost, phc.parallelism) != (
        Type.ID,
        slot.params.memory_kib,
        slot.params.time_cost,
        slot.params.parallelism,
    ):
        raise IntegrityError(f"{what} holds a password hash that does not match its parameters")
    try:
        return bool(_hasher(slot.params).verify(slot.phc_hash, password))
    except VerifyMismatchError:
        return False
    except (VerificationError, InvalidHashError) as exc:
        raise IntegrityError(f"{what} holds a malformed password hash") from exc


def unwrap(slot: KeySlot, vault_id: bytes, password: bytes) -> MasterKey:
    """Derive the slot's key-encryption key and unwrap the master key. Raises IntegrityError."""
    kek = Aead(kdf.derive_key(password, slot.salt, slot.params))
    aad = _wrap_aad(vault_id, slot.slot_id, slot.params, slot.salt, slot.policy)
    raw = kek.open(slot.wrapped, aad, f"key slot {slot.slot_id}")
    return MasterKey(raw, vault_id)


class KeyStore:
    """The key slots of one vault, in ``keys/`` of its backend."""

    def __init__(self, backend: Backend, vault_id: bytes) -> None:
        self.backend = backend
        self.vault_id = vault_id

    def _read_slot(self, info: ObjectInfo) -> KeySlot:
        """Load (size-capped) and parse one slot. IntegrityError."""
        if info.size > MAX_SLOT_SIZE:
            raise IntegrityError(f"key slot {info.handle.name} is too large")
        return parse_slot(self.backend.load(info.handle, 0, MAX_SLOT_SIZE + 1), info.handle.name)

    def slots(self) -> list[KeySlot]:
        """Every slot, ordered by id. A slot that fails to parse raises IntegrityError."""
        return sorted((self._read_slot(info) for info in self.backend.list(Kind.KEYS)), key=lambda s: s.slot_id)

    def unlock(self, password: bytes) -> tuple[MasterKey, KeySlot]:
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
        unwrap_failed: IntegrityError | None = None
        for slot in sorted(slot_list, key=lambda s: s.slot_id):
            try:
                if not _verify_password(slot, password):
                    mismatched += 1
                    continue
            except IntegrityError as exc:
                damaged.append(exc)
                continue
            try:
                return unwrap(slot, self.vault_id, password), slot
            except IntegrityError:
                # The password is right for this slot, so this is damage or tampering (a changed vault id,
                # a slot copied from another vault), never a wrong password: other slots that merely
                # mismatch must not turn it into exit 12.
                unwrap_failed = unwrap_failed or IntegrityError(
                    f"key slot {slot.slot_id} takes this password but its key does not unwrap: the slot was "
                    "altered or copied from another vault, or the vault's config was changed",
                    hint="the storage may have been tampered with: compare `config` and `keys/` with an older copy",
                )
        if unwrap_failed is not None:
            raise unwrap_failed
        if mismatched or not damaged:
            hint = f"{len(damaged)} key slot(s) are damaged; `vault check` tells more" if damaged else None
            raise AuthenticationError("wrong password: no key slot of this vault opens with it", hint=hint)
        raise damaged[0]

    def save_slot(self, slot_bytes: bytes, slot_id: str) -> None:
        self.backend.save(Handle(Kind.KEYS, slot_id), slot_bytes)

    def add(
        self, master: MasterKey, password: bytes, params: kdf.KdfParams, policy: str
    ) -> KeySlot:
        """Write a new slot for ``password``."""
        slot, raw = build_slot(master, self.vault_id, password, params, policy)
        self.save_slot(raw, slot.slot_id)
        return slot

    def add_recovery(self, master: MasterKey, recovery_key: str) -> KeySlot:
        """Write a slot that a recovery key (crypto/recovery.py) opens; minimum KDF cost, never rewrapped."""
        return self.add(master, recovery_key.encode("ascii"), RECOVERY_PARAMS, POLICY_RECOVERY)

    def replace(self, old: KeySlot, master: MasterKey, password: bytes, params: kdf.KdfParams) -> KeySlot:
        """Rewrap under the same slot id (passwd, rehash). The save replaces the slot atomically."""
        try:
            created: str | None = old.details(master, self.vault_id)[0]
        except IntegrityError:
            created = None  # damaged details: the rewrapped slot starts afresh
        slot, raw = build_slot(
            master, self.vault_id, password, params, old.policy, slot_id=old.slot_id, created=created
        )
        self.save_slot(raw, slot.slot_id)
        return slot

    def remove(self, slot_id: str) -> None:
        """Remove a slot. NotFoundError for an unknown id; ConflictError for the last slot."""
        ids = [s.slot_id for s in self.slots()]
        if slot_id not in ids:
            raise NotFoundError(f"no key with id {slot_id!r}")
        if len(ids) == 1:
            raise ConflictError("refusing to remove the last key: the vault could never be opened again")
        try:
            self.backend.remove(Handle(Kind.KEYS, slot_id))
        except ObjectNotFoundError as exc:
            raise NotFoundError(f"no key with id {slot_id!r}") from exc

    def rehash_if_weak(self, slot: KeySlot, master: MasterKey, password: bytes) -> KeySlot:
        """argon2-cffi's check_needs_rehash, for slots that follow the defaults: rewrap when they grew."""
        defaults = kdf.current_defaults()
        if slot.policy != POLICY_DEFAULT or not slot.params.weaker_than(defaults):
            return slot
        new = self.replace(slot, master, password, defaults)
        log.info("key %s rewrapped with stronger key derivation parameters", slot.slot_id)
        return new


def new_master_key(vault_id: bytes) -> MasterKey:
    return MasterKey(os.urandom(fmt.KEY_SIZE), vault_id)
