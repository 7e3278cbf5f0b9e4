"""Version records: the JSON an encrypted version record holds, and its parser."""

from __future__ import annotations

from typing import Any, NamedTuple

from vault.errors import IntegrityError
from vault.format.constants import check_version
from vault.format.documents import decode_json_object, encode_json, id_from_hex

RECORD_VERSION = 1
MAX_RECORD_SIZE = 1024 * 1024  # the sealed object's size


class RecordFields(NamedTuple):
    """What a version record holds (vault.repo.catalog.VersionRecord adds its object name)."""

    item: str
    version: int
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
    doc = decode_json_object(plain, what)
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
