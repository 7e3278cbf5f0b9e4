"""What `prune` does for a vault with a retention (S3 Object Lock): extend the locks of everything kept, and purge
what earlier deletions could only hide. Nothing here runs for a backend that can't lock (a local vault).

Extension in rounds. A kept version must stay protected for as long as it is kept, but its objects were locked
for DAYS from when they were written. Extending every object at every prune would cost one or two requests per
object per prune (millions on a 10 TB vault), so the extension goes in rounds: a round locks every object the
vault lists of the retained kinds until ``now + DAYS`` and is recorded (vault.cache.rounds); a prune makes a new
round only when more than DAYS/2 has passed since the last one started (or none is recorded, or the record was
lost or altered: then it extends everything, the safe direction).

Why skipping is safe: every object that existed when a round started at time ``t`` was locked until at least
``t + DAYS`` by it (extension never shortens); every object written since was locked until its write time + DAYS,
which is later. So between rounds every object the vault keeps is locked until at least ``t + DAYS``, which is
still DAYS/2 or more away whenever a prune decides to skip (``now <= t + DAYS/2``). A prune at least every DAYS/2
therefore keeps every kept object locked at all times; a vault that is not pruned for longer than that keeps its
objects locked for DAYS from the last round or write (docs/storage.md says to prune at least that often).

Which objects: the round runs after prune's deletions, and lists the current objects of config, keys, data and
versions: exactly what the kept versions need (the packs the plan kept or wrote, the records and segments holding
kept versions, the config and the key slots). Objects prune just deleted or hid are not listed, so packs that
only forgotten versions used keep the lock they had and go once it ends.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from vault.cache.listing import bounded_map
from vault.errors import ObjectNotFoundError
from vault.storage.base import Handle, Held, Kind, RetainingBackend, supports_retention

if TYPE_CHECKING:
    from vault.repo.repository import Repository

log = logging.getLogger(__name__)

# The kinds whose objects are locked (vault.storage.s3.RETAINED_KINDS, repeated here so that nothing above the
# storage layer imports the S3 module).
_RETAINED = (Kind.CONFIG, Kind.KEYS, Kind.DATA, Kind.VERSIONS)
# Extension requests in flight at once: each is a HeadObject and, when the lock must move, a PutObjectRetention.
EXTEND_WORKERS = 16


@dataclass
class LockReport:
    """What prune did about retention: ``extended`` objects whose locks now last until ``extended_until`` (0
    and None when no round was due), ``purged`` hidden versions deleted now that their locks had passed, and
    what is still ``held``."""

    extended: int = 0
    extended_until: datetime | None = None
    purged: int = 0
    held: Held = field(default_factory=Held)


def retaining(repo: Repository) -> RetainingBackend | None:
    """The repository's backend when it locks what it writes (a vault with a retention on S3), else None."""
    backend = repo.backend
    if not supports_retention(backend) or getattr(backend, "retention", None) is None:
        return None
    return backend  # type: ignore[return-value]


def round_due(repo: Repository, period: timedelta, now: datetime) -> bool:
    """True when no round is recorded (or its record fails its MAC), when more than ``period``/2 has passed since
    the last one started, or when the recorded start lies in the future (a clock that was set back)."""
    last = repo.cache.rounds.last()
    if last is None:
        return True
    return not (last.started <= now <= last.started + period / 2)


def extend_kept(repo: Repository, *, force: bool = False) -> tuple[int, datetime | None]:
    """Make a round when one is due (or ``force``): lock every listed object of the retained kinds until now +
    the retention, ``EXTEND_WORKERS`` at a time, then record the round. Returns (objects looked at, the date they
    are locked until), or (0, None) when no round was due or the vault has no retention. ``StorageError`` (no
    round is recorded then: the next prune does it again)."""
    backend = retaining(repo)
    if backend is None or backend.retention is None:
        return 0, None
    period = backend.retention
    started = datetime.now(UTC)
    if not force and not round_due(repo, period, started):
        return 0, None
    until = started + period

    def extend(h: Handle) -> int:
        with contextlib.suppress(ObjectNotFoundError):  # deleted meanwhile (another machine's rm is excluded,
            backend.extend_retention(h, until)           # but a key slot may be replaced): nothing to protect
            return 1
        return 0

    count = 0
    for kind in _RETAINED:
        # One kind's listing at a time, extended in batches: bounded memory however many packs there are.
        batch: list[Handle] = []
        for info in backend.list(kind):
            batch.append(info.handle)
            if len(batch) >= 1000:
                count += sum(bounded_map(extend, batch, EXTEND_WORKERS))
                batch = []
        count += sum(bounded_map(extend, batch, EXTEND_WORKERS))
    repo.cache.rounds.record(started, until)
    log.info("extended the retention of %d object(s) until %s", count, until.isoformat(timespec="seconds"))
    return count, until


def purge_hidden(repo: Repository) -> tuple[int, Held]:
    """Delete what earlier deletions hid and retention no longer holds (``purge_expired``); returns how many
    versions were deleted and what is still held. (0, empty) for a vault without retention. ``StorageError``."""
    backend = retaining(repo)
    if backend is None:
        return 0, Held()
    result = backend.purge_expired()
    if result.deleted:
        log.info("deleted %d hidden object version(s) whose retention had passed", result.deleted)
    return result.deleted, result.held


def after_prune(repo: Repository) -> LockReport:
    """Both, at the end of a prune, under the exclusive lock: the extension round over what the listings show
    first (it only touches current versions, and must happen even when the purge fails), then the purge of what
    no listing shows."""
    report = LockReport()
    report.extended, report.extended_until = extend_kept(repo)
    report.purged, report.held = purge_hidden(repo)
    return report
