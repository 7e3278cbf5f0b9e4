"""Fixtures of the command-line tests.

``vault`` is overridden here with the same meaning as in tests/conftest.py (the ``cli`` command bound to an
initialised vault with cheap KDF parameters), but the vault is a copy of one made by ``vault init`` once per
session: copying a few files is much cheaper than starting the command again for every test. A test marked
``@pytest.mark.stored`` gets a vault that also holds one file item, ``f.bin`` (``helpers.STORED_DATA``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import CHEAP_INIT_ARGS, STORED_DATA, copy_vault, run_ok, template_env, write_file


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "stored: the `vault` fixture's vault holds the file item f.bin")


@pytest.fixture(scope="session")
def _templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("cli-templates")
    empty, stored = base / "empty", base / "stored"
    run_ok(template_env(base / "home", empty), "init", *CHEAP_INIT_ARGS)
    env = template_env(base / "home", stored)
    run_ok(env, "init", *CHEAP_INIT_ARGS)
    run_ok(env, "put", str(write_file(base / "src" / "f.bin", STORED_DATA)))
    return {"empty": empty, "stored": stored}


@pytest.fixture
def vault(cli, _templates: dict[str, Path], request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    which = "stored" if request.node.get_closest_marker("stored") else "empty"
    copy_vault(_templates[which], cli.vault_path)
    return cli
