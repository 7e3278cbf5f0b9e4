"""Version records: one encrypted object per item version, written last by `put` to commit it.

A record names its item, its version number and the root tree; the storage sees only a random object name
and a size. Listing items means reading every record, so everything the user calls an item is derived here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vault import format as fmt
from vault import witness
from vault.crypto.keyring import Keyring
from vault.errors import IntegrityError, ObjectNotFoundError, UnknownGenerationError
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
        except UnknownGenerationError:
            raise  # the opening key predates a rekey: never damage to skip (repair would remove the record)
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


def commit_record(backend: Backend, key: Keyring, vault_id: bytes, record: VersionRecord) -> VersionRecord:
    """Write a version record, then make sure no other record of the item holds the same number.

    Two puts of one item at the same time may both pick ``max + 1``. After writing, we look again; if another
    record has our number we move ours to a fresh ``max + 1`` (write the new record, then delete ours). Both
    racers may move, which leaves a gap in the numbers but never two versions with one number once both have
    returned; random pauses break repeated ties.
    """
    write_record(backend, key, vault_id, record)
    for _ in range(8):
        mine = [r for r in load_records(backend, key, vault_id) if r.item == record.item]
        if not any(r.version == record.version and r.record_id != record.record_id for r in mine):
            return record
        time.sleep(secrets.randbelow(200) / 1000)
        moved = dataclasses.replace(
            record, record_id=new_record_id(), version=max(r.version for r in mine) + 1
        )
        write_record(backend, key, vault_id, moved)
        witness.removing([record.record_id])
        with contextlib.suppress(ObjectNotFoundError):
            backend.remove(record.handle)
        record = moved
    return record
