"""Copy blobs out of existing packs into new ones: prune's repack and `rekey --reencrypt` share this.

Every blob is authenticated and decompressed (open_blob) before it is copied, so a damaged blob is never spread
into a new pack. A blob already sealed under the keyring's current generation is copied as it is (its AAD binds
its id, type and vault, not its pack); one sealed under an older generation is decrypted and sealed again under
the current one, still compressed. New packs are saved one at a time; the caller indexes them.

A blob a write-only key sealed is checked against its id when it is opened; one that is not what its id says
(forged by a holder of a write-only key, or damaged) is not copied: another copy of the blob, read through the
index (Repository.load_blob falls back across copies), is sealed in its place, and only when none holds the
blob is it an IntegrityError.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from vault import format as fmt
from vault.errors import IntegrityError, UnknownGenerationError
from vault.pipeline.runner import Pipeline
from vault.repo.blobs import SealedBlob, open_blob, reseal, seal_blob
from vault.repo.packs import PackBuilder, load_pack
from vault.repo.repository import Repository
from vault.storage.base import Handle, Kind, save_parts


@dataclass
class CopyResult:
    packs: list[fmt.IndexedPack] = field(default_factory=list)  # only when copy_blobs was asked to keep them
    packs_written: int = 0
    bytes_written: int = 0


def copy_blobs(
    repo: Repository,
    pipeline: Pipeline,
    sources: Iterable[fmt.IndexedPack],
    on_progress: Callable[[int], None] | None = None,
    on_pack: Callable[[fmt.IndexedPack], object] | None = None,
    keep_packs: bool = True,
) -> CopyResult:
    """Copy the blobs each source lists into new packs under the current key generation. ``sources`` is
    streamed (a blob listed by two sources is copied twice: harmless, and the index resolves each blob to one
    pack, so callers that pass what it resolves never do that).

    ``on_progress`` gets each source pack's size as it is read; ``on_pack`` each new pack once it is durable;
    the new packs are also returned unless ``keep_packs`` is False (a big prune keeps memory flat that way).
    Raises IntegrityError for a blob that fails to verify (nothing of that source is copied) and StorageError.
    """
    result = CopyResult()
    key, vault_id = repo.key, repo.vault_id
    builder = PackBuilder(key.current)

    def flush() -> None:
        nonlocal builder
        if builder.entries:
            parts = builder.finish_parts(key, vault_id)
            save_parts(repo.backend, Handle(Kind.DATA, builder.name), parts)
            pack = fmt.IndexedPack(builder.pack_id, builder.generation, builder.entries)
            if keep_packs:
                result.packs.append(pack)
            result.packs_written += 1
            result.bytes_written += sum(len(p) for p in parts)
            if on_pack is not None:
                on_pack(pack)
        builder = PackBuilder(key.current)

    def load(source: fmt.IndexedPack) -> tuple[fmt.IndexedPack, bytes, dict[int, SealedBlob]]:
        handle = Handle(Kind.DATA, source.pack_id.hex())
        data = load_pack(repo.backend, handle.name)
        instead: dict[int, SealedBlob] = {}
        for e in source.entries:  # never spread a damaged blob into a new pack: verify before copying
            sealed = data[e.offset : e.offset + e.length]
            what = f"blob {e.blob_id.hex()[:10]} in pack {handle}"
            try:
                open_blob(key, vault_id, e, sealed, what, source.generation)
            except (IntegrityError, UnknownGenerationError):
                if not e.flags & fmt.FLAG_SEALED:
                    raise
                plain = repo.load_blob(e.blob_id, e.blob_type)  # another copy, checked against the id
                instead[e.offset] = seal_blob(key, vault_id, e.blob_type, e.blob_id, plain, 3)
        return source, data, instead

    for source, data, instead in pipeline.ordered(load, sources, max_in_flight=2, pool=pipeline.io):
        if on_progress is not None:
            on_progress(len(data))
        for e in source.entries:
            blob = instead.get(e.offset)
            builder.add(blob or reseal(key, vault_id, e, data[e.offset : e.offset + e.length], source.generation))
            if builder.full():
                flush()
    flush()
    return result
