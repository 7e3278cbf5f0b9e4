"""`vault get`: restore a file, a directory tree, or a file to standard output.

Rules (spec/cli.md, "get and where it writes"):
- a file appears at its destination only complete and verified: it is written to a temporary file beside it,
  fsynced, and renamed after the last chunk authenticated; on any failure the temporary file is removed;
- nothing is written outside DEST and never through a link: every directory is opened relative to its parent's
  descriptor with O_NOFOLLOW, and every name was checked when the tree was decoded (no ``/``, ``.``, ``..``);
- links are restored as links, whatever their target.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, TypeVar

from vault.errors import ConflictError, IntegrityError, NotFoundError, StorageError, UsageError, VaultError
from vault.names import split_name
from vault.pipeline.runner import Pipeline
from vault.repo.catalog import VersionRecord
from vault.repo.repository import Repository
from vault.repo.tree import Node, valid_segment

log = logging.getLogger(__name__)

T = TypeVar("T")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
Progress = Callable[[int], None]


@dataclass
class GetResult:
    name: str
    version: int
    destination: str
    files: int = 0
    bytes_written: int = 0
    failed: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "destination": self.destination,
            "files": self.files,
            "bytes": self.bytes_written,
            "failed": self.failed,
        }


def select_version(records: list[VersionRecord], item: str, version: int | None) -> VersionRecord:
    mine = [r for r in records if r.item == item]
    if not mine:
        raise NotFoundError(f"no item named {item!r}")
    if version is None:
        return mine[-1]
    for rec in mine:
        if rec.version == version:
            return rec
    raise NotFoundError(f"{item!r} has no version {version}")


def resolve(repo: Repository, name: str, version: int | None) -> tuple[VersionRecord, Node, list[str]]:
    """The item named ``name``, or the longest item name that is a path prefix of it with the rest as a path
    inside that item's tree. Returns the version, the node, and the path of the node inside the item."""
    segments = split_name(name)
    records = repo.records()
    items = {r.item for r in records}
    for cut in range(len(segments), 0, -1):
        item = "/".join(segments[:cut])
        if item in items:
            record = select_version(records, item, version)
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


class Restorer:
    def __init__(self, repo: Repository, pipeline: Pipeline, on_progress: Progress | None = None) -> None:
        self.repo = repo
        self.pipeline = pipeline
        self.progress = on_progress

    # -- file contents ---------------------------------------------------------------------------------------
    def chunks(self, node: Node) -> Iterator[bytes]:
        """The file's plaintext, chunk by chunk, each authenticated before it is yielded. The total length is
        checked against the tree at the end (IntegrityError)."""
        total = 0
        for data in self.pipeline.ordered(self.repo.load_blob, node.content):
            total += len(data)
            if total > node.size:
                raise IntegrityError(f"{node.name!r} is longer than its tree says; the vault may be damaged")
            if self.progress:
                self.progress(len(data))
            yield data
        if total != node.size:
            raise IntegrityError(f"{node.name!r} is shorter than its tree says; the vault may be damaged")

    def to_stream(self, node: Node, out: BinaryIO) -> int:
        if node.type != "file":
            raise UsageError("only a file can be written to standard output (-o -)")
        n = 0
        for data in self.chunks(node):
            out.write(data)
            n += len(data)
        out.flush()
        return n

    def _write_file(self, dir_fd: int, node: Node, force: bool) -> int:
        """Write one file beside its destination, fsync it, then rename it into place."""
        if not force and _lexists(dir_fd, node.name):
            raise ConflictError(f"{node.name} exists already; use --force to overwrite it")
        tmp = f".{node.name[:64]}.vault-{secrets.token_hex(4)}.tmp"
        fd = _os_call(lambda: os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                                      0o600, dir_fd=dir_fd), f"cannot create a file beside {node.name}")
        ok = False
        try:
            n = 0
            with os.fdopen(fd, "wb", closefd=True) as fh:
                for data in self.chunks(node):
                    _os_call(lambda d=data: fh.write(d), f"cannot write {node.name}")  # type: ignore[misc]
                    n += len(data)
                _os_call(fh.flush, f"cannot write {node.name}")
                os.fchmod(fh.fileno(), node.mode & 0o7777)
                os.utime(fh.fileno(), ns=(node.mtime_ns, node.mtime_ns))
                _os_call(lambda: os.fsync(fh.fileno()), f"cannot write {node.name}")
            _os_call(lambda: os.rename(tmp, node.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd),
                     f"cannot move {node.name} into place")
            ok = True
            return n
        finally:
            if not ok:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=dir_fd)

    # -- trees -----------------------------------------------------------------------------------------------
    def _write_link(self, dir_fd: int, node: Node, force: bool) -> None:
        if _lexists(dir_fd, node.name):
            if not force:
                raise ConflictError(f"{node.name} exists already; use --force to overwrite it")
            tmp = f".{node.name[:64]}.vault-{secrets.token_hex(4)}.tmp"
            os.symlink(node.target, tmp, dir_fd=dir_fd)
            os.rename(tmp, node.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        else:
            os.symlink(node.target, node.name, dir_fd=dir_fd)
        with contextlib.suppress(OSError, NotImplementedError):
            os.utime(node.name, ns=(node.mtime_ns, node.mtime_ns), dir_fd=dir_fd, follow_symlinks=False)

    def _open_dir(self, dir_fd: int, name: str, force: bool) -> int:
        """Create (or, with force, reuse) a directory and open it without following links."""
        try:
            os.mkdir(name, 0o700, dir_fd=dir_fd)
        except FileExistsError:
            if not force:
                raise ConflictError(f"{name} exists already; use --force to restore into it") from None
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise ConflictError(f"{name} exists and is not a directory; not restoring through it") from None
            raise StorageError(f"cannot open directory {name}: {exc.strerror}") from None

    def _try_write(self, dir_fd: int, node: Node, force: bool) -> int | VaultError:
        """A file of a tree restore, on the I/O pool: its damage or conflict is a result, not an abort."""
        try:
            return self._write_file(dir_fd, node, force)
        except (IntegrityError, ConflictError) as exc:
            return exc

    def _restore_tree(self, dir_fd: int, node: Node, path: str, force: bool, result: GetResult) -> None:
        """Links and directories in order; the files of each directory on the I/O pool, several at a time:
        creating, writing, fsyncing and renaming many small files is bound by system calls, and concurrent
        fsyncs share journal commits. Their chunks are still decoded on the CPU pool, a different pool, so the
        two never wait on each other."""
        assert node.subtree is not None
        seen: set[str] = set()
        files: list[Node] = []
        for child in self.repo.load_tree(node.subtree):
            child_path = f"{path}/{child.name}"
            try:
                # decode_tree checked the names already; never trust one layer (a name with "/", "..", NUL or
                # an absolute path would make the *at() calls below leave dir_fd; a repeated one could pair a
                # link with a directory of the same name).
                if not valid_segment(child.name) or child.name in seen:
                    child_path = f"{path}/{child.name!r}"
                    raise IntegrityError(f"{child_path}: unsafe or repeated name in the stored tree")
                seen.add(child.name)
                if child.type == "file":
                    files.append(child)
                elif child.type == "link":
                    self._write_link(dir_fd, child, force)
                else:
                    sub = self._open_dir(dir_fd, child.name, force)
                    try:
                        self._restore_tree(sub, child, child_path, force, result)
                        _set_dir_meta(sub, child)
                    finally:
                        os.close(sub)
            except (IntegrityError, ConflictError) as exc:
                result.failed.append(child_path)
                log.warning("not restored: %s: %s", child_path, exc)  # the one error line comes last
            except OSError as exc:
                raise StorageError(f"cannot restore {child_path}: {exc.strerror}") from None
        outcomes = self.pipeline.ordered(lambda f: self._try_write(dir_fd, f, force), files, pool=self.pipeline.io)
        for child, outcome in zip(files, outcomes, strict=True):
            if isinstance(outcome, VaultError):
                result.failed.append(f"{path}/{child.name}")
                log.warning("not restored: %s/%s: %s", path, child.name, outcome)
            else:
                result.bytes_written += outcome
                result.files += 1

    def restore(self, record: VersionRecord, node: Node, dest: str, force: bool) -> GetResult:
        """Restore ``node`` (file, dir or link) at path ``dest``. Raises ConflictError, StorageError; for a
        directory, IntegrityError after restoring everything else, naming what failed."""
        parent, leaf = os.path.split(os.path.abspath(dest))
        result = GetResult(record.item, record.version, dest)
        try:
            parent_fd = os.open(parent, _DIR_FLAGS & ~os.O_NOFOLLOW)
        except OSError as exc:
            raise StorageError(f"cannot write to {parent}: {exc.strerror}") from None
        try:
            if node.type == "file":
                result.bytes_written = self._write_file(parent_fd, _renamed(node, leaf), force)
                result.files = 1
            elif node.type == "link":
                self._write_link(parent_fd, _renamed(node, leaf), force)
            else:
                dir_fd = self._open_dir(parent_fd, leaf, force)
                try:
                    self._restore_tree(dir_fd, node, leaf, force, result)
                    _set_dir_meta(dir_fd, node)
                finally:
                    os.close(dir_fd)
            with contextlib.suppress(OSError):
                os.fsync(parent_fd)
        except OSError as exc:
            raise StorageError(f"cannot write {dest}: {exc.strerror}") from None
        finally:
            os.close(parent_fd)
        if result.failed:
            shown = ", ".join(result.failed[:5]) + (" ..." if len(result.failed) > 5 else "")
            raise RestoreFailed(result, f"{len(result.failed)} path(s) were not restored: {shown}")
        return result


class RestoreFailed(IntegrityError):
    """Some paths of a directory restore failed; ``result`` says what was restored and what was not."""

    def __init__(self, result: GetResult, message: str) -> None:
        super().__init__(message)
        self.result = result


def _renamed(node: Node, name: str) -> Node:
    return Node(name, node.type, node.mode, node.mtime_ns, node.size, node.content, node.subtree, node.target)


def _lexists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False


def _set_dir_meta(fd: int, node: Node) -> None:
    with contextlib.suppress(OSError):
        os.fchmod(fd, node.mode & 0o7777)
        os.utime(fd, ns=(node.mtime_ns, node.mtime_ns))


def _os_call(fn: Callable[[], T], message: str) -> T:
    try:
        return fn()
    except OSError as exc:
        raise StorageError(f"{message}: {exc.strerror}") from None


def destination(name: str, node: Node, out: str | None) -> str:
    """Default ``./basename(NAME)``; an existing directory DEST gets it inside."""
    base = name.rsplit("/", 1)[-1]
    if out is None:
        return os.path.join(".", base)
    if os.path.isdir(out) and not os.path.islink(out):
        return os.path.join(out, base)
    return out

