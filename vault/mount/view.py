"""What the mounted file system shows: the catalog as directories, and a path resolved to what it names.

Each item appears at its name's path as a directory holding one entry per version (``1``, ``2``, …, named by
number) and ``latest``, a symbolic link to the newest. Directories on the way to an item (``photos`` for
``photos/2020``) are made up from the names. A version entry is the version's root: its tree for a directory
version, the file itself for a file version. Where a name of another item would clash with a version entry
(items ``a`` and ``a/1``), the version wins and the other item is not shown under that name.

A :class:`View` is one snapshot of the catalog (item names from the catalog's item query, each item's versions
read on first use); the file system replaces it with a new one after catching up with the storage. Paths inside a
version are resolved through the trees, each decoded once (vault.browse.trees); a tree that contains itself is
damage (IntegrityError), never an endless directory.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from vault.browse.trees import TreeReader, cycle_error
from vault.errors import IntegrityError
from vault.repo.catalog import VersionRecord
from vault.repo.repository import Repository
from vault.repo.tree import Node

LATEST = "latest"


@dataclass
class ItemDir:
    """A directory made up from item names: the root, a directory on the way to an item, or an item's own."""

    children: dict[str, ItemDir] = field(default_factory=dict)
    item: str | None = None  # set when an item has this name
    mtime_ns: int = 0  # an item's: its newest version's time; else the time of the view


@dataclass(frozen=True)
class Latest:
    """An item's ``latest`` link."""

    target: str
    mtime_ns: int


@dataclass(frozen=True)
class Stored:
    """A stored node: a version's root, or a path inside it."""

    node: Node


Entry = ItemDir | Latest | Stored


def created_ns(record: VersionRecord) -> int:
    return int(datetime.fromisoformat(record.created.replace("Z", "+00:00")).timestamp() * 10**9)


class NotThere(Exception):
    """The path names nothing (ENOENT); ``not_dir`` when a file stood where a directory was needed (ENOTDIR)."""

    def __init__(self, not_dir: bool = False) -> None:
        super().__init__()
        self.not_dir = not_dir


class View:
    """One snapshot of the catalog as directories. Thread-safe."""

    def __init__(self, repo: Repository, reader: TreeReader) -> None:
        self.repo = repo
        self.reader = reader
        self.root = ItemDir(mtime_ns=time.time_ns())
        self._versions: dict[str, dict[int, VersionRecord]] = {}
        self._roots: dict[str, Node] = {}  # record id -> root node
        self._lock = threading.Lock()
        for latest, _count in repo.catalog.items():
            d = self.root
            for seg in latest.item.split("/"):
                d = d.children.setdefault(seg, ItemDir(mtime_ns=self.root.mtime_ns))
            d.item = latest.item
            d.mtime_ns = created_ns(latest)

    def versions(self, item: str) -> dict[int, VersionRecord]:
        with self._lock:
            found = self._versions.get(item)
        if found is None:
            found = {r.version: r for r in self.repo.catalog.versions(item)}
            with self._lock:
                self._versions[item] = found
        return found

    def root_node(self, record: VersionRecord) -> Node:
        with self._lock:
            node = self._roots.get(record.record_id)
        if node is None:
            node = self.repo.root_node(record)
            with self._lock:
                self._roots[record.record_id] = node
        return node

    def listing(self, d: ItemDir) -> list[tuple[str, Entry]]:
        """What an item directory holds: its versions and ``latest`` (for an item), then other items' names."""
        out: list[tuple[str, Entry]] = []
        taken: set[str] = set()
        if d.item is not None:
            versions = self.versions(d.item)
            for number in sorted(versions):
                out.append((str(number), Stored(self.root_node(versions[number]))))
            if versions:
                newest = versions[max(versions)]
                out.append((LATEST, Latest(str(newest.version), created_ns(newest))))
            taken = {name for name, _ in out}
        out += [(name, sub) for name, sub in sorted(d.children.items()) if name not in taken]
        return out

    def resolve(self, path: str) -> Entry:
        """What ``path`` (``/`` separated, from the mount's root) names. NotThere; IntegrityError for damage."""
        segments = [s for s in path.split("/") if s]
        d = self.root
        for i, seg in enumerate(segments):
            if d.item is not None:
                versions = self.versions(d.item)
                if seg == LATEST and versions:
                    if i != len(segments) - 1:
                        raise NotThere(not_dir=True)  # the kernel follows the link itself
                    newest = versions[max(versions)]
                    return Latest(str(newest.version), created_ns(newest))
                if seg.isdigit() and str(int(seg)) == seg and int(seg) in versions:
                    return Stored(self.inside(self.root_node(versions[int(seg)]), segments[i + 1 :]))
            sub = d.children.get(seg)
            if sub is None:
                raise NotThere()
            d = sub
        return d

    def inside(self, node: Node, segments: list[str]) -> Node:
        """The node at ``segments`` below ``node``, through the trees."""
        on_path: set[bytes] = set()
        for seg in segments:
            if node.type != "dir":
                raise NotThere(not_dir=True)
            sub = node.subtree
            if sub is None:
                raise IntegrityError(f"directory {node.name!r} has no tree")
            if sub in on_path:
                raise cycle_error(sub, "/".join(segments))
            on_path.add(sub)
            found = self.reader.tree(sub).by_name.get(seg)
            if found is None:
                raise NotThere()
            node = found
        if node.type == "dir" and node.subtree is not None and node.subtree in on_path:
            raise cycle_error(node.subtree, "/".join(segments))
        return node
