"""Walking the trees of versions: which blobs the versions need, and which versions can't be walked completely.

What every check, prune and repair needs. Memory does not grow with the vault: the blob ids the versions need go
into a table of the cache's database (``refs``), the trees already walked into another, so each shared sub-tree is
read once however many versions share it. The walk is iterative (an explicit stack), so no depth of directories
exhausts Python's stack, and a tree that reaches itself (a forged cycle) is reported, not followed.

Two passes, the second only when the first found something missing: the first records every referenced id and
the trees that could not be read; then one query finds the data blobs the index does not hold; only if there are
any, the trees are walked again to name, per version, the paths that lost data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from vault import format as fmt
from vault.cache import CacheDB
from vault.errors import IntegrityError
from vault.repo.bounds import CYCLE
from vault.repo.catalog import VersionRecord
from vault.repo.repository import Repository
from vault.repo.tree import Node

_BATCH = 2000
MAX_PROBLEMS = 1000  # problems kept per version
MORE_PROBLEMS = "(more problems, not listed)"


@dataclass
class References:
    """The blob ids versions need (table ``temp.refs`` of the cache's database) and which versions could not be
    walked completely: record id → the problems found, as paths inside the item."""

    db: CacheDB
    damaged: dict[str, list[str]] = field(default_factory=dict)
    trees: int = 0  # distinct trees walked

    def __contains__(self, blob_id: object) -> bool:
        return self.db.one("SELECT 1 FROM temp.refs WHERE blob_id = ?", (blob_id,)) is not None

    def __len__(self) -> int:
        row = self.db.one("SELECT count(DISTINCT blob_id) FROM temp.refs")
        return 0 if row is None else int(row[0])

    def ids(self) -> Iterator[bytes]:
        for (blob_id,) in self.db.rows("SELECT DISTINCT blob_id FROM temp.refs"):
            assert isinstance(blob_id, bytes)
            yield blob_id


def _prepare(db: CacheDB) -> None:
    with db.transaction() as conn:
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS refs (blob_id BLOB, type INTEGER, PRIMARY KEY (blob_id, type)) "
            "WITHOUT ROWID"
        )
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS walked (tree_id BLOB PRIMARY KEY) WITHOUT ROWID")
        conn.execute("DELETE FROM temp.refs")
        conn.execute("DELETE FROM temp.walked")


class _Batch:
    """Ids waiting to be written to ``temp.refs`` (one executemany per batch)."""

    def __init__(self, db: CacheDB) -> None:
        self.db = db
        self.ids: list[tuple[bytes, int]] = []

    def add(self, blob_id: bytes, blob_type: int) -> None:
        self.ids.append((blob_id, blob_type))
        if len(self.ids) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        if self.ids:
            with self.db.transaction() as conn:
                conn.executemany("INSERT OR IGNORE INTO temp.refs (blob_id, type) VALUES (?, ?)", self.ids)
            self.ids = []


def collect(
    repo: Repository,
    records: Iterable[VersionRecord],
    on_tree: Callable[[], None] | None = None,
) -> References:
    """Walk every version's trees once (shared sub-trees once). Problems are recorded per version, never raised,
    so one damaged version does not hide the state of the others."""
    db = repo.cache.db
    _prepare(db)
    refs = References(db)
    batch = _Batch(db)
    unreadable: dict[bytes, str] = {}  # tree id → why it can't be read (few: only damage)
    roots: list[tuple[str, bytes]] = []
    cyclic = False
    for rec in records:
        roots.append((rec.record_id, rec.tree))
        # Depth first, with the directories still to enter of each tree on the path: a sub-tree that is one of
        # its own ancestors (only a forged tree is) is then seen as such, and named by the second pass.
        path: list[tuple[bytes, list[bytes]]] = []
        on_path: set[bytes] = set()
        pending: bytes | None = rec.tree
        while pending is not None or path:
            if pending is not None:
                tree_id, pending = pending, None
                if tree_id in on_path:
                    cyclic = True
                    continue
                if db.one("SELECT 1 FROM temp.walked WHERE tree_id = ?", (tree_id,)) is not None:
                    continue
                with db.transaction() as conn:
                    conn.execute("INSERT INTO temp.walked (tree_id) VALUES (?)", (tree_id,))
                refs.trees += 1
                batch.add(tree_id, fmt.BlobType.TREE)
                nodes = _load(repo, tree_id, unreadable)
                if nodes is None:
                    continue
                if on_tree:
                    on_tree()
                subdirs: list[bytes] = []
                for node in nodes:
                    if node.type == "file":
                        for blob_id in node.content:
                            batch.add(blob_id, fmt.BlobType.DATA)
                    elif node.type == "dir" and node.subtree is not None:
                        subdirs.append(node.subtree)
                subdirs.reverse()
                path.append((tree_id, subdirs))
                on_path.add(tree_id)
                continue
            tree_id, subdirs = path[-1]
            if subdirs:
                pending = subdirs.pop()
            else:
                path.pop()
                on_path.discard(tree_id)
    batch.flush()
    missing = _missing_data(db)
    if unreadable or missing or cyclic:
        _attribute(repo, roots, unreadable, missing, refs)
    return refs


def _load(repo: Repository, tree_id: bytes, unreadable: dict[bytes, str]) -> list[Node] | None:
    loc = repo.index.get(tree_id)
    if loc is None or loc.entry.blob_type != fmt.BlobType.TREE:
        unreadable[tree_id] = f"tree {tree_id.hex()[:10]} is missing from the index"
        return None
    try:
        return repo.load_tree(tree_id)
    except IntegrityError as exc:
        unreadable[tree_id] = str(exc)
        return None


def _missing_data(db: CacheDB) -> set[bytes]:
    """Referenced ids the index does not hold as the type they are used as (usually none: one anti-join)."""
    rows = db.query(
        "SELECT r.blob_id FROM temp.refs r "
        "WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.blob_id = r.blob_id AND b.type = r.type)"
    )
    return {bytes(r[0]) for r in rows}


def _attribute(
    repo: Repository, roots: list[tuple[str, bytes]], unreadable: dict[bytes, str], missing: set[bytes],
    refs: References,
) -> None:
    """Name, per version, the paths that can't be restored (the second pass: only when something is missing).
    Problems of a shared sub-tree are computed once and reported for every version that reaches it."""
    memo: dict[bytes, list[str]] = {}
    for record_id, root in roots:
        found = _problems(repo, root, unreadable, missing, memo)
        if found:
            refs.damaged[record_id] = found


@dataclass
class _Frame:
    tree_id: bytes
    dirs: list[Node]  # its sub-directories, walked in order
    problems: list[str]
    next: int = 0
    waiting: str = ""  # the sub-directory whose walk is under way


def _problems(
    repo: Repository, root: bytes, unreadable: dict[bytes, str], missing: set[bytes], memo: dict[bytes, list[str]]
) -> list[str]:
    """The paths under ``root`` that lost data (iterative post-order; shared sub-trees from ``memo``)."""
    in_progress: set[bytes] = set()
    stack: list[_Frame] = []

    def enter(tree_id: bytes) -> list[str] | None:
        """The tree's problems when known now, or None after pushing its frame."""
        if tree_id in memo:
            return memo[tree_id]
        if tree_id in unreadable:
            memo[tree_id] = [unreadable[tree_id]]
            return memo[tree_id]
        try:
            nodes = repo.load_tree(tree_id)
        except IntegrityError as exc:
            memo[tree_id] = [str(exc)]
            return memo[tree_id]
        in_progress.add(tree_id)
        problems: list[str] = []
        _add_problems(problems, [f"{n.name}: chunk {c.hex()[:10]} is missing from the index"
                                 for n in nodes if n.type == "file" for c in n.content if c in missing])
        stack.append(_Frame(tree_id, [n for n in nodes if n.type == "dir" and n.subtree is not None], problems))
        return None

    found = enter(root)
    if found is not None:
        return found
    while stack:
        frame = stack[-1]
        if frame.next < len(frame.dirs):
            child = frame.dirs[frame.next]
            frame.next += 1
            assert child.subtree is not None
            if child.subtree in in_progress:
                _add_problems(frame.problems, [f"{child.name}: {CYCLE}"])
                continue
            found = enter(child.subtree)
            if found is None:
                frame.waiting = child.name  # its frame is on top now; its problems come back below
            else:
                _add_problems(frame.problems, found, f"{child.name}/")
            continue
        stack.pop()
        in_progress.discard(frame.tree_id)
        memo[frame.tree_id] = frame.problems
        if stack:
            parent = stack[-1]
            _add_problems(parent.problems, frame.problems, f"{parent.waiting}/")
    return memo[root]


def _add_problems(problems: list[str], found: list[str], prefix: str = "") -> None:
    """Append ``found`` (prefixed) to ``problems``, keeping at most MAX_PROBLEMS: a damaged sub-tree shared along
    many paths is otherwise reported once per path, which a forged tree can make exponential
    (vault/repo/bounds.py)."""
    for p in found:
        if len(problems) >= MAX_PROBLEMS:
            if problems[-1] != MORE_PROBLEMS:
                problems.append(MORE_PROBLEMS)
            return
        problems.append(p if p == MORE_PROBLEMS else prefix + p)
