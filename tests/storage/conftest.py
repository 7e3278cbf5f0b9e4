"""Fixtures for the storage tests: one moto S3 server for the whole session, and per-test AWS settings.

The environment is set per test with ``monkeypatch`` (not once for the session), so that it survives an
autouse fixture elsewhere that cleans the environment, and is restored after every test.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# tests/ holds shared helpers (s3_helpers.py). pytest puts it on sys.path only when tests/conftest.py
# exists and tests/ is not a package; make sure it is there either way.
_TESTS_DIR = str(Path(__file__).resolve().parent.parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from s3_helpers import ENV_TO_CLEAR, s3_environment, start_moto_server  # noqa: E402


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A moto server on 127.0.0.1 for the session; yields its endpoint URL."""
    server, endpoint = start_moto_server()
    try:
        yield endpoint
    finally:
        server.stop()


@pytest.fixture
def s3_env(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point boto3 at the moto server for one test (dummy credentials, no ~/.aws); yields the endpoint."""
    for name in ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_environment(s3_server).items():
        monkeypatch.setenv(name, value)
    return s3_server
