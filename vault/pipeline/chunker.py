"""Content-defined chunking with FastCDC (pyfastcdc, compiled; it releases the GIL while it cuts).

The gear table is XORed with a per-vault secret seed derived from the master key, so chunk boundaries differ
between vaults and the sizes of stored objects do not directly fingerprint a known file. That is the defence
borg uses; it raises the bar but is not proof against an attacker who can make the vault store chosen data
(see docs/format.md, "What leaks").
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import IO, Any, Protocol

from pyfastcdc import FastCDC

from vault import format as fmt
from vault.pipeline.timing import NO_TIMING, Stage, StageTimer


class _Reader(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class Chunker:
    """Cuts streams into chunks. With a ``timer``, producing each chunk is the stage :attr:`Stage.CHUNK` and each
    read of the stream the stage :attr:`Stage.READ` (inside it), on the thread that iterates."""

    def __init__(self, seed: int, timer: StageTimer = NO_TIMING) -> None:
        self._seed = seed
        self._timer = timer

    def chunks(self, stream: IO[bytes], size_hint: int | None = None) -> Iterator[bytes]:
        """Cut ``stream`` into chunks of CHUNK_MIN..CHUNK_MAX bytes (the last may be shorter). Each chunk is
        its own bytes object: pyfastcdc's views are only valid until the next chunk is cut.

        ``size_hint`` (the file's size from stat) lets a small file skip the chunker: anything shorter than
        CHUNK_MIN is one chunk for FastCDC too, so reading it whole gives the same chunk without the cost of
        setting up a stream cutter per file (most files of a typical tree are small)."""
        timer = self._timer
        # Untimed, the stream itself: no wrapper between FastCDC and the file.
        reader: IO[bytes] | _TimedReads = stream if timer is NO_TIMING else _TimedReads(stream, timer)
        source: IO[bytes] | _TimedReads | _Prefixed = reader
        if size_hint is not None and size_hint < fmt.CHUNK_MIN:
            with timer.stage(Stage.CHUNK):
                head = _read_up_to(reader, fmt.CHUNK_MIN)
            if len(head) < fmt.CHUNK_MIN:
                if head:
                    yield head
                return
            # It grew past the minimum while we looked: chunk it properly, starting with what we read.
            source = _Prefixed(head, reader)
        cdc = FastCDC(fmt.CHUNK_AVG, min_size=fmt.CHUNK_MIN, max_size=fmt.CHUNK_MAX, seed=self._seed)
        cuts = cdc.cut_stream(source)
        while True:
            with timer.stage(Stage.CHUNK):
                cut = next(cuts, None)
                chunk = None if cut is None else bytes(cut.data)
            if chunk is None:
                return
            yield chunk


def _read_up_to(stream: _Reader, n: int) -> bytes:
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

    def __init__(self, head: bytes, tail: _Reader) -> None:
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


class _TimedReads:
    """``stream`` with each read timed as the stage :attr:`Stage.READ`."""

    def __init__(self, stream: IO[bytes], timer: StageTimer) -> None:
        self._stream = stream
        self._timer = timer
        # FastCDC prefers readinto (no copy); every stream vault reads has one, but read() is the contract.
        self._readinto = getattr(stream, "readinto", None)

    def read(self, n: int = -1, /) -> bytes:
        with self._timer.stage(Stage.READ):
            return self._stream.read(n)

    def readinto(self, buf: Any) -> int:
        if self._readinto is None:
            data = self.read(len(buf))
            buf[: len(data)] = data
            return len(data)
        with self._timer.stage(Stage.READ):
            n: int = self._readinto(buf)
            return n
