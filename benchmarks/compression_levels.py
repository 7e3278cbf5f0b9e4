#!/usr/bin/env python3
"""Which zstd level should `vault put` use by default? Stored bytes, speed and CPU per level and data set.

    python benchmarks/gen_data.py                       # once
    python benchmarks/compression_levels.py             # levels 1,2,3,4,6 on mixed, random, stdlib; 3 rounds
    python benchmarks/compression_levels.py --levels 1,3 --sets mixed --runs 1

Each measurement is a whole `vault --threads 2 put --compression LEVEL DATA` into a fresh local vault (made
untimed with ``vault init``), timed as benchmarks/run.py times everything (wall, user+sys CPU and peak RSS
from ``wait4``); stored bytes are ``stored_bytes`` of ``vault info --json`` (the packs: compressed, sealed
chunks plus pack headers). Every (level, data set) runs once per round, rounds repeat (``--runs``), medians
are reported: the machine is shared and its load moves, and a round puts every level under the same load.

The rule of issue 19: keep level 3 unless a level stores at most 1% more bytes than level 3 on every data set
and is faster (less CPU per GiB, and a median wall time no longer) on every data set. The script prints the
table and the verdict; results go to benchmarks/results/compression-levels.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import run as R  # noqa: E402

RESULTS = HERE / "results" / "compression-levels.json"
GIB = 1 << 30
DEFAULT = 3
MAX_EXTRA_BYTES = 0.01


def stored_bytes(vault: str, repo: Path, env: dict[str, str]) -> int:
    out = subprocess.run([vault, "--vault", str(repo), "-q", "info", "--json"], env=env, capture_output=True,
                         check=True, text=True).stdout
    return int(json.loads(out)["stored_bytes"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--levels", default="1,2,3,4,6")
    ap.add_argument("--sets", default="mixed,random,stdlib")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", type=Path, default=R.DATA)
    ap.add_argument("--work", type=Path, default=R.WORK)
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    if DEFAULT not in levels:
        levels.append(DEFAULT)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    log = work / "compression-commands.log"
    vault = str(R.REPO / ".venv" / "bin" / "vault")
    env = dict(R.os.environ, VAULT_PASSWORD=R.PASSWORD, VAULT_LOG_DIR=str(work / "vault-logs"), LC_ALL="C.UTF-8")
    for var in ("VAULT_PATH", "VAULT_THREADS"):
        env.pop(var, None)

    sets = []
    for name in args.sets.split(","):
        path = args.data / ("stdlib" if name == "stdlib" else f"{name}.bin")
        if not path.exists():
            print(f"{name}: {path} missing (run benchmarks/gen_data.py)", file=sys.stderr)
            continue
        nbytes = R.tree_stats(path)[0] if path.is_dir() else path.stat().st_size
        sets.append((name, path, nbytes))

    started = time.time()
    samples: dict[tuple[str, int], list[dict[str, float]]] = {}
    repo = work / "vault-levels"
    for r in range(args.runs):
        for name, path, _nbytes in sets:
            for level in levels:
                R.discard(repo)
                R.run_quiet([vault, "--vault", str(repo), "-q", "init"], env, work, log)
                R.os.sync()
                s = R.measure([vault, "--vault", str(repo), "-q", "--threads", str(args.threads), "put",
                               "--compression", str(level), path.name], env, path.parent, log)
                stored = stored_bytes(vault, repo, env)
                samples.setdefault((name, level), []).append(
                    {"wall": s.wall, "cpu": s.cpu, "rss_mib": s.maxrss_kib / 1024, "stored": stored,
                     "load": R.os.getloadavg()[0]})
                print(f"  round {r + 1} {name:7s} level {level}: {s.wall:6.2f} s, {s.cpu:6.2f} CPU s, "
                      f"stored {stored:,}", flush=True)
        R.empty_trash(work)
    R.rm(repo)

    rows = []
    for name, _path, nbytes in sets:
        base = samples[(name, DEFAULT)]
        base_stored = statistics.median(x["stored"] for x in base)
        base_wall = statistics.median(x["wall"] for x in base)
        base_cpu = statistics.median(x["cpu"] for x in base)
        for level in levels:
            xs = samples[(name, level)]
            wall = statistics.median(x["wall"] for x in xs)
            cpu = statistics.median(x["cpu"] for x in xs)
            stored = statistics.median(x["stored"] for x in xs)
            rows.append({
                "dataset": name, "level": level, "bytes": nbytes, "stored": stored,
                "stored_vs_3": stored / base_stored - 1, "wall": wall, "mbps": nbytes / wall / 1e6,
                "cpu": cpu, "cpu_per_gib": cpu / (nbytes / GIB), "wall_vs_3": wall / base_wall,
                "cpu_vs_3": cpu / base_cpu, "rss_mib": max(x["rss_mib"] for x in xs),
                "load": statistics.median(x["load"] for x in xs),
            })
    verdicts = {}
    for level in levels:
        mine = [x for x in rows if x["level"] == level]
        ok = all(x["stored_vs_3"] <= MAX_EXTRA_BYTES and x["cpu_vs_3"] < 1 and x["wall_vs_3"] <= 1 for x in mine)
        verdicts[level] = ok and level != DEFAULT
    doc = {"when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "argv": sys.argv[1:], "runs": args.runs,
           "threads": args.threads, "duration_s": round(time.time() - started), "machine": R.machine_info(),
           "versions": R.versions(vault), "rows": rows, "qualifies": verdicts,
           "samples": {f"{k[0]}/{k[1]}": v for k, v in samples.items()}}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(doc, indent=1) + "\n")

    print()
    print("| data | level | stored bytes | vs level 3 | MB/s | wall s | CPU-s/GiB | CPU vs 3 | peak RSS MiB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for x in rows:
        print(f"| {x['dataset']} | {x['level']} | {x['stored']:,.0f} | {x['stored_vs_3']:+.2%} | {x['mbps']:.0f} | "
              f"{x['wall']:.2f} | {x['cpu_per_gib']:.2f} | {x['cpu_vs_3']:.2f}× | {x['rss_mib']:.0f} |")
    print()
    winners = [lvl for lvl, ok in verdicts.items() if ok]
    if winners:
        print(f"verdict: level(s) {', '.join(map(str, winners))} store ≤ 1% more than level 3 on every data set "
              "and are faster on every one")
    else:
        print("verdict: no level stores ≤ 1% more than level 3 and is faster on every data set: keep level 3")
    print(f"raw results: {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
