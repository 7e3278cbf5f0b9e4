"""Catching up with the storage: compare a listing with what the cache holds (gone, new, replaced objects) and
take in what changed, fetching a few objects at a time."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from vault.errors import IntegrityError, StorageError
from vault.storage.base import Handle, ObjectInfo

T = TypeVar("T")
R = TypeVar("R")
_ROUNDS = 5  # list again when objects vanish while we read them (merged or compacted by another command)


@dataclass
class Changes:
    gone: list[str] = field(default_factory=list)  # held, and no longer listed (or listed as another write)
    new: list[ObjectInfo] = field(default_factory=list)  # to fetch: listed and not held, or replaced
    tags: dict[str, str] = field(default_factory=dict)  # held without a tag (written by this machine): adopt it


def compare(listed: Mapping[str, ObjectInfo], held: Mapping[str, str]) -> Changes:
    """``listed``: name → what the storage listed; ``held``: name → the tag the cache holds (empty when the
    object was written by this machine and never listed since). An object whose tag changed was written again
    under the same name (objects never change in place, so that is tampering or damage): it is read again, and
    its authentication decides."""
    out = Changes()
    for name, tag in held.items():
        info = listed.get(name)
        if info is None:
            out.gone.append(name)
        elif tag and info.tag not in ("", tag):  # listed as another write of the object
            out.gone.append(name)
            out.new.append(info)
        elif not tag and info.tag:
            out.tags[name] = info.tag
    out.new.extend(info for name, info in listed.items() if name not in held)
    return out


class Held:
    """What a cache holds of one kind of object, as :func:`catch_up` needs it."""

    def known_objects(self) -> dict[str, str]:
        raise NotImplementedError

    def drop_objects(self, names: Iterable[str]) -> None:
        raise NotImplementedError

    def set_tags(self, tags: dict[str, str]) -> None:
        raise NotImplementedError


def catch_up(
    listing: Callable[[], Iterable[ObjectInfo]],
    held: Held,
    read: Callable[[ObjectInfo], T | None],
    take: Callable[[ObjectInfo, T], None],
    on_error: Callable[[Handle, IntegrityError], None] | None,
    what: str,
    fetchers: int = 4,
) -> None:
    """Bring ``held`` in step with ``listing()``: drop what is gone, fetch what is new with ``read`` (None: it
    vanished since it was listed), hand each to ``take``. A damaged object raises IntegrityError, or with
    ``on_error`` is reported to it and skipped. Lists again (a few times) when objects vanish under us; then
    StorageError."""
    for _ in range(_ROUNDS):
        changes = compare({info.handle.name: info for info in listing()}, held.known_objects())
        held.drop_objects(changes.gone)
        held.set_tags(changes.tags)

        def fetch(info: ObjectInfo) -> T | IntegrityError | None:
            try:
                return read(info)
            except IntegrityError as exc:
                return exc

        vanished = False
        for info, got in zip(changes.new, bounded_map(fetch, changes.new, fetchers), strict=True):
            if got is None:
                vanished = True
            elif isinstance(got, IntegrityError):
                if on_error is None:
                    raise got
                on_error(info.handle, got)
            else:
                take(info, got)
        if not vanished:
            return
    raise StorageError(f"the {what} keep changing while they are read; try again")


def bounded_map(fn: Callable[[T], R], items: Sequence[T], workers: int) -> Iterator[R]:
    """``map(fn, items)`` on a small thread pool, in order, with at most ``workers`` results held at once."""
    if not items:
        return
    with ThreadPoolExecutor(min(workers, len(items)), thread_name_prefix="vault-meta") as pool:
        window: deque[Future[R]] = deque()
        try:
            for item in items:
                window.append(pool.submit(fn, item))
                if len(window) >= workers:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
        finally:
            for fut in window:
                fut.cancel()
