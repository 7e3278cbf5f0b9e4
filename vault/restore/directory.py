"""Restoring a directory tree: walk it in order, write its files on the pools, move them into place in batches.

Why in batches, and why they are durable before they are renamed: "tree restores" below.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import deque
from concurrent.futures import Future
from typing import TYPE_CHECKING

from vault.errors import ConflictError, IntegrityError, StorageError, VaultError
from vault.repo.tree import Node, valid_segment
from vault.restore.durability import FileSystems
from vault.restore.files import open_dir, write_link, write_temp

if TYPE_CHECKING:
    from vault.restore.restorer import GetResult, Restorer

log = logging.getLogger(__name__)

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


def restore_tree(restorer: Restorer, parent_fd: int, leaf: str, node: Node, force: bool, result: GetResult) -> None:
    """Restore the directory ``node`` as ``leaf`` inside ``parent_fd``: once this returns, everything is written,
    durable and in place. What could not be restored (damage, a conflict) is named in ``result.failed``."""
    tree = _TreeRestore(restorer, result.destination, force, result)
    try:
        tree.fs.watch(parent_fd)
        root = tree.adopt_dir(open_dir(parent_fd, leaf, force), node)
        try:
            tree.walk(root, node, leaf)
        finally:
            root.release()
        tree.finish()
    finally:
        tree.close()


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
        self.force = force
        self.result = result
        self.fs = FileSystems(dest, restorer.pipeline.timer)
        self.limit = restorer.pipeline.max_in_flight
        self.small: list[_Item] = []
        self.small_bytes = 0
        self.inflight: deque[tuple[Future[list[_Written | VaultError]], list[_Item]]] = deque()
        self.pending: list[tuple[_Dir, str, Node, int]] = []
        self.flushing: tuple[Future[None], list[tuple[_Dir, str, Node, int]]] | None = None
        self.pending_bytes = 0
        self.pending_dirs: set[int] = set()

    # -- main thread -----------------------------------------------------------------------------------------
    def adopt_dir(self, fd: int, node: Node) -> _Dir:
        """``fd``, a directory just opened to restore ``node`` into, as a _Dir of this restore."""
        try:
            self.fs.watch(fd)
        except OSError:
            os.close(fd)
            raise
        return _Dir(fd, node, fsync=self.fs.per_file)

    def walk(self, d: _Dir, node: Node, path: str) -> None:
        """Walk a stored tree in the main thread: directories and links in order, files handed to ``add_file``,
        which writes them on the pools to be moved into place in batches."""
        assert node.subtree is not None
        seen: set[str] = set()
        for child in self.r.repo.load_tree(node.subtree):
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
                    self.add_file(d, child, child_path)
                elif child.type == "link":
                    write_link(d.fd, child, self.force)
                else:
                    sub = self.adopt_dir(open_dir(d.fd, child.name, self.force), child)
                    try:
                        self.walk(sub, child, child_path)
                    finally:
                        sub.release()
            except (IntegrityError, ConflictError) as exc:
                self.result.failed.append(child_path)
                log.warning("not restored: %s: %s", child_path, exc)  # the one error line comes last
            except OSError as exc:
                raise StorageError(f"cannot restore {child_path}: {exc.strerror}") from None

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
        self.fs.sync()

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
            self.fs.close()

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

    # -- on the pools ----------------------------------------------------------------------------------------
    def _sync_and_rename(self, batch: list[tuple[_Dir, str, Node, int]]) -> None:
        """I/O pool: make the batch durable, then rename it into place. On a failure the files not yet renamed
        are removed. (The main thread releases the batch's directories once this returned.)"""
        done = 0
        try:
            self.fs.sync()
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
                chunks = self.r.checked(node, map(self.r.load_blob, node.content))
                try:
                    out.append(write_temp(d.fd, node, self.force, chunks, fsync=self.fs.per_file,
                                          timer=self.r.pipeline.timer))
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
            return [write_temp(d.fd, node, self.force, self.r.chunks(node), fsync=self.fs.per_file,
                               timer=self.r.pipeline.timer)]
        except (IntegrityError, ConflictError) as exc:
            return [exc]


def _set_dir_meta(fd: int, node: Node) -> None:
    with contextlib.suppress(OSError):
        os.fchmod(fd, node.mode & 0o7777)
        os.utime(fd, ns=(node.mtime_ns, node.mtime_ns))
