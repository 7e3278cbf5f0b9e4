"""Restoring a directory tree: walk it in order, write its files on the pools, move them into place in batches.

Why in batches, and why they are durable before they are put in place: "tree restores" below. The walk is
iterative (a tree nested thousands deep needs no recursion), refuses a directory that contains itself, and stops
once the tree expands beyond what its version record states (vault/repo/bounds.py).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import resource
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vault.errors import ConflictError, IntegrityError, StorageError, VaultError
from vault.repo.bounds import CYCLE, TreeBudget
from vault.repo.catalog import VersionRecord
from vault.repo.tree import Node, valid_segment
from vault.restore.destdir import DestDir
from vault.restore.durability import FileSystems
from vault.restore.files import Temp, discard, open_dir, place, write_link, write_temp

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
# Descriptors kept for everything but unnamed temporary files: the open directories of the walk (one per level,
# and those waiting for their batch), the pools, the storage's connections.
FD_RESERVE = 2 * SYNC_BATCH_DIRS + 512
# The soft RLIMIT_NOFILE a tree restore raises itself to, where the hard limit allows.
FD_WANTED = 1 << 16

_Written = Temp
_Item = tuple["DestDir", Node, str]  # where, what, and its path for messages
_Pending = tuple["DestDir", Temp, Node, str]  # a written file waiting for its batch: where, the file, what, its path


def restore_tree(restorer: Restorer, record: VersionRecord, parent_fd: int, leaf: str, node: Node, force: bool,
                 result: GetResult) -> None:
    """Restore the directory ``node`` of ``record`` as ``leaf`` inside ``parent_fd``: once this returns,
    everything is written, durable and in place. What could not be restored is named in ``result.failed``
    (damage, a conflict, a directory that contains itself) or ``result.skipped`` (a name longer than the file
    system allows). IntegrityError, restoring no more, once the tree expands beyond what ``record`` states."""
    tree = _TreeRestore(restorer, record, result.destination, force, result)
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


def _unnamed_batch_files(in_flight: int) -> int:
    """How many files a batch may hold when its temporary files are unnamed (each keeps a descriptor until its
    batch is in place); 0: use named temporary files, there are too few descriptors. Raises this process's soft
    RLIMIT_NOFILE towards the hard limit first (raising the soft limit is always allowed)."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = FD_WANTED if hard == resource.RLIM_INFINITY else min(hard, FD_WANTED)
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    except (OSError, ValueError):
        return 0
    if soft == resource.RLIM_INFINITY:
        return SYNC_BATCH_FILES
    # Open at once at most: the written files of the batches in flight, the pending batch and the one being
    # put in place (each overshoots by at most one small batch).
    spare = soft - FD_RESERVE - in_flight * SMALL_BATCH_FILES
    batch = min(SYNC_BATCH_FILES, spare // 2 - SMALL_BATCH_FILES)
    return batch if batch >= min(SYNC_BATCH_FILES, SMALL_BATCH_FILES) else 0


@dataclass
class _Frame:
    """One directory of the walk in progress: where its entries go and which of them are still to come."""

    dir: DestDir
    tree_id: bytes
    children: Iterator[Node]
    path: str
    seen: set[str] = field(default_factory=set)


class _TreeRestore:
    """The files of one tree restore: written on the pools, collected in order, made durable and put in place
    in batches (see above). ``close`` always runs: after a failure it waits for the writers and removes every
    temporary file that was not put in place."""

    def __init__(self, restorer: Restorer, record: VersionRecord, dest: str, force: bool,
                 result: GetResult) -> None:
        self.r = restorer
        self.record = record
        self.force = force
        self.result = result
        self.fs = FileSystems(dest, restorer.pipeline.timer)
        self.limit = restorer.pipeline.max_in_flight
        self.budget = TreeBudget(record)
        unnamed_batch = _unnamed_batch_files(self.limit)
        self.unnamed = unnamed_batch > 0
        self.batch_files = unnamed_batch or SYNC_BATCH_FILES
        self.small: list[_Item] = []
        self.small_bytes = 0
        self.inflight: deque[tuple[Future[list[_Written | VaultError]], list[_Item]]] = deque()
        self.pending: list[_Pending] = []
        self.flushing: tuple[Future[list[tuple[str, VaultError | OSError]]], list[_Pending]] | None = None
        self.pending_bytes = 0
        self.pending_dirs: set[int] = set()

    # -- main thread -----------------------------------------------------------------------------------------
    def adopt_dir(self, fd: int, node: Node) -> DestDir:
        """``fd``, a directory just opened to restore ``node`` into, as a DestDir of this restore."""
        try:
            self.fs.watch(fd)
        except OSError:
            os.close(fd)
            raise
        return DestDir(fd, node, fsync=self.fs.per_file, ownership=self.r.ownership)

    def _load(self, node: Node) -> tuple[bytes, list[Node]]:
        """The sub-tree of the directory ``node``, counted by the budget. IntegrityError."""
        if node.subtree is None:
            raise IntegrityError(f"{node.name}: a directory without a tree")
        nodes = self.r.repo.load_tree(node.subtree)
        self.budget.tree(node.subtree, nodes)
        return node.subtree, nodes

    def walk(self, root: DestDir, node: Node, path: str) -> None:
        """Walk a stored tree in the main thread, depth first with a stack of its own: directories and links in
        order, files handed to ``add_file``, which writes them on the pools to be put in place in batches. The
        walk ends (IntegrityError) once the tree expands beyond what its record states; a directory that
        contains itself is a failure of its own path."""
        tree_id, nodes = self._load(node)
        stack = [_Frame(root, tree_id, iter(nodes), path)]
        on_stack = {self.record.tree, tree_id}  # ids of the trees being walked: meeting one again is a cycle
        try:
            while stack:
                frame = stack[-1]
                child = next(frame.children, None)
                if child is None:
                    stack.pop()
                    on_stack.discard(frame.tree_id)
                    if stack:  # the root is the caller's to release
                        frame.dir.release()
                    continue
                self.budget.entry(child)  # past the bounds: the whole restore stops
                sub = self._restore_entry(frame, child, on_stack)
                if sub is not None:
                    stack.append(sub)
                    on_stack.add(sub.tree_id)
        finally:
            for frame in stack[1:]:
                frame.dir.release()

    def _restore_entry(self, frame: _Frame, child: Node, on_stack: set[bytes]) -> _Frame | None:
        """Restore one entry of ``frame``'s directory; for a directory, return the frame to walk it with. What
        fails is noted in the result (the walk goes on); StorageError ends the restore."""
        child_path = f"{frame.path}/{child.name}"
        d = frame.dir
        try:
            # decode_tree checked the names already; never trust one layer (a name with "/", "..", NUL or
            # an absolute path would make the *at() calls below leave the directory; a repeated one could
            # pair a link with a directory of the same name).
            if not valid_segment(child.name) or child.name in frame.seen:
                child_path = f"{frame.path}/{child.name!r}"
                raise IntegrityError(f"{child_path}: unsafe or repeated name in the stored tree")
            frame.seen.add(child.name)
            if d.too_long(child.name):
                self._skip(child_path)
                return None
            if child.type == "file":
                self.add_file(d, child, child_path)
            elif child.type == "link":
                write_link(d.fd, child, self.force, self.r.ownership)
            else:
                if child.subtree in on_stack:
                    raise IntegrityError(CYCLE)
                sub = self.adopt_dir(open_dir(d.fd, child.name, self.force), child)
                try:
                    tree_id, nodes = self._load(child)
                except BaseException:
                    sub.release()
                    raise
                return _Frame(sub, tree_id, iter(nodes), child_path)
        except (IntegrityError, ConflictError) as exc:
            self.result.failed.append(child_path)
            log.warning("not restored: %s: %s", child_path, exc)  # the one error line comes last
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                self._skip(child_path)
                return None
            raise StorageError(f"cannot restore {child_path}: {exc.strerror}") from None
        return None

    def _skip(self, path: str) -> None:
        """A name longer than the destination's file system allows: noted, the rest goes on (exit 3)."""
        self.result.skipped.append(path)
        log.warning("not restored: %s: its name is longer than the file system allows", path)

    def add_file(self, d: DestDir, node: Node, path: str) -> None:
        if node.size <= SMALL_FILE_BYTES:
            self.small.append((d.acquire(), node, path))
            self.small_bytes += node.size
            if self.small_bytes >= SMALL_BATCH_BYTES or len(self.small) >= SMALL_BATCH_FILES:
                self._submit_small()
        else:
            item = (d.acquire(), node, path)
            self._submit(self.r.pipeline.io.submit(self._write_one, item), [item])

    def finish(self) -> None:
        """Write what is left, make everything durable and put it into place."""
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
                    if isinstance(out, Temp):
                        discard(d.fd, out)
                for d, _, _ in items:
                    d.release()
            self.inflight.clear()
            for d, _, _ in self.small:
                d.release()
            self.small.clear()
            if self.flushing is not None:
                # What it put in place is complete and durable; it removed the rest.
                with contextlib.suppress(Exception):
                    self._finish_flush()
            for d, temp, _, _ in self.pending:
                discard(d.fd, temp)
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
                self.pending.append((d, out, node, path))
                self.pending_bytes += out.size
                self.pending_dirs.add(id(d))
        if (self.pending_bytes >= SYNC_BATCH_BYTES or len(self.pending) >= self.batch_files
                or len(self.pending_dirs) >= SYNC_BATCH_DIRS):
            self._flush()

    def _flush(self, wait: bool = False) -> None:
        """Hand the written files to the I/O pool, which makes them durable and then puts them into place,
        while the writers go on with the next batch. One batch at a time; ``wait`` also waits for it."""
        self._finish_flush()
        if self.pending:
            batch, self.pending = self.pending, []
            self.pending_bytes = 0
            self.pending_dirs.clear()
            self.flushing = (self.r.pipeline.io.submit(self._sync_and_place, batch), batch)
        if wait:
            self._finish_flush()

    def _finish_flush(self) -> None:
        if self.flushing is None:
            return
        fut, batch = self.flushing
        try:
            refused = dict(fut.result())  # a StorageError ends the restore (the batch's temporary files are gone)
        finally:
            self.flushing = None
            for d, _, _, _ in batch:
                d.release()  # sets a directory's owner, mode and time once its last file is in
        for path, exc in refused.items():
            if isinstance(exc, OSError):  # ENAMETOOLONG: a name this file system can't hold
                self._skip(path)
            else:
                self.result.failed.append(path)
                log.warning("not restored: %s: %s", path, exc)
        placed = [(temp, path) for _, temp, _, path in batch if path not in refused]
        self.result.files += len(placed)
        self.result.bytes_written += sum(temp.size for temp, _ in placed)

    # -- on the pools ----------------------------------------------------------------------------------------
    def _sync_and_place(self, batch: list[_Pending]) -> list[tuple[str, VaultError | OSError]]:
        """I/O pool: make the batch durable, then put it into place. Returns the paths that could not go in
        place because something appeared at their name meanwhile (ConflictError, no --force) or their name is
        too long (OSError ENAMETOOLONG); their files are dropped. On any other failure the files not yet in
        place are removed and StorageError raised. (The main thread releases the batch's directories once this
        returned.)"""
        done = 0
        refused: list[tuple[str, VaultError | OSError]] = []
        try:
            self.fs.sync()
            for d, temp, node, path in batch:
                done += 1
                try:
                    place(d.fd, temp, node.name, self.force)
                except ConflictError as exc:
                    refused.append((path, exc))
                except OSError as exc:
                    if exc.errno != errno.ENAMETOOLONG:
                        raise StorageError(f"cannot move {node.name} into place: {exc.strerror}") from None
                    refused.append((path, exc))
        except BaseException:
            for d, temp, _, _ in batch[done:]:
                discard(d.fd, temp)
            raise
        return refused

    def _write_batch(self, items: list[_Item]) -> list[_Written | VaultError]:
        """CPU pool: small files, each fetched and decoded here (no hop per file) and written to its temporary
        file. Damage or a conflict is that file's outcome; any other failure removes the batch's files."""
        out: list[_Written | VaultError] = []
        try:
            for d, node, _ in items:
                chunks = self.r.checked(node, map(self.r.load_blob, node.content))
                try:
                    out.append(self._write(d, node, chunks))
                except (IntegrityError, ConflictError) as exc:
                    out.append(exc)
        except BaseException:
            for (d, _, _), o in zip(items, out, strict=False):
                if isinstance(o, Temp):
                    discard(d.fd, o)
            raise
        return out

    def _write_one(self, item: _Item) -> list[_Written | VaultError]:
        """I/O pool: one bigger file, its chunks decoded on the CPU pool in order."""
        d, node, _ = item
        try:
            return [self._write(d, node, self.r.chunks(node))]
        except (IntegrityError, ConflictError) as exc:
            return [exc]

    def _write(self, d: DestDir, node: Node, chunks: Iterator[bytes]) -> Temp:
        return write_temp(d.fd, node, self.force, chunks, fsync=self.fs.per_file, ownership=self.r.ownership,
                          unnamed=self.unnamed, timer=self.r.pipeline.timer)
