"""Large synthetic vaults for benchmarks/scale.py: real vaults, written through vault's own repository code.

Each vault holds ``blobs`` data blobs of 16-31 random bytes (one file of one chunk each) in ``versions`` version
records. Items have ``per_item`` (100) versions each; version k of an item is a directory tree that holds every
file of its versions 1..k (a directory that grows by ``blobs / versions`` new files per backup)::

    item-0042/                 the item (its name), version k
      g00/ ... g09/            one directory per 10 versions
        v001/ ... v100/        the files version k added: f0000, f0001, ...

so version k's new tree blobs are its own ``vNNN`` directory, its group directory, the root and the record's
one-node tree (unchanged sub-trees are shared with the earlier versions, deduplicated as a `put` would), and the
last version of each item is a real tree that `vault get` restores.

What writes what (all of it vault's code, as a `put` uses it): a :class:`~vault.repo.repository.Repository`
made with :meth:`Repository.create` (argon2id 8 MiB, t=1, p=1, policy "explicit": cheap to open, kept as
chosen); one :class:`~vault.repo.writer.BlobWriter` per block of items (dedup against the index, zstd level 3 as
`put` uses (the random data stays raw: zstd can't shrink it), AES-GCM, packs, a checkpoint index object per
pack, one merged index object per block through ``Repository.commit_packs``); tree blobs through
``BlobWriter.store_one`` and :func:`vault.format.encode_tree`; the block's version records as one catalog segment
(``Catalog.write_segment``, as compaction leaves them) - except the last ``loose`` records, which are committed
one item at a time through ``Repository.commit_records`` as `put` does; finally ``Repository.compact`` (index
objects merged as the first command would). Packs are closed at ``pack_blobs`` (1,024) blobs instead of 16 MiB
(``PackBuilder.full`` is replaced in this process only), so the vault has as many packs per blob as one of
files of ~16 KiB would: 10 M blobs make ~10,000 packs, not 36 of 16 MiB.

Generation is resumable: the vault is written in blocks of 40 items (4,000 records, one segment), and
``gen-state.json`` records each finished block and the names of the index and catalog objects it left. A rerun
deletes whatever an interrupted block wrote (objects not named in the state, packs no index names) and goes on
with the next block. The generator's own cache (``gen-cache/``) is deleted once the vault is complete.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

PASSWORD = "scale-benchmark-password"  # of every generated vault; not a secret
HOST = "scale-gen"
GROUP = 10  # versions per group directory
BLOCK_RECORDS = 4000  # records per block (one segment; SEGMENT_RECORDS is 4,096)
BASE_TIME = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Shape:
    """What a generated vault holds."""

    blobs: int
    versions: int
    per_item: int = 100  # versions per item
    pack_blobs: int = 1024  # blobs per pack at most
    loose: int = 10  # version records left loose (committed as `put` does), the rest in segments

    @property
    def name(self) -> str:
        return f"{_short(self.blobs)}-{_short(self.versions)}"

    @property
    def items(self) -> int:
        return max(1, self.versions // self.per_item)

    @property
    def files(self) -> int:
        """New files (= data blobs) per version."""
        return max(1, self.blobs // (self.items * self.per_item))

    @property
    def items_per_block(self) -> int:
        return max(1, BLOCK_RECORDS // self.per_item)

    @property
    def blocks(self) -> int:
        return -(-self.items // self.items_per_block)


def _short(n: int) -> str:
    for unit, div in (("m", 1_000_000), ("k", 1_000)):
        if n >= div and n % div == 0:
            return f"{n // div}{unit}"
    return str(n)


def parse_count(text: str) -> int:
    text = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(text[:-1] if mult > 1 else text) * mult


def parse_shape(text: str, **extra: int) -> Shape:
    """``10m/100k`` (blobs/versions) -> Shape."""
    blobs, _, versions = text.partition("/")
    return Shape(parse_count(blobs), parse_count(versions), **extra)


def item_name(i: int) -> str:
    return f"item-{i:04d}"


def version_dir(k: int) -> tuple[str, str]:
    """(group directory, version directory) of version ``k`` (1-based)."""
    return f"g{(k - 1) // GROUP:02d}", f"v{k:03d}"


def file_name(j: int) -> str:
    return f"f{j:04d}"


def version_files(shape: Shape, i: int, k: int) -> list[bytes]:
    """The contents of the files version ``k`` of item ``i`` added: 16-31 random bytes each, reproducible."""
    rng = random.Random(i * 1_000_003 + k)
    return [rng.randbytes(16 + rng.getrandbits(4)) for _ in range(shape.files)]


def _stamp(i: int, k: int, per_item: int) -> datetime:
    return BASE_TIME + timedelta(minutes=i * per_item + k)


# -- the generator --------------------------------------------------------------------------------------------


@dataclass
class GenState:
    shape: dict[str, int]
    blocks_done: int = 0
    index: list[str] | None = None  # index objects left by the finished blocks
    versions: list[str] | None = None  # catalog objects left by the finished blocks
    seconds: float = 0.0  # generation time so far
    complete: bool = False


def _load_state(path: Path) -> GenState | None:
    try:
        return GenState(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None


def _save_state(path: Path, state: GenState) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state)))
    os.replace(tmp, path)


def generate(root: Path, shape: Shape, *, threads: int = 2, log: bool = True) -> Path:
    """Make (or finish) the vault of ``shape`` in ``root/<shape.name>/vault``; returns the set's directory.
    Resumable: see the module's docstring."""
    from vault import format as fmt
    from vault.crypto.kdf import KdfParams
    from vault.crypto.slots import POLICY_EXPLICIT
    from vault.pipeline.runner import Pipeline
    from vault.repo import packs as packs_mod
    from vault.repo.repository import Repository
    from vault.storage.base import Kind
    from vault.storage.local import LocalBackend

    limit = shape.pack_blobs
    target = fmt.PACK_TARGET_SIZE

    def full(self: packs_mod.PackBuilder) -> bool:  # packs of ~1,024 tiny blobs (see the module's docstring)
        return len(self.entries) >= limit or self.size >= target

    packs_mod.PackBuilder.full = full  # type: ignore[method-assign]

    setdir = root / shape.name
    setdir.mkdir(parents=True, exist_ok=True)
    vault_dir = setdir / "vault"
    state_path = setdir / "gen-state.json"
    gen_cache = setdir / "gen-cache"
    state = _load_state(state_path)
    if state is not None and state.shape != asdict(shape):
        raise SystemExit(f"{setdir} holds a vault of another shape ({state.shape}); delete it first")
    if state is not None and state.complete:
        return setdir
    backend = LocalBackend(vault_dir)
    password = PASSWORD.encode()
    if state is None:
        if vault_dir.exists():
            shutil.rmtree(vault_dir)
        shutil.rmtree(gen_cache, ignore_errors=True)
        repo = Repository.create(backend, password, KdfParams(8 * 1024, 1, 1), POLICY_EXPLICIT)
        repo.cache_dir = gen_cache
        state = GenState(asdict(shape), index=[], versions=[])
        _save_state(state_path, state)
        _write_manifest(setdir, shape, repo.config.vault_id.hex())
    else:
        repo = Repository.open(backend, password, cache_dir=gen_cache)
        _forget_unfinished_block(repo, state)

    started = time.monotonic() - state.seconds
    with Pipeline(threads) as pipeline:
        for block in range(state.blocks_done, shape.blocks):
            t0 = time.monotonic()
            _write_block(repo, pipeline, shape, block)
            state.blocks_done = block + 1
            state.index = sorted(i.handle.name for i in backend.list(Kind.INDEX))
            state.versions = sorted(i.handle.name for i in backend.list(Kind.VERSIONS))
            state.seconds = time.monotonic() - started
            _save_state(state_path, state)
            if log:
                done = min(shape.items, state.blocks_done * shape.items_per_block) * shape.per_item * shape.files
                print(f"{shape.name}: block {block + 1}/{shape.blocks} in {time.monotonic() - t0:.1f} s "
                      f"({done:,} blobs, {state.seconds:.0f} s so far)", flush=True)
    repo.compact(alone=lambda: True)  # index objects merged as the first command would (nobody else writes)
    repo.close()
    state.complete = True
    state.index = sorted(i.handle.name for i in backend.list(Kind.INDEX))
    state.versions = sorted(i.handle.name for i in backend.list(Kind.VERSIONS))
    state.seconds = time.monotonic() - started
    _save_state(state_path, state)
    shutil.rmtree(gen_cache, ignore_errors=True)
    if log:
        print(f"{shape.name}: complete in {state.seconds:.0f} s", flush=True)
    return setdir


def _forget_unfinished_block(repo: object, state: GenState) -> None:
    """Delete what an interrupted block wrote: index and catalog objects the state does not name, and the packs
    that no remaining index object lists."""
    from vault.repo.repository import Repository
    from vault.storage.base import Handle, Kind, remove_all

    assert isinstance(repo, Repository)
    backend = repo.backend
    for kind, keep in ((Kind.INDEX, set(state.index or [])), (Kind.VERSIONS, set(state.versions or []))):
        stale = [i.handle for i in backend.list(kind) if i.handle.name not in keep]
        remove_all(backend, stale)
        if stale:
            print(f"resuming: removed {len(stale)} {kind.value} object(s) of the unfinished block", flush=True)
    repo.refresh_blobs()
    repo.refresh_catalog()
    orphans = repo.index.unindexed_packs(i.handle.name for i in backend.list(Kind.DATA))
    remove_all(backend, [Handle(Kind.DATA, name) for name in orphans])
    if orphans:
        print(f"resuming: removed {len(orphans)} pack(s) of the unfinished block", flush=True)


def _write_block(repo: object, pipeline: object, shape: Shape, block: int) -> None:
    """Items ``block * items_per_block ...``: their data, their trees, one merged index, then their records."""
    from vault import format as fmt
    from vault.pipeline.runner import Pipeline
    from vault.repo.catalog import VersionRecord, new_record_id
    from vault.repo.repository import Repository
    from vault.repo.tree import Node, encode_tree
    from vault.repo.writer import BlobWriter

    assert isinstance(repo, Repository) and isinstance(pipeline, Pipeline)
    writer = BlobWriter(repo, pipeline, 3)
    first = block * shape.items_per_block
    items = range(first, min(shape.items, first + shape.items_per_block))
    records: list[VersionRecord] = []
    for i in items:
        name = item_name(i)

        def chunks(i: int = i) -> Iterator[bytes]:
            for k in range(1, shape.per_item + 1):
                yield from version_files(shape, i, k)

        ids = iter(list(writer.store(chunks())))
        groups: dict[str, Node] = {}  # group directory -> its node in the latest version
        versions_in_group: list[Node] = []
        size = 0
        for k in range(1, shape.per_item + 1):
            stamp = _stamp(i, k, shape.per_item)
            ns = int(stamp.timestamp() * 1e9)
            files = []
            added = 0
            for j in range(shape.files):
                blob_id, length, stored = next(ids)
                added += stored
                size += length
                inode = 1_000_000 + (i * shape.per_item + k) * shape.files + j
                files.append(Node(file_name(j), "file", 0o644, ns, length, content=(blob_id,), inode=inode,
                                  ctime_ns=ns))
            gname, vname = version_dir(k)
            if k % GROUP == 1 or GROUP == 1:
                versions_in_group = []
            vtree = writer.store_one(encode_tree(files), fmt.BlobType.TREE)
            versions_in_group.append(Node(vname, "dir", 0o755, ns, subtree=vtree))
            gtree = writer.store_one(encode_tree(list(versions_in_group)), fmt.BlobType.TREE)
            groups[gname] = Node(gname, "dir", 0o755, ns, subtree=gtree)
            root = writer.store_one(encode_tree(list(groups.values())), fmt.BlobType.TREE)
            top = writer.store_one(encode_tree([Node(name, "dir", 0o755, ns, subtree=root)]), fmt.BlobType.TREE)
            records.append(VersionRecord(
                record_id=new_record_id(), item=name, version=k,
                created=stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), type="dir", tree=top, size=size,
                files=k * shape.files, bytes_added=added, host=HOST,
            ))
    writer.finish()  # packs and index durable before any record names them
    last_block = block == shape.blocks - 1
    loose = records[-shape.loose:] if last_block and shape.loose else []
    segment = records[: len(records) - len(loose)]
    if segment:
        repo.catalog.write_segment([(r.record_id, fmt.encode_record(r.stored())) for r in segment])
    for r in loose:  # as `put` commits them: loose objects, numbering checked
        repo.commit_records([r])


def _write_manifest(setdir: Path, shape: Shape, vault_id: str) -> None:
    """What the benchmark needs to know about the set (and a person reading the directory)."""
    mid = shape.items // 2
    gname, vname = version_dir(shape.per_item)
    j = shape.files // 2
    doc = {
        "shape": asdict(shape),
        "name": shape.name,
        "password": PASSWORD,
        "vault_id": vault_id,
        "items": shape.items,
        "versions": shape.items * shape.per_item,
        "data_blobs": shape.items * shape.per_item * shape.files,
        "tree_blobs_written": shape.items * shape.per_item * 4,
        "files_per_version": shape.files,
        "history_item": item_name(mid),
        "get_path": f"{item_name(mid)}/{gname}/{vname}/{file_name(j)}",
        "get_bytes_hex": version_files(shape, mid, shape.per_item)[j].hex(),
        "restore_item": item_name(mid),
        "restore_files": shape.per_item * shape.files,
    }
    (setdir / "manifest.json").write_text(json.dumps(doc, indent=1) + "\n")
