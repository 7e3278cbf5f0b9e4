#!/usr/bin/env python3
"""Put throughput with a write-only key against a full key (issue 17: goal at least 0.9x), as whole `vault` processes.

    python benchmarks/gen_data.py                        # once: benchmarks/data/{mixed.bin,stdlib/}
    python benchmarks/write_only.py                      # 5 rounds, medians -> benchmarks/results/write-only.json
    python benchmarks/write_only.py --rounds 1 --sets mixed

Each round runs every case once, full key and write-only key alternating, so both meet the same load on a shared
machine. Cases, per data set (the 1 GiB ``mixed.bin``, the 7,700-file ``stdlib/`` tree):

- ``put``: a first put into a vault that holds nothing of the data set (a fresh vault per run: `init`, and for
  the write-only key `key add --write-only`, untimed, with the same cheap KDF for both keys so that unlocking
  costs the same), ``--threads 2``;
- ``re-put``: the same put again right after, nothing changed (the incremental case: a full key reads the item's
  previous version from its cache, a write-only key from its local record).

Wall time around each process, CPU (user+sys) and peak RSS from ``os.wait4`` (run.py's ``measure``), and the
1-minute load average just before it (the machine may be shared); MB/s is
input bytes / median wall time. The ratio printed is write-only MB/s / full MB/s (≥ 1: no slower).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import DATA, discard, measure, run_quiet, tree_stats  # noqa: E402

WORK = HERE / "work" / "write-only"
RESULTS = HERE / "results" / "write-only.json"
FULL_PW, WO_PW = "benchmark-full-password", "benchmark-write-only-password"
CHEAP = ["--kdf-memory", "8", "--kdf-time", "1", "--kdf-parallelism", "1"]


def _vault() -> list[str]:
    exe = Path(sys.executable).with_name("vault")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "vault"]


def _env(home: Path, password: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "AWS_"))}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / "cache"), XDG_STATE_HOME=str(home / "state"),
               VAULT_PASSWORD=password, VAULT_NEW_PASSWORD=WO_PW)
    return env


def run_case(kind: str, source: Path, threads: int, log: Path) -> tuple[dict[str, float], dict[str, float]]:
    """One fresh vault; a put then a re-put of ``source`` with the ``kind`` key. Returns their samples."""
    repo, home = WORK / f"vault-{kind}", WORK / f"home-{kind}"
    discard(repo)
    discard(home)
    v = [*_vault(), "--vault", str(repo), "-q"]
    full_env = _env(home, FULL_PW)
    run_quiet([*v, "init", *CHEAP], full_env, WORK, log)
    if kind == "write-only":
        run_quiet([*v, "key", "add", "--write-only"], full_env, WORK, log)
    env = _env(home, WO_PW if kind == "write-only" else FULL_PW)
    os.sync()
    out = []
    for _ in ("put", "re-put"):
        load = os.getloadavg()[0]
        s = measure([*v, "--threads", str(threads), "put", str(source)], env, source.parent, log)
        out.append({"wall": s.wall, "cpu": s.cpu, "rss_mib": s.maxrss_kib / 1024, "foreign_cores": s.foreign_cores,
                    "load": load})
        os.sync()
    return out[0], out[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sets", default="mixed,stdlib")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    log = WORK / "log.txt"
    sources = {"mixed": DATA / "mixed.bin", "stdlib": DATA / "stdlib"}
    samples: dict[str, list[dict[str, float]]] = {}
    sizes = {}
    for name in args.sets.split(","):
        source = sources[name]
        if not source.exists():
            sys.exit(f"{source} is missing: run benchmarks/gen_data.py first")
        sizes[name] = source.stat().st_size if source.is_file() else tree_stats(source)[0]
        for _ in (1, 2):  # warm the page cache, 1 MiB at a time: a process that once held the whole 1 GiB file
            for p in ([source] if source.is_file() else source.rglob("*")):  # would pass its peak RSS on to
                if p.is_file():  # every child at fork+exec (ru_maxrss), and every put would show 1 GiB
                    with open(p, "rb", buffering=0) as fh:
                        while fh.read(1 << 20):
                            pass
    for rnd in range(args.rounds):
        for name in args.sets.split(","):
            for kind in (("full", "write-only") if rnd % 2 == 0 else ("write-only", "full")):
                put, reput = run_case(kind, sources[name], args.threads, log)
                samples.setdefault(f"{name} put {kind}", []).append(put)
                samples.setdefault(f"{name} re-put {kind}", []).append(reput)
                print(f"round {rnd + 1} {name} {kind}: put {put['wall']:.2f} s, re-put {reput['wall']:.2f} s",
                      flush=True)
    rows = {}
    for case, runs in samples.items():
        name = case.split()[0]
        wall = statistics.median(r["wall"] for r in runs)
        rows[case] = {
            "runs": len(runs), "wall_s": round(wall, 3), "mb_s": round(sizes[name] / wall / 1e6, 1),
            "cpu_s_per_gib": round(statistics.median(r["cpu"] for r in runs) / (sizes[name] / 2**30), 2),
            "peak_rss_mib": round(max(r["rss_mib"] for r in runs), 1),
            "foreign_cores": round(statistics.median(r["foreign_cores"] for r in runs), 2),
            "walls": [round(r["wall"], 3) for r in runs],
            "cpus": [round(r["cpu"], 3) for r in runs],
            "loads": [round(r["load"], 2) for r in runs],
            "load_median": round(statistics.median(r["load"] for r in runs), 2),
        }
    ratios = {}
    for name in args.sets.split(","):
        for what in ("put", "re-put"):
            full, wo = rows[f"{name} {what} full"], rows[f"{name} {what} write-only"]
            ratios[f"{name} {what}"] = round(wo["mb_s"] / full["mb_s"], 3)
    doc = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rounds": args.rounds,
           "threads": args.threads, "sizes": sizes, "cases": rows, "write_only_vs_full": ratios}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    print("\n| case | key | MB/s | wall s (median) | CPU-s/GiB | peak RSS MiB | load (median) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for case, r in rows.items():
        name, what, kind = case.split()
        cells = [f"{name} {what}", kind, r["mb_s"], r["wall_s"], r["cpu_s_per_gib"], r["peak_rss_mib"],
                 r["load_median"]]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    print("\nwrite-only / full:", json.dumps(ratios))
    return 0


if __name__ == "__main__":
    sys.exit(main())
