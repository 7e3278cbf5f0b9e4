"""Trees: the JSON of a tree blob, its nodes, and the checks on the untrusted names they hold.

A tree is the encrypted description of an item version's files, directories and links: a blob of type TREE
holding canonical JSON ``{"v": 2, "nodes": [...]}``. A node is a file (with the ordered list of its chunk ids),
a directory (with the id of its own tree), or a symbolic link (with its target). Version 2 adds each node's
owner (numeric ids and, where the storing machine had them, user and group names, as restic and borg keep);
version 1 trees, which have none, still read (their owner is unknown). Because a file's chunk list
lives inside an authenticated tree, a blob that was swapped, dropped or reordered is detected just as a
reordered chunk in age's stream is. Node names come from untrusted bytes and are checked here; the restore
code checks them again against its destination (never trust one layer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vault.errors import IntegrityError
from vault.format.constants import check_version
from vault.format.documents import decode_json_object, encode_json, id_from_hex

TREE_VERSION = 2
# Version 2 added ownership (uid, gid, user, group); version 1 trees read with the owner unknown.
TREE_VERSION_OWNERS = 2
NODE_TYPES = ("file", "dir", "link")
MAX_NAME_BYTES = 4096
# uid_t and gid_t are 32-bit; (uid_t)-1 means "unchanged" to chown(2), so it is never an owner.
MAX_OWNER_ID = 2**32 - 2
# Longer than any user or group name a passwd or group database holds (glibc allows 256 bytes).
MAX_OWNER_NAME = 256


@dataclass(frozen=True)
class Node:
    name: str
    type: str
    mode: int = 0o644
    mtime_ns: int = 0
    size: int = 0
    content: tuple[bytes, ...] = ()  # file: chunk ids in order
    subtree: bytes | None = None  # dir: id of its tree blob
    target: str = ""  # link: its target, restored verbatim
    # file: the inode and change time it had when stored; the next put compares them (with size and
    # mtime) to decide whether the file changed, as restic's parent-snapshot check does.
    inode: int = 0
    ctime_ns: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    # The owner when stored (tree version 2): numeric ids, and the names they had on the storing machine
    # ("" where it had none). None: unknown (a version 1 tree), so a restore can't give it back.
    uid: int | None = None
    gid: int | None = None
    user: str = ""
    group: str = ""

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": self.name, "type": self.type, "mode": self.mode, "mtime_ns": self.mtime_ns}
        if self.type == "file":
            doc["size"] = self.size
            doc["content"] = [c.hex() for c in self.content]
            doc["inode"] = self.inode
            doc["ctime_ns"] = self.ctime_ns
        elif self.type == "dir":
            doc["subtree"] = self.subtree.hex() if self.subtree else None
        else:
            doc["target"] = self.target
        if self.uid is not None:
            doc["uid"] = self.uid
        if self.gid is not None:
            doc["gid"] = self.gid
        if self.user:
            doc["user"] = self.user
        if self.group:
            doc["group"] = self.group
        doc.update(self.extra)
        return doc


def valid_segment(name: str) -> bool:
    """One path segment that can't climb out of or escape its directory."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\0" not in name


def encode_tree(nodes: list[Node]) -> bytes:
    return encode_json({"v": TREE_VERSION, "nodes": [n.to_json() for n in sorted(nodes, key=lambda n: n.name)]})


def _int(doc: dict[str, Any], key: str, what: str, lo: int = 0, hi: int = 2**63) -> int:
    v = doc.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise IntegrityError(f"{what} has a malformed {key}")
    return v


def _owner(item: dict[str, Any], what: str, version: int) -> dict[str, Any]:
    """The owner fields of a node (version 2): each optional, ids in range, names without NUL or control
    characters (they are looked up in the local user database on restore)."""
    if version < TREE_VERSION_OWNERS:
        return {}
    owner: dict[str, Any] = {}
    for key in ("uid", "gid"):
        if key in item:
            owner[key] = _int(item, key, what, 0, MAX_OWNER_ID)
    for key in ("user", "group"):
        if key in item:
            name = item[key]
            if (not isinstance(name, str) or not name or len(name) > MAX_OWNER_NAME
                    or any(ord(c) < 0x20 or c == "\x7f" for c in name)):
                raise IntegrityError(f"{what} has a malformed {key}")
            owner[key] = name
    return owner


def decode_tree(raw: bytes, what: str) -> list[Node]:
    """Parse and check a tree (version 1 or 2). Raises IntegrityError for anything malformed or unsafe,
    UnsupportedVersionError for a newer version."""
    doc = decode_json_object(raw, what)
    v = doc.get("v")
    if not isinstance(v, int) or isinstance(v, bool):
        raise IntegrityError(f"{what} has no version")
    check_version(v, what, maximum=TREE_VERSION)
    items = doc.get("nodes")
    if not isinstance(items, list):
        raise IntegrityError(f"{what} has no node list")
    nodes: list[Node] = []
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, dict):
            raise IntegrityError(f"{what} has a malformed node")
        name, ntype = item.get("name"), item.get("type")
        if not isinstance(name, str) or not valid_segment(name) or len(name) > MAX_NAME_BYTES:
            raise IntegrityError(f"{what} holds an unsafe or malformed name")
        if name in seen:
            raise IntegrityError(f"{what} holds a name twice")
        seen.add(name)
        if ntype not in NODE_TYPES:
            raise IntegrityError(f"{what} holds an unknown node type")
        mode = _int(item, "mode", what, 0, 0o7777)
        mtime = _int(item, "mtime_ns", what, -(2**63), 2**63)
        owner = _owner(item, what, v)
        if ntype == "file":
            content = item.get("content")
            if not isinstance(content, list):
                raise IntegrityError(f"{what} has a file without content")
            ids = tuple(id_from_hex(c, what) for c in content)
            inode = _int(item, "inode", what) if "inode" in item else 0
            ctime = _int(item, "ctime_ns", what, -(2**63), 2**63) if "ctime_ns" in item else 0
            nodes.append(
                Node(name, "file", mode, mtime, _int(item, "size", what), content=ids, inode=inode, ctime_ns=ctime,
                     **owner)
            )
        elif ntype == "dir":
            nodes.append(Node(name, "dir", mode, mtime, subtree=id_from_hex(item.get("subtree"), what), **owner))
        else:
            target = item.get("target")
            if not isinstance(target, str) or not target or "\0" in target or len(target) > MAX_NAME_BYTES:
                raise IntegrityError(f"{what} holds a malformed link")
            nodes.append(Node(name, "link", mode, mtime, target=target, **owner))
    return nodes
