"""Walking the trees of versions: what every check, prune and repair needs to know about references."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from vault import format as fmt
from vault.errors import IntegrityError
from vault.repo.catalog import VersionRecord
from vault.repo.repository import Repository


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


def collect(
    repo: Repository,
    records: list[VersionRecord],
    on_tree: Callable[[], None] | None = None,
) -> References:
    """Walk every version's trees once (shared subtrees are visited once). Problems are recorded per
    version, never raised, so one damaged version does not hide the state of the others."""
    refs = References()
    index = repo.index
    # tree id → problems inside it (paths relative to it); memoized, so shared subtrees are read once and
    # every version that shares a damaged subtree is reported as damaged.
    memo: dict[bytes, list[str]] = {}

    def visit(tree_id: bytes) -> list[str]:
        if tree_id in memo:
            return memo[tree_id]
        memo[tree_id] = problems = []
        refs.trees.add(tree_id)
        loc = index.get(tree_id)
        if loc is None or loc.entry.blob_type != fmt.BlobType.TREE:
            problems.append(f"tree {tree_id.hex()[:10]} is missing from the index")
            return problems
        try:
            nodes = repo.load_tree(tree_id)
        except IntegrityError as exc:
            problems.append(str(exc))
            return problems
        if on_tree:
            on_tree()
        for node in nodes:
            if node.type == "file":
                for blob_id in node.content:
                    refs.data.add(blob_id)
                    loc = index.get(blob_id)
                    if loc is None or loc.entry.blob_type != fmt.BlobType.DATA:
                        problems.append(f"{node.name}: chunk {blob_id.hex()[:10]} is missing from the index")
            elif node.type == "dir" and node.subtree is not None:
                problems.extend(f"{node.name}/{p}" for p in visit(node.subtree))
        return problems

    for rec in records:
        found = visit(rec.tree)
        if found:
            refs.damaged[rec.record_id] = found
    return refs
