"""vault.witness: what one machine remembers of a vault's version records (replay, deletion, rollback)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from vault.storage.base import Handle, Kind
from vault.storage.memory import MemoryBackend
from vault.witness import MAX_GONE, Witness

VID = b"\x01" * 16


def _record(backend: MemoryBackend, n: int) -> str:
    name = f"{n:064x}"
    backend.save(Handle(Kind.VERSIONS, name), b"sealed record")
    return name


def _command(backend: MemoryBackend, directory: Path) -> tuple[list[str], list[str]]:
    """One command: start, (the caller's changes happen before the next call), finish."""
    w = Witness(VID, directory)
    found = w.start(backend)
    w.finish(backend)
    return found.replayed, found.vanished


def test_a_first_look_finds_nothing_and_own_changes_are_not_reported(tmp_path: Path) -> None:
    backend = MemoryBackend()
    a, b = _record(backend, 1), _record(backend, 2)
    assert _command(backend, tmp_path) == ([], [])
    w = Witness(VID, tmp_path)
    assert w.start(backend).vanished == []
    backend.remove(Handle(Kind.VERSIONS, a))  # this command's own rm
    _record(backend, 3)  # and a put
    w.finish(backend)
    assert _command(backend, tmp_path) == ([], [])
    backend.save(Handle(Kind.VERSIONS, a), b"sealed record")  # the replay of what we removed
    assert _command(backend, tmp_path) == ([a], [])
    assert _command(backend, tmp_path) == ([a], [])  # until it is removed again
    w = Witness(VID, tmp_path)
    w.start(backend)
    backend.remove(Handle(Kind.VERSIONS, a))
    w.finish(backend)
    assert _command(backend, tmp_path) == ([], [])
    # Someone else's deletion: reported once, and its return is a replay.
    backend.remove(Handle(Kind.VERSIONS, b))
    assert _command(backend, tmp_path) == ([], [b])
    assert _command(backend, tmp_path) == ([], [])
    backend.save(Handle(Kind.VERSIONS, b), b"sealed record")
    assert _command(backend, tmp_path) == ([b], [])


def test_the_file_is_private_holds_only_record_names_and_is_bounded(tmp_path: Path) -> None:
    backend = MemoryBackend()
    names = [_record(backend, n) for n in range(5)]
    _command(backend, tmp_path)
    (path,) = tmp_path.glob("*.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(tmp_path.stat().st_mode) == 0o700
    doc = json.loads(path.read_text())
    assert doc == {"v": 1, "seen": sorted(names), "gone": []}
    assert VID.hex() not in path.name
    doc["gone"] = [f"{n:064x}" for n in range(MAX_GONE + 10)]
    path.write_text(json.dumps(doc))
    _command(backend, tmp_path)
    assert len(json.loads(path.read_text())["gone"]) == MAX_GONE


def test_a_corrupt_or_foreign_file_starts_afresh_and_never_fails(tmp_path: Path) -> None:
    backend = MemoryBackend()
    _record(backend, 1)
    w = Witness(VID, tmp_path)
    w.path.parent.mkdir(parents=True, exist_ok=True)
    for junk in (b"{not json", b'{"v": 2, "seen": [], "gone": []}', b'{"v": 1, "seen": [1], "gone": []}', b"[]"):
        w.path.write_bytes(junk)
        assert _command(backend, tmp_path) == ([], [])
    # An unusable directory: commands go on, nothing is reported.
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("x")
    assert _command(backend, blocked) == ([], [])


def test_overlapping_commands_do_not_make_a_false_replay(tmp_path: Path) -> None:
    """put1 starts; put2 adds r2 and finishes; put1 finishes: r2 is not taken for removed (review finding)."""
    backend = MemoryBackend()
    _record(backend, 1)
    _command(backend, tmp_path)
    first, second = Witness(VID, tmp_path), Witness(VID, tmp_path)
    first.start(backend)
    second.start(backend)
    r2 = _record(backend, 2)
    second.finish(backend)
    first.finish(backend)
    assert _command(backend, tmp_path) == ([], [])
    backend.remove(Handle(Kind.VERSIONS, r2))  # and when someone else removes it, it is noticed
    assert _command(backend, tmp_path) == ([], [r2])


def test_a_command_killed_after_announcing_removals_is_not_taken_for_a_rollback(tmp_path: Path) -> None:
    backend = MemoryBackend()
    a = _record(backend, 1)
    _command(backend, tmp_path)
    killed = Witness(VID, tmp_path)
    killed.start(backend)
    killed.removing([a])
    backend.remove(Handle(Kind.VERSIONS, a))  # ... and the process dies before finish()
    assert _command(backend, tmp_path) == ([], [])
    backend.save(Handle(Kind.VERSIONS, a), b"sealed record")
    assert _command(backend, tmp_path) == ([a], [])
