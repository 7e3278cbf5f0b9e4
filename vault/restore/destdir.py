"""A destination directory of a tree restore, held open while files are written and renamed into it, and given its
own owner, mode and time when the last of them is done.
"""

from __future__ import annotations

import contextlib
import os

from vault.repo.tree import Node
from vault.restore.ownership import Ownership


class DestDir:
    """A destination directory, open (``O_NOFOLLOW``) while anything still writes or renames into it. Its own
    owner, mode and mtime are set when the last user lets go: a rename changes a directory's mtime, a read-only
    mode would refuse it, and nobody else may own it while the restore still writes into it. Main thread only."""

    __slots__ = ("fd", "fsync", "name_max", "node", "ownership", "refs")

    def __init__(self, fd: int, node: Node, fsync: bool, ownership: Ownership) -> None:
        self.fd = fd
        self.node = node
        self.fsync = fsync
        self.ownership = ownership
        self.refs = 1
        self.name_max = 0  # the longest name its file system takes, looked up when first needed

    def too_long(self, name: str) -> bool:
        """True when ``name`` is longer than this directory's file system allows."""
        if not self.name_max:
            try:
                self.name_max = os.fpathconf(self.fd, "PC_NAME_MAX")
            except (OSError, ValueError):
                self.name_max = 255
            if self.name_max <= 0:
                self.name_max = 255
        return len(os.fsencode(name)) > self.name_max

    def acquire(self) -> DestDir:
        self.refs += 1
        return self

    def release(self) -> None:
        self.refs -= 1
        if self.refs:
            return
        try:
            set_dir_meta(self.fd, self.node, self.ownership)
            if self.fsync:
                with contextlib.suppress(OSError):  # refused by a few file systems; the renames happened
                    os.fsync(self.fd)
        finally:
            os.close(self.fd)


def set_dir_meta(fd: int, node: Node, ownership: Ownership) -> None:
    """A restored directory's owner and mode (ownership.py), then its time, once nothing more goes into it."""
    with contextlib.suppress(OSError):
        ownership.apply(fd, node)
        os.utime(fd, ns=(node.mtime_ns, node.mtime_ns))
