"""Key slots: a password wraps the keyring; building, parsing and unwrapping one slot.

A slot (``keys/<id>``, JSON) holds:

- the password's argon2id one-way hash (a PHC string from argon2-cffi's PasswordHasher), which tells a wrong
  password (exit 12) apart from a damaged slot (exit 20);
- the master key (or, after `vault rekey`, the keyring) wrapped with AES-256-GCM under a key derived by argon2id
  from the password with the slot's own salt. The wrap's associated data binds the vault id, the slot id and
  the KDF parameters, so a slot copied from another vault or with edited parameters fails to open.

Changing a password writes a new slot; no stored data is rewritten (restic's and borg's key files work alike).
A slot of version 3 wraps a write-only keyring (vault.crypto.write_only); its sealed details are written by the
full key that issued it and say which generation's public key it holds. Where slots are stored and how they are
tried is vault.crypto.slot_store.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from vault import format as fmt
from vault.crypto import kdf
from vault.crypto.aead import Aead
from vault.crypto.keyring import Generation, Keyring
from vault.crypto.write_only import WriteOnlyKeyring
from vault.errors import IntegrityError

# A slot's policy is stored in it (so vault.format defines the values); callers choose one here.
from vault.format.slots import POLICY_DEFAULT as POLICY_DEFAULT
from vault.format.slots import POLICY_EXPLICIT as POLICY_EXPLICIT
from vault.format.slots import POLICY_RECOVERY as POLICY_RECOVERY

RECOVERY_PARAMS = kdf.KdfParams(kdf.HARD_MIN_MEMORY_KIB, 1, 1)


@dataclass(frozen=True)
class KeySlot:
    """A parsed, not yet unlocked, slot (its stored form and checks: vault.format.slots)."""

    slot_id: str
    version: int
    params: kdf.KdfParams
    policy: str
    salt: bytes
    phc_hash: str
    wrapped: bytes
    info: bytes  # sealed {"created", "host"}: the storage must not learn which machines hold keys

    @property
    def write_only(self) -> bool:
        """True for a write-only key's slot (version 3)."""
        return self.version == fmt.SLOT_VERSION_WRITE_ONLY

    def _details_plain(self, keyring: Keyring, vault_id: bytes) -> bytes:
        what = f"key slot {self.slot_id}"
        for number in sorted(keyring.generations, reverse=True):
            with contextlib.suppress(IntegrityError):
                return self._open_info(keyring.get(number, what), vault_id)
        raise IntegrityError(f"{what} has details this key can't open")

    def details(self, keyring: Keyring, vault_id: bytes) -> tuple[str, str]:
        """When and on which host the slot was made (decrypted with the vault's key: the generation current
        when the slot was written, which may be an older one this keyring holds). IntegrityError."""
        return fmt.decode_slot_details(self._details_plain(keyring, vault_id), f"key slot {self.slot_id}")

    def public_key_generation(self, keyring: Keyring, vault_id: bytes) -> int | None:
        """For a write-only slot, the generation whose public key it seals to (from its sealed details, so a full
        key tells without the slot's password); None for other slots. IntegrityError."""
        if not self.write_only:
            return None
        return fmt.decode_slot_generation(self._details_plain(keyring, vault_id), f"key slot {self.slot_id}")

    def written_under(self, generation: Generation, vault_id: bytes) -> bool:
        """True when the slot was written while ``generation`` was current (its details open under it): it
        then holds that generation's key. `rekey` tells older slots apart this way, without their passwords."""
        try:
            self._open_info(generation, vault_id)
        except IntegrityError:
            return False
        return True

    def _open_info(self, generation: Generation, vault_id: bytes) -> bytes:
        aad = fmt.slot_info_aad(vault_id, self.slot_id, self.version)
        return generation.meta.open(self.info, aad, f"key slot {self.slot_id}")

    def public_info(self, master: Keyring, vault_id: bytes) -> dict[str, Any]:
        created, host = self.details(master, vault_id)
        return {
            "id": self.slot_id,
            "created": created,
            "host": host,
            "type": "recovery" if self.policy == POLICY_RECOVERY else "password",
            "kind": "write-only" if self.write_only else "full",
            "kdf": {
                "memory_kib": self.params.memory_kib,
                "time_cost": self.params.time_cost,
                "parallelism": self.params.parallelism,
            },
        }


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
    *,
    issuer: Keyring | None = None,
    info: bytes | None = None,
) -> tuple[KeySlot, bytes]:
    """Make a slot for ``password`` wrapping ``keyring``; returns the slot and its serialized bytes. A
    never-rekeyed vault's slots stay version 1, which older releases read; a write-only keyring's are version 3.

    The slot's details are sealed under ``issuer`` (default: ``keyring`` itself), which must be a full keyring:
    the one issuing a write-only key. ``info``: sealed details to keep as they are (rewrapping a write-only slot,
    whose own keyring can't seal them)."""
    slot_id = slot_id or secrets.token_hex(8)
    if keyring.write_only:
        version = fmt.SLOT_VERSION_WRITE_ONLY
    else:
        version = fmt.SLOT_VERSION if keyring.is_legacy else fmt.SLOT_VERSION_KEYRING
    salt = kdf.new_salt()
    kek = Aead(kdf.derive_key(password, salt, params))
    wrapped = kek.seal(keyring.wrapped_plaintext(), fmt.slot_wrap_aad(vault_id, slot_id, params, salt, policy, version))
    if info is None:
        sealer = issuer or keyring
        info = sealer.meta.seal(
            fmt.encode_slot_details(created or _now(), socket.gethostname(),
                                    keyring.current if keyring.write_only else None),
            fmt.slot_info_aad(vault_id, slot_id, version),
        )
    fields = fmt.SlotFields(
        slot_id=slot_id,
        version=version,
        params=params,
        policy=policy,
        salt=salt,
        phc_hash=_hasher(params).hash(password),
        wrapped=wrapped,
        info=info,
    )
    return KeySlot(**fields._asdict()), fmt.encode_slot(fields)


def parse_slot(raw: bytes, name: str) -> KeySlot:
    """Parse a stored slot. Every field is checked; KDF parameters are capped (vault.format.slots.decode_slot).
    Raises IntegrityError."""
    return KeySlot(**fmt.decode_slot(raw, name)._asdict())


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
    aad = fmt.slot_wrap_aad(vault_id, slot.slot_id, slot.params, slot.salt, slot.policy, slot.version)
    raw = kek.open(slot.wrapped, aad, what)
    if slot.version == fmt.SLOT_VERSION:
        return Keyring.from_master_key(raw, vault_id)
    if slot.version == fmt.SLOT_VERSION_WRITE_ONLY:
        return WriteOnlyKeyring.decode(raw, vault_id, what)
    return Keyring.decode(raw, vault_id, what)


def with_details(slot: KeySlot, issuer: Keyring, vault_id: bytes) -> tuple[KeySlot, bytes]:
    """``slot`` with its details sealed again under ``issuer``'s current generation (the wrap untouched, so no
    password is needed): `rekey` keeps write-only slots readable to the keys it leaves. IntegrityError when the
    details can't be opened."""
    plain = slot._details_plain(issuer, vault_id)
    info = issuer.meta.seal(plain, fmt.slot_info_aad(vault_id, slot.slot_id, slot.version))
    fields = fmt.SlotFields(**{**_fields(slot), "info": info})
    return KeySlot(**fields._asdict()), fmt.encode_slot(fields)


def _fields(slot: KeySlot) -> dict[str, Any]:
    return {
        "slot_id": slot.slot_id, "version": slot.version, "params": slot.params, "policy": slot.policy,
        "salt": slot.salt, "phc_hash": slot.phc_hash, "wrapped": slot.wrapped, "info": slot.info,
    }

