"""`vault mount`: every item and version as a read-only file system (FUSE), until it is unmounted.

view.py lays the catalog out as directories, files.py reads stored files chunk by chunk, fs.py answers libfuse,
run.py checks the mountpoint and FUSE and serves.

The mount takes no lock. It only reads immutable objects, as `ls` and `history` do, and a mount may stay up for
weeks: a shared lock would keep `prune`, `forget` and `rm` out all that time (restic's mount takes a shared lock
unless told --no-lock, and its prune then waits). Without one, a `forget` and `prune` elsewhere can remove a
version that is on display: the next refresh (within 30 s) takes it away, and a file of it that is open reads
as EIO once its data is gone. Data that `prune` only repacked is found again in its new pack.
"""

from __future__ import annotations

from collections.abc import Callable

from vault.pipeline.runner import Pipeline
from vault.repo.repository import Repository


def mount(repo: Repository, pipeline: Pipeline, mountpoint: str, *, on_damage: Callable[[str], None],
          on_ready: Callable[[], None] | None = None, note: Callable[[str], None] = lambda text: None,
          refresh_s: float = 30.0) -> None:
    """Serve ``repo`` at ``mountpoint`` (checked with :func:`vault.mount.run.check_mountpoint`) until it is
    unmounted or the process gets SIGINT, SIGTERM or SIGHUP, catching up with the vault's versions every
    ``refresh_s`` seconds. StorageError when FUSE is missing or refuses."""
    from vault.mount.fs import VaultFS
    from vault.mount.run import load_fuse, serve

    fuse = load_fuse()
    fs = VaultFS(repo, pipeline, on_damage, on_ready, refresh_s=refresh_s)
    fs.start()
    try:
        serve(fuse, fs, mountpoint, f"vault:{repo.vault_id.hex()[:10]}", note)
    finally:
        fs.stop()
