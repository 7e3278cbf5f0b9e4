"""`vault diff`, `find`, `mount` and `copy`; and the path lists of `put --files-from`."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from vault.cli import _common

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on standard output.")]


def listed_paths(files_from: str | None, files_from0: str | None) -> list[str]:
    """The paths listed by ``--files-from`` (one a line: a ``\\n`` or ``\\r\\n`` ends each; empty lines are
    skipped) and ``--files-from0`` (separated by NUL), ``-`` reading standard input. A listed ``-`` is a file of
    that name, never standard input. NotFoundError for a missing list, StorageError for one that can't be read."""
    out: list[str] = []
    for source, sep in ((files_from, b"\n"), (files_from0, b"\0")):
        if source is None:
            continue
        raw = _read_list(source)
        for entry in raw.split(sep):
            if sep == b"\n" and entry.endswith(b"\r"):
                entry = entry[:-1]
            if entry:
                path = os.fsdecode(entry)
                out.append("./-" if path == "-" else path)
    return out


def _read_list(source: str) -> bytes:
    from vault.errors import NotFoundError, StorageError

    if source == "-":
        return sys.stdin.buffer.read()
    try:
        with open(source, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise NotFoundError(f"the list of paths {source} does not exist") from None
    except OSError as exc:
        raise StorageError(f"cannot read the list of paths {source}: {exc.strerror}") from None


def diff(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Item, or a path inside one.")],
    old: Annotated[int | None, typer.Option("--from", min=1, metavar="N", help="Older version (default: the "
                                                                               "one before --to).")] = None,
    new: Annotated[int | None, typer.Option("--to", min=1, metavar="M", help="Newer version (default: the "
                                                                             "latest).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """What changed in an item between two versions: + added, - removed, M contents, T type, U mode or time.

    Example: vault diff photos   |   vault diff photos --from 3 --to 7 --json
    """
    from vault.browse.diff import diff as _diff

    result = _diff(_common.open_repo(ctx), name, old, new)
    if as_json:
        _common.print_json([c.to_json() for c in result.changes])
        return
    for change in result.changes:
        typer.echo(change.line())


def find(
    ctx: typer.Context,
    patterns: Annotated[list[str], typer.Argument(help="Shell globs: a name, or a path inside the item when it "
                                                       "holds a /.")],
    item: Annotated[str | None, typer.Option("--item", metavar="NAME", help="Only this item.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Find paths in every version of every item (or of one item).

    Example: vault find '*.pdf'   |   vault find 'src/**/*.py' --item code --json
    """
    from vault.browse.find import Finder, Patterns

    matcher = Patterns(patterns)  # a bad pattern is exit 2 before any password is asked for
    finder = Finder(_common.open_repo(ctx), matcher)
    found = []
    for matches in finder.items(item):
        if as_json:
            found += [m.to_json() for m in matches]
        else:
            for m in matches:
                typer.echo(m.line())
    if as_json:
        _common.print_json(found)


def mount(
    ctx: typer.Context,
    mountpoint: Annotated[str, typer.Argument(help="An empty directory.")],
    refresh: Annotated[float, typer.Option("--refresh", min=1, max=60, metavar="SECONDS",
                                           help="How often to look for new versions.")] = 30.0,
) -> None:
    """Show every item and version as a read-only file system until unmounted (fusermount3 -u, or Ctrl-C).

    Each item is a directory of its versions (1, 2, ...) and `latest`, a link to the newest.
    Example: vault mount /mnt/vault   |   cp /mnt/vault/photos/latest/2020/a.jpg .
    """
    from vault.mount import mount as _mount
    from vault.mount.run import check_mountpoint, load_fuse

    s = _common.settings(ctx)
    state = _common.run_state(ctx)
    where = check_mountpoint(mountpoint, s.location)  # before any password is asked for
    load_fuse()
    session = _common.open_session(ctx)  # no lock: see vault.mount
    damaged: list[str] = []

    def on_damage(message: str) -> None:
        if len(damaged) < 100:
            damaged.append(message)
            state.extra["damaged"] = damaged

    def on_ready() -> None:
        if s.verbosity >= 0:
            _common.note(f"mounted at {where}; unmount with `fusermount3 -u {mountpoint}` or Ctrl-C")

    _mount(session.repo, session.pipeline, where, on_damage=on_damage, on_ready=on_ready, note=_common.note,
           refresh_s=refresh)


def copy(
    ctx: typer.Context,
    names: Annotated[list[str] | None, typer.Argument(help="Items to copy (default: every item).")] = None,
    to: Annotated[str, typer.Option("--to", metavar="LOCATION", help="The vault to copy into: a directory or "
                                                                     "s3://BUCKET[/PREFIX].")] = "",
    version: Annotated[int | None, typer.Option("--version", min=1, help="Copy only this version.")] = None,
    to_password_file: Annotated[
        str | None, typer.Option("--to-password-file", metavar="FILE", help="The destination's password: the "
                                 "first line of FILE (or VAULT_TO_PASSWORD_FILE, VAULT_TO_PASSWORD).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Copy items (all their versions) into another vault, deduplicated there; versions copied before are skipped.

    Example: vault copy --to /mnt/usb/vault   |   vault copy photos --to s3://offsite/vault --to-password-file pw
    """
    from vault.errors import IntegrityError, UsageError
    from vault.ops.copy import Copied, Copier
    from vault.passwords import read_destination_password, terminal_prompt
    from vault.session import open_session

    if not to:
        raise UsageError("give the destination with --to LOCATION")
    s = _common.settings(ctx)
    state = _common.run_state(ctx)
    source = _common.open_session(ctx, lock="shared")

    def dest_password() -> bytes:
        password = read_destination_password(_common.password_options(s), to_password_file, prompt=terminal_prompt)
        _common.remember_secret(state, password)
        return password

    def on_copied(done: Copied) -> None:
        if not as_json:
            _common.say(s, f"copied {done.name} version {done.version} to version {done.to_version}, "
                           f"{_common.human_size(done.bytes_added)} added")
            sys.stdout.flush()

    with open_session(to, password=dest_password, lock="shared", threads=s.threads, retry_lock_s=s.retry_lock_s,
                      command="copy", cache=s.cache, on_note=_common.note) as dest:
        try:
            report = Copier(source, dest, on_copied, _common.note).run(names or [], version)
        finally:
            for action in dest.notes:
                state.recovery(f"destination: {action}")
    state.nbytes = sum(c.bytes_added for c in report.copied)
    if as_json:
        _common.print_json([c.to_json() for c in report.copied])
    if report.already and not as_json:
        _common.note(f"{report.already} version(s) were in the destination already")
    if report.failed:
        raise IntegrityError(f"{len(report.failed)} version(s) could not be copied: {report.failed[0]}")


def register(app: typer.Typer) -> None:
    app.command("diff")(diff)
    app.command("find")(find)
    app.command("mount")(mount)
    app.command("copy")(copy)
