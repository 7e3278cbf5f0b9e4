"""Writing one restored entry (a file, a link, a directory) into an open directory, never through a link.

A file is written to a new temporary file beside its destination, ``.NAME.vault-XXXXXXXX.tmp``, private (0600)
until it is complete; the caller renames it into place once it is durable. On any failure it is removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Callable, Iterable
from typing import TypeVar

from vault.errors import ConflictError, StorageError
from vault.pipeline.timing import NO_TIMING, Stage, StageTimer
from vault.repo.tree import Node
from vault.restore.durability import flusher_for

T = TypeVar("T")
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _temp_name(name: str) -> str:
    """A new temporary name beside ``name``, for a file or link until it is moved into place."""
    return f".{name[:64]}.vault-{secrets.token_hex(4)}.tmp"


def write_temp(dir_fd: int, node: Node, force: bool, chunks: Iterable[bytes], fsync: bool,
               timer: StageTimer = NO_TIMING) -> tuple[str, int]:
    """Write ``chunks`` (the file's verified plaintext) to a new 0600 temporary file beside ``node.name``
    and give it the node's mode and mtime; returns its name and size. Durable only with ``fsync``. On any
    failure the temporary file is removed and the error raised. ``timer`` times the writes and the fsync."""
    if not force and _lexists(dir_fd, node.name):
        raise ConflictError(f"{node.name} exists already; use --force to overwrite it")
    tmp = _temp_name(node.name)
    fd = os_call(lambda: os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                                 0o600, dir_fd=dir_fd), f"cannot create a file beside {node.name}")
    ok = False
    flusher = flusher_for(fd, node.size)
    try:
        n = 0
        try:
            for data in chunks:
                with timer.stage(Stage.WRITE):
                    os_call(lambda d=data: _write_all(fd, d), f"cannot write {node.name}")  # type: ignore[misc]
                n += len(data)
                if flusher is not None:
                    os_call(lambda t=n: flusher.wrote(t), f"cannot write {node.name}")  # type: ignore[misc]
            if flusher is not None:
                os_call(flusher.close, f"cannot write {node.name}")
            os.fchmod(fd, node.mode & 0o7777)
            os.utime(fd, ns=(node.mtime_ns, node.mtime_ns))
            if fsync:
                with timer.stage(Stage.FSYNC):
                    os_call(lambda: os.fsync(fd), f"cannot write {node.name}")
        finally:
            if flusher is not None:
                flusher.abandon()  # no fdatasync may still run on fd once it is closed
            os.close(fd)
        ok = True
        return tmp, n
    finally:
        # Now, not when the traceback that holds this frame is dropped: closing Pipeline.ordered waits
        # for its chunks in flight, which must happen while the pool still runs.
        close_chunks(chunks)
        if not ok:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)


def write_link(dir_fd: int, node: Node, force: bool) -> None:
    if _lexists(dir_fd, node.name):
        if not force:
            raise ConflictError(f"{node.name} exists already; use --force to overwrite it")
        tmp = _temp_name(node.name)
        os.symlink(node.target, tmp, dir_fd=dir_fd)
        os.rename(tmp, node.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    else:
        os.symlink(node.target, node.name, dir_fd=dir_fd)
    with contextlib.suppress(OSError, NotImplementedError):
        os.utime(node.name, ns=(node.mtime_ns, node.mtime_ns), dir_fd=dir_fd, follow_symlinks=False)


def open_dir(dir_fd: int, name: str, force: bool) -> int:
    """Create (or, with force, reuse) a directory and open it without following links."""
    try:
        os.mkdir(name, 0o700, dir_fd=dir_fd)
    except FileExistsError:
        if not force:
            raise ConflictError(f"{name} exists already; use --force to restore into it") from None
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise ConflictError(f"{name} exists and is not a directory; not restoring through it") from None
        raise StorageError(f"cannot open directory {name}: {exc.strerror}") from None


def _lexists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False


def close_chunks(it: Iterable[bytes]) -> None:
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


def os_call(fn: Callable[[], T], message: str) -> T:
    try:
        return fn()
    except OSError as exc:
        raise StorageError(f"{message}: {exc.strerror}") from None
