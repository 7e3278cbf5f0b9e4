"""vault.witness: what one machine remembers of a vault's version records (replay, deletion, rollback).

The witness is handed the vault's record ids (authenticated, from the catalog) at the start and the end of each
command; a set of ids stands in for the vault here."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

from vault.witness import Witness

VID = b"\x01" * 16


def _id(n: int) -> str:
    return f"{n:064x}"


def _command(vault: set[str], directory: Path) -> tuple[list[str], list[str]]:
    """One command that changes nothing: start, then finish."""
    w = Witness(VID, directory)
    found = w.start(vault)
    w.finish(vault)
    return found.replayed, found.vanished


def _remove(vault: set[str], directory: Path, ids: list[str]) -> None:
    """One command that removes records the way the repository does: intent, deletion, confirmation."""
    w = Witness(VID, directory)
    w.start(vault)
    w.removing(ids)
    vault.difference_update(ids)
    w.removed(ids)
    w.finish(vault)


def test_a_first_look_finds_nothing_and_own_changes_are_not_reported(tmp_path: Path) -> None:
    a, b = _id(1), _id(2)
    vault = {a, b}
    assert _command(vault, tmp_path) == ([], [])
    _remove(vault, tmp_path, [a])  # this machine's own rm
    vault.add(_id(3))  # and a put
    assert _command(vault, tmp_path) == ([], [])
    vault.add(a)  # the replay of what we removed
    assert _command(vault, tmp_path) == ([a], [])
    assert _command(vault, tmp_path) == ([a], [])  # until it is removed again
    _remove(vault, tmp_path, [a])
    assert _command(vault, tmp_path) == ([], [])
    # Someone else's deletion: reported once, and its return is a replay.
    vault.discard(b)
    assert _command(vault, tmp_path) == ([], [b])
    assert _command(vault, tmp_path) == ([], [])
    vault.add(b)
    assert _command(vault, tmp_path) == ([b], [])


def test_the_file_is_private_holds_only_record_ids_and_never_forgets_a_removal(tmp_path: Path) -> None:
    vault = {_id(n) for n in range(5)}
    _command(vault, tmp_path)
    (path,) = tmp_path.glob("*.sqlite")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(tmp_path.stat().st_mode) == 0o700
    assert VID.hex() not in path.name
    with sqlite3.connect(path) as db:
        assert {r[0] for r in db.execute("SELECT id FROM seen")} == vault
    # The review's flood: 200k planted records, then deleted, no longer push a real removal out.
    victim = _id(1)
    _remove(vault, tmp_path, [victim])
    planted = {_id(10**6 + n) for n in range(200_010)}
    vault |= planted
    _command(vault, tmp_path)
    _remove(vault, tmp_path, sorted(planted))
    vault.add(victim)
    assert _command(vault, tmp_path)[0] == [victim]


def test_an_unusable_file_is_a_warning_and_never_fails(tmp_path: Path) -> None:
    vault = {_id(1)}
    w = Witness(VID, tmp_path)
    w.path.parent.mkdir(parents=True, exist_ok=True)
    w.path.write_bytes(b"not a database" * 100)
    found = Witness(VID, tmp_path).start(vault)
    assert found.unusable and any("can't be noticed" in m for m in found.messages())
    # An unusable directory: commands go on, and say that nothing could be compared.
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("x")
    found = Witness(VID, blocked).start(vault)
    assert (found.replayed, found.vanished) == ([], []) and found.unusable


def test_overlapping_commands_do_not_make_a_false_replay(tmp_path: Path) -> None:
    """put1 starts; put2 adds r2 and finishes; put1 finishes: r2 is not taken for removed (review finding)."""
    vault = {_id(1)}
    _command(vault, tmp_path)
    first, second = Witness(VID, tmp_path), Witness(VID, tmp_path)
    first.start(vault)
    second.start(vault)
    r2 = _id(2)
    vault.add(r2)
    second.finish(vault)
    first.finish(vault - {r2})  # what put1's catalog knows at its end
    assert _command(vault, tmp_path) == ([], [])
    vault.discard(r2)  # and when someone else removes it, it is noticed
    assert _command(vault, tmp_path) == ([], [r2])


def test_a_removal_killed_half_way_is_pending_never_a_replay(tmp_path: Path) -> None:
    a, b = _id(1), _id(2)
    vault = {a, b}
    _command(vault, tmp_path)
    killed = Witness(VID, tmp_path)
    killed.start(vault)
    killed.removing([a, b])
    vault.discard(a)  # a is deleted, then the process dies: b's record is still there, nothing confirmed
    found = Witness(VID, tmp_path).start(vault)
    assert (found.replayed, found.vanished, found.pending) == ([], [], [b])
    # The next exclusive command finishes it (the repository's remove_records); then all is quiet.
    _remove(vault, tmp_path, [b])
    assert _command(vault, tmp_path) == ([], [])
    # a's removal was confirmed when the next command found it gone: its return is a replay.
    vault.add(a)
    assert _command(vault, tmp_path) == ([a], [])
