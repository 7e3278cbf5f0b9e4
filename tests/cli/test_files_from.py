"""`vault put --files-from FILE` and `--files-from0 FILE`: each listed path stored as its own item, as if given as
PATHs; `-` reads the list from standard input."""

from __future__ import annotations

from pathlib import Path

from helpers import assert_error, parse_json, write_file


def _names(cli) -> list[str]:  # type: ignore[no-untyped-def]
    return [item["name"] for item in parse_json(cli("ls", "--json"))]


def test_files_from_a_file_and_from_stdin(vault, tmp_path: Path) -> None:
    a = write_file(tmp_path / "a.txt", b"a")
    b = write_file(tmp_path / "dir b" / "b.txt", b"b")
    c = write_file(tmp_path / "c\r.txt", b"c")  # a CR inside a name is kept; only a line's ending goes
    listing = write_file(tmp_path / "list", f"{a}\r\n\n{b.parent}\n".encode())
    put = parse_json(vault("put", "--files-from", str(listing), "--json"))
    assert [p["name"] for p in put] == ["a.txt", "dir b"]
    vault("put", "--files-from", "-", input=f"{c}\n".encode(), check=0)
    assert sorted(_names(vault)) == ["a.txt", "c\r.txt", "dir b"]


def test_files_from0_and_paths_together(vault, tmp_path: Path) -> None:
    x = write_file(tmp_path / "line\nbreak.txt", b"x")  # NUL lists can name anything
    y = write_file(tmp_path / "y.txt", b"y")
    z = write_file(tmp_path / "z.txt", b"z")
    vault("put", str(z), "--files-from0", "-", input=bytes(x) + b"\0" + bytes(y) + b"\0", check=0)
    assert sorted(_names(vault)) == ["line\nbreak.txt", "y.txt", "z.txt"]


def test_files_from_errors(vault, tmp_path: Path) -> None:
    listing = write_file(tmp_path / "list", f"{tmp_path / 'missing.txt'}\n".encode())
    assert_error(vault("put", "--files-from", str(listing)), 4)  # before any password: nothing stored
    assert_error(vault("put", "--files-from", str(tmp_path / "no-list")), 4)
    assert_error(vault("put", "--files-from", str(write_file(tmp_path / "empty", b"\n\n"))), 2)
    one = write_file(tmp_path / "one" / "same.txt", b"1")
    two = write_file(tmp_path / "two" / "same.txt", b"2")
    both = write_file(tmp_path / "both", f"{one}\n{two}\n".encode())
    assert_error(vault("put", "--files-from", str(both)), 2)  # two items of one name
    assert_error(vault("put", "-", "--name", "x", "--files-from", "-"), 2)
    assert _names(vault) == []
