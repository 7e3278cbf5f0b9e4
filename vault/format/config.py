"""The vault's config: its plaintext JSON document (format version, vault id, creation time, retention), and its
parser."""

from __future__ import annotations

from typing import NamedTuple

from vault.errors import IntegrityError
from vault.format.constants import (
    CHUNK_AVG,
    CHUNK_MAX,
    CHUNK_MIN,
    FORMAT_VERSION_RETENTION,
    MAX_RETENTION_DAYS,
    VAULT_ID_SIZE,
    check_version,
)
from vault.format.documents import decode_json_object, encode_json

MAX_CONFIG_SIZE = 64 * 1024


class ConfigFields(NamedTuple):
    """What the config holds (vault.repo.config.VaultConfig is built from it)."""

    format_version: int
    vault_id: bytes
    created: str
    retention_days: int | None = None  # S3 Object Lock retention; present only from version 3


def encode_config(config: ConfigFields) -> bytes:
    """The canonical JSON of ``config``; ``retention_days`` appears only when set (and then the version must
    be at least 3: ValueError otherwise, a caller bug)."""
    doc: dict[str, object] = {
        "format_version": config.format_version,
        "id": config.vault_id.hex(),
        "created": config.created,
        "chunker": {"min": CHUNK_MIN, "avg": CHUNK_AVG, "max": CHUNK_MAX},
    }
    if config.retention_days is not None:
        if config.format_version < FORMAT_VERSION_RETENTION:
            raise ValueError("a config with a retention needs format version 3")
        doc["retention_days"] = config.retention_days
    return encode_json(doc)


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
    retention = doc.get("retention_days")
    if retention is not None and (
        version < FORMAT_VERSION_RETENTION
        or not isinstance(retention, int)
        or isinstance(retention, bool)
        or not 1 <= retention <= MAX_RETENTION_DAYS
    ):
        raise IntegrityError("the vault config has an invalid retention")
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
    return ConfigFields(version, vault_id, created, retention)
