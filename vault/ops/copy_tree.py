"""One version's tree copied into another vault: its chunks sealed again under the destination's keys, its trees
written again with the destination's ids, in one pass.

The source's chunk boundaries and compressed payloads are kept. A chunk is fetched, authenticated and
decompressed only to compute its id under the destination's key (ids are keyed hashes, so the same plaintext has
another id there); if the destination holds that id already nothing is written, else the payload, still
compressed, is sealed under the destination's data key. Nothing is compressed again, which is most of a put's
work. (Re-cutting the plaintext with the destination's chunker would let large files dedup against what was put
into the destination directly, at the price of compressing everything again; a copy destination normally holds
copies, which dedup with each other exactly as they do here.)

What is known needs no work at all: a sub-tree whose source id was copied earlier in this run, or that is the
same as in the *parent* (the source version of which the destination already holds a copy, walked in step), is
reused by id without descending; so is a file whose chunk list is the parent's at the same path, or whose chunks
were all translated before. So copying version 2 after version 1 reads only what changed, as an incremental put
does. The walk is depth first with an explicit stack, and a directory's tree is written as soon as its last file
is in, so memory holds the directories on the current path and the chunks in flight, never the whole tree. A
tree that contains itself is damage (IntegrityError).
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from vault import format as fmt
from vault.browse.trees import TreeReader, cycle_error
from vault.errors import IntegrityError, ObjectNotFoundError
from vault.pipeline.runner import Pipeline
from vault.repo.blobs import SealedBlob, decode_payload, open_payload, verify_blob_id
from vault.repo.repository import Repository
from vault.repo.tree import Node, encode_tree
from vault.repo.writer import BlobWriter
from vault.storage.base import Handle

CHUNKS_REMEMBERED = 1 << 16  # source chunk id -> destination chunk id, for chunks met again in one run
BATCH_BYTES = 1 << 20
BATCH_CHUNKS = 64


@dataclass
class Translations:
    """What one copy run has translated so far: chunk ids (the last CHUNKS_REMEMBERED) and tree ids."""

    chunks: OrderedDict[bytes, bytes] = field(default_factory=OrderedDict)
    trees: dict[bytes, bytes] = field(default_factory=dict)

    def chunk(self, src: bytes) -> bytes | None:
        dst = self.chunks.get(src)
        if dst is not None:
            self.chunks.move_to_end(src)
        return dst

    def remember_chunk(self, src: bytes, dst: bytes) -> None:
        self.chunks[src] = dst
        if len(self.chunks) > CHUNKS_REMEMBERED:
            self.chunks.popitem(last=False)


class _Dir:
    """A directory being copied: a slot per entry, filled as each is done; its tree is written once it is
    ``closed`` (every entry handed out) and nothing is ``pending``."""

    __slots__ = ("closed", "node", "nodes", "parent", "pending", "slot")

    def __init__(self, node: Node, parent: _Dir | None, slot: int) -> None:
        self.node = node
        self.parent = parent
        self.slot = slot
        self.nodes: list[Node | None] = []
        self.pending = 0
        self.closed = False


class _File:
    __slots__ = ("content", "node", "parent", "slot")

    def __init__(self, node: Node, parent: _Dir | None, slot: int) -> None:
        self.node = node
        self.parent = parent
        self.slot = slot
        self.content: list[bytes] = []


@dataclass(frozen=True, slots=True)
class _Job:
    """One source chunk to translate: its destination id when known already, else where it is stored."""

    src_id: bytes
    known: bytes | None = None
    entry: fmt.BlobEntry | None = None
    pack: Handle | None = None
    generation: int = 0


Parent = tuple[Node, Node]  # the same path in the parent: (source node, destination node)


class TreeCopier:
    """Copies version roots from ``src`` into ``writer``'s repository (one copier per version)."""

    def __init__(self, src: Repository, writer: BlobWriter, pipeline: Pipeline, memo: Translations) -> None:
        self.src = src
        self.dst = writer.repo
        self.writer = writer
        self.pipeline = pipeline
        self.memo = memo
        self.src_trees = TreeReader(src)
        self.dst_trees = TreeReader(writer.repo)
        self._owners: deque[_File | tuple[_File]] = deque()  # per chunk in flight; (f,) marks f's end
        self._root: Node | None = None

    # -- the walk ------------------------------------------------------------------------------------------
    def copy_root(self, root: Node, parent: Parent | None) -> Node:
        """The destination's node for the source root ``root`` (its trees and chunks stored through the
        writer; the caller finishes the writer before naming the node in a record)."""
        self._root = None
        for results in self.pipeline.ordered(self._translate, self._batches(root, parent)):
            for dst_id, sealed in results:
                self._settle()
                owner = self._owners.popleft()
                assert isinstance(owner, _File)
                if sealed is not None:
                    self.writer.add(sealed)
                owner.content.append(dst_id)
        self._settle()
        assert self._root is not None
        return self._root

    def _walk(self, root: Node, parent: Parent | None) -> Iterator[_Job]:
        if root.type == "dir":
            known = self._known_tree(root, parent)
            if known is not None:
                self._root = known
                return
        if root.type != "dir":
            yield from self._file(root, None, 0, parent)
            return
        top = _Dir(root, None, 0)
        yield from self._descend(top, parent)

    def _descend(self, top: _Dir, parent: Parent | None) -> Iterator[_Job]:
        stack: list[tuple[_Dir, Iterator[Node], dict[str, Parent]]] = []
        on_path: set[bytes] = set()

        def enter(d: _Dir, par: Parent | None) -> None:
            sub = d.node.subtree
            if sub is None:
                raise IntegrityError(f"directory {d.node.name!r} has no tree")
            if sub in on_path:
                raise cycle_error(sub, d.node.name)
            on_path.add(sub)
            stack.append((d, iter(self.src_trees.children(d.node)), self._parents(par)))

        enter(top, parent)
        while stack:
            d, entries, parents = stack[-1]
            node = next(entries, None)
            if node is None:
                stack.pop()
                assert d.node.subtree is not None
                on_path.discard(d.node.subtree)
                d.closed = True
                self._finish_dirs(d)
                continue
            slot = len(d.nodes)
            d.nodes.append(None)
            par = parents.get(node.name)
            if node.type == "link":
                d.nodes[slot] = node
            elif node.type == "dir":
                known = self._known_tree(node, par)
                if known is not None:
                    d.nodes[slot] = known
                    continue
                d.pending += 1
                enter(_Dir(node, d, slot), par)
            else:
                d.pending += 1
                yield from self._file(node, d, slot, par)

    def _parents(self, par: Parent | None) -> dict[str, Parent]:
        """The entries of the parent's directory at this path, paired by name and type (source, destination)."""
        if par is None or par[0].type != "dir" or par[1].type != "dir":
            return {}
        old = self.src_trees.children(par[0])
        copied = self.dst_trees.tree(par[1].subtree).by_name if par[1].subtree is not None else {}
        out: dict[str, Parent] = {}
        for n in old:
            m = copied.get(n.name)
            if m is not None and m.type == n.type:
                out[n.name] = (n, m)
        return out

    def _known_tree(self, node: Node, par: Parent | None) -> Node | None:
        """``node`` with its destination sub-tree when that is known without descending, else None."""
        assert node.subtree is not None
        dst = self.memo.trees.get(node.subtree)
        if dst is None and par is not None and par[0].subtree == node.subtree and par[1].subtree is not None:
            dst = par[1].subtree
            if dst not in self.dst.index:  # the parent's copy lost it (repair): copy it again
                dst = None
        return None if dst is None else dataclasses.replace(node, subtree=dst)

    def _file(self, node: Node, d: _Dir | None, slot: int, par: Parent | None) -> Iterator[_Job]:
        f = _File(node, d, slot)
        if par is not None and par[0].content == node.content and len(par[1].content) == len(node.content) \
                and not self.dst.index.missing(par[1].content):
            f.content = list(par[1].content)
            self._done(f)
            return
        known = [self.memo.chunk(c) for c in node.content]
        if all(k is not None for k in known):
            f.content = [k for k in known if k is not None]
            self._done(f)
            return
        for src_id, dst_id in zip(node.content, known, strict=True):
            self._owners.append(f)
            if dst_id is not None:
                yield _Job(src_id, known=dst_id)
            else:
                loc = self.src.locate(src_id, fmt.BlobType.DATA)
                yield _Job(src_id, entry=loc.entry, pack=loc.pack_handle, generation=loc.generation)
        self._owners.append((f,))

    def _batches(self, root: Node, parent: Parent | None) -> Iterator[list[_Job]]:
        batch: list[_Job] = []
        size = 0
        for job in self._walk(root, parent):
            batch.append(job)
            size += job.entry.raw_length if job.entry is not None else 0
            if size >= BATCH_BYTES or len(batch) >= BATCH_CHUNKS:
                yield batch
                batch, size = [], 0
        if batch:
            yield batch

    # -- completing files and directories (main thread) ------------------------------------------------------
    def _settle(self) -> None:
        while self._owners and isinstance(self._owners[0], tuple):
            (f,) = self._owners.popleft()  # type: ignore[misc]
            for src_id, dst_id in zip(f.node.content, f.content, strict=True):
                self.memo.remember_chunk(src_id, dst_id)
            self._done(f)

    def _done(self, f: _File) -> None:
        node = dataclasses.replace(f.node, content=tuple(f.content))
        if f.parent is None:
            self._root = node
            return
        f.parent.nodes[f.slot] = node
        f.parent.pending -= 1
        self._finish_dirs(f.parent)

    def _finish_dirs(self, d: _Dir | None) -> None:
        while d is not None and d.closed and d.pending == 0:
            children = [n for n in d.nodes if n is not None]
            subtree = self.writer.store_one(encode_tree(children), fmt.BlobType.TREE)
            assert d.node.subtree is not None
            self.memo.trees[d.node.subtree] = subtree
            node = dataclasses.replace(d.node, subtree=subtree)
            d.nodes = []
            if d.parent is None:
                self._root = node
                return
            d.parent.nodes[d.slot] = node
            d.parent.pending -= 1
            d = d.parent

    # -- on the workers ------------------------------------------------------------------------------------
    def _read(self, entry: fmt.BlobEntry, pack: Handle, src_id: bytes, generation: int) -> tuple[bytes, bytes]:
        """One source copy of a chunk: its authenticated payload (compressed as stored) and its plaintext, a copy
        a write-only key sealed proved by its id. IntegrityError for a damaged or missing copy."""
        what = f"chunk {src_id.hex()[:10]} in pack {pack}"
        try:
            sealed = self.src.backend.load(pack, entry.offset, entry.length)
        except ObjectNotFoundError:
            raise IntegrityError(f"pack {pack} is missing; run `vault check`") from None
        payload = open_payload(self.src.key, self.src.vault_id, entry, sealed, what, generation)
        plain = decode_payload(entry, payload, what)
        if entry.flags & fmt.FLAG_SEALED:  # a write-only key's copy: proved by its id, not by who sealed it
            verify_blob_id(self.src.key, plain, entry, what)
        return payload, plain

    def _translate(self, batch: list[_Job]) -> list[tuple[bytes, SealedBlob | None]]:
        return [self._one(job) for job in batch]

    def _one(self, job: _Job) -> tuple[bytes, SealedBlob | None]:
        """A source chunk's destination id, and the chunk sealed for the destination when it holds no such
        chunk yet. IntegrityError for a damaged or missing source chunk."""
        if job.known is not None:
            return job.known, None
        entry, pack = job.entry, job.pack
        assert entry is not None and pack is not None
        try:
            payload, plain = self._read(entry, pack, job.src_id, job.generation)
        except IntegrityError:
            if not entry.flags & fmt.FLAG_SEALED:
                raise
            # A copy a write-only key sealed that is not what its id says (forged, or damaged): another copy may
            # be, as Repository.load_blob falls back on (whoever names their pack low would otherwise win).
            for loc in self.src.index.locations(job.src_id):
                if loc.pack_id == bytes.fromhex(pack.name) and loc.entry.offset == entry.offset:
                    continue
                try:
                    payload, plain = self._read(loc.entry, loc.pack_handle, job.src_id, loc.generation)
                except IntegrityError:
                    continue
                entry = loc.entry
                break
            else:
                raise
        dst_id = self.dst.key.blob_id(plain, fmt.BlobType.DATA)
        if not self.writer.claim(dst_id):
            return dst_id, None
        flags = entry.flags & ~fmt.FLAG_SEALED  # sealed again here under the destination's data key
        aad = fmt.blob_aad(self.dst.vault_id, fmt.BlobType.DATA, flags, entry.raw_length, dst_id)
        resealed = self.dst.key.data.seal(payload, aad)
        return dst_id, SealedBlob(dst_id, fmt.BlobType.DATA, flags, entry.raw_length, resealed)
