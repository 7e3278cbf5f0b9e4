"""Argon2id parameters, their bounds, and key derivation from a password.

Parameters are stored in every key slot (borg's and restic's key files do the same), so the defaults can
grow without re-keying. Parameters read from a slot are untrusted: vault.format.slots, where ``KdfParams`` and
the ceilings live, refuses values above a ceiling *before* argon2 runs.
"""

from __future__ import annotations

import os

from argon2.low_level import Type, hash_secret_raw

from vault.errors import UsageError
from vault.format import KEY_SIZE, SALT_SIZE
from vault.format.slots import HARD_MIN_MEMORY_KIB as HARD_MIN_MEMORY_KIB
from vault.format.slots import MAX_MEMORY_KIB as MAX_MEMORY_KIB
from vault.format.slots import MAX_PARALLELISM as MAX_PARALLELISM
from vault.format.slots import MAX_TIME_COST as MAX_TIME_COST
from vault.format.slots import KdfParams as KdfParams

# RFC 9106's second recommended option: 64 MiB, t=3, p=4 (~0.2 s here).
DEFAULT_MEMORY_KIB = 64 * 1024
DEFAULT_TIME_COST = 3
DEFAULT_PARALLELISM = 4

OWASP_MIN_MEMORY_KIB = 19 * 1024  # below this: accepted with a warning

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
