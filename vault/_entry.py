"""The console script. Kept tiny so that an interrupt while the command line's modules import still ends
with the contract's one-line message and exit 130, never Python's traceback."""

from __future__ import annotations

import sys


def _tune_malloc() -> None:
    """Keep freed multi-MiB buffers (chunks, compressed and sealed blobs, packs) in the heap for reuse.

    glibc serves allocations above 128 KiB with fresh mmaps and returns them on free, so every chunk paid for
    page faults on first touch (about 1 GB/s on these VMs, see docs/performance.md): on a 1 GiB put that was
    over a second of system time. Raising the mmap and trim thresholds, and capping the arenas at two (one per
    core's worth of threads), makes those buffers recycle. Memory stays bounded by the pipeline's window.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8
        libc.mallopt(m_mmap_threshold, 64 * 1024 * 1024)
        libc.mallopt(m_trim_threshold, 256 * 1024 * 1024)
        libc.mallopt(m_arena_max, 2)
    except (OSError, AttributeError):  # not glibc (musl, ...): the defaults are merely slower
        pass


def _no_core_dumps() -> None:
    """Forbid core dumps for this process and what it starts (RLIMIT_CORE 0, soft and hard).

    A crash (a bug in a C extension, SIGABRT, SIGSEGV) would otherwise write the process's memory to a core
    file, or hand it to a crash reporter: the master key, the subkeys and the password are in it, and Python
    can't wipe them. The kernel writes no core file at a limit of 0, and systemd-coredump honours the limit too;
    a core_pattern handler that ignores it is out of vault's hands (docs/security.md)."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, OSError, ValueError):  # not POSIX; or a limit that can't be lowered (never on Linux)
        pass


def main() -> None:
    _no_core_dumps()
    _tune_malloc()
    try:
        from vault.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("vault: error: interrupted\n")
        sys.exit(130)
    cli_main()
