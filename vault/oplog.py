"""The operation log behind ``vault log``: one JSON line per command run against a vault from this machine.

The log lives in the user's state directory, ``platformdirs.user_state_path("vault") / "logs"`` (on Linux
``~/.local/state/vault/logs``), one file per vault named after a hash of the vault's location, so that the
file name does not reveal where the vault is. Files have mode 0600 and directories 0700: the records name
the vault's location and the commands run on it.

Writing the log never fails a command: any error while logging is swallowed (and reported to the
``logging`` module at debug level). Each record is appended with ``O_APPEND`` and one ``write``, so
records of processes that run at the same time do not interleave. When a file grows beyond ``max_bytes``
it is rotated (``x.jsonl`` -> ``x.jsonl.1`` -> ... -> ``x.jsonl.<keep>``) under an advisory lock, so that
two processes rotating at once don't lose a file.

Error messages are the last thing that could carry a secret into the log: :func:`redact` (applied by
:meth:`OperationLog.append` when given the secrets) replaces them with ``***`` where they stand as words of
their own (never inside a path or a longer word).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import re
import stat
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from vault.errors import StorageError

__all__ = [
    "OUTCOMES",
    "OpRecord",
    "OperationLog",
    "default_log_dir",
    "ensure_private_dir",
    "format_error",
    "redact",
    "utc_now_iso",
    "vault_key",
]

log = logging.getLogger(__name__)

OUTCOMES = ("success", "error", "partial", "interrupted")

_REDACTED = "***"
_LOCK_WAIT_S = 2.0


def utc_now_iso() -> str:
    """The current time as ISO 8601 in UTC with milliseconds, e.g. ``2026-11-25T01:02:03.456Z``."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def format_error(exc: BaseException) -> str:
    """``ClassName: first line of the message``, the form of :attr:`OpRecord.error`."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def redact(text: str, secrets: Iterable[bytes]) -> str:
    """``text`` with every non-empty secret that stands as a word of its own replaced by ``***``.

    Secrets are kept out of messages by construction (they are never formatted into one); this is the last
    line of defence, and it redacts exact values only: an occurrence glued to a letter, digit, ``_`` or ``/`` is
    part of a longer word or a path (the password ``main`` in ``/work/main/vault``), which it leaves alone, so a
    short password neither mangles every path of a bug report nor points at itself there. A secret is looked
    for as UTF-8 text (undecodable bytes dropped, and also as ``surrogateescape`` text, the way Python shows
    undecodable bytes of arguments and environment). Longer secrets are replaced first so that a secret
    containing another is not left half visible.
    """
    needles: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        for errors in ("ignore", "surrogateescape"):
            decoded = secret.decode("utf-8", errors)
            if decoded:
                needles.add(decoded)
    for needle in sorted(needles, key=len, reverse=True):
        if needle in text:  # the common case: nothing to do, no pattern to build
            text = re.sub(rf"(?<![\w/]){re.escape(needle)}(?![\w/])", _REDACTED, text)
    return text


def vault_key(location: str) -> str:
    """The log file's stem: the first 32 hex digits of SHA-256 of the vault's location string."""
    return hashlib.sha256(location.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def default_log_dir() -> Path:
    """``user_state_path("vault") / "logs"``."""
    return platformdirs.user_state_path("vault") / "logs"


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` and any missing parent with mode 0700. Existing directories are left as they are."""
    missing: list[Path] = []
    current = path
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o700)


@dataclass
class OpRecord:
    """One command run against a vault.

    ``outcome`` is one of :data:`OUTCOMES`; ``bytes`` the bytes the command read or wrote, when it has
    such a number; ``error`` is ``ClassName: one-line message`` (see :func:`format_error`); ``extra``
    holds anything else worth keeping (recovery actions, counts), JSON-serializable.
    """

    time: str
    command: str
    outcome: str
    exit_code: int
    duration_s: float
    bytes: int | None = None
    error: str | None = None
    location: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: object) -> OpRecord:
        """Parse one decoded JSON line; ``ValueError`` when it is not a record."""
        if not isinstance(data, dict):
            raise ValueError("not an object")

        def get(name: str, types: tuple[type, ...], default: object = ...) -> object:
            if name not in data:
                if default is ...:
                    raise ValueError(f"missing {name}")
                return default
            value = data[name]
            # bool is an int subclass; a bool is never a valid number here.
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                raise ValueError(f"bad {name}")
            return value

        time_ = get("time", (str,))
        command = get("command", (str,))
        outcome = get("outcome", (str,))
        exit_code = get("exit_code", (int,))
        duration = get("duration_s", (int, float))
        nbytes = get("bytes", (int, type(None)), None)
        error = get("error", (str, type(None)), None)
        location = get("location", (str,), "")
        extra = get("extra", (dict,), {})
        assert isinstance(time_, str) and isinstance(command, str) and isinstance(outcome, str)
        assert isinstance(exit_code, int) and isinstance(duration, int | float)
        assert nbytes is None or isinstance(nbytes, int)
        assert error is None or isinstance(error, str)
        assert isinstance(location, str) and isinstance(extra, dict)
        return cls(
            time=time_,
            command=command,
            outcome=outcome,
            exit_code=exit_code,
            duration_s=float(duration),
            bytes=nbytes,
            error=error,
            location=location,
            extra=extra,
        )


class OperationLog:
    """The operation log of one vault location.

    ``base_dir`` is the directory that holds the ``.jsonl`` files (default :func:`default_log_dir`; the
    CLI passes ``VAULT_LOG_DIR`` when set). ``max_bytes`` is the size at which the file is rotated and
    ``keep`` how many rotated files are kept.
    """

    def __init__(
        self, location: str, base_dir: Path | None = None, max_bytes: int = 1_048_576, keep: int = 3
    ) -> None:
        self.location = location
        self.base_dir = Path(base_dir) if base_dir is not None else default_log_dir()
        self.max_bytes = max_bytes
        self.keep = max(0, keep)
        self.path = self.base_dir / f"{vault_key(location)}.jsonl"

    def __repr__(self) -> str:
        return f"OperationLog(path={str(self.path)!r})"

    # ------------------------------------------------------------------------------------------ writing

    def append(self, rec: OpRecord, *, secrets: Iterable[bytes] = ()) -> None:
        """Append one record. Never raises for an I/O problem: logging must not fail the command.

        ``secrets`` (passwords in use) are redacted from the record's error and string extras first.
        """
        try:
            line = self._encode(rec, list(secrets))
        except (TypeError, ValueError) as exc:
            log.debug("operation log: record not written: %s", format_error(exc))
            return
        try:
            ensure_private_dir(self.base_dir)
            with self._rotation_lock() as locked:
                if locked:
                    self._rotate_if_needed(len(line))
                self._write_line(line)
        except OSError as exc:
            log.debug("operation log %s not written: %s", self.path, format_error(exc))

    def _encode(self, rec: OpRecord, secrets: list[bytes]) -> bytes:
        data = rec.to_json()
        if secrets:
            if isinstance(rec.error, str):
                data["error"] = redact(rec.error, secrets)
            data["extra"] = _redact_tree(data["extra"], secrets)
        text = json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":"), default=str)
        return text.encode("ascii") + b"\n"

    def _write_line(self, line: bytes) -> None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        flags |= getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(self.path, flags, 0o600)
        try:
            st = os.fstat(fd)
            if stat.S_IMODE(st.st_mode) & 0o077:
                os.fchmod(fd, 0o600)
            view = memoryview(line)
            while view:  # one write for a line this small; the loop only covers a short write
                written = os.write(fd, view)
                view = view[written:]
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _rotation_lock(self) -> Iterator[bool]:
        """An advisory lock on ``<key>.lock`` beside the log; yields False when it can't be had soon
        (then the record is still appended, only rotation is skipped this time)."""
        try:
            import fcntl
        except ImportError:  # not POSIX: rotate without a lock
            yield True
            return
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            # Never through a link planted in the log directory (VAULT_LOG_DIR may be anywhere): O_CREAT would
            # create or open whatever it points at. Refused (ELOOP), the record is still written, unrotated.
            flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
            fd = os.open(lock_path, flags, 0o600)
        except OSError as exc:
            log.debug("operation log: no rotation lock: %s", format_error(exc))
            fd = -1
        if fd < 0:
            yield False
            return
        try:
            deadline = time.monotonic() + _LOCK_WAIT_S
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(0.01)
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _rotated(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{n}")

    def _rotate_if_needed(self, incoming: int) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size == 0 or size + incoming <= self.max_bytes:
            return
        if self.keep == 0:
            self.path.unlink()
            return
        with contextlib.suppress(FileNotFoundError):
            self._rotated(self.keep).unlink()
        for n in range(self.keep - 1, 0, -1):
            with contextlib.suppress(FileNotFoundError):
                os.replace(self._rotated(n), self._rotated(n + 1))
        os.replace(self.path, self._rotated(1))

    # ------------------------------------------------------------------------------------------ reading

    def read(self, n: int | None = None) -> list[OpRecord]:
        """The most recent ``n`` records (all when ``None``), oldest first, from rotated files too.

        Lines that are not valid records are skipped. No log yet: an empty list. A log file that exists
        but can't be read: :class:`StorageError` (exit 30).
        """
        if n is not None and n <= 0:
            return []
        newest_first: list[list[OpRecord]] = []
        count = 0
        for path in [self.path, *(self._rotated(i) for i in range(1, self.keep + 1))]:
            records = self._read_file(path)
            newest_first.append(records)
            count += len(records)
            if n is not None and count >= n:
                break
        out = [rec for records in reversed(newest_first) for rec in records]
        return out[-n:] if n is not None else out

    @staticmethod
    def _read_file(path: Path) -> list[OpRecord]:
        try:
            raw = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise StorageError(
                f"can't read the operation log '{path}': {exc.strerror or type(exc).__name__}"
            ) from None
        records: list[OpRecord] = []
        for line in raw.split(b"\n"):
            if not line.strip():
                continue
            try:
                records.append(OpRecord.from_json(json.loads(line)))
            except (ValueError, UnicodeDecodeError, RecursionError):
                log.debug("operation log %s: skipped a corrupt line", path)
        return records


def _redact_tree(value: object, secrets: list[bytes]) -> object:
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {str(k): _redact_tree(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_tree(v, secrets) for v in value]
    return value
