"""Owners of files: the ids and names `put` stores, and the local ids those names stand for when `get` restores.

Names are looked up in the local user and group databases (``pwd``, ``grp``: /etc/passwd, NSS) and cached, as
tar does, because a tree holds the same few owners thousands of times. The lookups are the only state here, and
``functools.lru_cache`` is safe to share between threads.
"""

from __future__ import annotations

import functools
import grp
import os
import pwd
from typing import TypedDict


@functools.lru_cache(maxsize=4096)
def user_name(uid: int) -> str:
    """The user name of ``uid`` on this machine, or "" when it has none."""
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return ""


@functools.lru_cache(maxsize=4096)
def group_name(gid: int) -> str:
    """The group name of ``gid`` on this machine, or "" when it has none."""
    try:
        return grp.getgrgid(gid).gr_name
    except (KeyError, OverflowError):
        return ""


@functools.lru_cache(maxsize=4096)
def uid_of(name: str) -> int | None:
    """The uid that user ``name`` has on this machine, or None when there is no such user."""
    try:
        return pwd.getpwnam(name).pw_uid
    except (KeyError, ValueError, UnicodeEncodeError):
        return None


@functools.lru_cache(maxsize=4096)
def gid_of(name: str) -> int | None:
    """The gid that group ``name`` has on this machine, or None when there is no such group."""
    try:
        return grp.getgrnam(name).gr_gid
    except (KeyError, ValueError, UnicodeEncodeError):
        return None


class Owner(TypedDict):
    """The owner fields of a tree node (keyword arguments of :class:`vault.format.trees.Node`)."""

    uid: int
    gid: int
    user: str
    group: str


def owner_of(st: os.stat_result) -> Owner:
    """The owner fields a tree node stores for a file with stat ``st``: ``uid``, ``gid``, and the names they
    have here (``user``, ``group``; "" where there is none), as keyword arguments of
    :class:`vault.format.trees.Node`."""
    return Owner(uid=st.st_uid, gid=st.st_gid, user=user_name(st.st_uid), group=group_name(st.st_gid))
