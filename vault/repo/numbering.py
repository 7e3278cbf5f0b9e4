"""Version numbers for the records write-only keys add: readers number them alike, and a full key settles them.

A write-only key can't read the catalog, so it can't pick ``max + 1``: its version records carry ``version`` 0,
"not numbered yet" (docs/format.md). Every reader numbers them the same way (:func:`numbered`): an item's records
are taken in order of creation (then record id); a numbered one keeps its number, an unnumbered one gets the
smallest number above every number given so far that no numbered record holds. So two readers that see the same
records show the same numbers, none of them twice, and a full key's put, which takes ``max + 1`` of those numbers,
moves none of them. The next full-key command that has the vault to itself (the exclusive lock, or a put that
finds no other lock holder) writes those numbers into the records (vault.repo.changes.Changes.settle_versions):
from then on they are ordinary numbered versions, and the usual guarantee holds, no two versions of an item with
one number. Until then a number can still move if a record created earlier (a write-only put on a machine whose
clock is behind, or one that ran long) arrives later.

In the local cache an unnumbered record's version column holds UNNUMBERED_BASE plus its creation time in
microseconds (:func:`sort_column`): above every real number, so the cache's per-item "latest" and its item list
(ordered by that column) find it, and the catalog then numbers the item's records.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vault.repo.catalog import VersionRecord

UNNUMBERED_BASE = 1 << 62  # the cache's version column of a record not numbered yet: above any real number


def _created_us(created: str) -> int:
    """A record's creation time in microseconds since the epoch (0 when it does not parse: it then sorts first)."""
    try:
        when = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return 0
    if when.tzinfo is None:
        return 0
    return max(0, int(when.timestamp() * 1_000_000))


def sort_column(record: VersionRecord) -> int:
    """The cache's version column for ``record``: its number, or for an unnumbered one UNNUMBERED_BASE plus its
    creation time (after every numbered record of its item, in creation order)."""
    return record.version or UNNUMBERED_BASE + _created_us(record.created)


def numbered(records: Sequence[VersionRecord]) -> list[VersionRecord]:
    """One item's records, by version, every unnumbered one given the number readers show for it (see the module
    docstring) and marked ``settled=False``."""
    taken = {r.version for r in records if r.version}
    top = 0
    out = []
    for r in sorted(records, key=lambda r: (_created_us(r.created), r.record_id)):
        if r.version:
            top = max(top, r.version)
            out.append(r)
            continue
        top += 1
        while top in taken:
            top += 1
        out.append(dataclasses.replace(r, version=top, settled=False))
    return sorted(out, key=lambda r: (r.version, r.created, r.record_id))
