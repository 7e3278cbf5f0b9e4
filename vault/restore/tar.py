"""`vault get DIRNAME -o -`: a directory version as a POSIX (pax) tar stream on standard output.

Members are named relative to the directory (its own entry is ``./``, first), depth first, each directory before
what it holds; modes, modification times (to the nanosecond, in pax headers) and link targets are the stored ones;
owners are the stored ones (ids and names, as tar and restic's dump write them), or the user running `get`
for a node stored without one (a version 1 tree). Headers are encoded by the standard library's
``tarfile.TarInfo`` (long and non-UTF-8 names included); the stream around them is written here, because
tarfile's stream writer re-copies its buffer for every 10 KiB record (measured: most of the time of a 1 GiB file).

Every chunk is authenticated before a byte of it is written. The chunks of all files travel through one ordered
pipeline, so decoding runs ahead across file boundaries (many small files cost no thread hop each). On damage the
stream simply stops, without the end-of-archive blocks, so no reader takes what was written for a whole archive,
and the command exits 20.
"""

from __future__ import annotations

import os
import tarfile
from collections import deque
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from vault.browse.trees import TreeReader, walk
from vault.errors import IntegrityError
from vault.pipeline.runner import Pipeline
from vault.repo.repository import Repository
from vault.repo.tree import Node

BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE


@dataclass
class TarResult:
    members: int = 0
    files: int = 0
    bytes_written: int = 0  # file contents (what the operation log records as bytes)


def pax_time(ns: int) -> str:
    """A time in nanoseconds as a pax decimal number of seconds, exactly."""
    sign = "-" if ns < 0 else ""
    whole, frac = divmod(abs(ns), 10**9)
    return f"{sign}{whole}.{frac:09d}".rstrip("0").rstrip(".") if frac else f"{sign}{whole}"


def header(path: str, node: Node, uid: int, gid: int) -> bytes:
    """The tar header blocks (a pax extended header first when needed) of one stored node; ``uid`` and ``gid``
    stand in for an owner the node does not store."""
    info = tarfile.TarInfo(path)
    info.mode = node.mode & 0o7777
    info.uid = node.uid if node.uid is not None else uid
    info.gid = node.gid if node.gid is not None else gid
    info.uname, info.gname = node.user, node.group
    info.mtime = node.mtime_ns // 10**9
    if node.mtime_ns % 10**9 or node.mtime_ns < 0:
        info.pax_headers = {"mtime": pax_time(node.mtime_ns)}
    if node.type == "dir":
        info.type = tarfile.DIRTYPE
    elif node.type == "link":
        info.type = tarfile.SYMTYPE
        info.linkname = node.target
    else:
        info.type = tarfile.REGTYPE
        info.size = node.size
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class TarWriter:
    """Writes one directory node as a tar stream."""

    def __init__(self, repo: Repository, pipeline: Pipeline, out: BinaryIO) -> None:
        self.repo = repo
        self.pipeline = pipeline
        self.out = out
        self.reader = TreeReader(repo)
        self.result = TarResult()
        self._offset = 0
        # Read ahead of the writer: headers to write and files to finish, interleaved with their chunks.
        self._plan: deque[tuple[str, str, Node]] = deque()
        self._uid, self._gid = os.getuid(), os.getgid()

    def _write(self, data: bytes) -> None:
        self.out.write(data)
        self._offset += len(data)

    def _chunk_ids(self, root: Node) -> Iterator[bytes]:
        """Every chunk id of the tree in order, planning each header (and each file's end) as it goes."""
        self._plan.append(("head", ".", root))
        for path, node in walk(self.reader, root):
            self._plan.append(("head", path, node))
            if node.type == "file":
                for chunk_id in node.content:
                    self._plan.append(("chunk", path, node))
                    yield chunk_id
                self._plan.append(("end", path, node))

    def write(self, root: Node) -> TarResult:
        """Write ``root`` (a directory) and the end-of-archive blocks. IntegrityError on damage: the stream then
        stops where the damage is, without the end blocks. StorageError (a closed pipe propagates as
        BrokenPipeError)."""
        if root.type != "dir":
            raise IntegrityError(f"{root.name!r} is not a directory")
        decoded: Generator[bytes, None, None] = self.pipeline.ordered(  # type: ignore[assignment]
            lambda cid: self.repo.load_blob(cid), self._chunk_ids(root))
        ready: deque[bytes] = deque()
        written = 0  # of the current file
        try:
            while True:
                if not self._plan:
                    data = next(decoded, None)  # runs the walk on to its next chunk (or its end)
                    if data is None and not self._plan:
                        break
                    if data is not None:
                        ready.append(data)
                    continue
                kind, path, node = self._plan.popleft()
                if kind == "head":
                    self._write(header(path, node, self._uid, self._gid))
                    self.result.members += 1
                    written = 0
                elif kind == "chunk":
                    data = ready.popleft() if ready else next(decoded)
                    written += len(data)
                    if written > node.size:
                        raise IntegrityError(f"{path!r} is longer than its tree says; the vault may be damaged")
                    self._write(data)
                    self.result.bytes_written += len(data)
                else:
                    if written != node.size:
                        raise IntegrityError(f"{path!r} is shorter than its tree says; the vault may be damaged")
                    self._write(b"\0" * (-written % BLOCK))
                    self.result.files += 1
        finally:
            decoded.close()
        self._write(b"\0" * (2 * BLOCK))
        self._write(b"\0" * (-self._offset % RECORD))
        self.out.flush()
        return self.result
