"""What `rm`, `forget` and `prune` do in a vault with a retention (S3 Object Lock, compliance mode), against moto's
server through the real command: what the locks forbid deleting is hidden (gone from every listing), reported as
held until a date, undeletable with full credentials, and deleted by a later `prune` once the lock has passed;
`prune` extends the locks of what kept versions need, in rounds.

The vaults are made with ``init --retention 3`` (locks 3 days out); where a test needs a lock to pass, it moves
that lock a few seconds ahead with boto3's PutObjectRetention (moto lets any client shorten a compliance lock,
which S3 never would: that is the test's clock, not the vault's). Locks are read back with HeadObject.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from helpers import parse_json, random_bytes

DAYS = 3


def _entries(s3: Any, kind: str) -> list[dict[str, Any]]:
    """Every version and delete marker under the vault's ``kind/`` prefix (``marker`` set on markers)."""
    out: list[dict[str, Any]] = []
    for page in s3.client.get_paginator("list_object_versions").paginate(Bucket=s3.bucket, Prefix=s3.key(f"{kind}/")):
        out += [dict(v, marker=False) for v in page.get("Versions", ())]
        out += [dict(m, marker=True) for m in page.get("DeleteMarkers", ())]
    return out


def _hidden(s3: Any, kind: str) -> list[dict[str, Any]]:
    """The noncurrent versions under ``kind/`` (what deletions hid, still stored)."""
    return [e for e in _entries(s3, kind) if not e["marker"] and not e["IsLatest"]]


def _until(s3: Any, key: str, version_id: str | None = None) -> datetime:
    kwargs: dict[str, Any] = {"Bucket": s3.bucket, "Key": key}
    if version_id is not None:
        kwargs["VersionId"] = version_id
    until: datetime = s3.client.head_object(**kwargs)["ObjectLockRetainUntilDate"]
    return until


def _relock(s3: Any, key: str, until: datetime, version_id: str | None = None) -> None:
    kwargs: dict[str, Any] = {"Bucket": s3.bucket, "Key": key,
                              "Retention": {"Mode": "COMPLIANCE", "RetainUntilDate": until}}
    if version_id is not None:
        kwargs["VersionId"] = version_id
    s3.client.put_object_retention(**kwargs)


def _wait_until(when: datetime) -> None:
    time.sleep(max(0.0, (when - datetime.now(UTC)).total_seconds()) + 1.1)


def _two_versions(s3: Any, tmp_path: Path) -> Path:
    """A vault with a retention holding item ``f.bin`` in two versions of different contents (so two packs)."""
    s3.init("--retention", str(DAYS))
    src = tmp_path / "f.bin"
    src.write_bytes(random_bytes(1 << 20, seed=11))
    s3("put", str(src), check=0)
    src.write_bytes(random_bytes(1 << 20, seed=12))
    s3("put", str(src), check=0)
    return src


def test_rm_of_a_locked_version_hides_it_at_once_and_a_prune_after_the_lock_deletes_it(
    s3: Any, tmp_path: Path
) -> None:
    _two_versions(s3, tmp_path)
    soon = datetime.now(UTC) + timedelta(seconds=12)
    for key in s3.keys_of("versions"):
        _relock(s3, key, soon)
    records_before = set(s3.keys_of("versions"))

    r = s3("rm", "f.bin", "--version", "1", check=0)
    gone = records_before - set(s3.keys_of("versions"))
    assert len(gone) == 1
    key = gone.pop()
    (hidden,) = [e for e in _hidden(s3, "versions") if e["Key"] == key]
    with pytest.raises(ClientError) as denied:  # full credentials can't delete it either
        s3.client.delete_object(Bucket=s3.bucket, Key=key, VersionId=hidden["VersionId"])
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert datetime.now(UTC) < soon  # (the refusal above was the lock's, not a lock that had passed)

    assert "removed 1 version(s) of f.bin" in r.stdout
    assert f"1 object(s) held by retention until {soon:%Y-%m-%d %H:%M} UTC" in r.stdout
    assert [h["version"] for h in parse_json(s3("history", "f.bin", "--json"))] == [2]
    assert [e["latest_version"] for e in parse_json(s3("ls", "--json"))] == [2]

    _wait_until(soon)
    doc = parse_json(s3("prune", "--json"))
    assert doc["purged_objects"] == 2  # the record's version and its delete marker
    assert [e for e in _entries(s3, "versions") if e["Key"] == key] == []  # nothing left of it
    # The pack only version 1 used is unreferenced now: this prune could only hide it (locked for DAYS).
    assert doc["packs_deleted"] == 1 and doc["held_objects"] == 1
    assert [e["Key"] for e in _hidden(s3, "data")] != []
    assert doc["held_until"] > (datetime.now(UTC) + timedelta(days=DAYS - 1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert [h["version"] for h in parse_json(s3("history", "f.bin", "--json"))] == [2]


def test_forget_and_prune_under_lock_exit_0_report_held_data_and_a_later_prune_frees_it(
    s3: Any, tmp_path: Path
) -> None:
    src = _two_versions(s3, tmp_path)
    forget = parse_json(s3("forget", "--keep-last", "1", "--json"))
    dropped = [e for e in forget if e["action"] == "drop"]
    assert [e["version"] for e in dropped] == [1]
    held_until = datetime.fromisoformat(dropped[0]["held_until"].replace("Z", "+00:00"))
    assert timedelta(days=DAYS - 1) < held_until - datetime.now(UTC) <= timedelta(days=DAYS)
    assert [e["held_until"] for e in forget if e["action"] == "keep"] == [None]

    packs_before = set(s3.keys_of("data"))
    r = s3("prune", check=0)
    assert "held by retention until" in r.stdout
    assert "a later `vault prune` deletes them" in r.stdout
    hidden = _hidden(s3, "data")
    assert hidden and {e["Key"] for e in hidden} <= packs_before  # the old version's pack, hidden not deleted
    assert not {e["Key"] for e in hidden} & set(s3.keys_of("data"))
    s3("check", "--read-data", check=0)
    out = tmp_path / "out.bin"
    s3("get", "f.bin", "-o", str(out), check=0)
    assert out.read_bytes() == src.read_bytes()

    # A prune before the locks pass deletes nothing hidden and says so.
    doc = parse_json(s3("prune", "--json"))
    assert doc["purged_objects"] == 0 and doc["held_objects"] >= len(hidden)
    for kind in ("data", "versions"):
        for e in _hidden(s3, kind):
            _relock(s3, e["Key"], datetime.now(UTC) + timedelta(seconds=2), e["VersionId"])
    time.sleep(3.1)
    doc = parse_json(s3("prune", "--json"))
    assert doc["purged_objects"] >= len(hidden)
    assert doc["held_objects"] == 0
    assert _hidden(s3, "data") == [] and _hidden(s3, "versions") == []
    assert [e for e in _entries(s3, "data") if e["marker"]] == []
    s3("check", "--read-data", check=0)


def test_prune_extends_the_locks_of_what_kept_versions_need_and_not_of_what_it_drops(
    s3: Any, tmp_path: Path
) -> None:
    # Two puts of 1 MiB each: a pack each. (Which is which is told by what each put added, not by LastModified,
    # which has one-second steps: two puts within a second would sort either way.)
    s3.init("--retention", str(DAYS))
    src = tmp_path / "f.bin"
    src.write_bytes(random_bytes(1 << 20, seed=11))
    s3("put", str(src), check=0)
    (old_pack,) = s3.keys_of("data")
    src.write_bytes(random_bytes(1 << 20, seed=12))
    s3("put", str(src), check=0)
    (new_pack,) = set(s3.keys_of("data")) - {old_pack}
    # As if most of the retention had passed since the puts: every lock ends in a minute.
    soon = (datetime.now(UTC) + timedelta(minutes=1)).replace(microsecond=0)
    for kind in ("config", "keys", "data", "versions"):
        for key in ([s3.key("config")] if kind == "config" else s3.keys_of(kind)):
            _relock(s3, key, soon)
    old_version = s3.client.head_object(Bucket=s3.bucket, Key=old_pack)["VersionId"]
    s3("forget", "--keep-last", "1", check=0)

    before = datetime.now(UTC)
    doc = parse_json(s3("prune", "--json"))
    kept = [s3.key("config"), *s3.keys_of("keys"), *s3.keys_of("data"), *s3.keys_of("versions")]
    assert doc["retention_extended"] == len(kept)  # config, the key slot, the kept pack, the kept record(s)
    extended_until = datetime.fromisoformat(doc["retention_extended_until"].replace("Z", "+00:00"))
    assert before + timedelta(days=DAYS) - timedelta(seconds=2) <= extended_until
    assert _until(s3, new_pack) >= extended_until - timedelta(seconds=1)
    for key in [s3.key("config"), *s3.keys_of("keys"), *s3.keys_of("versions")]:
        assert _until(s3, key) >= extended_until - timedelta(seconds=1), key
    # The pack only the forgotten version used is hidden, and keeps the lock it had.
    assert old_pack not in s3.keys_of("data")
    assert _until(s3, old_pack, old_version) == soon

    # Within DAYS/2 of that round, a prune extends nothing (everything is locked past then + DAYS/2 anyway)...
    _relock(s3, new_pack, soon)
    again = parse_json(s3("prune", "--json"))
    assert again["retention_extended"] == 0 and again["retention_extended_until"] is None
    assert _until(s3, new_pack) == soon
    # ...but a machine with no record of the round (here: no cache) extends everything again.
    third = parse_json(s3("--no-cache", "prune", "--json"))
    assert third["retention_extended"] == len(kept)
    assert _until(s3, new_pack) >= extended_until - timedelta(seconds=1)


def test_prune_json_of_a_vault_without_retention_reports_no_retention_work(s3_vault: Any, tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("one\n")
    s3_vault("put", str(src), check=0)
    s3_vault("rm", "a.txt", check=0)
    doc = parse_json(s3_vault("prune", "--json"))
    assert doc["packs_deleted"] == 1
    assert (doc["held_objects"], doc["held_until"], doc["purged_objects"]) == (0, None, 0)
    assert (doc["retention_extended"], doc["retention_extended_until"]) == (0, None)
