"""The write side of the data path: dedup, compress and seal on the CPU pool, pack in order, upload packs on
the I/O pool, and at the end write the index for the new packs. Used by one `put` at a time.

Each step is a stage of the pipeline's timer (:mod:`vault.pipeline.timing`): on the workers HASH, DEDUP, then
seal_blob's COMPRESS and SEAL; on the main thread PACK and WAIT_UPLOAD; on the I/O pool UPLOAD and INDEX (the
merged index at the end is INDEX on the main thread).

Under a write-only key (vault.repo.write_only) the same path runs with three differences, all decided here once
per put: blobs are sealed to the vault's public key with the put's one ephemeral exchange (BlobSealer), packs are
built as sealed packs, and every tree stored or reused is handed to the key's local record, which is what lets
the next put of the same tree be incremental without reading anything from the vault."""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future

from vault import format as fmt
from vault.pipeline.runner import Pipeline
from vault.pipeline.timing import Stage
from vault.repo.blobs import SealedBlob, seal_blob
from vault.repo.packs import PackBuilder
from vault.repo.repository import Repository
from vault.storage.base import Handle, Kind, is_remote, save_parts

MAX_UPLOADS_IN_FLIGHT = 2  # a remote store (S3): packs being uploaded at once
# A local directory: one. Writing a pack into the page cache takes a fraction of the time the workers take to
# fill the next one, so a second upload in flight bought no speed, only 16 MiB more peak RSS (measured: see
# docs/performance.md). A remote store keeps two, to overlap the round trip of one request with the next.
MAX_LOCAL_UPLOADS_IN_FLIGHT = 1
# A remote store: packs of 4 MiB instead of the format's 16 MiB target, and at most 4 work items on the CPU pool
# (threads + 2 when more) instead of the pipeline's 2 * threads + 2. boto3 and its S3 client cost 33 MiB of RSS
# that a local put does not pay; these keep a 1 GiB S3 put at 144 MiB peak (198 MiB with 16 MiB packs and the
# default window), at the same speed on moto (docs/performance.md, "S3": 1 to 4 uploads in flight, packs of 4
# to 16 MiB, windows 4 and 6).
REMOTE_PACK_TARGET: int | None = 4 << 20
REMOTE_WINDOW: int | None = 4
BATCH_BYTES = 1 << 20  # a work item is one big chunk, or small chunks adding up to about this much
BATCH_CHUNKS = 128


def _batched(chunks: Iterable[bytes]) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    size = 0
    for chunk in chunks:
        batch.append(chunk)
        size += len(chunk)
        if size >= BATCH_BYTES or len(batch) >= BATCH_CHUNKS:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


class BlobWriter:
    def __init__(self, repo: Repository, pipeline: Pipeline, level: int) -> None:
        self.repo = repo
        self.pipeline = pipeline
        self.timer = pipeline.timer
        self.level = level
        self.bytes_added = 0
        self.blobs_added = 0
        self._claimed: set[bytes] = set()
        self._lock = threading.Lock()
        # One sealer per put: a write-only put's ephemeral key pair lives exactly as long as this writer.
        self._sealer = repo.key.blob_sealer()
        self._sealed_packs = repo.key.write_only
        self._on_tree = getattr(repo, "remember_tree", None)  # a write-only repository's local record
        remote = is_remote(repo.backend)
        self._max_uploads = MAX_UPLOADS_IN_FLIGHT if remote else MAX_LOCAL_UPLOADS_IN_FLIGHT
        self._pack_target = REMOTE_PACK_TARGET if remote else None
        # At least one item queued per worker beyond those running, whatever REMOTE_WINDOW says.
        self._window = max(REMOTE_WINDOW, pipeline.threads + 2) if remote and REMOTE_WINDOW else None
        self._builder = PackBuilder(repo.key.current, self._sealed_packs, self._pack_target)
        self._uploads: deque[tuple[Future[Handle], fmt.IndexedPack]] = deque()
        self._written: list[fmt.IndexedPack] = []
        self._checkpoints: list[Handle] = []

    # -- runs on worker threads ---------------------------------------------------------------------------
    def _encode(self, item: tuple[int, bytes]) -> tuple[bytes, int, SealedBlob | None]:
        blob_type, data = item
        timer = self.timer
        with timer.stage(Stage.HASH):
            blob_id = self.repo.key.blob_id(data, blob_type)
        with timer.stage(Stage.DEDUP), self._lock:
            if blob_id in self._claimed or self._stored(blob_id):
                return blob_id, len(data), None
            self._claimed.add(blob_id)
        sealed = seal_blob(self._sealer, self.repo.vault_id, blob_type, blob_id, data, self.level, timer=timer)
        return blob_id, len(data), sealed

    def _stored(self, blob_id: bytes) -> bool:
        """Whether this put may refer to the blob without storing it: a write-only key trusts its local record
        (what it stored itself); a full key only a copy a full key sealed. A copy a write-only key sealed is never
        reused by a full key: any write-only key can seal other contents under a known chunk's id, and a full
        key's version must not depend on such a copy (the chunk is in hand: storing it is the cheap proof)."""
        index = self.repo.index
        if self._sealed_packs:
            return blob_id in index
        loc = index.get(blob_id)
        return loc is not None and not loc.entry.flags & fmt.FLAG_SEALED

    def _encode_batch(self, batch: tuple[int, list[bytes]]) -> list[tuple[bytes, int, SealedBlob | None]]:
        blob_type, chunks = batch
        return [self._encode((blob_type, c)) for c in chunks]

    # -- main thread -------------------------------------------------------------------------------------
    def store(
        self, chunks: Iterable[bytes], blob_type: int = fmt.BlobType.DATA
    ) -> Iterator[tuple[bytes, int, int]]:
        """Store chunks in order, deduplicated; yields ``(blob_id, raw_length, bytes_added)`` for each.

        Small chunks travel to the workers in batches: one thread hop per small file costs more (a GIL
        hand-off, up to the 5 ms switch interval) than hashing and compressing it."""
        batches = ((blob_type, batch) for batch in _batched(chunks))
        for results in self.pipeline.ordered(self._encode_batch, batches, max_in_flight=self._window):
            for blob_id, length, sealed in results:
                added = 0
                if sealed is not None:
                    self._add(sealed)
                    added = len(sealed.sealed)
                yield blob_id, length, added

    def store_one(self, data: bytes, blob_type: int) -> bytes:
        blob_id, _, sealed = self._encode((blob_type, data))
        if sealed is not None:
            self._add(sealed)
        if self._on_tree is not None and blob_type == fmt.BlobType.TREE:
            self._on_tree(blob_id, data)
        return blob_id

    def claim(self, blob_id: bytes) -> bool:
        """True when ``blob_id`` is neither indexed nor claimed by this writer yet: it is now claimed, and the
        caller must :meth:`add` it. False: it is stored (or being stored) already. Thread-safe (`copy` seals
        blobs it has not compressed itself on the workers, then adds them in order)."""
        with self._lock:
            if blob_id in self._claimed or blob_id in self.repo.index:
                return False
            self._claimed.add(blob_id)
            return True

    def add(self, blob: SealedBlob) -> None:
        """Add a sealed blob this writer claimed to the current pack (main thread, in order)."""
        self._add(blob)

    def _add(self, blob: SealedBlob) -> None:
        with self.timer.stage(Stage.PACK):
            self._builder.add(blob)
        self.bytes_added += len(blob.sealed)
        self.blobs_added += 1
        if self._builder.full():
            self._flush_pack()

    def _flush_pack(self) -> None:
        builder, self._builder = self._builder, PackBuilder(self.repo.key.current, self._sealed_packs,
                                                            self._pack_target)
        if not builder.entries:
            return
        # Unjoined: a local backend writes the parts with writev, S3 streams them, others join them
        # (storage.base.save_parts).
        with self.timer.stage(Stage.PACK):
            parts = builder.finish_parts(self.repo.key, self.repo.vault_id)
        pack = fmt.IndexedPack(builder.pack_id, builder.generation, builder.entries)
        fut = self.pipeline.io.submit(self._upload, pack, parts)
        self._uploads.append((fut, pack))
        while len(self._uploads) > self._max_uploads:
            self._complete_one()

    def _upload(self, pack: fmt.IndexedPack, parts: list[bytes]) -> Handle:
        """On the I/O pool: store the pack, then at once a one-pack index object for it (a checkpoint), so
        a rerun after a crash finds and reuses its blobs. finish() folds the checkpoints into one object."""
        with self.timer.stage(Stage.UPLOAD):
            save_parts(self.repo.backend, Handle(Kind.DATA, pack.pack_id.hex()), parts)
        with self.timer.stage(Stage.INDEX):
            return self.repo.save_checkpoint(pack)

    def _complete_one(self) -> None:
        fut, pack = self._uploads.popleft()
        with self.timer.stage(Stage.WAIT_UPLOAD):
            checkpoint = fut.result()  # re-raises the upload's StorageError
        self._checkpoints.append(checkpoint)
        self._written.append(pack)

    def finish(self) -> None:
        """Write the last pack, wait for every upload, then make sure the index covers the new packs. Only after
        this returns may a version record refer to the new blobs (design invariant 7)."""
        self._flush_pack()
        while self._uploads:
            self._complete_one()
        if self._checkpoints:
            # Once the merged object is durable the checkpoints say nothing it doesn't. A checkpoint that is
            # still there later was left by a put that died (see adopt_checkpoints).
            with self.timer.stage(Stage.INDEX):
                self.repo.commit_packs(self._written, retire=self._checkpoints)
        self._checkpoints = []
        self._written = []

    def adopt_checkpoints(self) -> int:
        """Take over the checkpoints of puts that died (call only when no other process holds a lock on the
        vault): their packs are folded into this put's merged index, and their checkpoints removed with ours.
        Returns how many packs were adopted; their blobs already dedup this put's chunks."""
        adopted = 0
        for handle, packs in self.repo.index.checkpoints:
            self._checkpoints.append(handle)
            self._written.extend(packs)
            adopted += len(packs)
        return adopted

    def abort(self) -> None:
        """Wait for the uploads in flight so nothing writes after the command ends. Packs already indexed by a
        checkpoint are reused by a rerun; anything else is unreferenced data that `prune` sweeps."""
        for fut, _ in self._uploads:
            fut.cancel()
        for fut, _ in self._uploads:
            with contextlib.suppress(Exception):  # already failing: the first error is reported
                fut.result()
        self._uploads.clear()
