"""Forge: write data, trees and version records into an existing vault with its real key, as a key holder could.

Test code only (importable as ``forge``; tests/ is on pytest's pythonpath). Everything it writes authenticates:
what is hostile is what the trees *say* (unsafe names, cycles, shared sub-trees that multiply, owners). Records
state the file count and size their tree really holds unless told otherwise, as `put` writes them.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from helpers import PASSWORD

from vault import format as fmt
from vault.pipeline.runner import Pipeline
from vault.repo import catalog
from vault.repo.blobs import seal_blob
from vault.repo.repository import Repository
from vault.repo.tree import Node, encode_tree
from vault.repo.writer import BlobWriter
from vault.storage.local import LocalBackend

MTIME_NS = 1_600_000_000 * 10**9


class Forge:
    """Writes data, trees and version records into an existing vault with its real key."""

    def __init__(self, vault_dir: Path) -> None:
        self.repo = Repository.open(LocalBackend(vault_dir), PASSWORD.encode(), rehash=False)
        self.pipe = Pipeline(1)
        self.writer = BlobWriter(self.repo, self.pipe, 0)
        self.trees: dict[bytes, list[Node]] = {}  # what each tree written here holds, to count records

    def close(self) -> None:
        self.writer.finish()
        self.pipe.close()

    def data(self, payload: bytes) -> tuple[bytes, ...]:
        return tuple(blob_id for blob_id, _, _ in self.writer.store([payload]))

    def file(self, name: str, payload: bytes, size: int | None = None, mode: int = 0o644, **owner: Any) -> Node:
        return Node(name, "file", mode, MTIME_NS, len(payload) if size is None else size,
                    content=self.data(payload), **owner)

    def tree(self, nodes: list[Node]) -> bytes:
        tree_id = self.writer.store_one(encode_tree(nodes), fmt.BlobType.TREE)
        self.trees[tree_id] = nodes
        return tree_id

    def tree_as(self, tree_id: bytes, nodes: list[Node]) -> bytes:
        """Store ``nodes`` as a tree under an id of our choosing rather than its keyed hash: a key holder can
        seal anything under any id, which is how a tree comes to contain itself."""
        self.writer._add(seal_blob(self.repo.key, self.repo.vault_id, fmt.BlobType.TREE, tree_id,
                                   encode_tree(nodes), 0))
        self.trees[tree_id] = nodes
        return tree_id

    def raw_tree(self, doc: dict[str, Any]) -> bytes:
        return self.writer.store_one(fmt.encode_json(doc), fmt.BlobType.TREE)

    def dir(self, name: str, nodes: list[Node], mode: int = 0o755, **owner: Any) -> Node:
        return Node(name, "dir", mode, MTIME_NS, subtree=self.tree(nodes), **owner)

    @staticmethod
    def link(name: str, target: str, **owner: Any) -> Node:
        return Node(name, "link", 0o777, MTIME_NS, target=target, **owner)

    def count(self, node: Node) -> tuple[int, int]:
        """The files and bytes under ``node``, as `put` counts them (each distinct tree once: enough for the
        honest trees this is used for)."""
        if node.type == "file":
            return 1, node.size
        files = size = 0
        todo, seen = [node], set()
        while todo:
            n = todo.pop()
            if n.type == "file":
                files, size = files + 1, size + n.size
            elif n.type == "dir" and n.subtree in self.trees and n.subtree not in seen:
                seen.add(n.subtree)
                todo.extend(self.trees[n.subtree])
        return files, size

    def commit(self, item: str, root: Node, files: int | None = None, size: int | None = None
               ) -> catalog.VersionRecord:
        """Store ``root`` as the next version of ``item`` (packs and index first, the record last). The record
        states what the tree holds, or ``files`` and ``size`` when given."""
        tree_id = self.tree([root])
        self.writer.finish()
        counted_files, counted_size = self.count(root)
        versions = [r.version for r in self.repo.records() if r.item == item]
        record = catalog.VersionRecord(
            record_id=catalog.new_record_id(),
            item=item,
            version=max(versions, default=0) + 1,
            created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            type=root.type,
            tree=tree_id,
            size=counted_size if size is None else size,
            files=counted_files if files is None else files,
            bytes_added=0,
            host="forge",
        )
        return self.repo.commit_record(record)


def random_id() -> bytes:
    return os.urandom(fmt.ID_SIZE)
