"""Storing scanned sources: read their files into chunks, build their trees, commit one version record each.

Every file's chunks flow through one ordered pipeline (so many small files do not each pay a thread hop), the
trees are built bottom-up once their files are stored, and the commit order is the design's invariant 7:
packs, then index, then one version record per item, last.

A file that can't be read is named through ``on_warning`` and skipped; the caller turns skips into exit 3.
A file that changes while it is read is read again once; if it changes again it is stored as read and reported.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO

from vault import format as fmt
from vault.archive.scan import Dir, File, Read, Scanner, Source, Warn, files_of
from vault.errors import StorageError, UsageError
from vault.excludes import Excluder
from vault.owners import owner_of
from vault.pipeline.chunker import Chunker
from vault.pipeline.runner import Pipeline
from vault.repo import catalog
from vault.repo.repository import Repository
from vault.repo.tree import Node, encode_tree
from vault.repo.writer import BlobWriter

log = logging.getLogger(__name__)

Progress = Callable[[int], None]


@dataclass
class PutResult:
    name: str
    version: int
    type: str
    files: int
    bytes_read: int
    bytes_added: int
    skipped: list[str] = field(default_factory=list)
    size: int = 0  # original bytes of the version (unchanged files count though they were not read)

    def to_json(self) -> dict[str, object]:
        return {
            "size": self.size,
            "name": self.name,
            "version": self.version,
            "type": self.type,
            "files": self.files,
            "bytes_read": self.bytes_read,
            "bytes_added": self.bytes_added,
            "skipped": self.skipped,
        }


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
        self.writer = BlobWriter(repo, pipeline, level)
        self.chunker = Chunker(repo.key.chunker_seed, pipeline.timer)
        self.warn = on_warning or (lambda msg: log.warning("%s", msg))
        self.progress = on_progress
        self.scanner = Scanner(repo, excluder or Excluder([]), self.warn)

    # -- scanning (scan.py) ----------------------------------------------------------------------------------
    def add_path(self, path: str, name: str | None) -> Source:
        """Scan a local path (following it if it is itself a link, as `cp` does). NotFoundError if missing."""
        return self.scanner.add_path(path, name)

    def add_stream(self, stream: IO[bytes], name: str) -> Source:
        """Standard input as a file item: mode 0600 (it may be a dump of anything), modified now."""
        return self.scanner.add_stream(stream, name)

    # -- storing ---------------------------------------------------------------------------------------------
    def _read_file(self, f: File, src: Source) -> Iterator[tuple[Read, Source, bytes]]:
        """Chunks of one file. Errors are reported and the file marked failed, never raised: a put of a tree
        goes on past an unreadable file (restic's ErrorFunc)."""
        for attempt in (1, 2):
            f.read, f.failed = Read(), False
            read_bytes = 0
            try:
                fd = os.open(f.path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0) * (f.path != "-"))
            except OSError as exc:
                f.failed = True
                src.skipped.append(f.display)
                self.warn(f"cannot read {f.display}: {exc.strerror}")
                return
            try:
                with os.fdopen(fd, "rb", buffering=0) as fh:
                    before = os.fstat(fh.fileno())
                    for chunk in self.chunker.chunks(fh, before.st_size):
                        read_bytes += len(chunk)
                        yield f.read, src, chunk
                    after = os.fstat(fh.fileno())
            except OSError as exc:
                f.failed = True
                src.skipped.append(f.display)
                self.warn(f"cannot read {f.display}: {exc.strerror}")
                return
            unchanged = (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns)
            if unchanged and after.st_size == read_bytes:
                f.st = after
                return
            if attempt == 2:
                f.st = after
                src.skipped.append(f.display)
                self.warn(f"{f.display} changed while it was read; stored as read, it may be inconsistent")

    def _chunks(self, sources: list[Source]) -> Iterator[tuple[Read, Source, bytes]]:
        for src in sources:
            if src.stream is not None and src.stream_file is not None:
                try:
                    for chunk in self.chunker.chunks(src.stream):
                        yield src.stream_file.read, src, chunk
                except OSError as exc:
                    raise StorageError(f"cannot read standard input: {exc.strerror}") from None
            for f in files_of(src.root):
                if f.reused is None:
                    yield from self._read_file(f, src)

    def _store_data(self, sources: list[Source]) -> None:
        # Which reading each chunk in flight belongs to, in pipeline order.
        owners: deque[tuple[Read, Source]] = deque()

        def feed() -> Iterator[bytes]:
            for read, src, chunk in self._chunks(sources):
                owners.append((read, src))
                yield chunk

        for blob_id, length, added in self.writer.store(feed()):
            read, src = owners.popleft()
            read.content.append(blob_id)
            read.size += length
            src.bytes_added += added
            src.bytes_read += length
            if self.progress:
                self.progress(length)

    def _node(self, item: Dir | File | Node, name: str) -> Node | None:
        if isinstance(item, Node):
            return item
        if isinstance(item, File):
            if item.failed:
                return None
            st = item.st
            mtime = item.mtime_ns if item.mtime_ns is not None else st.st_mtime_ns
            size, content = (
                (item.reused.size, item.reused.content) if item.reused is not None
                else (item.size, tuple(item.read.content))
            )
            stream = item.mtime_ns is not None  # standard input: no inode or ctime to compare next time
            return Node(name, "file", stat.S_IMODE(st.st_mode), mtime, size, content=content,
                        inode=0 if stream else st.st_ino, ctime_ns=0 if stream else st.st_ctime_ns,
                        **owner_of(st))
        children = []
        for child in item.children:
            child_name = os.path.basename(child.path) if isinstance(child, File) else child.name
            node = self._node(child, child_name)
            if node is not None:
                children.append(node)
        subtree = self.writer.store_one(encode_tree(children), fmt.BlobType.TREE)
        dst = item.st
        if dst is None:
            return Node(name, "dir", 0o755, 0, subtree=subtree)
        return Node(name, "dir", stat.S_IMODE(dst.st_mode), dst.st_mtime_ns, subtree=subtree, **owner_of(dst))

    def bytes_to_read(self, sources: list[Source]) -> int | None:
        """What the data stage will read (unchanged files excluded); None when a stream is involved."""
        if any(src.stream is not None for src in sources):
            return None
        return sum(f.st.st_size for src in sources for f in files_of(src.root) if f.reused is None)

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
        roots: list[tuple[Source, Node, int]] = []
        for src in sources:
            leaf = src.name.rsplit("/", 1)[-1]
            assert src.top is not None
            root = self._node(src.top, leaf)
            if root is None:  # the only file could not be read
                continue
            roots.append((src, root, sum(1 for f in files_of(src.top) if not f.failed)))
        tree_ids = [self.writer.store_one(encode_tree([root]), fmt.BlobType.TREE) for _, root, _ in roots]
        self.writer.finish()  # packs and index durable before any record names them
        if before_commit is not None:
            before_commit()

        existing: dict[str, int] = {}
        for rec in self.repo.records():  # read again: another put may have committed meanwhile
            existing[rec.item] = max(existing.get(rec.item, 0), rec.version)
        results = []
        for (src, root, files), tree_id in zip(roots, tree_ids, strict=True):
            size = _tree_size(src.top)
            record = catalog.VersionRecord(
                record_id=catalog.new_record_id(),
                item=src.name,
                version=existing.get(src.name, 0) + 1,
                created=_now(),
                type=root.type,
                tree=tree_id,
                size=size,
                files=files,
                bytes_added=src.bytes_added,
                host=socket.gethostname(),
            )
            record = self.repo.commit_record(record)
            results.append(
                PutResult(
                    src.name, record.version, root.type, files, src.bytes_read, src.bytes_added, src.skipped, size
                )
            )
        stored = {id(r[0]) for r in roots}
        for src in sources:
            if id(src) not in stored:  # a single file that could not be read: nothing committed for it
                results.append(PutResult(src.name, 0, "file", 0, 0, 0, src.skipped))
        return results


def _tree_size(node: Dir | File | Node | None) -> int:
    if isinstance(node, File):
        if node.reused is not None:
            return node.reused.size
        return 0 if node.failed else node.size
    if isinstance(node, Dir):
        return sum(_tree_size(c) for c in node.children)
    return 0
