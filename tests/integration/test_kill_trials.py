"""SIGKILL at random instants of a real `vault put`, many times over (issue: "Never lose data").

Each seeded trial adds a file to a directory, starts `vault put` of the directory, kills it after a random
delay (anywhere from interpreter start-up to the commit), then proves the vault is still valid: `check`
passes, the latest committed version restores exactly as it was committed, and rerunning the put lands. At
the end every committed version restores byte-identical. Delays are drawn from a fixed seed, so a failure
is reproducible; VAULT_KILL_TRIALS raises the count for a longer soak.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

from helpers import VaultCli

TRIALS = int(os.environ.get("VAULT_KILL_TRIALS", "8"))  # the soak: VAULT_KILL_TRIALS=50 -m slow too
SEED = 20261125


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _put_killed(vault: VaultCli, src: Path, delay: float) -> int:
    proc = subprocess.Popen(
        [*vault.exe, "put", str(src)], env=vault.env,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    return proc.wait()


def test_random_sigkill_trials_never_damage_the_vault(vault: VaultCli, vault_dir: Path, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    src = tmp_path / "docs"
    src.mkdir()
    out = tmp_path / "out"
    committed: dict[int, dict[str, bytes]] = {}  # version → the tree it holds
    killed_mid_put = 0
    # Kill anywhere within a put's lifetime: the delay is drawn up to the duration of the last full put.
    started = time.monotonic()
    vault("put", str(src), "--name", "calibration", check=0)
    duration = time.monotonic() - started
    for trial in range(TRIALS):
        (src / f"file-{trial:02d}.bin").write_bytes(rng.randbytes(rng.choice([1, 64, 4096, 300_000, 3 << 20])))
        expected = _tree_bytes(src)
        code = _put_killed(vault, src, rng.uniform(0.0, duration))
        killed_mid_put += code == -signal.SIGKILL

        check = vault("check")
        assert check.code == 0, (trial, check.err)
        history = json.loads(vault("history", "docs", "--json").out or b"[]")
        versions = [h["version"] for h in history]
        assert len(versions) == len(set(versions)), versions
        new = [v for v in versions if v not in committed]
        assert len(new) <= 1, (trial, versions)  # the killed put landed whole, or not at all
        if new:
            committed[new[0]] = expected
        if versions:
            latest = max(versions)
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()  # an existing directory: the item is restored inside it, as out/docs
            vault("get", "docs", "--version", str(latest), "-o", str(out), check=0)
            assert _tree_bytes(out / "docs") == committed[latest], (trial, latest)

        started = time.monotonic()
        rerun = json.loads(vault("put", str(src), "--json", check=0).out)
        duration = time.monotonic() - started
        committed[rerun[0]["version"]] = expected

    assert killed_mid_put >= TRIALS * 3 // 4, killed_mid_put  # the kills really interrupted puts
    vault("check", "--read-data", check=0)
    for version, tree in committed.items():
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        vault("get", "docs", "--version", str(version), "-o", str(out), check=0)
        assert _tree_bytes(out / "docs") == tree, version
