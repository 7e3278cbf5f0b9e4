"""Restoring one stored node: a file (to standard output or to its destination), a link, or a directory tree.

A single file is written beside its destination (files.py), fsynced, and renamed into place; a directory is
handed to directory.py, which writes its files in batches.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from vault.errors import IntegrityError, StorageError, UsageError
from vault.pipeline.runner import Pipeline
from vault.repo.catalog import VersionRecord
from vault.repo.repository import Repository
from vault.repo.tree import Node
from vault.restore.directory import restore_tree
from vault.restore.files import DIR_FLAGS, close_chunks, os_call, write_link, write_temp

Progress = Callable[[int], None]


@dataclass
class GetResult:
    name: str
    version: int
    destination: str
    files: int = 0
    bytes_written: int = 0
    failed: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "destination": self.destination,
            "files": self.files,
            "bytes": self.bytes_written,
            "failed": self.failed,
        }


class RestoreFailed(IntegrityError):
    """Some paths of a directory restore failed; ``result`` says what was restored and what was not."""

    def __init__(self, result: GetResult, message: str) -> None:
        super().__init__(message)
        self.result = result


class Restorer:
    def __init__(self, repo: Repository, pipeline: Pipeline, on_progress: Progress | None = None) -> None:
        self.repo = repo
        self.pipeline = pipeline
        self.progress = on_progress
        # Fetch, open and decompress are stages of the pipeline's timer (so are write, fsync and syncfs).
        self.load_blob: Callable[[bytes], bytes] = lambda blob_id: repo.load_blob(blob_id, timer=pipeline.timer)

    # -- file contents ---------------------------------------------------------------------------------------
    def chunks(self, node: Node) -> Iterator[bytes]:
        """The file's plaintext, chunk by chunk, each authenticated before it is yielded (decoded on the CPU
        pool, in order). The total length is checked against the tree at the end (IntegrityError)."""
        return self.checked(node, self.pipeline.ordered(self.load_blob, node.content))

    def checked(self, node: Node, decoded: Iterable[bytes]) -> Iterator[bytes]:
        """``decoded`` (the file's authenticated chunks) passed on, its length held to the tree's, progress
        reported."""
        total = 0
        try:
            for data in decoded:
                total += len(data)
                if total > node.size:
                    raise IntegrityError(f"{node.name!r} is longer than its tree says; the vault may be damaged")
                if self.progress:
                    self.progress(len(data))
                yield data
        finally:
            close_chunks(decoded)
        if total != node.size:
            raise IntegrityError(f"{node.name!r} is shorter than its tree says; the vault may be damaged")

    def to_stream(self, node: Node, out: BinaryIO) -> int:
        if node.type != "file":
            raise UsageError("only a file can be written to standard output (-o -)")
        n = 0
        for data in self.chunks(node):
            out.write(data)
            n += len(data)
        out.flush()
        return n

    def _write_file(self, dir_fd: int, node: Node, force: bool) -> int:
        """Write one file beside its destination, fsync it, then rename it into place (a single-file restore)."""
        tmp, n = write_temp(dir_fd, node, force, self.chunks(node), fsync=True, timer=self.pipeline.timer)
        try:
            os_call(lambda: os.rename(tmp, node.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd),
                    f"cannot move {node.name} into place")
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
        return n

    # -- any node --------------------------------------------------------------------------------------------
    def restore(self, record: VersionRecord, node: Node, dest: str, force: bool) -> GetResult:
        """Restore ``node`` (file, dir or link) at path ``dest``. Raises ConflictError, StorageError; for a
        directory, IntegrityError after restoring everything else, naming what failed."""
        parent, leaf = os.path.split(os.path.abspath(dest))
        result = GetResult(record.item, record.version, dest)
        try:
            parent_fd = os.open(parent, DIR_FLAGS & ~os.O_NOFOLLOW)
        except OSError as exc:
            raise StorageError(f"cannot write to {parent}: {exc.strerror}") from None
        try:
            if node.type == "file":
                result.bytes_written = self._write_file(parent_fd, _renamed(node, leaf), force)
                result.files = 1
            elif node.type == "link":
                write_link(parent_fd, _renamed(node, leaf), force)
            else:
                restore_tree(self, parent_fd, leaf, node, force, result)
            with contextlib.suppress(OSError):
                os.fsync(parent_fd)
        except OSError as exc:
            raise StorageError(f"cannot write {dest}: {exc.strerror}") from None
        finally:
            os.close(parent_fd)
        if result.failed:
            shown = ", ".join(result.failed[:5]) + (" ..." if len(result.failed) > 5 else "")
            raise RestoreFailed(result, f"{len(result.failed)} path(s) were not restored: {shown}")
        return result


def _renamed(node: Node, name: str) -> Node:
    return Node(name, node.type, node.mode, node.mtime_ns, node.size, node.content, node.subtree, node.target)
