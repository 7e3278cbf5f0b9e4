"""Making restored files durable: syncfs(2) per file system written to, fdatasync while a big file is written.

Why a tree restore syncs whole file systems in batches instead of fsyncing each file: directory.py, "tree
restores". A single-file restore fsyncs its file (files.py).
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from vault.errors import StorageError
from vault.pipeline.timing import NO_TIMING, Stage, StageTimer


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


class FileSystems:
    """The file systems one tree restore writes to, made durable together: ``sync`` runs syncfs on each.
    Where syncfs is missing (``per_file``), every file and directory is fsynced on its own instead and
    ``sync`` has nothing to do. ``close`` always runs."""

    def __init__(self, dest: str, timer: StageTimer = NO_TIMING) -> None:
        self.dest = dest
        self.timer = timer
        self.syncfs = _SYNCFS
        self.devices: dict[int, int] = {}  # st_dev -> a descriptor on that file system, for syncfs

    @property
    def per_file(self) -> bool:
        """Each file is fsynced before it is closed, each directory after its renames (no syncfs)."""
        return self.syncfs is None

    def watch(self, fd: int) -> None:
        """Remember ``fd``'s file system for syncfs (opened before anything is written there, so syncfs
        reports every writeback error since)."""
        if self.syncfs is None:
            return
        dev = os.fstat(fd).st_dev
        if dev not in self.devices:
            self.devices[dev] = os.dup(fd)

    def sync(self) -> None:
        if self.syncfs is None:
            return  # every file was fsynced before it was closed
        for fd in self.devices.values():
            try:
                with self.timer.stage(Stage.SYNCFS):
                    self.syncfs(fd)
            except OSError as exc:
                if exc.errno != errno.ENOSYS:
                    raise StorageError(f"cannot write {self.dest}: {exc.strerror}") from None
                os.sync()  # syncfs refused (a seccomp filter, an old emulation layer): sync everything

    def close(self) -> None:
        for fd in self.devices.values():
            os.close(fd)
        self.devices.clear()


FLUSH_EVERY_BYTES = 64 << 20


def flusher_for(fd: int, size: int) -> Flusher | None:
    """A Flusher for a file of ``size`` bytes written to ``fd``, or None when it is too small to need one."""
    return Flusher(fd) if size >= 2 * FLUSH_EVERY_BYTES else None


class Flusher:
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
