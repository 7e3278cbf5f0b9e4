"""S3 support is an extra: without boto3, an s3:// location is a usage error (exit 2) that says what to
install, and nothing else needs boto3."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import CHEAP_INIT_ARGS, assert_error, write_file

from vault.errors import UsageError
from vault.storage import open_backend


@pytest.fixture
def no_boto3(tmp_path: Path) -> dict[str, str]:
    """An environment whose PYTHONPATH holds a ``boto3`` package that fails to import, as if it were
    not installed."""
    fake = tmp_path / "no-boto3"
    write_file(fake / "boto3" / "__init__.py", b"raise ImportError('No module named boto3 (simulated)')\n")
    return {"PYTHONPATH": str(fake)}


def test_s3_location_without_boto3_says_what_to_install(cli, no_boto3: dict[str, str], tmp_path: Path) -> None:
    for args in (
        ["--vault", "s3://some-bucket/prefix", "init", *CHEAP_INIT_ARGS],
        ["--vault", "s3://some-bucket", "ls"],
    ):
        r = cli(*args, env=no_boto3)
        assert_error(r, 2, "pip install")
        assert "boto3" in r.err and "vault[s3]" in r.err
    r = cli("ls", env={**no_boto3, "VAULT_PATH": "s3://some-bucket/prefix"})
    assert_error(r, 2, "vault[s3]")
    # A local vault needs no boto3 at all.
    local = str(tmp_path / "local")
    cli("--vault", local, "init", *CHEAP_INIT_ARGS, env=no_boto3, check=0)
    cli("--vault", local, "put", "-", "--name", "x", input=b"x", env=no_boto3, check=0)


def test_open_backend_without_boto3(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("boto3", "boto3.session", "botocore", "botocore.config", "botocore.exceptions"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(UsageError) as info:
        open_backend("s3://some-bucket/prefix")
    assert info.value.exit_code == 2
    assert "pip install 'vault[s3]'" in info.value.message


def test_importing_vault_does_not_import_boto3() -> None:
    code = (
        "import sys, vault.cli, vault.storage, vault.repo.repository\n"
        "from vault.storage import open_backend\n"
        "open_backend('/tmp/somewhere')\n"
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'boto3 imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
