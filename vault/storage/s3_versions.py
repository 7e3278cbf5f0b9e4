"""The versions S3 keeps behind a vault's objects in a versioned bucket (every bucket with Object Lock): finding the
other versions of one key, and the sweep that deletes what retention no longer holds.

Why there is anything to sweep: a removal that retention refuses *hides* the object (a delete marker on top, see
:meth:`vault.storage.s3.S3Backend.remove`), and a key slot saved again over its name leaves its older version
behind, locked. Those locked versions are noncurrent: no listing the vault makes shows them, so nothing but this
sweep would ever delete them. `vault prune` runs it at its end (:func:`purge_expired`).

Rules of the sweep, per key (all entries of one key come together in ``list_object_versions``, newest first):

- the current entry (``IsLatest``) is never deleted while anything is under it: deleting a current version would
  make an older one current, deleting a current delete marker would bring a hidden object back;
- a noncurrent version whose lock has passed (or that has none) is deleted by version id; one still locked is
  counted as held, with its date (a HeadObject per noncurrent version: listings carry no lock dates);
- a noncurrent delete marker is deleted (it hides nothing); the current delete marker is deleted once no version
  is left under it, which makes the key vanish altogether.

Memory: one page of the listing plus the entries of the key being looked at.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from vault.errors import ObjectNotFoundError, RetentionHeldError, StorageError
from vault.storage.base import Handle, Held, Kind, Purge
from vault.storage.s3_wire import error_parts, legal_hold, lock_until, name_from_key

if TYPE_CHECKING:
    from vault.storage.s3 import S3Backend

__all__ = ["delete_version", "other_versions", "purge_expired", "remove_versions"]


def other_versions(backend: S3Backend, key: str, current: str) -> tuple[str, ...]:
    """The ids of every version and delete marker of exactly ``key`` except ``current``. ``StorageError``."""
    found: set[str] = set()
    for entry in _entries(backend, key, f"the versions of {key.rsplit('/', 1)[-1][:10]}"):
        if entry["Key"] == key and entry.get("VersionId") not in (None, current):
            found.add(str(entry["VersionId"]))
    return tuple(sorted(found))


def remove_versions(backend: S3Backend, h: Handle, key: str, head: dict[str, Any]) -> None:
    """The versioned part of :meth:`S3Backend.remove` (its docstring has the rules), given the current version's
    HeadObject answer ``head``. RetentionHeldError after hiding what retention holds; StorageError."""
    held = Held()
    current = head["VersionId"]
    # Older versions first: deleting the current one while an older one is left would make that one
    # current, bringing an old key slot back into the listing.
    for version_id in other_versions(backend, key, current):
        try:
            delete_version(backend, h, key, version_id, None)
        except RetentionHeldError as exc:  # an older version still locked (a slot rewritten): purged later
            held.add(exc.held_until)
    # Where our clock says the current version's lock still holds, don't even ask: hide it. (Where S3's
    # clock disagrees either way, the outcome is safe: a refused DELETE hides below; a lock S3 considers
    # passed that we hide anyway is deleted by the next sweep.)
    until = lock_until(head)
    current_held = legal_hold(head) or (until is not None and until > datetime.now(UTC))
    if current_held:
        held.add(until)
    if held:
        delete_version(backend, h, key, None, None)  # a plain DELETE: the delete marker that hides the key
    if not current_held:
        try:
            delete_version(backend, h, key, current, head)
        except RetentionHeldError as exc:
            if not held:
                delete_version(backend, h, key, None, None)
            held.add(exc.held_until)
    if held:
        when = f"{held.until:%Y-%m-%d %H:%M} UTC" if held.until is not None else "a date the store did not give"
        raise RetentionHeldError(
            f"{h} in {backend.location} is held by retention until {when}: it is removed from every listing, "
            "and a later `vault prune` deletes it then",
            held_until=held.until,
        )


def delete_version(backend: S3Backend, h: Handle, key: str, version_id: str | None,
                   head: dict[str, Any] | None) -> None:
    """One ``delete_object`` (of ``version_id`` when given). A refusal of a version under a lock that has
    not ended is a RetentionHeldError; ``head`` is that version's HeadObject answer when known."""
    kwargs: dict[str, Any] = {"Bucket": backend.bucket, "Key": key}
    if version_id is not None:
        kwargs["VersionId"] = version_id
    try:
        backend._client.delete_object(**kwargs)
    except backend._exc.ClientError as e:
        code, status, _ = error_parts(e)
        if version_id is not None and (status == 403 or code in {"AccessDenied", "ObjectLocked"}):
            if head is None:
                with contextlib.suppress(StorageError):
                    head = backend._head(h, version_id)
            until = lock_until(head) if head is not None else None
            # Any lock date or a legal hold makes the refusal retention's, even a date our clock has passed: S3's
            # clock decides, and where it is behind ours the object is held a little longer, not an error.
            if until is not None or (head is not None and legal_hold(head)):
                if until is not None:
                    until = max(until, datetime.now(UTC))
                when = f"{until:%Y-%m-%d %H:%M} UTC" if until is not None else "its legal hold is lifted"
                raise RetentionHeldError(f"{h} in {backend.location} is held by retention until {when}",
                                         held_until=until) from None
        backend._raise(e, "remove", str(h), missing_is_not_found=True)
    except backend._exc.BotoCoreError as e:
        backend._raise(e, "remove", str(h), missing_is_not_found=True)


def purge_expired(backend: S3Backend, kinds: Iterable[Kind]) -> Purge:
    """Sweep the versions of every key of ``kinds`` under the backend's prefix by the rules above; keys that are
    not vault objects (other files in the bucket) are left alone. Returns what was deleted and what is held.
    ``StorageError``."""
    out = Purge()
    now = datetime.now(UTC)
    for kind in sorted(kinds, key=lambda k: k.value):
        start = _prefix(backend, kind)
        group: list[dict[str, Any]] = []
        for entry in _entries(backend, start, f"{kind.value} object versions"):
            if group and entry["Key"] != group[0]["Key"]:
                _sweep_key(backend, kind, start, group, now, out)
                group = []
            group.append(entry)
        if group:
            _sweep_key(backend, kind, start, group, now, out)
    return out


def _prefix(backend: S3Backend, kind: Kind) -> str:
    if kind is Kind.CONFIG:
        from vault.storage import CONFIG_NAME

        return f"{backend.prefix}/{CONFIG_NAME}" if backend.prefix else CONFIG_NAME
    return backend._key_prefix(kind)


def _sweep_key(
    backend: S3Backend, kind: Kind, start: str, entries: list[dict[str, Any]], now: datetime, out: Purge
) -> None:
    """Apply the sweep's rules to the entries of one key (newest first, current first)."""

    key = entries[0]["Key"]
    if kind is Kind.CONFIG:
        if key != start:
            return  # "config-backup" or the like: not ours
        name = start.rsplit("/", 1)[-1]
    else:
        found = name_from_key(kind, key[len(start) :])
        if found is None:
            return
        name = found
    h = Handle(kind, name)
    current = next((e for e in entries if e.get("IsLatest")), None)
    if current is None:
        return  # a key changing while it was listed: the next prune looks again
    left = 0  # versions that stay under the current entry
    for entry in entries:
        if entry is current:
            continue
        version_id = str(entry["VersionId"])
        if entry["_marker"]:
            with contextlib.suppress(ObjectNotFoundError):
                backend._delete(h, key, version_id, None)
                out.deleted += 1
            continue
        until = _locked_until(backend, h, version_id, now)
        if until is not _FREE:
            out.held.add(until if isinstance(until, datetime) else None)
            left += 1
            continue
        try:
            backend._delete(h, key, version_id, None)
            out.deleted += 1
        except ObjectNotFoundError:
            pass
        except RetentionHeldError as exc:  # the store's clock is behind ours: held a little longer
            out.held.add(exc.held_until)
            left += 1
    if current["_marker"] and not left:
        with contextlib.suppress(ObjectNotFoundError):
            backend._delete(h, key, str(current["VersionId"]), None)
            out.deleted += 1


_FREE = object()  # a version no lock holds any more


def _locked_until(backend: S3Backend, h: Handle, version_id: str, now: datetime) -> object:
    """The date the lock on one version ends when it still holds (None for a legal hold with no date), else
    ``_FREE``."""

    try:
        head = backend._head(h, version_id)
    except ObjectNotFoundError:
        return _FREE  # gone already: the DELETE finds nothing to do either
    until = lock_until(head)
    if until is not None and until > now:
        return until
    if legal_hold(head):
        return until
    return _FREE


def _entries(backend: S3Backend, prefix: str, what: str) -> Iterator[dict[str, Any]]:
    """Every version and delete marker under ``prefix``, page by page, each page's entries in key order with the
    current one first (S3 lists them so within each list; a page's versions and markers are merged here). A
    marker is flagged ``_marker``. A missing bucket lists as nothing."""
    client = backend._client
    paginator = client.get_paginator("list_object_versions")
    try:
        for page in paginator.paginate(
            Bucket=backend.bucket, Prefix=prefix, PaginationConfig={"PageSize": backend.list_page_size}
        ):
            versions = [dict(v, _marker=False) for v in page.get("Versions", ())]
            markers = [dict(m, _marker=True) for m in page.get("DeleteMarkers", ())]
            # Stable sort by key only: within a key, versions and markers keep S3's newest-first order each;
            # the current entry is moved first.
            merged = sorted([*versions, *markers], key=lambda e: (e["Key"], not e.get("IsLatest"),
                                                                    _time(e.get("LastModified"))))
            yield from merged
    except (backend._exc.ClientError, backend._exc.BotoCoreError) as e:

        code, status, _ = error_parts(e)
        if isinstance(e, backend._exc.ClientError) and (code == "NoSuchBucket" or status == 404):
            return
        backend._raise(e, "list", what, missing_is_not_found=False)


def _time(value: Any) -> float:
    """Newest first within a key: the negated timestamp (0 when missing)."""
    return -value.timestamp() if isinstance(value, datetime) else 0.0
