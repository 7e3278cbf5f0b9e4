"""`vault put - --tar --name NAME`: a tar stream stored as a directory item, as if its tree had been put from disk.

The stream is read once, member by member (stdlib ``tarfile`` in stream mode; gzip, bzip2 and xz are recognised),
and never copied to disk: each regular file's contents go straight through the put's pipeline (Putter's chunker,
writer and ordered workers), so memory for data is bounded as for any put. A tar may list its members in any
order (a file before its directory, a name twice), so the tree is assembled from the nodes as they arrive and its
trees are written once the stream has ended: what is held is the directory structure's metadata, never contents.

As tar does when it extracts: a later member of the same name replaces an earlier one; a directory that only
appears in other members' names is made with mode 0755 and the time of the put; the ``./`` member gives the root
its mode and time. Hard links become files with the contents of the file they link to, as a put from disk stores
them. Other kinds (devices, FIFOs) are skipped and named (exit 3). A member whose name is absolute or climbs with
``..`` stops the put (exit 2) and no version is made; chunks stored before it are unreferenced (as after a failed
``--stdin-from-command``) and ``vault prune`` frees them.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import tarfile
import time
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import IO

from vault import format as fmt
from vault.archive.scan import FileEntry, Source
from vault.archive.store import Putter, _File  # the tar source plugs into Putter's reading and storing
from vault.errors import StorageError, UsageError
from vault.format.trees import MAX_OWNER_ID, MAX_OWNER_NAME
from vault.owners import Owner, group_name, user_name
from vault.repo.tree import MAX_NAME_BYTES, Node, encode_tree

READ_BUFFER = 1 << 20  # tarfile reads its stream in pieces this big


class _Slot:
    """A regular file's place in the tree, filled with its node once its chunks are stored."""

    __slots__ = ("node",)

    def __init__(self) -> None:
        self.node: Node | None = None


class _HardLink:
    __slots__ = ("display", "target")

    def __init__(self, target: list[str], display: str) -> None:
        self.target = target
        self.display = display


class _Dir:
    __slots__ = ("entries", "mode", "mtime_ns", "owner")

    def __init__(self, mode: int, mtime_ns: int, owner: Owner | None = None) -> None:
        self.mode = mode
        self.mtime_ns = mtime_ns
        self.owner = owner  # None: a directory the stream never named (or its root); stored without one
        self.entries: dict[str, _Dir | _Slot | _HardLink | Node] = {}


class TarPutter(Putter):
    """A Putter whose one source is a tar stream (:meth:`add_tar`)."""

    _tar: Source | None = None

    def add_tar(self, stream: IO[bytes], name: str) -> Source:
        """The tar stream ``stream`` (read when the put commits) as the directory item ``name``."""
        self._tar = self.scanner.add_stream(stream, name)
        self._now_ns = time.time_ns()
        self._root = _Dir(0o755, self._now_ns)
        self._slots: dict[int, _Slot] = {}
        return self._tar

    # -- reading: one member at a time --------------------------------------------------------------------
    def _jobs(self, sources: list[Source]) -> Iterator[_File]:
        for src in sources:
            if src is self._tar:
                yield from self._members(src)
            else:
                yield from super()._jobs([src])

    def _members(self, src: Source) -> Iterator[_File]:
        assert src.stream is not None
        try:
            tar = tarfile.open(fileobj=src.stream, mode="r|*", bufsize=READ_BUFFER)  # noqa: SIM115 (a stream)
        except tarfile.TarError as exc:
            raise UsageError(f"standard input is not a tar stream ({exc})") from None
        seq = 0
        try:
            for member in tar:
                segments = _segments(member.name)
                display = member.name
                if any(len(s) > MAX_NAME_BYTES for s in segments):
                    self._skip(src, display, "its name is too long")
                    continue
                mode, mtime = member.mode & 0o7777, _mtime_ns(member)
                owner = _owner(member)
                if not segments:
                    if member.isdir():
                        self._root.mode, self._root.mtime_ns, self._root.owner = mode, mtime, owner
                    else:
                        self._skip(src, display, "only a directory can be the root")
                elif member.isreg():
                    seq += 1
                    slot = self._slots[seq] = _Slot()
                    self._parent(segments).entries[segments[-1]] = slot
                    st = os.stat_result((stat.S_IFREG | mode, 0, 0, 1, 0, 0, member.size, 0, 0, 0))
                    reader = tar.extractfile(member)
                    assert reader is not None
                    entry = FileEntry("-", segments[-1], display, st, stream=reader, mtime_ns=mtime, owner=owner)
                    yield _File(entry, None, seq, src)
                elif member.isdir():
                    parent = self._parent(segments)
                    found = parent.entries.get(segments[-1])
                    if isinstance(found, _Dir):
                        found.mode, found.mtime_ns, found.owner = mode, mtime, owner
                    else:
                        parent.entries[segments[-1]] = _Dir(mode, mtime, owner)
                elif member.issym():
                    if not member.linkname or len(member.linkname) > MAX_NAME_BYTES:
                        self._skip(src, display, "its link target is empty or too long")
                        continue
                    node = Node(segments[-1], "link", mode, mtime, target=member.linkname, **owner)
                    self._parent(segments).entries[segments[-1]] = node
                elif member.islnk():
                    self._parent(segments).entries[segments[-1]] = _HardLink(_segments(member.linkname), display)
                else:
                    self._skip(src, display, "not a regular file, directory or link")
        except tarfile.TarError as exc:
            raise StorageError(f"cannot read the tar stream: {exc}") from None
        except OSError as exc:
            raise StorageError(f"cannot read standard input: {exc.strerror}") from None

    def _skip(self, src: Source, display: str, why: str) -> None:
        src.skipped.append(display)
        self.warn(f"skipping {display}: {why}")

    def _parent(self, segments: list[str]) -> _Dir:
        """The directory that holds ``segments``, made (or made a directory again: a later member wins) on the
        way."""
        d = self._root
        for seg in segments[:-1]:
            found = d.entries.get(seg)
            if not isinstance(found, _Dir):
                found = d.entries[seg] = _Dir(0o755, self._now_ns)
            d = found
        return d

    # -- storing: files land in their slots; the trees are written at the end -------------------------------
    def _stored(self, f: _File, node: Node | None) -> None:
        if f.src is not self._tar:
            super()._stored(f, node)
            return
        self._slots.pop(f.slot).node = node

    def _store_data(self, sources: list[Source]) -> None:
        super()._store_data(sources)
        src = self._tar
        if src is not None:
            src.root = self._build(src)

    def _build(self, src: Source) -> Node:
        """Write the trees bottom-up (an explicit stack: no depth is too deep); count files and bytes."""
        leaf = src.name.rsplit("/", 1)[-1]
        done: dict[int, Node] = {}
        stack: list[tuple[_Dir, str, bool]] = [(self._root, leaf, False)]
        while stack:
            d, name, expanded = stack.pop()
            if not expanded:
                stack.append((d, name, True))
                stack.extend((sub, n, False) for n, sub in d.entries.items() if isinstance(sub, _Dir))
                continue
            children: list[Node] = []
            for n, e in d.entries.items():
                node = self._resolve(src, n, e, done)
                if node is not None:
                    children.append(node)
            subtree = self.writer.store_one(encode_tree(children), fmt.BlobType.TREE)
            if d.owner is None:
                done[id(d)] = Node(name, "dir", d.mode, d.mtime_ns, subtree=subtree)
            else:
                done[id(d)] = Node(name, "dir", d.mode, d.mtime_ns, subtree=subtree, **d.owner)
        return done[id(self._root)]

    def _resolve(self, src: Source, name: str, e: _Dir | _Slot | _HardLink | Node, done: dict[int, Node]
                 ) -> Node | None:
        if isinstance(e, _Dir):
            return done[id(e)]
        if isinstance(e, Node):
            return e
        if isinstance(e, _HardLink):
            target = self._lookup(e.target)
            if target is None or target.node is None:
                self._skip(src, e.display, "a hard link to a file that is not in the stream")
                return None
            e = target
        if e.node is None:  # its contents could not be read
            return None
        src.files += 1
        src.size += e.node.size
        return dataclasses.replace(e.node, name=name)

    def _lookup(self, segments: list[str]) -> _Slot | None:
        d: _Dir | _Slot | _HardLink | Node = self._root
        for seg in segments:
            if not isinstance(d, _Dir) or seg not in d.entries:
                return None
            d = d.entries[seg]
        return d if isinstance(d, _Slot) else None


def _segments(name: str) -> list[str]:
    """A member's name as path segments (``.`` and empty ones dropped). UsageError for an absolute name or one
    that climbs with ``..``: such a tar is refused whole."""
    if name.startswith("/"):
        raise UsageError(f"tar member {name!r} has an absolute name; nothing was stored")
    segments = [s for s in name.split("/") if s not in ("", ".")]
    if ".." in segments:
        raise UsageError(f"tar member {name!r} climbs out with '..'; nothing was stored")
    return segments


def _owner(member: tarfile.TarInfo) -> Owner:
    """The owner a tar member names: its ids and user and group names, as `put` stores a file's. Ids out of
    range give the user running the put instead (as standard input gets), and a name a tree could not hold
    (too long, control characters) is left out: the stream must never make a tree that can't be read back."""
    def valid_id(i: object) -> bool:
        return isinstance(i, int) and 0 <= i <= MAX_OWNER_ID

    def valid_name(n: object) -> str:
        ok = isinstance(n, str) and len(n) <= MAX_OWNER_NAME and not any(ord(c) < 0x20 or c == "\x7f" for c in n)
        return n if ok and isinstance(n, str) else ""

    if not (valid_id(member.uid) and valid_id(member.gid)):
        return Owner(uid=os.getuid(), gid=os.getgid(), user=user_name(os.getuid()), group=group_name(os.getgid()))
    return Owner(uid=member.uid, gid=member.gid, user=valid_name(member.uname), group=valid_name(member.gname))


def _mtime_ns(member: tarfile.TarInfo) -> int:
    """The member's modification time to the nanosecond: a pax header's exact decimal when there is one."""
    text = member.pax_headers.get("mtime")
    if text is not None:
        try:
            return int(Decimal(text) * 10**9)
        except (InvalidOperation, ValueError):
            pass
    return int(Decimal(str(member.mtime)) * 10**9)
