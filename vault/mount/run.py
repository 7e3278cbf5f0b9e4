"""Mounting: check the mountpoint and the machine's FUSE, serve until unmounted, leave nothing mounted.

libfuse's loop (mfusepy's ``FUSE``, ``foreground``, with libfuse's worker threads) runs in a thread of its own.
The main thread stays in Python so that it sees SIGINT, SIGTERM and SIGHUP (Python runs signal handlers only there,
between bytecodes) and answers them by unmounting, as `fusermount3 -u` or `umount` from outside would: the loop
ends, the call returns, and the command exits 0 with nothing mounted. A mountpoint still in use is detached
lazily; a second signal aborts the connection. With ``auto_unmount``, fusermount3 unmounts even when the process
is killed.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from vault.errors import NotFoundError, StorageError, UsageError

FUSE_HINT = "install FUSE 3 (Debian/Ubuntu: apt-get install fuse3) and the mount extra (pip install 'vault[mount]')"


def check_mountpoint(path: str, vault_location: str) -> str:
    """The mountpoint as an absolute path, if it can be mounted on: an existing, empty directory that is not
    mounted already and is not inside (nor holds) a local vault. NotFoundError (exit 4: no such local path),
    UsageError (exit 2: the vault's own directory), StorageError (exit 30: anything else about the directory)."""
    mountpoint = os.path.abspath(path)
    if not os.path.lexists(mountpoint):
        raise NotFoundError(f"mountpoint {path} does not exist", hint=f"create it first: mkdir -p {path}")
    if not os.path.isdir(mountpoint):
        raise StorageError(f"mountpoint {path} is not a directory")
    if os.path.ismount(mountpoint):
        raise StorageError(f"mountpoint {path} is busy: something is mounted there already",
                           hint=f"unmount it first (fusermount3 -u {path})")
    try:
        busy = bool(os.listdir(mountpoint))
    except OSError as exc:
        raise StorageError(f"cannot read mountpoint {path}: {exc.strerror}") from None
    if busy:
        raise StorageError(f"mountpoint {path} is not empty", hint="mount on an empty directory")
    if not os.access(mountpoint, os.W_OK | os.X_OK):
        raise StorageError(f"mountpoint {path} is not writable by this user")
    if "://" not in vault_location:
        real_vault = Path(vault_location).resolve()
        real_mount = Path(mountpoint).resolve()
        if real_mount == real_vault or real_vault in real_mount.parents or real_mount in real_vault.parents:
            # Serving a vault from under its own mountpoint would read through the mount it serves: a deadlock.
            raise UsageError(f"mountpoint {path} and the vault's directory overlap")
    return mountpoint


def load_fuse() -> object:
    """The FUSE binding (mfusepy over libfuse3). StorageError (exit 30) with a hint when the machine has no
    FUSE: no /dev/fuse, no libfuse3, no fusermount3, or the extra not installed."""
    if not os.path.exists("/dev/fuse"):
        raise StorageError("no FUSE on this machine (/dev/fuse is missing)", hint=FUSE_HINT)
    library = ctypes.util.find_library("fuse3")
    if library is None:
        raise StorageError("no FUSE on this machine (libfuse3 is missing)", hint=FUSE_HINT)
    if os.geteuid() != 0 and shutil.which("fusermount3") is None:
        raise StorageError("no FUSE on this machine (fusermount3 is missing)", hint=FUSE_HINT)
    # mfusepy looks for libfuse 2 first; name libfuse3 explicitly (it reads the choice from its environment).
    os.environ.setdefault("FUSE_LIBRARY_PATH", library)
    try:
        import mfusepy
    except ImportError:
        raise StorageError("the FUSE binding is not installed", hint=FUSE_HINT) from None
    except (OSError, AttributeError) as exc:  # mfusepy loads the library at import
        raise StorageError(f"FUSE can't be used here: {exc}", hint=FUSE_HINT) from None
    return mfusepy


def serve(fuse: object, operations: object, mountpoint: str, fsname: str,
          note: Callable[[str], None] = lambda text: None) -> None:
    """Mount ``operations`` read-only at ``mountpoint`` and serve until it is unmounted, or until SIGINT, SIGTERM
    or SIGHUP (then it unmounts). StorageError when libfuse refuses to mount."""
    run: Callable[..., object] = getattr(fuse, "FUSE")  # noqa: B009 (the module is imported at run time)
    failure: list[BaseException] = []

    def loop() -> None:
        try:
            run(operations, mountpoint, foreground=True, ro=True, fsname=fsname, subtype="vault",
                kernel_cache=True, auto_unmount=True, max_threads=16, max_idle_threads=8)
        except BaseException as exc:  # handed to the main thread
            failure.append(exc)

    server = threading.Thread(target=loop, name="vault-fuse", daemon=True)
    stop = threading.Event()
    with _signals_to(stop):
        server.start()
        asked = 0
        while server.is_alive():
            if stop.wait(0.25):
                stop.clear()
                asked += 1
                _unmount(mountpoint, note, force=asked > 1)
            server.join(0.25)
    if failure:
        raise StorageError(f"cannot mount at {mountpoint} ({failure[0]})", hint=FUSE_HINT)


@contextlib.contextmanager
def _signals_to(event: threading.Event) -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP set ``event`` (the main thread then unmounts) while the mount is served; the
    previous handlers come back afterwards. (libfuse installs handlers of its own only where a signal has the
    default disposition, so it leaves these to us.)"""
    def handler(signum: int, frame: object) -> None:
        event.set()

    saved = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


def _unmount(mountpoint: str, note: Callable[[str], None], force: bool) -> None:
    """Unmount (fusermount3 -u); the serving loop then ends. Busy (a program has a file open or its working
    directory inside): detach it lazily and wait for them; asked again: abort the connection, so that they get
    errors and the loop ends now."""
    if force:
        _abort(mountpoint)
        return
    if _fusermount(mountpoint) != 0:
        note(f"{mountpoint} is in use: detached; waiting for the programs that use it (again to force)")
        _fusermount(mountpoint, "-z")


def _fusermount(mountpoint: str, *extra: str) -> int:
    tool = shutil.which("fusermount3") or shutil.which("fusermount")
    if tool is None:  # root without the helper: umount(8)
        tool, args = shutil.which("umount") or "umount", [*(["-l"] if extra else []), mountpoint]
    else:
        args = ["-u", "-q", *extra, mountpoint]
    done = subprocess.run([tool, *args], capture_output=True, check=False)
    return done.returncode


def _abort(mountpoint: str) -> None:
    """Abort the FUSE connection of ``mountpoint`` (/sys/fs/fuse/connections/N/abort)."""
    try:
        minor = os.minor(os.stat(mountpoint).st_dev)
        with open(f"/sys/fs/fuse/connections/{minor}/abort", "w") as f:
            f.write("1")
    except OSError:
        _fusermount(mountpoint, "-z")
