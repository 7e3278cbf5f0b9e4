"""Argon2id parameters, their bounds, and key derivation from a password.

Parameters are stored in every key slot (borg's and restic's key files do the same), so the defaults can
grow without re-keying. Parameters read from a slot are untrusted: :func:`check_untrusted` refuses values
above a ceiling *before* argon2 runs, so a tampered vault can't make us allocate 64 GiB or spin for minutes
(age bounds scrypt's work factor the same way with maxWorkFactor).
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from typing import Any

from argon2.low_level import Type, hash_secret_raw

from vault.errors import IntegrityError, UsageError
from vault.format import KEY_SIZE, SALT_SIZE

# RFC 9106's second recommended option: 64 MiB, t=3, p=4 (~0.2 s here).
DEFAULT_MEMORY_KIB = 64 * 1024
DEFAULT_TIME_COST = 3
DEFAULT_PARALLELISM = 4

OWASP_MIN_MEMORY_KIB = 19 * 1024  # below this: accepted with a warning
HARD_MIN_MEMORY_KIB = 8 * 1024  # below this: refused
# Ceilings for parameters read from storage. 2 GiB and t=16 at p=4 take ~10 s here: slow but bounded.
MAX_MEMORY_KIB = 2 * 1024 * 1024
MAX_TIME_COST = 16
MAX_PARALLELISM = 16


@dataclass(frozen=True, slots=True)
class KdfParams:
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


DEFAULT_PARAMS = KdfParams(DEFAULT_MEMORY_KIB, DEFAULT_TIME_COST, DEFAULT_PARALLELISM)


def current_defaults() -> KdfParams:
    """The parameters new and rewrapped slots get. Read at call time so a test fixture can lower them
    in-process (restic's test-only setter); there is deliberately no environment variable for it."""
    return DEFAULT_PARAMS


def validate_new(params: KdfParams) -> list[str]:
    """Check parameters a user asked for at init. Returns warnings; raises UsageError for refused values."""
    if params.memory_kib < HARD_MIN_MEMORY_KIB:
        raise UsageError(f"--kdf-memory must be at least {HARD_MIN_MEMORY_KIB // 1024} MiB")
    if params.memory_kib > MAX_MEMORY_KIB:
        raise UsageError(f"--kdf-memory must be at most {MAX_MEMORY_KIB // 1024} MiB")
    if not 1 <= params.time_cost <= MAX_TIME_COST:
        raise UsageError(f"--kdf-time must be between 1 and {MAX_TIME_COST}")
    if not 1 <= params.parallelism <= MAX_PARALLELISM:
        raise UsageError(f"--kdf-parallelism must be between 1 and {MAX_PARALLELISM}")
    if params.memory_kib < 8 * params.parallelism:
        raise UsageError("--kdf-memory must be at least 8 KiB per lane of --kdf-parallelism")
    warnings = []
    if params.memory_kib < OWASP_MIN_MEMORY_KIB:
        warnings.append(
            f"--kdf-memory {params.memory_kib // 1024} MiB is below OWASP's minimum of 19 MiB; "
            "passwords are cheaper to guess"
        )
    return warnings


def check_untrusted(doc: object, what: str) -> KdfParams:
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


def new_salt() -> bytes:
    return os.urandom(SALT_SIZE)


def derive_key(password: bytes, salt: bytes, params: KdfParams) -> bytes:
    """argon2id(password, salt) → 32-byte key-encryption key. argon2 releases the GIL while it works."""
    return hash_secret_raw(
        secret=password,
        salt=salt,
        time_cost=params.time_cost,
        memory_cost=params.memory_kib,
        parallelism=params.parallelism,
        hash_len=KEY_SIZE,
        type=Type.ID,
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: object, what: str, size: int | None = None) -> bytes:
    if not isinstance(text, str) or len(text) > 4096:
        raise IntegrityError(f"{what} holds a malformed field")
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise IntegrityError(f"{what} holds a malformed field") from exc
    if size is not None and len(raw) != size:
        raise IntegrityError(f"{what} holds a field of the wrong size")
    return raw
