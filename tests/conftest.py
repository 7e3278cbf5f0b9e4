"""Shared fixtures. Every test runs with a clean environment: no VAULT_* or AWS_* variables from the
machine, HOME and the XDG directories in a temporary folder (borg's clean_env), so nothing touches the
user's real vault or logs.

Cheap KDF parameters come from the ``cheap_kdf`` fixture (in-process: the defaults are lowered for the test;
through the command line: explicit ``init --kdf-*`` options), never from a production environment variable.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests"))

# What the fixtures are made of is in helpers.py; tests import it from there, never from a conftest (see there).
from helpers import CHEAP, PASSWORD, VaultCli  # noqa: E402

from vault.crypto import kdf  # noqa: E402


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
