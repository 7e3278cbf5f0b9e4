"""The `vault` command line: parse, prompt, print, and map errors to exit codes in exactly one place.

Commands live one group per module and only turn arguments into calls on the library. ``main()`` is the
console script: expected failures (``VaultError``) print one ``vault: error:`` line and exit with their code;
anything else is a bug, logged with its traceback to the debug log and reported in one line naming it.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import time
from typing import Annotated, NoReturn

import typer

from vault import __version__
from vault.cli import _common
from vault.cli._common import RunState, Settings

log = logging.getLogger("vault.cli")

HELP = """A secure, deduplicating, encrypted file vault.

Start with `vault init`, then `vault put PATH` and `vault get NAME`. Passwords come from --password-file,
--password-command, VAULT_PASSWORD or a prompt; scripts never get a prompt.
"""

# Locals in tracebacks hold passwords and keys: pretty tracebacks stay off (main() prints one line anyway).
app = typer.Typer(
    help=HELP,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vault {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    vault: Annotated[
        str | None,
        typer.Option("--vault", envvar="VAULT_PATH", metavar="LOCATION", help="Vault location: a directory or s3://BUCKET[/PREFIX]."),
    ] = None,
    password_file: Annotated[
        str | None,
        typer.Option("--password-file", help="Read the password from the first line of FILE.", metavar="FILE"),
    ] = None,
    password_command: Annotated[
        str | None,
        typer.Option("--password-command", help="Run CMD (no shell) and read the password from its output.",
                     metavar="CMD"),
    ] = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Print only errors and results.")] = False,
    verbose: Annotated[int, typer.Option("-v", "--verbose", count=True, help="More detail (-vv: debug).")] = 0,
    threads: Annotated[
        int | None, typer.Option("--threads", min=1, max=256, metavar="N", help="Worker threads (default: CPU count).")
    ] = None,
    no_cache: Annotated[
        bool,
        typer.Option("--no-cache", help="Keep no local cache of the vault's metadata (slower on big vaults)."),
    ] = False,
    retry_lock: Annotated[
        float,
        typer.Option("--retry-lock", min=0, metavar="SECONDS", help="Seconds to wait for a lock before giving up."),
    ] = 0.0,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    from vault.logsetup import debug_log_path, setup_logging
    from vault.session import default_location

    env = _common.environ()
    verbosity = -1 if quiet else verbose
    setup_logging(verbosity, debug_log_path())
    state = ctx.ensure_object(RunState)
    state.settings = Settings(
        location=vault or default_location(),
        # The environment variables are read by vault.passwords (in contract order), not here.
        password_file=password_file,
        password_command=password_command,
        verbosity=verbosity,
        threads=threads or _common.env_int(env, "VAULT_THREADS"),
        env=env,
        retry_lock_s=retry_lock,
        cache=False if no_cache else (env.get("VAULT_CACHE_DIR") or True),
    )
    state.command = ctx.invoked_subcommand or ""
    # Every command that names a vault is logged, also when it fails before opening it (a missing PATH).
    state.location = _common.canonical_location(state.settings.location)


def _register() -> None:
    from vault.cli import browse_cmds, catalog_cmds, data_cmds, init_cmd, key_cmds, maintenance_cmds

    # The order `vault --help` lists them in: the order a new user needs them.
    init_cmd.register(app)
    data_cmds.register(app)
    catalog_cmds.register(app)
    browse_cmds.register(app)
    maintenance_cmds.register(app)
    key_cmds.register(app)


_register()


class Terminated(BaseException):
    """SIGTERM, turned into an exception so every ``finally`` (temporary files, locks) runs."""


def _on_sigterm(signum: int, frame: object) -> NoReturn:
    raise Terminated()


def _error(message: str, hint: str | None = None) -> None:
    sys.stderr.write(f"vault: error: {message}\n")
    if hint:
        sys.stderr.write(f"vault: hint: {hint}\n")
    sys.stderr.flush()


def _record(state: RunState, code: int, started: float, error: str | None) -> None:
    """One line in the per-vault operation log, for commands that touched a vault."""
    if not state.location or not state.command:
        return
    from vault.oplog import OperationLog, OpRecord, utc_now_iso

    outcome = {0: "success", 3: "partial", 130: "interrupted", 143: "interrupted"}.get(code, "error")
    rec = OpRecord(
        time=utc_now_iso(),
        command=state.command,
        outcome=outcome,
        exit_code=code,
        duration_s=round(time.monotonic() - started, 3),
        bytes=state.nbytes,
        error=error,
        location=state.location,
        extra=state.extra,
    )
    log_dir = _common.environ().get("VAULT_LOG_DIR") or None
    from pathlib import Path

    OperationLog(state.location, Path(log_dir) if log_dir else None).append(rec, secrets=state.secrets)


def _click_kind(exc: BaseException) -> str | None:
    """Which click exception family ``exc`` belongs to. typer >= 0.29 vendors click (``typer._click``), older
    releases use click itself; both name their classes alike, so match by name within those packages."""
    for cls in type(exc).__mro__:
        if cls.__module__.split(".")[0] in ("click", "typer") and cls.__name__ in ("Exit", "Abort", "ClickException"):
            return cls.__name__
    return None


def _unexpected(exc: BaseException) -> tuple[int, str]:
    """A bug: the traceback goes to the debug log only; the user gets one line naming that log."""
    from vault.logsetup import debug_log_path

    log.debug("unexpected failure", exc_info=exc)
    _error(
        f"unexpected failure ({type(exc).__name__}); details are in {debug_log_path()}",
        "this is a bug in vault; please report it with that file",
    )
    return 1, f"{type(exc).__name__}: unexpected failure"


def run(argv: list[str] | None = None) -> int:
    """Run the command line and return the exit code (never raises, never prints a traceback)."""
    from vault.errors import VaultError

    started = time.monotonic()
    code, error = 0, None
    state = RunState()
    try:
        command = typer.main.get_command(app)
        result = command.main(args=argv, prog_name="vault", standalone_mode=False, obj=state)
        code = result if isinstance(result, int) else 0
        if code == 130:  # typer turns KeyboardInterrupt into Exit(130) before we see it
            error = "interrupted"
            _error("interrupted; temporary files were removed")
    except VaultError as exc:
        code, error = exc.exit_code, f"{type(exc).__name__}: {exc.message}"
        _error(exc.message, exc.hint)
    except KeyboardInterrupt:
        code, error = 130, "interrupted"
        _error("interrupted; temporary files were removed")
    except Terminated:
        code, error = 143, "terminated"
        _error("terminated; temporary files were removed")
    except BrokenPipeError:
        code = 0
    except SystemExit as exc:  # typer exits on EPIPE writing to a closed pipe
        code = exc.code if isinstance(exc.code, int) else 1
    except Exception as exc:  # the one place bugs become exit 1
        kind = _click_kind(exc)
        if kind == "Exit":
            code = int(getattr(exc, "exit_code", 0) or 0)
        elif kind == "Abort":
            code, error = 130, "interrupted"
            _error("interrupted")
        elif kind == "ClickException":
            message = exc.format_message()  # type: ignore[attr-defined]
            code, error = 2, f"UsageError: {message}"
            _error(message, "see `vault --help` or `vault COMMAND --help`")
        else:
            code, error = _unexpected(exc)
    try:
        state.close()
    except Exception:  # releasing a lock must not hide the outcome
        log.debug("closing the vault failed", exc_info=True)
    with contextlib.suppress(Exception):  # the log must never change the outcome
        _record(state, code, started, error)
    return code


def main() -> NoReturn:
    signal.signal(signal.SIGTERM, _on_sigterm)
    code = run(sys.argv[1:])
    # The outcome is decided and recorded: a late Ctrl-C must not turn it into a traceback at shutdown.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(BrokenPipeError, ValueError):
        sys.stdout.flush()
    sys.exit(code)
