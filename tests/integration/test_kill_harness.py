"""SIGKILL at a seeded, exact moment of every command that changes a vault, then proof that nothing was lost and
nothing is taken for an attack (issue 21, and the kill trials of issue 18).

**The vault states.** One vault is built per module (per xdist worker) through the command line: a directory
item ``docs`` (versions 1 and 2, each stored by one put together with a version of ``a.bin``, so they share
packs), a file item ``a.bin`` (versions 2 and 3: version 1 was removed), ``gone.bin`` (removed), and two keys.
Its machine (the HOME holding the witness and the operation log) is kept with it, so the removals done while
building it must never come back. Some commands start from a state derived from it once per module: ``pruned``
(docs 1 removed as well: prune deletes one pack and repacks another), ``leftovers`` (an interrupted put's
unindexed pack and temporary file), ``damaged`` (two index objects deleted: only `repair` mends it). Each trial
copies its state, vault and machine; copying is much faster than running the puts again.

**The moment.** Only what a process did before SIGKILL survives, so the states a kill can leave are exactly the
prefixes of the command's sequence of state-changing system calls (tests/syscall_kill.py). A calibration run per
command and module lists those calls (write, rename, unlink, fsync, mkdir, utimensat, ... but not writes to
standard output or error); trial ``i`` of ``n`` picks the call at a seeded position in the ``i``-th ``n``-th of
that list (stratified: the trials spread over the whole command) and kills the command on entry to it with
strace's fault injection (``SYSCALL:N``: the N-th call of that system call; per thread where several threads
write, see tests/syscall_kill.py). That is reproducible and independent of the machine's speed: a delay would
land mostly in argon2 or Python's start-up, where nothing changes, and move with the load.

**The checks.** After the kill: the next command neither hangs nor exits 11 (busy) nor 1; with the password
the interrupted command allows (old or new; at least one opens), `check --read-data` exits 0 without `repair`
(except after `repair` of the damaged vault, which only a completed `repair` mends); every version that must
exist restores byte-identical; the versions the command was removing are each either there (and restore
byte-identical) or gone; a version the killed put was adding is there whole or absent; nothing removed by a
command that completed before comes back, and no other item or version appears. Then the command is run again to
completion, and the end state is checked the same way (removed versions gone, new passwords in force). No
follow-up command may print a warning about replayed or vanished versions.

The normal suite runs ``CI_TRIALS`` per command; the slow-marked soak runs ``VAULT_KILL_TRIALS`` (default 50).
To reproduce a failure: its message names the test id, the kill point and the strace command; set
``VAULT_KILL_AT=SYSCALL:N`` to force a kill point, ``VAULT_KILL_REPORT=FILE`` to get one JSON line per trial.

**Adding a command** (`copy`, `put --tar`, a write-only put): subclass :class:`Scenario` (argv, environment,
standard input, the versions it adds or removes, how to complete it, extra checks) and add it to SCENARIOS.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pytest
import syscall_kill
from helpers import (
    CHEAP_INIT_ARGS,
    PASSWORD,
    SECOND_PASSWORD,
    Result,
    VaultCli,
    copy_vault,
    objects,
    random_bytes,
    run_ok,
    snapshot,
    template_env,
    text_bytes,
    vault_exe,
    write_file,
)

pytestmark = pytest.mark.skipif(syscall_kill.STRACE is None, reason="needs strace (apt-get install strace)")

SEED = 20261207
CI_TRIALS = 1  # per command in every CI run; the slow soak runs VAULT_KILL_TRIALS (default 50)
SLOW_TRIALS = int(os.environ.get("VAULT_KILL_TRIALS", "50"))
KILL_AT = os.environ.get("VAULT_KILL_AT")  # "SYSCALL:N" for every trial: reproduce one by hand
REPORT = os.environ.get("VAULT_KILL_REPORT")  # a file: one JSON line per trial

NEW_PASSWORD = "the new password of the kill trials"
THIRD_PASSWORD = "a third password of the kill trials"
# What a follow-up command must never say after a crash: a replayed record, or versions gone that this machine
# did not remove (vault/witness.py's warnings and check's problems).
FORBIDDEN = re.compile(r"replayed|is back|did not remove|rolled back", re.IGNORECASE)
TEMP_FILE = re.compile(r"^\..*\.vault-[0-9a-f]+\.tmp$")  # get's temporary files beside a destination
TIMEOUT = 90  # a follow-up command that takes longer has hung

Version = tuple[str, int]  # (item, version number)


# ------------------------------------------------------------------------------------------- vault states


@dataclass
class VaultState:
    """A vault and the machine that saw it (``home``: the witness, the operation log), and what it must hold."""

    root: Path
    versions: dict[Version, Path]  # every version it holds → its reference content (a file, or a tree)
    gone: set[Version]  # removed by commands that completed: must never come back
    key_ids: dict[str, str]  # password → key id
    password: str = PASSWORD  # the one the commands use

    @property
    def vault(self) -> Path:
        return self.root / "vault"

    @property
    def home(self) -> Path:
        return self.root / "home"

    def env(self, password: str | None = None) -> dict[str, str]:
        env = template_env(self.home, self.vault)
        env["VAULT_PASSWORD"] = password or self.password
        return env

    def copy(self, root: Path, **changes: object) -> VaultState:
        root.mkdir(parents=True, exist_ok=True)
        copy_vault(self.vault, root / "vault")
        shutil.copytree(self.home, root / "home", symlinks=True)
        fields = {"versions": dict(self.versions), "gone": set(self.gone), "key_ids": dict(self.key_ids),
                  "password": self.password, **changes}
        return VaultState(root, **fields)  # type: ignore[arg-type]


def _ref(refs: Path, src: Path, item: str, version: int) -> Path:
    """Keep the content ``src`` has now as the reference of ``item`` version ``version``."""
    dst = refs / f"{item.replace('/', '_')}-{version}"
    if src.is_dir():
        shutil.copytree(src, dst, symlinks=True)
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    return dst


def build_base(root: Path) -> VaultState:
    state = VaultState(root, {}, set(), {})
    src, refs = root / "src", root / "refs"
    env = state.env()
    run_ok(env, "init", *CHEAP_INIT_ARGS)
    docs = src / "docs"
    write_file(docs / "a.txt", text_bytes(30_000, seed=1))
    write_file(docs / "b.bin", random_bytes(150_000, seed=2))
    write_file(docs / "sub" / "c.txt", text_bytes(10_000, seed=3))
    (docs / "link").symlink_to("a.txt")
    write_file(src / "a.bin", random_bytes(120_000, seed=4))
    run_ok(env, "put", str(docs), str(src / "a.bin"))
    state.versions[("docs", 1)] = _ref(refs, docs, "docs", 1)
    state.versions[("a.bin", 1)] = _ref(refs, src / "a.bin", "a.bin", 1)
    write_file(src / "gone.bin", random_bytes(60_000, seed=5))
    run_ok(env, "put", str(src / "gone.bin"))
    state.versions[("gone.bin", 1)] = _ref(refs, src / "gone.bin", "gone.bin", 1)
    write_file(docs / "b.bin", random_bytes(150_000, seed=6))
    write_file(docs / "d.txt", text_bytes(20_000, seed=7))
    (docs / "sub" / "c.txt").unlink()
    write_file(docs / "sub" / "e.txt", text_bytes(5_000, seed=8))
    write_file(src / "a.bin", random_bytes(130_000, seed=9))
    run_ok(env, "put", str(docs), str(src / "a.bin"))
    state.versions[("docs", 2)] = _ref(refs, docs, "docs", 2)
    state.versions[("a.bin", 2)] = _ref(refs, src / "a.bin", "a.bin", 2)
    write_file(src / "a.bin", random_bytes(110_000, seed=11))
    run_ok(env, "put", str(src / "a.bin"))
    state.versions[("a.bin", 3)] = _ref(refs, src / "a.bin", "a.bin", 3)
    _remove(state, "gone.bin", 1)
    _remove(state, "a.bin", 1)
    run_ok({**env, "VAULT_NEW_PASSWORD": SECOND_PASSWORD}, "key", "add")
    keys = json.loads(run_ok(env, "key", "list", "--json").stdout)
    state.key_ids[PASSWORD] = next(k["id"] for k in keys if k["current"])
    state.key_ids[SECOND_PASSWORD] = next(k["id"] for k in keys if not k["current"])
    run_ok(env, "check", "--read-data")
    return state


def _remove(state: VaultState, item: str, version: int) -> None:
    run_ok(state.env(), "rm", item, "--version", str(version))
    del state.versions[(item, version)]
    state.gone.add((item, version))


def build_pruned(base: VaultState, root: Path) -> VaultState:
    """docs 1 removed: prune deletes gone.bin's pack and repacks the first put's (docs 2 still needs a.txt)."""
    state = base.copy(root)
    _remove(state, "docs", 1)
    return state


def build_leftovers(base: VaultState, root: Path) -> VaultState:
    """What a put killed on entry to its first checkpoint's rename leaves: a durable pack no index lists, and
    the checkpoint's temporary file (its stale lock is removed here: a reused pid would make it look alive)."""
    state = base.copy(root)
    extra = write_file(root / "interrupted.bin", random_bytes(200_000, seed=12))
    # The I/O thread renames the pack (1st rename), then its checkpoint (2nd); the main thread's 2nd rename is
    # the merged index, after every upload.
    killed = syscall_kill.run_killed([*vault_exe(), "put", str(extra)], state.env(), "rename:2")
    assert killed.returncode == -signal.SIGKILL, killed
    assert [p for p in (state.vault / "index").iterdir() if p.name.startswith(".tmp-")]
    run_ok(state.env(), "check", "--read-data")  # healthy: a note about the unindexed pack, nothing more
    return state


def build_damaged(base: VaultState, root: Path) -> VaultState:
    """Two of the four index objects deleted (check: exit 20), and a stray temporary file."""
    state = base.copy(root)
    index = sorted(objects(state.vault, "index"), key=lambda p: p.stat().st_mtime_ns)
    for p in index[:3:2]:
        p.unlink()
    write_file(state.vault / "index" / ".tmp-0123456789abcdef", b"half an index object")
    check = subprocess.run([*vault_exe(), "check"], env=state.env(), capture_output=True)
    assert check.returncode == 20, check
    return state


BUILDERS = {"pruned": build_pruned, "leftovers": build_leftovers, "damaged": build_damaged}


class States:
    """The base state, built once per module, and the derived ones, built on first use."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self.factory = factory
        self._states: dict[str, VaultState] = {"base": build_base(factory.mktemp("kill-base"))}
        self._calibrations: dict[str, syscall_kill.Traced] = {}

    def get(self, name: str) -> VaultState:
        if name not in self._states:
            self._states[name] = BUILDERS[name](self._states["base"], self.factory.mktemp(f"kill-{name}"))
        return self._states[name]

    def calibration(self, scenario: Scenario) -> syscall_kill.Traced:
        """The scenario's command run to completion under strace once, on a copy of its state."""
        if scenario.name not in self._calibrations:
            t = Trial(scenario, self.get(scenario.state), self.factory.mktemp(f"calibrate-{scenario.name}"))
            traced = syscall_kill.trace(t.argv, t.command_env, t.work / "strace.log", input=t.stdin)
            assert traced.returncode == 0, (scenario.name, traced.returncode, traced.stderr)
            assert not FORBIDDEN.search(traced.stderr), traced.stderr
            assert traced.kill_points(), scenario.name
            self._calibrations[scenario.name] = traced
        return self._calibrations[scenario.name]


@pytest.fixture(scope="module")
def states(tmp_path_factory: pytest.TempPathFactory) -> States:
    return States(tmp_path_factory)


# ------------------------------------------------------------------------------------------------- a trial


class Trial:
    """One command on a private copy of a state: runs the follow-up commands and checks what they say."""

    def __init__(self, scenario: Scenario, state: VaultState, work: Path) -> None:
        self.scenario = scenario
        self.work = work
        self.state = state.copy(work / "s")
        self.password = state.password  # what the follow-up commands use; a key scenario may change it
        self.new: dict[str, Path] = {}  # item → the content of versions the command adds (put)
        self._restores = 0
        scenario.prepare(self)
        self.argv = [*vault_exe(), *scenario.argv(self)]
        self.command_env = {**self.state.env(), **scenario.env(self)}
        self.stdin = scenario.stdin(self)

    def vault(self, *args: str, ok: tuple[int, ...] = (0,), password: str | None = None,
              env: dict[str, str] | None = None) -> Result:
        """A follow-up command: it must finish in time, never exit 11 (busy) or 1 (a bug), exit with one of
        ``ok``, and print no warning about replayed or vanished versions."""
        cli = VaultCli(self.state.vault, self.state.env(password or self.password))
        try:
            result = cli(*args, env=env, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"`vault {' '.join(args)}` hung (no exit within {TIMEOUT} s)") from None
        what = f"`vault {' '.join(args)}` exited {result.code}: {result.err.strip()}"
        assert result.code != 11, f"busy after the kill: {what}"
        assert result.code != 1, f"unexpected failure: {what}"
        assert result.code in ok, what
        assert not FORBIDDEN.search(result.err), f"a false alarm: {what}"
        return result

    def opens(self, password: str) -> bool:
        """Whether ``password`` opens the vault (`key list` takes no lock)."""
        return self.vault("key", "list", "--json", ok=(0, 12), password=password).code == 0

    def key_ids(self) -> set[str]:
        return {k["id"] for k in json.loads(self.vault("key", "list", "--json").out)}

    def check(self, ok: tuple[int, ...] = (0,)) -> Result:
        """`check --read-data` with the password in use, which must open the vault."""
        result = self.vault("check", "--read-data", ok=(*ok, 12))
        assert result.code != 12, f"the password in use no longer opens the vault: {result.err.strip()}"
        return result

    # -- versions ---------------------------------------------------------------------------------------------
    def verify(self, must: set[Version], maybe: set[Version], *, content: bool) -> set[Version]:
        """Every version in ``must`` is there; the others are in ``maybe`` or are new versions of an item the
        command adds (``self.new``), never one in ``gone``; with ``content``, every one there restores
        byte-identical to its reference. Returns the versions there."""
        listing = {i["name"]: i for i in json.loads(self.vault("ls", "--json").out)}
        known = must | maybe
        allowed = {item for item, _ in known} | set(self.new)
        assert set(listing) <= allowed, f"items that must not exist: {sorted(set(listing) - allowed)}"
        present: set[Version] = set()
        if content:
            probe = {v for v in known if v[0] in listing}  # a removed one back shows in the counts
            for item in self.new:
                if item in listing:
                    top = max((n for i, n in known if i == item), default=0)
                    probe |= {(item, n) for n in range(top + 1, listing[item]["latest_version"] + 1)}
            for version in sorted(probe):
                if self._restore(version):
                    present.add(version)
            for item, info in listing.items():
                count = sum(1 for i, _ in present if i == item)
                assert info["versions"] == count, (
                    f"{item} lists {info['versions']} version(s), {count} expected: a removed one is back, or one "
                    "that nobody made appeared")
        else:
            for item in listing:
                history = json.loads(self.vault("history", item, "--json").out)
                present |= {(item, h["version"]) for h in history}
        came_back = present & self.state.gone
        assert not came_back, f"removed earlier and back: {sorted(came_back)}"
        missing = must - present
        assert not missing, f"versions that must exist are missing: {sorted(missing)}"
        unexpected = {v for v in present - known if v[0] not in self.new}
        assert not unexpected, f"versions nobody made: {sorted(unexpected)}"
        return present

    def _restore(self, version: Version) -> bool:
        """Restore one version and compare it with its reference; False when it is not there (exit 4)."""
        item, number = version
        ref = self.state.versions.get(version) or self.new[item]
        if ref.is_dir():
            self._restores += 1
            dest = self.work / "restored" / f"{self._restores}"
            dest.parent.mkdir(exist_ok=True)
            got = self.vault("get", item, "--version", str(number), "-o", str(dest), ok=(0, 4))
            if got.code == 0:
                assert snapshot(dest) == snapshot(ref), f"{item} version {number} restores changed"
        else:
            got = self.vault("get", item, "--version", str(number), "-o", "-", ok=(0, 4))
            if got.code == 0:
                assert got.out == ref.read_bytes(), f"{item} version {number} restores changed"
        return got.code == 0


# ------------------------------------------------------------------------------------------------ commands


class Scenario:
    """One command under test. The defaults fit a command that changes no version and no key."""

    name: ClassVar[str]
    state: ClassVar[str] = "base"  # the VaultState it starts from (BUILDERS)
    ci: ClassVar[bool] = True  # in the normal suite's CI_TRIALS
    damaged: ClassVar[bool] = False  # the vault fails `check` before the command (only `repair` mends it)
    rewrites_data: ClassVar[bool] = False  # completing it rewrites packs or records: restores are checked again
    rerun_ok: ClassVar[tuple[int, ...]] = (0,)  # exit codes of the rerun that completes it

    def prepare(self, t: Trial) -> None:
        """Anything the command needs besides the vault (sources, a destination)."""

    def argv(self, t: Trial) -> list[str]:
        raise NotImplementedError

    def env(self, t: Trial) -> dict[str, str]:
        return {}

    def stdin(self, t: Trial) -> bytes:
        return b""

    def removes(self, t: Trial) -> set[Version]:
        """The versions the command removes: each may or may not be there after the kill, none after the rerun."""
        return set()

    # -- after the kill ---------------------------------------------------------------------------------------
    def after_kill(self, t: Trial, killed: bool) -> None:
        """The next commands: the vault opens (the password in use), `check --read-data` passes, every version
        that must exist restores byte-identical, and each one the command removes or adds is whole or absent."""
        t.check(ok=(0, 20) if self.damaged else (0,))
        if not self.damaged:
            must = set(t.state.versions) - self.removes(t)
            t.verify(must, self.removes(t), content=True)

    def complete(self, t: Trial) -> None:
        """Run the command again, to completion."""
        t.vault(*self.argv(t), ok=self.rerun_ok, env=self.env(t))

    def after_completion(self, t: Trial) -> None:
        """The end state: `check --read-data` passes and exactly the expected versions are there."""
        t.check()
        removed = self.removes(t)
        present = t.verify(set(t.state.versions) - removed, set(), content=self.rewrites_data)
        assert not present & removed


class Put(Scenario):
    name = "put"

    def prepare(self, t: Trial) -> None:
        docs = t.work / "src" / "docs"
        shutil.copytree(t.state.versions[("docs", 2)], docs, symlinks=True)
        write_file(docs / "a.txt", text_bytes(40_000, seed=101))
        write_file(docs / "f.bin", random_bytes(1_500_000, seed=102))
        write_file(t.work / "src" / "new.bin", random_bytes(2_000_000, seed=103))
        t.new = {"docs": docs, "new.bin": t.work / "src" / "new.bin"}

    def argv(self, t: Trial) -> list[str]:
        return ["put", str(t.work / "src" / "docs"), str(t.work / "src" / "new.bin")]

    def after_completion(self, t: Trial) -> None:
        t.check()
        present = t.verify(set(t.state.versions), set(), content=True)
        for item in t.new:  # the rerun stored each item once more, whatever the killed put did
            assert any(v[0] == item and v not in t.state.versions for v in present), item


class Get(Scenario):
    """A directory restore; the destination is checked as well: a file under its final name is complete, and
    after the rerun (--force) the destination holds exactly the tree, no temporary file left behind."""

    name = "get"
    item, version = "docs", 2

    def prepare(self, t: Trial) -> None:
        (t.work / "out").mkdir()

    def argv(self, t: Trial) -> list[str]:
        return ["get", self.item, "--version", str(self.version), "-o", str(t.work / "out")]

    def _reference(self, t: Trial) -> Path:
        return t.state.versions[(self.item, self.version)]

    def after_kill(self, t: Trial, killed: bool) -> None:
        super().after_kill(t, killed)
        ref, out = self._reference(t), t.work / "out" / Path(self.item).name
        if ref.is_dir():
            for path in out.rglob("*") if out.is_dir() else []:
                if path.is_file() and not path.is_symlink() and not TEMP_FILE.match(path.name):
                    rel = path.relative_to(out)
                    assert path.read_bytes() == (ref / rel).read_bytes(), f"{rel} is at its name but incomplete"
        elif out.exists():
            assert out.read_bytes() == ref.read_bytes(), f"{out.name} is at its name but incomplete"

    def complete(self, t: Trial) -> None:
        t.vault(*self.argv(t), "--force")

    def after_completion(self, t: Trial) -> None:
        super().after_completion(t)
        ref, out = self._reference(t), t.work / "out"
        leftovers = sorted(p.name for p in out.rglob("*") if TEMP_FILE.match(p.name))
        assert not leftovers, f"temporary files left behind by the killed get: {leftovers}"
        name = Path(self.item).name
        assert [p.name for p in out.iterdir()] == [name]
        if ref.is_dir():
            assert snapshot(out / name) == snapshot(ref)
        else:
            assert (out / name).read_bytes() == ref.read_bytes()


class GetFile(Get):
    name = "get-file"
    ci = False
    item, version = "a.bin", 3


class Rm(Scenario):
    name = "rm"
    rerun_ok = (0, 4)  # 4: the killed rm had removed every version already

    def argv(self, t: Trial) -> list[str]:
        return ["rm", "a.bin"]

    def removes(self, t: Trial) -> set[Version]:
        return {v for v in t.state.versions if v[0] == "a.bin"}


class RmVersion(Scenario):
    name = "rm-version"
    ci = False
    rerun_ok = (0, 4)

    def argv(self, t: Trial) -> list[str]:
        return ["rm", "docs", "--version", "1"]

    def removes(self, t: Trial) -> set[Version]:
        return {("docs", 1)}


class Forget(Scenario):
    name = "forget"

    def argv(self, t: Trial) -> list[str]:
        return ["forget", "--keep-last", "1"]

    def removes(self, t: Trial) -> set[Version]:
        return {("docs", 1), ("a.bin", 2)}


class Prune(Scenario):
    name = "prune"
    state = "pruned"
    rewrites_data = True

    def argv(self, t: Trial) -> list[str]:
        return ["prune"]


class Repair(Scenario):
    name = "repair"
    state = "leftovers"
    rewrites_data = True

    def argv(self, t: Trial) -> list[str]:
        return ["repair"]


class RepairDamaged(Repair):
    """Only a completed repair mends this vault: after the kill `check` may still fail (exit 20, never 11 or
    1), and the versions are checked once the rerun completed."""

    name = "repair-damaged"
    state = "damaged"
    damaged = True


class Passwd(Scenario):
    """After the kill the old password or the new one opens (the slot is rewritten in one rename), never
    neither; the other key is untouched."""

    name = "passwd"

    def argv(self, t: Trial) -> list[str]:
        return ["passwd"]

    def env(self, t: Trial) -> dict[str, str]:
        return {"VAULT_NEW_PASSWORD": NEW_PASSWORD}

    def after_kill(self, t: Trial, killed: bool) -> None:
        opening = [pw for pw in (PASSWORD, NEW_PASSWORD) if t.opens(pw)]
        assert opening, "neither the old password nor the new one opens the vault"
        t.password = opening[0]
        super().after_kill(t, killed)

    def complete(self, t: Trial) -> None:
        if t.password == PASSWORD:
            t.vault("passwd", env=self.env(t))
        t.password = NEW_PASSWORD

    def after_completion(self, t: Trial) -> None:
        assert not t.opens(PASSWORD), "the old password still opens after passwd"
        assert t.opens(SECOND_PASSWORD), "passwd changed another key"
        super().after_completion(t)


class KeyAdd(Scenario):
    name = "key add"

    def argv(self, t: Trial) -> list[str]:
        return ["key", "add"]

    def env(self, t: Trial) -> dict[str, str]:
        return {"VAULT_NEW_PASSWORD": THIRD_PASSWORD}

    def complete(self, t: Trial) -> None:
        if not t.opens(THIRD_PASSWORD):
            t.vault("key", "add", env=self.env(t))

    def after_completion(self, t: Trial) -> None:
        assert t.opens(THIRD_PASSWORD) and t.opens(SECOND_PASSWORD)
        assert len(t.key_ids()) == 3
        super().after_completion(t)


class KeyRemove(Scenario):
    name = "key remove"

    def argv(self, t: Trial) -> list[str]:
        return ["key", "remove", t.state.key_ids[SECOND_PASSWORD]]

    def complete(self, t: Trial) -> None:
        if t.state.key_ids[SECOND_PASSWORD] in t.key_ids():
            t.vault(*self.argv(t))

    def after_completion(self, t: Trial) -> None:
        assert not t.opens(SECOND_PASSWORD), "the removed key still opens"
        assert t.key_ids() == {t.state.key_ids[PASSWORD]}
        super().after_completion(t)


class Rekey(Scenario):
    """The password in use opens whatever the moment; the rerun removes the other key (it opens only the old
    master key)."""

    name = "rekey"

    def argv(self, t: Trial) -> list[str]:
        return ["rekey"]

    def after_completion(self, t: Trial) -> None:
        assert not t.opens(SECOND_PASSWORD), "the other key survived a completed rekey"
        super().after_completion(t)


class RekeyReencrypt(Rekey):
    name = "rekey --reencrypt"
    rewrites_data = True

    def argv(self, t: Trial) -> list[str]:
        return ["rekey", "--reencrypt"]

    def after_completion(self, t: Trial) -> None:
        super().after_completion(t)
        info = json.loads(t.vault("info", "--json").out)
        assert info["older_key_generations"] == [], info


SCENARIOS: list[Scenario] = [
    Put(), Get(), GetFile(), Rm(), RmVersion(), Forget(), Prune(), Repair(), RepairDamaged(), Passwd(), KeyAdd(),
    KeyRemove(), Rekey(), RekeyReencrypt(),
]  # fmt: skip


# ------------------------------------------------------------------------------------------------- trials


@dataclass
class Outcome:
    scenario: str
    trial: int
    trials: int
    point: str = ""
    call: str = ""
    killed: bool = False
    error: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


def pick_point(traced: syscall_kill.Traced, scenario: str, trial: int, trials: int) -> syscall_kill.Call:
    """Trial ``trial`` of ``trials``: a seeded call in the ``trial``-th ``trials``-th of the calibration's."""
    points = traced.kill_points()
    u = (trial + random.Random(f"{SEED}/{scenario}/{trial}/{trials}").random()) / trials
    return points[min(int(u * len(points)), len(points) - 1)]


@contextlib.contextmanager
def _reported(outcome: Outcome) -> Iterator[None]:
    try:
        yield
    except BaseException as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"[:2000]
        raise
    finally:
        if REPORT:
            with open(REPORT, "a") as f:
                f.write(json.dumps(outcome.__dict__) + "\n")


def run_trial(states: States, scenario: Scenario, trial: int, trials: int, work: Path) -> None:
    traced = states.calibration(scenario)
    call = pick_point(traced, scenario.name, trial, trials)
    point = KILL_AT or call.point
    outcome = Outcome(scenario.name, trial, trials, point, call.describe())
    with _reported(outcome):
        t = Trial(scenario, states.get(scenario.state), work)
        killed = syscall_kill.run_killed(t.argv, t.command_env, point, input=t.stdin)
        outcome.killed = killed.returncode == -signal.SIGKILL
        assert outcome.killed or killed.returncode == 0, killed
        by_hand = " ".join([*syscall_kill.strace_command(point), "vault", *t.argv[len(vault_exe()):]])
        where = (f"`vault {scenario.name}` killed at {call.describe()} (of {len(traced.kill_points())} kill points; "
                 f"by hand: {by_hand})")
        if not outcome.killed:
            where = f"`vault {scenario.name}` finished before {point}"
        try:
            scenario.after_kill(t, outcome.killed)
            scenario.complete(t)
            scenario.after_completion(t)
        except AssertionError as exc:
            raise AssertionError(f"{where}: {exc}") from exc


def _cases(trials: int, ci_only: bool) -> list[object]:
    return [pytest.param(s, i, trials, id=f"{s.name.replace(' --', '-').replace(' ', '-')}-{i}")
            for s in SCENARIOS if s.ci or not ci_only for i in range(trials)]


@pytest.mark.parametrize(("scenario", "trial", "trials"), _cases(CI_TRIALS, ci_only=True))
def test_kill_trial(states: States, scenario: Scenario, trial: int, trials: int, tmp_path: Path) -> None:
    run_trial(states, scenario, trial, trials, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(("scenario", "trial", "trials"), _cases(SLOW_TRIALS, ci_only=False))
def test_kill_trial_soak(states: States, scenario: Scenario, trial: int, trials: int, tmp_path: Path) -> None:
    run_trial(states, scenario, trial, trials, tmp_path)


# ------------------------------------------------------------------------------------- issue 21, as reported


def test_rm_killed_between_record_removals_is_not_taken_for_a_replay(vault: VaultCli, tmp_path: Path) -> None:
    """Issue 21's reproduction: `rm` of an item with 24 versions, killed on entry to its second unlink (the first
    record is gone, 23 are left). The next commands must take the vault for what it is, a removal interrupted on
    this machine: no "replayed" warning from `check`, none after `repair`, and the rerun of `rm` completes."""
    src = tmp_path / "s.bin"
    for i in range(24):
        src.write_bytes(random_bytes(65536, seed=1000 + i))
        vault("-q", "put", str(src), check=0)
    records = vault.vault_path / "versions"
    assert len(list(records.iterdir())) == 24
    # LocalBackend.remove is os.unlink: the unlink system call (unlinkat where a C library has no unlink).
    killed = subprocess.run(
        [syscall_kill.STRACE or "strace", "-f", "-o", "/dev/null", "-e", "trace=unlink,unlinkat",
         "-e", "inject=unlink,unlinkat:signal=KILL:when=2", *vault.exe, "rm", "s.bin"],
        env=vault.env, capture_output=True, timeout=120,
    )
    assert killed.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL), killed
    assert len([p for p in records.iterdir() if not p.name.startswith(".")]) == 23  # killed between two removals

    for args in (["check"], ["repair"], ["check", "--read-data"]):
        result = vault(*args)
        assert result.code == 0, (args, result.code, result.err)
        assert not FORBIDDEN.search(result.err), (args, result.err)
    rerun = vault("rm", "s.bin")
    assert rerun.code in (0, 4), rerun.err  # 4: a roll-forward removed every version already
    assert "s.bin" not in [i["name"] for i in json.loads(vault("ls", "--json", check=0).out)]
    final = vault("check", "--read-data")
    assert final.code == 0 and not FORBIDDEN.search(final.err), final.err
