"""`vault put` and `vault get`."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from typing import IO, TYPE_CHECKING, Annotated

import typer

from vault.cli import _common, progress

if TYPE_CHECKING:
    from vault.archive import PutResult


def put(
    ctx: typer.Context,
    paths: Annotated[
        list[str] | None, typer.Argument(help="Files or directories; - reads standard input.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Item name (one PATH only; needed for -).")] = None,
    compression: Annotated[
        int, typer.Option("--compression", metavar="LEVEL", help="zstd level, 0 = off.")
    ] = 3,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", metavar="PATTERN", help="gitignore-style pattern; repeatable.")
    ] = None,
    exclude_file: Annotated[
        str | None, typer.Option("--exclude-file", metavar="FILE", help="Read exclude patterns from FILE.")
    ] = None,
    stdin_from_command: Annotated[
        str | None,
        typer.Option("--stdin-from-command", metavar="CMD",
                     help="Store the standard output of CMD (run without a shell); needs --name."),
    ] = None,
    tar: Annotated[
        bool, typer.Option("--tar", help="PATH (- for standard input) is a tar stream: store its tree as item NAME.")
    ] = False,
    files_from: Annotated[
        str | None, typer.Option("--files-from", metavar="FILE", help="Also store the paths listed in FILE, one a "
                                 "line (- reads standard input).")
    ] = None,
    files_from0: Annotated[
        str | None, typer.Option("--files-from0", metavar="FILE", help="As --files-from, the paths separated by NUL.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Store files, directories or standard input as new item versions.

    Example: vault put ~/Documents --exclude '*.tmp'   |   vault put --stdin-from-command 'pg_dump db' --name db.sql
    |   tar -c . | vault put - --tar --name site   |   find ~ -name '*.pdf' -print0 | vault put --files-from0 -
    """
    from vault.archive import Putter
    from vault.archive.tar import TarPutter
    from vault.cli.browse_cmds import listed_paths
    from vault.errors import NotFoundError, PartialError, UsageError
    from vault.excludes import Excluder, read_exclude_file

    s = _common.settings(ctx)
    paths = list(paths or [])
    if files_from is not None or files_from0 is not None:
        if "-" in paths and "-" in (files_from, files_from0):
            raise UsageError("standard input can't be both the list of paths and data to store")
        paths += listed_paths(files_from, files_from0)
        if not paths:
            raise UsageError("the list of paths is empty")
    if tar and (len(paths) != 1 or name is None or stdin_from_command is not None):
        raise UsageError("--tar stores one tar stream: give one PATH (- for standard input) and --name")
    if stdin_from_command is not None:
        if paths or name is None:
            raise UsageError("--stdin-from-command takes no PATH and needs --name")
    elif not paths:
        raise UsageError("nothing to store: give one or more PATHs, - for standard input, or --stdin-from-command")
    if name is not None and len(paths) > 1:
        raise UsageError("--name works with one PATH only")
    if "-" in paths and name is None:
        raise UsageError("reading standard input (-) needs --name")
    if paths.count("-") > 1:
        raise UsageError("standard input (-) can be given once")
    if not 0 <= compression <= 22:
        raise UsageError("--compression must be between 0 (off) and 22")
    patterns = list(exclude or []) + (read_exclude_file(exclude_file) if exclude_file else [])
    excluder = Excluder(patterns)
    for p in paths:  # a missing PATH is exit 4 before any password is asked for
        if p != "-" and not os.path.lexists(p):
            raise NotFoundError(f"{p} does not exist")
    state = _common.run_state(ctx)
    session = _common.open_session(ctx, lock="shared", write_only_ok=True)
    started = time.monotonic()
    with _SourceCommand(stdin_from_command) as command, _TarInput(paths[0] if tar else None) as tar_stream:
        kind = TarPutter if tar else Putter
        putter = kind(session.repo, session.pipeline, level=compression, excluder=excluder,
                      on_warning=lambda msg: _common.note(f"warning: {msg}"))
        session.adopt_interrupted(putter)
        if command.stdout is not None:
            sources = [putter.add_stream(command.stdout, name or "")]
        elif isinstance(putter, TarPutter) and tar_stream is not None:
            sources = [putter.add_tar(tar_stream, name or "")]
        else:
            sources = [
                putter.add_stream(sys.stdin.buffer, name or "") if p == "-" else putter.add_path(p, name)
                for p in paths
            ]
        total = putter.bytes_to_read(sources) if progress.enabled(s) else None
        with progress.bar(s, "put", total) as advance:
            putter.progress = advance
            results = putter.commit(sources, before_commit=command.check)
        session.compact()
    elapsed = time.monotonic() - started
    state.nbytes = sum(r.bytes_read for r in results)
    if as_json:
        _common.print_json([r.to_json() for r in results if r.committed])
    else:
        for r in results:
            if r.committed:
                _common.say(s, _summary(r, elapsed))
    skipped = [p for r in results for p in r.skipped]
    if skipped:
        state.extra["skipped"] = skipped  # the contract: each named in the log too
        raise PartialError(f"{len(skipped)} path(s) were skipped (named above)")


class _TarInput:
    """--tar: the tar stream, standard input or a tar file opened for reading (closed afterwards)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.file: IO[bytes] | None = None

    def __enter__(self) -> IO[bytes] | None:
        if self.path is None:
            return None
        if self.path == "-":
            return sys.stdin.buffer
        from vault.errors import StorageError

        try:
            self.file = open(self.path, "rb")
        except OSError as exc:
            raise StorageError(f"cannot read {self.path}: {exc.strerror}") from None
        return self.file

    def __exit__(self, *exc: object) -> None:
        if self.file is not None:
            self.file.close()


class _SourceCommand:
    """--stdin-from-command: run CMD without a shell and hand its standard output to put. Its exit status is
    checked before anything is committed (restic does the same): a failed dump is never stored as a version."""

    def __init__(self, command: str | None) -> None:
        self.command = command
        self.proc: subprocess.Popen[bytes] | None = None
        self.stdout: IO[bytes] | None = None

    def __enter__(self) -> _SourceCommand:
        if self.command is None:
            return self
        from vault.errors import NotFoundError, UsageError

        try:
            argv = shlex.split(self.command)
        except ValueError as exc:
            raise UsageError(f"--stdin-from-command: {exc}") from None
        if not argv:
            raise UsageError("--stdin-from-command is empty")
        try:
            from vault.passwords import child_environment

            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=child_environment()
            )
        except FileNotFoundError:
            raise NotFoundError(f"--stdin-from-command: {argv[0]} not found") from None
        except OSError as exc:
            from vault.errors import StorageError

            raise StorageError(f"--stdin-from-command: cannot run {argv[0]}: {exc.strerror}") from None
        self.stdout = self.proc.stdout
        return self

    def check(self) -> None:
        if self.proc is None:
            return
        from vault.errors import StorageError

        code = self.proc.wait()
        if code != 0:
            raise StorageError(
                f"--stdin-from-command failed with exit status {code}; nothing was committed",
                hint="data it wrote before failing is unreferenced and `vault prune` frees it",
            )

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _summary(r: PutResult, elapsed: float) -> str:
    saving = f", {r.size / r.bytes_added:.1f}x smaller after dedup and compression" if r.bytes_added else ""
    # A write-only key's version is numbered by the readers: it can't read the numbers taken already.
    which = f"version {r.version}" if r.numbered else "a new version (numbered when a full key reads it)"
    return (
        f"stored {r.name} {which}: {r.files} file(s), {_common.human_size(r.size)}; "
        f"{_common.human_size(r.bytes_read)} read, {_common.human_size(r.bytes_added)} added{saving} "
        f"in {elapsed:.1f}s"
    )


def get(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Item name, or a path inside an item.")],
    output: Annotated[
        str | None, typer.Option("-o", "--output", metavar="DEST", help="Destination; - for standard output.")
    ] = None,
    version: Annotated[
        int | None, typer.Option("--version", min=1, help="Version to restore (default: latest).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
    numeric_owner: Annotated[
        bool,
        typer.Option("--numeric-owner",
                     help="As root: restore owners by their stored ids, not by user and group name."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Restore a file or a directory tree. -o - writes a file's contents, or a directory as a tar stream.

    Run as root, owners are restored too (by name, as tar does); otherwise files belong to the user who runs it.

    Example: vault get photos/2020 -o /tmp/restore   |   vault get db.sql -o - | psql   |   vault get site -o - | tar -x
    """
    from vault.restore import RestoreFailed, Restorer, RestoreSkipped, destination, resolve

    s = _common.settings(ctx)
    state = _common.run_state(ctx)
    session = _common.open_session(ctx, lock="shared")
    record, node, _ = resolve(session.repo, name, version)
    total = node.size if node.type == "file" else None
    with progress.bar(s, "get", total if output != "-" else None) as advance:
        restorer = Restorer(session.repo, session.pipeline, on_progress=advance, numeric_owner=numeric_owner)
        if output == "-":
            if node.type == "dir":  # a directory: as a pax tar stream
                from vault.restore.tar import TarWriter

                state.nbytes = TarWriter(session.repo, session.pipeline, sys.stdout.buffer).write(node).bytes_written
                return
            state.nbytes = restorer.to_stream(node, sys.stdout.buffer)
            return
        dest = destination(name, node, output)
        try:
            result = restorer.restore(record, node, dest, force)
        except (RestoreFailed, RestoreSkipped) as exc:
            state.nbytes = exc.result.bytes_written
            if exc.result.skipped:
                state.extra["skipped"] = exc.result.skipped  # as put does: each named in the log too
            if as_json:  # the report names what was not restored; the exit code says it failed
                _common.print_json(exc.result.to_json())
            raise
    state.nbytes = result.bytes_written
    if as_json:
        _common.print_json(result.to_json())
    else:
        _common.say(s, f"restored {name} version {record.version} to {dest}: {result.files} file(s), "
                       f"{_common.human_size(result.bytes_written)}")


def register(app: typer.Typer) -> None:
    app.command("put")(put)
    app.command("get")(get)
