"""A `get` killed with SIGKILL leaves nothing to clean up (issue 21; docs/restoring.md, "Nothing is overwritten
unless you ask").

`get` used to write each file to ``.NAME.vault-XXXXXXXX.tmp`` beside its destination and rename it into place once
durable, so a SIGKILL (OOM killer, a CI timeout, a power cut) between the two left those files behind. Files are
now written unnamed (O_TMPFILE) and linked in under their final name once durable: a kill at any instant leaves
either the complete file or nothing.

To kill at the worst instant every time, `vault` runs in a wrapper that replaces the step just before files go
into place (the batch's syncfs for a tree; the rename or link for a single file) with SIGKILL of its own process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import VaultCli

# Runs the `vault` command line in this interpreter, with ``os.rename`` of a temporary file, ``os.link`` of an
# unnamed one and syncfs(2) replaced by SIGKILL: the process dies just before a restored file would go into place.
_KILLED_WRAPPER = """
import os, signal, sys
from vault.restore import durability

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

real_rename, real_link = os.rename, os.link

def rename(src, dst, **kwargs):
    if isinstance(src, str) and src.endswith(".tmp"):
        die()
    return real_rename(src, dst, **kwargs)

def link(src, dst, **kwargs):
    if isinstance(src, str) and src.startswith("/proc/self/fd/"):
        die()
    return real_link(src, dst, **kwargs)

os.rename, os.link = rename, link
if durability._SYNCFS is not None:
    durability._SYNCFS = die
from vault.cli import main
sys.argv[0] = "vault"
main()
"""


def _get_killed(vault: VaultCli, *args: str) -> int:
    proc = subprocess.run([sys.executable, "-c", _KILLED_WRAPPER, "get", *args], env=vault.env,
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    assert b"Traceback" not in proc.stderr, proc.stderr
    return proc.returncode


def _leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if ".vault-" in p.name)


@pytest.fixture
def stored(vault: VaultCli, tmp_path: Path) -> Path:
    src = tmp_path / "tree"
    for d in range(3):
        for i in range(20):
            path = src / f"d{d}" / f"f{i}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(os.urandom(100 + i))
    (src / "single.bin").write_bytes(os.urandom(300_000))
    vault("put", str(src), check=0)
    return src


def test_a_killed_tree_restore_leaves_no_temporary_file(vault: VaultCli, stored: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    assert _get_killed(vault, "tree", "-o", str(out)) == -signal.SIGKILL  # into out/tree
    assert (out / "tree").is_dir()  # it did start writing
    assert _leftovers(out) == []
    # What a rerun with --force finds there is only what the vault holds: it completes the restore.
    vault("get", "tree", "-o", str(out), "--force", check=0)
    assert _leftovers(out) == []
    assert (out / "tree" / "d2" / "f19.txt").read_bytes() == (stored / "d2" / "f19.txt").read_bytes()


@pytest.mark.parametrize("existing", [False, True], ids=["new", "force-over-existing"])
def test_a_killed_file_restore_leaves_no_temporary_file(
    vault: VaultCli, stored: Path, tmp_path: Path, existing: bool
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    dest = out / "single.bin"
    if existing:
        dest.write_bytes(b"the old file, which must survive\n")
    code = _get_killed(vault, "tree/single.bin", "-o", str(dest), *(["--force"] if existing else []))
    assert code == -signal.SIGKILL
    assert _leftovers(out) == []
    if existing:
        assert dest.read_bytes() == b"the old file, which must survive\n"
    else:
        assert not dest.exists()
