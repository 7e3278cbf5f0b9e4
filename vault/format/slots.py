"""Key slots: the slot's JSON document, its KDF parameters, the details it seals, and its associated data.

A slot is ``{"version", "id", "kdf": {..., "salt"}, "policy", "hash", "wrapped_key", "info"}`` (docs/format.md).
Version 1 wraps the 32-byte master key of a never-rekeyed vault, version 2 an encoded keyring, version 3 a
write-only keyring (format.keyring).
Everything in a slot is untrusted until its wrap opens: :func:`decode_slot` checks every field and caps the KDF
parameters *before* argon2 runs, so a tampered vault can't make us allocate 64 GiB or spin for minutes (age
bounds scrypt's work factor the same way with maxWorkFactor).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, NamedTuple

from argon2 import Type, extract_parameters
from argon2.exceptions import InvalidHashError

from vault.errors import IntegrityError
from vault.format.constants import AAD_KEY_SLOT, AEAD_OVERHEAD, KEY_SIZE, SALT_SIZE, check_version
from vault.format.documents import b64, decode_json_object, encode_json, unb64
from vault.format.keyring import MAX_KEYRING_SIZE, WRITE_ONLY_KEYRING_SIZE

SLOT_VERSION = 1  # wraps the 32-byte master key of a never-rekeyed vault
SLOT_VERSION_KEYRING = 2  # wraps an encoded Keyring (after `vault rekey`)
SLOT_VERSION_WRITE_ONLY = 3  # wraps a write-only keyring (format version 4: `vault key add --write-only`)
MAX_SLOT_SIZE = 64 * 1024
POLICY_DEFAULT = "default"  # follows the program's defaults: rewrapped when they grow
POLICY_EXPLICIT = "explicit"  # chosen by the user at init: kept as chosen
POLICY_RECOVERY = "recovery"  # a recovery key's slot: minimum cost, never rewrapped (see crypto/recovery.py)
POLICIES = (POLICY_DEFAULT, POLICY_EXPLICIT, POLICY_RECOVERY)

# -- argon2id parameters (vault.crypto.kdf holds the defaults and checks those a user asks for) ---------------
HARD_MIN_MEMORY_KIB = 8 * 1024  # below this: refused
# Ceilings for parameters read from storage. 2 GiB and t=16 at p=4 take ~10 s here: slow but bounded.
MAX_MEMORY_KIB = 2 * 1024 * 1024
MAX_TIME_COST = 16
MAX_PARALLELISM = 16


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id's costs, as a slot stores them: memory in KiB, passes, lanes."""

    memory_kib: int
    time_cost: int
    parallelism: int

    def weaker_than(self, other: KdfParams) -> bool:
        """True when any cost is below ``other``'s (argon2-cffi's check_needs_rehash compares the same)."""
        return (
            self.memory_kib < other.memory_kib
            or self.time_cost < other.time_cost
            or self.parallelism < other.parallelism
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "algorithm": "argon2id",
            "version": 19,
            "memory_kib": self.memory_kib,
            "time_cost": self.time_cost,
            "parallelism": self.parallelism,
        }


def decode_kdf_params(doc: object, what: str) -> KdfParams:
    """Parse KDF parameters from a stored slot, refusing anything outside the bounds before argon2 runs."""
    if not isinstance(doc, dict) or doc.get("algorithm") != "argon2id" or doc.get("version") != 19:
        raise IntegrityError(f"{what} names an unknown key derivation")
    vals = [doc.get(k) for k in ("memory_kib", "time_cost", "parallelism")]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
        raise IntegrityError(f"{what} has malformed key derivation parameters")
    params = KdfParams(*vals)  # type: ignore[arg-type]
    if not (
        HARD_MIN_MEMORY_KIB <= params.memory_kib <= MAX_MEMORY_KIB
        and 1 <= params.time_cost <= MAX_TIME_COST
        and 1 <= params.parallelism <= MAX_PARALLELISM
        and params.memory_kib >= 8 * params.parallelism
    ):
        raise IntegrityError(
            f"{what} asks for key derivation parameters outside the safe bounds; refusing to run them"
        )
    return params


# -- the slot ------------------------------------------------------------------------------------------------
class SlotFields(NamedTuple):
    """What a stored slot holds (vault.crypto.slots.KeySlot is built from it)."""

    slot_id: str
    version: int
    params: KdfParams
    policy: str
    salt: bytes
    phc_hash: str
    wrapped: bytes
    info: bytes  # sealed details: see encode_slot_details


def encode_slot(slot: SlotFields) -> bytes:
    doc = {
        "version": slot.version,
        "id": slot.slot_id,
        "kdf": slot.params.to_json() | {"salt": b64(slot.salt)},
        "policy": slot.policy,
        "hash": slot.phc_hash,
        "wrapped_key": b64(slot.wrapped),
        "info": b64(slot.info),
    }
    return encode_json(doc)


def decode_slot(raw: bytes, name: str) -> SlotFields:
    """Parse a stored slot. Every field is checked; KDF parameters are capped. Raises IntegrityError."""
    what = f"key slot {name}"
    if len(raw) > MAX_SLOT_SIZE:
        raise IntegrityError(f"{what} is too large")
    doc = decode_json_object(raw, what)
    if not isinstance(doc.get("version"), int) or isinstance(doc.get("version"), bool):
        raise IntegrityError(f"{what} has no version")
    version = doc["version"]
    check_version(version, what, maximum=SLOT_VERSION_WRITE_ONLY)
    kdf_doc = doc.get("kdf")
    params = decode_kdf_params(kdf_doc, what)
    assert isinstance(kdf_doc, dict)
    salt = unb64(kdf_doc.get("salt"), what, SALT_SIZE)
    fields = {k: doc.get(k) for k in ("id", "policy", "hash")}
    if not all(isinstance(v, str) and len(v) < 1024 for v in fields.values()):
        raise IntegrityError(f"{what} has malformed fields")
    if fields["id"] != name or fields["policy"] not in POLICIES:
        raise IntegrityError(f"{what} does not match its name or has an unknown policy")
    if not str(fields["hash"]).isascii():  # argon2-cffi's verify raises UnicodeEncodeError for these
        raise IntegrityError(f"{what} holds a malformed password hash")
    _check_phc_parameters(str(fields["hash"]), params, what)
    if version == SLOT_VERSION:
        wrapped = unb64(doc.get("wrapped_key"), what, KEY_SIZE + AEAD_OVERHEAD)
    elif version == SLOT_VERSION_WRITE_ONLY:
        wrapped = unb64(doc.get("wrapped_key"), what, WRITE_ONLY_KEYRING_SIZE + AEAD_OVERHEAD)
    else:
        wrapped = unb64(doc.get("wrapped_key"), what)
        if not AEAD_OVERHEAD < len(wrapped) <= MAX_KEYRING_SIZE + AEAD_OVERHEAD:
            raise IntegrityError(f"{what} holds a malformed wrapped key")
    info = unb64(doc.get("info"), what)
    if len(info) < AEAD_OVERHEAD:
        raise IntegrityError(f"{what} has malformed details")
    return SlotFields(
        slot_id=str(fields["id"]),
        version=version,
        params=params,
        policy=str(fields["policy"]),
        salt=salt,
        phc_hash=str(fields["hash"]),
        wrapped=wrapped,
        info=info,
    )


def _check_phc_parameters(phc_hash: str, params: KdfParams, what: str) -> None:
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
    for text, size in ((fields[4], SALT_SIZE), (fields[5], 32)):
        try:
            raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except ValueError as exc:
            raise IntegrityError(f"{what} holds a malformed password hash") from exc
        if len(raw) != size:
            raise IntegrityError(f"{what} holds a malformed password hash")


# -- associated data and sealed details ----------------------------------------------------------------------
def slot_wrap_aad(vault_id: bytes, slot_id: str, params: KdfParams, salt: bytes, policy: str, version: int) -> bytes:
    """Associated data of the wrap: binds the vault, the slot id and the KDF parameters, so a slot copied from
    another vault or with edited parameters fails to open."""
    body = encode_json({"kdf": params.to_json(), "salt": b64(salt), "policy": policy})
    return AAD_KEY_SLOT + bytes([version]) + vault_id + slot_id.encode("ascii") + body


def slot_info_aad(vault_id: bytes, slot_id: str, version: int) -> bytes:
    return AAD_KEY_SLOT + b"/info" + bytes([version]) + vault_id + slot_id.encode("ascii")


def encode_slot_details(created: str, host: str, public_key_generation: int | None = None) -> bytes:
    """The plaintext of a slot's ``info``, sealed: the storage must not learn which machines hold keys. A
    write-only slot's also says which generation's public key it seals to (`rekey` reads it without the
    slot's password)."""
    doc: dict[str, object] = {"created": created, "host": host}
    if public_key_generation is not None:
        doc["public_key_generation"] = public_key_generation
    return encode_json(doc)


def decode_slot_details(plain: bytes, what: str) -> tuple[str, str]:
    """``(created, host)`` from a slot's opened ``info``. IntegrityError."""
    doc = decode_json_object(plain, what)
    created, host = doc.get("created"), doc.get("host")
    if not isinstance(created, str) or not isinstance(host, str):
        raise IntegrityError(f"{what} has malformed details")
    return created, host


def decode_slot_generation(plain: bytes, what: str) -> int | None:
    """The public key generation a write-only slot's opened ``info`` names (None for other slots).
    IntegrityError."""
    value = decode_json_object(plain, what).get("public_key_generation")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**32:
        raise IntegrityError(f"{what} has malformed details")
    return value
