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
import ctypes
import errno
import logging
import os
import secrets
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import BinaryIO, TypeVar

from vault.errors import ConflictError, IntegrityError, NotFoundError, StorageError, UsageError, VaultError
from vault.names import split_name
from vault.pipeline.runner import Pipeline
from vault.pipeline.timing import Stage
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
        # Fetch, open and decompress are stages of the pipeline's timer (so are write, fsync, syncfs below).
        self.load_blob: Callable[[bytes], bytes] = lambda blob_id: repo.load_blob(blob_id, timer=pipeline.timer)

    # -- file contents ---------------------------------------------------------------------------------------
    def chunks(self, node: Node) -> Iterator[bytes]:
        """The file's plaintext, chunk by chunk, each authenticated before it is yielded (decoded on the CPU
        pool, in order). The total length is checked against the tree at the end (IntegrityError)."""
        return self._checked(node, self.pipeline.ordered(self.load_blob, node.content))

    def _checked(self, node: Node, decoded: Iterable[bytes]) -> Iterator[bytes]:
        total = 0
        try:
            for data in decoded:
                total += len(data)
                if total > node.size:
                    raise IntegrityError(f"{node.name!r} is longer than its tree says; the vault may be damaged")
                if self.progress:
                    self.progress(len(data))
                yield data
        finally:
            _close(decoded)
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
        """Write one file beside its destination, fsync it, then rename it into place (a single-file restore)."""
        tmp, n = self._write_temp(dir_fd, node, force, self.chunks(node), fsync=True)
        try:
            _os_call(lambda: os.rename(tmp, node.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd),
                     f"cannot move {node.name} into place")
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
        return n

    def _write_temp(self, dir_fd: int, node: Node, force: bool, chunks: Iterable[bytes], fsync: bool
                    ) -> tuple[str, int]:
        """Write ``chunks`` (the file's verified plaintext) to a new 0600 temporary file beside ``node.name``
        and give it the node's mode and mtime; returns its name and size. Durable only with ``fsync``. On any
        failure the temporary file is removed and the error raised."""
        if not force and _lexists(dir_fd, node.name):
            raise ConflictError(f"{node.name} exists already; use --force to overwrite it")
        tmp = f".{node.name[:64]}.vault-{secrets.token_hex(4)}.tmp"
        fd = _os_call(lambda: os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                                      0o600, dir_fd=dir_fd), f"cannot create a file beside {node.name}")
        ok = False
        flusher = _Flusher(fd) if node.size >= 2 * FLUSH_EVERY_BYTES else None
        try:
            n = 0
            try:
                for data in chunks:
                    with self.pipeline.timer.stage(Stage.WRITE):
                        _os_call(lambda d=data: _write_all(fd, d), f"cannot write {node.name}")  # type: ignore[misc]
                    n += len(data)
                    if flusher is not None:
                        _os_call(lambda t=n: flusher.wrote(t), f"cannot write {node.name}")  # type: ignore[misc]
                if flusher is not None:
                    _os_call(flusher.close, f"cannot write {node.name}")
                os.fchmod(fd, node.mode & 0o7777)
                os.utime(fd, ns=(node.mtime_ns, node.mtime_ns))
                if fsync:
                    with self.pipeline.timer.stage(Stage.FSYNC):
                        _os_call(lambda: os.fsync(fd), f"cannot write {node.name}")
            finally:
                if flusher is not None:
                    flusher.abandon()  # no fdatasync may still run on fd once it is closed
                os.close(fd)
            ok = True
            return tmp, n
        finally:
            # Now, not when the traceback that holds this frame is dropped: closing Pipeline.ordered waits
            # for its chunks in flight, which must happen while the pool still runs.
            _close(chunks)
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

    def _restore_tree(self, d: _Dir, node: Node, path: str, tree: _TreeRestore) -> None:
        """Walk a stored tree in the main thread: directories and links in order, files handed to ``tree``,
        which writes them on the pools and moves them into place in batches."""
        assert node.subtree is not None
        seen: set[str] = set()
        for child in self.repo.load_tree(node.subtree):
            child_path = f"{path}/{child.name}"
            try:
                # decode_tree checked the names already; never trust one layer (a name with "/", "..", NUL or
                # an absolute path would make the *at() calls below leave the directory; a repeated one could
                # pair a link with a directory of the same name).
                if not valid_segment(child.name) or child.name in seen:
                    child_path = f"{path}/{child.name!r}"
                    raise IntegrityError(f"{child_path}: unsafe or repeated name in the stored tree")
                seen.add(child.name)
                if child.type == "file":
                    tree.add_file(d, child, child_path)
                elif child.type == "link":
                    self._write_link(d.fd, child, tree.force)
                else:
                    sub = tree.open_dir(self._open_dir(d.fd, child.name, tree.force), child)
                    try:
                        self._restore_tree(sub, child, child_path, tree)
                    finally:
                        sub.release()
            except (IntegrityError, ConflictError) as exc:
                tree.result.failed.append(child_path)
                log.warning("not restored: %s: %s", child_path, exc)  # the one error line comes last
            except OSError as exc:
                raise StorageError(f"cannot restore {child_path}: {exc.strerror}") from None

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
                tree = _TreeRestore(self, dest, force, result)
                try:
                    tree.watch(parent_fd)
                    root = tree.open_dir(self._open_dir(parent_fd, leaf, force), node)
                    try:
                        self._restore_tree(root, node, leaf, tree)
                    finally:
                        root.release()
                    tree.finish()
                finally:
                    tree.close()
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


# -- tree restores: write many files, make them durable together, then move them into place ------------------
#
# One fsync per small file costs more than writing it (ext4 commits its journal for each; py-spy put 34% of a
# tree restore there). A tree restore therefore writes each file to a temporary name beside its destination
# without fsync, and every SYNC_BATCH_BYTES (or SYNC_BATCH_DIRS directories) and at the end makes the whole
# batch durable with one syncfs(2) on each file system written to, and only then renames the batch into place;
# a last syncfs makes the renames (and the directories' modes and times) durable before the command reports
# success. So a file appears under its final name only complete, verified *and* durable, exactly as with one
# fsync per file: a crash at any instant leaves under each final name either what was there before (an
# existing file that --force replaces is never lost) or the complete restored file, never an empty or short
# one (ext4's delayed allocation would otherwise leave zero-length files behind a rename that outran the
# data). What a crash can leave is temporary files (``.NAME.vault-XXXXXXXX.tmp``) of the batch in progress.
# Where syncfs is missing (not Linux), each file is fsynced before it is closed and each directory after its
# renames, as before. syncfs also writes back other programs' dirty data on the same file system; that is the
# price of one journal commit instead of thousands.
#
# Small files (up to SMALL_FILE_BYTES) go to the CPU pool in batches of up to SMALL_BATCH_FILES files or
# SMALL_BATCH_BYTES: a worker fetches, authenticates and decodes each file's chunks itself and writes the
# file, so there is no thread hop per file. Bigger files are written on the I/O pool, their chunks decoded on
# the CPU pool in order (bounded memory whatever the size).
SYNC_BATCH_BYTES = 64 << 20
SYNC_BATCH_FILES = 1024
SYNC_BATCH_DIRS = 256
SMALL_FILE_BYTES = 1 << 20
SMALL_BATCH_BYTES = 1 << 20
SMALL_BATCH_FILES = 64

_Written = tuple[str, int]  # a temporary file's name and size
_Item = tuple["_Dir", Node, str]  # where, what, and its path for messages


def _load_syncfs() -> Callable[[int], None] | None:
    """``syncfs(2)`` through libc (Python has no wrapper), or None where there is none. It returns writeback
    errors of the file system since the descriptor was opened (Linux 5.8+)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int

    def syncfs(fd: int) -> None:
        if fn(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    return syncfs


_SYNCFS = _load_syncfs()


class _Dir:
    """A destination directory, open (``O_NOFOLLOW``) while anything still writes or renames into it. Its own
    mode and mtime are set when the last user lets go: a rename changes a directory's mtime, and a read-only
    mode would refuse it. Main thread only."""

    __slots__ = ("fd", "fsync", "node", "refs")

    def __init__(self, fd: int, node: Node, fsync: bool) -> None:
        self.fd = fd
        self.node = node
        self.fsync = fsync
        self.refs = 1

    def acquire(self) -> _Dir:
        self.refs += 1
        return self

    def release(self) -> None:
        self.refs -= 1
        if self.refs:
            return
        try:
            _set_dir_meta(self.fd, self.node)
            if self.fsync:
                with contextlib.suppress(OSError):  # refused by a few file systems; the renames happened
                    os.fsync(self.fd)
        finally:
            os.close(self.fd)


class _TreeRestore:
    """The files of one tree restore: written on the pools, collected in order, made durable and renamed in
    batches (see above). ``close`` always runs: after a failure it waits for the writers and removes every
    temporary file that was not renamed."""

    def __init__(self, restorer: Restorer, dest: str, force: bool, result: GetResult) -> None:
        self.r = restorer
        self.dest = dest
        self.force = force
        self.result = result
        self.syncfs = _SYNCFS
        self.limit = restorer.pipeline.max_in_flight
        self.small: list[_Item] = []
        self.small_bytes = 0
        self.inflight: deque[tuple[Future[list[_Written | VaultError]], list[_Item]]] = deque()
        self.pending: list[tuple[_Dir, str, Node, int]] = []
        self.flushing: tuple[Future[None], list[tuple[_Dir, str, Node, int]]] | None = None
        self.pending_bytes = 0
        self.pending_dirs: set[int] = set()
        self.devices: dict[int, int] = {}  # st_dev -> a descriptor on that file system, for syncfs

    # -- main thread -----------------------------------------------------------------------------------------
    def watch(self, fd: int) -> None:
        """Remember ``fd``'s file system for syncfs (opened before anything is written there, so syncfs
        reports every writeback error since)."""
        if self.syncfs is None:
            return
        dev = os.fstat(fd).st_dev
        if dev not in self.devices:
            self.devices[dev] = os.dup(fd)

    def open_dir(self, fd: int, node: Node) -> _Dir:
        try:
            self.watch(fd)
        except OSError:
            os.close(fd)
            raise
        return _Dir(fd, node, fsync=self.syncfs is None)

    def add_file(self, d: _Dir, node: Node, path: str) -> None:
        if node.size <= SMALL_FILE_BYTES:
            self.small.append((d.acquire(), node, path))
            self.small_bytes += node.size
            if self.small_bytes >= SMALL_BATCH_BYTES or len(self.small) >= SMALL_BATCH_FILES:
                self._submit_small()
        else:
            item = (d.acquire(), node, path)
            self._submit(self.r.pipeline.io.submit(self._write_one, item), [item])

    def finish(self) -> None:
        """Write what is left, make everything durable and move it into place."""
        self._submit_small()
        while self.inflight:
            self._collect_one()
        self._flush(wait=True)
        # The renames, and the directories' modes and times set as the last file of each went in.
        self._sync()

    def close(self) -> None:
        """Release everything; after a failure, first wait for the writers and remove their temporary files."""
        try:
            for fut, _ in self.inflight:
                fut.cancel()
            for fut, items in self.inflight:
                try:
                    outcomes = fut.result()
                except Exception:  # already failing; a writer that failed removed its own files
                    outcomes = []
                for (d, _, _), out in zip(items, outcomes, strict=False):
                    if isinstance(out, tuple):
                        with contextlib.suppress(OSError):
                            os.unlink(out[0], dir_fd=d.fd)
                for d, _, _ in items:
                    d.release()
            self.inflight.clear()
            for d, _, _ in self.small:
                d.release()
            self.small.clear()
            if self.flushing is not None:
                with contextlib.suppress(Exception):  # what it renamed is complete and durable; it removed the rest
                    self._finish_flush()
            for d, tmp, _, _ in self.pending:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=d.fd)
                d.release()
            self.pending.clear()
        finally:
            for fd in self.devices.values():
                os.close(fd)
            self.devices.clear()

    def _submit_small(self) -> None:
        if self.small:
            batch, self.small, self.small_bytes = self.small, [], 0
            self._submit(self.r.pipeline.cpu.submit(self._write_batch, batch), batch)

    def _submit(self, fut: Future[list[_Written | VaultError]], items: list[_Item]) -> None:
        self.inflight.append((fut, items))
        while len(self.inflight) >= self.limit:
            self._collect_one()

    def _collect_one(self) -> None:
        fut, items = self.inflight[0]
        outcomes = fut.result()  # a StorageError ends the restore; close() cleans up
        self.inflight.popleft()
        for (d, node, path), out in zip(items, outcomes, strict=True):
            if isinstance(out, VaultError):
                self.result.failed.append(path)
                log.warning("not restored: %s: %s", path, out)
                d.release()
            else:
                self.pending.append((d, out[0], node, out[1]))
                self.pending_bytes += out[1]
                self.pending_dirs.add(id(d))
        if (self.pending_bytes >= SYNC_BATCH_BYTES or len(self.pending) >= SYNC_BATCH_FILES
                or len(self.pending_dirs) >= SYNC_BATCH_DIRS):
            self._flush()

    def _flush(self, wait: bool = False) -> None:
        """Hand the written files to the I/O pool, which makes them durable and then renames them into place,
        while the writers go on with the next batch. One batch at a time; ``wait`` also waits for it."""
        self._finish_flush()
        if self.pending:
            batch, self.pending = self.pending, []
            self.pending_bytes = 0
            self.pending_dirs.clear()
            self.flushing = (self.r.pipeline.io.submit(self._sync_and_rename, batch), batch)
        if wait:
            self._finish_flush()

    def _finish_flush(self) -> None:
        if self.flushing is None:
            return
        fut, batch = self.flushing
        try:
            fut.result()  # a StorageError ends the restore (the batch's temporary files are gone)
        finally:
            self.flushing = None
            for d, _, _, _ in batch:
                d.release()  # sets a directory's mode and time once its last file is in
        self.result.files += len(batch)
        self.result.bytes_written += sum(n for _, _, _, n in batch)

    def _sync(self) -> None:
        if self.syncfs is None:
            return  # every file was fsynced before it was closed
        for fd in self.devices.values():
            try:
                with self.r.pipeline.timer.stage(Stage.SYNCFS):
                    self.syncfs(fd)
            except OSError as exc:
                if exc.errno != errno.ENOSYS:
                    raise StorageError(f"cannot write {self.dest}: {exc.strerror}") from None
                os.sync()  # syncfs refused (a seccomp filter, an old emulation layer): sync everything

    # -- on the pools ----------------------------------------------------------------------------------------
    def _sync_and_rename(self, batch: list[tuple[_Dir, str, Node, int]]) -> None:
        """I/O pool: make the batch durable, then rename it into place. On a failure the files not yet renamed
        are removed. (The main thread releases the batch's directories once this returned.)"""
        done = 0
        try:
            self._sync()
            for d, tmp, node, _ in batch:
                try:
                    os.rename(tmp, node.name, src_dir_fd=d.fd, dst_dir_fd=d.fd)
                except OSError as exc:
                    raise StorageError(f"cannot move {node.name} into place: {exc.strerror}") from None
                done += 1
        except BaseException:
            for d, tmp, _, _ in batch[done:]:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=d.fd)
            raise

    def _write_batch(self, items: list[_Item]) -> list[_Written | VaultError]:
        """CPU pool: small files, each fetched and decoded here (no hop per file) and written to its temporary
        file. Damage or a conflict is that file's outcome; any other failure removes the batch's files."""
        out: list[_Written | VaultError] = []
        try:
            for d, node, _ in items:
                chunks = self.r._checked(node, map(self.r.load_blob, node.content))
                try:
                    out.append(self.r._write_temp(d.fd, node, self.force, chunks, fsync=self.syncfs is None))
                except (IntegrityError, ConflictError) as exc:
                    out.append(exc)
        except BaseException:
            for (d, _, _), o in zip(items, out, strict=False):
                if isinstance(o, tuple):
                    with contextlib.suppress(OSError):
                        os.unlink(o[0], dir_fd=d.fd)
            raise
        return out

    def _write_one(self, item: _Item) -> list[_Written | VaultError]:
        """I/O pool: one bigger file, its chunks decoded on the CPU pool in order."""
        d, node, _ = item
        try:
            return [self.r._write_temp(d.fd, node, self.force, self.r.chunks(node), fsync=self.syncfs is None)]
        except (IntegrityError, ConflictError) as exc:
            return [exc]


FLUSH_EVERY_BYTES = 64 << 20


class _Flusher:
    """While a big file is written, ``fdatasync`` it every FLUSH_EVERY_BYTES on a thread of its own (never
    a pool thread: the writers on the I/O pool would wait for it), one at a time, so its dirty pages stay
    bounded and the last fsync (or syncfs) finds little left to write: the page cache is written back while
    the restore goes on instead of after it. An error of one is raised by the next ``wrote`` or ``close``."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.synced_to = 0
        self.pool: ThreadPoolExecutor | None = None
        self.running: Future[None] | None = None

    def wrote(self, total: int) -> None:
        if total - self.synced_to < FLUSH_EVERY_BYTES:
            return
        if self.running is not None:
            if not self.running.done():
                return  # still busy: the next write tries again
            self.running.result()
        if self.pool is None:
            self.pool = ThreadPoolExecutor(1, thread_name_prefix="vault-fdatasync")
        self.synced_to = total
        self.running = self.pool.submit(os.fdatasync, self.fd)

    def close(self) -> None:
        if self.running is not None:
            running, self.running = self.running, None
            running.result()

    def abandon(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None


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


def _close(it: Iterable[bytes]) -> None:
    close = getattr(it, "close", None)
    if close is not None:
        close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:  # regular files never do this, but a loop that can't progress must not spin
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        view = view[n:]


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

