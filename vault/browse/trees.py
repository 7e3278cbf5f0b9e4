"""Reading stored trees for the browsing commands: decoded trees kept by id, and walks that never recurse.

Trees are immutable and named by their keyed hash, so a tree decoded once is the same tree wherever it appears
(in another version, at another path): :class:`TreeReader` keeps the last few thousand by id. Walks use an
explicit stack, so a directory thousands of levels deep costs memory, never Python's recursion limit. A tree that
contains itself (ids are hashes, so only a forged or broken vault can hold one) would make a walk endless; every
walk keeps the ids on its current path and raises IntegrityError (exit 20) when one comes round again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from vault.errors import IntegrityError
from vault.repo.repository import Repository
from vault.repo.tree import Node

TREES_KEPT = 4096  # decoded trees held by id (a tree of a typical directory is a few KiB)


@dataclass(frozen=True)
class Tree:
    """A decoded tree: its nodes in name order, and by name."""

    nodes: tuple[Node, ...]
    by_name: dict[str, Node]


class TreeReader:
    """Trees of one repository, decoded once and kept (least recently used out). Thread-safe."""

    def __init__(self, repo: Repository, kept: int = TREES_KEPT) -> None:
        self.repo = repo
        self._kept = kept
        self._trees: OrderedDict[bytes, Tree] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0  # trees fetched and decoded (not served from memory)

    def tree(self, tree_id: bytes) -> Tree:
        """The tree ``tree_id``. IntegrityError when it is missing or damaged."""
        with self._lock:
            found = self._trees.get(tree_id)
            if found is not None:
                self._trees.move_to_end(tree_id)
                return found
        nodes = tuple(self.repo.load_tree(tree_id))
        tree = Tree(nodes, {n.name: n for n in nodes})
        with self._lock:
            self.loads += 1
            self._trees[tree_id] = tree
            while len(self._trees) > self._kept:
                self._trees.popitem(last=False)
        return tree

    def children(self, node: Node) -> tuple[Node, ...]:
        """The entries of the directory ``node``."""
        if node.subtree is None:
            raise IntegrityError(f"directory {node.name!r} has no tree")
        return self.tree(node.subtree).nodes


def cycle_error(tree_id: bytes, path: str) -> IntegrityError:
    return IntegrityError(f"{path or 'the root'}: tree {tree_id.hex()[:10]} contains itself; the vault is damaged")


def walk(reader: TreeReader, root: Node, prefix: str = "") -> Iterator[tuple[str, Node]]:
    """Every node under the directory ``root``, depth first, each directory before what it holds, children in
    name order; paths are ``prefix`` joined with the names by ``/``. IntegrityError on a cycle or damage."""
    if root.subtree is None:
        raise IntegrityError(f"directory {root.name!r} has no tree")
    on_path = {root.subtree}
    stack: list[tuple[str, bytes, Iterator[Node]]] = [(prefix, root.subtree, iter(reader.children(root)))]
    while stack:
        base, tree_id, entries = stack[-1]
        node = next(entries, None)
        if node is None:
            stack.pop()
            on_path.discard(tree_id)
            continue
        path = f"{base}/{node.name}" if base else node.name
        yield path, node
        if node.type == "dir":
            sub = node.subtree
            if sub is None:
                raise IntegrityError(f"{path}: a directory without a tree")
            if sub in on_path:
                raise cycle_error(sub, path)
            on_path.add(sub)
            stack.append((path, sub, iter(reader.children(node))))
