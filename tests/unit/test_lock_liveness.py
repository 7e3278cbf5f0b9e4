"""Whether a lock's process still runs (vault/repo/locks.py): a zombie holds nothing.

A put killed under strace (or by anything that dies before reaping it) can stay a zombie whose pid answers
signal 0; before the fix its lock counted as live, so the next put did not adopt the dead put's checkpoints
(tests/integration/test_crash.py failed that way on a loaded machine)."""

from __future__ import annotations

import os
import socket
import time

from vault.repo.locks import LockInfo, _pid_alive, is_stale


def test_a_running_process_is_alive_and_a_zombie_is_not() -> None:
    assert _pid_alive(os.getpid())
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until the child has exited (a zombie: not reaped yet)
            with open(f"/proc/{pid}/stat", "rb") as f:
                if f.read().rpartition(b")")[2].split()[0] == b"Z":
                    break
            time.sleep(0.01)
        os.kill(pid, 0)  # still answers signal 0...
        assert not _pid_alive(pid)  # ...but is not alive
        info = LockInfo(name="x", exclusive=False, host=socket.gethostname(), pid=pid, time=time.time(), command="put")
        assert is_stale(info)
    finally:
        os.waitpid(pid, 0)
    assert not _pid_alive(pid)
