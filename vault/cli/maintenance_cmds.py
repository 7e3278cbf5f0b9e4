"""`vault check`, `repair`, `forget` and `prune`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from vault.cli import _common, progress

if TYPE_CHECKING:
    from vault.ops.check import CheckReport
    from vault.session import Session

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on standard output.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Say what would happen; change nothing.")]


def check(
    ctx: typer.Context,
    read_data: Annotated[bool, typer.Option("--read-data", help="Also read and verify every stored byte.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Verify the vault: structure, and with --read-data every stored byte.

    Example: vault check --read-data
    """
    from vault.errors import IntegrityError
    from vault.ops.check import check as _check

    s = _common.settings(ctx)
    # A write-only key may count objects (what listing the storage shows anyone), never read them.
    session = _common.open_session(ctx, lock="shared", write_only_ok=not read_data)
    repo = session.repo
    if repo.write_only:
        _write_only_check(s, session, as_json)
        return
    with progress.bar(s, "check", None) as advance:
        if read_data:
            advance.set_total(repo.stored_bytes())
        report = _check(repo, session.pipeline, read_data, on_progress=advance)
    _witnessed_problems(session, report)
    _common.run_state(ctx).nbytes = report.bytes_read
    if as_json:
        _common.print_json(report.to_json())
    else:
        for line in report.problems:
            typer.echo(f"problem: {line}")
        for line in report.known_damaged + report.notes:
            _common.note(line)
        if report.ok:
            what = f", {report.blobs_read} blobs read and verified" if read_data else ""
            _common.say(s, f"no problems found: {report.versions} version(s), {report.packs} pack(s){what}")
    if not report.ok:
        replayed = session.findings.replayed
        hint = "`vault repair` rebuilds what can be rebuilt"
        if replayed:
            hint = ("unless you put an older copy of the storage back yourself, remove each replayed version with "
                    "`vault rm NAME --version N`; " + hint)
        raise IntegrityError(f"check found {len(report.problems)} problem(s)", hint=hint)


def _write_only_check(s: _common.Settings, session: Session, as_json: bool) -> None:
    from vault.ops.write_only import write_only_check

    counts = write_only_check(session.repo)
    if as_json:
        _common.print_json(counts.to_json())
        return
    _common.say(s, f"write-only key: {counts.packs} pack(s), {counts.index_objects} index object(s), "
                   f"{counts.version_objects} version object(s), {counts.keys} key(s), "
                   f"{_common.human_size(counts.stored_bytes)} stored; nothing verified (check with a full key)")


def _witnessed_problems(session: Session, report: CheckReport) -> None:
    """What this machine remembers (vault.witness): a record removed earlier and back is a problem (a replay);
    records seen here and gone are a note (another machine's rm, or a deletion or rollback)."""
    found = session.findings
    if found.replayed:
        labels = {r.record_id: f"{r.item} version {r.version}" for r in session.repo.records()}
        for name in found.replayed:
            what = labels.get(name, f"version record versions/{name[:10]}")
            report.problems.append(f"{what}: its record was removed earlier and is back (the storage replayed it)")
    if found.vanished:
        report.notes.append(found.messages()[-1])


def repair(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Rebuild the index from the packs, remove leftovers, mark versions that lost data as damaged.

    Example: vault repair
    """
    from vault.ops.repair import repair as _repair

    s = _common.settings(ctx)
    session = _common.open_session(ctx, lock="exclusive")
    report = _repair(session.repo, session.pipeline)
    for action in report.actions:
        _common.run_state(ctx).recovery(action)
    if as_json:
        _common.print_json(report.to_json())
        return
    for action in report.actions:
        _common.say(s, action)
    for label in report.damaged_versions:
        _common.say(s, f"damaged: {label}")


def forget(
    ctx: typer.Context,
    names: Annotated[list[str] | None, typer.Argument(help="Items (default: all).")] = None,
    keep_last: Annotated[int, typer.Option("--keep-last", metavar="N", min=0, help="Keep the N newest.")] = 0,
    keep_daily: Annotated[int, typer.Option("--keep-daily", metavar="N", min=0)] = 0,
    keep_weekly: Annotated[int, typer.Option("--keep-weekly", metavar="N", min=0)] = 0,
    keep_monthly: Annotated[int, typer.Option("--keep-monthly", metavar="N", min=0)] = 0,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Drop the versions the policy does not keep, per item. Space comes back with `vault prune`.

    Example: vault forget --keep-last 3 --keep-daily 7 --keep-weekly 4 --keep-monthly 12
    """
    from vault.ops.retention import Policy
    from vault.ops.retention import forget as _forget

    s = _common.settings(ctx)
    policy = Policy(keep_last, keep_daily, keep_weekly, keep_monthly)
    policy.check()
    repo = _common.open_repo(ctx, lock=None if dry_run else "exclusive")
    report = _forget(repo, list(names or []), policy, dry_run)
    if as_json:
        _common.print_json(report.entries)
        return
    for e in report.entries:
        why = f" ({', '.join(e['reasons'])})" if e["reasons"] else ""
        _common.say(s, f"{e['action']}\t{e['name']}\tversion {e['version']}\t{e['created']}{why}")
    verb = "would drop" if dry_run else "dropped"
    _common.say(s, f"{verb} {report.dropped} version(s); run `vault prune` to free space")
    _common.say_held(s, report.held)


def prune(ctx: typer.Context, dry_run: DryRunOpt = False, as_json: JsonOpt = False) -> None:
    """Delete stored data that no version references, and report the bytes freed.

    Example: vault prune --dry-run
    """
    from vault.ops.retention import prune as _prune

    s = _common.settings(ctx)
    session = _common.open_session(ctx, lock="exclusive")
    with progress.bar(s, "prune", None) as advance:
        report = _prune(session.repo, session.pipeline, dry_run, on_total=advance.set_total, on_progress=advance)
    if as_json:
        _common.print_json(report.to_json())
        return
    verb = "would free" if dry_run else "freed"
    _common.say(
        s,
        f"{verb} {_common.human_size(report.bytes_freed)} ({report.bytes_freed} bytes): "
        f"{report.packs_deleted} pack(s) deleted, {report.packs_repacked} repacked, "
        f"{report.blobs_dropped} unreferenced blob(s)",
    )
    lock = report.retention
    if lock.purged:
        _common.say(s, f"deleted {lock.purged} hidden object version(s) whose retention had passed")
    _common.say_held(s, lock.held)
    if lock.extended_until is not None:
        _common.say(s, f"extended the retention of {lock.extended} kept object(s) until "
                       f"{lock.extended_until:%Y-%m-%d %H:%M} UTC")


def register(app: typer.Typer) -> None:
    app.command("forget")(forget)
    app.command("prune")(prune)
    app.command("check")(check)
    app.command("repair")(repair)
