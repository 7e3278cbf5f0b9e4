"""Item names (spec/cli.md "Names, items and versions") and gitignore-style exclude patterns."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vault.errors import NotFoundError, UsageError
from vault.excludes import Excluder, read_exclude_file
from vault.names import check_name, split_name


# -- names ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    [
        "a",
        "photos",
        "photos/2020",
        "a/b/c",
        "...",
        ".hidden",
        "a.b/..c/c..",
        "with space",
        "caf\u00e9",
        "back\\slash",
        os.fsdecode(b"\xff\xfe"),
        "x" * 300,
        "a/-/b",
        "-",
    ],
)
def test_valid_names(name: str) -> None:
    assert check_name(name) == name
    assert split_name(name) == name.split("/")


@pytest.mark.parametrize(
    "name",
    [
        "",
        "/",
        "/abs",
        "/a/b",
        "a/",
        "a//b",
        "//",
        ".",
        "..",
        "./a",
        "a/.",
        "a/./b",
        "../a",
        "a/..",
        "a/../b",
        "a\0b",
        "\0",
        "a/\0/b",
    ],
)
def test_invalid_names_are_usage_errors(name: str) -> None:
    with pytest.raises(UsageError) as info:
        check_name(name)
    assert info.value.exit_code == 2
    with pytest.raises(UsageError):
        split_name(name)


# -- excludes ------------------------------------------------------------------------------------------------
def ex(*patterns: str) -> Excluder:
    return Excluder(patterns)


@pytest.mark.parametrize(
    "patterns, path, is_dir, expected",
    [
        # no slash: the name at any depth
        (["*.log"], "x.log", False, True),
        (["*.log"], "a/b/x.log", False, True),
        (["*.log"], "a/b/x.log.txt", False, False),
        (["*.log"], "x.log", True, True),
        (["*.log"], "logs/x.txt", False, False),
        (["node_modules"], "a/node_modules", True, True),
        (["node_modules"], "node_modules", False, True),
        (["x?z"], "d/xyz", False, True),
        (["x?z"], "d/xz", False, False),
        (["*"], "anything/at/all", False, True),
        # * never crosses a slash
        (["a*b"], "a/b", False, False),
        (["a*b"], "axxb", False, True),
        # trailing slash: directories only, still at any depth
        (["build/"], "build", True, True),
        (["build/"], "src/build", True, True),
        (["build/"], "build", False, False),
        (["build/"], "src/build", False, False),
        # a slash inside: anchored at the root of the stored tree
        (["docs/*.tmp"], "docs/a.tmp", False, True),
        (["docs/*.tmp"], "x/docs/a.tmp", False, False),
        (["docs/*.tmp"], "docs/sub/a.tmp", False, False),
        (["/top.txt"], "top.txt", False, True),
        (["/top.txt"], "sub/top.txt", False, False),
        (["/build/"], "build", True, True),
        (["/build/"], "build", False, False),
        (["/build/"], "a/build", True, False),
        # ** spans directories
        (["**/node_modules"], "node_modules", True, True),
        (["**/node_modules"], "a/b/node_modules", True, True),
        (["**/node_modules"], "a/b/node_modules_x", True, False),
        (["a/**/b"], "a/b", False, True),
        (["a/**/b"], "a/x/b", False, True),
        (["a/**/b"], "a/x/y/z/b", False, True),
        (["a/**/b"], "c/a/x/b", False, False),
        (["a/**/b"], "a/x/bb", False, False),
        (["logs/**"], "logs/x", False, True),
        (["logs/**"], "logs/x/y/z.txt", False, True),
        (["logs/**"], "other/logs/x", False, False),
        (["logs/**"], "logsx/y", False, False),
        # character classes
        (["[abc].txt"], "b.txt", False, True),
        (["[abc].txt"], "d.txt", False, False),
        (["[!abc].txt"], "d.txt", False, True),
        (["[!abc].txt"], "a.txt", False, False),
        (["[a-c]x"], "bx", False, True),
        # regex metacharacters are literal
        (["a+b(c).txt"], "a+b(c).txt", False, True),
        (["a+b(c).txt"], "aab(c).txt", False, False),
        (["*.tar.gz"], "x.tar.gz", False, True),
        (["*.tar.gz"], "x.tarxgz", False, False),
        (["unclosed["], "unclosed[", False, True),
        # several patterns: any match excludes
        (["*.log", "tmp/"], "tmp", True, True),
        (["*.log", "tmp/"], "a.log", False, True),
        (["*.log", "tmp/"], "a.txt", False, False),
        # names are matched whole
        (["a.txt"], "ba.txt", False, False),
        (["a.txt"], "a.txt.bak", False, False),
    ],
)
def test_exclude_semantics(patterns: list[str], path: str, is_dir: bool, expected: bool) -> None:
    assert ex(*patterns).excluded(path, is_dir) is expected


def test_non_utf8_paths_can_be_excluded() -> None:
    name = os.fsdecode(b"\xff.log")
    assert ex("*.log").excluded("dir/" + name, False)
    assert ex(os.fsdecode(b"\xff*")).excluded(name, False)


def test_comments_and_blank_lines_are_skipped() -> None:
    e = ex("", "   ", "# a comment", "#*.txt")
    assert not e
    assert not e.excluded("a.txt", False)
    assert ex("*.txt")


def test_whitespace_around_patterns_is_ignored() -> None:
    assert ex("  *.log  ").excluded("a.log", False)


@pytest.mark.parametrize("pattern", ["!keep.txt", "/", "//", "[z-a]", "[^]", "a/[9-0]/b"])
def test_unsupported_or_malformed_patterns_are_usage_errors(pattern: str) -> None:
    with pytest.raises(UsageError) as info:
        Excluder([pattern])
    assert info.value.exit_code == 2


def test_read_exclude_file(tmp_path: Path) -> None:
    f = tmp_path / "excludes"
    f.write_bytes(b"*.log\r\n# comment\n\nbuild/\n\xff*\n")
    lines = read_exclude_file(str(f))
    assert lines[0] == "*.log" and lines[3] == "build/"
    e = Excluder(lines)
    assert e.excluded("a.log", False) and e.excluded("build", True)
    assert e.excluded(os.fsdecode(b"\xffname"), False)


def test_read_exclude_file_missing(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError) as info:
        read_exclude_file(str(tmp_path / "nope"))
    assert info.value.exit_code == 4
