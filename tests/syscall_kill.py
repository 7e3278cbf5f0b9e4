"""Kill a `vault` command at an exact system call, with strace: the kill trials' tool (issue 21) and the crash
tests' (tests/integration/test_crash.py).

Only what a process has done survives SIGKILL: every file it created, wrote, renamed or removed before the signal,
and nothing after (SIGKILL is not a power cut: the page cache keeps what was written). So the states a kill can
leave are exactly the prefixes of the command's sequence of state-changing system calls, and killing it on entry
to the N-th of them reaches each of those states precisely and reproducibly, whatever the machine's speed or
load. A random delay would not: it lands mostly in the long CPU-bound stretches (argon2, compression, Python's
start-up) where nothing changes, and where it lands moves with the load of the machine.

- :func:`trace` runs a command to completion under strace and lists its state-changing calls (a calibration);
- :func:`run_killed` runs it again and kills it on entry to the N-th call of one system call (strace's fault
  injection ``-e inject=SYSCALL:signal=KILL:when=N``: that call never happens);
- :func:`run_until` stops the whole process after every call of one system call, asks a predicate about what is
  on disk, and kills the process, still stopped, as soon as the predicate holds: a kill point defined by the
  vault's contents ("four checkpoints are durable") rather than by a count.

strace counts each system call separately and per thread ("per syscall and per tracee"). The commands that
change metadata (rm, forget, prune, repair, key changes, rekey) do so on their main thread, so there
``SYSCALL:N`` is the N-th such call of the command. Where several threads write (put's pack uploads, get's
restore workers) it is the first thread to make its N-th call; :func:`run_until` is exact across threads.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

STRACE = shutil.which("strace")

# Every system call that changes a file system's contents, names or metadata (what a later command can see).
MUTATING = (
    "write", "writev", "pwrite64", "pwritev", "pwritev2",
    "rename", "renameat", "renameat2", "unlink", "unlinkat", "rmdir", "mkdir", "mkdirat",
    "link", "linkat", "symlink", "symlinkat", "ftruncate", "truncate",
    "fchmod", "fchmodat", "utimensat", "fsync", "fdatasync", "syncfs",
)  # fmt: skip

_CALL = re.compile(r"^(\d+)\s+([a-z0-9_]+)\((.*)$")
_TO_TERMINAL = re.compile(r"^[12],")  # write(1, ...) / write(2, ...): standard output and error


@dataclass(frozen=True)
class Call:
    """One system call of a traced run: which thread, which call, and its ordinal among that thread's calls of
    the same system call (what ``when=`` counts)."""

    tid: int
    syscall: str
    ordinal: int
    args: str  # as strace printed them (truncated), for messages

    @property
    def point(self) -> str:
        """``SYSCALL:N``, the kill point that :func:`run_killed` takes."""
        return f"{self.syscall}:{self.ordinal}"

    def describe(self) -> str:
        return f"{self.point} ({self.syscall}({self.args[:100]}))"


@dataclass
class Traced:
    returncode: int
    stdout: bytes
    stderr: str
    calls: list[Call]

    def kill_points(self) -> list[Call]:
        """The calls worth killing at: every state-changing call but the writes to standard output and error
        (they change nothing that a later command sees)."""
        return [c for c in self.calls if not (c.syscall.startswith("write") and _TO_TERMINAL.match(c.args))]


def strace_command(point: str | None = None) -> list[str]:
    """The strace prefix that kills the command at ``point`` (``SYSCALL:N``), as a person would type it."""
    assert STRACE is not None, "strace is not installed (apt-get install strace)"
    if point is None:
        return [STRACE, "-f", "-qq", "-o", "/dev/null"]
    syscall, n = point.split(":")
    return [STRACE, "-f", "-qq", "-o", "/dev/null", "-e", f"trace={syscall}",
            "-e", f"inject={syscall}:signal=KILL:when={int(n)}"]


def trace(argv: Sequence[str], env: dict[str, str], log: Path, *, syscalls: Sequence[str] = MUTATING,
          input: bytes = b"", timeout: float = 120) -> Traced:
    """Run ``argv`` to completion under strace, recording its calls of ``syscalls`` (in ``log``)."""
    assert STRACE is not None, "strace is not installed (apt-get install strace)"
    proc = subprocess.run(
        [STRACE, "-f", "-qq", "-s", "64", "-o", str(log), "-e", f"trace={','.join(syscalls)}", *argv],
        env=env, input=input, capture_output=True, timeout=timeout,
    )
    counts: dict[tuple[int, str], int] = {}
    calls = []
    for line in log.read_text(errors="replace").splitlines():
        m = _CALL.match(line)
        if m is None:  # "<... resumed>", signals, exits
            continue
        tid, name, args = int(m[1]), m[2], m[3]
        counts[tid, name] = counts.get((tid, name), 0) + 1
        calls.append(Call(tid, name, counts[tid, name], args))
    return Traced(proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"), calls)


def run_killed(argv: Sequence[str], env: dict[str, str], point: str, *, input: bytes = b"",
               timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` under strace and kill it with SIGKILL on entry to the call ``point`` (``SYSCALL:N``), which
    then never happens. ``returncode`` is ``-SIGKILL`` when the kill happened; the command's own exit status when
    it finished first (fewer such calls than N this time)."""
    proc = subprocess.run([*strace_command(point), *argv], env=env, input=input, capture_output=True,
                          timeout=timeout)
    if proc.returncode == 128 + signal.SIGKILL:  # a shell would report it so; strace re-raises the signal
        proc.returncode = -signal.SIGKILL
    return proc


def run_until(argv: Sequence[str], env: dict[str, str], syscall: str, kill_now: Callable[[], bool], *,
              timeout: float = 300) -> tuple[int, bool]:
    """Run ``argv`` under strace, stopping the whole process (SIGSTOP, every thread) right after each call of
    ``syscall``; while it is stopped, call ``kill_now()``: when it returns True, kill the process (nothing more
    happens), otherwise let it go on (SIGCONT). Returns the exit status (``-SIGKILL`` after a kill) and whether
    the predicate fired. The process is only ever inspected while every one of its threads is stopped, so the
    kill lands exactly where the predicate first held, whichever thread made the call."""
    assert STRACE is not None, "strace is not installed (apt-get install strace)"
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        [STRACE, "-f", "-qq", "-o", f"/dev/fd/{write_end}", "-e", f"trace={syscall}",
         "-e", f"inject={syscall}:signal=STOP", *argv],
        env=env, pass_fds=(write_end,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    deadline = time.monotonic() + timeout
    fired = False
    pid: int | None = None
    stopped: set[int] = set()
    pending = b""
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([read_end], [], [], 0.5)
            if not ready:
                continue
            data = os.read(read_end, 65536)
            if not data:
                break  # strace is done: the command exited (or was killed)
            *lines, pending = (pending + data).split(b"\n")
            for line in lines:
                head, _, rest = line.partition(b" ")
                if not head.isdigit():
                    continue
                pid = pid or int(head)  # strace's first line is the command's first thread
                if rest.lstrip().startswith(b"--- stopped by SIGSTOP"):
                    stopped.add(int(head))
            if pid is None or not stopped:
                continue
            try:
                threads = {int(t) for t in os.listdir(f"/proc/{pid}/task")}
            except FileNotFoundError:
                continue
            if not threads <= stopped:
                continue  # some thread is still on its way to the stop
            if kill_now():
                os.kill(pid, signal.SIGKILL)
                fired = True
            else:
                stopped.clear()
                os.kill(pid, signal.SIGCONT)
        else:
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.kill()
            raise AssertionError(f"{list(argv)} did not finish within {timeout} s under strace")
    finally:
        os.close(read_end)
    return proc.wait(timeout=60), fired
