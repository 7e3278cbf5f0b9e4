"""Fixtures for driving the `vault` command against a real S3 server: moto's ``ThreadedMotoServer`` on
127.0.0.1, started once for the session and spoken to over HTTP by boto3 exactly as AWS would be.

Every test gets a fresh bucket that does not exist yet (``vault init`` has to create it). The ``s3`` fixture
gives a :class:`S3Vault`: the `vault` command (the real entry point, as a child process, via the shared
``cli`` fixture) bound to ``VAULT_PATH=s3://BUCKET/PREFIX``; ``s3_any`` runs a test that way and again with
``--vault s3://BUCKET`` (the bucket's root, no prefix, no ``VAULT_PATH``); ``s3_vault`` is ``s3`` with a vault
already made in it.

The AWS variables are set after the autouse ``clean_env`` (which removes every AWS_* variable): in
``os.environ`` through monkeypatch, for boto3 in the test process, and in the environment given to the
child process. The secret key is a distinctive string; when a test ends, its fixture checks that the
secret key and the access key id appear in no output of any command the test ran, and in no file under the
test's state directory (the operation log and the debug log).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

_TESTS_DIR = str(Path(__file__).resolve().parent.parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from helpers import CHEAP, CHEAP_INIT_ARGS, PASSWORD, parse_json  # noqa: E402
from s3_helpers import ENV_TO_CLEAR, fresh_bucket_name, s3_environment, start_moto_server  # noqa: E402

# Distinctive credentials: moto accepts any, and the tests look for them everywhere they must not be.
SECRET_KEY = "SECRETKEY-DO-NOT-LEAK-123"
ACCESS_KEY_ID = "VAULTTESTACCESSKEYID7"


def aws_environment(endpoint: str) -> dict[str, str]:
    env = s3_environment(endpoint)
    env["AWS_ACCESS_KEY_ID"] = ACCESS_KEY_ID
    env["AWS_SECRET_ACCESS_KEY"] = SECRET_KEY
    return env


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A moto server on 127.0.0.1 for the whole session; yields its endpoint URL."""
    # moto's werkzeug logs every request at INFO; pytest would capture them all, at a cost in time.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server, endpoint = start_moto_server()
    try:
        yield endpoint
    finally:
        server.stop()


@dataclass
class S3Vault:
    """The `vault` command bound to one S3 location, plus a boto3 client to look at the bucket directly."""

    run: Any  # the shared VaultCli (tests/conftest.py)
    bucket: str
    prefix: str
    endpoint: str
    client: Any
    home: Path
    use_flag: bool
    results: list[Any] = field(default_factory=list)

    SECRET_KEY = SECRET_KEY
    ACCESS_KEY_ID = ACCESS_KEY_ID
    PASSWORD = PASSWORD

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def env(self) -> dict[str, str]:
        return dict(self.run.env)

    def __call__(self, *args: str, **kwargs: Any) -> Any:
        if self.use_flag:
            args = ("--vault", self.location, *args)
        result = self.run(*args, **kwargs)
        self.results.append(result)
        return result

    def init(self, *extra: str) -> Any:
        return self("init", *CHEAP_INIT_ARGS, *extra, check=0)

    def via(self, endpoint: str) -> Callable[..., Any]:
        """The same command, but speaking to ``endpoint`` (a fault proxy, a closed port)."""

        def call(*args: str, **kwargs: Any) -> Any:
            env = dict(kwargs.pop("env", None) or {})
            env.setdefault("AWS_ENDPOINT_URL", endpoint)
            return self(*args, env=env, **kwargs)

        return call

    def info(self) -> dict[str, Any]:
        doc: dict[str, Any] = parse_json(self("info", "--json"))
        return doc

    # -- the bucket, seen directly -------------------------------------------------------------------------
    def all_keys(self) -> list[str]:
        out: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            out.extend(obj["Key"] for obj in page.get("Contents", ()))
        return sorted(out)

    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def keys_of(self, kind: str) -> list[str]:
        start = self.key(f"{kind}/")
        return [k for k in self.all_keys() if k.startswith(start)]

    def body(self, key: str) -> bytes:
        data: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return data

    def state_files(self) -> list[Path]:
        return state_files(self.home)

    def assert_no_credentials(self, *results: Any) -> None:
        """No credential in these results' output, nor in the operation log or the debug log."""
        texts = [(f"output of {r!r}", r.out + r.err.encode()) for r in results]
        texts += [(str(p), p.read_bytes()) for p in self.state_files()]
        assert_no_credentials(texts)

    def stored_bytes(self) -> int:
        """The bytes in ``data/`` as the bucket lists them (what ``info --json`` calls stored_bytes)."""
        total = 0
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.key("data/")
        ):
            total += sum(int(obj["Size"]) for obj in page.get("Contents", ()))
        return total

    def bucket_exists(self) -> bool:
        names = {b["Name"] for b in self.client.list_buckets().get("Buckets", [])}
        return self.bucket in names


def state_files(home: Path) -> list[Path]:
    """The operation log and debug log files under the test's HOME (XDG_STATE_HOME is HOME/.local/state)."""
    root = home / ".local" / "state"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def assert_no_credentials(texts: list[tuple[str, bytes]]) -> None:
    needles = [SECRET_KEY.encode(), SECRET_KEY.lower().encode(), ACCESS_KEY_ID.encode()]
    for what, data in texts:
        for needle in needles:
            assert needle not in data, f"a credential appears in {what}"


def check_no_leaks(vault: S3Vault) -> None:
    """Run when a test ends: nothing any command printed, and no log, holds a credential."""
    vault.assert_no_credentials(*vault.results)


@pytest.fixture(scope="session")
def s3_client(s3_server: str) -> Any:
    """A boto3 client of the moto server, for looking at buckets directly (explicit settings: it is made
    once, whatever the environment of each test)."""
    import boto3

    return boto3.session.Session().client(
        "s3",
        endpoint_url=s3_server,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_KEY,
    )


@pytest.fixture
def aws_env(s3_server: str, clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The AWS settings pointing at moto, in ``os.environ`` (after ``clean_env``) and returned as a dict."""
    for name in ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    env = aws_environment(s3_server)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def _make(cli: Any, client: Any, aws_env: dict[str, str], home: Path, *, prefix: str, use_flag: bool) -> S3Vault:
    bucket = fresh_bucket_name()
    vault = S3Vault(
        run=cli,
        bucket=bucket,
        prefix=prefix,
        endpoint=aws_env["AWS_ENDPOINT_URL"],
        client=client,
        home=home,
        use_flag=use_flag,
    )
    cli.env.update(aws_env)
    cli.env["VAULT_PASSWORD"] = PASSWORD
    cli.vault_path = vault.location
    if use_flag:
        cli.env.pop("VAULT_PATH", None)
    else:
        cli.env["VAULT_PATH"] = vault.location
    return vault


@pytest.fixture
def s3(cli: Any, s3_client: Any, aws_env: dict[str, str], clean_env: Path) -> Iterator[S3Vault]:
    """`vault` bound to ``VAULT_PATH=s3://<fresh bucket>/backups/host-1`` (the bucket does not exist yet)."""
    vault = _make(cli, s3_client, aws_env, clean_env, prefix="backups/host-1", use_flag=False)
    yield vault
    check_no_leaks(vault)


@pytest.fixture(params=["prefix-env", "root-flag"])
def s3_any(
    request: pytest.FixtureRequest, cli: Any, s3_client: Any, aws_env: dict[str, str], clean_env: Path
) -> Iterator[S3Vault]:
    """Both ways of naming the vault: ``VAULT_PATH=s3://B/PREFIX`` and ``--vault s3://B``."""
    if request.param == "prefix-env":
        vault = _make(cli, s3_client, aws_env, clean_env, prefix="backups/host-1", use_flag=False)
    else:
        vault = _make(cli, s3_client, aws_env, clean_env, prefix="", use_flag=True)
    yield vault
    check_no_leaks(vault)


@pytest.fixture
def s3_vault(s3: S3Vault) -> S3Vault:
    """An initialised vault in a fresh bucket under a prefix, as `vault init` with cheap KDF options makes
    it, but made in-process (the same ``Repository.create``), which saves a command per test; `init`
    itself is tested through the command line."""
    from vault.crypto.slots import POLICY_EXPLICIT
    from vault.repo.repository import Repository
    from vault.storage import open_backend

    backend = open_backend(s3.location)
    Repository.create(backend, PASSWORD.encode(), CHEAP, POLICY_EXPLICIT)
    backend.inner.close()  # type: ignore[attr-defined]
    return s3

