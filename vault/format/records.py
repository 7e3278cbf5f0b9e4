"""Version records: the JSON an encrypted version record holds, alone (a loose record object) or many to a
catalog segment, and their parsers.

A record made by `vault copy` also names where it came from (``origin``: the source vault's id, the source
record's id and its version number), so a rerun of the copy skips it. The field is optional: records without it
(every record made otherwise, and every record of older releases) read as before, and older releases read
records that have it (they ignore keys they do not know)."""

from __future__ import annotations

from typing import Any, NamedTuple

from vault.errors import IntegrityError
from vault.format.constants import check_version
from vault.format.documents import decode_json_object, encode_json, id_from_hex

RECORD_VERSION = 1
MAX_RECORD_SIZE = 1024 * 1024  # the sealed object's size
SEGMENT_VERSION = 1
MAX_SEGMENT_SIZE = 32 * 1024 * 1024  # a sealed segment (4,096 records of ~400 bytes are ~1.6 MB)
MAX_SEGMENT_RECORDS = 65_536
VAULT_ID_HEX = 32  # a vault id (16 bytes) in hex, as an origin names it


class RecordOrigin(NamedTuple):
    """Where a copied version came from: the source vault's id (32 hex digits), the source record's id (64 hex
    digits) and the version number it had there."""

    vault_id: str
    record_id: str
    version: int


class RecordFields(NamedTuple):
    """What a version record holds (vault.repo.catalog.VersionRecord adds its object name)."""

    item: str
    version: int  # 1, 2, ...; 0: not numbered yet (written by a write-only key; readers number it)
    created: str  # ISO 8601 UTC
    type: str  # "file" or "dir"
    tree: bytes  # tree blob whose single node is the item's root
    size: int  # original bytes
    files: int
    bytes_added: int
    host: str
    damaged: tuple[str, ...]  # set by `repair` when data this version needs is lost
    origin: RecordOrigin | None = None  # set by `copy`: the version this one is a copy of


def record_doc(record: RecordFields) -> dict[str, Any]:
    """The record's JSON document."""
    return {
        "v": RECORD_VERSION,
        "item": record.item,
        "version": record.version,
        "created": record.created,
        "type": record.type,
        "tree": record.tree.hex(),
        "size": record.size,
        "files": record.files,
        "bytes_added": record.bytes_added,
        "host": record.host,
    } | ({"damaged": list(record.damaged)} if record.damaged else {}) | _origin_doc(record.origin)


def _origin_doc(origin: RecordOrigin | None) -> dict[str, Any]:
    if origin is None:
        return {}
    return {"origin": {"vault": origin.vault_id, "record": origin.record_id, "version": origin.version}}


def _origin(doc: dict[str, Any], what: str) -> RecordOrigin | None:
    """The optional ``origin`` of a record: ids in lowercase hex of the right lengths, a version number >= 1."""
    raw = doc.get("origin")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise IntegrityError(f"{what} has a malformed origin")
    vault_id, record_id, version = raw.get("vault"), raw.get("record"), raw.get("version")
    if not (isinstance(vault_id, str) and len(vault_id) == VAULT_ID_HEX and _is_hex(vault_id)):
        raise IntegrityError(f"{what} has a malformed origin")
    id_from_hex(record_id, what)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise IntegrityError(f"{what} has a malformed origin")
    assert isinstance(record_id, str)
    return RecordOrigin(vault_id, record_id.lower(), version)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def encode_record(record: RecordFields) -> bytes:
    return encode_json(record_doc(record))


def decode_record(plain: bytes, what: str) -> RecordFields:
    """Parse and check a record's (decrypted) JSON. Raises IntegrityError or UnsupportedVersionError."""
    return _record_fields(decode_json_object(plain, what), what)


def _record_fields(doc: dict[str, Any], what: str) -> RecordFields:
    v = doc.get("v")
    if not isinstance(v, int) or isinstance(v, bool):
        raise IntegrityError(f"{what} has no version")
    check_version(v, what, maximum=1)
    item, created, vtype, host = doc.get("item"), doc.get("created"), doc.get("type"), doc.get("host")
    if not (isinstance(item, str) and isinstance(created, str) and isinstance(host, str)):
        raise IntegrityError(f"{what} is malformed")
    if vtype not in ("file", "dir"):
        raise IntegrityError(f"{what} has an unknown type")
    nums = [doc.get(k) for k in ("version", "size", "files", "bytes_added")]
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in nums):
        raise IntegrityError(f"{what} is malformed")
    damaged = doc.get("damaged", [])
    if not isinstance(damaged, list) or not all(isinstance(d, str) for d in damaged):
        raise IntegrityError(f"{what} is malformed")
    return RecordFields(
        item, nums[0], created, vtype, id_from_hex(doc.get("tree"), what),  # type: ignore[arg-type]
        nums[1], nums[2], nums[3], host, tuple(damaged), _origin(doc, what),  # type: ignore[arg-type]
    )


# A catalog segment (object type CATALOG_SEGMENT, format version 3): canonical JSON
# {"v": 1, "records": [{"id": <record id, 64 hex digits>, ...the record's document...}, ...]}, ids unique.
def encode_segment(records: list[tuple[str, RecordFields]]) -> bytes:
    return encode_json({"v": SEGMENT_VERSION, "records": [{"id": rid} | record_doc(r) for rid, r in records]})


def decode_segment(plain: bytes, what: str) -> list[tuple[str, RecordFields]]:
    """Parse and check a segment's (decrypted) JSON: every record as strictly as a loose one, ids well-formed
    and unique. Raises IntegrityError or UnsupportedVersionError."""
    doc = decode_json_object(plain, what)
    v = doc.get("v")
    if not isinstance(v, int) or isinstance(v, bool):
        raise IntegrityError(f"{what} has no version")
    check_version(v, what, maximum=SEGMENT_VERSION)
    items = doc.get("records")
    if not isinstance(items, list) or not items or len(items) > MAX_SEGMENT_RECORDS:
        raise IntegrityError(f"{what} has no valid record list")
    out: list[tuple[str, RecordFields]] = []
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, dict):
            raise IntegrityError(f"{what} holds a malformed record")
        rid = item.get("id")
        id_from_hex(rid, what)  # 64 lowercase-or-not hex digits; normalised below
        assert isinstance(rid, str)
        rid = rid.lower()
        if rid in seen:
            raise IntegrityError(f"{what} holds a record twice")
        seen.add(rid)
        out.append((rid, _record_fields({k: val for k, val in item.items() if k != "id"}, what)))
    return out
