"""`vault init`."""

from __future__ import annotations

import contextlib
import os
from typing import Annotated

import typer

from vault.cli import _common


def init(
    ctx: typer.Context,
    kdf_memory: Annotated[
        int | None, typer.Option("--kdf-memory", metavar="MIB", help="Argon2id memory in MiB (default 64).")
    ] = None,
    kdf_time: Annotated[
        int | None, typer.Option("--kdf-time", metavar="N", help="Argon2id passes (default 3).")
    ] = None,
    kdf_parallelism: Annotated[
        int | None, typer.Option("--kdf-parallelism", metavar="N", help="Argon2id lanes (default 4).")
    ] = None,
    retention: Annotated[
        int | None,
        typer.Option("--retention", metavar="DAYS", min=1,
                     help="S3 only: lock every object the vault writes for DAYS days (S3 Object Lock, compliance "
                          "mode); no client can delete or overwrite it before then."),
    ] = None,
    recovery_key: Annotated[
        str | None,
        typer.Option("--recovery-key", metavar="FILE",
                     help="Also write a recovery key to FILE (0600): it opens the vault if every password is lost."),
    ] = None,
) -> None:
    """Create a new vault at the location.

    Example: vault --vault ~/backups/vault init
    Example: vault --vault s3://my-backups/laptop init --retention 30
    """
    from vault.crypto import kdf
    from vault.crypto.slots import POLICY_DEFAULT, POLICY_EXPLICIT
    from vault.ops.init import check_retention_target, create_vault
    from vault.passwords import read_new_password, terminal_prompt

    s = _common.settings(ctx)
    defaults = kdf.current_defaults()
    explicit = any(v is not None for v in (kdf_memory, kdf_time, kdf_parallelism))
    params = kdf.KdfParams(
        memory_kib=kdf_memory * 1024 if kdf_memory is not None else defaults.memory_kib,
        time_cost=kdf_time if kdf_time is not None else defaults.time_cost,
        parallelism=kdf_parallelism if kdf_parallelism is not None else defaults.parallelism,
    )
    for warning in kdf.validate_new(params):
        _common.note(f"warning: {warning}")
    backend = _common.backend_for(s)
    from vault.errors import ConflictError, ObjectNotFoundError
    from vault.repo.config import CONFIG_HANDLE

    # Refuse before asking for a password: an existing vault is never touched, and a retention the location
    # can't keep (a local directory, a bucket without Object Lock) is refused as a usage error (exit 2).
    if retention is not None:
        check_retention_target(backend, retention)
    elif backend.exists_root():
        try:
            backend.stat(CONFIG_HANDLE)
            raise ConflictError(f"a vault already exists at {backend.location}")
        except ObjectNotFoundError:
            pass
    password = read_new_password(_common.password_options(s), prompt=terminal_prompt, for_init=True)
    state = _common.run_state(ctx)
    _common.remember_secret(state, password)
    # The recovery key file is written before the vault exists, so a file that can't be written leaves no
    # vault behind that lacks the key the user asked for.
    key = _common.new_recovery_key(state, recovery_key, backend.location) if recovery_key is not None else None
    try:
        repo = create_vault(backend, password, params, POLICY_EXPLICIT if explicit else POLICY_DEFAULT,
                            retention_days=retention)
        slot = repo.keys.add_recovery(repo.key, key) if key is not None else None
    except BaseException:
        if recovery_key is not None:
            with contextlib.suppress(OSError):
                os.unlink(recovery_key)
        raise
    _common.say(s, f"created vault at {backend.location}")
    if retention is not None:
        _common.say(s, f"every object it writes is locked for {retention} days (S3 Object Lock, compliance mode)")
    if slot is not None:
        _common.say(s, f"added recovery key {slot.slot_id}, written to {recovery_key}: print it, keep it offline")


def register(app: typer.Typer) -> None:
    app.command("init")(init)
