"""S3Backend against a real moto server over HTTP (never skipped: moto is a test dependency).

Failures moto can't produce (503 SlowDown, 403 on CreateBucket) come from a FaultProxy in front of it.
"""

from __future__ import annotations

import sys
import time

import boto3
import pytest
from contract import BackendContract
from s3_helpers import FaultProxy, closed_port, fresh_bucket_name

from vault.errors import ObjectNotFoundError, StorageError, TransientStorageError, UsageError
from vault.storage import Backend, Handle, Kind, open_backend, parse_s3_location
from vault.storage.retry import RetryingBackend
from vault.storage.s3 import S3Backend, redact

H = Handle(Kind.DATA, "3fa2c81b04")


class TestS3Contract(BackendContract):
    @pytest.fixture(autouse=True)
    def _env(self, s3_env: str) -> None:
        pass

    def make_backend(self) -> Backend:
        backend = S3Backend(fresh_bucket_name())
        backend.create_root()
        return backend

    def make_missing_backend(self) -> Backend:
        return S3Backend(fresh_bucket_name())

    def test_concurrent_saves_of_one_name_never_mix(self, backend: Backend) -> None:
        # moto's server (not S3) races when one key is PUT concurrently: it closes the buffer of the
        # object being replaced while another request still hashes it, and answers 500 InternalError.
        # That is a transient error for us, retried as open_backend would.
        retrying = RetryingBackend(backend, attempts=10, base_delay=0.001, max_delay=0.01)
        super().test_concurrent_saves_of_one_name_never_mix(retrying)


class TestS3ObjectLockBucketContract(TestS3Contract):
    """The contract in a bucket with Object Lock (so versioning) on and no retention set: ``remove`` deletes
    versions by id and ``list``/``stat`` see only current, non-delete-marker objects."""

    def make_backend(self) -> Backend:
        from datetime import timedelta

        backend = S3Backend(fresh_bucket_name())
        backend.set_retention(timedelta(days=1))  # create_root makes the bucket with Object Lock
        backend.create_root()
        backend.set_retention(None)
        return backend


class TestS3WithPrefixContract(TestS3Contract):
    """What open_backend returns for an s3:// location with a prefix: retrying, under ``prefix/``."""

    def make_backend(self) -> Backend:
        backend = open_backend(f"s3://{fresh_bucket_name()}/some/prefix/")
        backend.create_root()
        return backend

    def make_missing_backend(self) -> Backend:
        return open_backend(f"s3://{fresh_bucket_name()}/some/prefix")


def raw_keys(bucket: str) -> set[str]:
    response = boto3.client("s3").list_objects_v2(Bucket=bucket)
    return {obj["Key"] for obj in response.get("Contents", [])}


@pytest.mark.parametrize(("prefix", "start"), [("", ""), ("a/b/", "a/b/")])
def test_key_layout(s3_env: str, prefix: str, start: str) -> None:
    backend = S3Backend(fresh_bucket_name(), prefix)
    backend.create_root()
    backend.save(Handle(Kind.CONFIG, "config"), b"c")
    backend.save(Handle(Kind.DATA, "3fa2c81b04"), b"d")
    backend.save(Handle(Kind.KEYS, "0a"), b"k")
    backend.save(Handle(Kind.LOCKS, "0b"), b"l")
    assert raw_keys(backend.bucket) == {
        f"{start}config",
        f"{start}data/3f/3fa2c81b04",
        f"{start}keys/0a",
        f"{start}locks/0b",
    }


def test_location(s3_env: str) -> None:
    assert S3Backend("bucket").location == "s3://bucket"
    assert S3Backend("bucket", "/p/q/").location == "s3://bucket/p/q"
    assert repr(S3Backend("bucket", "p")) == "S3Backend('s3://bucket/p')"


def test_list_skips_foreign_keys(s3_env: str) -> None:
    backend = S3Backend(fresh_bucket_name(), "p")
    backend.create_root()
    backend.save(Handle(Kind.DATA, "ab12"), b"d")
    backend.save(Handle(Kind.KEYS, "abcd"), b"k")
    client = boto3.client("s3")
    for key in [
        "p/data/ab/notes.txt",
        "p/data/ab/cd34",
        "p/data/abc/abcd",
        "p/data/stray",
        "p/keys/ABCD",
        "p/keys/sub/abcd",
        "p/keysx/abcd",
        "data/ab/ab99",
        "p/configx",
    ]:
        client.put_object(Bucket=backend.bucket, Key=key, Body=b"")
    assert {i.handle.name for i in backend.list(Kind.DATA)} == {"ab12"}
    assert {i.handle.name for i in backend.list(Kind.KEYS)} == {"abcd"}
    assert list(backend.list(Kind.CONFIG)) == []


def test_list_pages_through_many_objects(s3_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(S3Backend, "list_page_size", 3)
    backend = S3Backend(fresh_bucket_name(), "p")
    backend.create_root()
    names = {f"{i:04x}" for i in range(10)}
    for name in names:
        backend.save(Handle(Kind.INDEX, name), b"i")
        backend.save(Handle(Kind.DATA, name), b"dd")
    assert {(i.handle.name, i.size) for i in backend.list(Kind.INDEX)} == {(n, 1) for n in names}
    assert {(i.handle.name, i.size) for i in backend.list(Kind.DATA)} == {(n, 2) for n in names}


def test_create_root_outside_us_east_1(s3_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    backend = S3Backend(fresh_bucket_name())
    backend.create_root()
    backend.create_root()
    location = boto3.client("s3").get_bucket_location(Bucket=backend.bucket)
    assert location["LocationConstraint"] == "eu-west-1"


def test_create_root_says_why_it_cannot(s3_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with FaultProxy(s3_env) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        backend = S3Backend(fresh_bucket_name())
        proxy.fail_next(1, 403, "AccessDenied", "Access Denied", rule=lambda method, path: method == "PUT")
        with pytest.raises(StorageError) as info:
            backend.create_root()
    assert type(info.value) is StorageError
    assert str(info.value) == (
        f"cannot create bucket {backend.bucket}: access denied (AccessDenied: Access Denied)"
    )
    assert info.value.hint is not None and "s3:CreateBucket" in info.value.hint


def test_bucket_of_another_account(s3_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with FaultProxy(s3_env) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        backend = S3Backend(fresh_bucket_name())
        proxy.fail_next(1, 409, "BucketAlreadyExists", "taken", rule=lambda method, path: method == "PUT")
        with pytest.raises(StorageError, match="belongs to another account"):
            backend.create_root()


def test_forbidden_head_bucket_means_it_exists(s3_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with FaultProxy(s3_env) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        backend = S3Backend(fresh_bucket_name())
        proxy.fail_next(1, 403, "AccessDenied", "Access Denied")
        assert backend.exists_root()


def test_503_is_retried_through(s3_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with FaultProxy(s3_env) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        inner = S3Backend(fresh_bucket_name())
        backend = RetryingBackend(inner, attempts=5, base_delay=0.001, max_delay=0.01)
        backend.create_root()
        proxy.fail_next(3)
        backend.save(H, b"payload")
        assert proxy.failures == 3
        proxy.fail_next(4)  # HEAD answers have no body: the status alone must say "transient"
        assert backend.stat(H).size == 7
        proxy.fail_next(2)
        assert backend.load(H, 1, 3) == b"ayl"
        proxy.fail_next(2)
        assert [i.handle for i in backend.list(Kind.DATA)] == [H]
        assert proxy.failures == 11


def test_503_that_never_ends_gives_up(s3_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with FaultProxy(s3_env) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        inner = S3Backend(fresh_bucket_name())
        inner.create_root()
        before = proxy.requests
        proxy.fail_next(-1)
        with pytest.raises(TransientStorageError, match="SlowDown: Please reduce your request rate"):
            inner.save(H, b"x")
        backend = RetryingBackend(inner, attempts=3, base_delay=0.001, max_delay=0.01)
        with pytest.raises(StorageError) as info:
            backend.save(H, b"x")
        assert proxy.requests - before == 1 + 3  # the direct save, then three attempts
    assert type(info.value) is StorageError
    assert str(info.value).startswith(f"cannot write <data/3fa2c81b04> in {inner.location}: SlowDown")
    assert str(info.value).endswith("(gave up after 3 attempts)")


def test_unreachable_endpoint_fails_in_bounded_time(s3_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    backend = RetryingBackend(S3Backend(fresh_bucket_name()), attempts=3, base_delay=0.01, max_delay=0.05)
    started = time.monotonic()
    for call in (backend.exists_root, lambda: backend.save(H, b"x"), lambda: list(backend.list(Kind.DATA))):
        with pytest.raises(StorageError) as info:
            call()
        assert type(info.value) is StorageError
        assert "Could not connect to the endpoint URL" in str(info.value)
        assert "gave up after 3 attempts" in str(info.value)
    assert time.monotonic() - started < 30


def test_errors_never_show_credentials(s3_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://user:sekrit@127.0.0.1:{closed_port()}")
    backend = S3Backend(fresh_bucket_name())
    with pytest.raises(TransientStorageError) as info:
        backend.save(H, b"plaintext")
    text = f"{info.value} {info.value.hint} {backend.location} {backend!r}"
    for secret in ("sekrit", "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI", "plaintext"):
        assert secret not in text


def test_redact() -> None:
    text = (
        'Could not connect to "https://me:pw@host/b/k?X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F2024&'
        'X-Amz-Signature=abc123" for AKIAIOSFODNN7EXAMPLE'
    )
    cleaned = redact(text)
    assert "pw" not in cleaned and "abc123" not in cleaned and "AKIAIOSFODNN7EXAMPLE" not in cleaned
    assert "https://host/b/k" in cleaned


def test_missing_object_and_missing_bucket(s3_env: str) -> None:
    backend = S3Backend(fresh_bucket_name())
    with pytest.raises(StorageError, match="NoSuchBucket") as info:
        backend.save(H, b"x")
    assert not isinstance(info.value, (ObjectNotFoundError, TransientStorageError))
    with pytest.raises(ObjectNotFoundError):
        backend.remove(H)


def test_without_boto3_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)
    monkeypatch.setitem(sys.modules, "boto3.session", None)
    with pytest.raises(UsageError) as info:
        S3Backend("bucket")
    assert str(info.value) == "S3 support needs boto3: pip install 'vault[s3]'"
    assert info.value.exit_code == 2
    with pytest.raises(UsageError, match="boto3"):
        open_backend("s3://bucket")


def test_open_backend_for_s3(s3_env: str) -> None:
    backend = open_backend("s3://bucket/pre/fix/")
    assert isinstance(backend, RetryingBackend)
    assert isinstance(backend.inner, S3Backend)
    assert backend.location == "s3://bucket/pre/fix"
    assert open_backend("S3://bucket").location == "s3://bucket"


@pytest.mark.parametrize(
    ("location", "expected"),
    [("s3://b", ("b", "")), ("s3://b/", ("b", "")), ("s3://my.bucket-1/x//y/", ("my.bucket-1", "x//y"))],
)
def test_parse_s3_location(location: str, expected: tuple[str, str]) -> None:
    assert parse_s3_location(location) == expected


@pytest.mark.parametrize("location", ["s3://", "s3:///prefix", "s3://bad bucket", "s3://b?x=1", "s3://-b"])
def test_malformed_s3_locations(location: str) -> None:
    with pytest.raises(UsageError):
        open_backend(location)


def test_credentials_in_the_location_are_refused_without_echo() -> None:
    with pytest.raises(UsageError) as info:
        open_backend("s3://AKIAKEY:topsecret@bucket/prefix")
    assert "topsecret" not in str(info.value) and "AKIAKEY" not in str(info.value)
    assert info.value.hint is not None


def test_save_parts_streams_the_concatenation_and_retries(s3_env: str) -> None:
    from vault.storage.base import save_parts

    backend = S3Backend(fresh_bucket_name())
    backend.create_root()
    parts = [b"a" * 1000, bytearray(b"b" * 3), memoryview(b"c" * 70_000), b""]
    h = Handle(Kind.DATA, "aa" * 32)
    save_parts(backend, h, parts)
    assert backend.load(h) == b"".join(parts)
    retrying = RetryingBackend(backend)
    save_parts(retrying, Handle(Kind.DATA, "bb" * 32), parts)
    assert retrying.load(Handle(Kind.DATA, "bb" * 32)) == b"".join(parts)
    backend.close()


def test_small_pack_reads_come_from_blocks_and_a_removed_pack_is_missing(s3_env: str) -> None:
    import random

    backend = S3Backend(fresh_bucket_name())
    backend.create_root()
    data = random.Random(3).randbytes(3 * backend._reader.block_size // 2)
    h = Handle(Kind.DATA, "cc" * 32)
    backend.save(h, data)
    for offset in range(0, len(data), 700_001):
        assert backend.load(h, offset, 500_000) == data[offset : offset + 500_000]
    assert backend.load(h, len(data) - 10, 100) == data[-10:]
    backend.remove(h)
    with pytest.raises(ObjectNotFoundError):
        backend.load(h, 0, 10)
    backend.close()
