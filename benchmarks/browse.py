#!/usr/bin/env python3
"""Measure the browsing commands (mount, diff, find, tar, copy) and write benchmarks/results/browse.json.

    python benchmarks/gen_data.py --only mixed,stdlib     # once: benchmarks/data/{mixed.bin,stdlib/}
    python benchmarks/browse.py                           # every case, 3 timed runs each (medians)
    python benchmarks/browse.py --cases diff,find --runs 5

Cases (docs/performance.md, "Browsing, comparing and copying", reports them):

- ``mount-read``: sequential read (``cat``) of the 1 GiB mixed file through `vault mount`, against
  ``vault get -o -`` of the same file and, where it works, through `restic mount`. Every run mounts afresh,
  so neither the kernel's page cache of the mount nor vault's chunk cache carries over; only the read is timed.
- ``mount-ls``: ``ls -lR`` of the stdlib tree (7,733 files) through a fresh mount (and through `restic mount`).
- ``diff``: `vault diff` of two versions of a 100,000-file tree that differ in one file; `vault history` of the
  same item (opening the vault, reading its catalog) is the baseline it is compared with.
- ``find``: `vault find` over 100 versions of the stdlib tree (each version changes one file), two patterns.
- ``copy``: `vault copy` of the 1 GiB mixed item into a new local vault, against `restic copy` of a
  snapshot of the same file into a new local repository.
- ``tar``: `tar -c | vault put - --tar` of the stdlib tree against `vault put` of the tree (fresh vault each run).

Wall time around each child process, CPU (user+sys) and peak RSS from ``os.wait4`` (through a mount: the
reader's CPU plus the mount server's, and the server's peak RSS). The machine is shared, so each case runs in
rounds: every alternative once per round, the order reversed every other round, medians; the 1-minute load
average before every run is recorded. The vaults use the default KDF, as a user's would (opening one costs an
argon2id run).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
WORK = DATA / "browse-work"
RESULTS = HERE / "results" / "browse.json"
VAULT = str(Path(sys.executable).with_name("vault"))
PASSWORD = "benchmark password"


def env_for(home: Path, vault: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "RESTIC_"))}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / "cache"), XDG_STATE_HOME=str(home / "state"),
               VAULT_PATH=str(vault), VAULT_PASSWORD=PASSWORD, RESTIC_PASSWORD=PASSWORD)
    return env


def run(cmd: list[str] | str, env: dict[str, str], *, shell: bool = False, quiet: bool = True) -> dict[str, float]:
    """Run one command to completion (it must succeed); its wall time, CPU (user+sys, with its children: a
    shell pipeline counts whole) and peak RSS (the largest process) from ``os.wait4``, and the load before."""
    load = os.getloadavg()[0]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, shell=shell, stdout=subprocess.DEVNULL if quiet else None,
                            stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, ru = os.wait4(proc.pid, 0)
    elapsed = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} exited {proc.returncode}: {err.decode()[-2000:]}")
    return {"wall": elapsed, "cpu": ru.ru_utime + ru.ru_stime, "rss_mib": ru.ru_maxrss / 1024, "load": load}


def _proc_cpu(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def _proc_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def through(server: subprocess.Popen[bytes], cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    """``cmd`` (a reader of a mount) timed; CPU is the reader's plus what the mount's server process used
    meanwhile, peak RSS the server's (VmHWM since it started)."""
    c0 = _proc_cpu(server.pid)
    sample = run(cmd, env)
    sample["cpu"] += _proc_cpu(server.pid) - c0
    sample["rss_mib"] = max(sample["rss_mib"], _proc_hwm_mib(server.pid))
    return sample


def summary(samples: list[dict[str, float]]) -> dict[str, object]:
    walls = [s["wall"] for s in samples]
    return {"median_s": round(statistics.median(walls), 3), "runs_s": [round(t, 3) for t in walls],
            "cpu_s": round(statistics.median(s["cpu"] for s in samples), 3),
            "peak_rss_mib": round(max(s["rss_mib"] for s in samples), 1),
            "loads": [round(s["load"], 2) for s in samples],
            "load_before": round(statistics.median(s["load"] for s in samples), 2)}


def rounds(runs: int, fns: dict[str, Callable[[], dict[str, float]]]) -> dict[str, object]:
    """Every alternative once per round, the order reversed every other round, so that all meet the same load
    on a shared machine; medians over the rounds. An alternative that fails is reported, not fatal."""
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in fns}
    failed: dict[str, str] = {}
    names = list(fns)
    for rnd in range(runs):
        for name in (names if rnd % 2 == 0 else names[::-1]):
            if name in failed:
                continue
            try:
                samples[name].append(fns[name]())
            except RuntimeError as exc:
                failed[name] = f"failed: {exc}"
    return {name: (failed[name] if name in failed else summary(samples[name])) for name in names}


def fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


@contextmanager
def mounted(cmd: list[str], mountpoint: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    fresh(mountpoint)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not os.path.ismount(mountpoint):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{cmd} did not mount: {proc.stderr.read().decode() if proc.stderr else ''}")
        time.sleep(0.05)
    try:
        yield proc
    finally:
        subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], capture_output=True)
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def vault_with(name: str, *put_args: str) -> tuple[dict[str, str], Path]:
    """A vault under WORK/name holding what ``put_args`` stores (kept between runs of the script)."""
    base = WORK / name
    env = env_for(base / "home", base / "vault")
    if not (base / "ready").exists():
        fresh(base)
        run([VAULT, "init"], env)
        run([VAULT, "put", *put_args], env)
        (base / "ready").write_text("")
    return env, base


def restic_with(name: str, *paths: str) -> tuple[dict[str, str], Path] | None:
    if shutil.which("restic") is None:
        return None
    base = WORK / name
    env = env_for(base / "home", base / "vault")
    repo = base / "restic"
    env["RESTIC_REPOSITORY"] = str(repo)
    if not (base / "restic-ready").exists():
        if repo.exists():
            shutil.rmtree(repo)
        base.mkdir(parents=True, exist_ok=True)
        run(["restic", "init"], env)
        run(["restic", "backup", *paths], env)
        (base / "restic-ready").write_text("")
    return env, base


# ------------------------------------------------------------------------------------------------ cases


def case_mount_read(runs: int) -> dict[str, object]:
    mixed = DATA / "mixed.bin"
    env, base = vault_with("mixed", str(mixed))
    mp = base / "mnt"
    out: dict[str, object] = {"bytes": mixed.stat().st_size}

    def through_mount() -> dict[str, float]:
        with mounted([VAULT, "mount", str(mp)], mp, env) as server:
            return through(server, ["cat", str(mp / "mixed.bin" / "latest")], env)

    fns = {"vault get -o -": lambda: run(f"{VAULT} get mixed.bin -o - > /dev/null", env, shell=True),
           "cat through vault mount": through_mount}
    restic = restic_with("mixed", str(mixed))
    if restic is not None:
        renv, rbase = restic
        rmp = rbase / "rmnt"

        def through_restic() -> dict[str, float]:
            with mounted(["restic", "mount", str(rmp)], rmp, renv) as server:
                return through(server, ["cat", str(rmp / "snapshots" / "latest") + str(mixed)], renv)

        fns["cat through restic mount"] = through_restic
    return out | rounds(runs, fns)


def case_mount_ls(runs: int) -> dict[str, object]:
    tree = DATA / "stdlib"
    env, base = vault_with("stdlib", str(tree))
    mp = base / "mnt"
    out: dict[str, object] = {"files": sum(1 for p in tree.rglob("*") if p.is_file())}

    def through_mount() -> dict[str, float]:
        with mounted([VAULT, "mount", str(mp)], mp, env) as server:
            return through(server, ["ls", "-lR", str(mp / "stdlib" / "latest") + "/"], env)

    fns = {"ls -lR of the original": lambda: run(["ls", "-lR", str(tree)], env),
           "ls -lR through vault mount": through_mount}
    restic = restic_with("stdlib", str(tree))
    if restic is not None:
        renv, rbase = restic
        rmp = rbase / "rmnt"

        def through_restic() -> dict[str, float]:
            with mounted(["restic", "mount", str(rmp)], rmp, renv) as server:
                return through(server, ["ls", "-lR", str(rmp / "snapshots" / "latest") + str(tree) + "/"], renv)

        fns["ls -lR through restic mount"] = through_restic
    return out | rounds(runs, fns)


def _many_files(root: Path, count: int) -> None:
    for i in range(count):
        d = root / f"d{i // 1000:03d}" / f"e{(i // 100) % 10}"
        if i % 100 == 0:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:06d}.txt").write_bytes(b"file %d\n" % i)


def case_diff(runs: int) -> dict[str, object]:
    base = WORK / "many"
    env = env_for(base / "home", base / "vault")
    tree = base / "many"
    if not (base / "ready").exists():
        fresh(base)
        _many_files(tree, 100_000)
        run([VAULT, "init"], env)
        run([VAULT, "put", str(tree)], env)
        (tree / "d050" / "e5" / "f050500.txt").write_bytes(b"changed\n")
        run([VAULT, "put", str(tree)], env)
        (base / "ready").write_text("")
    out: dict[str, object] = {"files": 100_000}
    return out | rounds(runs, {
        "vault history (open + catalog)": lambda: run([VAULT, "history", "many"], env),
        "vault diff": lambda: run([VAULT, "diff", "many"], env),
        "vault diff --json": lambda: run([VAULT, "diff", "many", "--json"], env)})


def case_find(runs: int) -> dict[str, object]:
    tree = DATA / "stdlib"
    base = WORK / "versions"
    env = env_for(base / "home", base / "vault")
    if not (base / "ready").exists():
        fresh(base)
        copy = base / "stdlib"
        shutil.copytree(tree, copy)
        run([VAULT, "init"], env)
        files = sorted(p for p in copy.rglob("*.py"))
        for i in range(100):
            if i:
                target = files[(i * 37) % len(files)]
                target.write_bytes(target.read_bytes() + b"\n# version %d\n" % i)
            run([VAULT, "put", str(copy)], env)
        (base / "ready").write_text("")
    out: dict[str, object] = {"versions": 100, "files_per_version": 7733}
    return out | rounds(runs, {
        "vault history (open + catalog)": lambda: run([VAULT, "history", "stdlib"], env),
        "vault find os.py": lambda: run([VAULT, "find", "os.py"], env),
        "vault find '*.py' --json": lambda: run([VAULT, "find", "*.py", "--json"], env)})


def case_copy(runs: int) -> dict[str, object]:
    mixed = DATA / "mixed.bin"
    env, base = vault_with("mixed", str(mixed))
    dest = base / "copy-dest"
    out: dict[str, object] = {"bytes": mixed.stat().st_size}

    def vault_copy() -> dict[str, float]:
        if dest.exists():
            shutil.rmtree(dest)
        denv = dict(env, VAULT_PATH=str(dest))
        run([VAULT, "init"], denv)
        subprocess.run("sync", check=True)
        return run([VAULT, "copy", "--to", str(dest)], dict(env, VAULT_TO_PASSWORD=PASSWORD))

    fns = {"vault copy": vault_copy}
    restic = restic_with("mixed", str(mixed))
    if restic is not None:
        renv, rbase = restic
        rdest = rbase / "restic-copy-dest"

        def restic_copy() -> dict[str, float]:
            if rdest.exists():
                shutil.rmtree(rdest)
            # `restic init` (0.14) refuses RESTIC_FROM_REPOSITORY in its environment unless asked to copy the
            # chunker parameters: the destination is initialised without it, as vault's is.
            run(["restic", "init"], dict(renv, RESTIC_REPOSITORY=str(rdest)))
            cenv = dict(renv, RESTIC_REPOSITORY=str(rdest), RESTIC_FROM_REPOSITORY=renv["RESTIC_REPOSITORY"],
                        RESTIC_FROM_PASSWORD=PASSWORD)
            subprocess.run("sync", check=True)
            return run(["restic", "copy"], cenv)

        fns["restic copy"] = restic_copy
    return out | rounds(runs, fns)


def case_tar(runs: int) -> dict[str, object]:
    tree = DATA / "stdlib"
    base = WORK / "tar"
    out: dict[str, object] = {"files": 7733, "bytes": sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())}

    def store(cmd: str) -> dict[str, float]:
        fresh(base)
        env = env_for(base / "home", base / "vault")
        run([VAULT, "init"], env)
        subprocess.run("sync", check=True)
        return run(cmd, env, shell=True)

    return out | rounds(runs, {
        "vault put DIR": lambda: store(f"{VAULT} put {tree}"),
        "tar -c | vault put - --tar": lambda: store(
            f"tar -c -C {tree.parent} {tree.name} | {VAULT} put - --tar --name stdlib")})


CASES = {"mount-read": case_mount_read, "mount-ls": case_mount_ls, "diff": case_diff, "find": case_find,
         "copy": case_copy, "tar": case_tar}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cases", default=",".join(CASES))
    args = ap.parse_args(argv)
    results: dict[str, object] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["machine"] = {"cpus": os.cpu_count(), "uname": " ".join(os.uname())}
    for name in args.cases.split(","):
        started = time.monotonic()
        print(f"{name} ...", file=sys.stderr, flush=True)
        results[name] = CASES[name](args.runs) | {
            "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load_after": round(os.getloadavg()[0], 2), "case_s": round(time.monotonic() - started, 1)}
        print(json.dumps(results[name], indent=2), file=sys.stderr, flush=True)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
