#!/usr/bin/env python3
"""Scale: vault's metadata commands on vaults of 10 k to 10 M blobs and 1 k to 100 k versions (issue 15).

    python benchmarks/scale.py generate 10k/1k 100k/10k 1m/100k 10m/100k   # once; resumable (minutes at 10 M)
    python benchmarks/scale.py restic-generate 100k/1k 1m/1k               # restic repositories to compare
    python benchmarks/scale.py measure --sets 10k-1k,100k-10k,1m-100k,10m-100k --s3 1m-100k
    python benchmarks/scale.py render                                      # Markdown tables from the results

Not a test: nothing here runs in the test suite. Data goes to ``benchmarks/data/scale/`` (gitignored) and is
reused across runs; results to ``benchmarks/results/scale.json``.

The vaults are real vaults written by vault's own repository code (benchmarks/scale_gen.py says exactly how):
password ``scale-benchmark-password``, argon2id 8 MiB, t=1, p=1. Every measured command is the installed
``vault`` (``.venv/bin/vault``) as a child process of a small wrapper process, which takes its wall time and its
peak RSS (``ru_maxrss`` from ``wait4``; tests/helpers.py ``measured_command`` says why a wrapper). Cold cache:
``VAULT_CACHE_DIR`` emptied just before the run; warm: the same command ran just before (untimed). The
per-machine state (operation log, replay witness) lives in ``benchmarks/work/scale/home`` and is kept between
runs, as on a machine that uses the vault.

S3: a moto server (``.venv/bin/moto_server``) on 127.0.0.1 holds a copy of the set's vault (uploaded once per
server with boto3) and vault talks to it through a counting HTTP proxy (benchmarks/counting_proxy.py), which
gives the number of requests of each command.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import scale_gen  # noqa: E402

DATA = HERE / "data" / "scale"
WORK = HERE / "work" / "scale"
RESULTS = HERE / "results" / "scale.json"
VENV = REPO / ".venv" / "bin"
VAULT = str(VENV / "vault")
PASSWORD = scale_gen.PASSWORD
MiB = 1 << 20



# -- measuring one process ---------------------------------------------------------------------------------

# A tiny process between this one and the measured command: at execve the kernel folds the old address space's
# high-water mark into the new program's max RSS, so a command forked straight from this process (boto3, the
# proxy's buffers) could report this process's size. Forked from a ~10 MB interpreter instead, the figure is the
# command's own. The wrapper also takes the wall time around fork .. wait4, so its own start-up is not counted.
_WRAPPER = (
    "import json, os, sys, time\n"
    "t0 = time.perf_counter()\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.execvp(sys.argv[2], sys.argv[2:])\n"
    "_, status, ru = os.wait4(pid, 0)\n"
    "wall = time.perf_counter() - t0\n"
    "code = os.waitstatus_to_exitcode(status)\n"
    "open(sys.argv[1], 'w').write(json.dumps({'wall': wall, 'user': ru.ru_utime, 'sys': ru.ru_stime,\n"
    "                                        'maxrss_kib': ru.ru_maxrss, 'code': code}))\n"
    "sys.exit(code & 0xFF)\n"
)
_TICK = os.sysconf("SC_CLK_TCK")


def machine_cpu() -> float:
    """CPU seconds (user + nice + system) of the whole machine so far."""
    try:
        with open("/proc/stat") as fh:
            f = fh.readline().split()
        return (int(f[1]) + int(f[2]) + int(f[3])) / _TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def process_cpu(pid: int) -> float:
    """CPU seconds of a process (all its threads) so far; 0 when it is gone."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def wait_quiet(limit: float, timeout: float) -> float:
    """Wait (up to ``timeout`` s) until the machine uses at most ``limit`` cores over a second; returns the wait."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        c0 = machine_cpu()
        time.sleep(1.0)
        if machine_cpu() - c0 <= limit:
            break
    return time.monotonic() - t0


@dataclass
class Sample:
    wall: float
    cpu: float
    maxrss_kib: int
    other: float  # cores used by other processes meanwhile (not the command, this process, moto)
    load: float  # 1-minute load average at the start
    requests: int | None = None
    kinds: dict[str, int] = field(default_factory=dict)


class CommandFailed(RuntimeError):
    pass


def run_measured(argv: list[str], env: dict[str, str], log: Path, *, proxy: object | None = None,
                 helpers: tuple[int, ...] = (), cwd: Path | None = None) -> Sample:
    """Run ``argv`` once under the wrapper; exit status must be 0."""
    from counting_proxy import CountingProxy, classify

    out = WORK / "last-sample.json"
    out.unlink(missing_ok=True)
    load = os.getloadavg()[0]
    mark = proxy.mark() if isinstance(proxy, CountingProxy) else 0
    m0, s0, h0 = machine_cpu(), time.process_time(), sum(process_cpu(p) for p in helpers)
    with open(log, "ab") as fh:
        fh.write(f"\n$ {shlex.join(argv)}\n".encode())
        fh.flush()
        proc = subprocess.run([sys.executable, "-S", "-c", _WRAPPER, str(out), *argv], env=env, stdout=fh,
                              stderr=fh, stdin=subprocess.DEVNULL, cwd=cwd or WORK, check=False)
    doc = json.loads(out.read_text())
    if proc.returncode != 0 or doc["code"] != 0:
        raise CommandFailed(f"exit {doc['code']}: {shlex.join(argv)} (see {log})")
    cpu = doc["user"] + doc["sys"]
    mine = time.process_time() - s0 + sum(process_cpu(p) for p in helpers) - h0
    other = max(0.0, machine_cpu() - m0 - cpu - mine) / doc["wall"]
    sample = Sample(doc["wall"], cpu, doc["maxrss_kib"], round(other, 2), load)
    if isinstance(proxy, CountingProxy):
        seen = proxy.since(mark)
        sample.requests = len(seen)
        sample.kinds = dict(classify(seen))
    return sample


# -- the environment of a run ------------------------------------------------------------------------------


def base_env(home: Path) -> dict[str, str]:
    """The machine's environment without VAULT_*/AWS_*/RESTIC_*, with HOME and XDG in ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "AWS_", "RESTIC_"))}
    env.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / ".local/share"),
        XDG_STATE_HOME=str(home / ".local/state"),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        VAULT_PASSWORD=PASSWORD,
    )
    return env


def s3_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def empty_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


# -- S3: a moto server and a copy of a vault in it ----------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@contextlib.contextmanager
def moto_server(log: Path) -> Iterator[tuple[str, int]]:
    """``moto_server`` as a child process on 127.0.0.1; yields (endpoint, pid)."""
    port = free_port()
    with open(log, "ab") as fh:
        proc = subprocess.Popen([str(VENV / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=fh,
                                stderr=fh, stdin=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            time.sleep(0.1)
        yield endpoint, proc.pid
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def upload_vault(vault_dir: Path, endpoint: str, bucket: str) -> tuple[int, int, float]:
    """Copy every object of a local vault into a new bucket (keys as the S3 backend lays them out, which is the
    local layout); temporary files and locks are left out. Returns (objects, bytes, seconds)."""
    from concurrent.futures import ThreadPoolExecutor

    import boto3

    env = s3_env(endpoint)
    client = boto3.session.Session(aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                   aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                                   region_name=env["AWS_DEFAULT_REGION"]).client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=bucket)
    files = [p for p in vault_dir.rglob("*") if p.is_file() and not p.name.startswith(".tmp")
             and p.relative_to(vault_dir).parts[0] != "locks"]
    t0 = time.monotonic()

    def put(p: Path) -> int:
        data = p.read_bytes()
        client.put_object(Bucket=bucket, Key=p.relative_to(vault_dir).as_posix(), Body=data)
        return len(data)

    with ThreadPoolExecutor(8) as pool:
        total = sum(pool.map(put, files))
    return len(files), total, time.monotonic() - t0


# -- the commands -----------------------------------------------------------------------------------------

VAULT_COMMANDS = ("open", "put", "ls", "history", "get", "check", "prune")
COMMAND_TITLES = {
    "unlock": "`key list`, empty vault (start-up + unlock)",
    "open": "`key list` (open: unlock, lock, catalog listing, witness)",
    "put": "`put` of one 1 KiB file",
    "ls": "`ls`",
    "history": "`history ITEM`",
    "get": "`get` of one small file",
    "check": "`check` (structure)",
    "prune": "`prune --dry-run`",
    "r-unlock": "`cat config`, empty repository (start-up + unlock)",
    "r-backup": "`backup` of one 1 KiB file",
    "r-snapshots": "`snapshots`",
    "r-ls": "`ls latest`",
    "r-restore": "`restore` of one small file",
    "r-check": "`check` (structure)",
}


def vault_argv(command: str, location: str, manifest: dict[str, object], work: Path) -> list[str]:
    base = [VAULT, "--vault", location, "-q"]
    if command in ("open", "unlock"):
        return [*base, "key", "list"]
    if command == "put":
        f = work / "put" / "one.bin"
        return [*base, "put", str(f), "--name", "bench-put"]
    if command == "ls":
        return [*base, "ls"]
    if command == "history":
        return [*base, "history", str(manifest["history_item"])]
    if command == "get":
        return [*base, "get", str(manifest["get_path"]), "-o", str(work / "out" / "got.bin"), "--force"]
    if command == "check":
        return [*base, "check"]
    if command == "prune":
        return [*base, "prune", "--dry-run"]
    raise ValueError(command)


def before_each(command: str, work: Path) -> None:
    """Untimed set-up of one run: a new 1 KiB file to put (new content: a real store, not an unchanged re-put)."""
    if command in ("put", "r-backup"):
        f = work / "put" / "one.bin"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(os.urandom(1024))
    (work / "out").mkdir(parents=True, exist_ok=True)


def unlock_vault(home: Path) -> Path:
    """An empty vault with the sets' KDF parameters (the fixed cost of any command)."""
    path = WORK / "empty-vault"
    if not (path / "config").exists():
        shutil.rmtree(path, ignore_errors=True)
        subprocess.run([VAULT, "--vault", str(path), "-q", "init", "--kdf-memory", "8", "--kdf-time", "1",
                        "--kdf-parallelism", "1"], env=base_env(home), check=True, capture_output=True)
    return path


# -- the results file --------------------------------------------------------------------------------------


def load_results(path: Path) -> dict[str, object]:
    try:
        doc: dict[str, object] = json.loads(path.read_text())
        return doc
    except FileNotFoundError:
        return {"cases": {}}


def save_results(path: Path, doc: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def case_key(backend: str, set_name: str, command: str, cache: str) -> str:
    return f"{backend}|{set_name}|{command}|{cache}"


def record_case(doc: dict[str, object], path: Path, backend: str, set_name: str, command: str, cache: str,
                argv: list[str], samples: list[Sample], extra: dict[str, object] | None = None) -> None:
    cases = doc.setdefault("cases", {})
    assert isinstance(cases, dict)
    cases[case_key(backend, set_name, command, cache)] = {
        "backend": backend, "set": set_name, "command": command, "cache": cache,
        "argv": _show(argv), "time": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "samples": [s.__dict__ for s in samples], **(extra or {}),
    }
    save_results(path, doc)


def _show(argv: list[str]) -> str:
    text = shlex.join(argv)
    for prefix, short in ((str(VENV) + "/", ""), (str(DATA) + "/", "$DATA/"), (str(WORK) + "/", "$WORK/")):
        text = text.replace(prefix, short)
    return text


# -- measuring a set --------------------------------------------------------------------------------------


@dataclass
class Runner:
    args: argparse.Namespace
    doc: dict[str, object]
    home: Path
    log: Path

    def cases(self, names: tuple[str, ...]) -> list[str]:
        only = [c for c in self.args.commands.split(",") if c]
        return [n for n in names if not only or n in only]

    def measure(self, backend: str, set_name: str, command: str, argv: list[str], env: dict[str, str],
                cache_dir: Path | None, *, proxy: object | None = None, helpers: tuple[int, ...] = (),
                extra: dict[str, object] | None = None, cold: bool = True, warm: bool = True) -> None:
        """Cold runs (cache emptied first) then warm runs (after one untimed run), recorded as they finish."""
        work = WORK
        plans = ([("cold", self.args.cold_runs)] if cold and cache_dir is not None else []) + (
            [("warm", self.args.runs)] if warm else [])
        for cache, runs in plans:
            samples = []
            if cache == "warm":
                before_each(command, work)
                run_measured(argv, env, self.log, helpers=helpers)  # the run that warms the cache (untimed)
            for _ in range(runs):
                before_each(command, work)
                if cache == "cold" and cache_dir is not None:
                    empty_dir(cache_dir)
                wait_quiet(0.3, self.args.quiet_wait)
                s = run_measured(argv, env, self.log, proxy=proxy, helpers=helpers)
                samples.append(s)
                req = f", {s.requests} requests" if s.requests is not None else ""
                print(f"  {backend:6} {set_name:9} {command:11} {cache}: {s.wall:7.2f} s wall, {s.cpu:7.2f} s CPU, "
                      f"{s.maxrss_kib / 1024:6.0f} MiB{req} (other {s.other:.2f} cores, load {s.load:.1f})",
                      flush=True)
            record_case(self.doc, self.args.results, backend, set_name, command, cache, argv, samples, extra)

    def vault_set(self, set_name: str, s3: tuple[str, int, object] | None) -> None:
        setdir = DATA / set_name
        manifest = json.loads((setdir / "manifest.json").read_text())
        state = json.loads((setdir / "gen-state.json").read_text())
        if not state.get("complete"):
            raise SystemExit(f"{set_name} is not complete: run `scale.py generate` first")
        cache_dir = WORK / "cache" / (("s3-" if s3 else "") + set_name)
        env = base_env(self.home) | {"VAULT_CACHE_DIR": str(cache_dir)}
        backend = "local"
        location = str(setdir / "vault")
        helpers: tuple[int, ...] = ()
        proxy = None
        extra: dict[str, object] = {"manifest": manifest}
        if s3 is not None:
            endpoint, moto_pid, proxy = s3
            bucket = "scale-" + set_name
            objects, nbytes, secs = upload_vault(setdir / "vault", endpoint, bucket)
            print(f"  uploaded {objects:,} objects ({nbytes / MiB:,.0f} MiB) to moto in {secs:.0f} s", flush=True)
            from counting_proxy import CountingProxy

            assert isinstance(proxy, CountingProxy)
            env |= s3_env(proxy.endpoint)
            location = f"s3://{bucket}"
            backend = "s3"
            helpers = (moto_pid,)
            extra["uploaded"] = {"objects": objects, "bytes": nbytes, "seconds": round(secs, 1)}
        for command in self.cases(VAULT_COMMANDS):
            argv = vault_argv(command, location, manifest, WORK)
            self.measure(backend, set_name, command, argv, env, cache_dir, proxy=proxy, helpers=helpers,
                         extra=extra)
        if "get" in self.cases(VAULT_COMMANDS):
            got = (WORK / "out" / "got.bin").read_bytes().hex()
            if got != manifest["get_bytes_hex"]:
                raise SystemExit(f"{set_name}: `get` restored the wrong bytes")

    def unlock(self, s3: tuple[str, int, object] | None) -> None:
        path = unlock_vault(self.home)
        env = base_env(self.home) | {"VAULT_CACHE_DIR": str(WORK / "cache" / "empty")}
        self.measure("local", "empty", "unlock", vault_argv("unlock", str(path), {}, WORK), env, None)


def measure_main(args: argparse.Namespace) -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    doc = load_results(args.results)
    doc["machine"] = machine_info()
    doc["versions"] = tool_versions()
    home = WORK / "home"
    home.mkdir(parents=True, exist_ok=True)
    log = WORK / "measure.log"
    runner = Runner(args, doc, home, log)
    sets = [s for s in args.sets.split(",") if s]
    if not args.no_local:
        if not args.commands or "unlock" in args.commands.split(","):
            runner.unlock(None)
        for set_name in sets:
            print(f"{set_name} (local)", flush=True)
            runner.vault_set(set_name, None)
    for set_name in [s for s in args.s3.split(",") if s]:
        from counting_proxy import CountingProxy

        print(f"{set_name} (S3 on moto)", flush=True)
        with moto_server(WORK / "moto.log") as (endpoint, pid), CountingProxy(endpoint) as proxy:
            runner.vault_set(set_name, (endpoint, pid, proxy))
    for set_name in [s for s in args.restic.split(",") if s]:
        print(f"{set_name} (restic)", flush=True)
        restic_set(runner, set_name)
    return 0



# -- restic -----------------------------------------------------------------------------------------------


def restic_env(home: Path, cache: Path) -> dict[str, str]:
    return base_env(home) | {"RESTIC_PASSWORD": PASSWORD, "RESTIC_CACHE_DIR": str(cache)}


def restic_generate(text: str) -> Path:
    """A restic repository of BLOBS tiny unique files in SNAPSHOTS snapshots: snapshot n is a `restic backup` of a
    fresh directory ``s{n:05d}/`` holding BLOBS/SNAPSHOTS files of 16-31 random bytes (100 per sub-directory),
    deleted after its backup. So each file is one data blob, as in the vault sets. Resumable (one snapshot at a
    time; ``gen-state.json`` counts them)."""
    import random

    blobs_text, _, snaps_text = text.partition("/")
    blobs, snaps = scale_gen.parse_count(blobs_text), scale_gen.parse_count(snaps_text)
    name = f"restic-{scale_gen._short(blobs)}-{scale_gen._short(snaps)}"
    setdir = DATA / name
    repo = setdir / "repo"
    state_path = setdir / "gen-state.json"
    home = WORK / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = restic_env(home, WORK / "cache" / "restic-gen")
    files = blobs // snaps
    state = json.loads(state_path.read_text()) if state_path.exists() else None
    if state is None:
        shutil.rmtree(setdir, ignore_errors=True)
        setdir.mkdir(parents=True)
        subprocess.run(["restic", "-r", str(repo), "init", "--repository-version", "2"], env=env, check=True,
                       capture_output=True)
        state = {"blobs": blobs, "snapshots": snaps, "done": 0, "seconds": 0.0, "last": None}
        state_path.write_text(json.dumps(state))
    src_root = WORK / "restic-src"
    started = time.monotonic() - state["seconds"]
    while state["done"] < snaps:
        n = state["done"]
        src = empty_dir(src_root / f"s{n:05d}")
        rng = random.Random(10_000_019 * n + 7)
        for j in range(files):
            d = src / f"d{j // 100:03d}"
            if j % 100 == 0:
                d.mkdir()
            (d / f"f{j:04d}").write_bytes(rng.randbytes(16 + rng.getrandbits(4)))
        t0 = time.monotonic()
        out = subprocess.run(["restic", "-r", str(repo), "backup", "--host", "bench", "--json", "-q", str(src)],
                             env=env, check=True, capture_output=True, text=True).stdout
        summary = [json.loads(line) for line in out.splitlines() if line.strip().startswith("{")]
        snapshot = next((d.get("snapshot_id") for d in summary if d.get("message_type") == "summary"), None)
        shutil.rmtree(src)
        state.update(done=n + 1, seconds=time.monotonic() - started, last=snapshot,
                     last_path=str(src / "d000" / "f0000"))
        rng = random.Random(10_000_019 * n + 7)  # the first file of the last snapshot, to check the restore
        state["last_bytes"] = rng.randbytes(16 + rng.getrandbits(4)).hex()
        state_path.write_text(json.dumps(state))
        if n % 50 == 0 or n == snaps - 1:
            print(f"{name}: snapshot {n + 1}/{snaps}, {time.monotonic() - t0:.1f} s "
                  f"({state['seconds']:.0f} s so far)", flush=True)
    state["complete"] = True
    state_path.write_text(json.dumps(state))
    return setdir


def restic_argv(command: str, repo: Path, state: dict[str, object], work: Path) -> list[str]:
    base = ["restic", "-r", str(repo), "-q"]
    if command == "r-unlock":
        return [*base, "cat", "config"]
    if command == "r-backup":
        return [*base, "backup", "--host", "bench", str(work / "put" / "one.bin")]
    if command == "r-snapshots":
        return [*base, "snapshots"]
    if command == "r-ls":
        return [*base, "ls", str(state["last"])]
    if command == "r-restore":
        return [*base, "restore", str(state["last"]), "--target", str(work / "out" / "restic"), "--include",
                str(state["last_path"])]
    if command == "r-check":
        return [*base, "check"]
    raise ValueError(command)


RESTIC_COMMANDS = ("r-backup", "r-snapshots", "r-ls", "r-restore", "r-check")


def restic_set(runner: Runner, set_name: str) -> None:
    setdir = DATA / set_name
    state = json.loads((setdir / "gen-state.json").read_text())
    if not state.get("complete"):
        raise SystemExit(f"{set_name} is not complete: run `scale.py restic-generate` first")
    cache = WORK / "cache" / set_name
    env = restic_env(runner.home, cache)
    if not runner.args.commands or "r-unlock" in runner.args.commands.split(","):
        empty = WORK / "empty-restic"
        if not (empty / "config").exists():
            shutil.rmtree(empty, ignore_errors=True)
            subprocess.run(["restic", "-r", str(empty), "init", "--repository-version", "2"], env=env, check=True,
                           capture_output=True)
        runner.measure("restic", "empty", "r-unlock", restic_argv("r-unlock", empty, state, WORK), env,
                       None)
    for command in runner.cases(RESTIC_COMMANDS):
        argv = restic_argv(command, setdir / "repo", state, WORK)
        runner.measure("restic", set_name, command, argv, env, cache, extra={"generated": state})
    if "r-restore" in runner.cases(RESTIC_COMMANDS):
        got = (WORK / "out" / "restic" / str(state["last_path"]).lstrip("/")).read_bytes().hex()
        if got != state["last_bytes"]:
            raise SystemExit(f"{set_name}: `restic restore` restored the wrong bytes")


# -- machine and versions ----------------------------------------------------------------------------------


def machine_info() -> dict[str, object]:
    model, mem_kib = "unknown", 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    fs = subprocess.run(["df", "-T", str(HERE)], capture_output=True, text=True).stdout.splitlines()
    return {"nproc": os.cpu_count(), "cpu": model, "memory_gib": round(mem_kib / (1 << 20), 1),
            "kernel": platform.release(), "filesystem": fs[-1].split()[1] if len(fs) > 1 else "unknown"}


def tool_versions() -> dict[str, str]:
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "vault"], capture_output=True,
                           text=True).stdout.strip()
    restic = subprocess.run(["restic", "version"], capture_output=True, text=True, check=False).stdout.strip()
    return {"vault source": f"git {commit}{' + uncommitted changes in vault/' if dirty else ''}",
            "python": platform.python_version(), "restic": restic or "not installed"}



# -- rendering ---------------------------------------------------------------------------------------------

SET_ORDER = ("empty", "10k-1k", "100k-10k", "1m-100k", "10m-100k", "restic-100k-1k", "restic-1m-1k")


def _title(set_name: str) -> str:
    if set_name == "empty":
        return "empty"
    parts = set_name.removeprefix("restic-").split("-")
    return f"{parts[0].upper()} / {parts[1].upper()}"


def _median(case: dict[str, object], field_name: str) -> float:
    samples = case["samples"]
    assert isinstance(samples, list)
    return float(statistics.median(s[field_name] for s in samples))


def _cell(case: dict[str, object] | None, what: str) -> str:
    if case is None:
        return "–"
    samples = case["samples"]
    assert isinstance(samples, list)
    if what == "wall":
        walls = [s["wall"] for s in samples]
        med = statistics.median(walls)
        spread = f" ({min(walls):.2f}–{max(walls):.2f})" if len(walls) > 1 else ""
        return f"{med:.2f}{spread}"
    if what == "cpu":
        return f"{_median(case, 'cpu'):.2f}"
    if what == "rss":
        return f"{_median(case, 'maxrss_kib') / 1024:.0f}"
    if what == "requests":
        reqs = [s["requests"] for s in samples if s.get("requests") is not None]
        return f"{statistics.median(reqs):.0f}" if reqs else "–"
    if what == "other":
        return f"{max(s['other'] for s in samples):.2f}"
    if what == "load":
        return f"{max(s.get('load', 0.0) for s in samples):.1f}"
    raise ValueError(what)


def render(doc: dict[str, object]) -> str:
    cases = doc.get("cases", {})
    assert isinstance(cases, dict)
    out: list[str] = []
    machine = doc.get("machine", {})
    versions = doc.get("versions", {})
    out.append(f"Machine: {machine}. Versions: {versions}.\n")
    for backend, commands, metrics in (
        ("local", ("unlock", *VAULT_COMMANDS), ("wall", "cpu", "rss", "other", "load")),
        ("s3", VAULT_COMMANDS, ("requests", "wall", "cpu", "rss", "load")),
        ("restic", ("r-unlock", *RESTIC_COMMANDS), ("wall", "cpu", "rss", "other")),
    ):
        sets = sorted({c["set"] for c in cases.values() if c["backend"] == backend},
                      key=lambda n: SET_ORDER.index(n) if n in SET_ORDER else 99)
        sets = [s for s in sets if s != "empty"]
        if not sets:
            continue
        titles = {"wall": "wall s, median (min–max)", "cpu": "CPU s (user+sys), median",
                  "rss": "peak RSS MiB, median", "requests": "requests, median",
                  "other": "other processes' cores during the run, max",
                  "load": "1-minute load average before the run, max (2 cores)"}
        for metric in metrics:
            out.append(f"**{backend}: {titles[metric]}**\n")
            out.append("| command | cache | " + " | ".join(_title(s) for s in sets) + " |")
            out.append("| --- | --- | " + " | ".join("---:" for _ in sets) + " |")
            for command in commands:
                for cache in ("cold", "warm"):
                    if command in ("unlock", "r-unlock"):
                        if cache == "cold":
                            continue
                        case = cases.get(case_key(backend, "empty", command, "warm"))
                        row = [_cell(case, metric)] * len(sets) if case else ["–"] * len(sets)
                        out.append(f"| {COMMAND_TITLES[command]} | – | " + " | ".join(row) + " |")
                        continue
                    row = [_cell(cases.get(case_key(backend, s, command, cache)), metric) for s in sets]
                    if all(c == "–" for c in row):
                        continue
                    out.append(f"| {COMMAND_TITLES[command]} | {cache} | " + " | ".join(row) + " |")
            out.append("")
    s3 = [c for c in cases.values() if c["backend"] == "s3"]
    if s3:
        out.append("**s3: requests by kind (first sample)**\n")
        for c in sorted(s3, key=lambda c: (SET_ORDER.index(c["set"]) if c["set"] in SET_ORDER else 99,
                                           VAULT_COMMANDS.index(c["command"]), c["cache"])):
            kinds = c["samples"][0].get("kinds", {})
            text = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
            out.append(f"- {_title(c['set'])} {c['command']} ({c['cache']}): {text}")
        out.append("")
    commands = sorted({c["argv"] for c in cases.values()})
    out.append("Commands:\n\n```\n" + "\n".join(commands) + "\n```\n")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="make the vaults (BLOBS/VERSIONS, e.g. 10m/100k); resumable")
    g.add_argument("shapes", nargs="+")
    g.add_argument("--pack-blobs", type=int, default=1024)
    g.add_argument("--threads", type=int, default=2)
    r = sub.add_parser("restic-generate", help="make restic repositories (BLOBS/SNAPSHOTS, e.g. 1m/1k)")
    r.add_argument("shapes", nargs="+")
    m = sub.add_parser("measure", help="run the commands and record the results")
    m.add_argument("--sets", default="10k-1k,100k-10k,1m-100k,10m-100k", help="vault sets, comma-separated")
    m.add_argument("--s3", default="", help="sets to measure on S3 (moto) too, comma-separated")
    m.add_argument("--restic", default="", help="restic sets, comma-separated (e.g. 100k-1k,1m-1k)")
    m.add_argument("--runs", type=int, default=3, help="timed warm runs per command (median)")
    m.add_argument("--cold-runs", type=int, default=1, help="timed cold runs per command (median)")
    m.add_argument("--commands", default="", help="only these commands (comma-separated names)")
    m.add_argument("--no-local", action="store_true", help="skip the local runs (S3 and restic only)")
    m.add_argument("--results", type=Path, default=RESULTS)
    m.add_argument("--quiet-wait", type=float, default=30.0, help="wait up to this long for a quiet machine")
    rd = sub.add_parser("render", help="print the Markdown tables of the results")
    rd.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.cmd == "generate":
        for text in args.shapes:
            shape = scale_gen.parse_shape(text, pack_blobs=args.pack_blobs)
            scale_gen.generate(DATA, shape, threads=args.threads)
        return 0
    if args.cmd == "restic-generate":
        for text in args.shapes:
            restic_generate(text)
        return 0
    if args.cmd == "measure":
        return measure_main(args)
    print(render(json.loads(args.results.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
