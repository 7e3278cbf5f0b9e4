"""Key slots: a password wraps the keyring; building, parsing and unwrapping one slot.

A slot (``keys/<id>``, JSON) holds:

- the password's argon2id one-way hash (a PHC string from argon2-cffi's PasswordHasher), which tells a wrong
  password (exit 12) apart from a damaged slot (exit 20);
- the master key (or, after `vault rekey`, the keyring) wrapped with AES-256-GCM under a key derived by argon2id
  from the password with the slot's own salt. The wrap's associated data binds the vault id, the slot id and
  the KDF parameters, so a slot copied from another vault or with edited parameters fails to open.

Changing a password writes a new slot; no stored data is rewritten (restic's and borg's key files work alike).
Where slots are stored and how they are tried is vault.crypto.slot_store.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from vault import format as fmt
from vault.crypto import kdf
from vault.crypto.aead import Aead
from vault.crypto.keyring import MAX_KEYRING_SIZE, Generation, Keyring
from vault.errors import IntegrityError

SLOT_VERSION = 1  # wraps the 32-byte master key of a never-rekeyed vault
SLOT_VERSION_KEYRING = 2  # wraps an encoded Keyring (after `vault rekey`)
MAX_SLOT_SIZE = 64 * 1024
POLICY_DEFAULT = "default"  # follows the program's defaults: rewrapped when they grow
POLICY_EXPLICIT = "explicit"  # chosen by the user at init: kept as chosen
POLICY_RECOVERY = "recovery"  # a recovery key's slot: minimum cost, never rewrapped (see crypto/recovery.py)
POLICIES = (POLICY_DEFAULT, POLICY_EXPLICIT, POLICY_RECOVERY)
RECOVERY_PARAMS = kdf.KdfParams(kdf.HARD_MIN_MEMORY_KIB, 1, 1)


@dataclass(frozen=True)
class KeySlot:
    """A parsed, not yet unlocked, slot."""

    slot_id: str
    version: int
    params: kdf.KdfParams
    policy: str
    salt: bytes
    phc_hash: str
    wrapped: bytes
    info: bytes  # sealed {"created", "host"}: the storage must not learn which machines hold keys

    def details(self, keyring: Keyring, vault_id: bytes) -> tuple[str, str]:
        """When and on which host the slot was made (decrypted with the vault's key: the generation current
        when the slot was written, which may be an older one this keyring holds). IntegrityError."""
        what = f"key slot {self.slot_id}"
        plain = None
        for number in sorted(keyring.generations, reverse=True):
            with contextlib.suppress(IntegrityError):
                plain = self._open_info(keyring.get(number, what), vault_id)
                break
        if plain is None:
            raise IntegrityError(f"{what} has details this key can't open")
        doc = fmt.decode_json_object(plain, f"key slot {self.slot_id}")
        created, host = doc.get("created"), doc.get("host")
        if not isinstance(created, str) or not isinstance(host, str):
            raise IntegrityError(f"key slot {self.slot_id} has malformed details")
        return created, host

    def written_under(self, generation: Generation, vault_id: bytes) -> bool:
        """True when the slot was written while ``generation`` was current (its details open under it): it
        then holds that generation's key. `rekey` tells older slots apart this way, without their passwords."""
        try:
            self._open_info(generation, vault_id)
        except IntegrityError:
            return False
        return True

    def _open_info(self, generation: Generation, vault_id: bytes) -> bytes:
        aad = _info_aad(vault_id, self.slot_id, self.version)
        return generation.meta.open(self.info, aad, f"key slot {self.slot_id}")

    def public_info(self, master: Keyring, vault_id: bytes) -> dict[str, Any]:
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


def _wrap_aad(
    vault_id: bytes, slot_id: str, params: kdf.KdfParams, salt: bytes, policy: str, version: int
) -> bytes:
    body = fmt.encode_json({"kdf": params.to_json(), "salt": kdf.b64(salt), "policy": policy})
    return fmt.AAD_KEY_SLOT + bytes([version]) + vault_id + slot_id.encode("ascii") + body


def _info_aad(vault_id: bytes, slot_id: str, version: int) -> bytes:
    return fmt.AAD_KEY_SLOT + b"/info" + bytes([version]) + vault_id + slot_id.encode("ascii")


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
    keyring: Keyring,
    vault_id: bytes,
    password: bytes,
    params: kdf.KdfParams,
    policy: str,
    slot_id: str | None = None,
    created: str | None = None,
) -> tuple[KeySlot, bytes]:
    """Make a slot for ``password`` wrapping ``keyring``; returns the slot and its serialized bytes. A
    never-rekeyed vault's slots stay version 1, which older releases read."""
    slot_id = slot_id or secrets.token_hex(8)
    version = SLOT_VERSION if keyring.is_legacy else SLOT_VERSION_KEYRING
    salt = kdf.new_salt()
    kek = Aead(kdf.derive_key(password, salt, params))
    wrapped = kek.seal(keyring.wrapped_plaintext(), _wrap_aad(vault_id, slot_id, params, salt, policy, version))
    info = keyring.meta.seal(
        fmt.encode_json({"created": created or _now(), "host": socket.gethostname()}),
        _info_aad(vault_id, slot_id, version),
    )
    slot = KeySlot(
        slot_id=slot_id,
        version=version,
        params=params,
        policy=policy,
        salt=salt,
        phc_hash=_hasher(params).hash(password),
        wrapped=wrapped,
        info=info,
    )
    doc = {
        "version": version,
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
    version = doc["version"]
    fmt.check_version(version, what)
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
    _check_phc_parameters(str(fields["hash"]), params, what)
    if version == SLOT_VERSION:
        wrapped = kdf.unb64(doc.get("wrapped_key"), what, fmt.KEY_SIZE + fmt.AEAD_OVERHEAD)
    else:
        wrapped = kdf.unb64(doc.get("wrapped_key"), what)
        if not fmt.AEAD_OVERHEAD < len(wrapped) <= MAX_KEYRING_SIZE + fmt.AEAD_OVERHEAD:
            raise IntegrityError(f"{what} holds a malformed wrapped key")
    info = kdf.unb64(doc.get("info"), what)
    if len(info) < fmt.AEAD_OVERHEAD:
        raise IntegrityError(f"{what} has malformed details")
    return KeySlot(
        slot_id=str(fields["id"]),
        version=version,
        params=params,
        policy=str(fields["policy"]),
        salt=salt,
        phc_hash=str(fields["hash"]),
        wrapped=wrapped,
        info=info,
    )


def _check_phc_parameters(phc_hash: str, params: kdf.KdfParams, what: str) -> None:
    """The PHC hash's parameters must equal the slot's (already capped) ones, so a tampered hash can't smuggle
    in an absurd cost. Checked when the slot is parsed, before any KDF runs. Raises IntegrityError."""
    try:
        phc = extract_parameters(phc_hash)
    except InvalidHashError as exc:
        raise IntegrityError(f"{what} holds a malformed password hash") from exc
    if (phc.type, phc.memory_cost, phc.time_cost, phc.parallelism) != (
        Type.ID,
        params.memory_kib,
        params.time_cost,
        params.parallelism,
    ):
        raise IntegrityError(f"{what} holds a password hash that does not match its parameters")
    # The right password is proved by the wrap's AEAD tag and the hash is then never computed, so check its
    # shape here: "$argon2id$v=19$m=..,t=..,p=..$<salt>$<hash>", unpadded base64, 16-byte salt, 32-byte hash.
    fields = phc_hash.split("$")
    if len(fields) != 6 or fields[0] or fields[1] != "argon2id":
        raise IntegrityError(f"{what} holds a malformed password hash")
    for text, size in ((fields[4], fmt.SALT_SIZE), (fields[5], 32)):
        try:
            raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except ValueError as exc:
            raise IntegrityError(f"{what} holds a malformed password hash") from exc
        if len(raw) != size:
            raise IntegrityError(f"{what} holds a malformed password hash")


def verify_password(slot: KeySlot, password: bytes) -> bool:
    """Check the PHC hash (its parameters were checked by parse_slot). Raises IntegrityError for a malformed
    hash."""
    try:
        return bool(_hasher(slot.params).verify(slot.phc_hash, password))
    except VerifyMismatchError:
        return False
    except (VerificationError, InvalidHashError) as exc:
        raise IntegrityError(f"key slot {slot.slot_id} holds a malformed password hash") from exc


def unwrap(slot: KeySlot, vault_id: bytes, password: bytes) -> Keyring:
    """Derive the slot's key-encryption key and unwrap its keyring. Raises IntegrityError (a wrong password
    and an altered slot look alike here: `KeyStore.unlock` tells them apart with the PHC hash)."""
    what = f"key slot {slot.slot_id}"
    kek = Aead(kdf.derive_key(password, slot.salt, slot.params))
    aad = _wrap_aad(vault_id, slot.slot_id, slot.params, slot.salt, slot.policy, slot.version)
    raw = kek.open(slot.wrapped, aad, what)
    if slot.version == SLOT_VERSION:
        return Keyring.from_master_key(raw, vault_id)
    return Keyring.decode(raw, vault_id, what)

