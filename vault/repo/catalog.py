"""Version records: one encrypted object per item version, written last by `put` to commit it.

A record names its item, its version number and the root tree; the storage sees only a random object name
and a size. Listing items means reading every record, so everything the user calls an item is derived here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vault import format as fmt
from vault.crypto.keyring import Keyring
from vault.errors import IntegrityError, ObjectNotFoundError
from vault.repo.objects import object_generation, open_object, seal_object
from vault.storage.base import Backend, Handle, Kind


@dataclass(frozen=True)
class VersionRecord:
    record_id: str  # object name
    item: str
    version: int
    created: str  # ISO 8601 UTC
    type: str  # "file" or "dir"
    tree: bytes  # tree blob whose single node is the item's root
    size: int  # original bytes
    files: int
    bytes_added: int
    host: str
    damaged: tuple[str, ...] = ()  # set by `repair` when data this version needs is lost

    def stored(self) -> fmt.RecordFields:
        """What the record object holds: everything but its name."""
        return fmt.RecordFields(
            item=self.item,
            version=self.version,
            created=self.created,
            type=self.type,
            tree=self.tree,
            size=self.size,
            files=self.files,
            bytes_added=self.bytes_added,
            host=self.host,
            damaged=self.damaged,
        )

    def to_json(self) -> dict[str, Any]:
        return fmt.record_doc(self.stored())

    @property
    def handle(self) -> Handle:
        return Handle(Kind.VERSIONS, self.record_id)


def load_record(backend: Backend, key: Keyring, vault_id: bytes, handle: Handle) -> VersionRecord:
    return read_record(backend, key, vault_id, handle)[0]


def read_record(backend: Backend, key: Keyring, vault_id: bytes, handle: Handle) -> tuple[VersionRecord, int]:
    """One version record and the key generation it is sealed under. IntegrityError, ObjectNotFoundError."""
    what = f"version record {handle}"
    raw = backend.load(handle, 0, fmt.MAX_RECORD_SIZE + 1)
    if len(raw) > fmt.MAX_RECORD_SIZE:
        raise IntegrityError(f"{what} is too large")
    plain = open_object(key, vault_id, handle, fmt.ObjectType.VERSION, raw)
    generation = object_generation(raw, fmt.ObjectType.VERSION, what)
    return VersionRecord(handle.name, **fmt.decode_record(plain, what)._asdict()), generation


def load_records(
    backend: Backend,
    key: Keyring,
    vault_id: bytes,
    on_error: Callable[[Handle, IntegrityError], None] | None = None,
) -> list[VersionRecord]:
    """Every version record, ordered by item, then version. A damaged record raises IntegrityError, or, when
    ``on_error`` is given (check, repair), is reported to it and skipped."""
    records = []
    for info in backend.list(Kind.VERSIONS):
        try:
            records.append(load_record(backend, key, vault_id, info.handle))
        except ObjectNotFoundError:
            continue  # removed (rm, forget) between listing and reading
        except IntegrityError as exc:
            if on_error is None:
                raise
            on_error(info.handle, exc)
    return sorted(records, key=lambda r: (r.item, r.version, r.created, r.record_id))


def write_record(backend: Backend, key: Keyring, vault_id: bytes, record: VersionRecord) -> None:
    payload = fmt.encode_record(record.stored())
    backend.save(record.handle, seal_object(key, vault_id, record.handle, fmt.ObjectType.VERSION, payload))


def new_record_id() -> str:
    return os.urandom(fmt.ID_SIZE).hex()
