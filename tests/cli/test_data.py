"""Storing and restoring data through the command line: sizes around chunk boundaries, many packs, streams,
versions, dedup, compression, destinations, directory trees with links, modes and times."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest
from helpers import (
    CHUNK_MAX,
    CHUNK_MIN,
    MiB,
    assert_error,
    objects,
    parse_json,
    random_bytes,
    snapshot,
    text_bytes,
    write_file,
)

SIZES = [0, 1, CHUNK_MIN - 1, CHUNK_MIN, CHUNK_MIN + 1, MiB, CHUNK_MAX - 1, CHUNK_MAX, CHUNK_MAX + 1]


def _info(vault) -> dict:  # type: ignore[no-untyped-def, type-arg]
    return parse_json(vault("info", "--json"))


def _versions(vault, name: str) -> list[int]:  # type: ignore[no-untyped-def]
    return [h["version"] for h in parse_json(vault("history", name, "--json"))]


# -------------------------------------------------------------------------------------------- round trips


def test_round_trip_sizes_as_tree(vault, tmp_path: Path) -> None:
    """Every size, random and compressible, in one tree: one put, one get, every byte compared."""
    src = tmp_path / "sizes"
    for i, size in enumerate(SIZES):
        write_file(src / f"random-{size}.bin", random_bytes(size, seed=100 + i))
        write_file(src / f"text-{size}.txt", text_bytes(size, seed=200 + i))
    vault("put", str(src), check=0)
    out = tmp_path / "out"
    vault("get", "sizes", "-o", str(out), check=0)
    assert snapshot(out) == snapshot(src)
    listing = {e["name"]: e["size"] for e in parse_json(vault("ls", "sizes", "--json"))}
    assert listing == {p.name: p.stat().st_size for p in src.iterdir()}


@pytest.mark.parametrize("size", [0, CHUNK_MAX + 1])
def test_round_trip_file_item(vault, tmp_path: Path, size: int) -> None:
    data = random_bytes(size // 2, seed=size) + text_bytes(size - size // 2, seed=size)
    src = write_file(tmp_path / "in" / f"f{size}.dat", data)
    r = parse_json(vault("put", str(src), "--json"))
    assert (r[0]["name"], r[0]["bytes_read"], r[0]["files"]) == (src.name, size, 1)
    assert vault("get", src.name, "-o", "-", check=0).out == data
    out = tmp_path / "out"
    vault("get", src.name, "-o", str(out), check=0)  # a new path: the file itself
    assert out.read_bytes() == data


def test_many_packs(vault, tmp_path: Path) -> None:
    """A ~40 MiB random file spans several ~16 MiB packs."""
    data = random_bytes(40 * MiB + 12345, seed=7)
    src = write_file(tmp_path / "big.bin", data)
    vault("put", str(src), "--compression", "0", check=0)
    assert len(objects(vault.vault_path, "data")) >= 3
    out = tmp_path / "out"
    out.mkdir()
    vault("get", "big.bin", "-o", str(out), check=0)
    assert (out / "big.bin").read_bytes() == data
    assert vault("get", "big.bin", "-o", "-", check=0).out == data


def test_stdin_to_stdout(vault) -> None:
    data = text_bytes(3 * MiB, seed=8) + random_bytes(2 * MiB + 17, seed=9)
    r = parse_json(vault("put", "-", "--name", "streams/dump.sql", "--json", input=data))
    assert (r[0]["name"], r[0]["version"], r[0]["bytes_read"]) == ("streams/dump.sql", 1, len(data))
    assert vault("get", "streams/dump.sql", "-o", "-", check=0).out == data
    vault("put", "-", "--name", "empty", input=b"", check=0)
    assert vault("get", "empty", "-o", "-", check=0).out == b""
    items = {i["name"]: i for i in parse_json(vault("ls", "--json"))}
    assert items["streams/dump.sql"]["size"] == len(data) and items["empty"]["size"] == 0


# -------------------------------------------------------------------------------------------- versions


def test_versions(vault, tmp_path: Path) -> None:
    src = tmp_path / "doc.txt"
    contents = [b"first version\n", text_bytes(500_000, seed=11), random_bytes(300_000, seed=12)]
    for i, c in enumerate(contents, start=1):
        src.write_bytes(c)
        os.utime(src, ns=(i * 10**18, i * 10**18))  # a different mtime for each version
        assert parse_json(vault("put", str(src), "--json"))[0]["version"] == i
    hist = parse_json(vault("history", "doc.txt", "--json"))
    assert [(h["version"], h["size"]) for h in hist] == [(i, len(c)) for i, c in enumerate(contents, start=1)]
    assert [h["created"] for h in hist] == sorted(h["created"] for h in hist)
    for i, c in enumerate(contents, start=1):
        assert vault("get", "doc.txt", "--version", str(i), "-o", "-", check=0).out == c
    assert vault("get", "doc.txt", "-o", "-", check=0).out == contents[-1]  # latest by default

    vault("rm", "doc.txt", "--version", "2", check=0)
    assert _versions(vault, "doc.txt") == [1, 3]
    assert_error(vault("get", "doc.txt", "--version", "2", "-o", "-"), 4)
    assert vault("get", "doc.txt", "-o", "-", check=0).out == contents[2]

    vault("rm", "doc.txt", check=0)
    assert parse_json(vault("ls", "--json")) == []
    assert_error(vault("get", "doc.txt", "-o", "-"), 4)
    assert_error(vault("history", "doc.txt"), 4)


# ---------------------------------------------------------------------------------- dedup, compression


def test_dedup_same_32mib_under_a_second_name(vault, tmp_path: Path) -> None:
    data = random_bytes(32 * MiB, seed=13)
    a = write_file(tmp_path / "a" / "first.bin", data)
    b = write_file(tmp_path / "b" / "second.bin", data)
    vault("put", str(a), check=0)
    before = _info(vault)["stored_bytes"]
    assert before >= len(data)
    r = parse_json(vault("put", str(b), "--json"))
    after = _info(vault)["stored_bytes"]
    assert after - before < len(data) // 100, (before, after)
    assert r[0]["bytes_added"] < len(data) // 100
    assert r[0]["bytes_read"] == len(data)
    assert vault("get", "second.bin", "-o", "-", check=0).out == data


def test_compressible_data_stored_smaller(vault, tmp_path: Path) -> None:
    data = text_bytes(4 * MiB, seed=14)
    vault("put", str(write_file(tmp_path / "text.txt", data)), check=0)
    info = _info(vault)
    assert info["stored_bytes"] < len(data) // 2, info
    assert vault("get", "text.txt", "-o", "-", check=0).out == data


def test_compression_off(vault, tmp_path: Path) -> None:
    data = text_bytes(2 * MiB, seed=15)
    r = parse_json(vault("put", str(write_file(tmp_path / "raw.txt", data)), "--compression", "0", "--json"))
    assert r[0]["bytes_added"] >= len(data)
    assert _info(vault)["stored_bytes"] >= len(data)
    assert vault("get", "raw.txt", "-o", "-", check=0).out == data


# ------------------------------------------------------------------------------------------ destinations


def test_destinations(vault, tmp_path: Path) -> None:
    data = random_bytes(10_000, seed=16)
    src = write_file(tmp_path / "in" / "report.pdf", data)
    vault("put", str(src), check=0)
    vault("put", "-", "--name", "deep/name/notes.txt", input=b"notes", check=0)

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    vault("get", "report.pdf", cwd=cwd, check=0)  # default: ./basename(NAME)
    assert (cwd / "report.pdf").read_bytes() == data
    vault("get", "deep/name/notes.txt", cwd=cwd, check=0)
    assert (cwd / "notes.txt").read_bytes() == b"notes"

    existing_dir = tmp_path / "into"
    existing_dir.mkdir()
    vault("get", "report.pdf", "-o", str(existing_dir), check=0)  # inside an existing directory
    assert (existing_dir / "report.pdf").read_bytes() == data

    vault("get", "report.pdf", "-o", str(tmp_path / "renamed.bin"), check=0)
    assert (tmp_path / "renamed.bin").read_bytes() == data

    # --force overwrites; without it the file is untouched (exit 40).
    (cwd / "report.pdf").write_bytes(b"changed")
    assert_error(vault("get", "report.pdf", cwd=cwd), 40)
    assert (cwd / "report.pdf").read_bytes() == b"changed"
    vault("get", "report.pdf", "--force", cwd=cwd, check=0)
    assert (cwd / "report.pdf").read_bytes() == data
    assert sorted(p.name for p in cwd.iterdir()) == ["notes.txt", "report.pdf"]  # no temporary files left


def _make_tree(root: Path) -> None:
    write_file(root / "a" / "x.txt", b"x in a\n")
    write_file(root / "a" / "b" / "deep.bin", random_bytes(70_000, seed=17))
    write_file(root / "top.txt", b"top\n")
    write_file(root / "exec.sh", b"#!/bin/sh\necho hi\n")
    (root / "empty").mkdir()
    (root / "a" / "empty-too").mkdir()
    os.symlink("a/x.txt", root / "rel-link")
    os.symlink("/etc/passwd", root / "abs-link")
    os.symlink("does/not/exist", root / "dangling")
    os.symlink("a", root / "dir-link")
    (root / "exec.sh").chmod(0o751)
    (root / "top.txt").chmod(0o640)
    (root / "a" / "x.txt").chmod(0o600)
    (root / "a" / "b").chmod(0o750)
    (root / "empty").chmod(0o711)
    stamp = 1_600_000_000_123_456_789
    for i, p in enumerate(sorted(root.rglob("*"), key=lambda p: -len(p.parts))):  # deepest first
        t = stamp + i * 1_000_000_007
        os.utime(p, ns=(t, t), follow_symlinks=False)
    os.utime(root, ns=(stamp - 5, stamp - 5))


def _meta(root: Path) -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {".": (stat.S_IMODE(root.stat().st_mode), root.stat().st_mtime_ns)}
    for p in root.rglob("*"):
        st = p.lstat()
        rel = str(p.relative_to(root))
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("link", os.readlink(p))
        else:
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_mtime_ns)
    return out


def test_directory_tree(vault, tmp_path: Path) -> None:
    src = tmp_path / "src"
    _make_tree(src)
    r = parse_json(vault("put", str(src), "--json"))
    assert (r[0]["name"], r[0]["files"]) == ("src", 4)

    out = tmp_path / "out"
    out.mkdir()
    vault("get", "src", "-o", str(out), check=0)
    restored = out / "src"
    assert snapshot(restored) == snapshot(src)
    assert _meta(restored) == _meta(src)
    assert (restored / "rel-link").is_symlink() and os.readlink(restored / "rel-link") == "a/x.txt"
    assert (restored / "dir-link").is_symlink()
    assert list((restored / "empty").iterdir()) == []

    # A file inside the item, by its path: default destination ./x.txt.
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    vault("get", "src/a/x.txt", cwd=cwd, check=0)
    assert (cwd / "x.txt").read_bytes() == b"x in a\n"
    assert stat.S_IMODE((cwd / "x.txt").stat().st_mode) == 0o600
    deep = (src / "a" / "b" / "deep.bin").read_bytes()
    assert vault("get", "src/a/b/deep.bin", "-o", "-", check=0).out == deep
    # A sub-tree into an existing directory.
    sub_out = tmp_path / "sub-out"
    sub_out.mkdir()
    vault("get", "src/a", "-o", str(sub_out), check=0)
    assert snapshot(sub_out / "a") == snapshot(src / "a")
    assert_error(vault("get", "src/a/nope.txt", "-o", "-"), 4)
    # A directory goes to standard output as a tar stream (tests/integration/test_tar.py has the details).
    r2 = vault("get", "src/a", "-o", "-", check=0)
    with tarfile.open(fileobj=io.BytesIO(r2.out), mode="r|") as tar:
        assert "b/deep.bin" in [m.name for m in tar]

    # Restoring over the restored tree: refused without --force, then done with it.
    (restored / "top.txt").chmod(0o644)
    (restored / "top.txt").write_bytes(b"edited")
    assert_error(vault("get", "src", "-o", str(out)), 40)
    assert (restored / "top.txt").read_bytes() == b"edited"
    vault("get", "src", "-o", str(out), "--force", check=0)
    assert snapshot(restored) == snapshot(src)


def test_directory_versions_drop_deleted_files(vault, tmp_path: Path) -> None:
    src = tmp_path / "proj"
    write_file(src / "keep.txt", b"keep")
    write_file(src / "gone.txt", b"gone")
    vault("put", str(src), check=0)
    (src / "gone.txt").unlink()
    write_file(src / "new.txt", b"new")
    vault("put", str(src), check=0)
    latest = {e["name"] for e in parse_json(vault("ls", "proj", "--json"))}
    assert latest == {"keep.txt", "new.txt"}
    out = tmp_path / "v1"
    vault("get", "proj", "--version", "1", "-o", str(out), check=0)
    assert sorted(p.name for p in out.iterdir()) == ["gone.txt", "keep.txt"]


def test_several_paths_and_exclude(vault, tmp_path: Path) -> None:
    one = write_file(tmp_path / "one.txt", b"1")
    two = write_file(tmp_path / "two.txt", b"22")
    tree = tmp_path / "tree"
    write_file(tree / "keep.c", b"int main;")
    write_file(tree / "skip.tmp", b"scratch")
    write_file(tree / "build" / "out.o", b"object")
    write_file(tree / "sub" / "also.tmp", b"scratch")
    write_file(tree / "sub" / "keep.h", b"header")
    r = parse_json(vault("put", str(one), str(two), str(tree), "--exclude", "*.tmp", "--exclude", "build/",
                         "--json"))
    assert sorted((x["name"], x["version"]) for x in r) == [("one.txt", 1), ("tree", 1), ("two.txt", 1)]
    items = {i["name"]: i for i in parse_json(vault("ls", "--json"))}
    assert set(items) == {"one.txt", "two.txt", "tree"}
    assert (items["one.txt"]["size"], items["two.txt"]["size"]) == (1, 2)
    names = {e["name"] for e in parse_json(vault("ls", "tree", "--json"))}
    assert names == {"keep.c", "sub", "sub/keep.h"}, names
    assert vault("get", "two.txt", "-o", "-", check=0).out == b"22"
    assert json.loads(vault("history", "tree", "--json", check=0).out)[0]["files"] == 2


def test_ls_escapes_control_characters_in_names_for_the_terminal(vault, tmp_path: Path) -> None:
    """Issue 18, item 7b: a file name is anything but ``/`` and NUL, escape sequences and newlines included, and
    `vault ls` printed them raw: a stored name could recolour or clear the terminal, or fake lines of output.
    Human output now shows control characters (and backslashes, and bytes that are not UTF-8) as escapes, as
    GNU ls -b does; ``--json`` keeps the exact names."""
    src = tmp_path / "src"
    names = {
        "red\x1b[31mALERT\x1b[0m": "red\\x1b[31mALERT\\x1b[0m",
        "two\nlines": "two\\nlines",
        "back\\slash": "back\\\\slash",
        "bell\x07\x7f\x9b": "bell\\x07\\x7f\\x9b",
        "rtl\u202etxt.exe": "rtl\\u202etxt.exe",
        os.fsdecode(b"caf\xe9"): "caf\\xe9",
    }
    src.mkdir()
    for name in names:
        (src / name).write_bytes(b"x")
    (src / "link").symlink_to("to\x1b]0;title\x07")
    vault("put", str(src), check=0)
    vault("put", "-", "--name", "item\x1b[2J", input=b"stdin", check=0)

    listed = vault("ls", "src", check=0).out
    items = vault("ls", check=0).out
    for out in (listed, items):
        assert not any(b < 0x20 and b not in (0x09, 0x0A) for b in out), out  # no escape, no bell
        assert b"\x7f" not in out and "\u202e".encode() not in out and b"\xc2\x9b" not in out
    lines = listed.decode().splitlines()
    assert len(lines) == len(names) + 1  # one line per entry: no name split a line
    for shown in names.values():
        assert any(line.endswith("\t" + shown) for line in lines), (shown, lines)
    assert any(line.endswith("\tlink -> to\\x1b]0;title\\x07") for line in lines), lines
    assert "item\\x1b[2J" in items.decode()
    # --json: the names exactly as stored (a name's bytes that are not UTF-8 are written as they are)
    as_json = json.loads(vault("ls", "src", "--json", check=0).out.decode("utf-8", "surrogateescape"))
    assert sorted(e["name"] for e in as_json) == sorted([*names, "link"])
    assert "item\x1b[2J" in [i["name"] for i in json.loads(vault("ls", "--json", check=0).out)]
