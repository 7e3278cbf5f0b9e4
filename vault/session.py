"""Opening a vault: the one way, for the command line and for Python programs alike.

``open_session`` (exported as ``vault.open``) reads the config (so "no vault here" comes before any password
is asked for), obtains the password, unlocks a key slot, takes the lock the work needs, and then:

- unlocks again when a `rekey` or `passwd` changed the slot between unlocking and locking (under our lock no
  such change can start, so looking once more after locking is enough; a key that keeps changing is busy);
- compares the vault's version records with what this machine saw last (vault.witness) and reports a replay,
  a deletion or a rollback through ``on_note``;
- rewraps a slot whose KDF parameters fell behind the defaults (a key change: only under a lock);
- refuses a write-only key (exit 13) before any lock or read unless ``write_only_ok``; with the exclusive lock and
  a full key, numbers the versions write-only keys added (Changes.settle_versions).

A :class:`Session` is a context manager. Leaving it tells the witness what this session's command left behind,
closes the worker pools and releases the lock, in that order, whatever happened. Nothing here is module-level
state: two sessions (on one vault or two) can be open in one process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from vault.errors import IntegrityError, UnknownGenerationError, UsageError, VaultError, VaultLockedError

if TYPE_CHECKING:
    from vault.archive import PutResult, Putter
    from vault.pipeline.runner import Pipeline
    from vault.repo.locks import Lock
    from vault.repo.repository import Repository
    from vault.restore import GetResult
    from vault.storage.base import Backend
    from vault.witness import Findings, Witness

log = logging.getLogger(__name__)

LockMode = Literal["shared", "exclusive"]
Password = bytes | str | Callable[[], bytes]
Note = Callable[[str], None]

# How often the opener unlocks again when the slot keeps changing under it before it calls the vault busy.
_OPEN_ATTEMPTS = 3


class Session:
    """An opened vault, the lock it holds, and the pools its work runs on. Use as a context manager (or call
    :meth:`close`). Not thread-safe itself; the work it starts uses the pools.

    ``repo`` is the :class:`~vault.repo.repository.Repository` for the layers below; the methods here are the
    small library API (store, restore, list) that ``docs/api.md`` documents.
    """

    def __init__(
        self,
        repo: Repository,
        password: bytes,
        *,
        lock: Lock | None,
        witness: Witness | None,
        findings: Findings,
        threads: int | None,
        notes: list[str],
    ) -> None:
        self.repo = repo
        self.lock = lock
        self.findings = findings
        self.notes = notes  # recovery actions taken while opening (stale locks removed, ...), for the log
        self._password = password
        self._witness = witness
        self._threads = threads
        self._pipeline: Pipeline | None = None
        self._closed = False

    # -- what the opening holds ------------------------------------------------------------------------------
    @property
    def password(self) -> bytes:
        """The password (or recovery key) that opened the vault: `rekey` rewraps its slot. A secret: never log it."""
        return self._password

    @property
    def pipeline(self) -> Pipeline:
        """The worker pools (CPU and I/O), started on first use and closed with the session."""
        if self._pipeline is None:
            from vault.pipeline.runner import Pipeline

            self._pipeline = Pipeline(self._threads)
        return self._pipeline

    def close(self) -> None:
        """Tell the witness what this session changed, stop the pools, release the lock. Idempotent; never
        raises for the witness (it never fails a command) and always releases the lock."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._witness is not None:
                # Before the lock goes: nothing changes meanwhile. What the catalog knows now (its own changes
                # included) is what this command leaves; no second listing of the storage.
                try:
                    ids = self.repo.readable_record_ids()
                except VaultError:
                    log.debug("witness: the catalog can't be read at the end", exc_info=True)
                else:
                    self._witness.finish(ids)
            if self._pipeline is not None:
                self._pipeline.close()
        finally:
            try:
                if self.lock is not None:
                    self.lock.release()
            finally:
                self.repo.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the library API -------------------------------------------------------------------------------------
    def put(
        self,
        *paths: str | Path,
        name: str | None = None,
        compression: int = 3,
        exclude: Sequence[str] = (),
        on_warning: Note | None = None,
    ) -> list[PutResult]:
        """Store files and directories, each as a new version of the item named after it (``name`` renames the
        one PATH given). Unreadable files are skipped and listed in each result's ``skipped``. Needs a lock.
        Raises NotFoundError (a missing PATH), UsageError, StorageError, IntegrityError."""
        from vault.archive import Putter
        from vault.excludes import Excluder

        if not paths:
            raise UsageError("nothing to store: give one or more paths")
        if name is not None and len(paths) > 1:
            raise UsageError("name works with one path only")
        self._need_lock("put")
        putter = Putter(self.repo, self.pipeline, level=compression, excluder=Excluder(list(exclude)),
                        on_warning=on_warning)
        self.adopt_interrupted(putter)
        sources = [putter.add_path(str(p), name) for p in paths]
        results = putter.commit(sources)
        self.compact()
        return results

    def put_stream(self, stream: IO[bytes], name: str, compression: int = 3) -> PutResult:
        """Store a binary stream (read to its end) as a new version of the file item ``name``."""
        from vault.archive import Putter

        self._need_lock("put")
        putter = Putter(self.repo, self.pipeline, level=compression)
        self.adopt_interrupted(putter)
        result = putter.commit([putter.add_stream(stream, name)])[0]
        self.compact()
        return result

    def compact(self) -> None:
        """After storing: keep the vault's listings short (index objects merged, loose version records folded into
        segments when no other process holds a lock). Cheap when there is nothing to do: the cache says so."""
        from vault.repo.locks import others_hold_locks

        lock = self.lock
        self.repo.compact(alone=lambda: lock is not None and not others_hold_locks(self.repo, lock))

    def adopt_interrupted(self, putter: Putter) -> int:
        """Checkpoints in the index while no other process holds a lock belong to puts that died: ``putter``
        reuses their data (dedup already does) and folds their packs into its own index. Returns how many
        packs it adopted (also noted in :attr:`notes`)."""
        from vault.repo.locks import others_hold_locks

        if not self.repo.index.checkpoints or self.lock is None or others_hold_locks(self.repo, self.lock):
            return 0
        packs: int = putter.writer.adopt_checkpoints()
        self.notes.append(f"found {packs} pack(s) stored by an interrupted put; reusing them")
        return packs

    def get(self, name: str, dest: str | Path | None = None, *, version: int | None = None,
            force: bool = False) -> GetResult:
        """Restore the item (or the path inside an item) ``name`` to ``dest`` (default ``./basename(name)``;
        an existing directory gets it inside). Raises NotFoundError, ConflictError (``dest`` exists and not
        ``force``), IntegrityError (damaged data; nothing unauthenticated is written), StorageError."""
        from vault.restore import Restorer, destination, resolve

        record, node, _ = resolve(self.repo, name, version)
        target = destination(name, node, None if dest is None else str(dest))
        return Restorer(self.repo, self.pipeline).restore(record, node, target, force)

    def read(self, name: str, *, version: int | None = None) -> Iterable[bytes]:
        """The contents of the file ``name``, chunk by chunk, each authenticated before it is yielded (a
        damaged chunk raises IntegrityError where it would have been)."""
        from vault.restore import Restorer, resolve

        _, node, _ = resolve(self.repo, name, version)
        if node.type != "file":
            raise UsageError(f"{name} is not a file")
        return Restorer(self.repo, self.pipeline).chunks(node)

    def items(self) -> list[dict[str, Any]]:
        """Every item: name, type, size, files of its latest version, its number of versions, last update."""
        from vault.ops.items import list_items

        return list_items(self.repo)

    def history(self, name: str) -> list[dict[str, Any]]:
        """The versions of item ``name``, oldest first (``version``, ``created``, ``size``, ``files``...).
        Raises NotFoundError."""
        from vault.ops.items import history

        return history(self.repo, name)

    def _need_lock(self, what: str) -> None:
        if self.lock is None:
            raise UsageError(f"{what} needs a vault opened with a lock (lock='shared')")


def open_session(
    location: str | Path | None = None,
    *,
    password: Password,
    lock: LockMode | None = "shared",
    threads: int | None = None,
    retry_lock_s: float = 0.0,
    command: str = "python",
    witness: bool = True,
    cache: bool | str | Path = True,
    on_note: Note | None = None,
    write_only_ok: bool = False,
) -> Session:
    """Open the vault at ``location`` (a directory, or ``s3://BUCKET[/PREFIX]``; None: the per-user default)
    and return a :class:`Session` holding it. Use it as a context manager.

    ``password``: bytes, text, or a callable returning bytes (called only after the config was read, so a
    missing vault is reported before anything is asked). ``lock``: ``"shared"`` to store and restore while
    others do, ``"exclusive"`` for changes that need the vault to itself, None to only read (``ls``,
    ``history``). ``retry_lock_s`` waits that long for a conflicting lock. ``command`` names the holder in lock
    objects. ``on_note`` receives warnings meant for people (a replayed version record, a lock broken).
    ``cache``: True for the local cache in the per-user cache directory (``~/.cache/vault``), a directory to
    keep it there instead, False for none (a private temporary one, as ``--no-cache``). ``write_only_ok``: a
    write-only key may do the work (it only adds data or counts objects); otherwise such a key is refused.

    Raises VaultNotFoundError (exit 10), AuthenticationError (12), NotPermittedError (13: a write-only key),
    VaultLockedError (11), UnsupportedVersionError (21), IntegrityError (20), StorageError (30), UsageError (2).
    """
    from vault.repo.config import load_config
    from vault.storage import open_backend

    backend = open_backend(str(location) if location is not None else default_location())
    config = load_config(backend)  # "no vault here" (exit 10) before asking for a password
    secret = _password_bytes(password)
    notes: list[str] = []
    repo, held = _unlock_and_lock(backend, config, secret, lock, command, retry_lock_s, notes, write_only_ok)
    repo.cache_dir = cache_dir(cache)
    try:
        if held is not None:
            # Rewrapping a slot is a key change: only under a lock, so it never races a `rekey` of that slot.
            repo.slot = repo.keys.rehash_if_weak(repo.slot, repo.key, secret)
        # A write-only key can't authenticate version records, so it has no witness to keep.
        watcher, findings = _witness(repo, witness and not repo.write_only, lock, notes, on_note)
        if lock == "exclusive" and not repo.write_only and repo.settle_versions():  # the vault is ours alone
            notes.append("numbered the versions that write-only keys added")
    except BaseException:
        if held is not None:
            held.release()
        repo.close()
        raise
    return Session(repo, secret, lock=held, witness=watcher, findings=findings, threads=threads, notes=notes)


def _password_bytes(password: Password) -> bytes:
    value = password() if callable(password) else password
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogateescape")
    if not isinstance(value, bytes):
        raise UsageError("the password must be bytes, text, or a function returning bytes")
    return value


def _unlock_and_lock(
    backend: Backend,
    config: Any,
    password: bytes,
    lock: LockMode | None,
    command: str,
    retry_lock_s: float,
    notes: list[str],
    write_only_ok: bool = False,
) -> tuple[Repository, Lock | None]:
    """Unlock, then take the lock; unlock again when the slot changed in between (a concurrent `rekey` or
    `passwd`: the keyring we would write under, and other holders' locks, may be newer than ours). A write-only
    key is refused here, before any lock is taken or anything read, unless ``write_only_ok``."""
    from vault.repo.locks import acquire
    from vault.repo.repository import Repository

    repo = Repository.open(backend, password, config=config, rehash=False)
    if repo.write_only and not write_only_ok:
        from vault.repo.write_only import refuse

        refuse(repo, command)  # exit 13, before any lock is taken or anything read
    if lock is None:
        return repo, None
    if lock not in ("shared", "exclusive"):
        raise UsageError("lock must be 'shared', 'exclusive' or None")
    for attempt in range(_OPEN_ATTEMPTS):
        last = attempt == _OPEN_ATTEMPTS - 1
        try:
            held = acquire(
                repo,
                exclusive=lock == "exclusive",
                command=command,
                wait_s=retry_lock_s,
                on_stale=lambda info: notes.append(f"removed stale {info.describe()}"),
            )
        except UnknownGenerationError:
            if last or not repo.slot_changed():
                raise
            repo = Repository.open(backend, password, config=config, rehash=False)
            continue
        if not repo.slot_changed():
            return repo, held
        held.release()
        if last:
            break
        repo = Repository.open(backend, password, config=config, rehash=False)
    raise VaultLockedError("the key that opened the vault keeps changing (`rekey` or `passwd` elsewhere)",
                           hint="run the command again once they are done")


def _witness(
    repo: Repository, enabled: bool, lock: LockMode | None, notes: list[str], on_note: Note | None
) -> tuple[Witness | None, Findings]:
    """Compare the vault's version records with what this machine saw last (vault.witness); warn about a
    replay, deletion or rollback. Removals this machine began and did not finish (a command killed half way)
    are finished first by a command that holds the exclusive lock, and are never taken for a replay. The
    repository tells the witness about its own removals from then on."""
    from vault.witness import Findings, Witness

    if not enabled:
        return None, Findings()
    watcher = Witness(repo.vault_id)
    findings = watcher.start(repo.readable_record_ids())
    repo.witness = watcher
    if findings.pending and lock == "exclusive":
        try:
            repo.remove_records(findings.pending)
        except IntegrityError as exc:  # a damaged catalog: `check` reports it, `repair` deals with it first
            log.info("not finishing an interrupted removal now: %s", exc)
        else:
            notes.append(f"finished removing {len(findings.pending)} version record(s) an interrupted command "
                         "had begun to remove")
            findings.pending = []
    for message in findings.messages():
        notes.append(f"noticed: {message}")
        if on_note is not None:
            on_note(f"warning: {message}")
    return watcher, findings


def cache_dir(cache: bool | str | Path) -> Path | None:
    """Where the local cache lives: ``cache`` itself when it names a directory, the per-user cache directory
    for True, None (a private temporary cache) for False. (The command line maps VAULT_CACHE_DIR and
    --no-cache onto this; the library reads no environment.)"""
    if cache is False:
        return None
    if cache is True:
        from vault.cache import default_root

        return default_root()
    return Path(cache)


def default_location() -> str:
    from platformdirs import user_data_dir

    return user_data_dir("vault", appauthor=False)


def create_vault(
    location: str | Path | None = None, *, password: bytes | str, kdf_params: Any | None = None
) -> None:
    """Make a new vault at ``location`` (None: the per-user default) whose one key opens with ``password``.
    ``kdf_params`` (a :class:`vault.crypto.kdf.KdfParams`) are kept as chosen; without them the slot follows
    the program's argon2id defaults (and is strengthened when they grow). Raises ConflictError (a vault is
    there already; nothing is touched), UsageError (an empty password, KDF parameters out of bounds),
    StorageError."""
    from vault.crypto import kdf
    from vault.crypto.slots import POLICY_DEFAULT, POLICY_EXPLICIT
    from vault.repo.repository import Repository
    from vault.storage import open_backend

    secret = _password_bytes(password)
    if not secret:
        raise UsageError("the new password is empty")
    params = kdf_params if kdf_params is not None else kdf.current_defaults()
    kdf.validate_new(params)
    backend = open_backend(str(location) if location is not None else default_location())
    Repository.create(backend, secret, params, POLICY_EXPLICIT if kdf_params is not None else POLICY_DEFAULT)
