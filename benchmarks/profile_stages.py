#!/usr/bin/env python3
"""Where does the time of a `vault put` / `vault get` go? Stage accounting by thread, in-process.

    python benchmarks/profile_stages.py put benchmarks/data/mixed.bin --threads 2
    python benchmarks/profile_stages.py get --threads 2          # restores what the last `put` stored
    python benchmarks/profile_stages.py micro benchmarks/data/mixed.bin   # single-core costs of the primitives

Runs in this process what `vault put` / `vault get` run (``Repository.open``, then ``Putter`` or ``Restorer`` on a
``Pipeline``; without the command line's parsing, lock, witness and operation log) and passes the pipeline and
the local backend a stage timer: vault's own hook (``vault.pipeline.timing``), which the data path calls around
each stage (read, chunk, hash, dedup, compress, seal, pack, upload, index, fetch, open, decompress, write,
fsync, syncfs, waits). The timer here records wall time and *thread CPU time* (``time.thread_time``) per thread
role (main, vault-cpu workers, vault-io), each stage exclusive of the stages nested in it. CPU times do not
depend on what else the machine runs, so the breakdown holds on a shared machine; wall times do. Nothing in
vault/ is patched. Overhead: a few microseconds per stage (tens of stages per MiB).

py-spy gives the sampled view of the same commands:
    py-spy record --threads --idle --rate 100 --format raw -o put.raw -- .venv/bin/vault put FILE
and ``python benchmarks/profile_stages.py pyspy put.raw`` summarises such a file by thread and activity.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import resource
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORK = HERE / "work" / "profile"
PASSWORD = b"benchmark-password-not-secret"

# -- accounting --------------------------------------------------------------------------------------------

# How the tables name vault's stages (vault.pipeline.timing.Stage); each is exclusive of the stages nested in it.
LABELS = {
    "read": "read file",
    "chunk": "chunk: FastCDC cut + copy out",
    "hash": "blob id (keyed BLAKE3)",
    "dedup": "dedup lookup (index, claimed set)",
    "compress": "zstd compress (64 KiB probe included)",
    "seal": "AES-GCM seal",
    "pack": "pack: add blob, seal header",
    "upload": "pack upload (rest: create, rename)",
    "index": "index objects (rest: encode, seal, remove)",
    "wait: upload": "wait: pack upload (back-pressure)",
    "wait: next result": "wait: next result of the CPU pool",
    "write": "write (os.write/writev)",
    "fsync": "fsync (files and directories)",
    "fetch": "fetch blob (pread)",
    "open": "AES-GCM open",
    "decompress": "zstd decompress",
    "syncfs": "syncfs",
}
_RATED = {label for name, label in LABELS.items() if not name.startswith("wait")}  # rows that get a MB/s


def _role() -> str:
    name = threading.current_thread().name
    if name == "MainThread":
        return "main"
    return re.sub(r"_\d+$", "", name)


class _Frame:
    """One run of a stage on one thread; the context manager :meth:`StageProfile.stage` returns."""

    __slots__ = ("c0", "cc", "cw", "name", "profile", "w0")

    def __init__(self, profile: StageProfile, name: str) -> None:
        self.profile = profile
        self.name = name
        self.cw = 0.0  # wall and CPU time of the stages nested in this one
        self.cc = 0.0
        self.c0 = 0.0
        self.w0 = 0.0

    def __enter__(self) -> None:
        self.profile.stack().append(self)
        self.c0 = time.thread_time()
        self.w0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        w = time.perf_counter() - self.w0
        c = time.thread_time() - self.c0
        stack = self.profile.stack()
        stack.pop()
        self.profile.add(self.name, w - self.cw, c - self.cc)
        if stack:
            stack[-1].cw += w
            stack[-1].cc += c


class StageProfile:
    """A stage timer (``vault.pipeline.timing.StageTimer``): calls, wall time and thread CPU time per (thread
    role, stage), each stage exclusive of the stages nested in it on the same thread. Thread-safe."""

    def __init__(self) -> None:
        self._tls = threading.local()
        self._lock = threading.Lock()
        self.stats: dict[tuple[str, str], list[float]] = collections.defaultdict(lambda: [0, 0.0, 0.0])

    def stage(self, name: str) -> _Frame:
        return _Frame(self, name)

    def stack(self) -> list[_Frame]:
        stack: list[_Frame] | None = getattr(self._tls, "stack", None)
        if stack is None:
            stack = self._tls.stack = []
        return stack

    def add(self, name: str, wall: float, cpu: float) -> None:
        with self._lock:
            s = self.stats[(_role(), LABELS.get(name, name))]
            s[0] += 1
            s[1] += wall
            s[2] += cpu


class RssSampler:
    """Samples this process's RSS every few milliseconds; remembers the RSS when the data path started."""

    def __init__(self) -> None:
        self.peak = 0
        self.at_start: int | None = None
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def rss(self) -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * self._page

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self.rss())

    def mark_start(self) -> None:
        if self.at_start is None:
            self.at_start = self.rss()

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


class Usage:
    """Wall time and this process's CPU time (user + sys, every thread) between enter and exit."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def __enter__(self) -> Usage:
        self._ru = resource.getrusage(resource.RUSAGE_SELF)
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.wall = time.perf_counter() - self._t0
        ru = resource.getrusage(resource.RUSAGE_SELF)
        self.cpu = (ru.ru_utime - self._ru.ru_utime) + (ru.ru_stime - self._ru.ru_stime)


def report(profile: StageProfile, sampler: RssSampler, usage: Usage, nbytes: int, title: str) -> str:
    stats, wall, cpu = profile.stats, usage.wall, usage.cpu
    lines = [f"### {title}", ""]
    lines.append(f"wall {wall:.2f} s, process CPU {cpu:.2f} s (user+sys) = {cpu / wall:.2f} cores, "
                 f"{nbytes / wall / 1e6:.0f} MB/s")
    start = sampler.at_start or 0
    lines.append("")
    started = f"{start / 2**20:.0f} MiB when the data path started (after unlock), " if start else ""
    lines.append(f"RSS: {started}peak "
                 f"{sampler.peak / 2**20:.0f} MiB during the command (sampled every 2 ms); "
                 f"ru_maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB "
                 "(includes argon2id's 64 MiB)")
    lines.append("")
    lines.append("| thread | stage | calls | wall s | CPU s | MB/s of CPU |")
    lines.append("| --- | --- | ---: | ---: | ---: | ---: |")
    roles = sorted({r for r, _ in stats}, key=lambda r: (r != "main", r))
    tracked = 0.0
    for role in roles:
        rows = sorted(((st, v) for (r, st), v in stats.items() if r == role), key=lambda x: -x[1][1])
        for st, (calls, w, c) in rows:
            tracked += c
            if w < 0.005 and c < 0.005:
                continue
            rate = f"{nbytes / c / 1e6:.0f}" if c > 0.01 and st in _RATED else ""
            lines.append(f"| {role} | {st} | {int(calls)} | {w:.2f} | {c:.2f} | {rate} |")
    lines.append(f"| all | not in a stage (interpreter, glue, argon2id's own threads) | | | {cpu - tracked:.2f} | |")
    lines.append("")
    main_wall = sum(v[1] for (r, _), v in stats.items() if r == "main")
    lines.append(f"main thread: {main_wall:.2f} s of the {wall:.2f} s wall is in stages "
                 f"(waits included); the rest is glue and interpreter work.")
    for role in roles:
        if role == "main":
            continue
        busy = sum(v[1] for (r, st), v in stats.items() if r == role and not st.startswith("wait"))
        cpu_r = sum(v[2] for (r, _), v in stats.items() if r == role)
        lines.append(f"{role}: busy {busy:.2f} s wall, {cpu_r:.2f} s CPU in stages, summed over its threads")
    return "\n".join(lines)


def _as_console_script() -> None:
    """Do what the `vault` console script does before the CLI runs (e.g. its malloc tuning), if anything."""
    try:
        from vault import _entry
    except ImportError:
        return
    for name in ("_tune_malloc",):
        fn = getattr(_entry, name, None)
        if callable(fn):
            fn()


def _exit_code(exc: BaseException) -> int:
    print(f"profile_stages: {type(exc).__name__}: {exc}", file=sys.stderr)
    return int(getattr(exc, "exit_code", 1))


def cmd_put(args: argparse.Namespace) -> int:
    from vault.archive import Putter
    from vault.crypto import kdf
    from vault.errors import VaultError
    from vault.pipeline.runner import Pipeline
    from vault.repo.repository import Repository
    from vault.storage.local import LocalBackend

    if not args.no_entry_tuning:
        _as_console_script()
    vault = WORK / "vault"
    if vault.exists():
        shutil.rmtree(vault)
    WORK.mkdir(parents=True, exist_ok=True)
    Repository.create(LocalBackend(vault), PASSWORD, kdf.current_defaults())  # what `vault init` makes
    src = Path(args.path).resolve()
    nbytes = src.stat().st_size if src.is_file() else sum(
        os.lstat(os.path.join(r, n)).st_size for r, _, ns in os.walk(src) for n in ns)
    profile = StageProfile()
    code = 0
    os.sync()
    with RssSampler() as sampler, Usage() as usage:
        try:
            with profile.stage("unlock (argon2id)"):
                repo = Repository.open(LocalBackend(vault, timer=profile), PASSWORD)
            with profile.stage("load index"):
                _ = repo.index
            sampler.mark_start()
            with Pipeline(args.threads, timer=profile) as pipe:
                putter = Putter(repo, pipe, level=args.compression)
                with profile.stage("scan tree"):
                    source = putter.add_path(str(src), None)
                results = putter.commit([source])
            code = 3 if any(r.skipped for r in results) else 0
        except VaultError as exc:
            code = _exit_code(exc)
    (WORK / "last-item").write_text(f"{src.name}\n{nbytes}\n")
    if args.malloc_stats:
        import ctypes
        import gc

        gc.collect()
        sys.stderr.flush()
        ctypes.CDLL("libc.so.6").malloc_stats()  # to stderr: per arena, system bytes vs in use
    title = f"vault --threads {args.threads} put {src.name} (exit {code})"
    print(report(profile, sampler, usage, nbytes, title))
    return code


def cmd_get(args: argparse.Namespace) -> int:
    from vault.errors import VaultError
    from vault.pipeline.runner import Pipeline
    from vault.repo.repository import Repository
    from vault.restore import Restorer, resolve
    from vault.storage.local import LocalBackend

    _as_console_script()
    name, nbytes = (WORK / "last-item").read_text().split()
    out = WORK / "out"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    profile = StageProfile()
    code = 0
    os.sync()
    with RssSampler() as sampler, Usage() as usage:
        try:
            with profile.stage("unlock (argon2id)"):
                repo = Repository.open(LocalBackend(WORK / "vault", timer=profile), PASSWORD)
            with profile.stage("resolve (records, trees)"):
                record, node, _ = resolve(repo, name, None)
            sampler.mark_start()
            with Pipeline(args.threads, timer=profile) as pipe:
                Restorer(repo, pipe).restore(record, node, str(out / name), force=False)
        except VaultError as exc:
            code = _exit_code(exc)
    print(report(profile, sampler, usage, int(nbytes), f"vault --threads {args.threads} get {name} (exit {code})"))
    shutil.rmtree(out)
    return code


def cmd_micro(args: argparse.Namespace) -> int:
    """Single-thread speed of each primitive on the file's first --limit bytes, chunk by chunk as vault cuts."""
    import blake3
    import zstandard
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from pyfastcdc import FastCDC

    path = Path(args.path)
    limit = min(path.stat().st_size, args.limit)
    with open(path, "rb") as fh:
        data = fh.read(limit)
    n = len(data)
    rows: list[tuple[str, float]] = []

    def bench(name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.thread_time()
        out = fn()
        rows.append((name, time.thread_time() - t0))
        return out

    def read_file() -> None:
        with open(path, "rb", buffering=0) as f:
            buf = bytearray(8 << 20)
            got = 0
            while got < limit and (k := f.readinto(buf)):
                got += k

    bench("read (readinto, 8 MiB buffer, warm cache)", read_file)
    cdc = FastCDC(1 << 20, min_size=256 << 10, max_size=4 << 20, seed=12345)
    bench("FastCDC cut_buf (views only)", lambda: sum(1 for _ in cdc.cut_buf(data)))

    def cut_copy() -> None:
        for c in cdc.cut_buf(data):
            bytes(c.data)  # dropped at once, as the pipeline soon drops it: memory can be reused

    bench("FastCDC cut_buf + bytes(chunk.data), each dropped at once", cut_copy)
    chunks = bench("FastCDC cut_buf + bytes(chunk.data), all kept (fresh memory)",
                   lambda: [bytes(c.data) for c in cdc.cut_buf(data)])
    bench("bytearray copy of each chunk into one reused buffer",
          lambda: [memoryview(buf)[: len(c)].__setitem__(slice(None), c) for buf in [bytearray(4 << 20)]
                   for c in chunks])
    key = os.urandom(32)
    bench("keyed BLAKE3 per chunk", lambda: [blake3.blake3(c, key=key).digest() for c in chunks])
    cctx = zstandard.ZstdCompressor(level=3, write_content_size=True)
    sizes = bench("zstd -3 compress per chunk (output dropped)", lambda: [len(cctx.compress(c)) for c in chunks])
    packed = [cctx.compress(c) for c in chunks[:64]]
    few = sum(len(c) for c in chunks[:64])
    t0 = time.thread_time()
    for p, c in zip(packed, chunks, strict=False):
        dctx = zstandard.ZstdDecompressor()
        dctx.decompress(p, max_output_size=len(c))
    rows.append((f"zstd decompress per chunk (first {len(packed)} chunks, output dropped)",
                 (time.thread_time() - t0) * n / few))
    aes = AESGCM(os.urandom(32))
    nonce = os.urandom(12)
    bench("AES-256-GCM encrypt per chunk (+nonce concat, dropped)",
          lambda: [len(nonce + aes.encrypt(nonce, c, b"aad")) for c in chunks])
    sealed = [nonce + aes.encrypt(nonce, c, b"aad") for c in chunks[:64]]
    t0 = time.thread_time()
    for s_ in sealed:
        mv = memoryview(s_)
        aes.decrypt(mv[:12], mv[12:], b"aad")
    rows.append((f"AES-256-GCM decrypt per chunk (first {len(sealed)} chunks, dropped)",
                 (time.thread_time() - t0) * n / few))
    bench("b''.join of all chunks (pack assembly, fresh memory)", lambda: len(b"".join(chunks)))
    packed = [b"x" * s for s in sizes]
    ratio = n / sum(len(p) for p in packed)
    print(f"### single-core primitives on {path.name}[:{n / 1e6:.0f} MB], {len(chunks)} chunks "
          f"(avg {n / len(chunks) / 1e6:.2f} MB), zstd ratio {ratio:.2f}")
    print()
    print("| step | CPU s | MB/s (one core) |")
    print("| --- | ---: | ---: |")
    for name, c in rows:
        print(f"| {name} | {c:.3f} | {n / c / 1e6 if c > 0 else float('inf'):.0f} |")
    return 0


def _source_lines(path: Path, needle: str) -> set[int]:
    try:
        return {i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line}
    except OSError:
        return set()


def cmd_pyspy(args: argparse.Namespace) -> int:
    """Summarise a py-spy raw (collapsed) profile recorded with --threads [--idle]: per thread, per activity.
    Each sample is named by its deepest frame that matches a rule (so an fsync inside an index write is fsync)."""
    blobs_py = HERE.parent / "vault" / "repo" / "blobs.py"
    comp = "|".join(str(n) for n in sorted(_source_lines(blobs_py, ".compress("))) or "x"
    decomp = "|".join(str(n) for n in sorted(_source_lines(blobs_py, ".decompress("))) or "x"
    rules = [
        ("zstd compress", rf"seal_blob \(vault/repo/blobs\.py:({comp})\)|ZSTD_compress"),
        ("zstd decompress", rf"open_blob \(vault/repo/blobs\.py:({decomp})\)|ZSTD_decompress"),
        ("AES-GCM", r"^Aead\."),
        ("BLAKE3", r"blob_id \("),
        ("argon2id", r"hash_secret_raw|verify_secret"),
        ("fsync directory", r"^_fsync_dir"),
        ("fsync file", r"fsync"),
        ("write", r"^_write_all|BufferedWriter"),
        ("pread", r"^_pread_exactly"),
        ("read + FastCDC cut + copy (main)", r"^Chunker\.chunks|^_read_up_to|^_Prefixed"),
        ("pack header", r"^PackBuilder\.finish_parts"),
        ("idle: pool thread waiting for work", r"^_worker \("),
        ("wait: Future.result", r"^Future\.result|^_result_or_cancel"),
        ("wait: lock/condition", r"^Condition\.wait|^Event\.wait|^Semaphore|^Lock"),
        ("imports / start-up", r"^<module>|^_find_and_load|^_call_with_frames_removed"),
    ]
    compiled = [(name, re.compile(rx)) for name, rx in rules]
    # A frame in vault's own code is first named by what its source line does (a lambda around os.fsync is
    # an fsync), then by the rules above.
    line_rules = [
        ("fsync file", re.compile(r"\bos\.f(data)?sync\(")),
        ("create file (os.open O_CREAT)", re.compile(r"\bos\.open\(.*O_CREAT|O_EXCL")),
        ("rename", re.compile(r"\bos\.(rename|replace)\(")),
        ("write", re.compile(r"\.write\(|os\.write")),
        ("chmod / utime", re.compile(r"\bos\.(fchmod|chmod|utime)\(")),
        ("mkdir / open dir", re.compile(r"\bos\.mkdir\(|O_DIRECTORY")),
    ]
    sources: dict[str, list[str]] = {}

    by_name: dict[str, list[Path]] = collections.defaultdict(list)
    for f in (HERE.parent / "vault").rglob("*.py"):
        by_name[f.name].append(f)

    def source_line(frame: str) -> str:
        # py-spy names a file "vault/ops/get.py" or, for some frames, just "get.py".
        m = re.search(r"\(([\w./-]+\.py):(\d+)\)$", frame)
        if not m:
            return ""
        name = m.group(1)
        if name not in sources:
            path = HERE.parent / name if name.startswith("vault/") else None
            if path is None and "/" not in name and len(by_name.get(name, [])) == 1:
                path = by_name[name][0]
            try:
                sources[name] = path.read_text().splitlines() if path else []
            except OSError:
                sources[name] = []
        lines = sources[name]
        n = int(m.group(2))
        return lines[n - 1] if 0 < n <= len(lines) else ""

    per: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    with open(args.raw) as raw:
        raw_lines = raw.readlines()
    for line in raw_lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        frames = stack.split(";")
        head = frames[0]
        name = head.split(": ", 1)[1] if ": " in head else head
        role = "main" if name == "MainThread" else re.sub(r"_\d+$", "", name)
        activity = "other Python"
        for frame in reversed(frames[1:]):
            text = source_line(frame)
            hit = next((n for n, rx in line_rules if text and rx.search(text)), None)
            if hit is None:
                hit = next((n for n, rx in compiled if rx.search(frame)), None)
            if hit is not None:
                activity = hit
                break
        if activity.startswith("wait: lock") and "Future.result" in stack:
            activity = "wait: Future.result"
        per[role][activity] += int(count)
    rate = args.rate
    print(f"### py-spy samples of {Path(args.raw).name} ({rate}/s; seconds = samples / rate, summed over the "
          "threads of a role)")
    print()
    print("| thread | activity | samples | s | share of thread |")
    print("| --- | --- | ---: | ---: | ---: |")
    for role in sorted(per, key=lambda r: (r != "main", r)):
        tot = sum(per[role].values())
        for act, cnt in per[role].most_common():
            print(f"| {role} | {act} | {cnt} | {cnt / rate:.2f} | {cnt / tot:.0%} |")
    return 0


def _evict_tree(path: Path) -> None:
    for r, _, names in os.walk(path):
        for n in names:
            fd = os.open(os.path.join(r, n), os.O_RDONLY | os.O_NOFOLLOW)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def cmd_fsync(args: argparse.Namespace) -> int:
    """How restores could write: the cost of vault's way (write, fsync at the end of each file, rename; one file
    at a time) against alternatives, on the same bytes, without vault (pure file-system work)."""
    import concurrent.futures as cf

    src = Path(args.path).resolve()
    out = WORK / "fsync-exp"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    rows: list[tuple[str, float]] = []
    plan: list[tuple[str, Callable[[Path], None]]] = []

    def timed_run(name: str, fn: Callable[[Path], None]) -> None:
        plan.append((name, fn))

    def execute() -> None:
        """Every strategy --repeat times, round-robin (so drift hits all alike); the median of each."""
        import statistics

        times: dict[str, list[float]] = collections.defaultdict(list)
        for rep in range(args.repeat):
            for i, (name, fn) in enumerate(plan):
                dest = out / f"r{rep}-s{i}"
                dest.mkdir()
                os.sync()
                t0 = time.perf_counter()
                fn(dest)
                times[name].append(time.perf_counter() - t0)
                # Not deleted now: ext4 is slow to create files right after many were deleted
                # (recently_deleted); the page cache is dropped instead so memory is reused (see run.py).
                os.sync()
                _evict_tree(dest)
        for name, _ in plan:
            rows.append((name, statistics.median(times[name])))

    if src.is_file():
        size = src.stat().st_size
        piece = 1 << 20
        data = [os.urandom(piece)] * 1  # content does not matter to the file system; the size does

        def big(dest: Path, every: int | None, sync: bool = True) -> None:
            pool = cf.ThreadPoolExecutor(1)
            pending: list[cf.Future[None]] = []
            fd = os.open(dest / "f.tmp", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            written = 0
            while written < size:
                written += os.write(fd, data[0][: min(piece, size - written)])
                if every and written % every < piece:
                    pending.append(pool.submit(os.fdatasync, fd))
            for p in pending:
                p.result()
            if sync:
                os.fsync(fd)
            os.close(fd)
            os.rename(dest / "f.tmp", dest / "f")
            pool.shutdown()

        timed_run("1 file: write all, fsync at the end (vault get today)", lambda d: big(d, None))
        timed_run("1 file: fdatasync every 64 MiB on another thread, fsync at the end", lambda d: big(d, 64 << 20))
        timed_run("1 file: fdatasync every 16 MiB on another thread, fsync at the end", lambda d: big(d, 16 << 20))
        timed_run("1 file: no fsync (restic restore, borg extract, tar)", lambda d: big(d, None, sync=False))
        nbytes = size
    else:
        files = [Path(r) / n for r, _, ns in os.walk(src) for n in ns if not os.path.islink(os.path.join(r, n))]
        contents = [(f.relative_to(src), f.read_bytes()) for f in files]
        nbytes = sum(len(c) for _, c in contents)
        dirs = sorted({str(rel.parent) for rel, _ in contents})

        def tree(dest: Path, mode: str, workers: int = 8) -> None:
            for d in dirs:
                (dest / d).mkdir(parents=True, exist_ok=True)
            pool = cf.ThreadPoolExecutor(workers) if mode == "pool" else None
            pending: list[cf.Future[None]] = []

            def finish(fd: int, tmp: Path, final: Path, sync: bool) -> None:
                if sync:
                    os.fsync(fd)
                os.close(fd)
                os.rename(tmp, final)

            for rel, content in contents:
                final = dest / rel
                tmp = final.with_name(f".{final.name}.tmp")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                os.write(fd, content)
                os.fchmod(fd, 0o644)
                os.utime(fd, ns=(0, 0))
                if pool is not None:
                    pending.append(pool.submit(finish, fd, tmp, final, True))
                    if len(pending) > 4 * workers:
                        pending.pop(0).result()
                else:
                    finish(fd, tmp, final, mode == "serial")
            for p in pending:
                p.result()
            if pool is not None:
                pool.shutdown()
            if mode == "sync-once":
                os.sync()

        timed_run("tree: per file write, fsync, rename, one at a time (vault get today)", lambda d: tree(d, "serial"))
        timed_run("tree: same, fsync + rename on 8 threads (group commit)", lambda d: tree(d, "pool", 8))
        timed_run("tree: same, fsync + rename on 32 threads", lambda d: tree(d, "pool", 32))
        timed_run("tree: no fsync, rename (restic, borg, tar)", lambda d: tree(d, "nosync"))
        timed_run("tree: no fsync per file, one sync() at the end", lambda d: tree(d, "sync-once"))
    execute()
    shutil.rmtree(out)
    print(f"### restore write strategies for {src.name} ({nbytes / 1e6:.0f} MB), median wall time of "
          f"{args.repeat}, warm cache")
    print()
    print("| strategy | wall s | MB/s |")
    print("| --- | ---: | ---: |")
    for name, w in rows:
        print(f"| {name} | {w:.2f} | {nbytes / w / 1e6:.0f} |")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("put", help="put PATH into a fresh vault in benchmarks/work/profile, with stage timing")
    p.add_argument("path")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--compression", type=int, default=3, metavar="LEVEL", help="zstd level, as put's option")
    p.add_argument("--malloc-stats", action="store_true", help="print glibc malloc_stats() after the put")
    p.add_argument("--no-entry-tuning", action="store_true",
                   help="experiment: skip what the console script does first (vault._entry._tune_malloc)")
    g = sub.add_parser("get", help="get what the last put stored, with stage timing")
    g.add_argument("--threads", type=int, default=2)
    m = sub.add_parser("micro", help="single-core speed of each primitive")
    m.add_argument("path")
    m.add_argument("--limit", type=int, default=256 << 20)
    f = sub.add_parser("fsync", help="restore write strategies (fsync per file, overlapped, none) on PATH's bytes")
    f.add_argument("path")
    f.add_argument("--repeat", type=int, default=3)
    s = sub.add_parser("pyspy", help="summarise a py-spy --format raw file")
    s.add_argument("raw")
    s.add_argument("--rate", type=int, default=100)
    args = ap.parse_args(argv)
    return {"put": cmd_put, "get": cmd_get, "micro": cmd_micro, "pyspy": cmd_pyspy, "fsync": cmd_fsync}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
