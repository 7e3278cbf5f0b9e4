"""Content-defined chunking with FastCDC (pyfastcdc, compiled; it releases the GIL while it cuts).

The gear table is XORed with a per-vault secret seed derived from the master key, so chunk boundaries differ
between vaults and the sizes of stored objects do not directly fingerprint a known file. That is the defence
borg uses; it raises the bar but is not proof against an attacker who can make the vault store chosen data
(see docs/format.md, "What leaks").
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from pyfastcdc import FastCDC

from vault import format as fmt


class Chunker:
    def __init__(self, seed: int) -> None:
        self._seed = seed

    def chunks(self, stream: IO[bytes]) -> Iterator[bytes]:
        """Cut ``stream`` into chunks of CHUNK_MIN..CHUNK_MAX bytes (the last may be shorter). Each chunk is
        its own bytes object: pyfastcdc's views are only valid until the next chunk is cut."""
        cdc = FastCDC(
            fmt.CHUNK_AVG, min_size=fmt.CHUNK_MIN, max_size=fmt.CHUNK_MAX, seed=self._seed
        )
        for chunk in cdc.cut_stream(stream):
            yield bytes(chunk.data)
