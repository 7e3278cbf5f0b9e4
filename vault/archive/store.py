"""Storing what a put was given: read its files into chunks, build its trees directory by directory as their files
are stored, and commit one version record per item.

Every file's chunks flow through one ordered pipeline (so many small files do not each pay a thread hop). The
directories are walked depth first (vault.archive.scan) as the pipeline asks for more chunks; a directory's tree
is written as soon as its last file is stored, and the directory is then let go, so memory is bounded by the
chunks in flight and the directories on the current path, never by the size of the tree. The commit order is
the design's invariant 7: packs, then index, then one version record per item, last.

Small files are read ahead on the I/O pool (a window of READ_AHEAD_FILES files, READ_AHEAD_BYTES at most): the
main thread then only hands their bytes on, instead of paying an open, a read and a close per file itself.

A file that can't be read is named through ``on_warning`` and skipped; the caller turns skips into exit 3.
A file that changes while it is read is read again once; if it changes again it is stored as read and reported.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import stat
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import IO

from vault import format as fmt
from vault.archive.result import PutResult
from vault.archive.scan import DirEntry, FileEntry, Scanner, Source, Warn, dir_node, file_node, total_size
from vault.errors import StorageError, UsageError
from vault.excludes import Excluder
from vault.pipeline.chunker import Chunker
from vault.pipeline.runner import Pipeline
from vault.repo import catalog
from vault.repo.repository import Repository
from vault.repo.tree import Node, encode_tree
from vault.repo.writer import BlobWriter

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
READ_AHEAD_FILES = 32
READ_AHEAD_BYTES = 8 << 20
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Dir:
    """A directory being stored: its nodes so far (a slot per entry, filled as each is stored) and how many of
    them are still being stored. Its tree is written once it is ``closed`` (every entry handed out) and nothing
    is pending."""

    __slots__ = ("closed", "entry", "nodes", "parent", "pending", "slot", "src")

    def __init__(self, entry: DirEntry, parent: _Dir | None, slot: int, src: Source) -> None:
        self.entry = entry
        self.parent = parent
        self.slot = slot
        self.src = src
        self.nodes: list[Node | None] = []
        self.pending = 0
        self.closed = False


class _Read:
    """One reading of a file. Results of the pipeline land here, behind the reader, so a second reading (the
    file changed) never mixes with the first."""

    __slots__ = ("content", "size")

    def __init__(self) -> None:
        self.content: list[bytes] = []
        self.size = 0


class _File:
    """A file being read. ``ahead`` holds its read-ahead (small files), done on the I/O pool."""

    __slots__ = ("ahead", "entry", "failed", "parent", "read", "slot", "src")

    def __init__(self, entry: FileEntry, parent: _Dir | None, slot: int, src: Source) -> None:
        self.entry = entry
        self.parent = parent
        self.slot = slot
        self.src = src
        self.read = _Read()
        self.failed = False
        self.ahead: Future[tuple[bytes, os.stat_result, os.stat_result]] | None = None


class Putter:
    def __init__(
        self,
        repo: Repository,
        pipeline: Pipeline,
        *,
        level: int = 3,
        excluder: Excluder | None = None,
        on_warning: Warn | None = None,
        on_progress: Progress | None = None,
    ) -> None:
        if not 0 <= level <= 22:
            raise UsageError("--compression must be between 0 (off) and 22")
        self.repo = repo
        self.pipeline = pipeline
        self.writer = BlobWriter(repo, pipeline, level)
        self.chunker = Chunker(repo.key.chunker_seed, pipeline.timer)
        self.warn = on_warning or (lambda msg: log.warning("%s", msg))
        self.progress = on_progress
        self.scanner = Scanner(repo, excluder or Excluder([]), self.warn)
        # Chunks in flight (their file's current reading) and files whose last chunk was handed out, in order.
        self._owners: deque[tuple[_Read, _File] | _File] = deque()

    # -- what to store ---------------------------------------------------------------------------------------
    def add_path(self, path: str, name: str | None) -> Source:
        """A local path to store (following it if it is itself a link, as `cp` does). NotFoundError if missing."""
        return self.scanner.add_path(path, name)

    def add_stream(self, stream: IO[bytes], name: str) -> Source:
        """Standard input as a file item: mode 0600 (it may be a dump of anything), modified now."""
        return self.scanner.add_stream(stream, name)

    def bytes_to_read(self, sources: list[Source]) -> int | None:
        """The bytes a put of ``sources`` goes through (for a progress bar: one stat walk); None with a stream."""
        if any(src.stream is not None for src in sources):
            return None
        return total_size([src.path for src in sources if src.path is not None])

    # -- the walk: hands out files to read, writes each directory's tree when it is complete -----------------
    def _jobs(self, sources: list[Source]) -> Iterator[_File]:
        for src in sources:
            if src.stream is not None:
                yield _File(self.scanner.stream_file(src), None, 0, src)
            elif src.st is not None and not stat.S_ISDIR(src.st.st_mode):
                f = _File(self.scanner.root_file(src), None, 0, src)
                if f.entry.reused is not None:
                    self._reused(f)
                else:
                    yield f
            else:
                yield from self._walk(src)

    def _walk(self, src: Source) -> Iterator[_File]:
        root = _Dir(self.scanner.root_dir(src), None, 0, src)
        stack = [(root, iter(self.scanner.entries(root.entry, src)))]
        while stack:
            d, entries = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                d.closed = True
                self._finish_dirs(d)
                continue
            slot = len(d.nodes)
            d.nodes.append(None)
            if isinstance(entry, Node):  # a link
                d.nodes[slot] = entry
            elif isinstance(entry, DirEntry):
                d.pending += 1
                sub = _Dir(entry, d, slot, src)
                stack.append((sub, iter(self.scanner.entries(entry, src))))
            else:
                d.pending += 1
                f = _File(entry, d, slot, src)
                if entry.reused is not None:
                    self._reused(f)
                else:
                    yield f

    def _reused(self, f: _File) -> None:
        """An unchanged file: its stored chunks are reused unread."""
        old = f.entry.reused
        assert old is not None
        if self.progress:
            self.progress(old.size)
        self._stored(f, file_node(f.entry, old.size, old.content))

    def _stored(self, f: _File, node: Node | None) -> None:
        """A file is stored (``node``) or failed (None): fill its slot, and write every directory that became
        complete (iteratively up the path, however deep)."""
        src = f.src
        if node is not None:
            src.files += 1
            src.size += node.size
        if f.parent is None:
            src.root = node
            return
        f.parent.nodes[f.slot] = node
        f.parent.pending -= 1
        self._finish_dirs(f.parent)

    def _finish_dirs(self, d: _Dir | None) -> None:
        while d is not None and d.closed and d.pending == 0:
            children = [n for n in d.nodes if n is not None]
            subtree = self.writer.store_one(encode_tree(children), fmt.BlobType.TREE)
            node = dir_node(d.entry.name, d.entry.st, subtree)
            d.nodes = []
            if d.parent is None:
                d.src.root = node
                return
            d.parent.nodes[d.slot] = node
            d.parent.pending -= 1
            d = d.parent

    # -- reading ---------------------------------------------------------------------------------------------
    def _chunks(self, sources: list[Source]) -> Iterator[bytes]:
        """Every chunk to store, in order; files are read ahead on the I/O pool when small."""
        window: deque[_File] = deque()
        ahead_bytes = 0
        jobs = self._jobs(sources)
        more = True
        while more or window:
            while more and len(window) < READ_AHEAD_FILES and ahead_bytes < READ_AHEAD_BYTES:
                f = next(jobs, None)
                if f is None:
                    more = False
                    break
                if f.entry.stream is None and f.entry.st.st_size < fmt.CHUNK_MIN:
                    f.ahead = self.pipeline.io.submit(_slurp, f.entry.path)
                    ahead_bytes += f.entry.st.st_size
                window.append(f)
                if f.ahead is None:
                    break  # a big file is read in place: no need to look past it yet
            if not window:
                continue
            f = window.popleft()
            if f.ahead is not None:
                ahead_bytes -= f.entry.st.st_size
            yield from self._read(f)
            self._owners.append(f)  # its last chunk is out: once that is stored, so is the file

    def _read(self, f: _File) -> Iterator[bytes]:
        """Chunks of one file. Errors are reported and the file marked failed, never raised: a put of a tree
        goes on past an unreadable file (restic's ErrorFunc)."""
        e = f.entry
        if e.stream is not None:
            try:
                for chunk in self.chunker.chunks(e.stream):
                    self._owners.append((f.read, f))
                    yield chunk
            except OSError as exc:
                raise StorageError(f"cannot read standard input: {exc.strerror}") from None
            return
        if f.ahead is not None:
            try:
                data, before, after = f.ahead.result()
            except OSError as exc:
                self._failed(f, f"cannot read {e.display}: {exc.strerror}")
                return
            if _steady(before, after) and len(data) == after.st_size < fmt.CHUNK_MIN:
                e.st = after
                if data:
                    self._owners.append((f.read, f))
                    yield data
                return
            # It changed while it was read, or grew past one chunk: read it in place.
        for attempt in (1, 2):
            f.read, f.failed = _Read(), False
            read_bytes = 0
            try:
                fd = os.open(e.path, os.O_RDONLY | os.O_CLOEXEC | _NOFOLLOW)
            except OSError as exc:
                self._failed(f, f"cannot read {e.display}: {exc.strerror}")
                return
            try:
                with os.fdopen(fd, "rb", buffering=0) as fh:
                    before = os.fstat(fh.fileno())
                    for chunk in self.chunker.chunks(fh, before.st_size):
                        read_bytes += len(chunk)
                        self._owners.append((f.read, f))
                        yield chunk
                    after = os.fstat(fh.fileno())
            except OSError as exc:
                self._failed(f, f"cannot read {e.display}: {exc.strerror}")
                return
            if _steady(before, after) and after.st_size == read_bytes:
                e.st = after
                return
            if attempt == 2:
                e.st = after
                f.src.skipped.append(e.display)
                self.warn(f"{e.display} changed while it was read; stored as read, it may be inconsistent")

    def _failed(self, f: _File, message: str) -> None:
        f.failed = True
        f.src.skipped.append(f.entry.display)
        self.warn(message)

    def _store_data(self, sources: list[Source]) -> None:
        owners = self._owners
        for blob_id, length, added in self.writer.store(self._chunks(sources)):
            self._settle(owners)
            read, f = owners.popleft()  # type: ignore[misc]
            read.content.append(blob_id)
            read.size += length
            f.src.bytes_added += added
            f.src.bytes_read += length
            if self.progress:
                self.progress(length)
        self._settle(owners)

    def _settle(self, owners: deque[tuple[_Read, _File] | _File]) -> None:
        """Files at the head of the queue have all their chunks stored: they are done."""
        while owners and isinstance(owners[0], _File):
            f = owners.popleft()
            assert isinstance(f, _File)
            self._stored(f, None if f.failed else file_node(f.entry, f.read.size, tuple(f.read.content)))

    # -- committing ------------------------------------------------------------------------------------------
    def commit(
        self, sources: list[Source], before_commit: Callable[[], None] | None = None
    ) -> list[PutResult]:
        """Store everything, then write one version record per source. Returns what was stored.

        ``before_commit`` runs once the data is durable and before any record is written: raising there
        commits nothing (used to check the exit status of --stdin-from-command)."""
        if not sources:
            return []
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise UsageError("two paths of one put would be stored under the same item name; use separate puts")
        self._store_data(sources)
        stored = [src for src in sources if src.root is not None]
        tree_ids = [self.writer.store_one(encode_tree([_named(src)]), fmt.BlobType.TREE) for src in stored]
        self.writer.finish()  # packs and index durable before any record names them
        if before_commit is not None:
            before_commit()

        self.repo.refresh_catalog()  # once for all items: another put may have committed meanwhile
        records = []
        for src, tree_id in zip(stored, tree_ids, strict=True):
            assert src.root is not None
            records.append(catalog.VersionRecord(
                record_id=catalog.new_record_id(),
                item=src.name,
                version=self.repo.catalog.max_version(src.name) + 1,
                created=_now(),
                type=src.root.type,
                tree=tree_id,
                size=src.size,
                files=src.files,
                bytes_added=src.bytes_added,
                host=socket.gethostname(),
            ))
        committed = {r.item: r for r in self.repo.commit_records(records)}
        results = []
        for src in sources:
            record = committed.get(src.name)
            if record is None:  # a single file that could not be read: nothing committed for it
                results.append(PutResult(src.name, 0, "file", 0, 0, 0, src.skipped))
                continue
            results.append(PutResult(src.name, record.version, record.type, src.files, src.bytes_read,
                                     src.bytes_added, src.skipped, src.size, numbered=record.version > 0))
        return results


def _named(src: Source) -> Node:
    """The item's root node, named after the item's last segment."""
    root = src.root
    assert root is not None
    leaf = src.name.rsplit("/", 1)[-1]
    return root if root.name == leaf else dataclasses.replace(root, name=leaf)


def _steady(before: os.stat_result, after: os.stat_result) -> bool:
    return (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns)


def _slurp(path: str) -> tuple[bytes, os.stat_result, os.stat_result]:
    """I/O pool: a small file whole, with its stat before and after (to see whether it changed meanwhile)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | _NOFOLLOW)
    try:
        before = os.fstat(fd)
        parts = []
        got = 0
        while got <= fmt.CHUNK_MIN:
            part = os.read(fd, fmt.CHUNK_MIN + 1 - got)
            if not part:
                break
            parts.append(part)
            got += len(part)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    return b"".join(parts), before, after
