"""Restoring one stored node: a file (to standard output or to its destination), a link, or a directory tree.

A single file is written beside its destination (files.py), fsynced, and put into place; a directory is
handed to directory.py, which writes its files in batches. Owners and modes follow ownership.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from vault.errors import IntegrityError, PartialError, StorageError, UsageError
from vault.pipeline.runner import Pipeline
from vault.repo.bounds import TreeBudget
from vault.repo.catalog import VersionRecord
from vault.repo.repository import Repository
from vault.repo.tree import Node
from vault.restore.directory import restore_tree
from vault.restore.files import DIR_FLAGS, close_chunks, os_call, place, write_link, write_temp
from vault.restore.ownership import Ownership

Progress = Callable[[int], None]


@dataclass
class GetResult:
    name: str
    version: int
    destination: str
    files: int = 0
    bytes_written: int = 0
    failed: list[str] = field(default_factory=list)  # damaged or in conflict (exit 20)
    skipped: list[str] = field(default_factory=list)  # names this file system can't hold (exit 3)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "destination": self.destination,
            "files": self.files,
            "bytes": self.bytes_written,
            "failed": self.failed,
            "skipped": self.skipped,
        }


class RestoreFailed(IntegrityError):
    """Some paths of a directory restore failed; ``result`` says what was restored and what was not."""

    def __init__(self, result: GetResult, message: str) -> None:
        super().__init__(message)
        self.result = result


class RestoreSkipped(PartialError):
    """Everything was restored but some paths whose names the destination's file system can't hold (longer
    than it allows); ``result`` names them. Exit 3, like a put that skipped files."""

    def __init__(self, result: GetResult, message: str) -> None:
        super().__init__(message)
        self.result = result


class Restorer:
    def __init__(self, repo: Repository, pipeline: Pipeline, on_progress: Progress | None = None, *,
                 numeric_owner: bool = False) -> None:
        self.repo = repo
        self.pipeline = pipeline
        self.progress = on_progress
        # Owners and modes of what is restored (ownership.py); numeric_owner: ids only, no name lookups.
        self.ownership = Ownership.for_this_process(numeric_owner)
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
        """Write one file beside its destination, fsync it, then put it into place (a single-file restore)."""
        temp = write_temp(dir_fd, node, force, self.chunks(node), fsync=True, ownership=self.ownership,
                          timer=self.pipeline.timer)
        os_call(lambda: place(dir_fd, temp, node.name, force), f"cannot move {node.name} into place")
        return temp.size

    # -- any node --------------------------------------------------------------------------------------------
    def restore(self, record: VersionRecord, node: Node, dest: str, force: bool) -> GetResult:
        """Restore ``node`` (file, dir or link) of ``record`` at path ``dest``. Raises ConflictError,
        StorageError; for a directory, after restoring everything else: RestoreFailed (IntegrityError) naming
        what failed, else RestoreSkipped (PartialError) naming names too long for the file system; and
        IntegrityError for a tree that contains itself or expands beyond what ``record`` states."""
        parent, leaf = os.path.split(os.path.abspath(dest))
        result = GetResult(record.item, record.version, dest)
        try:
            parent_fd = os.open(parent, DIR_FLAGS & ~os.O_NOFOLLOW)
        except OSError as exc:
            raise StorageError(f"cannot write to {parent}: {exc.strerror}") from None
        try:
            if node.type == "file":
                TreeBudget(record).entry(node)  # a file larger than its whole version says it is: forged
                result.bytes_written = self._write_file(parent_fd, _renamed(node, leaf), force)
                result.files = 1
            elif node.type == "link":
                write_link(parent_fd, _renamed(node, leaf), force, self.ownership)
            else:
                restore_tree(self, record, parent_fd, leaf, node, force, result)
            with contextlib.suppress(OSError):
                os.fsync(parent_fd)
        except OSError as exc:
            raise StorageError(f"cannot write {dest}: {exc.strerror}") from None
        finally:
            os.close(parent_fd)
            self.ownership.report()
        if result.failed:
            shown = ", ".join(result.failed[:5]) + (" ..." if len(result.failed) > 5 else "")
            raise RestoreFailed(result, f"{len(result.failed)} path(s) were not restored: {shown}")
        if result.skipped:
            shown = ", ".join(result.skipped[:5]) + (" ..." if len(result.skipped) > 5 else "")
            raise RestoreSkipped(
                result, f"{len(result.skipped)} path(s) were not restored, their names being longer than the "
                        f"file system allows (named above): {shown}")
        return result


def _renamed(node: Node, name: str) -> Node:
    return dataclasses.replace(node, name=name)
