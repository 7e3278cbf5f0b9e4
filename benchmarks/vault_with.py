#!/usr/bin/env python3
"""Run the `vault` command with some module attributes set first, to measure a tuning without editing vault/.

    python benchmarks/vault_with.py vault.repo.writer.MAX_UPLOADS_IN_FLIGHT=4 -- --vault s3://b put FILE

Each ``MODULE.ATTR=VALUE`` before ``--`` imports MODULE and sets ATTR to VALUE (a Python literal). The
process is the real entry point otherwise (glibc tuning, signal handling, exit codes), so wall time, CPU and
peak RSS measured around it are those of `vault` with that setting. A benchmark tool only: nothing in vault
reads the environment or a file for these.
"""

from __future__ import annotations

import ast
import importlib
import sys


def main(argv: list[str]) -> None:
    if "--" not in argv:
        sys.exit("usage: vault_with.py MODULE.ATTR=VALUE... -- VAULT-ARGS...")
    split = argv.index("--")
    settings, rest = argv[:split], argv[split + 1 :]
    from vault import _entry

    _entry._tune_malloc()  # as the console script does, before the modules below allocate
    for setting in settings:
        target, _, value = setting.partition("=")
        module_name, _, attr = target.rpartition(".")
        module = importlib.import_module(module_name)
        if not hasattr(module, attr):
            sys.exit(f"vault_with.py: {module_name} has no attribute {attr}")
        setattr(module, attr, ast.literal_eval(value))
    sys.argv = ["vault", *rest]
    from vault.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main(sys.argv[1:])
