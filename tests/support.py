"""What tests share beyond fixtures: the command runner and cheap KDF settings. Import it as
``from support import VaultCli, CHEAP_INIT_ARGS, PASSWORD`` (``conftest`` is ambiguous: every test folder
may have one)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from vault.crypto import kdf

CHEAP = kdf.KdfParams(memory_kib=8 * 1024, time_cost=1, parallelism=1)
# What the command line gets for the same purpose (init warns that 8 MiB is below OWASP's minimum).
CHEAP_INIT_ARGS = ["--kdf-memory", "8", "--kdf-time", "1", "--kdf-parallelism", "1"]
PASSWORD = "correct horse battery staple"


def _vault_exe() -> list[str]:
    exe = Path(sys.executable).with_name("vault")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "vault"]


@dataclass
class Result:
    code: int
    out: bytes
    err: str

    @property
    def stdout(self) -> str:
        return self.out.decode("utf-8", "replace")


class VaultCli:
    """Runs the installed `vault` entry point as a child process, as users and their scripts do."""

    def __init__(self, vault_path: Path, env: dict[str, str]) -> None:
        self.vault_path = vault_path
        self.env = env
        self.exe = _vault_exe()

    def __call__(
        self,
        *args: str,
        input: bytes | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 120,
        check: int | None = None,
        cwd: Path | None = None,
    ) -> Result:
        full_env = dict(self.env)
        full_env.update(env or {})
        for k, v in list(full_env.items()):
            if v is None:  # type: ignore[comparison-overlap]
                del full_env[k]
        proc = subprocess.run(
            [*self.exe, *args],
            input=input if input is not None else b"",
            capture_output=True,
            env=full_env,
            timeout=timeout,
            cwd=cwd,
        )
        result = Result(proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"))
        assert "Traceback" not in result.err, result.err
        if check is not None:
            assert result.code == check, (args, result.code, result.err)
        return result

    def init(self, *extra: str) -> Result:
        return self("init", *CHEAP_INIT_ARGS, *extra, check=0)




# A tiny process between the test and the measured command. At execve the kernel folds the old address space's
# high-water mark into the new program's max RSS; for a child forked (or vforked) straight from a large pytest
# worker that is the worker's size. Forked from this ~10 MB interpreter instead, the figure is the command's own.
_RSS_WRAPPER = (
    "import os, resource, sys\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.execvp(sys.argv[2], sys.argv[2:])\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)\n"
)


def measured_command(cmd: list[str], rss_file: Path) -> list[str]:
    """``cmd`` wrapped so that its own peak RSS (KiB) is written to ``rss_file`` when it exits."""
    return [sys.executable, "-c", _RSS_WRAPPER, str(rss_file), *cmd]
