"""`vault diff`: what changed in an item between two of its versions.

Trees are compared by id: a sub-tree whose id is the same in both versions is identical (ids are keyed hashes of
the contents, names, modes and times below it) and is skipped unread, so the work grows with what changed, not
with the size of the tree. Where a directory was added or removed, every path under it is listed; where a path
changed type (a file became a directory), the path is ``type`` and what the old or new directory holds is removed
or added below it.

A directory's own change is reported (``metadata``) only when its mode changed, or its modification time while
its contents did not: adding or removing an entry changes a directory's time, and that entry is listed already.
The root of a directory item is not itself a path of the diff.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from vault.browse.trees import TreeReader, cycle_error, walk
from vault.errors import IntegrityError, NotFoundError
from vault.names import split_name
from vault.repo.catalog import VersionRecord
from vault.repo.repository import Repository
from vault.repo.tree import Node

SYMBOLS = {"added": "+", "removed": "-", "modified": "M", "type": "T", "metadata": "U"}


@dataclass(frozen=True)
class Change:
    path: str
    change: str  # added, removed, modified, type, metadata
    before: Node | None
    after: Node | None

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.change]

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "change": self.change, "size_before": _size(self.before),
                "size_after": _size(self.after)}

    def line(self) -> str:
        node = self.after if self.after is not None else self.before
        slash = "/" if node is not None and node.type == "dir" else ""
        return f"{self.symbol} {self.path}{slash}"


@dataclass(frozen=True)
class DiffResult:
    item: str
    before: VersionRecord
    after: VersionRecord
    changes: list[Change]


def _size(node: Node | None) -> int | None:
    if node is None:
        return None
    return node.size if node.type == "file" else 0


def find_item(repo: Repository, name: str) -> tuple[str, list[str]]:
    """The item ``name`` names, and the path inside it (``get``'s rule: the item named ``name``, else the longest
    item name that is a path prefix of it). NotFoundError; UsageError for a malformed name."""
    segments = split_name(name)
    for cut in range(len(segments), 0, -1):
        item = "/".join(segments[:cut])
        if repo.catalog.has_item(item):
            return item, segments[cut:]
    raise NotFoundError(f"no item named {name!r}")


def pick_versions(records: list[VersionRecord], item: str, old: int | None, new: int | None
                  ) -> tuple[VersionRecord, VersionRecord]:
    """``--from``/``--to``: the versions asked for; by default the latest and the one before it (the one before
    ``--to`` when only that is given). NotFoundError."""
    by_number = {r.version: r for r in records}
    for wanted in (old, new):
        if wanted is not None and wanted not in by_number:
            raise NotFoundError(f"{item!r} has no version {wanted}")
    after = by_number[new] if new is not None else records[-1]
    if old is not None:
        return by_number[old], after
    earlier = [r for r in records if r.version < after.version]
    if not earlier:
        raise NotFoundError(f"{item!r} has no version before version {after.version}",
                            hint="give the versions to compare with --from N --to M")
    return earlier[-1], after


def _node_at(repo: Repository, reader: TreeReader, record: VersionRecord, inner: list[str]) -> Node | None:
    node = repo.root_node(record)
    for seg in inner:
        if node.type != "dir":
            return None
        found = reader.tree(node.subtree).by_name.get(seg) if node.subtree is not None else None
        if found is None:
            return None
        node = found
    return node


def diff(repo: Repository, name: str, old: int | None = None, new: int | None = None) -> DiffResult:
    """What changed in the item (or the path inside an item) ``name`` between versions ``old`` and ``new`` (see
    :func:`pick_versions`), sorted by path. NotFoundError, IntegrityError (damage, a tree that contains itself)."""
    item, inner = find_item(repo, name)
    records = repo.catalog.versions(item)
    if not records:
        raise NotFoundError(f"no item named {item!r}")
    before, after = pick_versions(records, item, old, new)
    reader = TreeReader(repo)
    a, b = _node_at(repo, reader, before, inner), _node_at(repo, reader, after, inner)
    if a is None and b is None:
        raise NotFoundError(f"no {'/'.join(inner)!r} in {item!r} versions {before.version} and {after.version}")
    changes = list(compare(reader, a, b))
    changes.sort(key=lambda c: c.path)
    return DiffResult(item, before, after, changes)


def compare(reader: TreeReader, a: Node | None, b: Node | None) -> Iterator[Change]:
    """The changes from ``a`` to ``b`` (one item's root, or one path in it, in two versions). A directory's
    contents have paths relative to it (the directory itself is no path of the diff); a file or link is the one
    path named after it."""
    if a is not None and b is not None and a.type == b.type == "dir":
        yield from _compare_dirs(reader, a, b)
        return
    for node, change in ((a, "removed"), (b, "added")):
        if node is not None and node.type == "dir":  # one side only is a directory: all it holds
            yield from _whole(reader, node, "", change)
    plain = [n for n in (a, b) if n is not None and n.type != "dir"]
    if not plain:
        return
    x, y = (a if a is not None and a.type != "dir" else None), (b if b is not None and b.type != "dir" else None)
    if x is None or y is None:
        yield Change(plain[0].name, "added" if x is None else "removed", x, y)
    elif x.type != y.type:
        yield Change(y.name, "type", x, y)
    else:
        differs = _node_change(x, y)
        if differs is not None:
            yield Change(y.name, differs, x, y)


def _node_change(a: Node, b: Node) -> str | None:
    """How two nodes of the same type at one path differ: ``modified``, ``metadata`` or None. (Directories: see
    the module docstring.)"""
    same_meta = a.mode == b.mode and a.mtime_ns == b.mtime_ns
    if a.type == "file":
        if a.content != b.content or a.size != b.size:
            return "modified"
        return None if same_meta else "metadata"
    if a.type == "link":
        if a.target != b.target:
            return "modified"
        return None if same_meta else "metadata"
    if a.mode != b.mode or (a.subtree == b.subtree and a.mtime_ns != b.mtime_ns):
        return "metadata"
    return None


def _whole(reader: TreeReader, d: Node, path: str, change: str) -> Iterator[Change]:
    """Every path under directory ``d`` (at ``path``) as ``change`` (added or removed)."""
    for sub, node in walk(reader, d, path):
        yield Change(sub, change, node if change == "removed" else None, node if change == "added" else None)


def _compare_dirs(reader: TreeReader, a: Node, b: Node) -> Iterator[Change]:
    """Two directories' contents, one pair of sub-trees at a time (an explicit stack: no depth is too deep).
    Pairs with the same tree id are skipped; ``on_path`` catches a tree that contains itself."""
    if a.subtree == b.subtree:
        return
    stack: list[tuple[str, bytes | None, bytes | None, frozenset[bytes]]] = [("", a.subtree, b.subtree, frozenset())]
    while stack:
        path, ta, tb, on_path = stack.pop()
        for tid in (ta, tb):
            if tid is not None and tid in on_path:
                raise cycle_error(tid, path)
        if ta is None or tb is None:
            raise IntegrityError(f"{path or 'the root'}: a directory without a tree")
        below = on_path | {ta, tb}
        old, new = reader.tree(ta).by_name, reader.tree(tb).by_name
        for name in sorted(old.keys() | new.keys()):
            x, y = old.get(name), new.get(name)
            sub = f"{path}/{name}" if path else name
            if x is None or y is None:
                node = y if x is None else x
                assert node is not None
                change = "added" if x is None else "removed"
                yield Change(sub, change, x, y)
                if node.type == "dir":
                    yield from _whole(reader, node, sub, change)
                continue
            if x.type != y.type:
                yield Change(sub, "type", x, y)
                if x.type == "dir":
                    yield from _whole(reader, x, sub, "removed")
                if y.type == "dir":
                    yield from _whole(reader, y, sub, "added")
                continue
            differs = _node_change(x, y)
            if differs is not None:
                yield Change(sub, differs, x, y)
            if x.type == "dir" and x.subtree != y.subtree:
                stack.append((sub, x.subtree, y.subtree, below))
