"""The bucket of an S3 vault: creating it (with Object Lock when the vault has a retention), and asking whether it
has Object Lock. Kept apart from the object operations of vault.storage.s3, which call these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vault.errors import StorageError
from vault.storage.s3_wire import error_parts

if TYPE_CHECKING:
    from vault.storage.s3 import S3Backend

# What GetObjectLockConfiguration answers for a bucket that has none.
_NO_LOCK_CONFIG_CODES = frozenset({"ObjectLockConfigurationNotFoundError", "ObjectLockConfigurationNotFound"})


def object_lock_enabled(backend: S3Backend) -> bool:
    """True when the bucket has Object Lock enabled (``GetObjectLockConfiguration``); False when it has none or
    the store has no Object Lock at all. ``StorageError``."""
    try:
        response = backend._client.get_object_lock_configuration(Bucket=backend.bucket)
    except backend._exc.ClientError as e:
        code, status, _ = error_parts(e)
        if code in _NO_LOCK_CONFIG_CODES or code == "NotImplemented" or status == 501:
            return False  # none configured, or a store without Object Lock at all (R2)
        backend._raise(e, "read the Object Lock configuration of", backend.location, missing_is_not_found=False)
    except backend._exc.BotoCoreError as e:
        backend._raise(e, "read the Object Lock configuration of", backend.location, missing_is_not_found=False)
    enabled = response.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
    return bool(enabled == "Enabled")


def create_bucket(backend: S3Backend) -> None:
    """Create the (missing) bucket in the client's region, with Object Lock when a retention is set. A bucket
    created meanwhile by another process of ours is fine. ``StorageError`` saying why it can't."""
    kwargs: dict[str, Any] = {"Bucket": backend.bucket}
    if backend.retention is not None:
        kwargs["ObjectLockEnabledForBucket"] = True  # and with it versioning: S3 turns both on together
    region = backend._client.meta.region_name
    if region and region != "us-east-1":  # us-east-1 refuses its own name as a LocationConstraint
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        backend._client.create_bucket(**kwargs)
    except backend._exc.ClientError as e:
        code, status, message = error_parts(e)
        if code == "BucketAlreadyOwnedByYou":
            return  # created meanwhile by another process of ours
        what = f"cannot create bucket {backend.bucket}"
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
        backend._raise(e, "create", backend.location, missing_is_not_found=False)
    except backend._exc.BotoCoreError as e:
        backend._raise(e, "create", backend.location, missing_is_not_found=False)
