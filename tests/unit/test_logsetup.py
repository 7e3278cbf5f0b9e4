"""Logging setup: levels on standard error, the private debug log, and redaction of secrets."""

from __future__ import annotations

import importlib.util
import logging
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from vault import logsetup
from vault.logsetup import SecretRedactor, debug_log_path, setup_logging

SECRET = "hunter2-very-secret"


@pytest.fixture(autouse=True)
def clean_vault_logger() -> Iterator[None]:
    logger = logging.getLogger("vault")
    before = (list(logger.handlers), logger.level, logger.propagate)
    yield
    for handler in list(logger.handlers):
        if handler not in before[0]:
            logger.removeHandler(handler)
            handler.close()
    logger.setLevel(before[1])
    logger.propagate = before[2]


def emit_all(name: str = "vault.test") -> None:
    log = logging.getLogger(name)
    log.debug("debug-line")
    log.info("info-line")
    log.warning("warning-line")
    log.error("error-line")


@pytest.mark.parametrize(
    ("verbosity", "shown", "hidden"),
    [
        (-1, ["vault: error: error-line"], ["warning-line", "info-line", "debug-line"]),
        (0, ["vault: warning: warning-line", "vault: error: error-line"], ["info-line", "debug-line"]),
        (1, ["vault: info-line", "vault: warning: warning-line"], ["debug-line"]),
        (2, ["vault: debug-line", "vault: info-line", "vault: error: error-line"], []),
        (5, ["vault: debug-line"], []),
    ],
)
def test_verbosity_levels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], verbosity: int, shown: list[str], hidden: list[str]
) -> None:
    setup_logging(verbosity, tmp_path / "debug.log", redactor=SecretRedactor())
    emit_all()
    out, err = capsys.readouterr()
    assert out == ""  # never standard output
    lines = err.splitlines()
    for text in shown:
        assert text in lines
    for text in hidden:
        assert text not in err


def test_debug_log_gets_everything_with_private_modes(tmp_path: Path) -> None:
    log_file = tmp_path / "state" / "vault" / "vault-debug.log"
    setup_logging(-1, log_file, redactor=SecretRedactor())
    emit_all()
    text = log_file.read_text()
    for word in ("debug-line", "info-line", "warning-line", "error-line"):
        assert word in text
    assert "DEBUG vault.test: debug-line" in text
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(log_file.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(log_file.parent.parent.stat().st_mode) == 0o700


def test_traceback_goes_to_the_file_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log_file = tmp_path / "debug.log"
    setup_logging(2, log_file, redactor=SecretRedactor())
    try:
        raise RuntimeError("kaboom")
    except RuntimeError:
        logging.getLogger("vault.cli").exception("unexpected failure")
    err = capsys.readouterr().err
    assert err.strip() == "vault: error: unexpected failure"
    assert "Traceback" not in err
    text = log_file.read_text()
    assert "Traceback (most recent call last)" in text
    assert "RuntimeError: kaboom" in text


def test_calling_setup_again_replaces_handlers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(0, tmp_path / "a.log", redactor=SecretRedactor())
    setup_logging(0, tmp_path / "b.log", redactor=SecretRedactor())
    logging.getLogger("vault").warning("once")
    assert capsys.readouterr().err.count("once") == 1
    # Only vault's own handlers count: pytest's caplog may have attached its capture handlers to "vault" too.
    ours = [h for h in logging.getLogger("vault").handlers if type(h).__module__ == "vault.logsetup"]
    assert len(ours) == 2


def test_secret_redacted_in_message_and_args(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    redactor = SecretRedactor()
    redactor.add(SECRET.encode())
    log_file = tmp_path / "debug.log"
    setup_logging(2, log_file, redactor=redactor)
    log = logging.getLogger("vault.keys")
    log.warning("password %s was rejected", SECRET)
    log.debug(f"inline {SECRET} in the message")
    err = capsys.readouterr().err
    text = log_file.read_text()
    for output in (err, text):
        assert SECRET not in output
        assert "password *** was rejected" in output
        assert "inline *** in the message" in output


def test_secret_redacted_in_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    redactor = SecretRedactor()
    redactor.add(SECRET.encode())
    log_file = tmp_path / "debug.log"
    setup_logging(0, log_file, redactor=redactor)
    try:
        raise ValueError(f"bad key material {SECRET}")
    except ValueError:
        logging.getLogger("vault.crypto").exception("unexpected")
    capsys.readouterr()
    text = log_file.read_text()
    assert "Traceback" in text
    assert "ValueError: bad key material ***" in text
    assert SECRET not in text


def test_stack_info_is_code_and_is_left_alone(tmp_path: Path) -> None:
    """A stack holds file paths and source lines, read from disk, never a value the program handled: it is not
    redacted (a secret in a source line is in the source already), the record's message still is."""
    redactor = SecretRedactor()
    redactor.add(SECRET.encode())
    log_file = tmp_path / "debug.log"
    setup_logging(-1, log_file, redactor=redactor)

    def f(value: str) -> None:
        logging.getLogger("vault.x").debug("here with %s", value, stack_info=True)

    f("hunter2-very-secret")  # the stack shows this source line as it is in the file
    text = log_file.read_text()
    assert "Stack (most recent call last)" in text
    assert "here with ***" in text
    assert 'f("hunter2-very-secret")' in text


def test_a_short_password_does_not_mangle_paths_or_code_in_tracebacks(tmp_path: Path) -> None:
    """Issue 18, item 3: with the password ``main`` every "main" of a traceback became ``***``, paths included
    (``/work/***/vault/...``), which made bug reports unreadable and told their readers the password. Now only
    what the exception says is redacted, and there only the password as a word of its own, not inside a path
    or a longer word; file names and source lines of the frames stay as they are."""
    module = tmp_path / "main" / "helper_main.py"  # a path holding the password, like /work/main/vault/...
    module.parent.mkdir()
    module.write_text("def fail(detail):\n    main_value = detail\n    raise ValueError(f'cannot use {main_value} "
                      "in /srv/main/domain.txt')\n")
    spec = importlib.util.spec_from_file_location("helper_main", module)
    assert spec is not None and spec.loader is not None
    helper = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helper)
    redactor = SecretRedactor()
    redactor.add(b"main")
    log_file = tmp_path / "debug.log"
    setup_logging(-1, log_file, redactor=redactor)
    log = logging.getLogger("vault.cli")
    try:
        try:
            helper.fail("main")
        except ValueError as exc:
            raise RuntimeError("remained in main") from exc
    except RuntimeError:
        log.debug("unexpected failure", exc_info=True)
    log.warning("opened %s for main", "/srv/main/domain.txt")
    text = log_file.read_text()
    assert f'File "{module}", line 3, in fail' in text  # the path of the frame, whole
    assert "raise ValueError(f'cannot use {main_value} in /srv/main/domain.txt')" in text  # the source line
    assert "ValueError: cannot use *** in /srv/main/domain.txt" in text  # the value, redacted; the path kept
    assert "RuntimeError: remained in ***" in text
    assert "The above exception was the direct cause of the following exception:" in text
    assert "opened /srv/main/domain.txt for ***" in text
    assert "cannot use main" not in text and "RuntimeError: remained in main" not in text


def test_redactor_drops_nothing_and_ignores_empty() -> None:
    redactor = SecretRedactor()
    redactor.add(b"")
    record = logging.LogRecord("vault", logging.INFO, __file__, 1, "a %s b", ("x",), None)
    assert redactor.filter(record) is True
    assert record.getMessage() == "a x b"
    redactor.add(b"x")
    redactor.add(b"x")
    assert redactor.filter(record) is True
    assert record.getMessage() == "a *** b"
    assert "x" not in repr(redactor).replace("SecretRedactor", "")
    assert redactor.redact("x y") == "*** y"
    redactor.clear()
    assert redactor.redact("x y") == "x y"


def test_register_secret_uses_module_redactor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        logsetup.register_secret(SECRET.encode())
        setup_logging(0, tmp_path / "debug.log")
        logging.getLogger("vault").warning("got %s", SECRET)
        assert capsys.readouterr().err.strip() == "vault: warning: got ***"
    finally:
        logsetup.REDACTOR.clear()


def test_unwritable_debug_log_is_silent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory")
    setup_logging(0, blocker / "sub" / "debug.log", redactor=SecretRedactor())
    setup_logging(0, blocker / "debug.log", redactor=SecretRedactor())  # the open fails only at first record
    logging.getLogger("vault").warning("still works")
    logging.getLogger("vault").debug("goes nowhere")
    err = capsys.readouterr().err
    assert err.strip() == "vault: warning: still works"
    assert "Logging error" not in err


def test_debug_log_rotates(tmp_path: Path) -> None:
    log_file = tmp_path / "debug.log"
    setup_logging(-1, log_file, redactor=SecretRedactor())
    log = logging.getLogger("vault.big")
    chunk = "x" * 4000
    for _ in range(700):  # about 2.8 MB
        log.debug(chunk)
    assert log_file.exists()
    assert (tmp_path / "debug.log.1").exists() and (tmp_path / "debug.log.2").exists()
    assert not (tmp_path / "debug.log.3").exists()
    assert log_file.stat().st_size <= logsetup.DEBUG_LOG_MAX_BYTES
    assert stat.S_IMODE((tmp_path / "debug.log.1").stat().st_mode) == 0o600


def test_debug_log_path(tmp_path: Path) -> None:
    assert debug_log_path(tmp_path) == tmp_path / "vault-debug.log"
    default = debug_log_path()
    assert default.name == "vault-debug.log"
    assert default.parent.name == "vault"


def test_the_debug_log_never_follows_a_link(tmp_path: Path) -> None:
    """Like the operation log's lock (issue 18, item 7d): a link planted at the debug log's path is not
    followed; the debug log is then not written, the command goes on."""
    target = tmp_path / "elsewhere" / "created-through-the-link"
    target.parent.mkdir()
    log_file = tmp_path / "state" / "vault-debug.log"
    log_file.parent.mkdir()
    log_file.symlink_to(target)
    setup_logging(0, log_file)
    logging.getLogger("vault.x").debug("something")
    assert not target.exists()
