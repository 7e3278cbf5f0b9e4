"""`vault rekey`: a new master key for new data, and with ``reencrypt`` every stored byte rewritten under it.

A key generation is a master key and the AEAD keys derived from it (vault.crypto.keyring.Keyring). Rekeying adds a
new generation and makes it current: new packs and objects are sealed under it, older ones stay readable because
the keyring keeps their generations. The identity keys (blob ids, chunker seed) are kept, so data stored before
and after still deduplicates. What a leak of the old master key still gives away is said in docs/security.md.

The keyring lives inside the key slots, and only the slot that opened the vault can be rewrapped (the other
passwords are unknown here), so every other slot is removed: like `cryptsetup reencrypt` keeping one keyslot,
the user adds the other passwords (and a recovery key) again. The opening slot is rewritten first, so a crash
in between leaves other slots that open only the older generations, and rerunning `rekey` removes them.

Write-only keys hold no generation's master key, only the public key of the generation current when they were
issued (each generation has its own X25519 pair, derived from its master key). A plain `rekey` keeps them: the
keyring keeps that generation, so what they add stays readable; their details are sealed again under the new
generation, and the report names them, since what they add is readable with the older key too. `--reencrypt`
drops the older generations, so it removes the write-only keys of those generations up front and names them:
they must be issued again (`vault key add --write-only`).

``reencrypt`` then runs under the exclusive lock, in an order that keeps every step safe to interrupt:

1. every blob in a pack of an older generation is verified and sealed again under the current one, into new
   packs, each indexed by a checkpoint object as soon as it is durable (a rerun skips what is done: the index
   resolves a blob to its copy under the latest generation);
2. one index object lists every pack (all current), then the other index objects go, then every pack the new
   index does not list goes (old-generation packs, and leftovers of interrupted puts nothing references);
3. every version record held by an object of an older generation is written again under the current one, its
   record id kept, into catalog segments (a vault of format 1 or 2 becomes 3), then the old objects go (a
   record held twice in between counts once);
4. ``check --read-data`` verifies every stored byte and that nothing names an older generation;
5. the slot is rewrapped with the older generations dropped from its keyring.

Until step 5 the slot's keyring carries a "re-encryption pending" flag: rerunning `vault rekey --reencrypt`
resumes with the same generation instead of starting another one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from vault import format as fmt
from vault.crypto.slots import POLICY_RECOVERY, KeySlot
from vault.errors import IntegrityError, ObjectNotFoundError
from vault.ops.check import check
from vault.pipeline.runner import Pipeline
from vault.repo.catalog import SEGMENT_RECORDS
from vault.repo.config import CONFIG_HANDLE
from vault.repo.objects import object_generation
from vault.repo.packs import load_pack, parse_pack_header, verify_blobs
from vault.repo.repack import copy_blobs
from vault.repo.repository import Repository
from vault.storage.base import Held, Kind, remove_held

log = logging.getLogger(__name__)


@dataclass
class RekeyReport:
    generation: int = 0
    resumed: bool = False
    reencrypted: bool = False
    removed_keys: list[dict[str, str]] = field(default_factory=list)
    # write-only keys kept (plain rekey): they still seal to an older generation's public key
    write_only_kept: list[dict[str, object]] = field(default_factory=list)
    packs_rewritten: int = 0  # old-generation packs whose blobs were sealed again
    packs_written: int = 0
    bytes_written: int = 0
    packs_deleted: int = 0
    records_rewritten: int = 0
    blobs_verified: int = 0
    older_generations: list[int] = field(default_factory=list)  # still held (data under them remains)
    # Objects (old key slots, old-generation packs and records) that retention keeps stored, hidden from every
    # listing, until a date; a later `vault prune` deletes them then. JSON: held_objects, held_until.
    held: Held = field(default_factory=Held)

    def to_json(self) -> dict[str, object]:
        doc = dataclasses.asdict(self)
        del doc["held"]
        return doc | self.held.to_json()


def rekey(
    repo: Repository,
    password: bytes,
    pipeline: Pipeline,
    reencrypt: bool,
    refresh_lock: Callable[[], None] | None = None,
    on_total: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> RekeyReport:
    """Make a new key generation current (or, when a re-encryption is pending and ``reencrypt`` is set, resume
    it), then optionally re-encrypt everything under it. Call under the exclusive lock; ``refresh_lock``
    rewrites that lock under the new generation. Raises IntegrityError (damaged data: nothing old is deleted
    then; `vault repair` first), UnknownGenerationError (the opening key predates a later rekey), StorageError.
    """
    report = RekeyReport()
    # Reading every index object and record first refuses a key that predates a later rekey (UnknownGeneration):
    # rotating from its keyring would reuse a generation number and drop the key of data sealed under it.
    repo.refresh_blobs(full=True)
    repo.refresh_catalog(full=True)
    report.resumed = reencrypt and repo.key.reencrypt_pending
    if not report.resumed:
        _new_generation(repo, password, reencrypt)
        if refresh_lock is not None:
            refresh_lock()
    _remove_older_slots(repo, report, reencrypt)
    report.generation = repo.key.current
    if reencrypt:
        _reencrypt(repo, password, pipeline, report, on_total, on_progress)
    report.older_generations = [g for g in repo.key.generations if g != repo.key.current]
    report.held = repo.take_held()
    return report


def _new_generation(repo: Repository, password: bytes, reencrypt: bool) -> None:
    if repo.config.format_version < fmt.FORMAT_VERSION_GENERATIONS:
        # Readers that know only version 1 must refuse this vault up front (exit 21), not fail on its objects.
        repo.config = dataclasses.replace(repo.config, format_version=fmt.FORMAT_VERSION_GENERATIONS)
        repo.backend.save(CONFIG_HANDLE, repo.config.to_bytes())
    keyring = repo.key.rotated(reencrypt)
    repo.slot = repo.keys.rewrap(repo.slot, keyring, password)
    repo.use_keyring(keyring)
    log.info("key generation %d is current; key slot %s rewrapped", keyring.current, repo.slot.slot_id)


def _remove_older_slots(repo: Repository, report: RekeyReport, reencrypt: bool) -> None:
    """Remove every other slot written before the current generation existed: it holds only older keys. A
    slot's details are sealed under the generation current when it was written, which tells them apart from
    slots added since (`key add` while a re-encryption was pending) without knowing their passwords. A
    rerun after a crash between the rewrap and these removals finishes them. Write-only slots are kept unless
    ``reencrypt`` retires the generation whose public key they hold (see the module docstring)."""
    store = repo.keys
    current = repo.key.generation
    for info in store.backend.list(Kind.KEYS):
        if info.handle.name == repo.slot.slot_id:
            continue
        kind = "damaged"  # a slot that does not even parse can't hold the current key either
        with contextlib.suppress(IntegrityError, ObjectNotFoundError):
            slot = store.read_slot(info.handle.name)
            kind = "recovery" if slot.policy == POLICY_RECOVERY else "password"
            if slot.write_only:
                kind = "write-only"
                if _keep_write_only(repo, slot, reencrypt, report):
                    continue
            elif slot.written_under(current, repo.vault_id):
                continue  # it holds the current key
        with contextlib.suppress(ObjectNotFoundError):
            repo.held.merge(remove_held(store.backend, info.handle))  # hidden when retention holds it
        slot_id = info.handle.name
        report.removed_keys.append({"id": slot_id, "type": kind})
        log.info("removed key slot %s (%s): it holds only older key generations", slot_id, kind)


def _keep_write_only(repo: Repository, slot: KeySlot, reencrypt: bool, report: RekeyReport) -> bool:
    """Whether to keep a write-only slot: yes when it seals to the current generation's public key, or when no
    generation is being retired (its details are then sealed again under the current one, so the keys this
    rekey leaves still read them). IntegrityError for details no generation held opens."""
    generation = slot.public_key_generation(repo.key, repo.vault_id)
    if generation == repo.key.current:
        return True
    if reencrypt:
        return False
    if not slot.written_under(repo.key.generation, repo.vault_id):
        repo.keys.reseal_details(slot, repo.key)
    report.write_only_kept.append({"id": slot.slot_id, "public_key_generation": generation})
    return True


def _reencrypt(
    repo: Repository,
    password: bytes,
    pipeline: Pipeline,
    report: RekeyReport,
    on_total: Callable[[int], None] | None,
    on_progress: Callable[[int], None] | None,
) -> None:
    backend, current = repo.backend, repo.key.current
    index = repo.index
    # 1. Blobs whose latest copy is under an older generation, grouped by the pack holding that copy.
    sources = [p for p in index.packs() if p.generation != current]
    sizes = {o.handle.name: o.size for o in backend.list(Kind.DATA)}
    if on_total is not None:
        on_total(sum(sizes.get(p.pack_id.hex(), 0) for p in sources))

    copied = copy_blobs(repo, pipeline, sources, on_progress, on_pack=repo.save_checkpoint)
    # Read every new pack back before anything old is deleted: a pack the store damaged or lost on the way
    # must stop the job while the old copies still exist.
    for pack in copied.packs:
        data = load_pack(backend, pack.pack_id.hex())
        header = parse_pack_header(_slicer(data), len(data), repo.key, repo.vault_id, pack.pack_id.hex())
        _, bad = verify_blobs(repo.key, repo.vault_id, pack.pack_id.hex(), data, list(pack.entries), current)
        if bad or header.generation != current or header.entries != list(pack.entries):
            raise IntegrityError(f"re-encrypted pack <data/{pack.pack_id.hex()[:10]}> does not read back intact",
                                 hint="nothing old was deleted; run `vault rekey --reencrypt` again")
    report.packs_rewritten = len(sources)
    report.packs_written, report.bytes_written = len(copied.packs), copied.bytes_written

    # 2. One index object for every pack, all under the current generation; then the rest goes.
    if any(p.generation != current for p in index.packs()):  # copy_blobs raised for anything it could not copy
        raise IntegrityError("blobs under an older key generation remain after re-encryption")
    repo.reindex(index.packs())
    listed = {p.pack_id for p in repo.index.packs()}
    unlisted = [p for p in (bytes.fromhex(o.handle.name) for o in backend.list(Kind.DATA)) if p not in listed]
    repo.delete_packs(unlisted)
    report.packs_deleted += len(unlisted)
    log.info("re-encrypted %d pack(s) into %d", len(sources), len(copied.packs))

    # 3. Version records: every record held by an object sealed under an older generation is written again, its
    # id kept, into segments under the current one (a vault of format 1 or 2 becomes 3 for that: segments hold
    # them); then the old objects go. Interrupted in between, a record is held twice for a while, which counts
    # once, so no version is ever shown twice or lost, and a rerun finds nothing old left to copy.
    catalog = repo.refresh_catalog(full=True)
    older = [(record, obj) for record, generation, obj in catalog.with_generations() if generation != current]
    if older:
        if repo.config.format_version < fmt.FORMAT_VERSION_SEGMENTS:
            repo.config = dataclasses.replace(repo.config, format_version=fmt.FORMAT_VERSION_SEGMENTS)
            repo.backend.save(CONFIG_HANDLE, repo.config.to_bytes())
        plain = sorted({r.record_id: fmt.encode_record(r.stored()) for r, _ in older}.items())
        for i in range(0, len(plain), SEGMENT_RECORDS):
            catalog.write_segment(plain[i : i + SEGMENT_RECORDS])
        catalog.delete_objects(sorted({obj for _, obj in older}))
        report.records_rewritten = len(plain)

    # Locks left by processes that died under an older generation become unreadable once it is dropped; a later
    # locker removes them as damage (Keyring.get: an older generation is never "newer data"), so none is swept
    # here, where our own lock might be one of them.

    # 4. Verify every stored byte, and that nothing names an older generation.
    result = check(repo, pipeline, read_data=True)
    report.blobs_verified = result.blobs_read
    stale = _objects_under_older_generations(repo)
    if not result.ok or stale:
        problems = result.problems + stale
        more = f" (and {len(problems) - 1} more)" if problems[1:] else ""
        raise IntegrityError(
            f"re-encryption did not verify: {problems[0]}{more}",
            hint="the older key generations are kept; run `vault check`, then `vault rekey --reencrypt` again",
        )

    # 5. Drop the older generations from the key that opened the vault.
    keyring = repo.key.current_only()
    repo.slot = repo.keys.rewrap(repo.slot, keyring, password)
    repo.use_keyring(keyring)
    report.reencrypted = True
    log.info("re-encryption verified; key slot %s holds generation %d only", repo.slot.slot_id, current)


def _slicer(data: bytes) -> Callable[[int, int], bytes]:
    return lambda offset, length: data[offset : offset + length]


def _objects_under_older_generations(repo: Repository) -> list[str]:
    current, found = repo.key.current, []
    for kind, obj_type in ((Kind.INDEX, (fmt.ObjectType.INDEX, fmt.ObjectType.INDEX_CHECKPOINT)),
                           (Kind.VERSIONS, (fmt.ObjectType.VERSION, fmt.ObjectType.CATALOG_SEGMENT))):
        for info in repo.backend.list(kind):
            with contextlib.suppress(ObjectNotFoundError):
                raw = repo.backend.load(info.handle, 0, fmt.OBJECT_PREFIX_MAX_SIZE + fmt.AEAD_OVERHEAD)
                if object_generation(raw, obj_type, str(info.handle)) != current:
                    found.append(f"{info.handle} is still sealed under an older key generation")
    for info in repo.backend.list(Kind.DATA):
        with contextlib.suppress(ObjectNotFoundError):
            head = repo.backend.load(info.handle, 0, fmt.PACK_PREAMBLE_MAX_SIZE)
            if fmt.parse_pack_preamble(head, str(info.handle))[0] != current:
                found.append(f"{info.handle} is still sealed under an older key generation")
    return found
