"""The vault's config object: format version and vault id, in plaintext JSON (it holds no secret).

Tampering with it gains nothing: the vault id is bound into the associated data of every encrypted object and
key slot, so a changed id makes everything fail authentication, and a changed format version is refused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime

from vault import format as fmt
from vault.errors import IntegrityError, ObjectNotFoundError, VaultNotFoundError
from vault.storage.base import Backend, Handle, Kind

CONFIG_HANDLE = Handle(Kind.CONFIG, "config")
MAX_CONFIG_SIZE = 64 * 1024


@dataclass(frozen=True)
class VaultConfig:
    format_version: int
    vault_id: bytes
    created: str

    def to_bytes(self) -> bytes:
        return fmt.encode_json(
            {
                "format_version": self.format_version,
                "id": self.vault_id.hex(),
                "created": self.created,
                "chunker": {"min": fmt.CHUNK_MIN, "avg": fmt.CHUNK_AVG, "max": fmt.CHUNK_MAX},
            }
        )


def new_config() -> VaultConfig:
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return VaultConfig(fmt.FORMAT_VERSION, os.urandom(fmt.VAULT_ID_SIZE), created)


def load_config(backend: Backend) -> VaultConfig:
    """Read and check the config. VaultNotFoundError when there is none; UnsupportedVersionError for a newer
    format; IntegrityError for a malformed one."""
    try:
        raw = backend.load(CONFIG_HANDLE, 0, MAX_CONFIG_SIZE + 1)
    except ObjectNotFoundError:
        raise VaultNotFoundError(
            f"no vault at {backend.location}", hint="create one with `vault init`"
        ) from None
    if len(raw) > MAX_CONFIG_SIZE:
        raise IntegrityError("the vault config is too large")
    doc = fmt.decode_json_object(raw, "the vault config")
    version = doc.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise IntegrityError("the vault config has no format version")
    fmt.check_version(version, "this vault")
    vid = doc.get("id")
    created = doc.get("created")
    if not isinstance(vid, str) or len(vid) != 2 * fmt.VAULT_ID_SIZE or not isinstance(created, str):
        raise IntegrityError("the vault config is malformed")
    try:
        vault_id = bytes.fromhex(vid)
    except ValueError as exc:
        raise IntegrityError("the vault config is malformed") from exc
    if len(vault_id) != fmt.VAULT_ID_SIZE:  # fromhex skips whitespace
        raise IntegrityError("the vault config is malformed")
    return VaultConfig(version, vault_id, created)
