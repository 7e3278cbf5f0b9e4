"""LocalBackend: a vault in a local directory, written the way restic's local backend writes.

Every object is written to ``.tmp-<random>`` in its destination directory, fsynced, closed, renamed over its
final name and then the directory is fsynced, so a crash leaves either the old object, the new one, or a
stray temporary file that :meth:`LocalBackend.cleanup_temporary` (``vault repair``) sweeps later. Files are
created 0600 and directories 0700 whatever the umask: the objects are encrypted, but their number, sizes and
times are still nobody else's business.

Every ``OSError`` is translated here: ``ENOENT`` on an object is :class:`ObjectNotFoundError`, anything else
(``ENOSPC``, ``EDQUOT``, ``EIO``, ``EACCES``, ``EROFS``, ...) is :class:`StorageError` with the system's
one-line reason. Messages name the object by its short handle, never by content.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import os
import secrets
import stat
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from vault.errors import ObjectNotFoundError, StorageError
from vault.pipeline.timing import NO_TIMING, Stage, StageTimer
from vault.storage import CONFIG_NAME, is_object_name, object_key
from vault.storage.base import Buffer, Handle, Kind, ObjectInfo

__all__ = ["TEMP_PREFIX", "LocalBackend"]

TEMP_PREFIX = ".tmp-"
"""Name prefix of the temporary files of saves in progress (or interrupted by a crash)."""

_FILE_MODE = 0o600
_DIR_MODE = 0o700
# fsync on a directory is refused by a few filesystems (some FUSE and network ones); the rename itself has
# happened, so there is nothing better to do than carry on, as restic does.
_DIR_FSYNC_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF})


def _reason(e: OSError) -> str:
    return e.strerror or type(e).__name__


class LocalBackend:
    """Objects as files under ``root`` (see :mod:`vault.storage` for the layout). Safe for many threads:
    it holds no mutable state, and concurrent saves of one name each write their own temporary file, so
    the last rename wins and readers never see a mix.

    ``timer`` (:mod:`vault.pipeline.timing`; default: none) is told about the writes of a save
    (:attr:`~vault.pipeline.timing.Stage.WRITE`) and its fsyncs, file and directory
    (:attr:`~vault.pipeline.timing.Stage.FSYNC`), and the directory fsync of a remove."""

    def __init__(self, root: Path, *, timer: StageTimer = NO_TIMING) -> None:
        # Absolute, so that messages name the real place and a later chdir changes nothing.
        self.root = Path(root).expanduser().absolute()
        self.location: str = str(self.root)
        self.timer = timer

    # -- paths ---------------------------------------------------------------------------------------

    def path_of(self, h: Handle) -> Path:
        """The file that holds ``h``. Raises ``ValueError`` for a name that is invalid for its kind."""
        return self.root / object_key(h)

    # -- root ----------------------------------------------------------------------------------------

    def exists_root(self) -> bool:
        """True when the root is an existing directory. Raises ``StorageError`` when that can't be told
        (e.g. a parent directory is not searchable)."""
        try:
            st = os.stat(self.root)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as e:
            raise StorageError(f"cannot access {self.location}: {_reason(e)}") from e
        return stat.S_ISDIR(st.st_mode)

    def create_root(self) -> None:
        """Create the root and any missing parents, each with mode 0700. Idempotent. Raises
        ``StorageError`` when the root exists as something other than a directory or can't be made."""
        try:
            self._make_dirs(self.root, stop=None)
        except FileExistsError as e:
            raise StorageError(f"cannot create {self.location}: it exists and is not a directory") from e
        except OSError as e:
            raise StorageError(f"cannot create {self.location}: {_reason(e)}") from e

    # -- objects -------------------------------------------------------------------------------------

    def save(self, h: Handle, data: bytes | bytearray | memoryview) -> str:
        """Write ``data`` atomically and durably under ``h`` (temp file, fsync, rename, directory fsync).

        Creates missing directories below the root (never the root itself: a missing root usually means
        an unmounted disk, and writing into the mount point would hide that). Raises ``StorageError`` on
        any failure, after removing the temporary file; whatever was stored under ``h`` before is intact.
        (One exception: when only the final directory fsync fails, the new object is already in place
        but may not survive a crash, and the error is still raised.) Returns the new file's tag.
        """
        return self._save(h, [memoryview(data).cast("B")])

    def save_parts(self, h: Handle, parts: Sequence[Buffer]) -> str:
        """:meth:`save` of the concatenation of ``parts``, written with ``os.writev`` straight from the parts
        (see :func:`vault.storage.base.save_parts`): same atomicity, durability and errors."""
        return self._save(h, [v for v in (memoryview(p).cast("B") for p in parts) if v.nbytes])

    def _save(self, h: Handle, views: builtins.list[memoryview]) -> str:
        path = self.path_of(h)
        try:
            return self._write_atomically(path, views)
        except OSError as e:
            if not self._root_is_dir():
                raise StorageError(f"cannot write {h}: {self.location} does not exist") from e
            raise StorageError(f"cannot write {h} in {self.location}: {_reason(e)}") from e

    def load(self, h: Handle, offset: int = 0, length: int | None = None) -> bytes:
        """Return up to ``length`` bytes from ``offset`` (to the end when ``length`` is None); fewer only
        when the object is shorter, and ``b""`` past its end.

        Raises ``ValueError`` for a negative offset or length, ``ObjectNotFoundError`` when the object is
        missing, ``StorageError`` for any other failure, a path that is not a regular file included (never
        blocks on a FIFO).
        """
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        path = self.path_of(h)
        try:
            # Non-blocking: a FIFO (or device) planted where an object belongs would otherwise block open(2)
            # forever, hanging every command; it is refused below. (Regular files ignore O_NONBLOCK.)
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except (FileNotFoundError, NotADirectoryError) as e:
            raise ObjectNotFoundError(f"{h} not found in {self.location}") from e
        except OSError as e:
            raise StorageError(f"cannot read {h} in {self.location}: {_reason(e)}") from e
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise StorageError(f"{h} in {self.location} is not a regular file")
            return _pread_exactly(fd, offset, length)
        except OSError as e:
            raise StorageError(f"cannot read {h} in {self.location}: {_reason(e)}") from e
        finally:
            os.close(fd)

    def stat(self, h: Handle) -> ObjectInfo:
        """Size of the object. Raises ``ObjectNotFoundError`` when missing, ``StorageError`` otherwise."""
        path = self.path_of(h)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError) as e:
            raise ObjectNotFoundError(f"{h} not found in {self.location}") from e
        except OSError as e:
            raise StorageError(f"cannot stat {h} in {self.location}: {_reason(e)}") from e
        if not stat.S_ISREG(st.st_mode):
            raise StorageError(f"{h} in {self.location} is not a regular file")
        return ObjectInfo(h, st.st_size, _tag(st))

    def list(self, kind: Kind) -> Iterator[ObjectInfo]:
        """Every object of ``kind``: regular files with valid names only, so temporary files and strays
        never appear. A missing directory lists as empty. Raises ``StorageError`` while iterating when a
        directory can't be read."""
        if kind is Kind.CONFIG:
            try:
                info = self.stat(Handle(Kind.CONFIG, CONFIG_NAME))
            except ObjectNotFoundError:
                return
            yield info
            return
        top = self.root / kind.value
        if kind is not Kind.DATA:
            yield from self._list_dir(top, kind, fan_out="")
            return
        for sub in self._scan(top):
            if len(sub.name) == 2 and is_object_name(Kind.DATA, sub.name) and _is_dir(sub):
                yield from self._list_dir(Path(sub.path), kind, fan_out=sub.name)

    def remove(self, h: Handle) -> None:
        """Delete ``h`` and fsync its directory. Raises ``ObjectNotFoundError`` when missing,
        ``StorageError`` otherwise."""
        path = self.path_of(h)
        try:
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError) as e:
            raise ObjectNotFoundError(f"{h} not found in {self.location}") from e
        except OSError as e:
            raise StorageError(f"cannot remove {h} in {self.location}: {_reason(e)}") from e
        try:
            with self.timer.stage(Stage.FSYNC):
                _fsync_dir(path.parent)
        except OSError as e:
            raise StorageError(f"cannot remove {h} in {self.location}: {_reason(e)}") from e

    # -- maintenance ---------------------------------------------------------------------------------

    def cleanup_temporary(self, max_age_s: float) -> builtins.list[str]:
        """Remove ``.tmp-*`` files anywhere under the root that were last modified more than ``max_age_s``
        seconds ago (younger ones may belong to a save still running). Returns their paths relative to
        the root, sorted. Raises ``StorageError`` when a directory can't be read or a file removed."""
        cutoff = time.time() - max_age_s
        removed: builtins.list[str] = []

        def fail(e: OSError) -> None:
            if not isinstance(e, FileNotFoundError):  # a missing root or kind directory holds nothing
                raise e

        try:
            for dirpath, _dirs, files in os.walk(self.root, onerror=fail):
                for name in files:
                    if not name.startswith(TEMP_PREFIX):
                        continue
                    path = os.path.join(dirpath, name)
                    try:
                        st = os.lstat(path)
                        if not stat.S_ISREG(st.st_mode) or st.st_mtime > cutoff:
                            continue
                        os.unlink(path)
                    except FileNotFoundError:
                        continue  # a save renamed it, or another cleanup got there first
                    removed.append(os.path.relpath(path, self.root))
        except OSError as e:
            raise StorageError(f"cannot clean up {self.location}: {_reason(e)}") from e
        return sorted(removed)

    # -- internals -----------------------------------------------------------------------------------

    def _root_is_dir(self) -> bool:
        try:
            return stat.S_ISDIR(os.stat(self.root).st_mode)
        except OSError:
            return False

    def _write_atomically(self, path: Path, views: builtins.list[memoryview]) -> str:
        directory = path.parent
        try:
            fd, tmp = _create_temp(directory)
        except FileNotFoundError:
            self._make_dirs(directory, stop=self.root)
            fd, tmp = _create_temp(directory)
        try:
            try:
                os.fchmod(fd, _FILE_MODE)  # O_CREAT's mode is filtered by the umask; be explicit
                with self.timer.stage(Stage.WRITE):
                    if len(views) == 1:
                        _write_all(fd, views[0])
                    else:
                        _writev_all(fd, views)
                with self.timer.stage(Stage.FSYNC):
                    os.fsync(fd)
                tag = _tag(os.fstat(fd))  # a rename keeps the inode and the mtime
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            # Also on KeyboardInterrupt: never leave a temp file behind for a failure we know about.
            _unlink_quietly(tmp)
            raise
        with self.timer.stage(Stage.FSYNC):
            _fsync_dir(directory)
        return tag

    def _make_dirs(self, directory: Path, stop: Path | None) -> None:
        """Create ``directory`` and missing parents with mode 0700, fsyncing each parent that gained an
        entry. With ``stop``, never creates ``stop`` itself (raises ``FileNotFoundError`` instead)."""
        if os.path.isdir(directory):
            return
        if directory == stop:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(directory))
        parent = directory.parent
        if parent != directory:
            self._make_dirs(parent, stop)
        try:
            os.mkdir(directory, _DIR_MODE)
        except FileExistsError:
            if not os.path.isdir(directory):
                raise
            # Another thread made it; it may not have fsynced the parent yet, and our object must not
            # become durable before its directory entry does.
        else:
            os.chmod(directory, _DIR_MODE)  # mkdir's mode is filtered by the umask
        _fsync_dir(parent)

    def _scan(self, directory: Path) -> Iterator[os.DirEntry[str]]:
        try:
            with os.scandir(directory) as it:
                yield from it
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as e:
            raise StorageError(f"cannot list {self.location}: {_reason(e)}") from e

    def _list_dir(self, directory: Path, kind: Kind, fan_out: str) -> Iterator[ObjectInfo]:
        for entry in self._scan(directory):
            name = entry.name
            if not is_object_name(kind, name) or (fan_out and not name.startswith(fan_out)):
                continue  # temporary files, editor leftovers, misplaced objects
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed while we listed
            except OSError as e:
                raise StorageError(f"cannot list {self.location}: {_reason(e)}") from e
            if stat.S_ISREG(st.st_mode):
                yield ObjectInfo(Handle(kind, name), st.st_size, _tag(st))


def _tag(st: os.stat_result) -> str:
    """Which write of the file this is: every save is a new file (renamed into place), so a new inode."""
    return f"{st.st_ino}:{st.st_mtime_ns}"


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _create_temp(directory: Path) -> tuple[int, Path]:
    tmp = directory / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC
    return os.open(tmp, flags, _FILE_MODE), tmp


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        n = os.write(fd, view)
        if n <= 0:  # regular files never do this, but a loop that can't progress must not spin
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        view = view[n:]


def _iov_max() -> int:
    try:
        n = os.sysconf("SC_IOV_MAX")
    except (ValueError, OSError, AttributeError):
        n = -1
    return n if n > 0 else 16  # POSIX guarantees at least 16


_IOV_MAX = _iov_max()


def _writev_all(fd: int, views: builtins.list[memoryview]) -> None:
    """Write every view, in order, with as few ``writev`` calls as the kernel allows (at most IOV_MAX
    buffers each; short writes resume where they stopped). ``views`` must hold no empty view."""
    i = 0
    while i < len(views):
        n = os.writev(fd, views[i : i + _IOV_MAX])
        if n <= 0:  # as in _write_all
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        while n:
            size = views[i].nbytes
            if n >= size:
                n -= size
                i += 1
            else:
                views[i] = views[i][n:]
                n = 0


def _pread_exactly(fd: int, offset: int, length: int | None) -> bytes:
    # Clamp to the file's size first: os.pread allocates its whole count up front, and a caller asking
    # for "up to 1 TiB" of a small object must not need the memory for it.
    available = max(0, os.fstat(fd).st_size - offset)
    length = available if length is None else min(length, available)
    parts: list[bytes] = []
    got = 0
    while got < length:  # short reads: network filesystems, or a file truncated meanwhile
        part = os.pread(fd, length - got, offset + got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in _DIR_FSYNC_UNSUPPORTED:
            raise
    finally:
        os.close(fd)


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):  # the original error is the one worth reporting
        os.unlink(path)
