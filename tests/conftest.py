"""Shared fixtures. Every test runs with a clean environment: no VAULT_* or AWS_* variables from the
machine, HOME and the XDG directories in a temporary folder (borg's clean_env), so nothing touches the
user's real vault or logs.

Cheap KDF parameters come from the ``cheap_kdf`` fixture (in-process: the defaults are lowered for the test;
through the command line: explicit ``init --kdf-*`` options), never from a production environment variable.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests"))

from vault.crypto import kdf  # noqa: E402

CHEAP = kdf.KdfParams(memory_kib=8 * 1024, time_cost=1, parallelism=1)
# What the command line gets for the same purpose (init warns that 8 MiB is below OWASP's minimum).
CHEAP_INIT_ARGS = ["--kdf-memory", "8", "--kdf-time", "1", "--kdf-parallelism", "1"]
PASSWORD = "correct horse battery staple"


def _vault_exe() -> list[str]:
    exe = Path(sys.executable).with_name("vault")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "vault"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home")
    for name in list(os.environ):
        if name.startswith(("VAULT_", "AWS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local/share"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local/state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    return home


@pytest.fixture
def cheap_kdf(monkeypatch: pytest.MonkeyPatch) -> kdf.KdfParams:
    """Lower the in-process KDF defaults for this test (restic's test-only setter, argon2's CHEAPEST)."""
    monkeypatch.setattr(kdf, "DEFAULT_PARAMS", CHEAP)
    return CHEAP


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


@pytest.fixture
def vault_dir(tmp_path: Path) -> Path:
    return tmp_path / "vault"


@pytest.fixture
def cli(vault_dir: Path, clean_env: Path) -> Iterator[VaultCli]:
    """A `vault` command bound to a fresh vault location, with the password in VAULT_PASSWORD."""
    env = dict(os.environ)
    env["VAULT_PATH"] = str(vault_dir)
    env["VAULT_PASSWORD"] = PASSWORD
    yield VaultCli(vault_dir, env)


@pytest.fixture
def vault(cli: VaultCli) -> VaultCli:
    """An initialised vault (cheap KDF parameters) and the command bound to it."""
    cli.init()
    return cli
