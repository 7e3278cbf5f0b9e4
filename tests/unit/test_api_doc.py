"""docs/api.md's example runs as written and prints what the page says it prints."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import vault

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def test_api_example_runs_and_prints_what_the_page_says(clean_env: Path) -> None:
    text = DOC.read_text()
    code = _blocks(text, "python")[0]
    expected = _blocks(text, "text")[0]
    # A child process with the test's clean environment (HOME and XDG in a temporary folder): the example
    # uses the real defaults, as a reader who pastes it would.
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ),
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == expected


def test_open_is_documented() -> None:
    doc = vault.open.__doc__ or ""
    assert "Session" in doc and "password" in doc and "lock" in doc
    assert vault.Session.__doc__ and vault.init.__doc__
