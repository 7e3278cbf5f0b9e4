"""Walking the trees of versions: what every check, prune and repair needs to know about references."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from vault import format as fmt
from vault.errors import IntegrityError
from vault.repo.bounds import CYCLE
from vault.repo.catalog import VersionRecord
from vault.repo.repository import Repository
from vault.repo.tree import Node


@dataclass
class References:
    """Blob ids that versions need, and which versions could not be walked completely."""

    data: set[bytes] = field(default_factory=set)
    trees: set[bytes] = field(default_factory=set)
    # record id → problems found while walking it (missing or damaged trees, blobs absent from the index)
    damaged: dict[str, list[str]] = field(default_factory=dict)

    @property
    def all(self) -> set[bytes]:
        return self.data | self.trees


# Problems kept per tree (and so per version): a version whose shared sub-trees are damaged would otherwise be
# reported once per path that reaches them, which a forged tree can make exponential (vault/repo/bounds.py).
MAX_PROBLEMS = 1000
MORE_PROBLEMS = "(more problems, not listed)"


def _add_problems(problems: list[str], found: list[str], prefix: str = "") -> None:
    """Append ``found`` (prefixed with ``prefix``) to ``problems``, keeping at most MAX_PROBLEMS of them."""
    for p in found:
        if len(problems) >= MAX_PROBLEMS:
            if problems[-1] != MORE_PROBLEMS:
                problems.append(MORE_PROBLEMS)
            return
        problems.append(p if p == MORE_PROBLEMS else prefix + p)


@dataclass
class _Visit:
    """A tree being walked by :func:`collect`: its entries still to look at, and the sub-tree awaited."""

    tree_id: bytes
    nodes: list[Node]
    problems: list[str]
    next: int = 0
    waiting: tuple[str, bytes] | None = None  # the directory (name, sub-tree) being walked meanwhile


def collect(
    repo: Repository,
    records: list[VersionRecord],
    on_tree: Callable[[], None] | None = None,
) -> References:
    """Walk every version's trees once (shared subtrees are visited once), depth first with a stack of its own
    (any depth). Problems are recorded per version, never raised, so one damaged version does not hide the
    state of the others; a directory that contains itself (a cycle) is one, and at most MAX_PROBLEMS are kept
    per version."""
    refs = References()
    index = repo.index
    # tree id → problems inside it (paths relative to it); memoized, so shared subtrees are read once and
    # every version that shares a damaged subtree is reported as damaged.
    memo: dict[bytes, list[str]] = {}

    def open_tree(tree_id: bytes) -> _Visit | None:
        """Start on a tree; None when it is decided at once (missing or damaged: memo holds its problems)."""
        refs.trees.add(tree_id)
        loc = index.get(tree_id)
        if loc is None or loc.entry.blob_type != fmt.BlobType.TREE:
            memo[tree_id] = [f"tree {tree_id.hex()[:10]} is missing from the index"]
            return None
        try:
            nodes = repo.load_tree(tree_id)
        except IntegrityError as exc:
            memo[tree_id] = [str(exc)]
            return None
        if on_tree:
            on_tree()
        return _Visit(tree_id, nodes, [])

    def visit(root: bytes) -> list[str]:
        if root in memo:
            return memo[root]
        first = open_tree(root)
        if first is None:
            return memo[root]
        stack = [first]
        on_stack = {root}
        while stack:
            v = stack[-1]
            if v.waiting is not None:  # back from a sub-tree
                name, sub = v.waiting
                _add_problems(v.problems, memo[sub], f"{name}/")
                v.waiting = None
            descended = False
            while v.next < len(v.nodes) and not descended:
                node = v.nodes[v.next]
                v.next += 1
                if node.type == "file":
                    missing = []
                    for blob_id in node.content:
                        refs.data.add(blob_id)
                        loc = index.get(blob_id)
                        if loc is None or loc.entry.blob_type != fmt.BlobType.DATA:
                            missing.append(f"{node.name}: chunk {blob_id.hex()[:10]} is missing from the index")
                    _add_problems(v.problems, missing)
                elif node.type == "dir" and node.subtree is not None:
                    sub = node.subtree
                    if sub in on_stack:
                        _add_problems(v.problems, [f"{node.name}: {CYCLE}"])
                    elif sub in memo or (child := open_tree(sub)) is None:
                        _add_problems(v.problems, memo[sub], f"{node.name}/")
                    else:
                        v.waiting = (node.name, sub)
                        stack.append(child)
                        on_stack.add(sub)
                        descended = True
            if not descended:
                memo[v.tree_id] = v.problems
                stack.pop()
                on_stack.discard(v.tree_id)
        return memo[root]

    for rec in records:
        found = visit(rec.tree)
        if found:
            refs.damaged[rec.record_id] = found
    return refs
