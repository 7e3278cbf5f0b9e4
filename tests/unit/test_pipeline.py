"""The ordered, bounded thread-pool runner and the content-defined chunker."""

from __future__ import annotations

import bisect
import functools
import io
import operator
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault import format as fmt
from vault.pipeline.chunker import Chunker
from vault.pipeline.runner import Pipeline, default_threads


class Tracker:
    """Counts concurrent calls and how many items the runner pulled but did not hand back yet."""

    def __init__(self, delay: float = 0.0) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.max_running = 0
        self.calls = 0
        self.delay = delay

    def __call__(self, x: int) -> int:
        with self.lock:
            self.running += 1
            self.calls += 1
            self.max_running = max(self.max_running, self.running)
        try:
            time.sleep(self.delay * random.random())
            return x * x
        finally:
            with self.lock:
                self.running -= 1


def test_ordered_keeps_input_order() -> None:
    with Pipeline(4) as p:
        t = Tracker(delay=0.003)
        assert list(p.ordered(t, range(200))) == [i * i for i in range(200)]
        assert list(p.ordered(t, [])) == []
        assert list(p.ordered(t, iter([7]))) == [49]


@pytest.mark.parametrize("limit", [1, 2, 3, 5])
def test_in_flight_is_bounded(limit: int) -> None:
    pulled = 0
    yielded = 0
    worst = 0

    def source() -> Iterator[int]:
        nonlocal pulled, worst
        for i in range(60):
            pulled += 1
            worst = max(worst, pulled - yielded)
            yield i

    t = Tracker(delay=0.002)
    with Pipeline(8) as p:  # more threads than the limit: only the window bounds the concurrency
        for r in p.ordered(t, source(), max_in_flight=limit):
            assert r == yielded * yielded
            yielded += 1
    assert yielded == 60
    assert t.max_running <= limit
    assert worst <= limit


def test_default_window_bounds_memory() -> None:
    with Pipeline(2) as p:
        assert p.max_in_flight == 2 * 2 + 2
        pulled = 0
        yielded = 0
        worst = 0

        def source() -> Iterator[int]:
            nonlocal pulled, worst
            for i in range(100):
                pulled += 1
                worst = max(worst, pulled - yielded)
                yield i

        for _ in p.ordered(lambda x: x, source()):
            yielded += 1
        assert worst <= p.max_in_flight


def test_threads_setting() -> None:
    assert default_threads() >= 1
    with Pipeline(0) as p:
        assert p.threads == default_threads()
    with Pipeline(1) as p:
        assert p.threads == 1


def test_first_exception_propagates_and_cancels_the_rest() -> None:
    calls: list[int] = []
    lock = threading.Lock()

    def fn(x: int) -> int:
        with lock:
            calls.append(x)
        if x == 3:
            time.sleep(0.05)  # the first failure in order is slow ...
            raise ValueError("item 3")
        if x == 5:
            raise KeyError("item 5")  # ... a later one fails first in time
        time.sleep(0.001)
        return x

    got: list[int] = []
    with Pipeline(2) as p:
        with pytest.raises(ValueError, match="item 3"):
            for r in p.ordered(fn, range(1000), max_in_flight=6):
                got.append(r)
        n = len(calls)
        time.sleep(0.05)
        assert len(calls) == n, "work kept running after the failure"
    assert got == [0, 1, 2]
    assert n <= 3 + 6 + 1


def test_source_exception_propagates_after_waiting_for_workers() -> None:
    running = threading.Event()
    finished: list[int] = []

    def fn(x: int) -> int:
        running.set()
        time.sleep(0.02)
        finished.append(x)
        return x

    def source() -> Iterator[int]:
        yield 1
        yield 2
        running.wait(1)
        raise OSError("disk went away")

    with Pipeline(2) as p:
        with pytest.raises(OSError, match="disk went away"):
            list(p.ordered(fn, source(), max_in_flight=4))
        # nothing still running once the error reached us
        n = len(finished)
        time.sleep(0.05)
        assert len(finished) == n


def test_early_close_cancels_pending_work() -> None:
    t = Tracker(delay=0.01)
    with Pipeline(2) as p:
        gen = p.ordered(t, range(10_000), max_in_flight=4)
        assert [next(gen) for _ in range(3)] == [0, 1, 4]
        gen.close()
        n = t.calls
        assert t.running == 0, "close() returned while workers were still running"
        time.sleep(0.05)
        assert t.calls == n
    assert n <= 3 + 4 + 1


def test_closing_after_the_pool_shut_down_does_not_hang() -> None:
    """A generator closed only after the pipeline (e.g. held by an exception's traceback): the work that
    shutdown cancelled is not waited for (it never runs, so wait() would never see it finish)."""
    release = threading.Event()

    def slow(x: int) -> int:
        if x:
            release.wait(5)  # item 1 runs and blocks; 2, 3 stay queued
        return x

    p = Pipeline(1)
    gen = p.ordered(slow, range(100), max_in_flight=4)
    assert next(gen) == 0
    closing = threading.Thread(target=p.close)  # cancels the queued items, waits for item 1
    closing.start()
    time.sleep(0.05)
    release.set()
    closing.join(5)
    closer = threading.Thread(target=gen.close, daemon=True)
    closer.start()
    closer.join(5)
    assert not closer.is_alive(), "closing the generator hung"


def test_break_out_of_the_loop_cancels() -> None:
    t = Tracker(delay=0.005)
    with Pipeline(2) as p:
        gen = p.ordered(t, range(10_000), max_in_flight=3)
        for r in gen:
            if r == 4:
                break
        gen.close()
        time.sleep(0.03)
        assert t.calls <= 2 + 3 + 1


def test_io_pool_can_be_used() -> None:
    with Pipeline(1) as p:
        names = set()

        def fn(x: int) -> int:
            names.add(threading.current_thread().name)
            return x

        assert list(p.ordered(fn, range(10), pool=p.io)) == list(range(10))
        assert all(n.startswith("vault-io") for n in names)


# -- the GIL guard -------------------------------------------------------------------------------------------
def _compressible_block(size: int) -> bytes:
    # Random text over a small alphabet: zstd works for its living (it compresses to about 60 %).
    alphabet = b"etaoin shrdlu\n"
    table = bytes(alphabet[i % len(alphabet)] for i in range(256))
    return random.Random(1234).randbytes(size).translate(table)


def _cpu_work(p: Pipeline, block: bytes, n: int) -> float:
    local = threading.local()
    key = AESGCM(bytes(32))

    def work(i: int) -> int:
        cctx = getattr(local, "cctx", None)
        if cctx is None:
            cctx = local.cctx = zstandard.ZstdCompressor(level=3)
        packed = cctx.compress(block)
        return len(key.encrypt(i.to_bytes(12, "little"), packed, b"aad"))

    start = time.perf_counter()
    sizes = list(p.ordered(work, range(n)))
    elapsed = time.perf_counter() - start
    assert len(sizes) == n and sizes[0] < len(block)
    return elapsed


# Marked slow: a wall-clock speedup needs an idle second core, and on this two-core VM a concurrent test run
# (load average 4-6) pulled it down to 0.9-1.25x in 4 of 9 runs. test_zstd_and_aes_gcm_release_the_gil below
# guards the same regression in every default run, in a way that load can't spoil.
@pytest.mark.slow
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
def test_two_threads_beat_one_for_zstd_and_aes_gcm() -> None:
    """spec/design.md: cryptography < 50.0.2 held the GIL in AEAD calls and quietly serialized the pool. zstd
    and AES-GCM on 4 MiB blocks must run faster on two threads than on one."""
    block = _compressible_block(fmt.CHUNK_MAX)
    with Pipeline(1) as one, Pipeline(2) as two:
        _cpu_work(one, block, 2)  # warm up both pools and the allocator
        _cpu_work(two, block, 2)
        # Size the work to about 0.5 s on one thread.
        probe = _cpu_work(one, block, 4) / 4
        n = max(8, min(64, int(0.5 / max(probe, 1e-4))))
        n += n % 2
        speedups = []
        # Interleaved rounds; the first clear result wins. A neighbour that keeps a core busy throughout
        # (another test run on this two-core machine) can still hide the speedup: see the next test.
        for _ in range(4):
            t1 = _cpu_work(one, block, n)
            t2 = _cpu_work(two, block, n)
            speedups.append(t1 / t2)
            if speedups[-1] > 1.3:
                break
    assert max(speedups) > 1.3, f"2 threads were not faster than 1: speedups {speedups}"


def _main_thread_runs_during(call: Callable[[], object], rounds: int = 12) -> int:
    """How many of ``rounds`` calls of ``call`` (a C callable: a builtin or a functools.partial of one) on a
    worker thread let the main thread run Python code while the call was under way.

    The worker takes its timestamps and makes the call inside one C-level ``map``, so no bytecode runs between
    them and the interpreter has no point at which to hand the GIL over. A call that holds the GIL therefore
    scores exactly 0, however loaded the machine is; one that releases it lets the main thread in, even on a
    single core, since the OS then interleaves both threads."""
    intervals: list[tuple[float, ...]] = []
    done = threading.Event()
    timed = (time.perf_counter, call, time.perf_counter)

    def worker() -> None:
        for _ in range(rounds):
            t0, _, t1 = map(operator.call, timed)
            intervals.append((t0, t1))
            time.sleep(0.003)
        done.set()

    stamps: list[float] = []
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    thread = threading.Thread(target=worker)
    try:
        thread.start()
        now = time.perf_counter
        while not done.is_set():
            for _ in range(50):
                pass
            stamps.append(now())
    finally:
        thread.join()
        sys.setswitchinterval(old)
    hits = 0
    for t0, t1 in intervals:
        i = bisect.bisect_right(stamps, t0)
        hits += i < len(stamps) and stamps[i] < t1
    return hits


def test_zstd_and_aes_gcm_release_the_gil() -> None:
    """The same guard as above, measured in a way that a busy machine can't spoil: while a worker thread is
    inside one long zstd or AES-GCM call, the main thread keeps running Python code. (One hit proves the GIL
    was released; a few are required. Not every call scores: a call of a few ms can be over before the main
    thread wakes up on this VM.)"""
    big = bytes(64 * 1024 * 1024)  # AES-GCM runs at several GB/s: a big buffer keeps one call a few ms long
    out = bytearray(len(big) + fmt.TAG_SIZE)
    aes = AESGCM(bytes(32))
    cctx = zstandard.ZstdCompressor(level=3)
    block = _compressible_block(fmt.CHUNK_MAX)
    # Control: a long C call that keeps the GIL. If the method can't see that, the other results mean nothing.
    assert _main_thread_runs_during(functools.partial(sum, range(3_000_000)), rounds=6) == 0
    assert _main_thread_runs_during(functools.partial(aes.encrypt_into, bytes(12), big, b"", out)) >= 3
    assert _main_thread_runs_during(functools.partial(cctx.compress, block)) >= 3


# -- chunker -------------------------------------------------------------------------------------------------
SEED = 0x1234_5678_9ABC_DEF1


@pytest.fixture(scope="module")
def data() -> bytes:
    return random.Random(99).randbytes(12 * 1024 * 1024)


def chunk_all(seed: int, data: bytes) -> list[bytes]:
    return list(Chunker(seed).chunks(io.BytesIO(data)))


def test_chunks_are_within_bounds_and_reassemble(data: bytes) -> None:
    chunks = chunk_all(SEED, data)
    assert b"".join(chunks) == data
    assert len(chunks) >= 3
    for c in chunks[:-1]:
        assert fmt.CHUNK_MIN <= len(c) <= fmt.CHUNK_MAX
    assert 0 < len(chunks[-1]) <= fmt.CHUNK_MAX
    assert all(type(c) is bytes for c in chunks)


def test_chunking_is_deterministic_for_a_seed(data: bytes) -> None:
    assert [len(c) for c in chunk_all(SEED, data)] == [len(c) for c in chunk_all(SEED, data)]


def test_different_seeds_cut_differently(data: bytes) -> None:
    def cuts(seed: int) -> set[int]:
        out, pos = set(), 0
        for c in chunk_all(seed, data):
            pos += len(c)
            out.add(pos)
        return out - {len(data)}

    a, b, c = cuts(SEED), cuts(SEED ^ (1 << 40)), cuts(3)
    assert a != b and a != c and b != c


@pytest.mark.parametrize("size", [0, 1, fmt.CHUNK_MIN - 1, fmt.CHUNK_MIN, fmt.CHUNK_MIN + 1, fmt.CHUNK_MAX + 1])
def test_small_and_boundary_inputs(size: int, data: bytes) -> None:
    chunks = chunk_all(SEED, data[:size])
    assert b"".join(chunks) == data[:size]
    if size == 0:
        assert chunks == []
    if 0 < size <= fmt.CHUNK_MIN:
        assert len(chunks) == 1
    assert all(len(c) <= fmt.CHUNK_MAX for c in chunks)


def test_cut_points_resynchronise_after_an_insertion(data: bytes) -> None:
    """Content-defined: inserting bytes near the start leaves most later chunks unchanged (dedup works)."""
    base = set(chunk_all(SEED, data))
    edited = set(chunk_all(SEED, data[:1000] + b"inserted" + data[1000:]))
    assert len(base & edited) >= len(base) - 3


def test_incompressible_zeros_hit_the_maximum() -> None:
    chunks = chunk_all(SEED, bytes(3 * fmt.CHUNK_MAX))
    assert [len(c) for c in chunks] == [fmt.CHUNK_MAX] * 3
