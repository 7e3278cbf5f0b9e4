"""Where vault objects live: the :class:`Backend` contract, its implementations and :func:`open_backend`.

The layout of a store is the same on every backend (restic's "default layout")::

    config                      Kind.CONFIG, the single object named "config"
    keys/<name>                 key slots
    data/<name[:2]>/<name>      data objects, fanned out over 256 two-hex-digit directories
    index/<name>  versions/<name>  locks/<name>

:func:`object_key` computes that relative key and, on the way, refuses any name that is not lowercase hex
(so no handle can ever escape its directory). Backend modules are imported lazily by :func:`open_backend`,
so importing this package never needs boto3.
"""

from __future__ import annotations

import re

from vault.errors import UsageError
from vault.storage.base import Backend, Handle, Kind, ObjectInfo, RetainingBackend, supports_retention

__all__ = [
    "CONFIG_NAME",
    "Backend",
    "Handle",
    "Kind",
    "ObjectInfo",
    "RetainingBackend",
    "is_object_name",
    "object_key",
    "open_backend",
    "parse_s3_location",
    "supports_retention",
]

CONFIG_NAME = "config"
"""The name of the single :attr:`Kind.CONFIG` object."""

_HEX_NAME = re.compile(r"[0-9a-f]{1,256}")
# Conservative S3 bucket names: what AWS allows today plus the legacy upper case and underscores that some
# S3-compatible stores still accept. Anything else (spaces, "@", "?", ":") is a typo or a credential.
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")


def is_object_name(kind: Kind, name: str) -> bool:
    """True when ``name`` is a valid name for an object of ``kind`` (and would be listed by ``list``)."""
    if kind is Kind.CONFIG:
        return name == CONFIG_NAME
    if _HEX_NAME.fullmatch(name) is None:
        return False
    return kind is not Kind.DATA or len(name) >= 2


def object_key(h: Handle) -> str:
    """The key of ``h`` relative to the store's root, with ``/`` separators.

    Raises ``ValueError`` when the name is not valid for its kind: a caller bug, never an I/O failure.
    """
    if not is_object_name(h.kind, h.name):
        # repr() of a bad name would be safe too, but it may be long; the kind is enough to find the caller.
        raise ValueError(f"invalid object name for kind {h.kind.value!r}")
    if h.kind is Kind.CONFIG:
        return CONFIG_NAME
    if h.kind is Kind.DATA:
        return f"data/{h.name[:2]}/{h.name}"
    return f"{h.kind.value}/{h.name}"


def parse_s3_location(location: str) -> tuple[str, str]:
    """Split ``s3://BUCKET[/PREFIX]`` into ``(bucket, prefix)``; the prefix has no leading or trailing ``/``.

    Raises ``UsageError`` for an empty or malformed bucket name. The message never repeats the location,
    because a mistyped one may hold a secret (``s3://KEY:SECRET@bucket``).
    """
    rest = location[len("s3://") :] if location[:5].lower() == "s3://" else location
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise UsageError("an S3 location needs a bucket: s3://BUCKET[/PREFIX]")
    if "@" in bucket or ":" in bucket:
        raise UsageError(
            "credentials do not belong in an S3 location",
            hint="use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, and AWS_ENDPOINT_URL",
        )
    if _BUCKET.fullmatch(bucket) is None:
        raise UsageError("invalid S3 bucket name in the location")
    return bucket, prefix.strip("/")


def open_backend(location: str) -> Backend:
    """The backend for a ``--vault`` location (spec/cli.md, "Choosing the vault").

    ``s3://BUCKET[/PREFIX]`` gives an S3 backend wrapped in a :class:`~vault.storage.retry.RetryingBackend`
    (endpoint, region and credentials come from the standard AWS environment); anything else is a local
    directory path, ``~`` expanded. Nothing is touched on the storage yet.

    Raises ``UsageError`` for an empty location, a malformed S3 location, or S3 without boto3 installed.
    """
    if not location:
        raise UsageError("the vault location is empty")
    if location[:5].lower() == "s3://":
        from vault.storage.retry import RetryingBackend
        from vault.storage.s3 import S3Backend

        bucket, prefix = parse_s3_location(location)
        return RetryingBackend(S3Backend(bucket, prefix))

    from pathlib import Path

    from vault.storage.local import LocalBackend

    return LocalBackend(Path(location).expanduser())
