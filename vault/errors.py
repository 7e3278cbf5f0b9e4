"""The one exception hierarchy of vault.

Every expected failure is a :class:`VaultError` subclass that carries the exit code fixed by
``spec/cli.md``. Library code raises these and never exits; ``vault.cli.main`` maps them to exit codes
in one place. Messages are one line, safe to print and log: they never contain a password, a key or
plaintext (name objects with their short handle instead).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


class VaultError(Exception):
    """Base of every expected failure. ``exit_code`` follows the contract; ``hint`` is optional advice."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(VaultError):
    """Bad arguments, a malformed name, conflicting options, an empty new password."""

    exit_code = 2


class PartialError(VaultError):
    """``put`` finished but skipped some files."""

    exit_code = 3


class NotFoundError(VaultError):
    """No such item, version, key or local path."""

    exit_code = 4


class VaultNotFoundError(VaultError):
    """No vault at the location."""

    exit_code = 10


class VaultLockedError(VaultError):
    """Another process holds a lock that this command needs."""

    exit_code = 11


class AuthenticationError(VaultError):
    """Wrong password, no password source, or a failed password command."""

    exit_code = 12


class IntegrityError(VaultError):
    """Stored data failed authentication, is missing, or is damaged."""

    exit_code = 20


class UnknownGenerationError(VaultError):
    """Bytes sealed under a key generation the keyring in use does not hold: made after the `vault rekey` that
    the opening key slot predates. Not damage: it is deliberately *not* an IntegrityError, so no code that
    handles damage (skip, report, repair, delete) ever takes it for damage. Exit 20 like damage, as the
    contract has no code of its own for "this key is too old"."""

    exit_code = 20


class UnsupportedVersionError(VaultError):
    """The vault or an object was written by a newer format than this program reads."""

    exit_code = 21


class StorageError(VaultError):
    """A local file that can't be read or written, a full disk, unreachable storage."""

    exit_code = 30


class ObjectNotFoundError(StorageError):
    """The storage has no object under that handle. Callers above the store usually turn this into
    :class:`IntegrityError` (an object the vault needs is missing) or :class:`VaultNotFoundError`."""


class TransientStorageError(StorageError):
    """A failure that may pass if the same call is tried again (throttling, timeouts, 5xx)."""


class NotPermittedError(VaultError):
    """The key in use may only add data (a write-only key): the command needs a full key. Raised before anything
    is read or printed."""

    exit_code = 13

class RetentionHeldError(StorageError):
    """The store refuses to delete an object because its retention (S3 Object Lock, compliance mode) has not
    passed yet. Raised by ``RetainingBackend.remove`` *after* it hid the object (gone from every listing, still
    stored): callers that delete (``rm``, ``forget``, ``prune``, through vault.storage.base.remove_all) count it
    as held until :attr:`held_until`, and a later ``prune`` deletes it. Exit 13 (the contract's "storage
    retention forbids the change") only when it reaches the command line uncaught."""

    exit_code = 13

    def __init__(self, message: str, *, held_until: datetime | None, hint: str | None = None,
                 held: dict[Any, datetime | None] | None = None) -> None:
        super().__init__(message, hint=hint)
        self.held_until = held_until
        """When the retention ends (UTC; the latest, for several), or None when the store refused without saying
        (then ask ``retention_until``)."""
        self.held = held or {}
        """A refusal of several deletions (``remove_many``): handle → when its retention ends."""


class ConflictError(VaultError):
    """The vault or the destination exists already; removing the last key."""

    exit_code = 40


class Interrupted(VaultError):
    """SIGINT arrived; raised after cleaning up."""

    exit_code = 130
