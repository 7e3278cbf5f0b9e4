"""Read-only views of the catalog (`ls`, `history`, `info`) and `rm`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from vault import format as fmt
from vault.errors import NotFoundError
from vault.names import check_name
from vault.repo.catalog import VersionRecord
from vault.repo.repository import Repository
from vault.repo.tree import Node
from vault.restore import resolve


def _iso_mtime(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def list_items(repo: Repository) -> list[dict[str, Any]]:
    """Every item: name, type, size and files of its latest version, how many versions, last update."""
    by_item: dict[str, list[VersionRecord]] = {}
    for rec in repo.records():
        by_item.setdefault(rec.item, []).append(rec)
    out = []
    for name in sorted(by_item):
        latest = by_item[name][-1]
        out.append(
            {
                "name": name,
                "type": latest.type,
                "size": latest.size,
                "files": latest.files,
                "versions": len(by_item[name]),
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
    """What the latest version of an item (or a sub-tree of it) holds, depth first, paths relative to NAME."""
    _, node, _ = resolve(repo, name, None)
    if node.type != "dir":
        return [_node_json(node, node.name)]
    out: list[dict[str, Any]] = []

    def walk(tree_id: bytes | None, prefix: str) -> None:
        if tree_id is None:
            return
        for child in repo.load_tree(tree_id):
            path = f"{prefix}{child.name}"
            out.append(_node_json(child, path))
            if child.type == "dir" and recursive:
                walk(child.subtree, path + "/")

    walk(node.subtree, "")
    return out


def history(repo: Repository, name: str) -> list[dict[str, Any]]:
    check_name(name)
    recs = [r for r in repo.records() if r.item == name]
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
    recs = [r for r in repo.records() if r.item == name]
    if not recs:
        raise NotFoundError(f"no item named {name!r}")
    if version is not None:
        recs = [r for r in recs if r.version == version]
        if not recs:
            raise NotFoundError(f"{name!r} has no version {version}")
    repo.remove_records([rec.record_id for rec in recs])
    return recs


def info(repo: Repository) -> dict[str, Any]:
    """Format, KDF parameters of the key in use, counts, and sizes with the dedup and compression ratios."""
    records = repo.records()
    index = repo.index
    unique_raw = stored_blobs = 0
    for loc in index.locations():
        if loc.entry.blob_type == fmt.BlobType.DATA:
            unique_raw += loc.entry.raw_length
            stored_blobs += loc.entry.length
    original = sum(r.size for r in records)
    stored = repo.stored_bytes()
    p = repo.slot.params
    return {
        "format_version": repo.config.format_version,
        "location": repo.backend.location,
        "retention_days": repo.config.retention_days,
        "created": repo.config.created,
        "items": len({r.item for r in records}),
        "versions": len(records),
        "blobs": len(index),
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
