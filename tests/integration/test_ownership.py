"""Owners and modes on restore (issue 18, item 1; docs/restoring.md, "Owners and permissions").

The attack: `put` stored mode bits but not owners, so `get` run as root made every restored file root's own, and
applied the stored mode to it, a setuid 4755 included: another user's setuid program came back setuid-root. Now
trees store uid, gid and the user and group names; a restore as root gives them back (names mapped through the
local databases as tar does, ids only with ``--numeric-owner``); setuid and setgid bits are dropped whenever the
restored owner is not the stored one; and a restore by anyone else applies the umask, as tar does.

Restoring owners needs root, which CI has; the non-root cases run `vault` under another uid with setpriv.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from forge import Forge
from helpers import PASSWORD, Result, VaultCli, vault_exe

from vault.repo.repository import Repository
from vault.restore import resolve
from vault.storage.local import LocalBackend

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="restoring owners needs root (CI runs as root)")

OTHER_UID, OTHER_GID = 4242, 4343  # no names on this machine
RUNNER_UID = 4321  # the non-root user that runs `get` in the umask tests


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _owner(path: Path) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_uid, st.st_gid


@pytest.fixture
def forge(vault: VaultCli) -> Iterator[Forge]:
    f = Forge(vault.vault_path)
    yield f
    f.close()


@needs_root
def test_a_root_restore_gives_files_back_their_owners_and_keeps_their_setuid(vault: VaultCli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    tool = src / "tool"
    tool.write_bytes(b"#!/bin/sh\necho not really\n")
    (src / "sub" / "data.txt").write_bytes(b"data\n")
    (src / "link").symlink_to("tool")
    for p in (tool, src / "sub", src / "sub" / "data.txt", src / "link"):
        os.lchown(p, OTHER_UID, OTHER_GID)
    os.chmod(tool, 0o6755)  # after chown, which clears setuid
    os.chown(src, OTHER_UID, OTHER_GID)
    vault("put", str(src), "--name", "tree", check=0)

    out = tmp_path / "out"
    vault("get", "tree", "-o", str(out), check=0)
    for rel in ("", "tool", "sub", "sub/data.txt", "link"):
        assert _owner(out / rel) == (OTHER_UID, OTHER_GID), rel
    assert _mode(out / "tool") == 0o6755  # the owner is the stored one: setuid and setgid stay
    assert _mode(out / "sub" / "data.txt") == 0o644


@needs_root
def test_a_setuid_file_without_a_stored_owner_is_not_made_setuid_root(
    vault: VaultCli, forge: Forge, tmp_path: Path
) -> None:
    """A tree without owners (written before trees had them, or by a key holder): restored as root the file is
    root's, so its setuid and setgid bits must go. Before the fix it came back 6755, owned by root."""
    forge.commit("old", forge.dir("old", [forge.file("tool", b"#!/bin/sh\n", mode=0o6755),
                                          forge.dir("shared", [], mode=0o2775)]))
    forge.close()
    out = tmp_path / "out"
    vault("get", "old", "-o", str(out), check=0)
    assert _owner(out / "tool") == (0, 0)
    assert _mode(out / "tool") == 0o755
    assert _mode(out / "shared") == 0o775
    single = tmp_path / "single"
    vault("get", "old/tool", "-o", str(single), check=0)
    assert _mode(single) == 0o755


@needs_root
def test_a_stored_owner_whose_name_maps_elsewhere_follows_the_name_unless_numeric_owner(
    vault: VaultCli, forge: Forge, tmp_path: Path
) -> None:
    """Names are mapped through the local user and group databases, as tar does: ``daemon`` stored with uid 4242
    comes back as this machine's daemon. ``--numeric-owner`` uses the stored ids. A name unknown here falls
    back to the stored id. The setuid bit stays in each case (the file ends up with the owner asked for)."""
    user = next(u for u in pwd.getpwall() if u.pw_uid not in (0, OTHER_UID))
    group = next(g for g in grp.getgrall() if g.gr_gid not in (0, OTHER_GID))
    forge.commit("mapped", forge.dir("mapped", [
        forge.file("named", b"x\n", mode=0o4755, uid=OTHER_UID, gid=OTHER_GID, user=user.pw_name,
                   group=group.gr_name),
        forge.file("unknown", b"y\n", mode=0o4755, uid=OTHER_UID, gid=OTHER_GID, user="no-such-user-here",
                   group="no-such-group-here"),
    ], uid=OTHER_UID, gid=OTHER_GID))
    forge.close()
    by_name = tmp_path / "by-name"
    vault("get", "mapped", "-o", str(by_name), check=0)
    assert _owner(by_name / "named") == (user.pw_uid, group.gr_gid)
    assert _owner(by_name / "unknown") == (OTHER_UID, OTHER_GID)
    assert _mode(by_name / "named") == 0o4755
    numeric = tmp_path / "numeric"
    vault("get", "mapped", "-o", str(numeric), "--numeric-owner", check=0)
    assert _owner(numeric / "named") == (OTHER_UID, OTHER_GID)
    assert _owner(numeric) == (OTHER_UID, OTHER_GID)
    assert _mode(numeric / "named") == 0o4755


@pytest.fixture
def runner_space(tmp_path: Path) -> Iterator[Path]:
    """A directory the non-root runner can reach (pytest's own temporary tree is private to root)."""
    base = Path(tempfile.mkdtemp(prefix="vault-runner-"))
    try:
        if ROOT:
            os.chown(base, RUNNER_UID, RUNNER_UID)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _as_runner(vault: VaultCli, space: Path, *args: str, umask: int = 0o022) -> Result:
    """Run `vault` as RUNNER_UID (when the tests run as root) with ``umask``, on a copy of the vault in
    ``space`` with its own HOME, both handed to that user. Not root: run as ourselves."""
    copy = space / "vault"
    if not copy.exists():
        shutil.copytree(vault.vault_path, copy, symlinks=True)
    home = space / "home"
    home.mkdir(exist_ok=True)
    env = {**vault.env, "VAULT_PATH": str(copy), "HOME": str(home), "XDG_STATE_HOME": str(home / "state"),
           "XDG_CACHE_HOME": str(home / "cache"), "XDG_DATA_HOME": str(home / "data")}
    prefix: list[str] = []
    if ROOT:
        for dirpath, dirnames, filenames in os.walk(space):
            for name in [*dirnames, *filenames]:
                os.lchown(os.path.join(dirpath, name), RUNNER_UID, RUNNER_UID)
        prefix = [shutil.which("setpriv") or "setpriv", f"--reuid={RUNNER_UID}", f"--regid={RUNNER_UID}",
                  "--clear-groups", "--"]
    # preexec_fn runs in the child before exec: the umask is the child's only (the test process has no threads).
    proc = subprocess.run([*prefix, *vault_exe(), *args], env=env, capture_output=True, timeout=120,
                          preexec_fn=lambda: os.umask(umask))
    return Result(proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"))


@pytest.mark.skipif(ROOT and not shutil.which("setpriv"), reason="needs setpriv to run as another user")
def test_a_non_root_restore_applies_the_umask_and_drops_setuid_it_cannot_keep(
    vault: VaultCli, forge: Forge, runner_space: Path
) -> None:
    """Without root, files belong to whoever restores them: modes are filtered by the umask (a 0666 file comes
    back 0644 under umask 022, as with tar), and setuid/setgid survive only where the stored owner is that
    user. Before the fix the 0666 file came back world-writable and the root-owned 4755 file setuid."""
    me = RUNNER_UID if ROOT else os.geteuid()
    my_gid = RUNNER_UID if ROOT else os.getegid()
    forge.commit("shared", forge.dir("shared", [
        forge.file("open.txt", b"anyone may write\n", mode=0o666, uid=me, gid=my_gid),
        forge.file("roots-tool", b"#!/bin/sh\n", mode=0o4755, uid=0, gid=0, user="root", group="root"),
        forge.file("my-tool", b"#!/bin/sh\n", mode=0o4755, uid=me, gid=my_gid),
        forge.dir("wide", [], mode=0o777, uid=me, gid=my_gid),
    ], mode=0o777, uid=me, gid=my_gid))
    forge.close()
    out = runner_space / "out"
    r = _as_runner(vault, runner_space, "get", "shared", "-o", str(out), "--numeric-owner")
    assert r.code == 0, r.err
    assert _owner(out / "open.txt")[0] == me
    assert _mode(out / "open.txt") == 0o644
    assert _mode(out / "roots-tool") == 0o755
    assert _mode(out / "my-tool") == 0o4755
    assert _mode(out / "wide") == 0o755
    assert _mode(out) == 0o755
    r = _as_runner(vault, runner_space, "get", "shared/open.txt", "-o", str(runner_space / "single.txt"),
                   umask=0o077)
    assert r.code == 0, r.err
    assert _mode(runner_space / "single.txt") == 0o600


def test_put_stores_owners_and_names(vault: VaultCli, tmp_path: Path) -> None:
    """The tree of a put holds each node's uid, gid and names (read back through the library)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"f\n")
    (src / "l").symlink_to("f")
    vault("put", str(src), check=0)
    vault("put", "-", "--name", "stdin.txt", input=b"from stdin\n", check=0)
    repo = Repository.open(LocalBackend(vault.vault_path), PASSWORD.encode(), rehash=False)
    _, root, _ = resolve(repo, "src", None)
    me = pwd.getpwuid(os.geteuid()).pw_name
    assert (root.uid, root.user) == (os.geteuid(), me)
    assert root.subtree is not None
    for node in repo.load_tree(root.subtree):
        assert (node.uid, node.gid, node.user) == (os.geteuid(), os.getegid(), me), node
        assert node.group == grp.getgrgid(os.getegid()).gr_name
    _, stdin_node, _ = resolve(repo, "stdin.txt", None)
    assert (stdin_node.uid, stdin_node.gid) == (os.getuid(), os.getgid())
