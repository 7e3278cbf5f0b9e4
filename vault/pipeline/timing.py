"""Stage timing: a hook the data path calls around each of its stages, for profilers.

A :class:`Pipeline <vault.pipeline.runner.Pipeline>` carries one :class:`StageTimer` (``Pipeline(threads,
timer=...)``), and the code of each stage asks it for a context manager around its work::

    with timer.stage(Stage.COMPRESS):
        packed = cctx.compress(data)

The writer, the chunker and the restorer take the timer from their pipeline and hand it to the pure functions
they call on worker threads (``seal_blob(..., timer=...)``, ``Repository.load_blob(..., timer=...)``);
:class:`~vault.storage.local.LocalBackend` takes one of its own (``LocalBackend(root, timer=...)``) for its
writes and fsyncs. Nothing is global: a command that passes no timer gets :data:`NO_TIMING`, whose ``stage``
returns one shared object with empty ``__enter__``/``__exit__``, so the hot path pays a method call and an empty
``with`` per stage (well under a microsecond, against a chunk's milliseconds).

The contract of a :class:`StageTimer`:

- ``stage`` is called from every thread of the data path (the main thread, the ``vault-cpu`` and ``vault-io``
  pools), concurrently: an implementation must be thread-safe.
- Stages nest on a thread: a stage's interval includes the stages entered inside it (:attr:`Stage.CHUNK` holds
  the :attr:`Stage.READ` calls its chunker makes; :attr:`Stage.UPLOAD` of a pack to a local directory holds its
  :attr:`Stage.WRITE` and :attr:`Stage.FSYNC`). A timer that wants exclusive times keeps a stack per thread, as
  ``benchmarks/profile_stages.py`` does.
- The context manager never swallows an exception (``__exit__`` returns a false value), and timing changes
  nothing the stage does. A stage that fails still ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from enum import StrEnum
from typing import Protocol

__all__ = ["NO_TIMING", "CallbackTimer", "NoTiming", "Stage", "StageTimer"]


class Stage(StrEnum):
    """The stages the data path reports. A timer also accepts other names (a profiler times its own steps)."""

    # put
    READ = "read"
    """Reading a source file: each read the chunker makes (inside CHUNK)."""
    CHUNK = "chunk"
    """Producing a file's next chunk: FastCDC's cut and the copy out of its buffer, reads included."""
    HASH = "hash"
    """The blob id: keyed BLAKE3 of the plaintext."""
    DEDUP = "dedup"
    """Looking the id up in the index and in the blobs this put claimed (lock wait included)."""
    COMPRESS = "compress"
    """zstd: the 64 KiB probe, and compressing the chunk when the probe says it pays."""
    SEAL = "seal"
    """AES-GCM encryption of one blob."""
    PACK = "pack"
    """Adding a sealed blob to the pack being built, and sealing a full pack's header."""
    UPLOAD = "upload"
    """Storing a pack through the backend (a local directory: WRITE and FSYNC inside)."""
    INDEX = "index"
    """Writing index objects: a pack's checkpoint, and at the end the merged index (checkpoints removed)."""
    WAIT_UPLOAD = "wait: upload"
    """The main thread waiting for a pack upload to finish (back-pressure, and at the end of a put)."""
    # both
    WAIT_RESULT = "wait: next result"
    """Waiting for the next result, in order, of :meth:`Pipeline.ordered <vault.pipeline.runner.Pipeline.ordered>`
    (the consumer is ahead of the workers)."""
    WRITE = "write"
    """Writing bytes to a file: an object of a local vault, or a restored file."""
    FSYNC = "fsync"
    """fsync of a file or directory: an object of a local vault, or a restored file."""
    # get
    FETCH = "fetch"
    """Reading one sealed blob from the backend."""
    OPEN = "open"
    """Authenticating and decrypting one blob (AES-GCM)."""
    DECOMPRESS = "decompress"
    """zstd decompression of one blob."""
    SYNCFS = "syncfs"
    """syncfs(2) of a file system a tree restore wrote to (one per batch of files)."""


class StageTimer(Protocol):
    """Told when each stage of the data path starts and ends; see the module's docstring for the contract."""

    def stage(self, name: str) -> AbstractContextManager[object]:
        """A context manager around one run of stage ``name`` (usually a :class:`Stage`) on the calling thread."""
        ...


class _Nothing:
    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NOTHING = _Nothing()


class NoTiming:
    """The default timer: every stage is the same empty context manager. Stateless, so one instance serves all."""

    __slots__ = ()

    def stage(self, name: str) -> AbstractContextManager[object]:
        return _NOTHING


NO_TIMING: StageTimer = NoTiming()
"""What the data path uses when no timer is given (compare with ``is`` to skip work only a timer needs)."""


class _Timed:
    __slots__ = ("_callback", "_name", "_start")

    def __init__(self, callback: Callable[[str, float], None], name: str) -> None:
        self._callback = callback
        self._name = name
        self._start = 0.0

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self._callback(self._name, time.perf_counter() - self._start)


class CallbackTimer:
    """A :class:`StageTimer` that calls ``on_stage(name, seconds)`` as each stage ends (wall time, nested stages
    included, also when the stage raised). ``on_stage`` runs on the stage's thread, concurrently with other
    calls, and must be thread-safe and quick; an exception it raises propagates out of the stage."""

    __slots__ = ("_on_stage",)

    def __init__(self, on_stage: Callable[[str, float], None]) -> None:
        self._on_stage = on_stage

    def stage(self, name: str) -> AbstractContextManager[object]:
        return _Timed(self._on_stage, name)
