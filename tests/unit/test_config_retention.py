"""The config's ``retention_days`` (format version 3): written only when set, accepted only from version 3, so a
reader that knows nothing of retention refuses such a vault (docs/format.md, "Config")."""

from __future__ import annotations

import json

import pytest

from vault import format as fmt
from vault.errors import IntegrityError, UnsupportedVersionError
from vault.repo.config import VaultConfig, arm_retention, new_config
from vault.storage.memory import MemoryBackend

VID = bytes(range(16))


def _doc(**fields: object) -> bytes:
    doc: dict[str, object] = {
        "format_version": 1,
        "id": VID.hex(),
        "created": "2026-12-07T10:00:00Z",
        "chunker": {"min": fmt.CHUNK_MIN, "avg": fmt.CHUNK_AVG, "max": fmt.CHUNK_MAX},
    }
    doc.update(fields)
    return json.dumps(doc).encode()


def test_a_config_without_retention_says_nothing_of_it() -> None:
    config = new_config()
    assert config.format_version == fmt.NEW_VAULT_FORMAT and config.retention_days is None
    assert b"retention" not in config.to_bytes()
    assert fmt.decode_config(config.to_bytes()).retention_days is None


def test_a_config_with_retention_is_version_3_and_round_trips() -> None:
    config = new_config(30)
    assert config.format_version == fmt.FORMAT_VERSION_RETENTION == 3
    decoded = fmt.decode_config(config.to_bytes())
    assert decoded.retention_days == 30 and decoded.format_version == 3


@pytest.mark.parametrize("value", [0, -1, fmt.MAX_RETENTION_DAYS + 1, "30", 1.5, True, None])
def test_invalid_retention_values_are_refused(value: object) -> None:
    raw = _doc(format_version=3, retention_days=value)
    if value is None:  # JSON null: no retention
        assert fmt.decode_config(raw).retention_days is None
        return
    with pytest.raises(IntegrityError):
        fmt.decode_config(raw)


def test_retention_in_an_older_version_config_is_refused() -> None:
    # A config that says version 1 or 2 but holds a retention was made to slip past old readers: refuse it.
    for version in (1, 2):
        with pytest.raises(IntegrityError):
            fmt.decode_config(_doc(format_version=version, retention_days=7))
    with pytest.raises(ValueError):
        fmt.encode_config(fmt.ConfigFields(1, VID, "2026-12-07T10:00:00Z", 7))


def test_the_config_version_stops_at_the_format_maximum() -> None:
    with pytest.raises(UnsupportedVersionError):
        fmt.decode_config(_doc(format_version=fmt.FORMAT_VERSION_MAX + 1))
    assert fmt.decode_config(_doc(format_version=fmt.FORMAT_VERSION_MAX, retention_days=7)).retention_days == 7


def test_arming_retention_is_a_no_op_for_a_backend_that_cannot_lock() -> None:
    backend = MemoryBackend()
    arm_retention(backend, VaultConfig(3, VID, "2026-12-07T10:00:00Z", 30))
    assert not hasattr(backend, "retention")
