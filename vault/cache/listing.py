"""Comparing a listing of the storage with what the cache holds: which objects are gone, new, or replaced."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from vault.storage.base import ObjectInfo


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
        elif tag and info.tag and tag != info.tag:
            out.gone.append(name)
            out.new.append(info)
        elif not tag and info.tag:
            out.tags[name] = info.tag
    out.new.extend(info for name, info in listed.items() if name not in held)
    return out
