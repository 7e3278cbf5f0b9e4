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

import base64
import contextlib
import logging
import os
import secrets
import socket
import struct
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
    UnknownGenerationError,
)
from vault.storage.base import Backend, Handle, Kind, ObjectInfo

log = logging.getLogger(__name__)

SLOT_VERSION = 1  # wraps the 32-byte master key of a never-rekeyed vault
SLOT_VERSION_KEYRING = 2  # wraps an encoded Keyring (after `vault rekey`)
MAX_SLOT_SIZE = 64 * 1024
POLICY_DEFAULT = "default"  # follows the program's defaults: rewrapped when they grow
POLICY_EXPLICIT = "explicit"  # chosen by the user at init: kept as chosen
POLICY_RECOVERY = "recovery"  # a recovery key's slot: minimum cost, never rewrapped (see crypto/recovery.py)
POLICIES = (POLICY_DEFAULT, POLICY_EXPLICIT, POLICY_RECOVERY)
RECOVERY_PARAMS = kdf.KdfParams(kdf.HARD_MIN_MEMORY_KIB, 1, 1)


class Generation:
    """One key generation's encryption keys, derived from its 32-byte master key. ``repr`` hides the bytes."""

    __slots__ = ("data", "meta", "number", "raw")

    def __init__(self, number: int, raw: bytes, vault_id: bytes) -> None:
        if len(raw) != fmt.KEY_SIZE:
            raise ValueError("master keys are 32 bytes")
        self.number = number
        self.raw = raw
        self.data = Aead(_derive(raw, vault_id, fmt.LABEL_DATA))
        self.meta = Aead(_derive(raw, vault_id, fmt.LABEL_META))

    def __repr__(self) -> str:
        return f"Generation({self.number}, <hidden>)"


def _derive(raw: bytes, vault_id: bytes, label: bytes, length: int = fmt.KEY_SIZE) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=vault_id, info=label).derive(raw)


# The keyring a version 2 slot wraps:
# "VKR" 0x01 | data id key (32) | tree id key (32) | chunker seed (u64) | current generation (u32) | flags (u8)
# | count (u8) | count x (generation u32 | master key 32)
KEYRING_MAGIC = b"VKR\x01"
_KEYRING_HEAD = struct.Struct("<4s32s32sQIBB")
_KEYRING_GEN = struct.Struct("<I32s")
FLAG_REENCRYPT_PENDING = 0x01  # `rekey --reencrypt` started and has not finished: rerunning it resumes
MAX_GENERATIONS_HELD = 64  # each rekey without --reencrypt keeps the older generations: bounded all the same
MAX_KEYRING_SIZE = _KEYRING_HEAD.size + MAX_GENERATIONS_HELD * _KEYRING_GEN.size


class Keyring:
    """Everything a key slot unlocks: the vault's identity keys and one master key per key generation.

    - Identity keys name blobs (keyed BLAKE3) and seed the chunker. They are derived from the first master key
      and never change, so data stored before and after `vault rekey` deduplicates.
    - Each generation has its own master key, and from it the AEAD keys for blobs (``data``) and for pack
      headers and objects (``meta``). New bytes are sealed under the current generation; every stored pack and
      object names the generation it was sealed under, and older generations stay here until
      `rekey --reencrypt` has rewritten their data.

    A vault that was never rekeyed holds generation 0 only, whose master key is the one a version 1 slot wraps
    and from which the identity keys come (so version 1 vaults read and write exactly as before).
    Never logged or printed: ``repr`` hides the bytes.
    """

    __slots__ = ("_gens", "_id_key", "_tree_id_key", "chunker_seed", "current", "flags", "vault_id")

    def __init__(
        self,
        vault_id: bytes,
        id_key: bytes,
        tree_id_key: bytes,
        chunker_seed: int,
        generations: dict[int, bytes],
        current: int,
        flags: int = 0,
    ) -> None:
        if current not in generations:
            raise ValueError("the current generation must be held")
        self.vault_id = vault_id
        self._id_key = id_key
        self._tree_id_key = tree_id_key
        self.chunker_seed = chunker_seed
        self._gens = {n: Generation(n, raw, vault_id) for n, raw in sorted(generations.items())}
        self.current = current
        self.flags = flags

    @classmethod
    def from_master_key(cls, raw: bytes, vault_id: bytes) -> Keyring:
        """The keyring of a never-rekeyed vault: generation 0 is ``raw``, the identity keys derive from it."""
        if len(raw) != fmt.KEY_SIZE:
            raise ValueError("master keys are 32 bytes")
        seed = int.from_bytes(_derive(raw, vault_id, fmt.LABEL_CHUNKER, 8), "little")
        return cls(
            vault_id,
            _derive(raw, vault_id, fmt.LABEL_ID),
            _derive(raw, vault_id, fmt.LABEL_TREE_ID),
            # pyfastcdc XORs the seed into its 64-bit gear table; keep it non-zero (0 means "default table").
            (seed & ((1 << 63) - 1)) | 1,
            {0: raw},
            0,
        )

    # -- the generations -----------------------------------------------------------------------------------
    @property
    def generation(self) -> Generation:
        return self._gens[self.current]

    @property
    def data(self) -> Aead:
        """AEAD for new blobs (the current generation's)."""
        return self.generation.data

    @property
    def meta(self) -> Aead:
        """AEAD for new pack headers and objects (the current generation's)."""
        return self.generation.meta

    @property
    def generations(self) -> tuple[int, ...]:
        return tuple(self._gens)

    def get(self, number: int, what: str) -> Generation:
        """The keys of generation ``number``. UnknownGenerationError when it is newer than any this keyring holds
        (sealed after a `rekey` that the opening slot predates: not damage); plain IntegrityError when it is
        older (a generation `rekey --reencrypt` retired: an old object put back, or an altered header)."""
        gen = self._gens.get(number)
        if gen is None and number < max(self._gens):
            raise IntegrityError(
                f"{what} is sealed under key generation {number}, which this vault no longer uses: an old object "
                "was put back, or its header was altered"
            )
        if gen is None:
            raise UnknownGenerationError(
                f"{what} is sealed under key generation {number}, which the key that opened the vault does not "
                f"hold (it holds {', '.join(map(str, self._gens))})",
                hint="a key made before the last `vault rekey` can't read newer data; use a current password",
            )
        return gen

    @property
    def reencrypt_pending(self) -> bool:
        return bool(self.flags & FLAG_REENCRYPT_PENDING)

    @property
    def is_legacy(self) -> bool:
        """True while the vault was never rekeyed: its slots stay version 1 (a 32-byte master key)."""
        return self.current == 0 and len(self._gens) == 1 and not self.flags

    def rotated(self, reencrypt: bool) -> Keyring:
        """A keyring with a new random current generation, holding the older ones for the data under them."""
        if len(self._gens) >= MAX_GENERATIONS_HELD:
            raise ConflictError(
                f"this vault holds {len(self._gens)} key generations, the most it can",
                hint="run `vault rekey --reencrypt` to rewrite old data under one key",
            )
        number = max(self._gens) + 1
        if number > fmt.MAX_GENERATION:
            raise ConflictError("this vault has used every key generation number")
        gens = {n: g.raw for n, g in self._gens.items()} | {number: os.urandom(fmt.KEY_SIZE)}
        flags = self.flags | (FLAG_REENCRYPT_PENDING if reencrypt else 0)
        return Keyring(self.vault_id, self._id_key, self._tree_id_key, self.chunker_seed, gens, number, flags)

    def current_only(self) -> Keyring:
        """This keyring without the older generations (once no stored byte is sealed under them)."""
        gens = {self.current: self.generation.raw}
        return Keyring(self.vault_id, self._id_key, self._tree_id_key, self.chunker_seed, gens, self.current, 0)

    # -- identity --------------------------------------------------------------------------------------------
    def blob_id(self, data: bytes | memoryview, blob_type: int = fmt.BlobType.DATA) -> bytes:
        """Keyed BLAKE3 of a blob's plaintext: the storage cannot confirm a guess of the contents. Each blob
        type has its own key, so a file whose bytes equal a tree's encoding is a different blob."""
        key = self._tree_id_key if blob_type == fmt.BlobType.TREE else self._id_key
        return blake3.blake3(data, key=key).digest()

    # -- serialization (the plaintext a version 2 slot wraps) ------------------------------------------------
    def wrapped_plaintext(self) -> bytes:
        """What a slot wraps: the 32-byte master key (version 1) or the encoded keyring (version 2)."""
        if self.is_legacy:
            return self._gens[0].raw
        out = bytearray(
            _KEYRING_HEAD.pack(
                KEYRING_MAGIC, self._id_key, self._tree_id_key, self.chunker_seed, self.current, self.flags,
                len(self._gens),
            )
        )
        for n, g in self._gens.items():
            out += _KEYRING_GEN.pack(n, g.raw)
        return bytes(out)

    @classmethod
    def decode(cls, buf: bytes, vault_id: bytes, what: str) -> Keyring:
        """Parse an encoded keyring (already authenticated by the slot's AEAD, still bounds-checked).
        Raises IntegrityError."""
        if len(buf) < _KEYRING_HEAD.size or len(buf) > MAX_KEYRING_SIZE:
            raise IntegrityError(f"{what} holds a malformed keyring")
        magic, id_key, tree_id_key, seed, current, flags, count = _KEYRING_HEAD.unpack_from(buf, 0)
        if magic != KEYRING_MAGIC or flags & ~FLAG_REENCRYPT_PENDING or not seed & 1 or seed >= 1 << 63:
            raise IntegrityError(f"{what} holds a malformed keyring")
        if count == 0 or len(buf) != _KEYRING_HEAD.size + count * _KEYRING_GEN.size:
            raise IntegrityError(f"{what} holds a malformed keyring")
        gens: dict[int, bytes] = {}
        for i in range(count):
            n, raw = _KEYRING_GEN.unpack_from(buf, _KEYRING_HEAD.size + i * _KEYRING_GEN.size)
            if n in gens:
                raise IntegrityError(f"{what} holds a malformed keyring")
            gens[n] = raw
        if current not in gens:
            raise IntegrityError(f"{what} holds a malformed keyring")
        return cls(vault_id, id_key, tree_id_key, seed, gens, current, flags)

    def __repr__(self) -> str:
        return f"Keyring(generations={list(self._gens)}, <hidden>)"


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


def _verify_password(slot: KeySlot, password: bytes) -> bool:
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


class KeyStore:
    """The key slots of one vault, in ``keys/`` of its backend."""

    def __init__(self, backend: Backend, vault_id: bytes) -> None:
        self.backend = backend
        self.vault_id = vault_id

    def _read_slot(self, info: ObjectInfo) -> KeySlot:
        """Load (size-capped) and parse one slot. IntegrityError."""
        if info.size > MAX_SLOT_SIZE:
            raise IntegrityError(f"key slot {info.handle.name} is too large")
        return self.read_slot(info.handle.name)

    def read_slot(self, slot_id: str) -> KeySlot:
        """One slot by id. ObjectNotFoundError, IntegrityError."""
        raw = self.backend.load(Handle(Kind.KEYS, slot_id), 0, MAX_SLOT_SIZE + 1)
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
                if not _verify_password(slot, password):
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

    def add_recovery(self, master: Keyring, recovery_key: str) -> KeySlot:
        """Write a slot that a recovery key (crypto/recovery.py) opens; minimum KDF cost, never rewrapped."""
        return self.add(master, recovery_key.encode("ascii"), RECOVERY_PARAMS, POLICY_RECOVERY)

    def replace(self, old: KeySlot, master: Keyring, password: bytes, params: kdf.KdfParams) -> KeySlot:
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

    def rewrap(self, slot: KeySlot, keyring: Keyring, password: bytes) -> KeySlot:
        """Wrap another keyring (`vault rekey`) in ``slot``, for the same password (or recovery key) and KDF
        parameters; the save replaces the slot atomically."""
        password = recovery.normalize(password) or password  # as unlock() tried it
        return self.replace(slot, keyring, password, slot.params)

    def remove(self, slot_id: str) -> None:
        """Remove a slot. NotFoundError for an unknown id; ConflictError for the last slot."""
        ids = [info.handle.name for info in self.backend.list(Kind.KEYS)]  # also slots that don't parse
        if slot_id not in ids:
            raise NotFoundError(f"no key with id {slot_id!r}")
        if len(ids) == 1:
            raise ConflictError("refusing to remove the last key: the vault could never be opened again")
        try:
            self.backend.remove(Handle(Kind.KEYS, slot_id))
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


def new_keyring(vault_id: bytes) -> Keyring:
    """A new vault's keyring: generation 0, from a random master key."""
    return Keyring.from_master_key(os.urandom(fmt.KEY_SIZE), vault_id)
