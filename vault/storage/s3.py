"""S3Backend: a vault in an S3 bucket or any S3-compatible object store (the optional extra ``vault[s3]``).

boto3 is imported only when an ``S3Backend`` is made, and its absence is a :class:`UsageError` that says
what to install. Endpoint, region and credentials come from the standard AWS environment, read by boto3
itself (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``,
``AWS_PROFILE``, ``~/.aws``); nothing here ever prints them.

The layout is that of every backend (see :mod:`vault.storage`) below ``<prefix>/``. ``put_object`` is atomic
on S3, so ``save`` needs no temporary objects. botocore's own retries are off (one attempt per call):
:class:`~vault.storage.retry.RetryingBackend` retries whatever this module reports as
:class:`TransientStorageError` (throttling, 5xx, timeouts, dropped connections).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

from vault.errors import ObjectNotFoundError, StorageError, TransientStorageError, UsageError
from vault.storage import CONFIG_NAME, is_object_name, object_key
from vault.storage.base import Handle, Kind, ObjectInfo

__all__ = ["S3Backend", "redact"]

log = logging.getLogger(__name__)

_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NotFound", "404", "NoSuchBucket"})
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
        "503",
        "500",
        "502",
        "504",
    }
)
_TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})

_ENDPOINT_HINT = "is the S3 endpoint up and reachable? check AWS_ENDPOINT_URL and the network"
_CREDENTIALS_HINT = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]*@")
_SIGNED_QUERY = re.compile(r"(?i)(X-Amz-(?:Credential|Signature|Security-Token)=)[^&\s\"']+")
_ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")


def redact(text: str) -> str:
    """``text`` with URL userinfo, signed-URL query values and AWS access key ids removed."""
    text = _USERINFO.sub(r"\1", text)
    text = _SIGNED_QUERY.sub(r"\1REDACTED", text)
    return _ACCESS_KEY_ID.sub("REDACTED", text)


class S3Backend:
    """Objects in ``bucket`` under ``prefix`` (leading and trailing ``/`` ignored; empty: the bucket root).

    One botocore client serves all threads (clients are thread-safe, sessions are not), with up to 32
    pooled connections. Raises ``UsageError`` when boto3 is not installed, ``StorageError`` when the client
    can't be configured (e.g. an unknown ``AWS_PROFILE``).
    """

    list_page_size = 1000
    """Keys per ``list_objects_v2`` page (S3's maximum; tests lower it to exercise paging)."""

    def __init__(self, bucket: str, prefix: str = "") -> None:
        try:
            import boto3.session
            import botocore.config
            import botocore.exceptions
        except ImportError:
            raise UsageError("S3 support needs boto3: pip install 'vault[s3]'") from None
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.location: str = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._exc: Any = botocore.exceptions
        config = botocore.config.Config(
            # One attempt per call: RetryingBackend owns retries. (botocore's "max_attempts" counts
            # retries, not attempts, so {"max_attempts": 1} would still try twice.)
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
            max_pool_connections=32,
        )
        try:
            self._client: Any = boto3.session.Session().client("s3", config=config)
        except botocore.exceptions.BotoCoreError as e:
            raise StorageError(f"cannot set up S3 access for {self.location}: {redact(str(e))}") from None

    def __repr__(self) -> str:
        return f"S3Backend({self.location!r})"

    def close(self) -> None:
        """Close the pooled connections (not part of the Backend contract: a process that ends needs no
        call; one that makes many backends, like a test suite, should)."""
        self._client.close()

    # -- root ----------------------------------------------------------------------------------------

    def exists_root(self) -> bool:
        """True when the bucket exists. A 403 answer also means it exists (S3 says 404 for a missing
        bucket even to strangers); whether we may use it shows at the first read or write."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except self._exc.ClientError as e:
            code, status, _ = _error_parts(e)
            if code in _NOT_FOUND_CODES or status == 404:
                return False
            if status == 403:
                log.debug("HeadBucket on %s was denied; assuming the bucket exists", self.location)
                return True
            self._raise(e, "check", self.location, missing_is_not_found=False)
        except self._exc.BotoCoreError as e:
            self._raise(e, "check", self.location, missing_is_not_found=False)
        return True

    def create_root(self) -> None:
        """Create the bucket when missing, in the client's region. Idempotent. Raises ``StorageError``
        saying why when it can't (access denied, name owned by someone else, ...)."""
        if self.exists_root():
            return
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        region = self._client.meta.region_name
        if region and region != "us-east-1":  # us-east-1 refuses its own name as a LocationConstraint
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self._client.create_bucket(**kwargs)
        except self._exc.ClientError as e:
            code, status, message = _error_parts(e)
            if code == "BucketAlreadyOwnedByYou":
                return  # created meanwhile by another process of ours
            what = f"cannot create bucket {self.bucket}"
            if code == "BucketAlreadyExists":
                raise StorageError(
                    f"{what}: the name belongs to another account", hint="choose another bucket name"
                ) from None
            if status == 403 or code in {"AccessDenied", "AllAccessDisabled"}:
                raise StorageError(
                    f"{what}: access denied ({code}: {message})",
                    hint="create the bucket yourself, or use credentials allowed to s3:CreateBucket",
                ) from None
            if code == "InvalidBucketName":
                raise StorageError(
                    f"{what}: the store refuses the name ({code})",
                    hint="S3 bucket names are 3 to 63 characters: lowercase letters, digits, dots, hyphens",
                ) from None
            self._raise(e, "create", self.location, missing_is_not_found=False)
        except self._exc.BotoCoreError as e:
            self._raise(e, "create", self.location, missing_is_not_found=False)

    # -- objects -------------------------------------------------------------------------------------

    def save(self, h: Handle, data: bytes | bytearray | memoryview) -> str:
        """``put_object``: atomic and durable on S3. Raises ``StorageError`` (``TransientStorageError`` for
        failures worth retrying); a missing bucket is a ``StorageError``, not a missing object. Returns the
        object's ETag (what listings show as its tag)."""
        key = self._key(h)
        body = data if isinstance(data, bytes) else bytes(data)
        try:
            response = self._client.put_object(Bucket=self.bucket, Key=key, Body=body)
        except (self._exc.ClientError, self._exc.BotoCoreError) as e:
            self._raise(e, "write", str(h), missing_is_not_found=False)
        return str(response.get("ETag", ""))

    def load(self, h: Handle, offset: int = 0, length: int | None = None) -> bytes:
        """A ranged ``get_object``. Raises ``ValueError`` for negative values, ``ObjectNotFoundError`` when
        missing, ``StorageError``/``TransientStorageError`` otherwise. Past the end gives ``b""``."""
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        if length == 0:
            self.stat(h)  # still tell a missing object from an empty read
            return b""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(h)}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            kwargs["Range"] = f"bytes={offset}-{end}"
        try:
            response = self._client.get_object(**kwargs)
            with contextlib.closing(response["Body"]) as body:
                data: bytes = body.read()  # checks Content-Length: a cut stream raises, never truncates
            return data
        except self._exc.ClientError as e:
            code, status, _ = _error_parts(e)
            if status == 416 or code == "InvalidRange":  # the object exists but ends before offset
                return b""
            self._raise(e, "read", str(h), missing_is_not_found=True)
        except self._exc.BotoCoreError as e:
            self._raise(e, "read", str(h), missing_is_not_found=True)

    def stat(self, h: Handle) -> ObjectInfo:
        """``head_object``. Raises ``ObjectNotFoundError`` when missing (or the bucket is)."""
        try:
            response = self._client.head_object(Bucket=self.bucket, Key=self._key(h))
        except (self._exc.ClientError, self._exc.BotoCoreError) as e:
            self._raise(e, "stat", str(h), missing_is_not_found=True)
        return ObjectInfo(h, int(response["ContentLength"]), str(response.get("ETag", "")))

    def list(self, kind: Kind) -> Iterator[ObjectInfo]:
        """Pages of ``list_objects_v2`` under the kind's prefix; keys that are not valid object names of
        ``kind`` are skipped. A missing bucket lists as empty, like a missing local directory."""
        if kind is Kind.CONFIG:
            try:
                info = self.stat(Handle(Kind.CONFIG, CONFIG_NAME))
            except ObjectNotFoundError:
                return
            yield info
            return
        start = self._key_prefix(kind)
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(
                Bucket=self.bucket, Prefix=start, PaginationConfig={"PageSize": self.list_page_size}
            ):
                for obj in page.get("Contents", ()):
                    name = _name_from_key(kind, obj["Key"][len(start) :])
                    if name is not None:
                        yield ObjectInfo(Handle(kind, name), int(obj["Size"]), str(obj.get("ETag", "")))
        except self._exc.ClientError as e:
            code, status, _ = _error_parts(e)
            if code == "NoSuchBucket" or status == 404:
                return
            self._raise(e, "list", f"{kind.value} objects", missing_is_not_found=False)
        except self._exc.BotoCoreError as e:
            self._raise(e, "list", f"{kind.value} objects", missing_is_not_found=False)

    def remove(self, h: Handle) -> None:
        """``delete_object``, after a ``head_object``: S3 deletes missing keys without complaint, and the
        contract wants ``ObjectNotFoundError`` for them."""
        self.stat(h)
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(h))
        except (self._exc.ClientError, self._exc.BotoCoreError) as e:
            self._raise(e, "remove", str(h), missing_is_not_found=True)

    def remove_many(self, handles: Sequence[Handle]) -> None:
        """``delete_objects``, 1,000 keys a request (quiet: only failures are answered); missing keys are fine
        (vault.storage.base.remove_all). A key S3 could not delete raises StorageError."""
        for i in range(0, len(handles), 1000):
            batch = [{"Key": self._key(h)} for h in handles[i : i + 1000]]
            try:
                response = self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            except (self._exc.ClientError, self._exc.BotoCoreError) as e:
                self._raise(e, "remove", f"{len(batch)} objects", missing_is_not_found=False)
            errors = response.get("Errors") or []
            if errors:
                code = str(errors[0].get("Code", "unknown"))
                raise StorageError(f"cannot remove {len(errors)} object(s) in {self.location}: {code}")

    # -- internals -----------------------------------------------------------------------------------

    def _key(self, h: Handle) -> str:
        rel = object_key(h)
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def _key_prefix(self, kind: Kind) -> str:
        return f"{self.prefix}/{kind.value}/" if self.prefix else f"{kind.value}/"

    def _raise(self, e: Exception, action: str, target: str, *, missing_is_not_found: bool) -> NoReturn:
        """Translate a botocore exception into the vault's storage errors (``from None``: botocore's
        exceptions carry request details that have no place in a traceback a user may paste)."""
        where = f"{target} in {self.location}" if target != self.location else self.location
        if isinstance(e, self._exc.ClientError):
            code, status, message = _error_parts(e)
            if missing_is_not_found and (code in _NOT_FOUND_CODES or status == 404):
                raise ObjectNotFoundError(f"{target} not found in {self.location}") from None
            reason = f"{code}: {message}" if message and message != code else code or f"HTTP {status}"
            text = f"cannot {action} {where}: {redact(reason)}"
            if code in _TRANSIENT_CODES or status in _TRANSIENT_STATUS:
                raise TransientStorageError(text) from None
            raise StorageError(text) from None
        text = f"cannot {action} {where}: {redact(str(e))}"
        if isinstance(e, self._exc.NoCredentialsError | self._exc.PartialCredentialsError):
            raise StorageError(text, hint=_CREDENTIALS_HINT) from None
        transient = (self._exc.ConnectionError, self._exc.HTTPClientError, self._exc.IncompleteReadError)
        if isinstance(e, transient):
            hint = _ENDPOINT_HINT if isinstance(e, self._exc.ConnectionError) else None
            raise TransientStorageError(text, hint=hint) from None
        raise StorageError(text) from None


def _error_parts(e: Any) -> tuple[str, int, str]:
    """(code, HTTP status, message) of a botocore ``ClientError``."""
    response = getattr(e, "response", None) or {}
    error = response.get("Error", {})
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return str(error.get("Code", "")), int(status or 0), str(error.get("Message", "")).strip()


def _name_from_key(kind: Kind, rel: str) -> str | None:
    """The object name in a key relative to the kind's prefix, or None for keys that aren't objects."""
    if kind is Kind.DATA:
        fan_out, _, rel = rel.partition("/")
        if len(fan_out) != 2 or not rel.startswith(fan_out):
            return None
    return rel if is_object_name(kind, rel) else None
