"""`vault ls`, `history`, `rm`, `info` and `log`."""

from __future__ import annotations

from typing import Annotated

import typer

from vault.cli import _common

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on standard output.")]


def ls(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Item (or path inside one) to list.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List items, or what the latest version of an item holds.

    Example: vault ls   |   vault ls photos/2020 --json
    """
    from vault.ops.items import list_contents, list_items

    repo = _common.open_repo(ctx)
    if name is None:
        items = list_items(repo)
        if as_json:
            _common.print_json(items)
        for it in [] if as_json else items:
            typer.echo(f"{_common.printable(it['name'])}\t{it['type']}\t{_common.human_size(it['size'])}\t"
                       f"{it['versions']} version(s)\t{it['updated']}")
        return
    entries = list_contents(repo, name)
    if as_json:
        _common.print_json(entries)
        return
    # Names and link targets are anything but "/" and NUL: escaped for the terminal (not in --json).
    for e in entries:
        target = _common.printable(e["target"]) if e["type"] == "link" else ""
        suffix = f" -> {target}" if e["type"] == "link" else ("/" if e["type"] == "dir" else "")
        typer.echo(f"{e['mode']}\t{_common.human_size(e['size']):>10}\t{e['mtime']}\t"
                   f"{_common.printable(e['name'])}{suffix}")


def history(ctx: typer.Context, name: Annotated[str, typer.Argument()], as_json: JsonOpt = False) -> None:
    """The versions of an item, oldest first.

    Example: vault history notes.txt
    """
    from vault.ops.items import history as _history

    versions = _history(_common.open_repo(ctx), name)
    if as_json:
        _common.print_json(versions)
        return
    for v in versions:
        typer.echo(f"{v['version']}\t{v['created']}\t{v['type']}\t{_common.human_size(v['size'])}\t"
                   f"{v['files']} file(s)")


def rm(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument()],
    version: Annotated[int | None, typer.Option("--version", min=1, help="Remove only this version.")] = None,
) -> None:
    """Remove an item, or one version of it. Space comes back with `vault prune`.

    Example: vault rm old-notes.txt --version 2
    """
    from vault.ops.items import remove

    s = _common.settings(ctx)
    repo = _common.open_repo(ctx, lock="exclusive")
    removed = remove(repo, name, version)
    _common.say(s, f"removed {len(removed)} version(s) of {name}; run `vault prune` to free space")
    _common.say_held(s, repo.take_held())


def info(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Format version, KDF parameters, counts, sizes, dedup and compression ratios.

    Example: vault info --json
    """
    from vault.ops.items import info as _info

    repo = _common.open_repo(ctx, write_only_ok=True)
    if repo.write_only:
        from vault.ops.write_only import write_only_info

        doc = write_only_info(repo)
    else:
        doc = _info(repo)
    if as_json:
        _common.print_json(doc)
        return
    if repo.write_only:
        _write_only_info_text(doc)
        return
    k = doc["kdf"]
    older = doc["older_key_generations"]
    held = f" (data from before it under {', '.join(map(str, older))}: `vault rekey --reencrypt`)" if older else ""
    typer.echo(
        f"location:        {doc['location']}\n"
        f"format version:  {doc['format_version']}\n"
        f"retention:       {_retention_text(doc['retention_days'])}\n"
        f"items:           {doc['items']}\n"
        f"versions:        {doc['versions']}\n"
        f"keys:            {doc['keys']}\n"
        f"original size:   {_common.human_size(doc['original_bytes'])}\n"
        f"stored size:     {_common.human_size(doc['stored_bytes'])}\n"
        f"dedup ratio:     {doc['dedup_ratio']}\n"
        f"compression:     {doc['compression_ratio']}\n"
        f"key derivation:  argon2id, {k['memory_kib'] // 1024} MiB, t={k['time_cost']}, p={k['parallelism']}\n"
        f"key generation:  {doc['key_generation']}{held}"
    )


def _write_only_info_text(doc: dict[str, object]) -> None:
    k = doc["kdf"]
    assert isinstance(k, dict)
    stored = doc["stored_bytes"]
    assert isinstance(stored, int)
    typer.echo(
        f"location:        {doc['location']}\n"
        f"format version:  {doc['format_version']}\n"
        f"key:             write-only (it adds data; items, versions and contents are sealed to a full key)\n"
        f"stored objects:  {doc['packs']} pack(s), {doc['index_objects']} index object(s), "
        f"{doc['version_objects']} version object(s)\n"
        f"keys:            {doc['keys']}\n"
        f"stored size:     {_common.human_size(stored)}\n"
        f"key derivation:  argon2id, {k['memory_kib'] // 1024} MiB, t={k['time_cost']}, p={k['parallelism']}"
    )


def _retention_text(days: int | None) -> str:
    if days is None:
        return "none"
    return f"{days} day{'s' if days != 1 else ''} (S3 Object Lock, compliance mode)"


def log_cmd(
    ctx: typer.Context,
    n: Annotated[int, typer.Option("-n", min=1, help="How many recent operations.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """The most recent operations on this vault from this machine.

    Example: vault log -n 5
    """
    from pathlib import Path

    from vault.oplog import OperationLog

    s = _common.settings(ctx)
    log_dir = s.env.get("VAULT_LOG_DIR") or None
    records = OperationLog(_common.canonical_location(s.location), Path(log_dir) if log_dir else None).read(n)
    _common.run_state(ctx).location = None  # reading the log is not an operation on the vault
    if as_json:
        _common.print_json([r.to_json() for r in records])
        return
    for r in records:
        size = _common.human_size(r.bytes) if r.bytes is not None else "-"
        err = f"\t{r.error}" if r.error else ""
        typer.echo(f"{r.time}\t{r.command}\t{r.outcome}\t{r.exit_code}\t{r.duration_s:.2f}s\t{size}{err}")


def register(app: typer.Typer) -> None:
    app.command("ls")(ls)
    app.command("history")(history)
    app.command("rm")(rm)
    app.command("info")(info)
    app.command("log")(log_cmd)
