"""gitignore-style exclusion patterns for `put --exclude` (a subset: no negation).

- ``*.log``: a pattern without ``/`` matches the name at any depth;
- ``build/``: a trailing ``/`` matches directories only;
- ``docs/*.tmp``, ``/top.txt``: a pattern with a ``/`` inside is anchored at the root of the tree being stored;
- ``**/node_modules``, ``a/**/b``, ``logs/**``: ``**`` spans any number of directories.
Paths are matched relative to the stored tree, with ``/`` separators. Excluded directories are not entered.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from vault.errors import UsageError


def _translate(glob: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("/**", i) and i + 3 == len(glob):
            out.append("(?:/.*)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        elif glob[i] == "[":
            end = glob.find("]", i + 2)
            if end == -1:
                out.append(re.escape("["))
                i += 1
            else:
                body = glob[i + 1 : end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end + 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return "".join(out)


@dataclass(frozen=True)
class _Rule:
    regex: re.Pattern[str]
    dir_only: bool
    anchored: bool


class Excluder:
    def __init__(self, patterns: Iterable[str]) -> None:
        self._rules: list[_Rule] = []
        for raw in patterns:
            pat = raw.strip()
            if not pat or pat.startswith("#"):
                continue
            if pat.startswith("!"):
                raise UsageError(f"exclude pattern {raw!r}: negation ('!') is not supported")
            dir_only = pat.endswith("/")
            pat = pat.rstrip("/")
            if not pat:
                raise UsageError(f"exclude pattern {raw!r} matches nothing")
            anchored = "/" in pat
            pat = pat.lstrip("/")
            try:
                regex = re.compile(_translate(pat) + r"\Z", re.DOTALL)
            except re.error as exc:  # e.g. a character range like [z-a]
                raise UsageError(f"exclude pattern {raw!r} is malformed: {exc.msg}") from None
            self._rules.append(_Rule(regex, dir_only, anchored))

    def __bool__(self) -> bool:
        return bool(self._rules)

    def excluded(self, rel_path: str, is_dir: bool) -> bool:
        """``rel_path`` is relative to the stored tree's root, ``/``-separated."""
        name = rel_path.rsplit("/", 1)[-1]
        for rule in self._rules:
            if rule.dir_only and not is_dir:
                continue
            if rule.regex.match(rel_path if rule.anchored else name) or (
                not rule.anchored and rule.regex.match(rel_path)
            ):
                return True
        return False


def read_exclude_file(path: str) -> list[str]:
    """Patterns from a file, one per line; blank lines and ``#`` comments are skipped. NotFound → exit 4."""
    from vault.errors import NotFoundError, StorageError

    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return [line.rstrip("\r\n") for line in f]
    except FileNotFoundError:
        raise NotFoundError(f"exclude file {path} does not exist") from None
    except OSError as exc:
        raise StorageError(f"cannot read exclude file {path}: {exc.strerror}") from None
