"""When `prune` last extended the retention of every object the vault keeps (see vault.ops.retention_lock), in the
cache's ``meta`` table.

The value is MAC'd with the cache's key like every row that could mislead: one that is missing, altered, from
another vault or unreadable reads as "no round recorded", which makes the next prune extend everything, the
safe direction. A value can only make prune skip a round it would otherwise make; that is why it is
authenticated at all (a forged "extended yesterday" would let locks run out).
"""

from __future__ import annotations

import hmac
import struct
from datetime import UTC, datetime

import blake3

from vault.cache.db import CacheDamaged, CacheDB

__all__ = ["ExtensionRounds", "Round"]

_META_KEY = "retention_round"
_VALUE = struct.Struct(">qq")  # when the round started, the date every lock was extended to (Unix seconds)
_MAC_SIZE = 32


class Round:
    """One completed round: at ``started`` every object the vault kept was locked until at least ``until``."""

    __slots__ = ("started", "until")

    def __init__(self, started: datetime, until: datetime) -> None:
        self.started = started
        self.until = until


class ExtensionRounds:
    """The last completed extension round of this vault, as this machine's cache remembers it."""

    def __init__(self, db: CacheDB, mac_key: bytes) -> None:
        self.db = db
        self._mac_key = mac_key

    def _mac(self, packed: bytes) -> bytes:
        return blake3.blake3(b"retention-round\0" + packed, key=self._mac_key).digest(_MAC_SIZE)

    def last(self) -> Round | None:
        """The last recorded round, or None when there is none or the value fails its MAC (or the cache can't be
        read): the caller then extends everything."""
        try:
            value = self.db.get_meta(_META_KEY)
        except CacheDamaged:
            return None
        if value is None or len(value) != _VALUE.size + _MAC_SIZE:
            return None
        packed, mac = value[: _VALUE.size], value[_VALUE.size :]
        if not hmac.compare_digest(mac, self._mac(packed)):
            return None
        started, until = _VALUE.unpack(packed)
        return Round(datetime.fromtimestamp(started, UTC), datetime.fromtimestamp(until, UTC))

    def record(self, started: datetime, until: datetime) -> None:
        """Remember a completed round (whole seconds: ``started`` rounded down, ``until`` down as well, which
        only makes the next round come sooner)."""
        packed = _VALUE.pack(int(started.timestamp()), int(until.timestamp()))
        with self.db.transaction() as conn:
            self.db.set_meta(conn, _META_KEY, packed + self._mac(packed))

    def forget(self) -> None:
        """Drop the record (tests; a command that wants the next prune to extend everything)."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM meta WHERE key = ?", (_META_KEY,))
