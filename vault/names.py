"""Item names: relative paths with ``/`` between segments (spec/cli.md, "Names, items and versions")."""

from __future__ import annotations

from vault.errors import UsageError
from vault.repo.tree import valid_segment


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid item name; UsageError (exit 2) otherwise.

    No empty, ``.`` or ``..`` segment, no NUL, no leading ``/``. A trailing ``/`` makes an empty segment too.
    """
    if not name or name.startswith("/") or not all(valid_segment(s) for s in name.split("/")):
        raise UsageError(f"invalid name {name!r}: use a relative path without empty, '.' or '..' segments")
    return name


def split_name(name: str) -> list[str]:
    return check_name(name).split("/")
