"""Read-only views of the catalog (`ls`, `history`, `info`) and `rm`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from vault import format as fmt
from vault.cache import CacheDamaged
from vault.errors import NotFoundError
from vault.names import check_name
from vault.repo.bounds import TreeBudget, cycle_error
from vault.repo.catalog import VersionRecord
from vault.repo.repository import Repository
from vault.repo.tree import Node
from vault.restore.resolve import resolve


def _iso_mtime(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def list_items(repo: Repository) -> list[dict[str, Any]]:
    """Every item: name, type, size and files of its latest version, how many versions, last update."""
    out = []
    for latest, count in repo.catalog.items():
        name = latest.item
        out.append(
            {
                "name": name,
                "type": latest.type,
                "size": latest.size,
                "files": latest.files,
                "versions": count,
                "latest_version": latest.version,
                "updated": latest.created,
            }
        )
    return out


def _node_json(node: Node, path: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": path,
        "type": node.type,
        "size": node.size if node.type == "file" else 0,
        "mode": f"{node.mode:04o}",
        "mtime": _iso_mtime(node.mtime_ns),
    }
    if node.type == "link":
        doc["target"] = node.target
    return doc


def list_contents(repo: Repository, name: str, recursive: bool = True) -> list[dict[str, Any]]:
    """What the latest version of an item (or a sub-tree of it) holds, depth first, paths relative to NAME.

    Walks with a stack of its own (any depth). IntegrityError for a directory that contains itself, or once
    the tree expands beyond what its version record states (vault/repo/bounds.py)."""
    record, node, _ = resolve(repo, name, None)
    if node.type != "dir":
        return [_node_json(node, node.name)]
    out: list[dict[str, Any]] = []
    if node.subtree is None:
        return out
    budget = TreeBudget(record)
    nodes = repo.load_tree(node.subtree)
    budget.tree(node.subtree, nodes)
    stack = [(node.subtree, iter(nodes), "")]
    on_stack = {record.tree, node.subtree}  # trees being walked: meeting one again is a cycle
    while stack:
        tree_id, children, prefix = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            on_stack.discard(tree_id)
            continue
        budget.entry(child)
        path = f"{prefix}{child.name}"
        out.append(_node_json(child, path))
        if child.type == "dir" and recursive and child.subtree is not None:
            if child.subtree in on_stack:
                raise cycle_error(path)
            sub = repo.load_tree(child.subtree)
            budget.tree(child.subtree, sub)
            stack.append((child.subtree, iter(sub), path + "/"))
            on_stack.add(child.subtree)
    return out


def history(repo: Repository, name: str) -> list[dict[str, Any]]:
    check_name(name)
    recs = repo.catalog.versions(name)
    if not recs:
        raise NotFoundError(f"no item named {name!r}")
    return [
        {
            "version": r.version,
            "created": r.created,
            "type": r.type,
            "size": r.size,
            "files": r.files,
            "bytes_added": r.bytes_added,
            "host": r.host,
        }
        for r in recs
    ]


def remove(repo: Repository, name: str, version: int | None) -> list[VersionRecord]:
    """Delete the version records of an item (all, or one). Data stays until `prune`."""
    check_name(name)
    recs = repo.catalog.versions(name)
    if not recs:
        raise NotFoundError(f"no item named {name!r}")
    if version is not None:
        recs = [r for r in recs if r.version == version]
        if not recs:
            raise NotFoundError(f"{name!r} has no version {version}")
    repo.remove_records([rec.record_id for rec in recs])
    return recs


def _blob_stats(repo: Repository) -> tuple[int, int, int]:
    """(blobs, plaintext bytes of the data blobs, their stored bytes), counted from authenticated index rows;
    if the cache fails its checks on the way, once more after rebuilding the index from the storage."""
    for attempt in (1, 2):
        index = repo.index
        damaged = index.damaged_rows
        blobs = raw = stored = 0
        try:
            for pack in index.packs():
                for e in pack.entries:
                    blobs += 1
                    if e.blob_type == fmt.BlobType.DATA:
                        raw += e.raw_length
                        stored += e.length
        except CacheDamaged:
            index.damaged_rows += 1
        if index.damaged_rows == damaged or attempt == 2:
            break
        repo.refresh_blobs(full=True)
    return blobs, raw, stored


def info(repo: Repository) -> dict[str, Any]:
    """Format, KDF parameters of the key in use, counts, and sizes with the dedup and compression ratios."""
    blobs, unique_raw, stored_blobs = _blob_stats(repo)
    items: set[str] = set()
    versions = original = 0
    for r in repo.catalog.all():
        items.add(r.item)
        versions += 1
        original += r.size
    stored = repo.stored_bytes()
    p = repo.slot.params
    return {
        "format_version": repo.config.format_version,
        "location": repo.backend.location,
        "retention_days": repo.config.retention_days,
        "created": repo.config.created,
        "items": len(items),
        "versions": versions,
        "blobs": blobs,
        "keys": len(repo.keys.slots()),
        "stored_bytes": stored,
        "original_bytes": original,
        "unique_bytes": unique_raw,
        "dedup_ratio": round(original / unique_raw, 3) if unique_raw else 1.0,
        "compression_ratio": round(unique_raw / stored_blobs, 3) if stored_blobs else 1.0,
        "kdf": {
            "algorithm": "argon2id",
            "memory_kib": p.memory_kib,
            "time_cost": p.time_cost,
            "parallelism": p.parallelism,
        },
        "key_generation": repo.key.current,
        "older_key_generations": [g for g in repo.key.generations if g != repo.key.current],
    }
