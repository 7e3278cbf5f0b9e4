"""Writing one restored entry (a file, a link, a directory) into an open directory, never through a link.

A file is written to a temporary file in its destination's directory, private (0600) until it is complete, and
the caller puts it in place (:func:`place`) once it is durable. The temporary file is *unnamed* where Linux
and the file system allow (``O_TMPFILE``): it has no name until :func:`place` links it in, so a restore killed
at any instant (SIGKILL, a power cut) leaves nothing behind; the kernel frees it. Elsewhere (another system, a
file system without ``O_TMPFILE``, no ``/proc``) it is a named file, ``.NAME.vault-XXXXXXXX.tmp``, renamed into
place, which a kill can leave behind. On any failure the command sees, it is removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from vault.errors import ConflictError, StorageError
from vault.pipeline.timing import NO_TIMING, Stage, StageTimer
from vault.repo.tree import Node
from vault.restore.durability import flusher_for
from vault.restore.ownership import Ownership

T = TypeVar("T")
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

# An O_TMPFILE file gets its name with linkat(2) through /proc/self/fd (AT_EMPTY_PATH would need
# CAP_DAC_READ_SEARCH): without /proc, temporary files are named.
_TMPFILE = getattr(os, "O_TMPFILE", 0) if os.path.isdir("/proc/self/fd") else 0
# What open(O_TMPFILE) fails with where the file system (or an old kernel) has no unnamed files.
_NO_TMPFILE = frozenset({errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL})


@dataclass
class Temp:
    """A written file waiting to be put in place: unnamed and still open (``fd``), or named (``name``)."""

    fd: int | None
    name: str | None
    size: int

    @property
    def unnamed(self) -> bool:
        return self.fd is not None


def _temp_name(name: str) -> str:
    """A new temporary name beside ``name``, for a file or link until it is moved into place."""
    return f".{name[:64]}.vault-{secrets.token_hex(4)}.tmp"


def _create(dir_fd: int, node: Node, unnamed: bool) -> tuple[int, str | None]:
    """A new private (0600) file in ``dir_fd`` to write ``node`` into: unnamed when asked and possible."""
    if unnamed and _TMPFILE:
        try:
            return os.open(".", _TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o600, dir_fd=dir_fd), None
        except OSError as exc:
            if exc.errno not in _NO_TMPFILE:
                raise StorageError(f"cannot create a file beside {node.name}: {exc.strerror}") from None
    tmp = _temp_name(node.name)
    fd = os_call(lambda: os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                                 0o600, dir_fd=dir_fd), f"cannot create a file beside {node.name}")
    return fd, tmp


def write_temp(dir_fd: int, node: Node, force: bool, chunks: Iterable[bytes], fsync: bool, *,
               ownership: Ownership, unnamed: bool = True, timer: StageTimer = NO_TIMING) -> Temp:
    """Write ``chunks`` (the file's verified plaintext) to a new 0600 temporary file in ``dir_fd`` and give
    it the node's owner, mode (``ownership`` decides both) and mtime. Returns it, to be put in place with
    :func:`place` or removed with :func:`discard`: an unnamed file (``unnamed`` and supported) stays open
    until then. Durable only with ``fsync``. On any failure the temporary file is removed and the error
    raised (ConflictError: the destination exists and not ``force``; StorageError). ``timer`` times the writes
    and the fsync."""
    if not force and _lexists(dir_fd, node.name):
        raise ConflictError(f"{node.name} exists already; use --force to overwrite it")
    fd, tmp = _create(dir_fd, node, unnamed)
    keep_open = tmp is None
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
            os_call(lambda: ownership.apply(fd, node), f"cannot set the mode of {node.name}")
            os.utime(fd, ns=(node.mtime_ns, node.mtime_ns))
            if fsync:
                with timer.stage(Stage.FSYNC):
                    os_call(lambda: os.fsync(fd), f"cannot write {node.name}")
        finally:
            if flusher is not None:
                flusher.abandon()  # no fdatasync may still run on fd once it is closed
            if not keep_open:
                os.close(fd)
        ok = True
        return Temp(fd if keep_open else None, tmp, n)
    finally:
        # Now, not when the traceback that holds this frame is dropped: closing Pipeline.ordered waits
        # for its chunks in flight, which must happen while the pool still runs.
        close_chunks(chunks)
        if not ok:
            if keep_open:
                os.close(fd)
            elif tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=dir_fd)


def place(dir_fd: int, temp: Temp, name: str, force: bool) -> None:
    """Put a written temporary file in place as ``name`` in ``dir_fd``; it is consumed either way.

    A named one is renamed over ``name``. An unnamed one is linked in as ``name``; where something is there
    already it replaces it only with ``force``, through a temporary name and a rename (link(2) never
    replaces), and otherwise raises ConflictError. Never through a link: neither call follows one at the
    destination. OSError for anything else (the caller names the file)."""
    if temp.fd is None:
        assert temp.name is not None
        try:
            os.rename(temp.name, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            discard(dir_fd, temp)
            raise
        return
    source = f"/proc/self/fd/{temp.fd}"
    try:
        try:
            os.link(source, name, dst_dir_fd=dir_fd, follow_symlinks=True)
        except FileExistsError:
            if not force:
                raise ConflictError(f"{name} exists already; use --force to overwrite it") from None
            tmp = _temp_name(name)
            os.link(source, tmp, dst_dir_fd=dir_fd, follow_symlinks=True)
            try:
                os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=dir_fd)
                raise
    finally:
        discard(dir_fd, temp)


def discard(dir_fd: int, temp: Temp) -> None:
    """Drop a temporary file that will not be put in place (an unnamed one vanishes when closed). Idempotent;
    never raises."""
    if temp.fd is not None:
        fd, temp.fd = temp.fd, None
        with contextlib.suppress(OSError):
            os.close(fd)
    elif temp.name is not None:
        name, temp.name = temp.name, None
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=dir_fd)


def write_link(dir_fd: int, node: Node, force: bool, ownership: Ownership) -> None:
    """Create the link ``node`` in ``dir_fd`` (replacing what is there only with ``force``) with its owner (as
    root) and mtime. ConflictError, OSError."""
    if _lexists(dir_fd, node.name):
        if not force:
            raise ConflictError(f"{node.name} exists already; use --force to overwrite it")
        tmp = _temp_name(node.name)
        os.symlink(node.target, tmp, dir_fd=dir_fd)
        try:
            ownership.apply_link(dir_fd, tmp, node)
            os.rename(tmp, node.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
    else:
        os.symlink(node.target, node.name, dir_fd=dir_fd)
        ownership.apply_link(dir_fd, node.name, node)
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
