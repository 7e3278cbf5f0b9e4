"""Fixtures for the integration tests: a template vault built once per module through the command line and
copied for each test (copying is much faster than running init and puts again), and a look inside a vault
with the library to find where a file's chunks are stored."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from helpers import (
    CHEAP_INIT_ARGS,
    PASSWORD,
    SECOND_PASSWORD,
    ChunkPlace,
    Template,
    chunk_places,
    copy_vault,
    random_bytes,
    run_ok,
    template_env,
    write_file,
)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """A vault with two file items (``a.bin``, ``b.bin``: two puts, so two packs, two index objects and two
    version records), a directory item ``tree`` (a third put) and two keys (PASSWORD, SECOND_PASSWORD)."""
    base = tmp_path_factory.mktemp("template")
    vault_dir = base / "vault"
    src = base / "src"
    env = template_env(base / "home", vault_dir)
    run_ok(env, "init", *CHEAP_INIT_ARGS)
    write_file(src / "a.bin", random_bytes(100_000, seed=31))
    write_file(src / "b.bin", random_bytes(120_000, seed=32))
    write_file(src / "tree" / "one.txt", random_bytes(50_000, seed=33))
    write_file(src / "tree" / "two.txt", random_bytes(60_000, seed=34))
    run_ok(env, "put", str(src / "a.bin"), "--compression", "0")
    run_ok(env, "put", str(src / "b.bin"), "--compression", "0")
    run_ok(env, "put", str(src / "tree"), "--compression", "0")
    run_ok({**env, "VAULT_NEW_PASSWORD": SECOND_PASSWORD}, "key", "add")
    keys = json.loads(run_ok(env, "key", "list", "--json").stdout)
    key_ids = {PASSWORD: next(k["id"] for k in keys if k["current"])}
    key_ids[SECOND_PASSWORD] = next(k["id"] for k in keys if not k["current"])
    return Template(vault_dir, src, key_ids)


@pytest.fixture
def tampered(template: Template, cli):  # type: ignore[no-untyped-def]
    """A private copy of the template vault, bound to the ``cli`` command."""
    assert cli.env["VAULT_PASSWORD"] == PASSWORD
    copy_vault(template.vault_dir, cli.vault_path)
    return cli


@pytest.fixture
def locate() -> Callable[..., list[ChunkPlace]]:
    return chunk_places
