"""Progress on standard error: only when it is a terminal and --quiet is not given (spec/cli.md).

The pipeline reports bytes through a callback; this module owns the only code that draws. Stages never print.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from vault.cli._common import Settings


class Advance:
    """What a command hands to the library: ``advance(n)`` per n bytes done; ``total`` may be set late."""

    def __init__(self, step: Callable[[int], None], set_total: Callable[[int], None]) -> None:
        self._step = step
        self.set_total = set_total

    def __call__(self, n: int) -> None:
        self._step(n)


def enabled(s: Settings) -> bool:
    return s.verbosity >= 0 and sys.stderr.isatty()


@contextmanager
def bar(s: Settings, description: str, total: int | None) -> Iterator[Advance]:
    """A progress bar with bytes done and total, rate and ETA; a no-op callback when disabled."""
    if not enabled(s):
        yield Advance(lambda n: None, lambda total: None)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with progress:
        task = progress.add_task(description, total=total)
        yield Advance(lambda n: progress.advance(task, n), lambda t: progress.update(task, total=t))
