"""`vault forget` and `vault prune` with many overlapping versions (issue 4: "data referenced by any version is
never removed (a test with many overlapping versions proves that every kept version still restores
byte-identical)"; "forget plus prune ... returns the space").
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from helpers import VaultCli

FILES = ("a.bin", "b.bin", "c.bin")


def _json(result: Any) -> Any:
    assert result.code == 0, (result.code, result.err)
    return json.loads(result.out)


def _vault_state(vault_dir: Path) -> dict[str, str]:
    """Every stored object (locks excluded: commands take and release them) and its hash."""
    return {
        str(p.relative_to(vault_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(vault_dir.rglob("*"))
        if p.is_file() and p.relative_to(vault_dir).parts[0] != "locks"
    }


def _data_bytes(vault_dir: Path) -> int:
    return sum(p.stat().st_size for p in (vault_dir / "data").rglob("*") if p.is_file())


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_forget_and_prune_keep_every_kept_version_whole(vault: VaultCli, tmp_path: Path) -> None:
    src = tmp_path / "proj"
    src.mkdir()
    for name in FILES:
        (src / name).write_bytes(os.urandom(150_000))
    copies: dict[int, dict[str, bytes]] = {}
    for version in range(1, 13):
        if version > 1:  # each version changes one file; the other two are shared with the version before
            (src / FILES[(version - 2) % 3]).write_bytes(os.urandom(150_000))
        doc = _json(vault("put", str(src), "--json"))[0]
        assert doc["version"] == version
        copies[version] = _tree(src)
    # another item sharing content with version 1 only (its a.bin), under another name
    shared = tmp_path / "shared.bin"
    shared.write_bytes(copies[1]["a.bin"])
    assert _json(vault("put", str(shared), "--json"))[0]["bytes_added"] == 0
    vault("put", str(src / "c.bin"), "--name", "c-alone", check=0)  # shares the latest c.bin

    # forget --dry-run lists what it would do and changes nothing
    state = _vault_state(vault.vault_path)
    plan = _json(vault("forget", "--keep-last", "3", "--dry-run", "--json"))
    by = {(e["name"], e["version"]): e["action"] for e in plan}
    assert by == {
        **{("proj", v): ("keep" if v >= 10 else "drop") for v in range(1, 13)},
        ("shared.bin", 1): "keep",
        ("c-alone", 1): "keep",
    }
    assert all(e["reasons"] == ["last"] for e in plan if e["action"] == "keep")
    assert _vault_state(vault.vault_path) == state

    # forget for real (only proj is named: the other items are left alone whatever the policy)
    done = _json(vault("forget", "proj", "--keep-last", "3", "--json"))
    assert {(e["name"], e["version"], e["action"]) for e in done} == {
        ("proj", v, "keep" if v >= 10 else "drop") for v in range(1, 13)
    }
    assert [h["version"] for h in _json(vault("history", "proj", "--json"))] == [10, 11, 12]

    # prune --dry-run: a report and no change; the real prune then frees exactly that
    data_before = _data_bytes(vault.vault_path)
    state = _vault_state(vault.vault_path)
    dry = _json(vault("prune", "--dry-run", "--json"))
    assert dry["dry_run"] is True and dry["bytes_freed"] > 0
    assert _vault_state(vault.vault_path) == state
    real = _json(vault("prune", "--json"))
    assert real["bytes_freed"] == data_before - _data_bytes(vault.vault_path)
    for key in ("packs_deleted", "packs_repacked", "blobs_kept", "blobs_dropped"):
        assert real[key] == dry[key], key
    assert real["bytes_freed"] == dry["bytes_freed"]
    # about 9 versions' worth of changed files (one 150 kB file each, minus what shared.bin still holds)
    assert real["bytes_freed"] > 6 * 150_000
    assert _data_bytes(vault.vault_path) < data_before  # the stored bytes went down by exactly that

    # every kept version restores byte-identical; dropped versions are gone
    for version in (10, 11, 12):
        dest = tmp_path / f"v{version}"
        vault("get", "proj", "--version", str(version), "-o", str(dest), check=0)
        assert _tree(dest) == copies[version], version
    for version in (1, 9):
        r = vault("get", "proj", "--version", str(version), "-o", str(tmp_path / f"gone{version}"))
        assert r.code == 4, r.err
        assert not (tmp_path / f"gone{version}").exists()
    out = tmp_path / "shared-back.bin"
    vault("get", "shared.bin", "-o", str(out), check=0)
    assert out.read_bytes() == copies[1]["a.bin"]
    vault("get", "c-alone", "-o", str(tmp_path / "c-alone"), check=0)
    assert (tmp_path / "c-alone").read_bytes() == copies[12]["c.bin"]
    vault("check", "--read-data", check=0)

    # a second prune has nothing left to do
    again = _json(vault("prune", "--json"))
    assert (again["bytes_freed"], again["packs_deleted"], again["packs_repacked"]) == (0, 0, 0)


def test_rm_then_prune_returns_the_space(vault: VaultCli, tmp_path: Path) -> None:
    keep = tmp_path / "keep.bin"
    keep.write_bytes(os.urandom(200_000))
    drop = tmp_path / "drop.bin"
    drop.write_bytes(os.urandom(400_000))
    vault("put", str(keep), "--compression", "0", check=0)
    vault("put", str(drop), "--compression", "0", check=0)
    before = _data_bytes(vault.vault_path)
    vault("rm", "drop.bin", check=0)
    real = _json(vault("prune", "--json"))
    after = _data_bytes(vault.vault_path)
    assert before - after == real["bytes_freed"] >= 400_000
    assert after >= 200_000
    vault("get", "keep.bin", "-o", str(tmp_path / "k"), check=0)
    assert (tmp_path / "k").read_bytes() == keep.read_bytes()
    vault("check", "--read-data", check=0)


def test_prune_repacks_a_mostly_unreferenced_pack(vault: VaultCli, tmp_path: Path) -> None:
    src = tmp_path / "many"
    src.mkdir()
    for i in range(200):
        (src / f"f{i:03d}.bin").write_bytes(os.urandom(8_000 + i))
    vault("put", str(src), "--compression", "0", check=0)  # one pack holds all 200 files
    for i in range(10, 200):
        (src / f"f{i:03d}.bin").unlink()
    (src / "new.bin").write_bytes(os.urandom(3000))
    vault("put", str(src), "--compression", "0", check=0)
    expected = _tree(src)
    vault("forget", "--keep-last", "1", check=0)

    data_before = _data_bytes(vault.vault_path)
    state = _vault_state(vault.vault_path)
    dry = _json(vault("prune", "--dry-run", "--json"))
    assert _vault_state(vault.vault_path) == state
    real = _json(vault("prune", "--json"))
    assert real["packs_repacked"] >= 1, real
    assert real["packs_written"] >= 1, real
    assert real["bytes_freed"] == data_before - _data_bytes(vault.vault_path) > 150 * 8_000
    assert (dry["packs_repacked"], dry["packs_written"]) == (real["packs_repacked"], real["packs_written"])
    assert dry["bytes_freed"] == real["bytes_freed"], (dry, real)

    dest = tmp_path / "back"
    vault("get", "many", "-o", str(dest), check=0)
    assert _tree(dest) == expected
    vault("check", "--read-data", check=0)
    # the new version still dedups against the repacked blobs
    again = _json(vault("put", str(src), "--name", "many-again", "--json"))[0]
    assert again["bytes_added"] < 16_384


def test_prune_with_a_lost_index_object_deletes_nothing_a_version_needs(vault: VaultCli, tmp_path: Path) -> None:
    """An index object lost (deleted by accident, or by an attacker with storage access): the pack it listed now
    looks orphaned. Deleting it would destroy a version that `repair` (which rebuilds the index from the packs)
    can still save. prune refuses (exit 20) and changes nothing; after repair it frees nothing anyone needs."""
    a = tmp_path / "a.bin"
    a.write_bytes(os.urandom(100_000))
    b = tmp_path / "b.bin"
    b.write_bytes(os.urandom(100_000))
    vault("put", str(a), check=0)
    indexes_before = set((vault.vault_path / "index").iterdir())
    vault("put", str(b), check=0)
    (lost,) = set((vault.vault_path / "index").iterdir()) - indexes_before  # the index object of b's pack
    lost.unlink()
    state = _vault_state(vault.vault_path)
    for args in (["prune", "--dry-run"], ["prune"]):
        r = vault(*args)
        assert r.code == 20, (args, r.code, r.err)
        assert "repair" in r.err
        assert _vault_state(vault.vault_path) == state
    vault("repair", check=0)
    vault("prune", check=0)
    for item, src in (("a.bin", a), ("b.bin", b)):
        out = tmp_path / f"{item}.back"
        vault("get", item, "-o", str(out), check=0)
        assert out.read_bytes() == src.read_bytes()
    vault("check", "--read-data", check=0)
