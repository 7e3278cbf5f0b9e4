"""The vault's config object: format version, vault id and retention, in plaintext JSON (it holds no secret).

Tampering with it gains nothing: the vault id is bound into the associated data of every encrypted object and
key slot, so a changed id makes everything fail authentication, and a changed format version is refused.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from vault import format as fmt
from vault.errors import ObjectNotFoundError, VaultNotFoundError
from vault.storage.base import Backend, Handle, Kind, RetainingBackend, supports_retention

log = logging.getLogger(__name__)

CONFIG_HANDLE = Handle(Kind.CONFIG, "config")


@dataclass(frozen=True)
class VaultConfig:
    format_version: int
    vault_id: bytes
    created: str
    retention_days: int | None = None
    """Days each object the vault writes is locked for (S3 Object Lock, compliance mode); None: no retention."""

    def to_bytes(self) -> bytes:
        return fmt.encode_config(
            fmt.ConfigFields(self.format_version, self.vault_id, self.created, self.retention_days)
        )


def new_config(retention_days: int | None = None) -> VaultConfig:
    """A new vault's config: format version 1, or 3 when it has a retention (docs/format.md, "Config")."""
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return VaultConfig(fmt.NEW_VAULT_FORMAT, os.urandom(fmt.VAULT_ID_SIZE), created, retention_days)


def arm_retention(backend: Backend, config: VaultConfig) -> None:
    """Make ``backend`` lock what it writes for the vault's retention, when it has one and the backend can.

    A backend that can't lock (a local copy of an S3 vault, made to restore from) is left as it is: the
    retention is a property of the bucket's objects, and such a copy has no bucket."""
    if config.retention_days is None:
        return
    if supports_retention(backend):
        retaining: RetainingBackend = backend  # type: ignore[assignment]
        retaining.set_retention(timedelta(days=config.retention_days))
    else:
        log.debug("the vault has a retention of %d days, but %s can't lock objects", config.retention_days,
                  backend.location)


def load_config(backend: Backend) -> VaultConfig:
    """Read and check the config, and arm the backend's retention from it (:func:`arm_retention`), so that
    nothing is ever written into a vault with a retention without its lock. VaultNotFoundError when there is
    none; UnsupportedVersionError for a newer format; IntegrityError for a malformed one."""
    try:
        raw = backend.load(CONFIG_HANDLE, 0, fmt.MAX_CONFIG_SIZE + 1)
    except ObjectNotFoundError:
        raise VaultNotFoundError(
            f"no vault at {backend.location}", hint="create one with `vault init`"
        ) from None
    config = VaultConfig(**fmt.decode_config(raw)._asdict())
    arm_retention(backend, config)
    return config
