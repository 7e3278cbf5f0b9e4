"""Vaults built by hand with hostile trees (issue 4: "Nothing is ever written outside DEST ... tests build such a
vault by hand to prove it"; spec/cli.md "get and where it writes").

The trees are written in-process with the vault's real key and writer, exactly as a `put` would store them,
so everything authenticates: what is hostile is what the trees *say*. Each restore must be refused (exit 20,
or 4 for a path that leads through a link) and nothing may appear outside DEST: the directory around DEST
and every link target are checked after each attempt.

Two layers defend: ``decode_tree`` rejects unsafe names when a tree is parsed, and the restore code must not
trust that alone (tree.py says so). The command-line cases exercise the first layer. To prove the second one,
the last tests replace the decoder in-process with one that does no checking at all and call
``Restorer.restore`` directly: then only the restore code stands between a hostile name and the filesystem.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from forge import Forge, random_id
from helpers import CHEAP, PASSWORD, VaultCli, measured_command

from vault import format as fmt
from vault.crypto.slots import POLICY_EXPLICIT
from vault.errors import VaultError
from vault.pipeline.runner import Pipeline
from vault.repo import catalog
from vault.repo.objects import seal_object
from vault.repo.repository import Repository
from vault.repo.tree import Node
from vault.restore import Restorer, resolve
from vault.storage.base import Handle, Kind
from vault.storage.local import LocalBackend


@pytest.fixture
def vault(cli: VaultCli) -> VaultCli:
    """The vault made in-process (as `init --kdf-memory 8 ...` makes it: explicit cheap KDF parameters, so no
    command re-hashes the key slot); much faster than running `vault init` for each of the many cases."""
    Repository.create(LocalBackend(cli.vault_path), PASSWORD.encode(), CHEAP, POLICY_EXPLICIT)
    return cli


@pytest.fixture
def forge(vault: VaultCli) -> Iterator[Forge]:
    f = Forge(vault.vault_path)
    yield f
    f.close()


@dataclass
class Box:
    """Where restores go: ``box/dest`` is DEST; ``box`` must hold nothing else afterwards, and ``outside`` (the
    target of hostile links) must stay as it was."""

    box: Path
    outside: Path

    @property
    def dest(self) -> Path:
        return self.box / "dest"

    def snapshot(self) -> dict[str, str]:
        out = {}
        for p in sorted(self.outside.rglob("*")):
            out[str(p.relative_to(self.outside))] = "dir" if p.is_dir() else p.read_bytes().hex()
        return out

    def assert_nothing_outside_dest(self, before: dict[str, str]) -> None:
        assert set(os.listdir(self.box)) <= {"dest"}, os.listdir(self.box)
        assert self.snapshot() == before
        assert not Path("/escaped-by-vault-test").exists()


@pytest.fixture
def box(tmp_path: Path) -> Box:
    b = Box(tmp_path / "box", tmp_path / "outside")
    b.box.mkdir()
    b.outside.mkdir()
    (b.outside / "precious.txt").write_bytes(b"leave me alone\n")
    return b


def _get(cli: VaultCli, *args: str) -> Any:
    return cli("get", *args)


def _refused(result: Any, codes: tuple[int, ...] = (20,)) -> None:
    assert result.code in codes, (result.code, result.err)
    assert "Traceback" not in result.err
    assert result.err.startswith("vault: ") or "\nvault: error: " in result.err, result.err


# -- names that decode_tree refuses (the command line) ----------------------------------------------------------
def _hostile_names(box: Box) -> dict[str, list[str]]:
    """case → node names; each case is a directory item whose top tree holds one hostile entry next to a
    harmless file. Absolute names point into the box (outside DEST) so an escape would be seen there."""
    return {
        "dotdot": [".."],
        "dot": ["."],
        "empty": [""],
        "slash": ["../escaped-slash.txt"],
        "inner-slash": ["sub/x"],
        "absolute": [str(box.box / "escaped-abs.txt")],
        "absolute-root": ["/escaped-by-vault-test"],
        "nul": ["nul\0name"],
        "duplicate": ["dup", "dup"],
    }


CLI_CASES = [
    ("dotdot", "dir"), ("dotdot", "file"), ("dot", "dir"), ("empty", "file"), ("slash", "file"), ("slash", "dir"),
    ("inner-slash", "link"), ("absolute", "file"), ("absolute", "dir"), ("absolute-root", "link"),
    ("nul", "file"), ("duplicate", "file"), ("duplicate", "dir"),
]


def _bad_nodes(forge: Forge, box: Box, case: str, kind: str) -> list[Node]:
    bad: list[Node] = []
    for i, name in enumerate(_hostile_names(box)[case]):
        if kind == "file":
            bad.append(forge.file(name, f"escaped {i}\n".encode()))
        elif kind == "dir":
            bad.append(forge.dir(name, [forge.file("escaped.txt", f"escaped {i}\n".encode())]))
        else:
            bad.append(forge.link(name, str(box.outside / "precious.txt")))
    return bad


@pytest.mark.parametrize(("case", "kind"), CLI_CASES, ids=[f"{c}-{k}" for c, k in CLI_CASES])
def test_hostile_name_is_refused(vault: VaultCli, forge: Forge, box: Box, case: str, kind: str) -> None:
    bad = _bad_nodes(forge, box, case, kind)
    forge.commit("evil", forge.dir("evil", [forge.file("fine.txt", b"fine\n"), *bad]))
    forge.close()
    before = box.snapshot()
    # --force lets the restore reuse existing directories, which is what a ".." or absolute directory would
    # exploit: try it for the directory cases
    for extra in ([], ["--force"]) if kind == "dir" else ([],):
        _refused(_get(vault, "evil", "-o", str(box.dest), *extra))
        box.assert_nothing_outside_dest(before)
        assert not (box.dest / "escaped.txt").exists()


def test_hostile_name_one_level_down(vault: VaultCli, forge: Forge, box: Box) -> None:
    """The top level restores, the sub-tree holding the bad name is refused and named; ls refuses too."""
    bad = _bad_nodes(forge, box, "dotdot", "dir") + _bad_nodes(forge, box, "absolute", "file")
    forge.commit("deep", forge.dir("deep", [forge.file("top.txt", b"top\n"),
                                            forge.dir("level", [forge.file("ok.txt", b"ok\n"), *bad])]))
    forge.close()
    before = box.snapshot()
    r = _get(vault, "deep", "-o", str(box.dest))
    _refused(r)
    assert "level" in r.err
    assert (box.dest / "top.txt").read_bytes() == b"top\n"
    box.assert_nothing_outside_dest(before)
    _refused(vault("ls", "deep", "--json"))


def test_hostile_tree_in_listing_of_a_subpath(vault: VaultCli, forge: Forge, box: Box) -> None:
    forge.commit("item", forge.dir("item", [forge.dir("sub", [forge.file("..", b"x")])]))
    forge.close()
    _refused(vault("ls", "item/sub"))
    _refused(_get(vault, "item/sub", "-o", str(box.dest)))
    box.assert_nothing_outside_dest(box.snapshot())


def test_link_and_directory_with_one_name(vault: VaultCli, forge: Forge, box: Box) -> None:
    """A link ``d`` to a directory outside DEST and, in the same tree, a directory ``d`` holding ``x``: restoring
    ``d/x`` through the link would write outside. (Names have no ``/``, so ``d/x`` can only be reached this
    way.) Refused as a duplicate; and a path request through it is refused too."""
    before = box.snapshot()
    link = forge.link("d", str(box.outside))
    real = forge.dir("d", [forge.file("x", b"through the link\n")])
    # encode_tree sorts by name, stably: the link comes first, as an attacker would want
    forge.commit("twins", forge.dir("twins", [forge.file("a.txt", b"a\n"), link, real]))
    forge.close()
    for extra in ([], ["--force"]):
        _refused(_get(vault, "twins", "-o", str(box.dest), *extra))
        box.assert_nothing_outside_dest(before)
    _refused(_get(vault, "twins/d/x", "-o", str(box.dest / "x")), (4, 20))
    box.assert_nothing_outside_dest(before)
    assert not (box.outside / "x").exists()


def test_link_then_directory_across_versions(vault: VaultCli, forge: Forge, box: Box) -> None:
    """Version 1 holds a link ``d`` to a directory outside; version 2 a real directory ``d`` with ``x``, and a
    file ``f`` where version 1 had a link ``f`` to a file outside. Restoring version 1 and then version 2 over
    it (--force) must never write through the links left by the first restore."""
    before = box.snapshot()
    forge.commit("flip", forge.dir("flip", [forge.link("d", str(box.outside)),
                                            forge.link("f", str(box.outside / "precious.txt"))]))
    forge.commit("flip", forge.dir("flip", [forge.dir("d", [forge.file("x", b"x\n")]),
                                            forge.file("f", b"overwritten?\n")]))
    forge.close()
    box.dest.mkdir()
    vault("get", "flip", "--version", "1", "-o", str(box.dest), check=0)
    assert os.readlink(box.dest / "flip" / "d") == str(box.outside)
    r = _get(vault, "flip", "--version", "2", "-o", str(box.dest), "--force")
    box.assert_nothing_outside_dest(before)
    assert not (box.outside / "x").exists()
    assert (box.outside / "precious.txt").read_bytes() == b"leave me alone\n"
    if r.code == 0:  # replacing the links with what version 2 holds is fine too
        assert not (box.dest / "flip" / "d").is_symlink() and (box.dest / "flip" / "d" / "x").read_bytes() == b"x\n"
    else:
        _refused(r, (20, 40))
        assert "d" in r.err
    # the file replaced the link (it is never written through it)
    assert not (box.dest / "flip" / "f").is_symlink()
    assert (box.dest / "flip" / "f").read_bytes() == b"overwritten?\n"


def test_path_request_through_a_link_out_of_the_tree(vault: VaultCli, forge: Forge, box: Box) -> None:
    (box.outside / "sub").mkdir()
    (box.outside / "sub" / "file").write_bytes(b"outside\n")
    before = box.snapshot()
    forge.commit("item", forge.dir("item", [
        forge.link("sub", "../../outside/sub"),
        forge.dir("real", [forge.link("up", "../../../outside")]),
    ]))
    forge.close()
    for path in ("item/sub/file", "item/real/up/precious.txt", "item/sub"):
        dest = box.dest
        r = _get(vault, path, "-o", str(dest))
        if path == "item/sub":  # the link itself: restored as a link, never followed
            assert r.code == 0, r.err
            assert os.readlink(dest) == "../../outside/sub"
            dest.unlink()
        else:
            _refused(r, (4, 20))
            assert not dest.exists() and not dest.is_symlink()
        box.assert_nothing_outside_dest(before)
    # the whole item: links come back as links, nothing written through them
    vault("get", "item", "-o", str(box.dest), check=0)
    assert os.readlink(box.dest / "sub") == "../../outside/sub"
    assert os.readlink(box.dest / "real" / "up") == "../../../outside"
    box.assert_nothing_outside_dest(before)


# -- sizes that don't match the chunks ---------------------------------------------------------------------------
@pytest.mark.parametrize("delta", [100_000, -1])
def test_file_size_disagrees_with_chunks(vault: VaultCli, forge: Forge, box: Box, delta: int) -> None:
    payload = os.urandom(5000)
    forge.commit("lies.bin", forge.file("lies.bin", payload, size=len(payload) + delta))
    forge.commit("dir", forge.dir("dir", [forge.file("a-good.txt", b"good\n"),
                                          forge.file("b-lies.bin", payload, size=len(payload) + delta),
                                          forge.file("c-good.txt", b"also good\n")]))
    forge.close()
    before = box.snapshot()
    box.dest.mkdir()
    _refused(_get(vault, "lies.bin", "-o", str(box.dest / "out.bin")))
    assert os.listdir(box.dest) == []  # no file, no temporary file left behind
    r = _get(vault, "lies.bin", "-o", "-")
    _refused(r)
    assert len(r.out) <= len(payload)  # never more than what authenticated, never claims to be whole
    # inside a tree: the others are restored, the bad one is named and not left behind
    r = _get(vault, "dir", "-o", str(box.dest / "dir"))
    _refused(r)
    assert "b-lies.bin" in r.err
    assert sorted(os.listdir(box.dest / "dir")) == ["a-good.txt", "c-good.txt"]
    box.assert_nothing_outside_dest(before)


def test_chunk_of_the_wrong_type_and_subtree_that_is_data(vault: VaultCli, forge: Forge, box: Box) -> None:
    data_id = forge.data(b"just data")[0]
    inner_tree = forge.tree([forge.file("f", b"f")])
    nodes = [Node("as-file", "file", 0o644, 0, 10, content=(inner_tree,))]
    forge.commit("confused", forge.dir("confused", nodes))
    forge.commit("confused2", forge.dir("confused2", [Node("as-dir", "dir", 0o755, 0, subtree=data_id)]))
    forge.close()
    _refused(_get(vault, "confused", "-o", str(box.dest)))
    _refused(_get(vault, "confused2", "-o", str(box.dest / "2")))
    _refused(vault("check"))


# -- the restore code's own defence ---------------------------------------------------------------------------------
def _lax_decode_tree(raw: bytes, what: str) -> list[Node]:
    """A decoder that checks nothing about names (no ``..``, ``/``, NUL or duplicate check): what the restore
    code would see if decode_tree's checks were ever weakened or bypassed."""
    doc = json.loads(raw)
    out = []
    for n in doc["nodes"]:
        if n["type"] == "file":
            out.append(Node(n["name"], "file", n["mode"], n["mtime_ns"], n["size"],
                            content=tuple(bytes.fromhex(c) for c in n["content"])))
        elif n["type"] == "dir":
            out.append(Node(n["name"], "dir", n["mode"], n["mtime_ns"], subtree=bytes.fromhex(n["subtree"])))
        else:
            out.append(Node(n["name"], "link", n["mode"], n["mtime_ns"], target=n["target"]))
    return out


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("kind", ["file", "dir", "link"])
@pytest.mark.parametrize("name_of", [
    lambda box: "..",
    lambda box: ".",
    lambda box: "../escaped-slash",
    lambda box: str(box.box / "escaped-abs"),
    lambda box: str(box.outside / "escaped-abs2"),
    lambda box: "a\0b",
], ids=["dotdot", "dot", "slash", "absolute-box", "absolute-outside", "nul"])
def test_restore_refuses_hostile_names_without_the_decoder(
    vault: VaultCli, forge: Forge, box: Box, monkeypatch: pytest.MonkeyPatch, kind: str, force: bool,
    name_of: Any,
) -> None:
    # Here decode_tree's validation is switched off (Repository.load_tree calls the name bound in
    # vault.repo.repository), so that only Restorer.restore's own checks can stop the hostile name.
    monkeypatch.setattr("vault.repo.repository.decode_tree", _lax_decode_tree)
    name = name_of(box)
    if kind == "file":
        bad = forge.file(name, b"escaped\n")
    elif kind == "dir":
        bad = forge.dir(name, [forge.file("escaped.txt", b"escaped\n")])
    else:
        bad = forge.link(name, str(box.outside / "precious.txt"))
    forge.commit("evil", forge.dir("evil", [forge.file("fine.txt", b"fine\n"), bad]))
    forge.close()
    before = box.snapshot()
    repo = Repository.open(LocalBackend(vault.vault_path), PASSWORD.encode(), rehash=False)
    record, node, _ = resolve(repo, "evil", None)
    with Pipeline(1) as pipe, pytest.raises(VaultError) as raised:
        Restorer(repo, pipe).restore(record, node, str(box.dest), force)
    assert raised.value.exit_code in (20, 30, 40), raised.value
    box.assert_nothing_outside_dest(before)
    assert not (box.box / "escaped.txt").exists()
    assert not (box.outside / "escaped.txt").exists()


@pytest.mark.parametrize("force", [False, True])
def test_restore_refuses_duplicate_link_and_dir_without_the_decoder(
    vault: VaultCli, forge: Forge, box: Box, monkeypatch: pytest.MonkeyPatch, force: bool
) -> None:
    monkeypatch.setattr("vault.repo.repository.decode_tree", _lax_decode_tree)  # see the test above
    link = forge.link("d", str(box.outside))
    real = forge.dir("d", [forge.file("x", b"through the link\n")])
    also = forge.link("f", str(box.outside / "precious.txt"))
    file = forge.file("f", b"through the file link\n")
    forge.commit("twins", forge.dir("twins", [link, real, also, file]))
    forge.close()
    before = box.snapshot()
    repo = Repository.open(LocalBackend(vault.vault_path), PASSWORD.encode(), rehash=False)
    record, node, _ = resolve(repo, "twins", None)
    with Pipeline(1) as pipe, pytest.raises(VaultError) as raised:
        Restorer(repo, pipe).restore(record, node, str(box.dest), force)
    assert raised.value.exit_code in (20, 40), raised.value
    box.assert_nothing_outside_dest(before)
    assert not (box.outside / "x").exists()


# -- trees that never end: cycles, bombs, depth (issue 18, item 4; vault/repo/bounds.py) -------------------------------
def _entries(root: Path) -> int:
    return sum(len(dirs) + len(files) for _, dirs, files in os.walk(root))


def test_a_tree_that_contains_itself_is_refused_as_damage(vault: VaultCli, forge: Forge, box: Box) -> None:
    """A key holder seals a tree under an id of their choosing, so its directory ``loop`` is the tree itself.
    `get` restores the rest and names ``loop`` (exit 20), `ls` and `check` say what it is (exit 20). Before the
    fix each of them recursed until Python's recursion limit: exit 1, "unexpected failure"."""
    loop_id = random_id()
    forge.tree_as(loop_id, [forge.file("f.txt", b"fine\n"), Node("loop", "dir", 0o755, 0, subtree=loop_id)])
    forge.commit("cyclic", Node("cyclic", "dir", 0o755, 0, subtree=loop_id), files=1, size=5)
    forge.close()
    before = box.snapshot()
    r = _get(vault, "cyclic", "-o", str(box.dest))
    _refused(r)
    assert "contains itself" in r.err and "dest/loop" in r.err
    assert (box.dest / "f.txt").read_bytes() == b"fine\n"
    box.assert_nothing_outside_dest(before)
    r = vault("ls", "cyclic")
    _refused(r)
    assert "contains itself" in r.err
    r = vault("check", "--read-data")
    _refused(r)
    assert "contains itself" in r.stdout


def test_a_chain_of_trees_nested_thousands_deep_restores_lists_and_checks(
    vault: VaultCli, forge: Forge, box: Box
) -> None:
    """1,500 directories, one inside the other, each its own tree: deeper than Python's recursion limit. Before
    the fix `get`, `ls` and `check` failed: exit 1 (RecursionError), or exit 20 calling a sound tree "not valid
    JSON" where the recursion limit struck inside the JSON parser."""
    depth = 1500
    node = forge.file("bottom.txt", b"at the bottom\n")
    for level in range(depth):
        node = Node("d", "dir", 0o755, level, subtree=forge.tree([node]))
    forge.commit("deep", Node("deep", "dir", 0o755, 0, subtree=forge.tree([node])))
    forge.close()
    listing = vault("ls", "deep", "--json", check=0)
    paths = [e["name"] for e in json.loads(listing.out)]
    assert len(paths) == depth + 1 and paths[-1] == "d/" * depth + "bottom.txt"
    vault("check", "--read-data", check=0)
    try:
        vault("get", "deep", "-o", str(box.dest), check=0)
        fd = os.open(box.dest, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for _ in range(depth):  # relative to descriptors: the path is longer than PATH_MAX
                inner = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
                os.close(fd)
                fd = inner
            with os.fdopen(os.open("bottom.txt", os.O_RDONLY, dir_fd=fd), "rb") as f:
                assert f.read() == b"at the bottom\n"
        finally:
            os.close(fd)
    finally:  # shutil.rmtree (pytest's clean-up) recurses once per level: it can't remove this tree
        subprocess.run(["rm", "-rf", str(box.dest)], check=True)


@pytest.mark.parametrize("leaf", ["file", "none"])
def test_a_tree_bomb_is_refused_before_it_expands(vault: VaultCli, forge: Forge, box: Box, leaf: str) -> None:
    """Fifteen small trees, each holding two directories that are the next tree: 2 KB that expand to 65,534
    directories (and as many files with a file at the bottom), while the record says the version holds at most
    one file. `get` and `ls` stop once the expansion passes the record's claim and the margin (exit 20) instead
    of writing or listing it all; before the fix `get` wrote every entry and `ls` listed them (a twenty-level
    bomb took `ls` to 10 GB)."""
    levels = 15
    tree = forge.tree([forge.file("leaf.txt", b"x")] if leaf == "file" else [])
    for level in range(levels):
        tree = forge.tree([Node(name, "dir", 0o755, level, subtree=tree) for name in ("a", "b")])
    record = forge.commit("bomb", Node("bomb", "dir", 0o755, 0, subtree=tree))
    forge.close()
    assert record.files == (1 if leaf == "file" else 0)  # each distinct tree counted once, as put would
    r = _get(vault, "bomb", "-o", str(box.dest))
    _refused(r)
    assert "expands to more than its record states" in r.err
    assert _entries(box.dest) < 12_000  # the margin (10,000 entries past the claim), not 2^16
    r = vault("ls", "bomb", "--json")
    _refused(r)
    assert r.out == b""
    assert "expands to more than its record states" in r.err


def test_a_shared_subtree_that_the_record_accounts_for_restores(vault: VaultCli, forge: Forge, box: Box) -> None:
    """Sharing itself is legitimate (identical directories, hard-linked copies): a tree whose 300 directories
    share one sub-tree of 50 files restores in full when its record counts every path, as put's does."""
    shared = forge.tree([forge.file(f"f{i}.txt", f"{i}\n".encode()) for i in range(50)])
    top = [Node(f"copy{i:03d}", "dir", 0o755, 0, subtree=shared) for i in range(300)]
    size = 300 * sum(len(f"{i}\n") for i in range(50))
    forge.commit("copies", Node("copies", "dir", 0o755, 0, subtree=forge.tree(top)), files=300 * 50, size=size)
    forge.close()
    vault("get", "copies", "-o", str(box.dest), check=0)
    assert _entries(box.dest) == 300 + 300 * 50
    listing = json.loads(vault("ls", "copies", "--json", check=0).out)
    assert len(listing) == 300 + 300 * 50


# -- names this file system can't hold (issue 18, item 7a) -------------------------------------------------------------
def test_names_longer_than_the_file_system_allows_are_skipped_and_named(
    vault: VaultCli, forge: Forge, box: Box
) -> None:
    """A tree may hold names up to 4,096 bytes (another file system stored them, or a key holder did); ext4 and
    most others take 255. Everything else is restored, each such path is named, and `get` exits 3 (partial),
    like a put that skipped files. Before the fix the first one ended the restore with exit 30."""
    long_file, long_dir, long_link = "f" * 300, "d" * 300, "l" * 300
    forge.commit("names", forge.dir("names", [
        forge.file("a-first.txt", b"first\n"),
        forge.file(long_file, b"too long\n"),
        forge.dir(long_dir, [forge.file("inside.txt", b"inside\n")]),
        forge.link(long_link, "a-first.txt"),
        forge.dir("sub", [forge.file("z-last.txt", b"last\n")]),
    ]))
    forge.close()
    r = _get(vault, "names", "-o", str(box.dest), "--json")
    assert r.code == 3, r.err
    for name in (long_file, long_dir, long_link):
        assert f"dest/{name}" in r.err
    assert "longer than the file system allows" in r.err
    report = json.loads(r.out)
    assert sorted(report["skipped"]) == sorted(f"dest/{n}" for n in (long_file, long_dir, long_link))
    assert report["failed"] == [] and report["files"] == 2
    assert (box.dest / "a-first.txt").read_bytes() == b"first\n"
    assert (box.dest / "sub" / "z-last.txt").read_bytes() == b"last\n"
    assert sorted(os.listdir(box.dest)) == ["a-first.txt", "sub"]  # nothing half-made, no temporary file
    log = json.loads(vault("log", "--json", check=0).out)
    assert log[-1]["exit_code"] == 3 and len(log[-1]["extra"]["skipped"]) == 3


# -- metadata that inflates (issue 18, item 5) -------------------------------------------------------------------------
def test_a_version_record_that_inflates_is_refused_without_the_memory(
    vault: VaultCli, forge: Forge, tmp_path: Path
) -> None:
    """A key holder's version record of under 16 KiB whose payload inflates to 250 MiB. Every command reads
    every record; before the fix each decompressed it whole (the cap was 256 MiB for any metadata object), so
    `vault ls` peaked above 250 MiB before calling it damaged. Now records are capped at 16 MiB."""
    h = Handle(Kind.VERSIONS, catalog.new_record_id())
    raw = seal_object(forge.repo.key, forge.repo.vault_id, h, fmt.ObjectType.VERSION, b" " * (250 << 20))
    assert len(raw) < 16 << 10
    forge.repo.backend.save(h, raw)
    forge.close()
    rss_file = tmp_path / "rss"
    proc = subprocess.run(measured_command([*vault.exe, "ls"], rss_file), env=vault.env, capture_output=True,
                          timeout=120)
    assert proc.returncode == 20, proc.stderr
    assert int(rss_file.read_text()) < 150 * 1024  # KiB
    assert b"too large" in proc.stderr


def test_a_file_larger_than_its_whole_version_is_refused_before_it_is_written(
    vault: VaultCli, forge: Forge, box: Box
) -> None:
    """One chunk listed 4,000 times makes a file node of 4 GB from 1 MiB stored; the record says the version
    holds 1 MiB. `get` refuses before writing a byte (exit 20), alone or inside a tree."""
    chunk = forge.data(os.urandom(1 << 20))[0]
    huge = Node("huge.bin", "file", 0o644, 0, 4000 << 20, content=(chunk,) * 4000)
    forge.commit("huge.bin", huge, files=1, size=1 << 20)
    forge.commit("tree", Node("tree", "dir", 0o755, 0, subtree=forge.tree([huge])), files=1, size=1 << 20)
    forge.close()
    box.dest.mkdir()
    for name in ("huge.bin", "tree"):
        r = _get(vault, name, "-o", str(box.dest))
        _refused(r)
        assert "expands to more than its record states" in r.err
    assert _entries(box.dest) <= 1  # at most the tree's own directory, empty
