"""Version records: the JSON an encrypted version record holds, alone (a loose record object) or many to a
catalog segment, and their parsers."""

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
    } | ({"damaged": list(record.damaged)} if record.damaged else {})


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
        nums[1], nums[2], nums[3], host, tuple(damaged),  # type: ignore[arg-type]
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
