"""What S3 says and how vault talks to it, apart from the backend's logic: its errors translated into the vault's
(codes that mean "missing" or "try again", hints, redaction of credentials), the lock fields of a HeadObject
answer, object names in keys, and a request body streamed from a pack's parts without joining them.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

from vault.errors import ObjectNotFoundError, StorageError, TransientStorageError
from vault.storage import is_object_name
from vault.storage.base import Buffer, Kind

NOT_FOUND_CODES = frozenset({"NoSuchKey", "NotFound", "404", "NoSuchBucket"})
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
_OBJECT_LOCK_HINT = (
    "this vault has a retention, so its bucket needs S3 Object Lock: see docs/storage.md, \"Retention\""
)
_CREDENTIALS_HINT = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]*@")
_SIGNED_QUERY = re.compile(r"(?i)(X-Amz-(?:Credential|Signature|Security-Token)=)[^&\s\"']+")
_ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")


def redact(text: str) -> str:
    """``text`` with URL userinfo, signed-URL query values and AWS access key ids removed."""
    text = _USERINFO.sub(r"\1", text)
    text = _SIGNED_QUERY.sub(r"\1REDACTED", text)
    return _ACCESS_KEY_ID.sub("REDACTED", text)


def translate(exc: Any, e: Exception, action: str, target: str, location: str, *,
              missing_is_not_found: bool) -> NoReturn:
    """Raise the vault's storage error for a botocore exception ``e`` (``exc``: the module
    ``botocore.exceptions``), raised ``from None``: botocore's exceptions carry request details that have no
    place in a traceback a user may paste. ObjectNotFoundError for a missing object when
    ``missing_is_not_found``; TransientStorageError for what is worth retrying; StorageError otherwise."""
    where = f"{target} in {location}" if target != location else location
    if isinstance(e, exc.ClientError):
        code, status, message = error_parts(e)
        if missing_is_not_found and (code in NOT_FOUND_CODES or status == 404):
            raise ObjectNotFoundError(f"{target} not found in {location}") from None
        reason = f"{code}: {message}" if message and message != code else code or f"HTTP {status}"
        text = f"cannot {action} {where}: {redact(reason)}"
        if code in _TRANSIENT_CODES or status in _TRANSIENT_STATUS:
            raise TransientStorageError(text) from None
        if "objectlock" in message.replace(" ", "").lower():  # e.g. "Bucket is missing ObjectLockConfiguration"
            raise StorageError(text, hint=_OBJECT_LOCK_HINT) from None
        raise StorageError(text) from None
    text = f"cannot {action} {where}: {redact(str(e))}"
    if isinstance(e, exc.NoCredentialsError | exc.PartialCredentialsError):
        raise StorageError(text, hint=_CREDENTIALS_HINT) from None
    if isinstance(e, exc.ConnectionError | exc.HTTPClientError | exc.IncompleteReadError):
        hint = _ENDPOINT_HINT if isinstance(e, exc.ConnectionError) else None
        raise TransientStorageError(text, hint=hint) from None
    raise StorageError(text) from None


class PartsReader(io.RawIOBase):
    """The concatenation of ``parts`` as a readable, seekable file, without joining them. botocore reads a
    body in blocks for its checksum and payload signature, seeks back, and reads it again to send it (and once
    more on a retry); each read copies only the block asked for."""

    def __init__(self, parts: Sequence[Buffer]) -> None:
        super().__init__()
        self._parts = [memoryview(p).cast("B") for p in parts]
        self._ends: list[int] = []
        total = 0
        for part in self._parts:
            total += len(part)
            self._ends.append(total)
        self._size = total
        self._pos = 0
        self._part = 0  # the part that holds self._pos (or len(parts) at the end)

    def __len__(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        self._part = next((i for i, end in enumerate(self._ends) if end > self._pos), len(self._parts))
        return self._pos

    def readinto(self, buffer: Any) -> int:
        out = memoryview(buffer).cast("B")
        done = 0
        while done < len(out) and self._part < len(self._parts):
            part = self._parts[self._part]
            start = self._pos - (self._ends[self._part] - len(part))
            n = min(len(out) - done, len(part) - start)
            out[done : done + n] = part[start : start + n]
            done += n
            self._pos += n
            if self._pos >= self._ends[self._part]:
                self._part += 1
        return done


def has_version(head: dict[str, Any]) -> bool:
    """True when a HeadObject answer names a real version (a versioned bucket; "null" in a suspended one)."""
    version_id = head.get("VersionId")
    return bool(version_id) and version_id != "null"


def legal_hold(head: dict[str, Any]) -> bool:
    """True when a HeadObject answer says a legal hold is on (it forbids deletion whatever the retain-until)."""
    return head.get("ObjectLockLegalHoldStatus") == "ON"


def lock_until(head: dict[str, Any]) -> datetime | None:
    """The retain-until date of a HeadObject answer (UTC), or None when the version has no lock."""
    until = head.get("ObjectLockRetainUntilDate")
    if not isinstance(until, datetime) or not head.get("ObjectLockMode"):
        return None
    return until if until.tzinfo is not None else until.replace(tzinfo=UTC)


def error_parts(e: Any) -> tuple[str, int, str]:
    """(code, HTTP status, message) of a botocore ``ClientError``."""
    response = getattr(e, "response", None) or {}
    error = response.get("Error", {})
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return str(error.get("Code", "")), int(status or 0), str(error.get("Message", "")).strip()


def name_from_key(kind: Kind, rel: str) -> str | None:
    """The object name in a key relative to the kind's prefix, or None for keys that aren't objects."""
    if kind is Kind.DATA:
        fan_out, _, rel = rel.partition("/")
        if len(fan_out) != 2 or not rel.startswith(fan_out):
            return None
    return rel if is_object_name(kind, rel) else None
