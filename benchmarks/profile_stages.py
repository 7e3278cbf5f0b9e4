#!/usr/bin/env python3
"""Where does the time of a `vault put` / `vault get` go? Stage accounting by thread, in-process.

    python benchmarks/profile_stages.py put benchmarks/data/mixed.bin --threads 2
    python benchmarks/profile_stages.py get --threads 2          # restores what the last `put` stored
    python benchmarks/profile_stages.py micro benchmarks/data/mixed.bin   # single-core costs of the primitives

Runs the real command line (``vault.cli.run``) in this process with thin timing wrappers around the stages of
the data path (read, chunk, BLAKE3, zstd, AES-GCM, pack building, write, fsync, index, waits). Each wrapper
records wall time and *thread CPU time* (``time.thread_time``) exclusive of the wrapped stages it calls, per
thread role (main, vault-cpu workers, vault-io). CPU times do not depend on what else the machine runs, so the
breakdown holds on a shared machine; wall times do. Nothing in vault/ is changed: the wrappers are installed
by assignment at run time. Overhead: a few microseconds per call (about a thousand calls per GiB).

py-spy gives the sampled view of the same run:
    py-spy record --threads --idle --rate 100 --format raw -o put.raw -- .venv/bin/vault put FILE
and ``python benchmarks/profile_stages.py pyspy put.raw`` summarises such a file by thread and activity.
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import re
import resource
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORK = HERE / "work" / "profile"
PASSWORD = "benchmark-password-not-secret"

# -- accounting --------------------------------------------------------------------------------------------

_tls = threading.local()
_lock = threading.Lock()
STATS: dict[tuple[str, str], list[float]] = collections.defaultdict(lambda: [0, 0.0, 0.0])


def _role() -> str:
    name = threading.current_thread().name
    if name == "MainThread":
        return "main"
    return re.sub(r"_\d+$", "", name)


class _Frame:
    __slots__ = ("c0", "cc", "cw", "stage", "w0")

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.cw = 0.0
        self.cc = 0.0
        self.c0 = time.thread_time()
        self.w0 = time.perf_counter()


def _enter(stage: str) -> None:
    stack = getattr(_tls, "stack", None)
    if stack is None:
        stack = _tls.stack = []
    stack.append(_Frame(stage))


def _exit() -> None:
    w1 = time.perf_counter()
    c1 = time.thread_time()
    stack = _tls.stack
    f = stack.pop()
    w, c = w1 - f.w0, c1 - f.c0
    with _lock:
        s = STATS[(_role(), f.stage)]
        s[0] += 1
        s[1] += w - f.cw
        s[2] += c - f.cc
    if stack:
        stack[-1].cw += w
        stack[-1].cc += c


def timed(stage: str | Callable[..., str], fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _enter(stage(*args, **kwargs) if callable(stage) else stage)
        try:
            return fn(*args, **kwargs)
        finally:
            _exit()

    return wrapper


def timed_gen(stage: str, fn: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    """Time the generator's own work (each next()), not its consumer's."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
        if SAMPLER is not None:
            SAMPLER.mark_start()
        gen = fn(*args, **kwargs)
        while True:
            _enter(stage)
            try:
                item = next(gen)
            except StopIteration:
                return
            finally:
                _exit()
            yield item

    return wrapper


def patch(obj: Any, name: str, stage: str, gen: bool = False) -> None:
    fn = getattr(obj, name)
    setattr(obj, name, (timed_gen if gen else timed)(stage, fn))


class _TimedFile:
    """Stands in for the file objects vault reads from and writes to, timing read/readinto/write."""

    def __init__(self, fh: Any) -> None:
        self._fh = fh

    def readinto(self, buf: Any) -> int:
        _enter("read file (readinto)")
        try:
            return self._fh.readinto(buf)
        finally:
            _exit()

    def read(self, n: int = -1) -> bytes:
        _enter("read file (read)")
        try:
            return self._fh.read(n)
        finally:
            _exit()

    def write(self, data: Any) -> int:
        _enter("write restored file")
        try:
            return self._fh.write(data)
        finally:
            _exit()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)

    def __enter__(self) -> _TimedFile:
        self._fh.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self._fh.__exit__(*exc)


class _TimedCodec:
    def __init__(self, obj: Any) -> None:
        self._obj = obj

    def compress(self, data: Any) -> bytes:
        _enter("zstd compress")
        try:
            return self._obj.compress(data)
        finally:
            _exit()

    def decompress(self, data: Any, *args: Any, **kwargs: Any) -> bytes:
        _enter("zstd decompress")
        try:
            return self._obj.decompress(data, *args, **kwargs)
        finally:
            _exit()


def _result_stage(*_args: Any, **_kwargs: Any) -> str:
    caller = sys._getframe(2).f_code.co_name
    return {"ordered": "wait: next result of the CPU pool", "_complete_one": "wait: pack upload (back-pressure)"}.get(
        caller, f"wait: future in {caller}"
    )


def install() -> None:
    """Wrap the stages of vault's data path. Only names looked up at call time can be wrapped this way."""
    import concurrent.futures
    import io

    import vault.crypto.aead as aead
    import vault.crypto.kdf as kdf
    import vault.crypto.keyring as keyring
    import vault.pipeline.chunker as chunker
    import vault.repo.blobs as blobs
    import vault.repo.catalog as catalog
    import vault.repo.packs as packs
    import vault.repo.repository as repository
    import vault.repo.writer as writer
    import vault.storage.local as local

    patch(kdf, "hash_secret_raw", "argon2id (KDF)")
    patch(repository, "load_index", "load index")
    patch(chunker.Chunker, "chunks", "chunk: FastCDC cut + copy out", gen=True)
    patch(keyring.Keyring, "blob_id", "blob id (keyed BLAKE3)")
    if hasattr(blobs, "_worth_compressing"):
        patch(blobs, "_worth_compressing", "zstd probe (64 KiB sample)")
    patch(aead.Aead, "seal", "AES-GCM seal (+nonce, concat)")
    patch(aead.Aead, "open", "AES-GCM open")
    patch(writer, "seal_blob", "seal_blob (rest)")  # imported by name: wrap where it is looked up
    patch(repository, "open_blob", "open_blob (rest)")
    real_c, real_d = blobs._compressor, blobs._decompressor
    blobs._compressor = lambda level: _TimedCodec(real_c(level))
    blobs._decompressor = lambda: _TimedCodec(real_d())
    patch(writer.BlobWriter, "_encode", "encode (dedup check, rest)")
    patch(writer.BlobWriter, "_add", "pack: add blob")
    patch(packs.PackBuilder, "finish_parts", "pack: header")
    patch(writer, "write_index", "index object (encode+seal+save)")
    patch(catalog, "commit_record", "version record")
    patch(local, "_write_all", "write object (os.write)")
    patch(local, "_fsync_dir", "fsync directory")
    patch(local.LocalBackend, "load", "read object (pread)")
    patch(local.LocalBackend, "remove", "remove object")
    patch(os, "fsync", "fsync file")
    patch(repository.Repository, "load_blob", "load_blob (rest)")
    concurrent.futures.Future.result = timed(_result_stage, concurrent.futures.Future.result)  # type: ignore
    real_fdopen = os.fdopen

    def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
        fh = real_fdopen(fd, *args, **kwargs)
        return _TimedFile(fh) if isinstance(fh, (io.FileIO, io.BufferedWriter, io.BufferedReader)) else fh

    os.fdopen = fdopen  # type: ignore[assignment]
    try:
        import vault.ops.put as put

        patch(put.Putter, "add_path", "scan tree (stat, previous version)")
        patch(put.Putter, "_node", "build trees")
    except (ImportError, AttributeError):
        pass


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


SAMPLER: RssSampler | None = None


class _Parts(list):  # type: ignore[type-arg]
    """A pack as its list of parts (experiment --pack-writev): written with os.writev, never joined."""


def install_experiments(args: argparse.Namespace) -> list[str]:
    """Changes to try without editing vault/: module constants (--set) and writing packs unjoined."""
    import importlib

    done = []
    for item in args.set or []:
        target, _, value = item.partition("=")
        mod_name, _, attr = target.rpartition(".")
        mod = importlib.import_module(mod_name)
        setattr(mod, attr, type(getattr(mod, attr))(value))
        done.append(f"{target}={value}")
    if args.pack_writev:
        import struct

        import vault.format as fmt
        import vault.repo.packs as packs
        import vault.storage.local as local

        def finish(self: Any, key: Any, vault_id: bytes) -> _Parts:  # PackBuilder.finish without the join
            header = key.meta.seal(fmt.encode_entries(self.entries), fmt.pack_header_aad(vault_id, self.name))
            parts = _Parts([*self._parts, header, struct.pack("<I", len(header))])
            self._parts = []
            return parts

        orig_save = local.LocalBackend.save

        def save(self: Any, h: Any, data: Any) -> None:  # LocalBackend.save for a list of parts
            if not isinstance(data, _Parts):
                return orig_save(self, h, data)
            path = self.path_of(h)
            try:
                fd, tmp = local._create_temp(path.parent)
            except FileNotFoundError:
                self._make_dirs(path.parent, stop=self.root)
                fd, tmp = local._create_temp(path.parent)
            try:
                os.fchmod(fd, 0o600)
                _enter("write object (os.writev)")
                try:
                    views = [memoryview(p) for p in data]
                    while views:
                        n = os.writev(fd, views[:1024])
                        while n and views:
                            if n >= len(views[0]):
                                n -= len(views[0])
                                views.pop(0)
                            else:
                                views[0] = views[0][n:]
                                n = 0
                finally:
                    _exit()
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            local._fsync_dir(path.parent)
            return None

        packs.PackBuilder.finish = finish  # type: ignore[method-assign]
        local.LocalBackend.save = save  # type: ignore[method-assign]
        done.append("packs written with os.writev from their parts, never joined")
    return done


def report(wall: float, cpu: float, nbytes: int, title: str) -> str:
    lines = [f"### {title}", ""]
    lines.append(f"wall {wall:.2f} s, process CPU {cpu:.2f} s (user+sys) = {cpu / wall:.2f} cores, "
                 f"{nbytes / wall / 1e6:.0f} MB/s")
    if SAMPLER is not None:
        start = SAMPLER.at_start or 0
        lines.append("")
        started = f"{start / 2**20:.0f} MiB when the data path started (after unlock), " if start else ""
        lines.append(f"RSS: {started}peak "
                     f"{SAMPLER.peak / 2**20:.0f} MiB during the command (sampled every 2 ms); "
                     f"ru_maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB "
                     "(includes argon2id's 64 MiB)")
    lines.append("")
    lines.append("| thread | stage | calls | wall s | CPU s | MB/s of CPU |")
    lines.append("| --- | --- | ---: | ---: | ---: | ---: |")
    roles = sorted({r for r, _ in STATS}, key=lambda r: (r != "main", r))
    tracked = 0.0
    for role in roles:
        rows = sorted(((st, v) for (r, st), v in STATS.items() if r == role), key=lambda x: -x[1][1])
        for st, (calls, w, c) in rows:
            if w < 0.005 and c < 0.005:
                continue
            tracked += c
            rate = f"{nbytes / c / 1e6:.0f}" if c > 0.01 and not st.startswith("wait") else ""
            lines.append(f"| {role} | {st} | {int(calls)} | {w:.2f} | {c:.2f} | {rate} |")
    lines.append(f"| all | not in a wrapped stage (interpreter, imports, CLI, glue) | | | {cpu - tracked:.2f} | |")
    lines.append("")
    main_wall = sum(v[1] for (r, _), v in STATS.items() if r == "main")
    lines.append(f"main thread: {main_wall:.2f} s of the {wall:.2f} s wall is in wrapped stages "
                 f"(waits included); the rest is start-up, glue and interpreter work.")
    for role in roles:
        if role == "main":
            continue
        busy = sum(v[1] for (r, st), v in STATS.items() if r == role and not st.startswith("wait"))
        cpu_r = sum(v[2] for (r, _), v in STATS.items() if r == role)
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


def run_cli(argv: list[str]) -> tuple[int, float, float]:
    from vault.cli import run

    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    code = run(argv)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return code, wall, cpu


def cmd_put(args: argparse.Namespace) -> int:
    global SAMPLER
    if not args.no_entry_tuning:
        _as_console_script()
    os.environ["VAULT_PASSWORD"] = PASSWORD
    os.environ.setdefault("VAULT_LOG_DIR", str(WORK / "logs"))
    vault = WORK / "vault"
    if vault.exists():
        shutil.rmtree(vault)
    WORK.mkdir(parents=True, exist_ok=True)
    from vault.cli import run

    if run(["--vault", str(vault), "-q", "init"]) != 0:
        return 1
    src = Path(args.path).resolve()
    nbytes = src.stat().st_size if src.is_file() else sum(
        os.lstat(os.path.join(r, n)).st_size for r, _, ns in os.walk(src) for n in ns)
    install()
    changes = install_experiments(args)
    os.sync()
    with RssSampler() as SAMPLER:
        code, wall, cpu = run_cli(["--vault", str(vault), "-q", "--threads", str(args.threads), "put", str(src)])
    (WORK / "last-item").write_text(f"{src.name}\n{nbytes}\n")
    if args.malloc_stats:
        import ctypes
        import gc

        gc.collect()
        sys.stderr.flush()
        ctypes.CDLL("libc.so.6").malloc_stats()  # to stderr: per arena, system bytes vs in use
    title = f"vault --threads {args.threads} put {src.name} (exit {code})"
    if changes:
        title += "; experiment: " + ", ".join(changes)
    print(report(wall, cpu, nbytes, title))
    return code


def cmd_get(args: argparse.Namespace) -> int:
    global SAMPLER
    _as_console_script()
    os.environ["VAULT_PASSWORD"] = PASSWORD
    os.environ.setdefault("VAULT_LOG_DIR", str(WORK / "logs"))
    name, nbytes = (WORK / "last-item").read_text().split()
    out = WORK / "out"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    install()
    os.sync()
    with RssSampler() as SAMPLER:
        code, wall, cpu = run_cli(["--vault", str(WORK / "vault"), "-q", "--threads", str(args.threads), "get",
                                   name, "-o", str(out / name)])
    print(report(wall, cpu, int(nbytes), f"vault --threads {args.threads} get {name} (exit {code})"))
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
    p.add_argument("--set", action="append", metavar="MODULE.NAME=VALUE",
                   help="experiment: override a module constant, e.g. vault.repo.writer.MAX_UPLOADS_IN_FLIGHT=1")
    p.add_argument("--malloc-stats", action="store_true", help="print glibc malloc_stats() after the put")
    p.add_argument("--no-entry-tuning", action="store_true",
                   help="experiment: skip what the console script does first (vault._entry._tune_malloc)")
    p.add_argument("--pack-writev", action="store_true",
                   help="experiment (historical: vault does this itself since the writev change, so it is a "
                        "no-op there): write packs from their parts with os.writev instead of joining them")
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
