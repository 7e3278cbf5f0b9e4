"""`vault passwd` and `vault key add|list|remove`: several passwords, one master key, no data rewritten."""

from __future__ import annotations

from typing import Annotated

import typer

from vault.cli import _common

key_app = typer.Typer(help="Several passwords for one vault.", no_args_is_help=True)
NewPwOpt = Annotated[
    str | None, typer.Option("--new-password-file", metavar="FILE", help="Read the new password from FILE.")
]


def _new_password(s: _common.Settings, new_password_file: str | None) -> bytes:
    from vault.passwords import read_new_password, terminal_prompt

    pw = read_new_password(_common.password_options(s, new_password_file), prompt=terminal_prompt)
    _common.STATE.secrets.append(pw)
    return pw


def _params_for_new_slot(repo: object) -> object:
    from vault.crypto import kdf
    from vault.crypto.keys import POLICY_EXPLICIT

    slot = repo.slot  # type: ignore[attr-defined]
    return slot.params if slot.policy == POLICY_EXPLICIT else kdf.current_defaults()


def passwd(ctx: typer.Context, new_password_file: NewPwOpt = None) -> None:
    """Change the password of the key in use; stored data is not rewritten.

    Example: vault passwd --new-password-file ~/.vault-new-pw
    """
    s = _common.settings(ctx)
    repo = _common.open_repo(s, lock="exclusive")
    new = _new_password(s, new_password_file)
    repo.keys.replace(repo.slot, repo.key, new, _params_for_new_slot(repo))  # type: ignore[arg-type]
    _common.say(s, f"password of key {repo.slot.slot_id} changed")


@key_app.command("add")
def key_add(ctx: typer.Context, new_password_file: NewPwOpt = None) -> None:
    """Add another password that opens this vault.

    Example: VAULT_NEW_PASSWORD=... vault key add
    """
    s = _common.settings(ctx)
    repo = _common.open_repo(s, lock="exclusive")
    new = _new_password(s, new_password_file)
    slot = repo.keys.add(repo.key, new, _params_for_new_slot(repo), repo.slot.policy)  # type: ignore[arg-type]
    _common.say(s, f"added key {slot.slot_id}")


@key_app.command("list")
def key_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document on standard output.")] = False,
) -> None:
    """List the keys (passwords) of this vault.

    Example: vault key list --json
    """
    s = _common.settings(ctx)
    repo = _common.open_repo(s)
    rows = [slot.public_info() | {"current": slot.slot_id == repo.slot.slot_id} for slot in repo.keys.slots()]
    if as_json:
        _common.print_json(rows)
        return
    for r in rows:
        mark = "*" if r["current"] else " "
        k = r["kdf"]
        typer.echo(f"{mark} {r['id']}\t{r['created']}\t{r['host']}\targon2id {k['memory_kib'] // 1024} MiB "
                   f"t={k['time_cost']} p={k['parallelism']}")


@key_app.command("remove")
def key_remove(ctx: typer.Context, key_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Remove a key. The last key can't be removed.

    Example: vault key remove 3fa2c81b04d1e2f3
    """
    s = _common.settings(ctx)
    repo = _common.open_repo(s, lock="exclusive")
    repo.keys.remove(key_id)
    _common.say(s, f"removed key {key_id}")


def register(app: typer.Typer) -> None:
    app.command("passwd")(passwd)
    app.add_typer(key_app, name="key")
