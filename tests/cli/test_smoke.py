"""The shortest path a new user takes: init, put, get, through the installed entry point."""

from __future__ import annotations

import os
from pathlib import Path


def test_init_put_get_round_trip(vault, tmp_path: Path) -> None:
    src = tmp_path / "notes.txt"
    src.write_bytes(os.urandom(300_000) + b"hello" * 100_000)
    vault("put", str(src), check=0)
    out = tmp_path / "out"
    out.mkdir()
    vault("get", "notes.txt", "-o", str(out), check=0)
    assert (out / "notes.txt").read_bytes() == src.read_bytes()
