"""Locks: the JSON an encrypted lock object holds (who holds it, how, since when), and its parser."""

from __future__ import annotations

from typing import NamedTuple

from vault.errors import IntegrityError
from vault.format.documents import decode_json_object, encode_json


class LockFields(NamedTuple):
    """What a lock object holds (vault.repo.locks.LockInfo adds its object name)."""

    exclusive: bool
    host: str
    pid: int
    time: float  # last refresh, seconds since the epoch
    command: str


def encode_lock(lock: LockFields) -> bytes:
    doc = {"exclusive": lock.exclusive, "host": lock.host, "pid": lock.pid, "time": lock.time, "command": lock.command}
    return encode_json(doc)


def decode_lock(plain: bytes, what: str) -> LockFields:
    """Parse a lock's (decrypted) JSON. IntegrityError."""
    doc = decode_json_object(plain, what)
    exclusive, host, pid, t, command = (doc.get(k) for k in ("exclusive", "host", "pid", "time", "command"))
    if not (
        isinstance(exclusive, bool)
        and isinstance(host, str)
        and isinstance(pid, int)
        and isinstance(t, int | float)
        and isinstance(command, str)
    ):
        raise IntegrityError(f"{what} is malformed")
    return LockFields(exclusive, host, pid, float(t), command)
