"""Retention on S3 (Object Lock, compliance mode) against moto's server: `vault init --retention DAYS`, what
every write then locks, what nobody can delete or overwrite, and the backend API the upper layers build on
(``retention_until``, ``extend_retention``, ``remove`` hiding what is held and raising ``RetentionHeldError``,
``purge_expired``). What rm, forget and prune do with it: tests/s3/test_s3_retention_deletes.py.

Short retain-until dates come from the backend's own parameter (``S3Backend.set_retention(timedelta(...))``),
never from a clock knob. moto's ``GetObjectRetention`` answers 500, so locks are read back with HeadObject.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from helpers import CHEAP_INIT_ARGS, assert_error, random_bytes
from s3_helpers import fresh_bucket_name

from vault.errors import ObjectNotFoundError, RetentionHeldError
from vault.storage import Handle, Kind, open_backend, supports_retention
from vault.storage.s3 import RETAINED_KINDS, S3Backend

DAYS = 3


def _lock(client: Any, bucket: str, key: str, version_id: str | None = None) -> tuple[str | None, datetime | None]:
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id is not None:
        kwargs["VersionId"] = version_id
    head = client.head_object(**kwargs)
    return head.get("ObjectLockMode"), head.get("ObjectLockRetainUntilDate")


def _versions(client: Any, bucket: str, key: str) -> list[str]:
    page = client.list_object_versions(Bucket=bucket, Prefix=key)
    entries = [*page.get("Versions", ()), *page.get("DeleteMarkers", ())]
    return [e["VersionId"] for e in entries if e["Key"] == key]


@pytest.fixture
def locked_backend(aws_env: dict[str, str]) -> Any:
    """An S3Backend on a fresh bucket with Object Lock (and so versioning) on, no retention set yet."""
    backend = S3Backend(fresh_bucket_name())
    backend.set_retention(timedelta(days=1))  # so that create_root makes the bucket with Object Lock
    backend.create_root()
    backend.set_retention(None)
    yield backend
    backend.close()


# -- vault init --retention ------------------------------------------------------------------------------


def test_init_retention_on_a_local_vault_is_a_usage_error(cli: Any, tmp_path: Path) -> None:
    cli.env.pop("VAULT_PATH", None)
    target = tmp_path / "vault"
    result = cli("--vault", str(target), "init", *CHEAP_INIT_ARGS, "--retention", "30", check=2)
    assert_error(result, 2, "needs an S3 vault")
    assert not target.exists()


def test_init_retention_refuses_an_existing_bucket_without_object_lock(s3: Any) -> None:
    s3.client.create_bucket(Bucket=s3.bucket)
    result = s3("init", *CHEAP_INIT_ARGS, "--retention", str(DAYS), check=2)
    assert_error(result, 2, "without S3 Object Lock")
    assert s3.all_keys() == []


def test_init_retention_accepts_an_existing_bucket_with_object_lock(s3: Any) -> None:
    s3.client.create_bucket(Bucket=s3.bucket, ObjectLockEnabledForBucket=True)
    s3.init("--retention", str(DAYS))
    assert s3.info()["retention_days"] == DAYS


def test_init_retention_creates_a_locked_bucket_and_info_shows_it(s3: Any) -> None:
    s3.init("--retention", str(DAYS))
    lock = s3.client.get_object_lock_configuration(Bucket=s3.bucket)["ObjectLockConfiguration"]
    assert lock["ObjectLockEnabled"] == "Enabled"
    info = s3.info()
    assert info["retention_days"] == DAYS
    assert info["format_version"] == 3
    assert "retention:       3 days" in s3("info").out.decode()


def test_info_says_null_without_retention(s3_vault: Any) -> None:
    assert s3_vault.info()["retention_days"] is None
    assert "retention:       none" in s3_vault("info").out.decode()


def test_every_object_a_put_writes_under_retention_is_locked_in_compliance_mode(
    s3: Any, tmp_path: Path
) -> None:
    before = datetime.now(UTC)  # before init: the config and the key slot are locked from then
    s3.init("--retention", str(DAYS))
    src = tmp_path / "docs"
    src.mkdir()
    (src / "a.bin").write_bytes(random_bytes(3 << 20, seed=1))
    (src / "b.txt").write_text("hello\n" * 1000)
    s3("put", str(src), check=0)
    after = datetime.now(UTC)
    locked_kinds = {kind.value for kind in RETAINED_KINDS if kind is not Kind.CONFIG}
    seen = set()
    for key in s3.all_keys():
        rel = key[len(s3.prefix) + 1 :]
        kind = rel.split("/", 1)[0] if "/" in rel else "config"
        mode, until = _lock(s3.client, s3.bucket, key)
        if kind in locked_kinds or kind == "config":
            seen.add(kind)
            assert mode == "COMPLIANCE", key
            assert until is not None
            # moto keeps whole seconds on PutObject
            assert before + timedelta(days=DAYS, seconds=-2) <= until <= after + timedelta(days=DAYS, seconds=2)
        else:  # index objects and locks are rebuilt or rewritten by the vault itself (see RETAINED_KINDS)
            assert mode is None, key
    assert seen == {"config", "keys", "data", "versions"}


def test_full_credentials_can_neither_delete_nor_overwrite_a_locked_object(s3: Any, tmp_path: Path) -> None:
    s3.init("--retention", str(DAYS))
    src = tmp_path / "f.bin"
    src.write_bytes(random_bytes(1 << 20, seed=2))
    s3("put", str(src), check=0)
    pack = s3.keys_of("data")[0]
    original = s3.body(pack)
    version = s3.client.head_object(Bucket=s3.bucket, Key=pack)["VersionId"]

    with pytest.raises(ClientError) as info:
        s3.client.delete_object(Bucket=s3.bucket, Key=pack, VersionId=version)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

    # A PUT over the key (or a DELETE without a version id) only stacks a new version on top: the locked one
    # stays, byte for byte, and still can't be deleted.
    s3.client.put_object(Bucket=s3.bucket, Key=pack, Body=b"ransom note")
    s3.client.delete_object(Bucket=s3.bucket, Key=pack)
    kept = s3.client.get_object(Bucket=s3.bucket, Key=pack, VersionId=version)["Body"].read()
    assert kept == original
    with pytest.raises(ClientError):
        s3.client.delete_object(Bucket=s3.bucket, Key=pack, VersionId=version)
    assert _lock(s3.client, s3.bucket, pack, version)[0] == "COMPLIANCE"


# -- the backend API -------------------------------------------------------------------------------------


def test_remove_of_a_held_object_hides_it_raises_retention_held_error_and_a_purge_frees_it_after(
    locked_backend: S3Backend, s3_client: Any
) -> None:
    backend = locked_backend
    backend.set_retention(timedelta(seconds=3))
    h = Handle(Kind.DATA, "ab" * 32)
    backend.save(h, b"pack bytes")
    until = backend.retention_until(h)
    assert until is not None and until > datetime.now(UTC)
    key = backend._key(h)
    version = s3_client.head_object(Bucket=backend.bucket, Key=key)["VersionId"]

    with pytest.raises(RetentionHeldError) as info:
        backend.remove(h)
    assert info.value.exit_code == 13
    assert info.value.held_until == until
    assert "held by retention until" in str(info.value)
    # Hidden: gone from every listing and read the vault makes...
    assert list(backend.list(Kind.DATA)) == []
    with pytest.raises(ObjectNotFoundError):
        backend.load(h)
    # ...but still stored, byte for byte, and still undeletable with full credentials.
    kept = s3_client.get_object(Bucket=backend.bucket, Key=key, VersionId=version)["Body"].read()
    assert kept == b"pack bytes"
    with pytest.raises(ClientError) as denied:
        s3_client.delete_object(Bucket=backend.bucket, Key=key, VersionId=version)
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

    early = backend.purge_expired()  # still locked: counted, not deleted
    assert early.deleted == 0 and early.held.count == 1 and early.held.until == until
    time.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()) + 1.1)
    purge = backend.purge_expired()
    assert purge.deleted == 2  # the version, then the delete marker with nothing left under it
    assert not purge.held
    assert _versions(s3_client, backend.bucket, key) == []  # every version gone: the space is free


def test_remove_never_brings_back_an_older_locked_version_of_a_key(
    locked_backend: S3Backend, s3_client: Any
) -> None:
    # A key slot saved again over its name leaves its older version behind, locked: deleting only the current
    # version would make the old slot current, and listed, again.
    backend = locked_backend
    backend.set_retention(timedelta(seconds=2))
    h = Handle(Kind.KEYS, "34" * 8)
    backend.save(h, b"old slot")
    backend.set_retention(timedelta(days=1))
    backend.save(h, b"new slot")
    with pytest.raises(RetentionHeldError):
        backend.remove(h)
    assert list(backend.list(Kind.KEYS)) == []
    with pytest.raises(ObjectNotFoundError):
        backend.stat(h)
    assert len(_versions(s3_client, backend.bucket, backend._key(h))) == 3  # two locked versions, one marker


def test_purge_never_deletes_a_current_version_and_leaves_other_keys_alone(
    locked_backend: S3Backend, s3_client: Any
) -> None:
    backend = locked_backend
    backend.set_retention(timedelta(seconds=1))
    live = Handle(Kind.VERSIONS, "56" * 32)
    backend.save(live, b"record")
    s3_client.put_object(Bucket=backend.bucket, Key="versions/not-a-vault-object", Body=b"x")
    s3_client.put_object(Bucket=backend.bucket, Key="versions/not-a-vault-object", Body=b"y")
    time.sleep(2.1)  # every lock has passed
    purge = backend.purge_expired()
    assert purge.deleted == 0 and not purge.held
    assert backend.load(live) == b"record"
    assert len(_versions(s3_client, backend.bucket, "versions/not-a-vault-object")) == 2


def test_only_retained_kinds_are_locked(locked_backend: S3Backend) -> None:
    backend = locked_backend
    backend.set_retention(timedelta(days=1))
    for kind in (Kind.DATA, Kind.VERSIONS, Kind.KEYS, Kind.INDEX, Kind.LOCKS):
        h = Handle(kind, "cd" * 32)
        backend.save(h, b"x")
        if kind in RETAINED_KINDS:
            assert backend.retention_until(h) is not None
        else:
            assert backend.retention_until(h) is None
            backend.remove(h)  # a lock or index object is the vault's to delete at any time


def test_extend_retention_extends_and_never_shortens(locked_backend: S3Backend) -> None:
    backend = locked_backend
    backend.set_retention(timedelta(hours=1))
    h = Handle(Kind.VERSIONS, "ef" * 32)
    backend.save(h, b"record")
    first = backend.retention_until(h)
    assert first is not None
    later = datetime.now(UTC) + timedelta(days=2)
    assert backend.extend_retention(h, later) == later
    extended = backend.retention_until(h)
    assert extended is not None and abs(extended - later) < timedelta(seconds=1)
    # Asking for less leaves the lock as it is (compliance mode only extends; moto would shorten it).
    assert backend.extend_retention(h, first) == extended
    assert backend.retention_until(h) == extended
    with pytest.raises(ValueError):
        backend.extend_retention(h, datetime.now() + timedelta(days=3))  # naive on purpose
    with pytest.raises(ObjectNotFoundError):
        backend.extend_retention(Handle(Kind.VERSIONS, "00" * 32), later)


def test_remove_in_a_versioned_bucket_deletes_every_version_of_the_key(
    locked_backend: S3Backend, s3_client: Any
) -> None:
    backend = locked_backend  # versioned, no retention set: nothing is locked
    h = Handle(Kind.LOCKS, "12" * 32)
    backend.save(h, b"first")
    backend.save(h, b"refreshed")  # a lock is rewritten in place every minute
    key = backend._key(h)
    assert len(_versions(s3_client, backend.bucket, key)) == 2
    backend.remove(h)
    assert _versions(s3_client, backend.bucket, key) == []
    with pytest.raises(ObjectNotFoundError):
        backend.stat(h)


def test_a_vault_with_retention_arms_the_backend_when_opened(s3: Any) -> None:
    s3.init("--retention", str(DAYS))
    from vault.repo.config import load_config

    backend = open_backend(s3.location)
    assert supports_retention(backend)
    assert backend.retention is None  # type: ignore[attr-defined]
    assert load_config(backend).retention_days == DAYS
    assert backend.retention == timedelta(days=DAYS)  # type: ignore[attr-defined]
    backend.inner.close()  # type: ignore[attr-defined]


def test_local_backends_do_not_support_retention(tmp_path: Path) -> None:
    from vault.storage.memory import MemoryBackend

    assert not supports_retention(MemoryBackend())
    assert not supports_retention(open_backend(str(tmp_path / "v")))


def test_a_refusal_under_a_lock_our_clock_thinks_over_is_held_not_an_error(locked_backend: S3Backend) -> None:
    """S3's clock decides when a lock ends. Where it is behind ours, S3 still refuses the delete of a version
    whose retain-until date we think has passed: that is the object still held (hidden, purged later), not a
    storage failure that would stop `rm` or `prune`. (The refusal is made by a stub client: moto's clock is ours.)"""
    h = Handle(Kind.DATA, "ab" * 32)
    past = datetime.now(UTC) - timedelta(seconds=5)

    class Refusing:
        def delete_object(self, **kwargs: Any) -> None:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"},
                               "ResponseMetadata": {"HTTPStatusCode": 403}}, "DeleteObject")

    from vault.storage import s3_versions

    head = {"VersionId": "v1", "ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": past}
    real, locked_backend._client = locked_backend._client, Refusing()
    try:
        with pytest.raises(RetentionHeldError) as raised:
            s3_versions.delete_version(locked_backend, h, "data/ab/" + h.name, "v1", head)
    finally:
        locked_backend._client = real
    assert raised.value.held_until is not None and raised.value.held_until >= past
