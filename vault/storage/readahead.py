"""Small reads of immutable remote objects, served from aligned blocks fetched whole and read ahead.

A restore asks for one blob at a time: a ranged GET of ~1 MiB, or of a few KiB for a small file. On an object
store each GET costs a round trip and a request's worth of CPU on both sides, so a 1 GiB restore made of
~900 of them was bound by request overhead and by how many the workers had outstanding (one each). Packs are
written in the order the data was read, so a restore reads each pack front to back: fetching aligned blocks
of a few MiB, caching a few, and fetching the next block of the same object while the current one is decoded
turns ~12 GETs per pack into ~3 that overlap with the work (measured in docs/performance.md, "S3").

Only for objects that never change under their name (packs): a cached block is never stale. ``forget`` drops
an object's blocks when it is deleted, so a read after the delete still finds it missing.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class BlockReader(Generic[K]):
    """Serves ``read(key, offset, length)`` from blocks of ``block_size`` bytes aligned in the object.

    At most ``capacity`` blocks are kept (least recently used go first), plus the ones being fetched; after a
    block is read, the next ``ahead`` blocks of the same object are fetched in the background unless the
    block was the object's last. Two threads that need the same block wait for one GET. Errors of a fetch
    reach every reader waiting for that block, and nothing is cached for it, so a retry fetches it again.
    Thread-safe.
    """

    def __init__(self, fetch: Callable[[K, int, int], bytes], block_size: int, capacity: int, ahead: int) -> None:
        """``fetch(key, offset, length)`` returns up to ``length`` bytes of the object from ``offset`` (``b""``
        past its end) or raises."""
        if block_size <= 0 or capacity < ahead + 2:
            raise ValueError("need a positive block size and room for the blocks read ahead plus two")
        self.block_size = block_size
        self.capacity = capacity
        self.ahead = ahead
        self._fetch = fetch
        self._lock = threading.Lock()
        self._blocks: OrderedDict[tuple[K, int], bytes] = OrderedDict()
        self._pending: dict[tuple[K, int], Future[bytes]] = {}
        self._ends: dict[K, int] = {}  # the index of an object's last block, once a short block showed it
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False

    def read(self, key: K, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset`` (fewer at the object's end, ``b""`` past it); raises what
        ``fetch`` raises."""
        if length <= 0:
            return b""
        first, last = offset // self.block_size, (offset + length - 1) // self.block_size
        pieces = []
        for index in range(first, last + 1):
            block = self._block(key, index)
            start = offset - index * self.block_size if index == first else 0
            end = offset + length - index * self.block_size if index == last else self.block_size
            pieces.append(block[start:end])
            if len(block) < self.block_size:  # the object ends in this block
                break
        self._read_ahead(key, last)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def forget(self, key: K) -> None:
        """Drop every cached block of ``key`` (it was deleted)."""
        with self._lock:
            for k in [k for k in self._blocks if k[0] == key]:
                del self._blocks[k]
            self._ends.pop(key, None)

    def close(self) -> None:
        """Stop reading ahead; waits for the GETs in flight. Reads still work afterwards, without read-ahead."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)  # nothing cancelled: a reader may be waiting for a block read ahead

    # -- internals ---------------------------------------------------------------------------------------------
    def _block(self, key: K, index: int) -> bytes:
        with self._lock:
            block = self._blocks.get((key, index))
            if block is not None:
                self._blocks.move_to_end((key, index))
                return block
            future = self._pending.get((key, index))
            owner = future is None
            if future is None:
                future = self._pending[(key, index)] = Future()
        if owner:
            self._load(key, index, future)
        return future.result()

    def _load(self, key: K, index: int, future: Future[bytes]) -> None:
        """Fetch one block into ``future`` (and the cache, when it worked)."""
        try:
            data = self._fetch(key, index * self.block_size, self.block_size)
        except BaseException as exc:
            with self._lock:
                self._pending.pop((key, index), None)
            future.set_exception(exc)
            return
        with self._lock:
            self._pending.pop((key, index), None)
            self._blocks[(key, index)] = data
            while len(self._blocks) > self.capacity:
                self._blocks.popitem(last=False)
            if len(data) < self.block_size:
                self._ends[key] = index
        future.set_result(data)

    def _read_ahead(self, key: K, index: int) -> None:
        if self.ahead <= 0:
            return
        with self._lock:
            if self._closed:
                return
            end = self._ends.get(key)
            todo = []
            for nxt in range(index + 1, index + 1 + self.ahead):
                if end is not None and nxt > end:
                    break
                if (key, nxt) in self._blocks or (key, nxt) in self._pending:
                    continue
                future: Future[bytes] = Future()
                self._pending[(key, nxt)] = future
                todo.append((nxt, future))
            if not todo:
                return
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.ahead, thread_name_prefix="vault-readahead")
            for nxt, future in todo:  # under the lock: close() can't shut the pool in between
                self._pool.submit(self._load, key, nxt, future)
