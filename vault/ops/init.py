"""`vault init`: a new vault, optionally with a retention (S3 Object Lock, compliance mode).

Without a retention this is :meth:`Repository.create`. With one, the same steps in the same order (bucket, key
slot, config last: a config is what makes a vault, so a crash before it leaves none), but the bucket has Object
Lock, the backend locks what it writes from the first key slot on, and the config records ``retention_days``
(format version 3, see docs/format.md). ``Repository.create`` can take the retention itself once it is
rewritten; until then this module holds the difference.
"""

from __future__ import annotations

from datetime import timedelta

from vault import format as fmt
from vault.crypto import kdf
from vault.crypto.keyring import new_keyring
from vault.crypto.slot_store import KeyStore
from vault.crypto.slots import POLICY_DEFAULT
from vault.errors import ConflictError, ObjectNotFoundError, UsageError
from vault.repo.config import CONFIG_HANDLE, new_config
from vault.repo.repository import Repository
from vault.storage.base import Backend, RetainingBackend, supports_retention

_LOCK_HINT = (
    "Object Lock is chosen when a bucket is made: give `vault init --retention` a bucket that does not exist "
    "yet (it creates one with Object Lock), or see docs/storage.md, \"Retention\""
)


def check_retention_target(backend: Backend, retention_days: int) -> RetainingBackend:
    """Refuse a retention the location can't keep, before anything is asked or written: a period outside
    1..36500 days, a backend that can't lock (a local directory), an existing bucket without Object Lock.
    Returns the backend as a :class:`RetainingBackend`. Raises ``UsageError`` (exit 2), ``ConflictError`` when
    a vault exists there already, ``StorageError`` when the bucket can't be asked."""
    if not 1 <= retention_days <= fmt.MAX_RETENTION_DAYS:
        raise UsageError(f"--retention must be between 1 and {fmt.MAX_RETENTION_DAYS} days")
    if not supports_retention(backend):
        raise UsageError(
            "--retention needs an S3 vault (s3://BUCKET[/PREFIX]): a local directory can't lock its files",
            hint="retention is S3 Object Lock; see docs/storage.md, \"Retention\"",
        )
    retaining: RetainingBackend = backend  # type: ignore[assignment]
    if backend.exists_root():
        _refuse_existing_vault(backend)
        if not retaining.object_lock_enabled():  # type: ignore[attr-defined]
            raise UsageError(
                f"{backend.location}: the bucket exists without S3 Object Lock, so it can't hold a retention",
                hint=_LOCK_HINT,
            )
    return retaining


def create_vault(
    backend: Backend,
    password: bytes,
    params: kdf.KdfParams,
    policy: str = POLICY_DEFAULT,
    *,
    retention_days: int | None = None,
) -> Repository:
    """Make a new vault at ``backend``; with ``retention_days``, one whose every retained object (see
    :data:`vault.storage.s3.RETAINED_KINDS`) is locked in compliance mode for that many days from its write.

    Raises ``ConflictError`` when a vault exists there (nothing touched), ``UsageError`` for a retention the
    location can't keep (see :func:`check_retention_target`), ``StorageError`` for storage failures."""
    if retention_days is None:
        return Repository.create(backend, password, params, policy)
    retaining = check_retention_target(backend, retention_days)
    retaining.set_retention(timedelta(days=retention_days))
    backend.create_root()  # with Object Lock, now that a retention is set
    config = new_config(retention_days)
    key = new_keyring(config.vault_id)
    slot = KeyStore(backend, config.vault_id).add(key, password, params, policy)
    backend.save(CONFIG_HANDLE, config.to_bytes())
    return Repository(backend, config, key, slot)


def _refuse_existing_vault(backend: Backend) -> None:
    try:
        backend.stat(CONFIG_HANDLE)
    except ObjectNotFoundError:
        return
    raise ConflictError(f"a vault already exists at {backend.location}")
