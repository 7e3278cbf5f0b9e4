"""`vault diff` and `vault find` through the installed command, and the browsing commands on hostile trees: a
directory 500 levels deep, and a forged tree that contains itself (exit 20, never a hang or a crash)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
from helpers import PASSWORD, assert_error, parse_json, random_bytes, write_file

import vault

# ---------------------------------------------------------------------------------------------------- diff


@pytest.fixture
def two_versions(vault, tmp_path: Path):  # type: ignore[no-untyped-def]
    src = tmp_path / "src" / "proj"
    write_file(src / "keep.txt", b"same\n")
    write_file(src / "edit.txt", b"before\n")
    write_file(src / "gone" / "old.txt", b"old\n")
    write_file(src / "meta.txt", b"meta\n")
    write_file(src / "became-dir", b"a file first\n")
    write_file(src / "untouched" / "deep" / "x.bin", random_bytes(10_000, seed=1))
    os.symlink("keep.txt", src / "link")
    vault("put", str(src), check=0)
    write_file(src / "edit.txt", b"after, longer\n")
    for p in sorted((src / "gone").rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    (src / "gone").rmdir()
    write_file(src / "new" / "n.txt", b"new\n")
    (src / "meta.txt").chmod(0o600)
    (src / "became-dir").unlink()
    write_file(src / "became-dir" / "inside.txt", b"i\n")
    (src / "link").unlink()
    os.symlink("edit.txt", src / "link")
    vault("put", str(src), check=0)
    return vault, src


def test_diff_lists_each_change_sorted(two_versions) -> None:  # type: ignore[no-untyped-def]
    cli, _ = two_versions
    r = cli("diff", "proj", check=0)
    assert r.stdout.splitlines() == [
        "T became-dir/",
        "+ became-dir/inside.txt",
        "M edit.txt",
        "- gone/",
        "- gone/old.txt",
        "M link",
        "U meta.txt",
        "+ new/",
        "+ new/n.txt",
    ]
    doc = parse_json(cli("diff", "proj", "--from", "1", "--to", "2", "--json"))
    by_path = {d["path"]: d for d in doc}
    assert by_path["edit.txt"] == {"path": "edit.txt", "change": "modified", "size_before": 7, "size_after": 14}
    assert by_path["gone/old.txt"]["size_after"] is None and by_path["new/n.txt"]["size_before"] is None
    assert by_path["became-dir"]["change"] == "type" and by_path["meta.txt"]["change"] == "metadata"
    assert [d["path"] for d in doc] == sorted(d["path"] for d in doc)
    backwards = cli("diff", "proj", "--from", "2", "--to", "1", check=0).stdout.splitlines()
    assert "+ gone/old.txt" in backwards and "- new/n.txt" in backwards
    assert cli("diff", "proj", "--from", "2", "--to", "2", check=0).stdout == ""
    assert cli("diff", "proj/untouched", check=0).stdout == ""  # a path inside the item
    assert cli("diff", "proj/new", check=0).stdout.splitlines() == ["+ n.txt"]


def test_diff_errors(two_versions, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli, _ = two_versions
    assert_error(cli("diff", "nothing"), 4)
    assert_error(cli("diff", "proj", "--from", "7"), 4)
    assert_error(cli("diff", "proj", "--to", "1"), 4, "no version before")
    assert_error(cli("diff", "a/../b"), 2)
    assert_error(cli("diff", "proj/not/there"), 4)
    one = write_file(tmp_path / "one.txt", b"1")
    cli("put", str(one), check=0)
    assert_error(cli("diff", "one.txt"), 4)


def test_diff_of_a_file_item(vault, tmp_path: Path) -> None:
    f = write_file(tmp_path / "f.txt", b"one\n")
    vault("put", str(f), check=0)
    write_file(f, b"two, longer\n")
    vault("put", str(f), check=0)
    assert vault("diff", "f.txt", check=0).stdout.splitlines() == ["M f.txt"]


# ---------------------------------------------------------------------------------------------------- find


def test_find_groups_paths_by_version(two_versions) -> None:  # type: ignore[no-untyped-def]
    cli, _ = two_versions
    lines = cli("find", "*.txt", check=0).stdout.splitlines()
    assert "proj\tkeep.txt\tfile\t5\t1-2" in lines
    assert "proj\tgone/old.txt\tfile\t4\t1" in lines
    assert "proj\tedit.txt\tfile\t7\t1" in lines and "proj\tedit.txt\tfile\t14\t2" in lines
    doc = parse_json(cli("find", "x.bin", "new", "--json"))
    assert [(d["item"], d["path"], d["type"], d["versions"]) for d in doc] == [
        ("proj", "new", "dir", [2]), ("proj", "untouched/deep/x.bin", "file", [1, 2])]
    assert doc[1]["size"] == 10_000 and doc[1]["mtime"].endswith("Z")
    paths = [d["path"] for d in parse_json(cli("find", "untouched/*/*.bin", "--json"))]
    assert paths == ["untouched/deep/x.bin"]
    assert [d["path"] for d in parse_json(cli("find", "**/inside.txt", "--json"))] == ["became-dir/inside.txt"]
    assert [d["path"] for d in parse_json(cli("find", "/gone/*", "--json"))] == ["gone/old.txt"]
    assert cli("find", "*.nothing", check=0).stdout == ""
    assert parse_json(cli("find", "*.nothing", "--json")) == []


def test_find_in_one_item_and_errors(two_versions, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli, _ = two_versions
    other = write_file(tmp_path / "notes" / "keep.txt", b"k")
    cli("put", str(tmp_path / "notes"), check=0)
    items = {d["item"] for d in parse_json(cli("find", "keep.txt", "--json"))}
    assert items == {"notes", "proj"}
    assert {d["item"] for d in parse_json(cli("find", "keep.txt", "--item", "notes", "--json"))} == {"notes"}
    assert_error(cli("find", "x", "--item", "missing"), 4)
    assert_error(cli("find"), 2)
    del other


def test_find_visits_each_tree_once(vault, tmp_path: Path, cheap_kdf: object) -> None:
    """Twenty versions that share every sub-tree but one: each distinct tree is read once."""
    from vault.browse.find import Finder, Patterns

    src = tmp_path / "src" / "many"
    for d in range(10):
        write_file(src / f"d{d}" / "f.txt", b"x" * d)
    vault("put", str(src), check=0)
    for i in range(19):
        write_file(src / "d0" / "f.txt", b"v%d" % i)
        vault("put", str(src), check=0)
    with vault_open(vault.vault_path) as session:
        finder = Finder(session.repo, Patterns(["*.txt"]))
        (matches,) = list(finder.items(None))
        # 20 top trees and 20 trees of d0 (changed each time), the 9 others once: not 20 x 11.
        assert finder.reader.loads == 20 + 20 + 9
        assert len(matches) == 9 + 20


def vault_open(location: Path):  # type: ignore[no-untyped-def]
    return vault.open(location, password=PASSWORD, lock=None, cache=False)


# --------------------------------------------------------------------------------------- hostile trees


def _forge_cycle(location: Path, item: str = "loop") -> None:
    """A version whose tree holds a directory whose tree is itself: an id chosen at random and the tree sealed
    under it (only a holder of the key, or a bug, could do this: ids are keyed hashes)."""
    from vault import format as fmt
    from vault.repo import catalog
    from vault.repo.blobs import seal_blob
    from vault.repo.tree import Node, encode_tree
    from vault.repo.writer import BlobWriter

    with vault.open(location, password=PASSWORD) as session:
        repo = session.repo
        writer = BlobWriter(repo, session.pipeline, 0)
        loop_id = os.urandom(32)
        body = encode_tree([Node("again", "dir", 0o755, 0, subtree=loop_id),
                            Node("f.txt", "file", 0o644, 0, size=0)])
        assert writer.claim(loop_id)
        writer.add(seal_blob(repo.key, repo.vault_id, fmt.BlobType.TREE, loop_id, body, 0))
        root = Node(item, "dir", 0o755, 0, subtree=loop_id)
        tree = writer.store_one(encode_tree([root]), fmt.BlobType.TREE)
        writer.finish()
        repo.commit_record(catalog.VersionRecord(catalog.new_record_id(), item, 1, "2026-01-01T00:00:00Z", "dir",
                                                 tree, 0, 1, 0, "forge"))


def test_a_tree_that_contains_itself_is_exit_20_everywhere(vault, tmp_path: Path) -> None:
    _forge_cycle(vault.vault_path)
    normal = write_file(tmp_path / "loop" / "f.txt", b"")
    assert_error(vault("find", "*.nothing"), 20, "contains itself")
    assert_error(vault("get", "loop", "-o", "-"), 20, "contains itself")
    vault("put", str(normal.parent), check=0)
    assert_error(vault("diff", "loop"), 20, "contains itself")
    other = tmp_path / "other-vault"
    vault("--vault", str(other), "init", "--kdf-memory", "8", "--kdf-time", "1", "--kdf-parallelism", "1", check=0)
    r = vault("copy", "--to", str(other), env={"VAULT_TO_PASSWORD": PASSWORD})
    assert_error(r, 20, "contains itself")
    assert "copied loop version 2" in r.stdout  # the healthy version is copied all the same


def test_a_directory_500_deep(vault, tmp_path: Path) -> None:
    src = tmp_path / "src" / "deep"
    path = src
    for _ in range(500):
        path = path / "d"
    write_file(path / "bottom.txt", b"1")
    vault("put", str(src), check=0)
    write_file(path / "bottom.txt", b"22")
    vault("put", str(src), check=0)
    change = vault("diff", "deep", "--json", check=0)
    assert [d["path"] for d in parse_json(change)] == ["d/" * 500 + "bottom.txt"]
    found = parse_json(vault("find", "bottom.txt", "--json"))
    assert [len(d["versions"]) for d in found] == [1, 1]
    stream = vault("get", "deep", "-o", "-", check=0).out
    with tarfile.open(fileobj=io.BytesIO(stream)) as tar:
        names = tar.getnames()
    assert names[-1] == "d/" * 500 + "bottom.txt" and len(names) == 502
