"""Who owns a restored file and which mode it gets: tar's rules, and never a setuid file for the wrong owner.

- Run as root (effective uid 0), `get` gives every file, directory and link its stored owner. The stored user
  and group *names* are looked up in this machine's databases and win over the stored ids, as GNU tar and
  bsdtar do, so a backup restored on another machine belongs to the same people there; a name unknown here
  falls back to the stored id. ``--numeric-owner`` uses the stored ids only. Modes are restored exactly.
- Run as anyone else, files belong to that user (nobody else may give files away), and modes are filtered by
  the umask, as tar does for ordinary users: a 0666 file comes back 0644 under umask 022.
- Either way, the setuid bit stays only when the file ended up owned by the stored owner, and setgid only when
  it ended up in the stored group (a tree without owners, written before trees had them, has no stored owner).
  Otherwise a restore as root would make another user's setuid program setuid-root, and a user restoring
  someone else's backup would get setuid programs of their own.

The order for each file is chown, then chmod (chown clears the setuid bits), then utime; the caller runs it on
an open descriptor of a file it created itself, so no path is followed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
from dataclasses import dataclass, field

from vault.owners import gid_of, uid_of
from vault.repo.tree import Node

log = logging.getLogger(__name__)



def current_umask() -> int:
    """The process's umask, read without changing it where Linux says it (/proc/self/status, 4.7+); elsewhere
    set and restored at once (call this before other threads create files)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


@dataclass
class Ownership:
    """How one restore treats stored owners and modes (see the module docstring). Safe to share between the
    threads of one restore."""

    as_root: bool
    numeric: bool = False
    umask: int = 0o022
    # Paths whose owner could not be given back (a file system without owners, an id this user namespace
    # can't map); the restore reports them once at the end.
    failed: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def for_this_process(cls, numeric: bool = False) -> Ownership:
        return cls(as_root=os.geteuid() == 0, numeric=numeric, umask=current_umask())

    def stored_owner(self, node: Node) -> tuple[int | None, int | None]:
        """The uid and gid ``node`` should have here: its names mapped through the local databases (unless
        ``numeric``), else its ids; None where the tree does not say."""
        uid, gid = node.uid, node.gid
        if not self.numeric:
            if node.user and (local := uid_of(node.user)) is not None:
                uid = local
            if node.group and (local := gid_of(node.group)) is not None:
                gid = local
        return uid, gid

    def apply(self, fd: int, node: Node) -> None:
        """Give the file or directory open as ``fd`` (one this restore created, or a directory it restores
        into) its owner and mode. The owner is best effort (noted in ``failed``); OSError from chmod."""
        uid, gid = self.stored_owner(node)
        if self.as_root and (uid is not None or gid is not None):
            try:
                os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
            except OSError as exc:
                self._note(node, exc)
        st = os.fstat(fd)
        os.fchmod(fd, self.mode(node, st.st_uid, st.st_gid))

    def apply_link(self, dir_fd: int, name: str, node: Node) -> None:
        """Give the link ``name`` in ``dir_fd`` its owner, when run as root (links have no mode of their own)."""
        uid, gid = self.stored_owner(node)
        if not self.as_root or (uid is None and gid is None):
            return
        try:
            os.chown(name, -1 if uid is None else uid, -1 if gid is None else gid, dir_fd=dir_fd,
                     follow_symlinks=False)
        except OSError as exc:
            self._note(node, exc)

    def mode(self, node: Node, uid: int, gid: int) -> int:
        """The mode for ``node`` restored with owner ``uid``:``gid``."""
        mode = node.mode & 0o7777
        if not self.as_root:
            mode &= ~self.umask
        want_uid, want_gid = self.stored_owner(node)
        if want_uid is None or want_uid != uid:
            mode &= ~stat.S_ISUID
        if want_gid is None or want_gid != gid:
            mode &= ~stat.S_ISGID
        return mode

    def report(self) -> None:
        """One warning for every owner that could not be given back."""
        if self.failed:
            shown = ", ".join(self.failed[:5]) + (" ..." if len(self.failed) > 5 else "")
            log.warning("could not restore the owner of %d path(s), which keep this user's, without setuid or "
                        "setgid: %s", len(self.failed), shown)

    def _note(self, node: Node, exc: OSError) -> None:
        log.debug("cannot restore the owner of %s: %s", node.name, exc.strerror)
        with self._lock:
            self.failed.append(node.name)
