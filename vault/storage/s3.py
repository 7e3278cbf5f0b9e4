"""S3Backend: a vault in an S3 bucket or any S3-compatible object store (the optional extra ``vault[s3]``).

boto3 is imported only when an ``S3Backend`` is made, and its absence is a :class:`UsageError` that says
what to install. Endpoint, region and credentials come from the standard AWS environment, read by boto3
itself (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``,
``AWS_PROFILE``, ``~/.aws``); nothing here ever prints them.

The layout is that of every backend (see :mod:`vault.storage`) below ``<prefix>/``. ``put_object`` is atomic
on S3, so ``save`` needs no temporary objects.

Object Lock (``vault init --retention DAYS``): with :meth:`S3Backend.set_retention` armed, every object of a
kind in :data:`RETAINED_KINDS` is written in compliance mode, locked for the retention period from the moment
it is written. Such a bucket is versioned (S3 requires it for Object Lock), so :meth:`S3Backend.remove` deletes
an object's versions by id (a plain DELETE would only add a delete marker and free nothing); when the lock
refuses, it hides the object behind a delete marker and raises :class:`~vault.errors.RetentionHeldError`, and
:meth:`S3Backend.purge_expired` (vault.storage.s3_versions) deletes what is hidden once the lock has passed.
botocore's own retries are off (one attempt per call):
:class:`~vault.storage.retry.RetryingBackend` retries whatever this module reports as
:class:`TransientStorageError` (throttling, 5xx, timeouts, dropped connections).
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from vault.errors import (
    ObjectNotFoundError,
    RetentionHeldError,
    StorageError,
    UsageError,
)
from vault.storage import CONFIG_NAME, object_key, s3_bucket, s3_versions, s3_wire
from vault.storage.base import Buffer, Handle, Held, Kind, ObjectInfo, Purge
from vault.storage.readahead import BlockReader
from vault.storage.s3_wire import redact

__all__ = ["RETAINED_KINDS", "S3Backend", "redact"]

log = logging.getLogger(__name__)

# The botocore client's connection pool: one connection per thread that may talk to the store at once (the I/O
# pool's uploads, the CPU pool's ranged GETs, locks' refresh), with room to spare; measured in
# docs/performance.md ("S3"). benchmarks/s3.py --set overrides these module attributes to measure others.
MAX_POOL_CONNECTIONS = 32
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 30
# Reads of up to a block from a pack go through a BlockReader (vault.storage.readahead): aligned blocks of this
# size, this many kept, this many fetched ahead of the one being read. Measured in docs/performance.md ("S3").
READ_BLOCK_SIZE = 4 << 20
READ_CACHE_BLOCKS = 6
READ_AHEAD_BLOCKS = 2

# The kinds that retention locks: what the vault can't rebuild. Index objects are derived (``vault repair``
# rebuilds them from the packs' authenticated headers) and are replaced and deleted in the normal course of a
# put (checkpoints), prune and repair; an index object held longer than the packs it lists would outlive them.
# Lock objects are rewritten every minute and deleted when a command ends; held, each would block every later
# exclusive command until it expired. Neither holds data a ransomware deletion could take away.
RETAINED_KINDS = frozenset({Kind.CONFIG, Kind.KEYS, Kind.DATA, Kind.VERSIONS})
_LOCK_MODE = "COMPLIANCE"

class S3Backend:
    """Objects in ``bucket`` under ``prefix`` (leading and trailing ``/`` ignored; empty: the bucket root).

    One botocore client serves all threads (clients are thread-safe, sessions are not), with up to 32
    pooled connections. Raises ``UsageError`` when boto3 is not installed, ``StorageError`` when the client
    can't be configured (e.g. an unknown ``AWS_PROFILE``).
    """

    list_page_size = 1000
    """Keys per ``list_objects_v2`` page (S3's maximum; tests lower it to exercise paging)."""

    remote = True
    """Every call is a round trip: the writer keeps more uploads in flight (see vault.storage.base.is_remote)."""

    supports_retention = True
    """This backend can lock what it writes (S3 Object Lock); see :func:`vault.storage.supports_retention`."""

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
        self._reader: BlockReader[Handle] = BlockReader(
            self._get, READ_BLOCK_SIZE, READ_CACHE_BLOCKS, READ_AHEAD_BLOCKS
        )
        self.retention: timedelta | None = None
        """How long each object of :data:`RETAINED_KINDS` is locked from when it is written (None: not)."""
        self._versioning: bool | None = None  # asked of the bucket when first needed (remove_many)
        config = botocore.config.Config(
            # One attempt per call: RetryingBackend owns retries. (botocore's "max_attempts" counts
            # retries, not attempts, so {"max_attempts": 1} would still try twice.)
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            max_pool_connections=MAX_POOL_CONNECTIONS,
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
        self._reader.close()
        self._client.close()

    # -- retention (S3 Object Lock) ---------------------------------------------------------------------

    def set_retention(self, period: timedelta | None) -> None:
        """Lock every object of :data:`RETAINED_KINDS` saved from now on for ``period`` (compliance mode), or
        stop locking (None). The vault arms it from its config (``retention_days``); tests pass short periods.
        Raises ``ValueError`` for a period that is not positive."""
        if period is not None and period <= timedelta(0):
            raise ValueError("a retention period must be positive")
        self.retention = period

    def object_lock_enabled(self) -> bool:
        """True when the bucket has Object Lock enabled; False when it has none (vault.storage.s3_bucket).
        Raises ``StorageError`` (also for a missing bucket: check :meth:`exists_root` first)."""
        return s3_bucket.object_lock_enabled(self)

    def retention_until(self, h: Handle) -> datetime | None:
        """When the lock on the current version of ``h`` ends (UTC; possibly in the past), or None when it has
        no lock (``HeadObject``). Raises ``ObjectNotFoundError`` when missing, ``StorageError`` otherwise."""
        return s3_wire.lock_until(self._head(h))

    def extend_retention(self, h: Handle, until: datetime) -> datetime:
        """Make the lock on the current version of ``h`` last at least until ``until`` (compliance mode,
        ``PutObjectRetention``) and return the date it now lasts until. A lock that already lasts longer is
        left alone: compliance retention can only be extended, and this never asks to shorten one (some stores,
        moto among them, would allow it). Raises ``ValueError`` for a naive datetime,
        ``ObjectNotFoundError`` when missing, ``StorageError`` otherwise."""
        if until.tzinfo is None:
            raise ValueError("until must be timezone-aware")
        head = self._head(h)
        current = s3_wire.lock_until(head)
        if current is not None and current >= until:
            return current
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self._key(h),
            "Retention": {"Mode": _LOCK_MODE, "RetainUntilDate": until},
        }
        if s3_wire.has_version(head):
            kwargs["VersionId"] = head["VersionId"]
        try:
            self._client.put_object_retention(**kwargs)
        except (self._exc.ClientError, self._exc.BotoCoreError) as e:
            self._raise(e, "extend the retention of", str(h), missing_is_not_found=True)
        return until

    # -- root ----------------------------------------------------------------------------------------

    def exists_root(self) -> bool:
        """True when the bucket exists. A 403 answer also means it exists (S3 says 404 for a missing
        bucket even to strangers); whether we may use it shows at the first read or write."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except self._exc.ClientError as e:
            code, status, _ = s3_wire.error_parts(e)
            if code in s3_wire.NOT_FOUND_CODES or status == 404:
                return False
            if status == 403:
                log.debug("HeadBucket on %s was denied; assuming the bucket exists", self.location)
                return True
            self._raise(e, "check", self.location, missing_is_not_found=False)
        except self._exc.BotoCoreError as e:
            self._raise(e, "check", self.location, missing_is_not_found=False)
        return True

    def create_root(self) -> None:
        """Create the bucket when missing, in the client's region, with Object Lock enabled when a retention is
        set. Idempotent (an existing bucket is left as it is). Raises ``StorageError`` saying why when it can't
        (access denied, name owned by someone else, ...)."""
        if not self.exists_root():
            s3_bucket.create_bucket(self)

    # -- objects -------------------------------------------------------------------------------------

    def save(self, h: Handle, data: bytes | bytearray | memoryview) -> str:
        """``put_object``: atomic and durable on S3. With a retention set, an object of
        :data:`RETAINED_KINDS` is locked in compliance mode until now + the retention (the lock and the
        object are one request: there is no moment when it exists unlocked). Raises ``StorageError``
        (``TransientStorageError`` for failures worth retrying); a missing bucket is a ``StorageError``, not a
        missing object. Returns the object's ETag (what listings show as its tag)."""
        return self._put(h, data if isinstance(data, bytes) else bytes(data))

    def _put(self, h: Handle, body: bytes | io.RawIOBase) -> str:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(h), "Body": body}
        if self.retention is not None and h.kind in RETAINED_KINDS:
            kwargs["ObjectLockMode"] = _LOCK_MODE
            kwargs["ObjectLockRetainUntilDate"] = datetime.now(UTC) + self.retention
            # S3 wants a checksum on every locked upload; botocore adds CRC32 by default, but not when
            # AWS_REQUEST_CHECKSUM_CALCULATION=when_required, so ask for it.
            kwargs["ChecksumAlgorithm"] = "CRC32"
        try:
            response = self._client.put_object(**kwargs)
        except (self._exc.ClientError, self._exc.BotoCoreError) as e:
            self._raise(e, "write", str(h), missing_is_not_found=False)
        return str(response.get("ETag", ""))

    def save_parts(self, h: Handle, parts: Sequence[Buffer]) -> str:
        """:meth:`save` of the concatenation of ``parts``, streamed from them without joining them (a pack is
        16 MiB: one copy less per upload in flight). Same atomicity, locking and errors as :meth:`save`."""
        return self._put(h, s3_wire.PartsReader(parts))

    def load(self, h: Handle, offset: int = 0, length: int | None = None) -> bytes:
        """A ranged ``get_object``. Raises ``ValueError`` for negative values, ``ObjectNotFoundError`` when
        missing, ``StorageError``/``TransientStorageError`` otherwise. Past the end gives ``b""``.

        Reads of a pack (immutable under its name) of up to ``READ_BLOCK_SIZE`` bytes are served from aligned
        blocks fetched whole and read ahead (:class:`~vault.storage.readahead.BlockReader`): a restore then makes
        a few GETs per pack instead of one per blob."""
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        if length == 0:
            self.stat(h)  # still tell a missing object from an empty read
            return b""
        if h.kind is Kind.DATA and length is not None and length <= self._reader.block_size:
            return self._reader.read(h, offset, length)
        return self._get(h, offset, length)

    def _get(self, h: Handle, offset: int, length: int | None) -> bytes:
        """One ``get_object`` of ``length`` bytes from ``offset`` (to the end when None; ``length`` > 0)."""
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
            code, status, _ = s3_wire.error_parts(e)
            if status == 416 or code == "InvalidRange":  # the object exists but ends before offset
                return b""
            self._raise(e, "read", str(h), missing_is_not_found=True)
        except self._exc.BotoCoreError as e:
            self._raise(e, "read", str(h), missing_is_not_found=True)

    def stat(self, h: Handle) -> ObjectInfo:
        """``head_object``. Raises ``ObjectNotFoundError`` when missing (or the bucket is, or the object's
        current version is a delete marker)."""
        head = self._head(h)
        return ObjectInfo(h, int(head["ContentLength"]), str(head.get("ETag", "")))

    def list(self, kind: Kind) -> Iterator[ObjectInfo]:
        """Pages of ``list_objects_v2`` under the kind's prefix; keys that are not valid object names of
        ``kind`` are skipped. A missing bucket lists as empty, like a missing local directory. In a versioned
        bucket only current versions are listed: a key whose current version is a delete marker is absent."""
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
                    name = s3_wire.name_from_key(kind, obj["Key"][len(start) :])
                    if name is not None:
                        yield ObjectInfo(Handle(kind, name), int(obj["Size"]), str(obj.get("ETag", "")))
        except self._exc.ClientError as e:
            code, status, _ = s3_wire.error_parts(e)
            if code == "NoSuchBucket" or status == 404:
                return
            self._raise(e, "list", f"{kind.value} objects", missing_is_not_found=False)
        except self._exc.BotoCoreError as e:
            self._raise(e, "list", f"{kind.value} objects", missing_is_not_found=False)

    def remove(self, h: Handle) -> None:
        """Delete the object, after a ``head_object``: S3 deletes missing keys without complaint, and the
        contract wants ``ObjectNotFoundError`` for them.

        In a versioned bucket (every bucket with Object Lock) a DELETE without a version id would only hide the
        object behind a delete marker and free nothing, so every older version and delete marker of the key is
        deleted by its id (a key slot or lock rewritten in place has several; a retried save may have left two),
        then the current version.

        When retention holds the current version (its lock has not ended, or a legal hold is on), the object is
        *hidden* instead: a plain DELETE puts a delete marker on top, which Object Lock allows, so the object is
        gone from every listing, ``stat`` and ``load`` at once, while its locked version stays stored until the
        lock ends (:meth:`purge_expired` deletes it then). Then, and when only older versions of the key are held,
        this raises ``RetentionHeldError`` with the date the latest lock ends: the object is removed as far as
        the vault can see. Raises ``ObjectNotFoundError`` when missing, ``StorageError`` otherwise."""
        head = self._head(h)
        key = self._key(h)
        self._reader.forget(h)
        if not s3_wire.has_version(head):  # unversioned bucket (or versioning suspended): one plain DELETE
            self._delete(h, key, None, head)
            return
        s3_versions.remove_versions(self, h, key, head)

    def purge_expired(self) -> Purge:
        """Delete, under the vault's prefix and for :data:`RETAINED_KINDS`, every noncurrent version whose lock
        has passed and every delete marker with no version left under it; what is still locked is counted as
        held. The current version of a key is never touched. One page of ``list_object_versions`` in memory at a
        time (see :mod:`vault.storage.s3_versions`). ``StorageError``."""
        return s3_versions.purge_expired(self, RETAINED_KINDS)

    def _delete(self, h: Handle, key: str, version_id: str | None, head: dict[str, Any] | None) -> None:
        """One ``delete_object`` (of ``version_id`` when given): vault.storage.s3_versions.delete_version."""
        s3_versions.delete_version(self, h, key, version_id, head)

    def remove_many(self, handles: Sequence[Handle]) -> Held:
        """``delete_objects``, 1,000 keys a request (quiet: only failures are answered); missing keys are fine
        (vault.storage.base.remove_all). A key S3 could not delete raises StorageError. In a versioned bucket
        (every bucket with Object Lock) a DELETE without version ids would only hide the objects behind delete
        markers, so each goes through :meth:`remove`; those retention holds are hidden and counted in the
        returned :class:`Held` (empty in an unversioned bucket)."""
        held = Held()
        if self._versioned():
            for h in handles:
                try:
                    self.remove(h)
                except ObjectNotFoundError:
                    continue
                except RetentionHeldError as exc:
                    held.add(exc.held_until)
            return held
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
        return held

    def _versioned(self) -> bool:
        """Whether the bucket keeps versions (asked once: a bucket's versioning is never turned off, only
        suspended, and Object Lock needs it on)."""
        if self._versioning is None:
            try:
                status = self._client.get_bucket_versioning(Bucket=self.bucket).get("Status")
            except (self._exc.ClientError, self._exc.BotoCoreError) as e:
                self._raise(e, "read the versioning of", self.location, missing_is_not_found=False)
            self._versioning = status in ("Enabled", "Suspended")
        return self._versioning

    # -- internals -----------------------------------------------------------------------------------

    def _head(self, h: Handle, version_id: str | None = None) -> dict[str, Any]:
        """``head_object`` of ``h`` (of one version when given). Raises ``ObjectNotFoundError`` when missing."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(h)}
        if version_id is not None:
            kwargs["VersionId"] = version_id
        try:
            response: dict[str, Any] = self._client.head_object(**kwargs)
        except (self._exc.ClientError, self._exc.BotoCoreError) as e:
            self._raise(e, "stat", str(h), missing_is_not_found=True)
        return response

    def _key(self, h: Handle) -> str:
        rel = object_key(h)
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def _key_prefix(self, kind: Kind) -> str:
        return f"{self.prefix}/{kind.value}/" if self.prefix else f"{kind.value}/"

    def _raise(self, e: Exception, action: str, target: str, *, missing_is_not_found: bool) -> NoReturn:
        """Translate a botocore exception into the vault's storage errors (vault.storage.s3_wire.translate)."""
        s3_wire.translate(self._exc, e, action, target, self.location, missing_is_not_found=missing_is_not_found)
