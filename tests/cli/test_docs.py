"""The user documentation in docs/ checked against the program, so that it can't drift.

- docs/json.md: one section per command, ``## `vault … --json` ``, holding a fenced ```json example. Each
  command is run (on one vault built once for this module) and its output compared with the example: the same
  keys and the same kinds of values, recursively. Where a list example has several elements, a key present in
  all of them is required and a key present in some is optional; a key's kinds are the union of the kinds
  shown (``"bytes": 1`` in one record and ``null`` in another: int or null). An empty ``{}`` or ``[]`` in the
  example stands for any object or list. A string that looks like an ISO 8601 UTC time must be one.
- docs/scripting.md: the ``vault-backup`` script is extracted and run, on success and on failure.
- docs/exit-codes.md and docs/environment.md: every exit code and every ``VAULT_*`` variable of the code.
- Links between the docs point to files and headings that exist.

Bugs found while writing the docs were strict xfails; fixed, they stay at the end as regression tests.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    CHEAP_INIT_ARGS,
    ISO_UTC,
    PASSWORD,
    parse_json,
    random_bytes,
    template_env,
    text_bytes,
    vault_exe,
    write_file,
)

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
OWN_DOCS = [
    "quickstart.md", "scripting.md", "environment.md", "exit-codes.md", "restoring.md", "recovery.md",
    "lost-password.md", "json.md", "browsing.md",
]


# ------------------------------------------------------------------------------------------ markdown


def _sections(text: str) -> dict[str, str]:
    """``## heading`` -> the text up to the next heading of level 1 or 2 (fenced blocks are skipped over)."""
    out: dict[str, str] = {}
    current: str | None = None
    body: list[str] = []
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and re.match(r"^#{1,2} ", line):
            if current is not None:
                out[current] = "\n".join(body)
            current, body = line.lstrip("#").strip(), []
            continue
        body.append(line)
    if current is not None:
        out[current] = "\n".join(body)
    return out


def _fenced(body: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", body, flags=re.M | re.S)


def _json_sections() -> dict[str, str]:
    """`vault … --json` heading (without backticks) -> its section text, for sections with a json example."""
    return {
        title.strip("`"): body
        for title, body in _sections((DOCS / "json.md").read_text()).items()
        if title.startswith("`vault ") and _fenced(body, "json")
    }


# ------------------------------------------------------------------------------------------- shapes


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "time" if ISO_UTC.match(v) else "string"
    if isinstance(v, list):
        return "list"
    assert isinstance(v, dict), type(v)
    return "object"


def _accepts(doc_kinds: set[str], kind: str) -> bool:
    return (
        kind in doc_kinds
        or (kind == "int" and "number" in doc_kinds)  # a number documented as 1.5 may come out as 2
        or (kind == "time" and "string" in doc_kinds)  # any string may look like a time
    )


def _shape_errors(examples: list[Any], value: Any, path: str) -> list[str]:
    """How ``value`` differs from the union of ``examples`` (see the module docstring)."""
    kinds = {_kind(e) for e in examples}
    kind = _kind(value)
    if not _accepts(kinds, kind):
        return [f"{path}: {kind} ({value!r}) where the doc shows {' or '.join(sorted(kinds))}"]
    if kind == "object":
        objs = [e for e in examples if isinstance(e, dict)]
        if any(not o for o in objs):
            return []  # {} in the doc: free-form
        required = set.intersection(*(set(o) for o in objs))
        allowed = set.union(*(set(o) for o in objs))
        errors = [f"{path}: key {k!r} is documented but missing" for k in sorted(required - set(value))]
        errors += [f"{path}: key {k!r} is not documented" for k in sorted(set(value) - allowed)]
        for k in sorted(set(value) & allowed):
            errors += _shape_errors([o[k] for o in objs if k in o], value[k], f"{path}.{k}")
        return errors
    if kind == "list":
        elements = [x for e in examples if isinstance(e, list) for x in e]
        if not elements:
            return []  # [] in the doc: any list
        return [err for i, x in enumerate(value) for err in _shape_errors(elements, x, f"{path}[{i}]")]
    return []


def test_shape_checker_catches_drift() -> None:
    """The comparison itself: what it accepts and what it reports."""
    doc = [{"a": 1, "t": "2026-01-01T00:00:00Z", "o": {}}, {"a": None, "t": "2026-01-01T00:00:00.5Z", "x": "s"}]
    assert _shape_errors([doc], [{"a": 3, "t": "2026-11-25T02:04:31.043207Z", "o": {"any": 1}}], "$") == []
    assert _shape_errors([doc], [], "$") == []
    assert _shape_errors([doc], [{"a": "3", "t": "2026-01-01T00:00:00Z"}], "$") == [
        "$[0].a: string ('3') where the doc shows int or null"
    ]
    assert _shape_errors([doc], [{"t": "yesterday", "new": 1}], "$") == [
        "$[0]: key 'a' is documented but missing",
        "$[0]: key 'new' is not documented",
        "$[0].t: string ('yesterday') where the doc shows time",
    ]
    assert _shape_errors([{"n": 1.5}], {"n": 2}, "$") == []
    assert _shape_errors([{"n": 1}], {"n": True}, "$") == ["$.n: bool (True) where the doc shows int"]


# ------------------------------------------------------------------------------------ the json vault


@dataclass
class Run:
    code: int
    out: bytes
    err: str


def _run(env: dict[str, str], *args: str, extra_env: dict[str, str] | None = None) -> Run:
    done = subprocess.run(
        [*vault_exe(), *args], env={**env, **(extra_env or {})}, input=b"", capture_output=True, timeout=120
    )
    run = Run(done.returncode, done.stdout, done.stderr.decode("utf-8", "replace"))
    assert "Traceback" not in run.err, run.err
    return run


@pytest.fixture(scope="module")
def json_outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run every --json command once on one vault; documented heading -> parsed output.

    Module-scoped (one vault for all the comparisons), so it builds its own clean environment instead of
    relying on the function-scoped ``clean_env``."""
    base = tmp_path_factory.mktemp("json-docs")
    env = template_env(base / "home", base / "vault")
    src = base / "src"
    write_file(src / "docs" / "a.txt", b"alpha\n")
    write_file(src / "docs" / "sub" / "b.bin", random_bytes(1000, seed=5))
    os.symlink("a.txt", src / "docs" / "link")
    write_file(src / "notes.txt", text_bytes(100_000, seed=6))

    out: dict[str, Any] = {}
    assert _run(env, "init", *CHEAP_INIT_ARGS).code == 0
    out["vault put PATH... --json"] = parse_json(_run(env, "put", str(src / "docs"), str(src / "notes.txt"), "--json"))
    write_file(src / "notes.txt", text_bytes(100_001, seed=7))
    assert _run(env, "put", str(src / "notes.txt")).code == 0
    out["vault get NAME -o DEST --json"] = parse_json(_run(env, "get", "docs", "-o", str(base / "restore"), "--json"))
    write_file(src / "docs" / "sub" / "b.bin", random_bytes(1000, seed=8))
    write_file(src / "docs" / "new.txt", b"new\n")
    assert _run(env, "put", str(src / "docs")).code == 0
    out["vault diff NAME --json"] = parse_json(_run(env, "diff", "docs", "--json"))
    out["vault find PATTERN... --json"] = parse_json(_run(env, "find", "*.bin", "--json"))
    other = {"VAULT_PASSWORD": "the other vault"}
    assert _run(env, "--vault", str(base / "offsite"), "init", *CHEAP_INIT_ARGS, extra_env=other).code == 0
    to = {"VAULT_TO_PASSWORD": "the other vault"}
    out["vault copy --to LOCATION --json"] = parse_json(
        _run(env, "copy", "docs", "--to", str(base / "offsite"), "--json", extra_env=to))
    assert _run(env, "get", "no-such-item").code == 4  # an error record for the log
    out["vault ls --json"] = parse_json(_run(env, "ls", "--json"))
    out["vault ls NAME --json"] = parse_json(_run(env, "ls", "docs", "--json"))
    out["vault history NAME --json"] = parse_json(_run(env, "history", "notes.txt", "--json"))
    out["vault info --json"] = parse_json(_run(env, "info", "--json"))
    assert _run(env, "key", "add", extra_env={"VAULT_NEW_PASSWORD": "a second password"}).code == 0
    out["vault key list --json"] = parse_json(_run(env, "key", "list", "--json"))
    out["vault forget --json"] = parse_json(_run(env, "forget", "--keep-last", "1", "--json"))
    out["vault prune --json"] = parse_json(_run(env, "prune", "--json"))
    out["vault check --json"] = parse_json(_run(env, "check", "--read-data", "--json"))
    out["vault repair --json"] = parse_json(_run(env, "repair", "--json"))
    out["vault log --json"] = parse_json(_run(env, "log", "--json"))
    assert _run(env, "key", "add", "--recovery", str(base / "recovery.txt")).code == 0
    out["vault rekey --json"] = parse_json(_run(env, "rekey", "--reencrypt", "--json"))
    return out


# Every command with --json, as docs/json.md names its section.
JSON_COMMANDS = [
    "vault ls --json",
    "vault ls NAME --json",
    "vault history NAME --json",
    "vault put PATH... --json",
    "vault get NAME -o DEST --json",
    "vault diff NAME --json",
    "vault find PATTERN... --json",
    "vault copy --to LOCATION --json",
    "vault info --json",
    "vault key list --json",
    "vault log --json",
    "vault forget --json",
    "vault prune --json",
    "vault check --json",
    "vault repair --json",
    "vault rekey --json",
]


def test_json_doc_has_a_section_per_command() -> None:
    assert sorted(_json_sections()) == sorted(JSON_COMMANDS)


@pytest.mark.parametrize("section", JSON_COMMANDS)
def test_json_output_matches_the_doc(section: str, json_outputs: dict[str, Any]) -> None:
    body = _json_sections()[section]
    example = json.loads(_fenced(body, "json")[0])
    real = json_outputs[section]
    assert not isinstance(real, list) or real, f"{section}: the scenario produced an empty list"
    errors = _shape_errors([example], real, "$")
    assert not errors, f"docs/json.md, {section}, differs from the real output:\n" + "\n".join(errors) + (
        "\n\nreal output:\n" + json.dumps(real, indent=2)
    )


@pytest.mark.parametrize("section", JSON_COMMANDS)
def test_json_doc_explains_every_key(section: str) -> None:
    """Each key of the example (of its objects, or of the objects in its list) is named in the section."""
    body = _json_sections()[section]
    example = json.loads(_fenced(body, "json")[0])
    objs = example if isinstance(example, list) else [example]
    keys = {k for o in objs for k in o}
    prose = body.replace(_fenced(body, "json")[0], "")
    missing = sorted(k for k in keys if f"`{k}`" not in prose)
    assert not missing, f"docs/json.md, {section}: keys without an explanation: {missing}"


# ------------------------------------------------------------------------------ the backup script


def _backup_script() -> str:
    blocks = _fenced((DOCS / "scripting.md").read_text(), "sh")
    scripts = [s for s in blocks if s.startswith("#!/bin/sh\n# vault-backup")]
    assert len(scripts) == 1, "docs/scripting.md should hold exactly one vault-backup script"
    return scripts[0]


def _exit_code_table() -> dict[int, str]:
    rows = re.findall(r"^\| (\d+) \| (.*?) \|", (DOCS / "exit-codes.md").read_text(), flags=re.M)
    return {int(code): meaning for code, meaning in rows}


def test_exit_codes_doc_covers_every_code() -> None:
    from vault import errors

    def subclasses(cls: type) -> list[type]:
        return [cls, *(s for c in cls.__subclasses__() for s in subclasses(c))]

    codes = {c.exit_code for c in subclasses(errors.VaultError) if c is not errors.VaultError}
    assert set(_exit_code_table()) == codes | {0, 1, 2, 130}


def test_backup_script_explains_every_exit_code() -> None:
    labels = {int(n) for n in re.findall(r"^\s*([\d|]+)\)", _backup_script(), flags=re.M) for n in n.split("|")}
    assert set(_exit_code_table()) - {0} <= labels | {143}, "codes the script's explain() does not name"
    assert 143 in labels


def test_backup_script_from_the_docs(tmp_path: Path) -> None:
    """The script as printed in docs/scripting.md: silent and 0 on success; on failure the first failing
    code, one message per failed step on standard error, the same lines to ALERT_COMMAND."""
    script = write_file(tmp_path / "vault-backup", _backup_script().encode())
    script.chmod(0o755)
    pwfile = write_file(tmp_path / "password", PASSWORD.encode() + b"\n")
    env = template_env(tmp_path / "home", tmp_path / "vault")
    del env["VAULT_PASSWORD"]
    env["VAULT_PASSWORD_FILE"] = str(pwfile)
    exe = vault_exe()
    if len(exe) == 1:
        env["VAULT"] = exe[0]
    else:  # not installed as a script: a shim that runs the module
        shim = write_file(tmp_path / "vault-shim", f'#!/bin/sh\nexec {sys.executable} -m vault "$@"\n'.encode())
        shim.chmod(0o755)
        env["VAULT"] = str(shim)
    assert _run(env, "init", *CHEAP_INIT_ARGS).code == 0
    write_file(tmp_path / "data" / "f.txt", b"hello\n")

    ok = subprocess.run([str(script), str(tmp_path / "data")], env=env, capture_output=True, timeout=300)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, b"", b"")
    log = parse_json(_run(env, "log", "--json"))
    assert [r["command"] for r in log[-4:]] == ["put", "forget", "prune", "check"]
    assert all(r["outcome"] == "success" for r in log[-4:])

    alert = tmp_path / "alert.txt"
    env["ALERT_COMMAND"] = f"cat > {alert}"
    bad = subprocess.run([str(script), str(tmp_path / "not-mounted")], env=env, capture_output=True, timeout=300)
    assert bad.returncode == 4
    assert b"vault-backup: vault put exited 4: not found" in bad.stderr
    text = alert.read_text()
    assert "failed (exit 4)" in text and "vault put exited 4" in text


# ------------------------------------------------------------------------ environment and links


def test_environment_doc_names_every_variable() -> None:
    names: set[str] = set()
    for path in (REPO / "vault").rglob("*.py"):
        names |= set(re.findall(r"""["'](VAULT_[A-Z_]+)["']""", path.read_text()))
    assert names, "no VAULT_* variable found in the code"
    doc = (DOCS / "environment.md").read_text()
    assert sorted(n for n in names if f"`{n}`" not in doc) == []


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@pytest.mark.parametrize("name", OWN_DOCS)
def test_links_resolve(name: str) -> None:
    text = (DOCS / name).read_text()
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        path = (DOCS / name).parent / file if file else DOCS / name
        if not path.exists():
            broken.append(target)
            continue
        if anchor:
            headings = re.findall(r"^#+ (.*)$", path.read_text(), flags=re.M)
            if anchor not in {_slug(h) for h in headings}:
                broken.append(target)
    assert not broken, f"docs/{name}: broken links {broken}"


# --------------------------------------------- bugs found writing the docs (fixed; kept as regressions)


def test_log_finds_the_vault_however_its_location_is_spelled(vault, tmp_path: Path) -> None:
    f = write_file(tmp_path / "f.txt", b"x")
    vault("put", str(f), check=0)
    same = {"VAULT_PATH": str(vault.vault_path) + "/"}
    assert vault("ls", env=same).code == 0  # the same vault
    records = parse_json(vault("log", "--json", env=same))
    assert "put" in [r["command"] for r in records]


def test_failed_put_of_a_missing_path_is_logged(vault, tmp_path: Path) -> None:
    assert vault("put", str(tmp_path / "not-mounted")).code == 4
    records = parse_json(vault("log", "--json"))
    assert records and records[-1]["command"] == "put" and records[-1]["exit_code"] == 4


def test_log_names_key_subcommands(vault) -> None:
    vault("key", "add", env={"VAULT_NEW_PASSWORD": "another password"}, check=0)
    records = parse_json(vault("log", "--json"))
    assert records[-1]["command"] == "key add"


def test_a_damaged_chunk_is_healed_by_putting_the_file_again(vault, tmp_path: Path) -> None:
    f = write_file(tmp_path / "photo.raw", random_bytes(300_000, seed=9))
    vault("put", str(f), check=0)
    packs = [p for p in (vault.vault_path / "data").rglob("*") if p.is_file() and not p.name.startswith(".")]
    pack = max(packs, key=lambda p: p.stat().st_size)  # the one with the file's chunk
    data = bytearray(pack.read_bytes())
    data[100] ^= 0x01  # inside the first sealed chunk (blobs start at byte 5)
    pack.write_bytes(bytes(data))
    assert vault("check", "--read-data").code == 20
    assert vault("repair").code == 0  # what check's hint says to run
    vault("put", str(f), check=0)  # the original is intact: store it again
    restored = vault("get", "photo.raw", "-o", "-")
    assert restored.code == 0 and restored.out == f.read_bytes()
