"""Logging for the ``vault`` command: short lines on standard error, everything in a private debug log.

* Standard error gets ``vault: message`` lines (``vault: warning: ...``, ``vault: error: ...``) at a level
  set by ``-q``/``-v``: ERROR with ``--quiet``, WARNING by default, INFO with ``-v``, DEBUG with ``-vv``.
  It never shows a traceback (``spec/cli.md``: "none prints a traceback to the user").
* The debug log (:func:`debug_log_path`, ``~/.local/state/vault/vault-debug.log`` on Linux) gets every
  record at DEBUG with its traceback; it is where an unexpected error's details go while the user sees one
  line naming the file. Mode 0600, directories 0700, rotated at 1 MiB with two old files kept.
* Both outputs pass through one :class:`SecretRedactor`: once the CLI has a password it calls
  :meth:`SecretRedactor.add` (or :func:`register_secret`), and any record that would still contain it as a
  word of its own (:func:`vault.oplog.redact`), in its message or in what an exception in its traceback says,
  shows ``***`` instead. The frames of a traceback or a stack (file names, source lines) are code read from
  disk, never values, and are left as they are: a short password must not turn every path of a bug report
  into ``/work/***/vault/...``. This is a last line of defence; code never formats a secret into a message.
* A failure to write the debug log never fails the command and prints nothing.
"""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
import stat
import sys
import threading
import time
import traceback
from pathlib import Path
from types import TracebackType

import platformdirs

from vault.oplog import ensure_private_dir, redact

__all__ = [
    "DEBUG_LOG_BACKUPS",
    "DEBUG_LOG_MAX_BYTES",
    "REDACTOR",
    "SecretRedactor",
    "debug_log_path",
    "register_secret",
    "setup_logging",
]

DEBUG_LOG_MAX_BYTES = 1_048_576
DEBUG_LOG_BACKUPS = 2
LOGGER_NAME = "vault"


_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def redacted_traceback(exc_info: ExcInfo, secrets: tuple[bytes, ...]) -> str:
    """The traceback text of ``exc_info`` (as ``logging.Formatter.formatException`` writes it, chained
    exceptions included) with ``secrets`` redacted from what each exception *says*, and nowhere else: the
    frames' file names and source lines are code, not values."""
    exc_type, exc, tb = exc_info
    te = traceback.TracebackException(exc_type, exc, tb, compact=True)
    chain: list[tuple[str | None, traceback.TracebackException]] = []
    current: traceback.TracebackException | None = te
    while current is not None:  # as TracebackException.format(chain=True) walks it (it breaks cycles)
        if current.__cause__ is not None:
            chain.append((_CAUSE, current))
            current = current.__cause__
        elif current.__context__ is not None and not current.__suppress_context__:
            chain.append((_CONTEXT, current))
            current = current.__context__
        else:
            chain.append((None, current))
            current = None
    out: list[str] = []
    for message, part in reversed(chain):  # the oldest exception first; each link says how it led on
        if message is not None:
            out.append(message)
        if part.exceptions is not None:  # an exception group nests tracebacks: redact all of it, to be safe
            out.append(redact("".join(part.format(chain=False)), secrets))
            continue
        if part.stack:
            out.append("Traceback (most recent call last):\n")
            out.extend(part.stack.format())
        out.extend(redact(line, secrets) for line in part.format_exception_only())
    text = "".join(out)
    return text[:-1] if text.endswith("\n") else text


class SecretRedactor(logging.Filter):
    """A filter that drops nothing and replaces registered secrets with ``***`` in each record's message and in
    what the exceptions of its traceback say (:func:`redacted_traceback`); frames and stacks are code and stay
    as they are. Safe to share between handlers and threads."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: tuple[bytes, ...] = ()

    def add(self, secret: bytes) -> None:
        """Register a secret (a password, a key). Empty secrets are ignored."""
        if not secret:
            return
        with self._lock:
            if secret not in self._secrets:
                self._secrets = (*self._secrets, secret)

    def clear(self) -> None:
        with self._lock:
            self._secrets = ()

    def __repr__(self) -> str:
        return f"SecretRedactor({len(self._secrets)} secrets)"

    def redact(self, text: str) -> str:
        secrets = self._secrets
        return redact(text, secrets) if secrets else text

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self._secrets
        if not secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to the handler to report
            message = None
        if message is not None:
            cleaned = redact(message, secrets)
            if cleaned != message:
                record.msg = cleaned
                record.args = None
        if getattr(record, "_vault_redacted_exc", False):
            return True  # another handler's filter did it already (handlers share the record)
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            # Formatters reuse exc_text when it is set, so the redacted text is what every handler shows.
            record.exc_text = redacted_traceback(record.exc_info, secrets)
        elif record.exc_text:  # formatted by someone else: its frames can't be told apart; redact all of it
            record.exc_text = redact(record.exc_text, secrets)
        record._vault_redacted_exc = True
        return True


#: The redactor that :func:`setup_logging` installs unless given another.
REDACTOR = SecretRedactor()


def register_secret(secret: bytes) -> None:
    """Add ``secret`` to :data:`REDACTOR`."""
    REDACTOR.add(secret)


def debug_log_path(base_dir: Path | None = None) -> Path:
    """``user_state_path("vault") / "vault-debug.log"`` (``base_dir`` replaces the state directory)."""
    base = Path(base_dir) if base_dir is not None else platformdirs.user_state_path("vault")
    return base / "vault-debug.log"


class _ConsoleFormatter(logging.Formatter):
    """``vault: ...`` with ``warning:``/``error:`` after it; never a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.ERROR:
            return f"vault: error: {message}"
        if record.levelno >= logging.WARNING:
            return f"vault: warning: {message}"
        return f"vault: {message}"


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (like logging's last resort)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            stream = sys.stderr
            stream.write(text + "\n")
            stream.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:
        # A closed or broken standard error: nothing useful can be said anywhere.
        return


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating file handler whose files are created with mode 0600 and whose failures are silent."""

    def _open(self) -> io.TextIOWrapper:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        flags |= getattr(os, "O_NOFOLLOW", 0)  # never write through a link planted at the log's path
        fd = os.open(self.baseFilename, flags, 0o600)
        try:
            if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
                os.fchmod(fd, 0o600)
            return open(fd, "a", encoding=self.encoding or "utf-8", errors=self.errors)
        except BaseException:
            os.close(fd)
            raise

    def handleError(self, record: logging.LogRecord) -> None:
        # Logging must never fail or clutter the command (no "--- Logging error ---" on stderr).
        return


def _file_formatter() -> logging.Formatter:
    formatter = logging.Formatter(
        "%(asctime)s %(process)d %(threadName)s %(levelname)s %(name)s: %(message)s"
    )
    formatter.converter = time.gmtime
    formatter.default_time_format = "%Y-%m-%dT%H:%M:%S"
    formatter.default_msec_format = "%s.%03dZ"
    return formatter


def _console_level(verbosity: int) -> int:
    if verbosity < 0:
        return logging.ERROR
    if verbosity == 0:
        return logging.WARNING
    if verbosity == 1:
        return logging.INFO
    return logging.DEBUG


def setup_logging(verbosity: int, log_file: Path, *, redactor: SecretRedactor | None = None) -> None:
    """Configure the ``vault`` logger: standard error at the level of ``verbosity`` (-1 quiet: ERROR,
    0: WARNING, 1: INFO, 2+: DEBUG) and ``log_file`` at DEBUG. Calling it again replaces what an earlier
    call installed. ``redactor`` defaults to :data:`REDACTOR`."""
    redactor = redactor if redactor is not None else REDACTOR
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        if getattr(handler, "_vault_handler", False):
            logger.removeHandler(handler)
            handler.close()
    logger.setLevel(logging.DEBUG)
    logger.propagate = False

    console = _StderrHandler(level=_console_level(verbosity))
    console.setFormatter(_ConsoleFormatter())
    console.addFilter(redactor)
    console._vault_handler = True  # type: ignore[attr-defined]
    logger.addHandler(console)

    try:
        ensure_private_dir(Path(log_file).parent)
        file_handler = _PrivateRotatingFileHandler(
            log_file,
            maxBytes=DEBUG_LOG_MAX_BYTES,
            backupCount=DEBUG_LOG_BACKUPS,
            encoding="utf-8",
            delay=True,  # no file until there is something to write
            errors="backslashreplace",
        )
    except OSError:
        return  # no debug log this time; the command goes on
    file_handler.setLevel(logging.DEBUG)
    file_handler.setFormatter(_file_formatter())
    file_handler.addFilter(redactor)
    file_handler._vault_handler = True  # type: ignore[attr-defined]
    logger.addHandler(file_handler)
