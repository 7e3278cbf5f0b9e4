"""The FUSE operations of `vault mount`: a read-only file system over a :class:`~vault.mount.view.View`.

libfuse calls these from its worker threads (mfusepy turns each call into a Python call; raising
``FuseOSError(errno)`` answers with that error). Everything here only reads: the mount is made read-only, so the
kernel refuses writes before they reach us. Damage (a chunk or tree that fails authentication, a missing pack)
answers EIO and is reported through ``on_damage`` (the command logs it and records it in the operation log),
never as other bytes. Anything unexpected answers EIO too, with its traceback in the debug log.

Every ``REFRESH_S`` seconds a thread catches up with the storage's version records and swaps in a new view, so
versions stored after mounting appear within a minute (the kernel keeps names and attributes for a second).
"""

from __future__ import annotations

import errno
import functools
import itertools
import logging
import os
import stat
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from vault.browse.trees import TreeReader
from vault.errors import VaultError
from vault.mount.files import ChunkCache, OpenFile
from vault.mount.view import ItemDir, Latest, NotThere, Stored, View
from vault.pipeline.runner import Pipeline
from vault.repo.repository import Repository
from vault.repo.tree import Node

log = logging.getLogger(__name__)

REFRESH_S = 30.0
T = TypeVar("T")


class FuseError(OSError):
    """An errno for libfuse (mfusepy answers any OSError with its errno)."""

    def __init__(self, code: int) -> None:
        super().__init__(code, os.strerror(code))


def _answer(fn: Callable[..., T]) -> Callable[..., T]:
    """Map what an operation raises to an errno: not there → ENOENT/ENOTDIR, damage → EIO (reported)."""

    @functools.wraps(fn)
    def call(self: VaultFS, *args: Any) -> T:
        try:
            return fn(self, *args)
        except NotThere as exc:
            raise FuseError(errno.ENOTDIR if exc.not_dir else errno.ENOENT) from None
        except FuseError:
            raise
        except VaultError as exc:
            self.damage(f"{fn.__name__} {args[0] if args else ''}: {exc.message}")
            raise FuseError(errno.EIO) from None
        except Exception:
            log.debug("unexpected failure in %s", fn.__name__, exc_info=True)
            raise FuseError(errno.EIO) from None

    return call


class VaultFS:
    """The operations mfusepy calls (its ``Operations`` protocol; times in nanoseconds)."""

    use_ns = True

    def __init__(self, repo: Repository, pipeline: Pipeline, on_damage: Callable[[str], None],
                 on_ready: Callable[[], None] | None = None, refresh_s: float = REFRESH_S) -> None:
        self.repo = repo
        self.reader = TreeReader(repo)
        self.cache = ChunkCache(repo, pipeline.cpu)
        self.view = View(repo, self.reader)
        self.on_damage = on_damage
        self.on_ready = on_ready
        self._files: dict[int, OpenFile] = {}
        self._handles = itertools.count(1)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._refresh_s = refresh_s
        self._refresher: threading.Thread | None = None
        self._uid, self._gid = os.getuid(), os.getgid()

    def damage(self, message: str) -> None:
        log.warning("mount: %s", message)
        self.on_damage(message)

    # -- keeping up with the storage ---------------------------------------------------------------------
    def start(self) -> None:
        self._refresher = threading.Thread(target=self._refresh_loop, name="vault-mount-refresh", daemon=True)
        self._refresher.start()

    def stop(self) -> None:
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join(timeout=10)

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self._refresh_s):
            self.refresh()

    def refresh(self) -> None:
        """Catch up with the storage's version records and show what they hold now."""
        try:
            self.repo.refresh_catalog()
            self.view = View(self.repo, self.reader)
        except VaultError as exc:  # the storage may be back next time; the old view stays meanwhile
            log.warning("mount: could not catch up with the vault: %s", exc)

    # -- attributes ----------------------------------------------------------------------------------------
    def _attrs(self, mode: int, size: int, mtime_ns: int, nlink: int = 1) -> dict[str, Any]:
        return {"st_mode": mode, "st_size": size, "st_nlink": nlink, "st_uid": self._uid, "st_gid": self._gid,
                "st_mtime": mtime_ns, "st_atime": mtime_ns, "st_ctime": mtime_ns,
                "st_blocks": (size + 511) // 512, "st_blksize": 128 * 1024}

    def _node_attrs(self, node: Node) -> dict[str, Any]:
        perm = node.mode & 0o7777
        if node.type == "dir":
            return self._attrs(stat.S_IFDIR | perm, 0, node.mtime_ns, 2)
        if node.type == "link":
            return self._attrs(stat.S_IFLNK | perm, len(os.fsencode(node.target)), node.mtime_ns)
        return self._attrs(stat.S_IFREG | perm, node.size, node.mtime_ns)

    @_answer
    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        entry = self.view.resolve(path)
        if isinstance(entry, Stored):
            return self._node_attrs(entry.node)
        if isinstance(entry, Latest):
            return self._attrs(stat.S_IFLNK | 0o777, len(entry.target), entry.mtime_ns)
        return self._attrs(stat.S_IFDIR | 0o555, 0, entry.mtime_ns, 2)

    @_answer
    def readlink(self, path: str) -> str:
        entry = self.view.resolve(path)
        if isinstance(entry, Latest):
            return entry.target
        if isinstance(entry, Stored) and entry.node.type == "link":
            return entry.node.target
        raise FuseError(errno.EINVAL)

    @_answer
    def readdir(self, path: str, fh: int) -> list[Any]:
        view = self.view
        entry = view.resolve(path)
        out: list[Any] = [".", ".."]
        if isinstance(entry, ItemDir):
            for name, sub in view.listing(entry):
                mode = (stat.S_IFLNK if isinstance(sub, Latest) else stat.S_IFDIR
                        if isinstance(sub, ItemDir) or sub.node.type == "dir" else
                        stat.S_IFLNK if sub.node.type == "link" else stat.S_IFREG)
                out.append((name, {"st_mode": mode}, 0))
            return out
        if isinstance(entry, Stored) and entry.node.type == "dir":
            for node in self.reader.children(entry.node):
                kind = {"dir": stat.S_IFDIR, "link": stat.S_IFLNK}.get(node.type, stat.S_IFREG)
                out.append((node.name, {"st_mode": kind}, 0))
            return out
        raise FuseError(errno.ENOTDIR)

    # -- files ---------------------------------------------------------------------------------------------
    @_answer
    def open(self, path: str, flags: int) -> int:
        if flags & os.O_ACCMODE != os.O_RDONLY:
            raise FuseError(errno.EROFS)
        entry = self.view.resolve(path)
        if not isinstance(entry, Stored) or entry.node.type != "file":
            raise FuseError(errno.EISDIR)
        opened = OpenFile(self.repo, entry.node, self.cache)
        with self._lock:
            fh = next(self._handles)
            self._files[fh] = opened
        return fh

    @_answer
    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        with self._lock:
            opened = self._files.get(fh)
        if opened is None:
            raise FuseError(errno.EBADF)
        return opened.read(offset, size)

    def release(self, path: str, fh: int) -> int:
        with self._lock:
            self._files.pop(fh, None)
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        return {"f_bsize": 4096, "f_frsize": 4096, "f_namemax": 4096}

    def init(self, path: str) -> None:
        """libfuse: the file system is mounted and served."""
        if self.on_ready is not None:
            self.on_ready()

    def destroy(self, path: str) -> None:
        """libfuse: unmounted."""
        self.stop()
