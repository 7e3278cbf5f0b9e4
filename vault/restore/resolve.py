"""What a name given to `vault get` means: which version of which item, which node of its tree, restored where."""

from __future__ import annotations

import os

from vault.errors import NotFoundError
from vault.names import split_name
from vault.repo.catalog import VersionRecord
from vault.repo.repository import Repository
from vault.repo.tree import Node


def select_version(repo: Repository, item: str, version: int | None) -> VersionRecord:
    """The latest version of ``item``, or its version ``version``. NotFoundError. Reads only that item's rows of
    the catalog."""
    if version is None:
        latest = repo.catalog.latest(item)
        if latest is None:
            raise NotFoundError(f"no item named {item!r}")
        return latest
    mine = repo.catalog.versions(item)
    if not mine:
        raise NotFoundError(f"no item named {item!r}")
    for rec in mine:
        if rec.version == version:
            return rec
    raise NotFoundError(f"{item!r} has no version {version}")


def resolve(repo: Repository, name: str, version: int | None) -> tuple[VersionRecord, Node, list[str]]:
    """The item named ``name``, or the longest item name that is a path prefix of it with the rest as a path
    inside that item's tree. Returns the version, the node, and the path of the node inside the item."""
    segments = split_name(name)
    for cut in range(len(segments), 0, -1):
        item = "/".join(segments[:cut])
        if repo.catalog.has_item(item):
            record = select_version(repo, item, version)
            node = repo.root_node(record)
            inner = segments[cut:]
            for seg in inner:
                if node.type != "dir" or node.subtree is None:
                    raise NotFoundError(f"{name!r}: {node.name!r} is not a directory in {item!r}")
                match = [n for n in repo.load_tree(node.subtree) if n.name == seg]
                if not match:
                    raise NotFoundError(f"no {'/'.join(inner)!r} in {item!r} version {record.version}")
                node = match[0]
            return record, node, inner
    raise NotFoundError(f"no item named {name!r}")


def destination(name: str, node: Node, out: str | None) -> str:
    """Default ``./basename(NAME)``; an existing directory DEST gets it inside."""
    base = name.rsplit("/", 1)[-1]
    if out is None:
        return os.path.join(".", base)
    if os.path.isdir(out) and not os.path.islink(out):
        return os.path.join(out, base)
    return out
