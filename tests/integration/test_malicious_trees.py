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
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import CHEAP, PASSWORD, VaultCli

from vault import format as fmt
from vault.crypto.slots import POLICY_EXPLICIT
from vault.errors import VaultError
from vault.pipeline.runner import Pipeline
from vault.repo import catalog
from vault.repo.repository import Repository
from vault.repo.tree import Node, encode_tree
from vault.repo.writer import BlobWriter
from vault.restore import Restorer, resolve
from vault.storage.local import LocalBackend


# -- building vaults by hand --------------------------------------------------------------------------------------
class Forge:
    """Writes data, trees and version records into an existing vault with its real key."""

    def __init__(self, vault_dir: Path) -> None:
        self.repo = Repository.open(LocalBackend(vault_dir), PASSWORD.encode(), rehash=False)
        self.pipe = Pipeline(1)
        self.writer = BlobWriter(self.repo, self.pipe, 0)

    def close(self) -> None:
        self.writer.finish()
        self.pipe.close()

    def data(self, payload: bytes) -> tuple[bytes, ...]:
        return tuple(blob_id for blob_id, _, _ in self.writer.store([payload]))

    def file(self, name: str, payload: bytes, size: int | None = None, mode: int = 0o644) -> Node:
        return Node(name, "file", mode, 1_600_000_000 * 10**9, len(payload) if size is None else size,
                    content=self.data(payload))

    def tree(self, nodes: list[Node]) -> bytes:
        return self.writer.store_one(encode_tree(nodes), fmt.BlobType.TREE)

    def raw_tree(self, doc: dict[str, Any]) -> bytes:
        return self.writer.store_one(fmt.encode_json(doc), fmt.BlobType.TREE)

    def dir(self, name: str, nodes: list[Node], mode: int = 0o755) -> Node:
        return Node(name, "dir", mode, 1_600_000_000 * 10**9, subtree=self.tree(nodes))

    @staticmethod
    def link(name: str, target: str) -> Node:
        return Node(name, "link", 0o777, 1_600_000_000 * 10**9, target=target)

    def commit(self, item: str, root: Node) -> catalog.VersionRecord:
        """Store ``root`` as the next version of ``item`` (packs and index first, the record last)."""
        tree_id = self.tree([root])
        self.writer.finish()
        versions = [r.version for r in self.repo.records() if r.item == item]
        record = catalog.VersionRecord(
            record_id=catalog.new_record_id(),
            item=item,
            version=max(versions, default=0) + 1,
            created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            type=root.type,
            tree=tree_id,
            size=0,
            files=0,
            bytes_added=0,
            host="forge",
        )
        return self.repo.commit_record(record)


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
