"""Bounds on walking a version's tree: no cycles, and no more than its version record says it holds.

Trees are content-addressed, so an honest tree can't contain itself; but a key holder can seal any tree under any
id, and so forge a directory whose sub-tree is one of its own ancestors (a cycle), or a "tree bomb": a few small
trees whose directories all point at the same sub-tree, level after level, so that 2 KB of trees expand to
millions of entries (2^20 from twenty levels of two). Shared sub-trees are legitimate (identical directories,
hard-linked copies), so sharing itself can't be refused. What bounds them is the version record, which states
how many files and bytes the version holds (`put` counts every path, a shared one as often as it appears):

- files met by the walk: at most the record's ``files`` plus a margin;
- bytes of those files: at most the record's ``size`` plus a margin;
- entries of any kind (directories and links are not in the record): at most the files allowed plus every
  entry of every *distinct* tree met so far, so that directory-only trees of any size pass while repeating a
  sub-tree can't multiply its directories past the margin.

The margins (a tenth more, plus MARGIN_ENTRIES and MARGIN_BYTES) only absorb a record that is slightly off; a
walk that passes them stops with IntegrityError (exit 20) before it writes or lists more. Walks that visit each
distinct tree once (check, prune, repair) need no budget, only cycle detection.
"""

from __future__ import annotations

from vault.errors import IntegrityError
from vault.repo.catalog import VersionRecord
from vault.repo.tree import Node

MARGIN_ENTRIES = 10_000
MARGIN_BYTES = 64 << 20


class TreeBudget:
    """What one walk of ``record``'s tree may still expand to. Call :meth:`tree` for each tree loaded and
    :meth:`entry` for each entry met, before acting on it; both raise IntegrityError past the bounds. Not
    thread-safe (a walk runs in one thread)."""

    def __init__(self, record: VersionRecord) -> None:
        self.what = f"the tree of {record.item} version {record.version}"
        self.claims = f"{record.files} file(s), {record.size} bytes"
        self.max_files = record.files + record.files // 10 + MARGIN_ENTRIES
        self.max_bytes = record.size + record.size // 10 + MARGIN_BYTES
        self.files = 0
        self.bytes = 0
        self.entries = 0
        self.distinct_entries = 0
        self._trees: set[bytes] = set()

    def tree(self, tree_id: bytes, nodes: list[Node]) -> None:
        """A tree was loaded; its entries count once however often it is met."""
        if tree_id not in self._trees:
            self._trees.add(tree_id)
            self.distinct_entries += len(nodes)

    def entry(self, node: Node) -> None:
        """One entry is about to be restored or listed. IntegrityError when that passes the bounds."""
        self.entries += 1
        if node.type == "file":
            self.files += 1
            self.bytes += node.size
        if (self.files > self.max_files or self.bytes > self.max_bytes
                or self.entries > self.max_files + self.distinct_entries):
            raise IntegrityError(
                f"{self.what} expands to more than its record states ({self.claims}): it shares sub-trees "
                "to multiply its entries, which only a forged tree does; refusing to go on"
            )


CYCLE = "the directory contains itself (a cycle in the stored trees); a key holder may have tampered with the vault"


def cycle_error(path: str) -> IntegrityError:
    """The error for the directory at ``path`` whose sub-tree is one of its own ancestors."""
    return IntegrityError(f"{path}: {CYCLE}")
