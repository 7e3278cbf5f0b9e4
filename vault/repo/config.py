"""The vault's config object: format version and vault id, in plaintext JSON (it holds no secret).

Tampering with it gains nothing: the vault id is bound into the associated data of every encrypted object and
key slot, so a changed id makes everything fail authentication, and a changed format version is refused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime

from vault import format as fmt
from vault.errors import ObjectNotFoundError, VaultNotFoundError
from vault.storage.base import Backend, Handle, Kind

CONFIG_HANDLE = Handle(Kind.CONFIG, "config")


@dataclass(frozen=True)
class VaultConfig:
    format_version: int
    vault_id: bytes
    created: str

    def to_bytes(self) -> bytes:
        return fmt.encode_config(fmt.ConfigFields(self.format_version, self.vault_id, self.created))


def new_config() -> VaultConfig:
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return VaultConfig(fmt.NEW_VAULT_FORMAT, os.urandom(fmt.VAULT_ID_SIZE), created)


def load_config(backend: Backend) -> VaultConfig:
    """Read and check the config. VaultNotFoundError when there is none; UnsupportedVersionError for a newer
    format; IntegrityError for a malformed one."""
    try:
        raw = backend.load(CONFIG_HANDLE, 0, fmt.MAX_CONFIG_SIZE + 1)
    except ObjectNotFoundError:
        raise VaultNotFoundError(
            f"no vault at {backend.location}", hint="create one with `vault init`"
        ) from None
    return VaultConfig(**fmt.decode_config(raw)._asdict())
