"""Reading stored files through the mount: only the chunks a read touches, each decoded once while it is kept.

Opening a file maps offsets to chunks: the node's chunk list in order, each chunk's length from the index (no
data is read). A read finds the chunks its range covers, takes them from :class:`ChunkCache` (decoded chunks,
least recently used out beyond ``capacity`` bytes) or decodes them on the worker pool, and asks for the next
chunks ahead so that sequential reads find them ready. Every chunk is authenticated when it is decoded, and the
chunk lengths must add up to the file's size: a damaged file fails (IntegrityError, EIO to the reader), it never
reads as other bytes.

The mount takes no lock (see vault.mount), so a `prune` may repack a chunk while the file is open: a chunk whose
pack has gone is looked up again once after catching up with the storage's index before it counts as damage.
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor

from vault import format as fmt
from vault.errors import IntegrityError, ObjectNotFoundError
from vault.repo.repository import Repository
from vault.repo.tree import Node

log = logging.getLogger(__name__)

CACHE_BYTES = 64 << 20
READ_AHEAD_CHUNKS = 2


class ChunkCache:
    """Decoded chunks by id, at most about ``capacity`` bytes of them. Thread-safe."""

    def __init__(self, repo: Repository, pool: ThreadPoolExecutor, capacity: int = CACHE_BYTES) -> None:
        self.repo = repo
        self.pool = pool
        self.capacity = capacity
        self._chunks: OrderedDict[bytes, tuple[Future[bytes], int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.decoded = 0  # chunks decoded (for tests: a sequential read decodes each chunk once)

    def get(self, chunk_id: bytes, length: int) -> bytes:
        """The chunk's plaintext. IntegrityError (then it is not kept: a later read tries again)."""
        fut = self._future(chunk_id, length)
        try:
            return fut.result()
        except BaseException:
            with self._lock:
                held = self._chunks.get(chunk_id)
                if held is not None and held[0] is fut:
                    del self._chunks[chunk_id]
                    self._bytes -= held[1]
            raise

    def prefetch(self, chunk_id: bytes, length: int) -> None:
        self._future(chunk_id, length)

    def _future(self, chunk_id: bytes, length: int) -> Future[bytes]:
        with self._lock:
            held = self._chunks.get(chunk_id)
            if held is not None:
                self._chunks.move_to_end(chunk_id)
                return held[0]
            fut = self.pool.submit(self._load, chunk_id)
            self._chunks[chunk_id] = (fut, length)
            self._bytes += length
            self.decoded += 1
            while self._bytes > self.capacity and len(self._chunks) > 1:
                _, (_, size) = self._chunks.popitem(last=False)
                self._bytes -= size
            return fut

    def _load(self, chunk_id: bytes) -> bytes:
        try:
            return self.repo.load_blob(chunk_id)
        except IntegrityError:
            if not self._pack_gone(chunk_id):
                raise
        log.info("the pack of chunk %s is gone (a prune?); catching up with the index", chunk_id.hex()[:10])
        self.repo.refresh_blobs()
        return self.repo.load_blob(chunk_id)

    def _pack_gone(self, chunk_id: bytes) -> bool:
        try:
            self.repo.backend.stat(self.repo.locate(chunk_id, fmt.BlobType.DATA).pack_handle)
        except ObjectNotFoundError:
            return True
        except IntegrityError:
            return False
        return False


class OpenFile:
    """One open stored file: where each chunk starts, and reads of any range."""

    def __init__(self, repo: Repository, node: Node, cache: ChunkCache) -> None:
        self.node = node
        self.cache = cache
        self.ids = node.content
        self.starts = [0]
        for chunk_id in self.ids:
            self.starts.append(self.starts[-1] + repo.locate(chunk_id, fmt.BlobType.DATA).entry.raw_length)
        if self.starts[-1] != node.size:
            raise IntegrityError(f"{node.name!r}: its chunks do not add up to its size; the vault may be damaged")

    def read(self, offset: int, size: int) -> bytes:
        end = min(offset + size, self.node.size)
        if offset >= end:
            return b""
        i = bisect.bisect_right(self.starts, offset) - 1
        parts: list[bytes] = []
        pos = offset
        while pos < end:
            start, stop = self.starts[i], self.starts[i + 1]
            data = self.cache.get(self.ids[i], stop - start)
            take = min(end, stop)
            parts.append(data[pos - start : take - start] if (pos, take) != (start, stop) else data)
            pos = take
            i += 1
        for j in range(i, min(i + READ_AHEAD_CHUNKS, len(self.ids))):
            self.cache.prefetch(self.ids[j], self.starts[j + 1] - self.starts[j])
        return parts[0] if len(parts) == 1 else b"".join(parts)
