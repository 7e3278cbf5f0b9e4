"""The optional ``origin`` of a version record (format.md, "Version record"): written by `copy`, absent
elsewhere; records without it read as before, and it survives being folded into a catalog segment."""

from __future__ import annotations

import json

import pytest

from vault import format as fmt
from vault.errors import IntegrityError

BASE = {"bytes_added": 1, "created": "2026-01-01T00:00:00Z", "files": 1, "host": "h", "item": "a", "size": 1,
        "tree": "ab" * 32, "type": "file", "v": 1, "version": 3}
ORIGIN = {"vault": "cd" * 16, "record": "ef" * 32, "version": 7}


def _plain(doc: dict[str, object]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def test_records_without_origin_read_and_encode_as_before() -> None:
    fields = fmt.decode_record(_plain(BASE), "r")
    assert fields.origin is None
    assert fmt.encode_record(fields) == _plain(BASE)


def test_origin_round_trips_in_records_and_segments() -> None:
    fields = fmt.decode_record(_plain(BASE | {"origin": ORIGIN}), "r")
    assert fields.origin == fmt.RecordOrigin("cd" * 16, "ef" * 32, 7)
    assert fmt.encode_record(fields) == _plain(BASE | {"origin": ORIGIN})
    segment = fmt.decode_segment(fmt.encode_segment([("01" * 32, fields)]), "s")
    assert segment[0][1].origin == fields.origin


@pytest.mark.parametrize("origin", [
    "text", {"vault": "cd" * 16, "record": "ef" * 32}, {"vault": "cd" * 15, "record": "ef" * 32, "version": 1},
    {"vault": "xy" * 16, "record": "ef" * 32, "version": 1}, {"vault": "cd" * 16, "record": "e", "version": 1},
    {"vault": "cd" * 16, "record": "ef" * 32, "version": 0}, {"vault": "cd" * 16, "record": "ef" * 32, "version": True},
])
def test_a_malformed_origin_is_damage(origin: object) -> None:
    with pytest.raises(IntegrityError):
        fmt.decode_record(_plain(BASE | {"origin": origin}), "r")
