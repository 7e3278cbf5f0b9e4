"""The console script. Kept tiny so that an interrupt while the command line's modules import still ends
with the contract's one-line message and exit 130, never Python's traceback."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from vault.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("vault: error: interrupted\n")
        sys.exit(130)
    cli_main()
