"""The vault's config: its plaintext JSON document (format version, vault id, creation time), and its parser."""

from __future__ import annotations

from typing import NamedTuple

from vault.errors import IntegrityError
from vault.format.constants import CHUNK_AVG, CHUNK_MAX, CHUNK_MIN, VAULT_ID_SIZE, check_version
from vault.format.documents import decode_json_object, encode_json

MAX_CONFIG_SIZE = 64 * 1024


class ConfigFields(NamedTuple):
    """What the config holds (vault.repo.config.VaultConfig is built from it)."""

    format_version: int
    vault_id: bytes
    created: str


def encode_config(config: ConfigFields) -> bytes:
    return encode_json(
        {
            "format_version": config.format_version,
            "id": config.vault_id.hex(),
            "created": config.created,
            "chunker": {"min": CHUNK_MIN, "avg": CHUNK_AVG, "max": CHUNK_MAX},
        }
    )


def decode_config(raw: bytes) -> ConfigFields:
    """Parse and check the config. UnsupportedVersionError for a newer format; IntegrityError for a malformed
    or oversized one."""
    if len(raw) > MAX_CONFIG_SIZE:
        raise IntegrityError("the vault config is too large")
    doc = decode_json_object(raw, "the vault config")
    version = doc.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise IntegrityError("the vault config has no format version")
    check_version(version, "this vault")
    vid = doc.get("id")
    created = doc.get("created")
    if not isinstance(vid, str) or len(vid) != 2 * VAULT_ID_SIZE or not isinstance(created, str):
        raise IntegrityError("the vault config is malformed")
    try:
        vault_id = bytes.fromhex(vid)
    except ValueError as exc:
        raise IntegrityError("the vault config is malformed") from exc
    if len(vault_id) != VAULT_ID_SIZE:  # fromhex skips whitespace
        raise IntegrityError("the vault config is malformed")
    return ConfigFields(version, vault_id, created)
