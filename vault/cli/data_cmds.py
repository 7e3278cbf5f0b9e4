"""`vault put` and `vault get`."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from vault.cli import _common


def put(
    ctx: typer.Context,
    paths: Annotated[list[str], typer.Argument(help="Files or directories; - reads standard input.")],
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
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Store files, directories or standard input as new item versions.

    Example: vault put ~/Documents --exclude '*.tmp'   |   pg_dump db | vault put - --name db.sql
    """
    from vault.errors import NotFoundError, PartialError, UsageError
    from vault.excludes import Excluder, read_exclude_file
    from vault.ops.put import Putter

    s = _common.settings(ctx)
    if name is not None and len(paths) != 1:
        raise UsageError("--name works with one PATH only")
    if "-" in paths and name is None:
        raise UsageError("reading standard input (-) needs --name")
    if not 0 <= compression <= 22:
        raise UsageError("--compression must be between 0 (off) and 22")
    patterns = list(exclude or []) + (read_exclude_file(exclude_file) if exclude_file else [])
    excluder = Excluder(patterns)
    for p in paths:  # a missing PATH is exit 4 before any password is asked for
        if p != "-" and not os.path.lexists(p):
            raise NotFoundError(f"{p} does not exist")
    repo = _common.open_repo(s, lock="shared")
    with _common.pipeline(s) as pipe:
        putter = Putter(repo, pipe, level=compression, excluder=excluder,
                        on_warning=lambda msg: _common.note(f"warning: {msg}"))
        sources = [
            putter.add_stream(sys.stdin.buffer, name or "") if p == "-" else putter.add_path(p, name)
            for p in paths
        ]
        results = putter.commit(sources)
    _common.STATE.bytes = sum(r.bytes_read for r in results)
    if as_json:
        _common.print_json([r.to_json() for r in results if r.version])
    else:
        for r in results:
            if r.version:
                _common.say(
                    s,
                    f"stored {r.name} version {r.version}: {r.files} file(s), "
                    f"{_common.human_size(r.bytes_read)} read, {_common.human_size(r.bytes_added)} added",
                )
    skipped = [p for r in results for p in r.skipped]
    if skipped:
        raise PartialError(f"{len(skipped)} path(s) were skipped (named above)")


def get(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Item name, or a path inside an item.")],
    output: Annotated[
        str | None, typer.Option("-o", "--output", metavar="DEST", help="Destination; - for standard output.")
    ] = None,
    version: Annotated[int | None, typer.Option("--version", min=1, help="Version to restore (default: latest).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Restore a file or a directory tree.

    Example: vault get photos/2020 -o /tmp/restore   |   vault get db.sql -o - | psql
    """
    from vault.ops.get import Restorer, destination, resolve

    s = _common.settings(ctx)
    repo = _common.open_repo(s, lock="shared")
    record, node, _ = resolve(repo, name, version)
    with _common.pipeline(s) as pipe:
        restorer = Restorer(repo, pipe)
        if output == "-":
            n = restorer.to_stream(node, sys.stdout.buffer)
            _common.STATE.bytes = n
            return
        dest = destination(name, node, output)
        result = restorer.restore(record, node, dest, force)
    _common.STATE.bytes = result.bytes_written
    if as_json:
        _common.print_json(result.to_json())
    else:
        _common.say(s, f"restored {name} version {record.version} to {dest}: {result.files} file(s), "
                       f"{_common.human_size(result.bytes_written)}")


def register(app: typer.Typer) -> None:
    app.command("put")(put)
    app.command("get")(get)
