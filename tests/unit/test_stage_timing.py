"""The stage-timing hook (vault.pipeline.timing): the default does nothing, a timer hears about every stage of a
put and a get on the thread that runs it, stages nest, and timing changes nothing the data path does."""

from __future__ import annotations

import io
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import PASSWORD, random_bytes, text_bytes, write_file

from vault.archive import Putter
from vault.crypto import kdf
from vault.pipeline.chunker import Chunker
from vault.pipeline.runner import Pipeline
from vault.pipeline.timing import NO_TIMING, CallbackTimer, Stage
from vault.repo.repository import Repository
from vault.restore import Restorer, resolve
from vault.storage.local import LocalBackend

PUT_STAGES = {Stage.READ, Stage.CHUNK, Stage.HASH, Stage.DEDUP, Stage.COMPRESS, Stage.SEAL, Stage.PACK,
              Stage.UPLOAD, Stage.INDEX, Stage.WAIT_UPLOAD, Stage.WAIT_RESULT, Stage.WRITE, Stage.FSYNC}
GET_ONLY = {Stage.FETCH, Stage.OPEN, Stage.DECOMPRESS, Stage.SYNCFS}
HAS_SYNCFS = sys.platform.startswith("linux")


@dataclass(frozen=True)
class Span:
    name: str
    thread: str
    parent: str | None  # the stage it ran inside, on the same thread


class Recorder:
    """A StageTimer that remembers every stage it was told about, with its thread and the enclosing stage."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.spans: list[Span] = []
        self.open = 0
        self._local = threading.local()

    def stage(self, name: str) -> _Recording:
        return _Recording(self, name)

    def stack(self) -> list[str]:
        if not hasattr(self._local, "stack"):
            self._local.stack = []
        stack: list[str] = self._local.stack
        return stack

    def names(self) -> set[str]:
        return {s.name for s in self.spans}

    def of(self, name: str) -> list[Span]:
        return [s for s in self.spans if s.name == name]

    def clear(self) -> None:
        assert self.open == 0
        self.spans.clear()


class _Recording:
    def __init__(self, recorder: Recorder, name: str) -> None:
        self.r = recorder
        self.name = name

    def __enter__(self) -> None:
        stack = self.r.stack()
        self.parent = stack[-1] if stack else None
        stack.append(self.name)
        with self.r.lock:
            self.r.open += 1

    def __exit__(self, *exc: object) -> None:
        assert self.r.stack().pop() == self.name
        with self.r.lock:
            self.r.open -= 1
            self.r.spans.append(Span(self.name, threading.current_thread().name, self.parent))


# -- the default -------------------------------------------------------------------------------------------------


def test_the_default_timer_does_nothing(tmp_path: Path) -> None:
    with Pipeline(1) as pipe:
        assert pipe.timer is NO_TIMING
    assert LocalBackend(tmp_path).timer is NO_TIMING
    # One shared, stateless context manager whatever the stage: nothing is allocated per stage.
    cm = NO_TIMING.stage(Stage.COMPRESS)
    assert NO_TIMING.stage("anything else") is cm
    with cm as entered:
        assert entered is None
    with pytest.raises(ValueError, match="passes through"), NO_TIMING.stage(Stage.SEAL):
        raise ValueError("passes through")


def test_callback_timer_reports_each_stage_as_it_ends() -> None:
    heard: list[tuple[str, float]] = []
    timer = CallbackTimer(lambda name, seconds: heard.append((name, seconds)))
    with timer.stage(Stage.FSYNC):
        with timer.stage(Stage.WRITE):
            time.sleep(0.02)
        assert [n for n, _ in heard] == ["write"]
    assert [n for n, _ in heard] == ["write", "fsync"]
    assert heard[0][1] >= 0.015 and heard[1][1] >= heard[0][1]  # wall time, nested stages included
    with pytest.raises(KeyError), timer.stage(Stage.OPEN):
        raise KeyError("a failing stage still ends")
    assert heard[-1][0] == "open"


# -- a put and a get ---------------------------------------------------------------------------------------------


def test_put_and_get_report_every_stage(tmp_path: Path, cheap_kdf: kdf.KdfParams) -> None:
    rec = Recorder()
    src = tmp_path / "src"
    big = random_bytes(3 << 20, seed=5) + text_bytes(3 << 20, seed=6)  # incompressible, then compressible
    write_file(src / "big.bin", big)
    write_file(src / "small.txt", text_bytes(20_000, seed=7))
    repo = Repository.create(LocalBackend(tmp_path / "vault", timer=rec), PASSWORD.encode(), cheap_kdf)
    rec.clear()

    with Pipeline(2, timer=rec) as pipe:
        putter = Putter(repo, pipe)
        putter.commit([putter.add_path(str(src), None)])
    put = rec.names()
    assert put >= PUT_STAGES and not put & GET_ONLY and rec.open == 0
    threads = {name: {s.thread.rsplit("_", 1)[0] for s in rec.of(name)} for name in put}
    assert threads[Stage.READ] == threads[Stage.CHUNK] == {"MainThread"}
    # A file's chunks are encoded on the workers, the trees (one small blob each) on the main thread.
    assert threads[Stage.HASH] == threads[Stage.COMPRESS] == threads[Stage.SEAL] == {"vault-cpu", "MainThread"}
    assert threads[Stage.UPLOAD] == {"vault-io"}
    # Stages nest: every read is the chunker's; a pack's bytes are written and fsynced inside its upload.
    assert {s.parent for s in rec.of(Stage.READ)} == {Stage.CHUNK}
    assert {s.parent for s in rec.of(Stage.WRITE) if s.thread.startswith("vault-io")} == {Stage.UPLOAD, Stage.INDEX}
    assert Stage.UPLOAD in {s.parent for s in rec.of(Stage.FSYNC)}

    rec.clear()
    record, node, _ = resolve(repo, "src", None)
    with Pipeline(2, timer=rec) as pipe:
        Restorer(repo, pipe).restore(record, node, str(tmp_path / "tree"), force=False)
        _, file_node, _ = resolve(repo, "src/small.txt", None)
        Restorer(repo, pipe).restore(record, file_node, str(tmp_path / "one.txt"), force=False)
    get = rec.names()
    assert get >= {Stage.FETCH, Stage.OPEN, Stage.DECOMPRESS, Stage.WRITE, Stage.FSYNC, Stage.WAIT_RESULT}
    assert (Stage.SYNCFS in get) == HAS_SYNCFS and rec.open == 0
    assert {s.thread.rsplit("_", 1)[0] for s in rec.of(Stage.OPEN)} == {"vault-cpu"}
    assert (tmp_path / "tree" / "big.bin").read_bytes() == big
    assert (tmp_path / "one.txt").read_bytes() == (src / "small.txt").read_bytes()

    assert put | get == set(Stage) - (set() if HAS_SYNCFS else {Stage.SYNCFS})  # every stage is reported


class _ReadOnly:
    """A stream with read() only (no readinto)."""

    def __init__(self, data: bytes) -> None:
        self._f = io.BytesIO(data)

    def read(self, n: int = -1, /) -> bytes:
        return self._f.read(n)


@pytest.mark.parametrize("size", [0, 100_000, 9 << 20])
def test_a_timed_chunker_cuts_the_same_chunks(size: int) -> None:
    data = random_bytes(size // 2, seed=8) + text_bytes(size - size // 2, seed=9)
    untimed = list(Chunker(1234).chunks(io.BytesIO(data), size))
    rec = Recorder()
    assert list(Chunker(1234, rec).chunks(io.BytesIO(data), size)) == untimed
    assert list(Chunker(1234, rec).chunks(io.BytesIO(data))) == untimed
    assert list(Chunker(1234, rec).chunks(_ReadOnly(data), size)) == untimed  # type: ignore[arg-type]
    assert rec.names() == {Stage.CHUNK, Stage.READ} and rec.open == 0
    assert b"".join(untimed) == data
