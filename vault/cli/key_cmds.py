"""`vault passwd` and `vault key add|list|remove`: several passwords, one master key, no data rewritten; write-only
keys (`key add --write-only`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from vault.cli import _common, progress

if TYPE_CHECKING:
    from vault.crypto.kdf import KdfParams
    from vault.repo.repository import Repository

key_app = typer.Typer(help="Several passwords for one vault.", no_args_is_help=True)
NewPwOpt = Annotated[
    str | None, typer.Option("--new-password-file", metavar="FILE", help="Read the new password from FILE.")
]


@key_app.callback()
def _key_group(ctx: typer.Context) -> None:
    """Several passwords (and recovery keys) for one vault."""
    _common.run_state(ctx).command = f"key {ctx.invoked_subcommand}"


def _new_password(ctx: typer.Context, new_password_file: str | None) -> bytes:
    from vault.passwords import read_new_password, terminal_prompt

    s = _common.settings(ctx)
    pw = read_new_password(_common.password_options(s, new_password_file), prompt=terminal_prompt)
    _common.remember_secret(_common.run_state(ctx), pw)
    return pw


def _new_slot_settings(repo: Repository) -> tuple[KdfParams, str]:
    """A new password slot keeps the parameters the user chose at init, or follows the defaults."""
    from vault.crypto import kdf
    from vault.crypto.slots import POLICY_DEFAULT, POLICY_EXPLICIT

    if repo.slot.policy == POLICY_EXPLICIT:
        return repo.slot.params, POLICY_EXPLICIT
    return kdf.current_defaults(), POLICY_DEFAULT


def passwd(ctx: typer.Context, new_password_file: NewPwOpt = None) -> None:
    """Change the password of the key in use; stored data is not rewritten.

    Example: vault passwd --new-password-file ~/.vault-new-pw
    """
    from vault.crypto.slots import POLICY_RECOVERY
    from vault.errors import UsageError

    s = _common.settings(ctx)
    repo = _common.open_repo(ctx, lock="exclusive")
    if repo.slot.policy == POLICY_RECOVERY:  # before asking for a new password that could not be used
        raise UsageError("the vault was opened with a recovery key, which has no password to change",
                         hint="add a password with `vault key add`; the recovery key keeps working")
    new = _new_password(ctx, new_password_file)
    params, _ = _new_slot_settings(repo)
    repo.keys.replace(repo.slot, repo.key, new, params)
    _common.say(s, f"password of key {repo.slot.slot_id} changed")


@key_app.command("add")
def key_add(
    ctx: typer.Context,
    new_password_file: NewPwOpt = None,
    recovery_file: Annotated[
        str | None,
        typer.Option("--recovery", metavar="FILE", help="Add a recovery key instead, written to FILE (0600)."),
    ] = None,
    write_only: Annotated[
        bool,
        typer.Option("--write-only", help="A key that can only add data: put, info, check and log; it can't read, "
                     "list or remove anything, not even what it stored."),
    ] = False,
) -> None:
    """Add another password (or a recovery key, or a write-only key) that opens this vault.

    Example: VAULT_NEW_PASSWORD=... vault key add   |   vault key add --recovery ~/vault-recovery.txt
    Example: vault key add --write-only --new-password-file ~/.nightly-backup-pw
    """
    from vault.errors import UsageError

    if write_only and recovery_file is not None:
        raise UsageError("--write-only and --recovery can't be combined")
    s = _common.settings(ctx)
    session = _common.open_session(ctx, lock="exclusive")
    repo = session.repo
    if write_only:
        from vault.ops.write_only import add_write_only_key

        new = _new_password(ctx, new_password_file)
        params, policy = _new_slot_settings(repo)
        refresh = session.lock.refresh if session.lock is not None else None
        slot = add_write_only_key(repo, new, params, policy, refresh)
        _common.say(s, f"added write-only key {slot.slot_id}: it stores new versions and can read or remove nothing")
        return
    if recovery_file is not None:
        key = _common.new_recovery_key(_common.run_state(ctx), recovery_file, repo.backend.location)
        slot = repo.keys.add_recovery(repo.key, key)
        _common.say(s, f"added recovery key {slot.slot_id}, written to {recovery_file}: print it, keep it offline")
        return
    new = _new_password(ctx, new_password_file)
    params, policy = _new_slot_settings(repo)
    slot = repo.keys.add(repo.key, new, params, policy)
    _common.say(s, f"added key {slot.slot_id}")


@key_app.command("list")
def key_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document on standard output.")] = False,
) -> None:
    """List the keys (passwords) of this vault.

    Example: vault key list --json
    """
    repo = _common.open_repo(ctx)
    rows = sorted(
        (
            slot.public_info(repo.key, repo.vault_id) | {"current": slot.slot_id == repo.slot.slot_id}
            for slot in repo.keys.slots()
        ),
        key=lambda r: (r["created"], r["id"]),
    )
    if as_json:
        _common.print_json(rows)
        return
    for r in rows:
        mark = "*" if r["current"] else " "
        k = r["kdf"]
        typer.echo(f"{mark} {r['id']}\t{r['kind']}\t{r['type']}\t{r['created']}\t{r['host']}\t"
                   f"argon2id {k['memory_kib'] // 1024} MiB t={k['time_cost']} p={k['parallelism']}")


@key_app.command("remove")
def key_remove(ctx: typer.Context, key_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Remove a key. The last key can't be removed.

    Example: vault key remove 3fa2c81b04d1e2f3
    """
    s = _common.settings(ctx)
    repo = _common.open_repo(ctx, lock="exclusive")
    held = repo.keys.remove(key_id)
    _common.say(s, f"removed key {key_id}")
    _common.say_held(s, held)


def rekey(
    ctx: typer.Context,
    reencrypt: Annotated[
        bool,
        typer.Option("--reencrypt", help="Also rewrite all stored data under the new key (after a leak)."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document on standard output.")] = False,
) -> None:
    """Make a new master key for new data; with --reencrypt, rewrite everything under it and verify it.

    Keeps the password (or recovery key) in use and removes every other key: add them again afterwards.
    An interrupted --reencrypt resumes when run again.

    Example: vault rekey --reencrypt && vault key add --recovery ~/vault-recovery.txt
    """
    from vault.ops.rekey import rekey as _rekey

    s = _common.settings(ctx)
    session = _common.open_session(ctx, lock="exclusive")
    lock = session.lock
    with progress.bar(s, "rekey", None) as advance:
        report = _rekey(
            session.repo, session.password, session.pipeline, reencrypt,
            refresh_lock=lock.refresh if lock is not None else None,
            on_total=advance.set_total, on_progress=advance,
        )
    _common.run_state(ctx).nbytes = report.bytes_written
    if as_json:
        _common.print_json(report.to_json())
        return
    if report.resumed:
        _common.say(s, f"resumed the re-encryption to key generation {report.generation}")
    else:
        _common.say(s, f"key generation {report.generation} is current: new data is sealed under a new master key")
    for removed in report.removed_keys:
        again = {"recovery": "vault key add --recovery FILE", "write-only": "vault key add --write-only"}.get(
            removed["type"], "vault key add")
        _common.say(s, f"removed {removed['type']} key {removed['id']}: it opens only the old key; "
                       f"add it again with `{again}`")
    for kept in report.write_only_kept:
        _common.say(s, f"kept write-only key {kept['id']}: it still seals to key generation "
                       f"{kept['public_key_generation']}, so what it adds is readable with that older key too; "
                       "issue a new one (`vault key add --write-only`, then `vault key remove`) if it may have leaked")
    if report.reencrypted:
        _common.say(
            s,
            f"re-encrypted {report.packs_rewritten} pack(s) into {report.packs_written} "
            f"({_common.human_size(report.bytes_written)}) and {report.records_rewritten} version record(s); "
            f"{report.blobs_verified} blob(s) verified; the old keys are gone from this key",
        )
    elif report.older_generations:
        _common.say(
            s,
            "data stored before stays under key generation(s) "
            f"{', '.join(map(str, report.older_generations))}; `vault rekey --reencrypt` rewrites it",
        )
    _common.say_held(s, report.held)


def register(app: typer.Typer) -> None:
    app.command("passwd")(passwd)
    app.command("rekey")(rekey)
    app.add_typer(key_app, name="key")
