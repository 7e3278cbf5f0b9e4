"""Vaults made by earlier releases, checked in under tests/vectors, must still open, list, restore and verify.

`vault-v1` was written by the release before key generations (format 1), `vault-v2` is that vault after
`vault rekey` and one more put (format 2, data under key generations 0 and 1). See tests/vectors/README.md.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from helpers import VaultCli, assert_error, snapshot

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
FROZEN_PASSWORD = "frozen-vector-password"
V1_RECOVERY_KEY = "7Z2A-YDK3-HO4H-PT4D-DHDE-KYR5-5PRG-TJP7-2WQF-3SXG-OFVJ-JMAW-4QXW-YJEG"


def _photos(root: Path) -> Path:
    """What the `photos` item held when it was stored."""
    photos = root / "photos"
    photos.mkdir(parents=True)
    rng = random.Random(7)
    (photos / "a.jpg").write_bytes(bytes(rng.getrandbits(8) for _ in range(40000)))
    (photos / "b.txt").write_bytes(b"b\n" * 3000)
    (photos / "empty").write_bytes(b"")
    (photos / "link").symlink_to("a.jpg")
    return photos


def _open_copy(name: str, tmp_path: Path, cli: VaultCli) -> VaultCli:
    """A writable copy of a frozen vault (git keeps no empty directories: `locks/` comes back on first use)."""
    dest = tmp_path / name
    shutil.copytree(VECTORS / name, dest)
    env = dict(cli.env, VAULT_PATH=str(dest), VAULT_PASSWORD=FROZEN_PASSWORD)
    return VaultCli(dest, env)


def _restores(vault: VaultCli, tmp_path: Path, item: str, version: str, expected: bytes | Path) -> None:
    out = tmp_path / f"out-{item}-{version}"
    vault("get", item, "--version", version, "-o", str(out), check=0)
    if isinstance(expected, bytes):
        assert out.read_bytes() == expected
    else:
        assert snapshot(out) == snapshot(expected)
        assert (out / "b.txt").stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("name", ["vault-v1", "vault-v2"])
def test_a_frozen_vault_reads_restores_and_verifies(name: str, tmp_path: Path, cli: VaultCli) -> None:
    vault = _open_copy(name, tmp_path, cli)
    items = {e["name"]: e for e in json.loads(vault("ls", "--json", check=0).stdout)}
    photos = _photos(tmp_path / "expected")
    _restores(vault, tmp_path, "photos", "1", photos)
    _restores(vault, tmp_path, "notes.txt", "1", b"frozen vault, format 1\n")
    if name == "vault-v1":
        assert set(items) == {"notes.txt", "photos"}
        assert json.loads(vault("info", "--json", check=0).stdout)["format_version"] == 1
    else:
        assert set(items) == {"notes.txt", "photos", "after.txt"} and items["notes.txt"]["versions"] == 2
        _restores(vault, tmp_path, "notes.txt", "2", b"frozen vault, format 2\n")
        _restores(vault, tmp_path, "after.txt", "1", b"after\n")
        assert json.loads(vault("info", "--json", check=0).stdout)["format_version"] == 2
    vault("check", "--read-data", check=0)


def test_the_frozen_recovery_key_still_opens_the_v1_vault(tmp_path: Path, cli: VaultCli) -> None:
    vault = _open_copy("vault-v1", tmp_path, cli)
    key_file = tmp_path / "recovery.txt"
    key_file.write_text(V1_RECOVERY_KEY.lower().replace("-", " ") + "\n")
    env = {"VAULT_PASSWORD": "", "VAULT_PASSWORD_FILE": str(key_file)}
    with_key = VaultCli(vault.vault_path, dict(vault.env, **env))
    _restores(with_key, tmp_path, "notes.txt", "1", b"frozen vault, format 1\n")


def test_a_format_1_vault_stays_format_1_until_rekeyed(tmp_path: Path, cli: VaultCli) -> None:
    """Older releases keep reading a vault this release writes to, until `vault rekey` says otherwise."""
    vault = _open_copy("vault-v1", tmp_path, cli)
    new = tmp_path / "new.txt"
    new.write_bytes(b"written by a later release\n")
    vault("put", str(new), check=0)
    assert json.loads((vault.vault_path / "config").read_text())["format_version"] == 1
    for kind, magic in (("data", b"VLTP\x01"), ("index", b"VLTO\x01"), ("versions", b"VLTO\x01")):
        for path in (vault.vault_path / kind).rglob("*"):
            if path.is_file():
                assert path.read_bytes()[:5] == magic, path
    for path in (vault.vault_path / "keys").iterdir():
        assert json.loads(path.read_text())["version"] == 1


def test_a_release_that_reads_format_1_only_refuses_the_v2_vault(tmp_path: Path, cli: VaultCli) -> None:
    """Stand-in for the older release: its reader's maximum was 1, so the config's 2 is exit 21 up front."""
    vault = _open_copy("vault-v2", tmp_path, cli)
    config = json.loads((vault.vault_path / "config").read_text())
    config["format_version"] = 5  # what this release's own reader does with a newer vault
    (vault.vault_path / "config").write_text(json.dumps(config))
    assert_error(vault("ls"), 21, "newer")
