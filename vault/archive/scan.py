"""Scanning what a put stores: stat, excludes, and which files are unchanged since the previous version.

An unchanged file (same size, mtime, inode and ctime, all its chunks still indexed) is stored by reusing its
chunks unread. A file, directory or link that can't be read is named through ``warn`` and skipped.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO

from vault.errors import NotFoundError, StorageError, UsageError, VaultError
from vault.excludes import Excluder
from vault.names import check_name
from vault.owners import owner_of
from vault.repo import catalog
from vault.repo.repository import Repository
from vault.repo.tree import Node

log = logging.getLogger(__name__)

Warn = Callable[[str], None]


@dataclass
class Read:
    """One reading of a file. Results of the pipeline land here, behind the reader, so a second reading
    (the file changed) never mixes with the first."""

    content: list[bytes] = field(default_factory=list)
    size: int = 0


@dataclass
class File:
    """A regular file to read; filled in as its chunks are stored."""

    path: str
    display: str
    st: os.stat_result
    read: Read = field(default_factory=Read)
    failed: bool = False
    mtime_ns: int | None = None  # overrides st (standard input has no stat of its own)
    reused: Node | None = None  # unchanged since the previous version: its chunks are reused unread

    @property
    def size(self) -> int:
        return self.read.size


@dataclass
class Dir:
    name: str
    st: os.stat_result | None
    children: list[Dir | File | Node] = field(default_factory=list)


@dataclass
class Source:
    """One item to store: its name and what it is made of."""

    name: str
    root: Dir | File | None = None  # None: the stream
    stream: IO[bytes] | None = None
    stream_file: File | None = None
    skipped: list[str] = field(default_factory=list)
    bytes_added: int = 0
    bytes_read: int = 0

    @property
    def top(self) -> Dir | File | None:
        return self.stream_file if self.stream is not None else self.root


def files_of(node: Dir | File | Node | None) -> Iterator[File]:
    """The regular files of a scanned tree, in order."""
    if isinstance(node, File):
        yield node
    elif isinstance(node, Dir):
        for child in node.children:
            yield from files_of(child)


class Scanner:
    def __init__(self, repo: Repository, excluder: Excluder, warn: Warn) -> None:
        self.repo = repo
        self.excluder = excluder
        self.warn = warn
        self._records: list[catalog.VersionRecord] | None = None

    def _parent_nodes(self, tree_id: bytes | None) -> dict[str, Node]:
        """The previous version's entries of one directory; empty when there is none or it can't be read
        (then every file is simply read again)."""
        if tree_id is None:
            return {}
        try:
            return {n.name: n for n in self.repo.load_tree(tree_id)}
        except VaultError as exc:
            log.info("not using the previous version of a directory: %s", exc)
            return {}

    def _unchanged(self, st: os.stat_result, old: Node | None) -> Node | None:
        """``old`` when the file looks untouched since it was stored and all its chunks are still indexed."""
        if (
            old is None
            or old.type != "file"
            or (old.size, old.mtime_ns, old.inode, old.ctime_ns)
            != (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
            or not all(c in self.repo.index for c in old.content)
        ):
            return None
        return old

    def _scan_dir(
        self, path: str, display: str, rel: str, src: Source, st: os.stat_result | None, parent: bytes | None
    ) -> Dir:
        node = Dir(os.path.basename(path.rstrip("/")) or path, st)
        previous = self._parent_nodes(parent)
        try:
            with os.scandir(path) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            src.skipped.append(display)
            self.warn(f"cannot read directory {display}: {exc.strerror}")
            return node
        for entry in entries:
            child_rel = f"{rel}/{entry.name}" if rel else entry.name
            child_display = os.path.join(display, entry.name)
            try:
                est = entry.stat(follow_symlinks=False)
            except OSError as exc:
                src.skipped.append(child_display)
                self.warn(f"cannot stat {child_display}: {exc.strerror}")
                continue
            is_dir = stat.S_ISDIR(est.st_mode)
            if self.excluder and self.excluder.excluded(child_rel, is_dir):
                continue
            old = previous.get(entry.name)
            if is_dir:
                old_tree = old.subtree if old is not None and old.type == "dir" else None
                sub = self._scan_dir(entry.path, child_display, child_rel, src, est, old_tree)
                sub.name = entry.name
                node.children.append(sub)
            elif stat.S_ISREG(est.st_mode):
                node.children.append(File(entry.path, child_display, est, reused=self._unchanged(est, old)))
            elif stat.S_ISLNK(est.st_mode):
                try:
                    target = os.readlink(entry.path)
                except OSError as exc:
                    src.skipped.append(child_display)
                    self.warn(f"cannot read link {child_display}: {exc.strerror}")
                    continue
                node.children.append(
                    Node(entry.name, "link", stat.S_IMODE(est.st_mode), est.st_mtime_ns, target=target,
                         **owner_of(est))
                )
            else:
                self.warn(f"skipping {child_display}: not a regular file, directory or link")
        return node

    def _previous_root(self, item: str) -> Node | None:
        """The root node of the item's latest undamaged version: the parent an incremental put compares with."""
        if self._records is None:
            self._records = self.repo.records()
        candidates = [r for r in self._records if r.item == item and not r.damaged]
        if not candidates:
            return None
        try:
            return self.repo.root_node(candidates[-1])
        except VaultError as exc:
            log.info("not using the previous version of %s: %s", item, exc)
            return None

    def add_path(self, path: str, name: str | None) -> Source:
        """Scan a local path (following it if it is itself a link, as `cp` does). NotFoundError if missing."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise NotFoundError(f"{path} does not exist") from None
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror}") from None
        item = check_name(name if name is not None else os.path.basename(os.path.normpath(path)))
        src = Source(item)
        parent = self._previous_root(item)
        if stat.S_ISDIR(st.st_mode):
            old_tree = parent.subtree if parent is not None and parent.type == "dir" else None
            src.root = self._scan_dir(path, path, "", src, st, old_tree)
        elif stat.S_ISREG(st.st_mode):
            src.root = File(path, path, st, reused=self._unchanged(st, parent))
        else:
            raise UsageError(f"{path} is not a regular file or a directory")
        return src

    def add_stream(self, stream: IO[bytes], name: str) -> Source:
        """Standard input as a file item: mode 0600 (it may be a dump of anything), modified now, owned by the
        user running the put (as restic stores it)."""
        now_ns = time.time_ns()
        st = os.stat_result((0o100600, 0, 0, 1, os.getuid(), os.getgid(), 0, now_ns // 10**9, now_ns // 10**9,
                             now_ns // 10**9))
        src = Source(check_name(name), stream=stream)
        src.stream_file = File("-", "<stdin>", st, mtime_ns=now_ns)
        return src
