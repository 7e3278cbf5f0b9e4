"""Recovery keys, tried as a new user would: `vault init --recovery-key FILE`, lose every password, and get
everything back with the key file alone (docs/security.md, "Recovery keys"; docs/lost-password.md).

A recovery key is 240 random bits and a 40-bit checksum in base32, 14 groups of 4 characters. It opens its own
key slot like a password: from `--password-file FILE` (the key file itself), from VAULT_PASSWORD, or typed
at the prompt, with case, spaces and dashes ignored.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

from helpers import VaultCli, assert_error, random_bytes, snapshot, write_file

from vault.crypto import recovery

KEY_LINE = re.compile(r"^[A-Z2-7]{4}(-[A-Z2-7]{4}){13}$")
OTHER_PASSWORD = "a second password"


def _key_of(path: Path) -> str:
    return path.read_text().splitlines()[0]


def _keys(cli: VaultCli, **kw: object) -> list[dict]:  # type: ignore[type-arg]
    return json.loads(cli("key", "list", "--json", check=0, **kw).stdout)  # type: ignore[arg-type]


def _with_key_file(path: Path) -> dict[str, str]:
    """Environment for a user who has only the key file: no VAULT_PASSWORD."""
    return {"VAULT_PASSWORD_FILE": str(path), "VAULT_PASSWORD": ""}


def _sources(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    write_file(src / "docs" / "letter.txt", b"Dear vault,\n" * 3000)
    write_file(src / "docs" / "deep" / "photo.raw", random_bytes(700_000, seed=1))
    write_file(src / "docs" / "empty", b"")
    os.symlink("letter.txt", src / "docs" / "link")
    write_file(src / "db.dump", random_bytes(300_000, seed=2))
    return src


# ---------------------------------------------------------------------------------------- the key file


def test_init_writes_a_private_key_file_with_the_key_on_its_first_line(cli: VaultCli, tmp_path: Path) -> None:
    key_file = tmp_path / "recovery.txt"
    r = cli.init("--recovery-key", str(key_file))
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = _key_of(key_file)
    assert KEY_LINE.match(key), key
    assert recovery.normalize(key) == key.encode()
    assert key not in r.stdout and key not in r.err
    types = sorted(k["type"] for k in _keys(cli))
    assert types == ["password", "recovery"]


# ------------------------------------------------------------------------------- every password lost


def test_the_recovery_key_alone_restores_everything(cli: VaultCli, tmp_path: Path) -> None:
    """init with a recovery key; put a tree and a file; remove the only password while opened with the
    recovery key; the password no longer opens anything; the key file restores every byte."""
    key_file = tmp_path / "recovery.txt"
    cli.init("--recovery-key", str(key_file))
    src = _sources(tmp_path)
    cli("put", str(src / "docs"), str(src / "db.dump"), check=0)

    keys = _keys(cli)
    (password_slot,) = [k["id"] for k in keys if k["type"] == "password"]
    cli("key", "remove", password_slot, env=_with_key_file(key_file), check=0)
    assert_error(cli("ls"), 12)  # the password is gone for good
    after = _keys(cli, env=_with_key_file(key_file))
    assert [k["type"] for k in after] == ["recovery"] and after[0]["current"]

    # The new user: a fresh shell, only the key file (as --password-file, the contract's first source).
    user = VaultCli(cli.vault_path, {k: v for k, v in cli.env.items() if k != "VAULT_PASSWORD"})
    out = tmp_path / "restored"
    out.mkdir()
    user("--password-file", str(key_file), "get", "docs", "-o", str(out / "docs"), check=0)
    user("--password-file", str(key_file), "get", "db.dump", "-o", str(out / "db.dump"), check=0)
    assert snapshot(out / "docs") == snapshot(src / "docs")
    assert (out / "db.dump").read_bytes() == (src / "db.dump").read_bytes()
    user("--password-file", str(key_file), "check", "--read-data", check=0)
    # The last key can't be removed, recovery key or not.
    assert_error(user("--password-file", str(key_file), "key", "remove", after[0]["id"]), 40)


def test_the_key_typed_lowercase_without_dashes_opens_the_vault(cli: VaultCli, tmp_path: Path) -> None:
    key_file = tmp_path / "recovery.txt"
    cli.init("--recovery-key", str(key_file))
    data = random_bytes(20_000, seed=3)
    cli("put", "-", "--name", "n.bin", input=data, check=0)
    key = _key_of(key_file)
    sloppy = key.replace("-", "").lower()
    assert cli("get", "n.bin", "-o", "-", env={"VAULT_PASSWORD": sloppy}, check=0).out == data
    spaced = " ".join(key.split("-"))
    # 0, 1 and 8 are not base32: read as O, I and B (a typist's likely slips).
    typo = spaced.replace("O", "0").replace("I", "1").replace("B", "8")
    for typed in (spaced, typo):
        keys = _keys(cli, env={"VAULT_PASSWORD": typed})
        assert next(k for k in keys if k["current"])["type"] == "recovery"


def test_a_key_with_one_character_changed_is_a_wrong_password(cli: VaultCli, tmp_path: Path) -> None:
    """The checksum catches the slip: the text is not a recovery key any more (normalize gives None), so it
    is tried as a password, which no slot takes: exit 12, 'wrong password'."""
    key_file = tmp_path / "recovery.txt"
    cli.init("--recovery-key", str(key_file))
    key = _key_of(key_file)
    wrong = ("A" if key[0] != "A" else "B") + key[1:]
    assert recovery.normalize(wrong) is None
    r = cli("ls", env={"VAULT_PASSWORD": wrong})
    assert_error(r, 12, "wrong password")
    assert "looks like a recovery key" in r.err and "typo" in r.err  # the hint line
    assert wrong not in r.err and key not in r.err
    dropped = key[:-1]  # a character left out: still the shape of a key
    assert "looks like a recovery key" in cli("ls", env={"VAULT_PASSWORD": dropped}).err
    plain = cli("ls", env={"VAULT_PASSWORD": "an ordinary wrong password"})
    assert_error(plain, 12, "wrong password")
    assert "recovery key" not in plain.err


def test_key_add_recovery_adds_a_second_key(cli: VaultCli, tmp_path: Path) -> None:
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    cli.init("--recovery-key", str(first))
    r = cli("key", "add", "--recovery", str(second), check=0)
    assert stat.S_IMODE(second.stat().st_mode) == 0o600
    assert _key_of(first) != _key_of(second) and KEY_LINE.match(_key_of(second))
    assert _key_of(second) not in r.stdout + r.err
    assert sorted(k["type"] for k in _keys(cli)) == ["password", "recovery", "recovery"]
    for f in (first, second):
        keys = _keys(cli, env=_with_key_file(f))
        assert next(k for k in keys if k["current"])["type"] == "recovery"


def test_an_existing_key_file_is_never_overwritten(cli: VaultCli, tmp_path: Path) -> None:
    """init: exit 40, no vault created. key add --recovery: exit 40, no slot added. The file is untouched."""
    existing = tmp_path / "precious.txt"
    existing.write_bytes(b"my precious notes\n")
    assert_error(cli("init", "--kdf-memory", "8", "--recovery-key", str(existing)), 40)
    assert not (cli.vault_path / "config").exists()
    assert not (cli.vault_path / "keys").exists() or not list((cli.vault_path / "keys").iterdir())
    cli.init()
    before = sorted(p.name for p in (cli.vault_path / "keys").iterdir())
    assert_error(cli("key", "add", "--recovery", str(existing)), 40)
    assert sorted(p.name for p in (cli.vault_path / "keys").iterdir()) == before
    assert existing.read_bytes() == b"my precious notes\n"


def test_passwd_with_a_recovery_key_is_refused_with_a_hint(cli: VaultCli, tmp_path: Path) -> None:
    key_file = tmp_path / "recovery.txt"
    cli.init("--recovery-key", str(key_file))
    before = {p.name: p.read_bytes() for p in (cli.vault_path / "keys").iterdir()}
    r = cli("passwd", env={**_with_key_file(key_file), "VAULT_NEW_PASSWORD": OTHER_PASSWORD})
    assert_error(r, 2, "recovery key")
    assert "vault: hint: " in r.err and "key add" in r.err
    assert {p.name: p.read_bytes() for p in (cli.vault_path / "keys").iterdir()} == before


def test_passwd_with_a_recovery_key_is_refused_before_asking_for_a_new_password(
    cli: VaultCli, tmp_path: Path
) -> None:
    key_file = tmp_path / "recovery.txt"
    cli.init("--recovery-key", str(key_file))
    assert_error(cli("passwd", env=_with_key_file(key_file)), 2, "recovery key")


def test_init_with_an_unwritable_key_file_leaves_nothing_behind(cli: VaultCli, tmp_path: Path) -> None:
    r = cli("init", "--kdf-memory", "8", "--recovery-key", str(tmp_path / "no-such-dir" / "key.txt"))
    assert_error(r, 30)
    assert not (cli.vault_path / "config").exists()


# ------------------------------------------------------------------------------------------- secrecy


def test_the_recovery_key_never_appears_in_logs_or_output(cli: VaultCli, tmp_path: Path) -> None:
    """Every way the key travels (file, environment, two formats), with -vv and with failures, then a search
    of stdout, stderr, the operation log, the debug log (everything under HOME) and the storage."""
    home = Path(cli.env["HOME"])
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    outputs: list[str] = []

    def run(*args: str, **kw: object) -> None:
        r = cli("-vv", *args, **kw)  # type: ignore[arg-type]
        outputs.extend([r.stdout, r.err])

    run("init", "--kdf-memory", "8", "--kdf-time", "1", "--kdf-parallelism", "1", "--recovery-key", str(first))
    run("key", "add", "--recovery", str(second))
    key1, key2 = _key_of(first), _key_of(second)
    run("put", "-", "--name", "x", input=b"some data", env=_with_key_file(first))
    run("get", "x", "-o", "-", env={"VAULT_PASSWORD": key2.replace("-", "").lower()})
    run("get", "no-such-item", env=_with_key_file(second))
    run("passwd", env={**_with_key_file(first), "VAULT_NEW_PASSWORD": OTHER_PASSWORD})
    run("key", "add", "--recovery", str(first), env=_with_key_file(second))  # exists: 40
    run("log", env=_with_key_file(first))

    needles = set()
    for k in (key1, key2):
        compact = k.replace("-", "")
        needles |= {k, compact, compact.lower(), k.lower(), " ".join(k.split("-"))}
    for text in outputs:
        assert not [n for n in needles if n in text], text
    logs = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.suffix == ".jsonl" for p in logs) and any(p.name.startswith("vault-debug") for p in logs)
    stored = [p for p in cli.vault_path.rglob("*") if p.is_file()]
    for p in logs + stored:
        content = p.read_bytes()
        assert not [n for n in needles if n.encode() in content], p
