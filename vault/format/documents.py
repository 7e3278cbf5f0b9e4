"""Canonical JSON documents and the fields they share: ids in hex, bytes in base64, each parsed as hostile."""

from __future__ import annotations

import base64
import json
from typing import Any

from vault.errors import IntegrityError
from vault.format.constants import ID_SIZE


def encode_json(doc: Any) -> bytes:
    """Canonical JSON: sorted keys, no spaces. Names that are not valid UTF-8 travel as surrogate escapes,
    which ``ensure_ascii`` writes as \\udcXX and json reads back unchanged."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def decode_json_object(buf: bytes, what: str) -> dict[str, Any]:
    """Parse a JSON object; anything else (bad UTF-8, bad JSON, a list, deep nesting) is IntegrityError."""
    try:
        doc = json.loads(buf)
    except (ValueError, RecursionError) as exc:
        raise IntegrityError(f"{what} is not valid JSON") from exc
    if not isinstance(doc, dict):
        raise IntegrityError(f"{what} is not a JSON object")
    return doc


def id_hex(raw: bytes) -> str:
    return raw.hex()


def id_from_hex(text: object, what: str) -> bytes:
    """Parse a 64-hex-digit id from an untrusted document."""
    if not isinstance(text, str) or len(text) != 2 * ID_SIZE:
        raise IntegrityError(f"{what} holds a malformed id")
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise IntegrityError(f"{what} holds a malformed id") from exc
    if len(raw) != ID_SIZE:  # fromhex skips whitespace, so 64 characters may hold fewer bytes
        raise IntegrityError(f"{what} holds a malformed id")
    return raw


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: object, what: str, size: int | None = None) -> bytes:
    """Parse a standard base64 field from an untrusted document (at most 4096 characters; of ``size`` bytes when
    given). IntegrityError."""
    if not isinstance(text, str) or len(text) > 4096:
        raise IntegrityError(f"{what} holds a malformed field")
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise IntegrityError(f"{what} holds a malformed field") from exc
    if size is not None and len(raw) != size:
        raise IntegrityError(f"{what} holds a field of the wrong size")
    return raw
