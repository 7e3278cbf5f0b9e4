"""Scanning what a put stores, one directory at a time: its entries, excludes, and which files are unchanged since
the previous version.

Nothing here holds a whole tree: :class:`Walk` lists one directory, decides for each entry what it is, and hands
back the work in depth-first order (vault.archive.store assembles the trees bottom-up as the files are stored and
lets each directory go once its tree is written). It walks with an explicit stack, so no depth of directories
exhausts Python's. The previous version is read the same way, one directory's tree at a time.

An unchanged file (same size, mtime, inode and ctime, all its chunks still indexed) is stored by reusing its
chunks unread. A file, directory or link that can't be read is named through ``warn`` and skipped.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from vault.errors import NotFoundError, StorageError, UsageError, VaultError
from vault.excludes import Excluder
from vault.names import check_name
from vault.owners import Owner, owner_of
from vault.repo.repository import Repository
from vault.repo.tree import Node

log = logging.getLogger(__name__)

Warn = Callable[[str], None]


@dataclass
class Source:
    """One item to store: its name, where it comes from, and what storing it added up to."""

    name: str
    path: str | None = None  # a file or a directory; None for a stream
    st: os.stat_result | None = None
    stream: IO[bytes] | None = None
    previous: Node | None = None  # the root of the item's latest undamaged version (incremental puts)
    skipped: list[str] = field(default_factory=list)
    bytes_added: int = 0
    bytes_read: int = 0
    files: int = 0
    size: int = 0
    root: Node | None = None  # set once stored


@dataclass
class FileEntry:
    """A regular file to store: read it, or reuse ``reused``'s chunks unread."""

    path: str
    name: str
    display: str
    st: os.stat_result
    reused: Node | None = None
    stream: IO[bytes] | None = None  # standard input
    mtime_ns: int | None = None  # overrides st (standard input has no stat of its own)
    owner: Owner | None = None  # overrides st's (a tar member names its own)


@dataclass
class DirEntry:
    """A directory to descend into."""

    path: str
    name: str
    display: str
    rel: str
    st: os.stat_result | None
    previous: bytes | None  # the tree id of the same directory in the previous version


Entry = FileEntry | DirEntry | Node  # a Node: a link, stored as it is


def link_node(name: str, st: os.stat_result, target: str) -> Node:
    return Node(name, "link", stat.S_IMODE(st.st_mode), st.st_mtime_ns, target=target, **owner_of(st))


class Scanner:
    """Lists directories and decides what each entry is. One per put."""

    def __init__(self, repo: Repository, excluder: Excluder, warn: Warn) -> None:
        self.repo = repo
        self.excluder = excluder
        self.warn = warn

    # -- sources ---------------------------------------------------------------------------------------------
    def add_path(self, path: str, name: str | None) -> Source:
        """A local path to store (following it if it is itself a link, as `cp` does). NotFoundError if it is
        missing, UsageError if it is neither a regular file nor a directory."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise NotFoundError(f"{path} does not exist") from None
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror}") from None
        if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
            raise UsageError(f"{path} is not a regular file or a directory")
        item = check_name(name if name is not None else os.path.basename(os.path.normpath(path)))
        return Source(item, path=path, st=st, previous=self._previous_root(item))

    def add_stream(self, stream: IO[bytes], name: str) -> Source:
        """A stream (standard input) as a file item."""
        return Source(check_name(name), stream=stream)

    def stream_file(self, src: Source) -> FileEntry:
        """The file a stream becomes: mode 0600 (it may be a dump of anything), modified now, owned by the user
        running the put (as restic stores it)."""
        assert src.stream is not None
        now_ns = time.time_ns()
        st = os.stat_result((0o100600, 0, 0, 1, os.getuid(), os.getgid(), 0, now_ns // 10**9, now_ns // 10**9,
                             now_ns // 10**9))
        return FileEntry("-", src.name.rsplit("/", 1)[-1], "<stdin>", st, stream=src.stream, mtime_ns=now_ns)

    def root_file(self, src: Source) -> FileEntry:
        assert src.path is not None and src.st is not None
        leaf = src.name.rsplit("/", 1)[-1]
        entry = FileEntry(src.path, leaf, src.path, src.st)
        entry.reused = self._unchanged_files([(entry, src.previous)]).get(id(entry))
        return entry

    def root_dir(self, src: Source) -> DirEntry:
        assert src.path is not None
        old = src.previous
        previous = old.subtree if old is not None and old.type == "dir" else None
        return DirEntry(src.path, src.name.rsplit("/", 1)[-1], src.path, "", src.st, previous)

    def _previous_root(self, item: str) -> Node | None:
        """The root node of the item's latest undamaged version: the parent an incremental put compares with."""
        latest = self.repo.catalog.latest(item, undamaged=True)
        if latest is None:
            return None
        try:
            return self.repo.root_node(latest)
        except VaultError as exc:
            log.info("not using the previous version of %s: %s", item, exc)
            return None

    # -- one directory ---------------------------------------------------------------------------------------
    def entries(self, d: DirEntry, src: Source) -> list[Entry]:
        """The entries of one directory, sorted by name: files (with unchanged ones marked), sub-directories
        and links. An entry that can't be read is reported and left out; so is the whole directory if it can't
        be listed."""
        previous = self._previous_nodes(d.previous)
        try:
            with os.scandir(d.path) as it:
                listed = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            src.skipped.append(d.display)
            self.warn(f"cannot read directory {d.display}: {exc.strerror}")
            return []
        out: list[Entry] = []
        candidates: list[tuple[FileEntry, Node | None]] = []
        for entry in listed:
            rel = f"{d.rel}/{entry.name}" if d.rel else entry.name
            display = os.path.join(d.display, entry.name)
            try:
                est = entry.stat(follow_symlinks=False)
            except OSError as exc:
                src.skipped.append(display)
                self.warn(f"cannot stat {display}: {exc.strerror}")
                continue
            is_dir = stat.S_ISDIR(est.st_mode)
            if self.excluder and self.excluder.excluded(rel, is_dir):
                continue
            old = previous.get(entry.name)
            if is_dir:
                old_tree = old.subtree if old is not None and old.type == "dir" else None
                out.append(DirEntry(entry.path, entry.name, display, rel, est, old_tree))
            elif stat.S_ISREG(est.st_mode):
                f = FileEntry(entry.path, entry.name, display, est)
                candidates.append((f, old))
                out.append(f)
            elif stat.S_ISLNK(est.st_mode):
                try:
                    target = os.readlink(entry.path)
                except OSError as exc:
                    src.skipped.append(display)
                    self.warn(f"cannot read link {display}: {exc.strerror}")
                    continue
                out.append(link_node(entry.name, est, target))
            else:
                self.warn(f"skipping {display}: not a regular file, directory or link")
        unchanged = self._unchanged_files(candidates)
        for f, _ in candidates:
            f.reused = unchanged.get(id(f))
        return out

    def _previous_nodes(self, tree_id: bytes | None) -> dict[str, Node]:
        """The previous version's entries of one directory; empty when there is none or it can't be read
        (then every file is simply read again)."""
        if tree_id is None:
            return {}
        try:
            return {n.name: n for n in self.repo.load_tree(tree_id)}
        except VaultError as exc:
            log.info("not using the previous version of a directory: %s", exc)
            return {}

    def _unchanged_files(self, candidates: list[tuple[FileEntry, Node | None]]) -> dict[int, Node]:
        """Of these files, those that look untouched since they were stored (size, mtime, inode and ctime as
        restic's parent-snapshot rule) and whose chunks are all still indexed (one batched query per
        directory): id(entry) → the stored node whose chunks it reuses."""
        looks_same = {
            id(f): old for f, old in candidates
            if old is not None and old.type == "file"
            and (old.size, old.mtime_ns, old.inode, old.ctime_ns)
            == (f.st.st_size, f.st.st_mtime_ns, f.st.st_ino, f.st.st_ctime_ns)
        }
        if not looks_same:
            return {}
        # A full key reuses only chunks a full key stored (vault.repo.writer.BlobWriter._stored tells why); a
        # write-only key, those its local record says it stored.
        missing = self.repo.index.missing((c for old in looks_same.values() for c in old.content),
                                          trusted_only=not self.repo.write_only)
        return {k: old for k, old in looks_same.items() if not missing.intersection(old.content)}


def dir_node(name: str, st: os.stat_result | None, subtree: bytes) -> Node:
    if st is None:
        return Node(name, "dir", 0o755, 0, subtree=subtree)
    return Node(name, "dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns, subtree=subtree, **owner_of(st))


def file_node(f: FileEntry, size: int, content: tuple[bytes, ...]) -> Node:
    st = f.st
    mtime = f.mtime_ns if f.mtime_ns is not None else st.st_mtime_ns
    stream = f.stream is not None  # standard input: no inode or ctime to compare next time
    return Node(f.name, "file", stat.S_IMODE(st.st_mode), mtime, size, content=content,
                inode=0 if stream else st.st_ino, ctime_ns=0 if stream else st.st_ctime_ns,
                **(f.owner if f.owner is not None else owner_of(st)))


def total_size(paths: list[str]) -> int:
    """What a put of ``paths`` will go through, for a progress bar: the sizes of the regular files under them
    (one stat walk, nothing kept)."""
    total = 0
    stack = list(paths)
    top = set(paths)  # a PATH that is a link is followed, as put does; links inside are not
    while stack:
        path = stack.pop()
        try:
            st = os.stat(path) if path in top else os.lstat(path)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            total += st.st_size
        elif stat.S_ISDIR(st.st_mode):
            try:
                with os.scandir(path) as it:
                    stack.extend(e.path for e in it)
            except OSError:
                continue
    return total
