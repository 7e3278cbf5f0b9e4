"""Every kind of stored object, damaged three ways (a flipped byte, a truncation, a swap with another object
of the same kind), is detected by the command that reads it: exit 20, and nothing is left in the output
directory.

Kinds: data packs (``data/xx/...``), index objects (``index/...``), version records (``versions/...``), key
slots (``keys/...``) and the config. The template vault (tests/integration/conftest.py) holds two file items
from two puts, so there are two objects of each kind to swap (two keys too).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import (
    CHEAP_INIT_ARGS,
    PASSWORD,
    SECOND_PASSWORD,
    Template,
    assert_error,
    flip_byte,
    objects,
    random_bytes,
    swap,
    truncate,
    write_file,
)


def _out_dir(tmp_path: Path) -> Path:
    out = tmp_path / "restore-here"
    out.mkdir()
    return out


def _assert_get_fails_cleanly(  # type: ignore[no-untyped-def]
    vault, out: Path, name: str = "a.bin", stdout: bool = False
) -> None:
    assert_error(vault("get", name, "-o", str(out)), 20)
    assert sorted(os.listdir(out)) == [], "a destination or temporary file was left behind"
    if stdout:
        r = vault("get", name, "-o", "-")
        assert_error(r, 20)
        assert r.out == b""  # a single-chunk file: nothing unauthenticated may be released


def _pack_of(vault_dir: Path, locate: Callable[..., list], name: str) -> Path:  # type: ignore[type-arg]
    (place,) = locate(vault_dir, name)
    return place.pack


# -------------------------------------------------------------------------------------------------- packs


def test_pack_flipped_byte(tampered, locate, tmp_path: Path) -> None:
    pack = _pack_of(tampered.vault_path, locate, "a.bin")
    flip_byte(pack)
    _assert_get_fails_cleanly(tampered, _out_dir(tmp_path), stdout=True)
    assert tampered("get", "b.bin", "-o", "-", check=0).out  # the other item is intact


@pytest.mark.parametrize("where", ["chunk", "tree-blob", "preamble"])
def test_pack_flipped_byte_positions(tampered, locate, tmp_path: Path, where: str) -> None:
    place = locate(tampered.vault_path, "a.bin")[0]
    if where == "chunk":
        offset = place.offset + place.length - 1  # the tag
    elif where == "tree-blob":
        offset = place.offset + place.length + 20  # the blob after the data: the file's tree
    else:
        offset = 6  # the pack's magic and version: get does not read them, `check` does
    flip_byte(place.pack, offset)
    out = _out_dir(tmp_path)
    r = tampered("get", "a.bin", "-o", str(out))
    if where == "preamble":
        assert r.code in (0, 20), r.err
        if r.code == 0:
            assert (out / "a.bin").read_bytes() == random_bytes(100_000, seed=31)
        return
    assert_error(r, 20)
    assert os.listdir(out) == []


def test_pack_truncated(tampered, locate, tmp_path: Path) -> None:
    truncate(_pack_of(tampered.vault_path, locate, "a.bin"))
    _assert_get_fails_cleanly(tampered, _out_dir(tmp_path), stdout=True)


def test_pack_truncated_to_nothing(tampered, locate, tmp_path: Path) -> None:
    truncate(_pack_of(tampered.vault_path, locate, "a.bin"), keep=0)
    _assert_get_fails_cleanly(tampered, _out_dir(tmp_path))


def test_pack_swapped(tampered, locate, tmp_path: Path) -> None:
    a = _pack_of(tampered.vault_path, locate, "a.bin")
    b = _pack_of(tampered.vault_path, locate, "b.bin")
    assert a != b
    swap(a, b)
    out = _out_dir(tmp_path)
    _assert_get_fails_cleanly(tampered, out, "a.bin", stdout=True)
    _assert_get_fails_cleanly(tampered, out, "b.bin")


def test_pack_missing(tampered, locate, tmp_path: Path) -> None:
    _pack_of(tampered.vault_path, locate, "a.bin").unlink()
    _assert_get_fails_cleanly(tampered, _out_dir(tmp_path))


def test_damaged_chunk_not_released_to_stdout(cli, locate, tmp_path: Path) -> None:
    """A multi-chunk file with its third chunk damaged: standard output holds at most the chunks before it
    (all authenticated), never a byte of the damaged one, and the command exits 20."""
    cli.init()
    data = random_bytes(12 * 1024 * 1024, seed=35)
    src = write_file(tmp_path / "multi.bin", data)
    cli("put", str(src), "--compression", "0", check=0)
    places = locate(cli.vault_path, "multi.bin")
    assert len(places) >= 4, "expected several chunks"
    k = 2
    flip_byte(places[k].pack, places[k].offset + places[k].length // 2)
    before = sum(p.raw_length for p in places[:k])
    r = cli("get", "multi.bin", "-o", "-")
    assert_error(r, 20)
    assert len(r.out) <= before, (len(r.out), before)
    assert data.startswith(r.out)
    out = _out_dir(tmp_path)
    assert_error(cli("get", "multi.bin", "-o", str(out)), 20)
    assert os.listdir(out) == []


def test_damaged_file_in_a_tree(tampered, locate, tmp_path: Path) -> None:
    """One damaged file in a directory item: exit 20; that file is not restored (no partial or temporary
    file anywhere); the other file is complete if present."""
    (place,) = locate(tampered.vault_path, "tree/one.txt")
    flip_byte(place.pack, place.offset + 100)
    out = _out_dir(tmp_path)
    assert_error(tampered("get", "tree", "-o", str(out)), 20)
    left = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    assert "tree/one.txt" not in left
    assert not [p for p in left if p.endswith(".tmp") or "/." in p], left
    if (out / "tree" / "two.txt").exists():
        assert (out / "tree" / "two.txt").read_bytes() == random_bytes(60_000, seed=34)


# -------------------------------------------------------------------------------------------------- index


@pytest.mark.parametrize("damage", ["flip", "truncate", "swap", "empty"])
def test_index(tampered, tmp_path: Path, damage: str) -> None:
    index = objects(tampered.vault_path, "index")
    assert len(index) >= 2
    if damage == "flip":
        for p in index:
            flip_byte(p)
    elif damage == "truncate":
        for p in index:
            truncate(p)
    elif damage == "empty":
        for p in index:
            truncate(p, keep=0)
    else:
        swap(index[0], index[1])
    _assert_get_fails_cleanly(tampered, _out_dir(tmp_path))
    assert_error(tampered("ls", "tree"), 20)


# ------------------------------------------------------------------------------------------------ versions


@pytest.mark.parametrize("damage", ["flip", "truncate", "swap"])
def test_version_records(tampered, tmp_path: Path, damage: str) -> None:
    records = objects(tampered.vault_path, "versions")
    assert len(records) == 3
    if damage == "flip":
        flip_byte(records[0])
    elif damage == "truncate":
        truncate(records[0])
    else:
        swap(records[0], records[1])
    assert_error(tampered("ls"), 20)
    _assert_get_fails_cleanly(tampered, _out_dir(tmp_path), "b.bin")


# ---------------------------------------------------------------------------------------------------- keys


def _slot(vault_dir: Path, key_id: str) -> Path:
    return vault_dir / "keys" / key_id


def _flip_wrapped_key(path: Path) -> None:
    doc = json.loads(path.read_bytes())
    wrapped = bytearray(base64.b64decode(doc["wrapped_key"]))
    wrapped[len(wrapped) // 2] ^= 0x01
    doc["wrapped_key"] = base64.b64encode(bytes(wrapped)).decode()
    path.write_text(json.dumps(doc))


def _only_key(vault_dir: Path, template: Template, password: str) -> Path:
    """Leave only the key slot of ``password``."""
    keep = template.key_ids[password]
    for p in objects(vault_dir, "keys"):
        if p.name != keep:
            p.unlink()
    return _slot(vault_dir, keep)


def test_key_wrapped_key_flipped(tampered, template: Template, tmp_path: Path) -> None:
    _flip_wrapped_key(_only_key(tampered.vault_path, template, PASSWORD))
    _assert_get_fails_cleanly(tampered, _out_dir(tmp_path), stdout=True)


def test_key_wrapped_key_flipped_with_another_key_present(tampered, template: Template) -> None:
    """The slot whose password hash verifies fails to unwrap: integrity (20), even though another slot merely
    does not match the password (that must not turn it into "wrong password")."""
    _flip_wrapped_key(_slot(tampered.vault_path, template.key_ids[PASSWORD]))
    assert tampered("ls", env={"VAULT_PASSWORD": SECOND_PASSWORD}).code == 0  # the other key still opens it
    assert_error(tampered("ls"), 20)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_key_slot_file_damaged(tampered, template: Template, tmp_path: Path, damage: str) -> None:
    slot = _only_key(tampered.vault_path, template, PASSWORD)
    if damage == "flip":
        flip_byte(slot)
    else:
        truncate(slot)
    _assert_get_fails_cleanly(tampered, _out_dir(tmp_path))


def test_key_slots_swapped(tampered, template: Template, tmp_path: Path) -> None:
    a = _slot(tampered.vault_path, template.key_ids[PASSWORD])
    b = _slot(tampered.vault_path, template.key_ids[SECOND_PASSWORD])
    swap(a, b)
    assert_error(tampered("ls", env={"VAULT_PASSWORD": SECOND_PASSWORD}), 20)
    _assert_get_fails_cleanly(tampered, _out_dir(tmp_path))


# -------------------------------------------------------------------------------------------------- config


def _set_config(vault_dir: Path, **changes: object) -> None:
    path = vault_dir / "config"
    doc = json.loads(path.read_bytes())
    doc.update(changes)
    path.write_text(json.dumps(doc))


def _change_id(vault_dir: Path) -> None:
    doc = json.loads((vault_dir / "config").read_bytes())
    vid = bytes.fromhex(doc["id"])
    _set_config(vault_dir, id=bytes([vid[0] ^ 1]).hex() + vid[1:].hex())


def test_config_changed_id(tampered, template: Template, tmp_path: Path) -> None:
    _only_key(tampered.vault_path, template, PASSWORD)
    _change_id(tampered.vault_path)
    _assert_get_fails_cleanly(tampered, _out_dir(tmp_path), stdout=True)


def test_config_changed_id_with_two_keys(tampered, tmp_path: Path) -> None:
    _change_id(tampered.vault_path)
    assert_error(tampered("get", "a.bin", "-o", str(_out_dir(tmp_path))), 20)


@pytest.mark.parametrize("damage", ["flip-id", "truncate", "garbage"])
def test_config_damaged(tampered, template: Template, tmp_path: Path, damage: str) -> None:
    _only_key(tampered.vault_path, template, PASSWORD)
    path = tampered.vault_path / "config"
    raw = path.read_bytes()
    if damage == "flip-id":
        i = raw.index(b'"id"') + len(b'"id": "') + 3
        flip_byte(path, i)  # a hex digit becomes a non-hex character
    elif damage == "truncate":
        truncate(path)
    else:
        path.write_bytes(os.urandom(len(raw)))
    _assert_get_fails_cleanly(tampered, _out_dir(tmp_path))


def test_config_swapped_with_another_vaults(tampered, template: Template, cli, tmp_path: Path) -> None:
    _only_key(tampered.vault_path, template, PASSWORD)
    other = tmp_path / "other-vault"
    cli("--vault", str(other), "init", *CHEAP_INIT_ARGS, check=0)
    swap(tampered.vault_path / "config", other / "config")
    _assert_get_fails_cleanly(tampered, _out_dir(tmp_path))
    assert_error(cli("--vault", str(other), "ls"), 20)
