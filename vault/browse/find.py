"""`vault find`: paths matching shell globs in every version of every item (or of one item).

A pattern without ``/`` matches a path's last segment; one with ``/`` matches the whole path inside the item
(``*`` and ``?`` never match ``/``; a ``**`` segment matches any number of segments; a leading ``/`` anchors at
the item's root, which every such pattern is anyway). Matching is case-sensitive, as the file names are.

Versions share most of their sub-trees (dedup makes an unchanged directory the same tree in every version), so
each distinct tree is read and matched once: a summary per tree (the entries that match, and the
sub-directories under which something matches) is worked out bottom-up with an explicit stack and kept; a
version is then expanded from the summaries of its root, touching only directories that lead to a match. A
summary is keyed by the tree's id, or, when a pattern matches whole paths, by the id and the path the tree sits
at. Items are handled one at a time, their versions streamed from the catalog; matches are grouped per item by
path and by what was found there (type, size, modification time), with the versions that hold it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vault.browse.trees import TreeReader, cycle_error
from vault.errors import IntegrityError, NotFoundError, UsageError
from vault.names import check_name
from vault.repo.repository import Repository
from vault.repo.tree import Node

Key = bytes | tuple[bytes, str]


class Patterns:
    """The PATTERNs of one `find`."""

    def __init__(self, patterns: Sequence[str]) -> None:
        if not patterns:
            raise UsageError("give at least one PATTERN")
        self.leaf: list[str] = []
        self.paths: list[list[str]] = []
        for p in patterns:
            if not p or "\0" in p:
                raise UsageError(f"invalid pattern {p!r}")
            if "/" in p:
                segments = [s for s in p.strip("/").split("/") if s]
                if not segments:
                    raise UsageError(f"invalid pattern {p!r}")
                self.paths.append(segments)
            else:
                self.leaf.append(p)

    @property
    def by_path(self) -> bool:
        """Whether a match depends on where a tree sits (some pattern matches whole paths)."""
        return bool(self.paths)

    def match(self, path: str, name: str) -> bool:
        if any(fnmatch.fnmatchcase(name, p) for p in self.leaf):
            return True
        if self.paths:
            segments = path.split("/")
            return any(_match_segments(p, segments) for p in self.paths)
        return False


def _match_segments(pattern: list[str], segments: list[str]) -> bool:
    """Whether ``segments`` match ``pattern`` segment by segment, a ``**`` segment matching any number of them
    (dynamic programming over both: no recursion, however deep the path)."""
    reach = [True] + [False] * len(segments)  # reach[j]: pattern[:i] matches segments[:j]
    for p in pattern:
        nxt = [False] * (len(segments) + 1)
        if p == "**":
            seen = False
            for j in range(len(segments) + 1):
                seen = seen or reach[j]
                nxt[j] = seen
        else:
            for j in range(1, len(segments) + 1):
                nxt[j] = reach[j - 1] and fnmatch.fnmatchcase(segments[j - 1], p)
        reach = nxt
    return reach[-1]


@dataclass
class _Summary:
    """What matches in one tree: its matching entries, and its sub-directories under which something does."""

    matches: list[Node] = field(default_factory=list)
    subdirs: list[tuple[str, Key]] = field(default_factory=list)


@dataclass
class Match:
    item: str
    path: str
    node: Node
    versions: list[int]

    def to_json(self) -> dict[str, Any]:
        return {"item": self.item, "path": self.path, "type": self.node.type, "size": _size(self.node),
                "mtime": _iso(self.node.mtime_ns), "versions": self.versions}

    def line(self) -> str:
        return f"{self.item}\t{self.path}\t{self.node.type}\t{_size(self.node)}\t{version_ranges(self.versions)}"


def _size(node: Node) -> int:
    return node.size if node.type == "file" else 0


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def version_ranges(versions: list[int]) -> str:
    """``[1, 2, 3, 5]`` as ``1-3,5``."""
    parts: list[str] = []
    start = prev = versions[0]
    for v in [*versions[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return ",".join(parts)


class Finder:
    """One `find`: the patterns, the trees read so far, and the summary of each tree matched."""

    def __init__(self, repo: Repository, patterns: Patterns) -> None:
        self.repo = repo
        self.patterns = patterns
        self.reader = TreeReader(repo)
        self.summaries: dict[Key, _Summary | None] = {}  # None: nothing matches under that tree

    def _key(self, tree_id: bytes, path: str) -> Key:
        return (tree_id, path) if self.patterns.by_path else tree_id

    def items(self, item: str | None) -> Iterator[list[Match]]:
        """The matches of each item (of ``item`` only, if given), item by item in name order, each list sorted
        by path. NotFoundError for a missing ``item``."""
        if item is not None:
            check_name(item)
            if not self.repo.catalog.has_item(item):
                raise NotFoundError(f"no item named {item!r}")
            names = [item]
        else:
            names = [latest.item for latest, _ in self.repo.catalog.items()]
        for name in names:
            found = self.item_matches(name)
            if found:
                yield found

    def item_matches(self, item: str) -> list[Match]:
        groups: dict[tuple[str, str, int, int, str], Match] = {}
        for record in self.repo.catalog.versions(item):
            root = self.repo.root_node(record)
            for path, node in self._version_matches(root):
                key = (path, node.type, _size(node), node.mtime_ns, node.target)
                found = groups.get(key)
                if found is None:
                    groups[key] = Match(item, path, node, [record.version])
                elif found.versions[-1] != record.version:
                    found.versions.append(record.version)
        return sorted(groups.values(), key=lambda m: (m.path, m.versions[0]))

    def _version_matches(self, root: Node) -> Iterator[tuple[str, Node]]:
        if root.type != "dir":
            if self.patterns.match(root.name, root.name):
                yield root.name, root
            return
        if root.subtree is None:
            raise IntegrityError(f"the root of {root.name!r} has no tree")
        top = self._summarize(root.subtree)
        stack: list[tuple[str, _Summary | None]] = [("", top)]
        while stack:
            prefix, summary = stack.pop()
            if summary is None:
                continue
            for node in summary.matches:
                yield prefix + node.name, node
            for name, key in summary.subdirs:
                stack.append((f"{prefix}{name}/", self.summaries[key]))

    def _summarize(self, top: bytes) -> _Summary | None:
        """The summary of tree ``top`` (at the item's root), working out those of its sub-trees first, each
        distinct one once (an explicit stack; a tree on its own path is a cycle: IntegrityError)."""
        top_key = self._key(top, "")
        if top_key in self.summaries:
            return self.summaries[top_key]
        # A frame: tree id, its path ("" or "a/b/"), its key, its nodes, the next node to look at.
        stack: list[tuple[bytes, str, Key, tuple[Node, ...], list[int]]] = [
            (top, "", top_key, self.reader.tree(top).nodes, [0])]
        on_path = {top}
        while stack:
            tree_id, prefix, key, nodes, pos = stack[-1]
            descended = False
            while pos[0] < len(nodes):
                node = nodes[pos[0]]
                pos[0] += 1
                if node.type != "dir":
                    continue
                sub = node.subtree
                path = prefix + node.name
                if sub is None:
                    raise IntegrityError(f"{path}: a directory without a tree")
                sub_key = self._key(sub, path + "/")
                if sub_key in self.summaries:
                    continue
                if sub in on_path:
                    raise cycle_error(sub, path)
                on_path.add(sub)
                stack.append((sub, path + "/", sub_key, self.reader.tree(sub).nodes, [0]))
                descended = True
                break
            if descended:
                continue
            stack.pop()
            on_path.discard(tree_id)
            summary = _Summary()
            for node in nodes:
                if self.patterns.match(prefix + node.name, node.name):
                    summary.matches.append(node)
                if node.type == "dir" and node.subtree is not None:
                    sub_key = self._key(node.subtree, prefix + node.name + "/")
                    if self.summaries.get(sub_key) is not None:
                        summary.subdirs.append((node.name, sub_key))
            self.summaries[key] = summary if summary.matches or summary.subdirs else None
        return self.summaries[top_key]
