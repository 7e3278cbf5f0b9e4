"""Content-defined chunking with FastCDC (pyfastcdc, compiled; it releases the GIL while it cuts).

The gear table is XORed with a per-vault secret seed derived from the master key, so chunk boundaries differ
between vaults and the sizes of stored objects do not directly fingerprint a known file. That is the defence
borg uses; it raises the bar but is not proof against an attacker who can make the vault store chosen data
(see docs/format.md, "What leaks").
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import IO, Any

from pyfastcdc import FastCDC

from vault import format as fmt


class Chunker:
    def __init__(self, seed: int) -> None:
        self._seed = seed

    def chunks(self, stream: IO[bytes], size_hint: int | None = None) -> Iterator[bytes]:
        """Cut ``stream`` into chunks of CHUNK_MIN..CHUNK_MAX bytes (the last may be shorter). Each chunk is
        its own bytes object: pyfastcdc's views are only valid until the next chunk is cut.

        ``size_hint`` (the file's size from stat) lets a small file skip the chunker: anything shorter than
        CHUNK_MIN is one chunk for FastCDC too, so reading it whole gives the same chunk without the cost of
        setting up a stream cutter per file (most files of a typical tree are small)."""
        source: IO[bytes] | _Prefixed = stream
        if size_hint is not None and size_hint < fmt.CHUNK_MIN:
            head = _read_up_to(stream, fmt.CHUNK_MIN)
            if len(head) < fmt.CHUNK_MIN:
                if head:
                    yield head
                return
            # It grew past the minimum while we looked: chunk it properly, starting with what we read.
            source = _Prefixed(head, stream)
        cdc = FastCDC(fmt.CHUNK_AVG, min_size=fmt.CHUNK_MIN, max_size=fmt.CHUNK_MAX, seed=self._seed)
        for chunk in cdc.cut_stream(source):
            yield bytes(chunk.data)


def _read_up_to(stream: IO[bytes], n: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < n:
        part = stream.read(n - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


class _Prefixed(io.RawIOBase):
    """A stream that yields ``head`` and then the rest of ``tail``."""

    def __init__(self, head: bytes, tail: IO[bytes]) -> None:
        self._head = memoryview(head)
        self._tail = tail

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        if self._head:
            n = min(len(buf), len(self._head))
            buf[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._tail.read(len(buf))
        buf[: len(data)] = data
        return len(data)
