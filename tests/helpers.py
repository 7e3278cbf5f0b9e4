"""What the tests share beyond fixtures: the `vault` command runner, the password and cheap KDF settings, test
data, error checks, and a look inside a vault for the tamper tests.

Import it as ``from helpers import ...`` (tests/ is on pytest's pythonpath), never ``from conftest import ...``:
several conftest.py files share that module name, so what such an import finds depends on which one pytest
loaded last. The fixtures of tests/conftest.py are built from what is here.

The command-line and integration tests drive the installed entry point as a child process (:class:`VaultCli`).
The only parts of vault imported here are the KDF parameters (for :data:`CHEAP`) and, inside
:func:`chunk_places`, the library that finds where a blob lives (the tamper tests).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vault.crypto import kdf

PASSWORD = "correct horse battery staple"
# Cheap KDF settings: in-process (the ``cheap_kdf`` fixture lowers the defaults to these) and what the command
# line gets for the same purpose (init warns that 8 MiB is below OWASP's minimum).
CHEAP = kdf.KdfParams(memory_kib=8 * 1024, time_cost=1, parallelism=1)
CHEAP_INIT_ARGS = ["--kdf-memory", "8", "--kdf-time", "1", "--kdf-parallelism", "1"]

MiB = 1024 * 1024
CHUNK_MIN = 256 * 1024  # spec: chunks of roughly 256 KiB min, 1 MiB average, 4 MiB max
CHUNK_MAX = 4 * MiB

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")

# ------------------------------------------------------------------------------------------ running vault


def vault_exe() -> list[str]:
    """The installed `vault` console script beside this interpreter, else ``python -m vault``."""
    exe = Path(sys.executable).with_name("vault")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "vault"]


@dataclass
class Result:
    """One finished `vault` command: exit code, standard output (bytes), standard error (text). Made by
    :class:`VaultCli`, and by hand for commands run otherwise (under setpriv, with Popen)."""

    code: int
    out: bytes
    err: str

    @property
    def stdout(self) -> str:
        return self.out.decode("utf-8", "replace")


class VaultCli:
    """Runs the installed `vault` entry point as a child process, as users and their scripts do."""

    def __init__(self, vault_path: Path, env: dict[str, str]) -> None:
        self.vault_path = vault_path
        self.env = env
        self.exe = vault_exe()

    def __call__(
        self,
        *args: str,
        input: bytes | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 120,
        check: int | None = None,
        cwd: Path | None = None,
    ) -> Result:
        full_env = dict(self.env)
        full_env.update(env or {})
        for k, v in list(full_env.items()):
            if v is None:  # type: ignore[comparison-overlap]
                del full_env[k]
        proc = subprocess.run(
            [*self.exe, *args],
            input=input if input is not None else b"",
            capture_output=True,
            env=full_env,
            timeout=timeout,
            cwd=cwd,
        )
        result = Result(proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"))
        assert "Traceback" not in result.err, result.err
        if check is not None:
            assert result.code == check, (args, result.code, result.err)
        return result

    def init(self, *extra: str) -> Result:
        return self("init", *CHEAP_INIT_ARGS, *extra, check=0)


def template_env(home: Path, vault_dir: Path) -> dict[str, str]:
    """The environment of tests/conftest.py's ``cli`` for a vault built outside any test (module- or
    session-scoped templates): no VAULT_*/AWS_* from the machine, HOME and XDG in ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "AWS_"))}
    env.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / ".local/share"),
        XDG_STATE_HOME=str(home / ".local/state"),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        VAULT_PATH=str(vault_dir),
        VAULT_PASSWORD=PASSWORD,
    )
    return env


def run_ok(env: dict[str, str], *args: str, input: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """Run the installed `vault` and insist on success (for building templates)."""
    proc = subprocess.run([*vault_exe(), *args], env=env, input=input, capture_output=True, timeout=120)
    assert proc.returncode == 0, (args, proc.stderr)
    assert b"Traceback" not in proc.stderr
    return proc


# A tiny process between the test and the measured command. At execve the kernel folds the old address space's
# high-water mark into the new program's max RSS; for a child forked (or vforked) straight from a large pytest
# worker that is the worker's size. Forked from this ~10 MB interpreter instead, the figure is the command's own.
_RSS_WRAPPER = (
    "import os, resource, sys\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.execvp(sys.argv[2], sys.argv[2:])\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)\n"
)


def measured_command(cmd: list[str], rss_file: Path) -> list[str]:
    """``cmd`` wrapped so that its own peak RSS (KiB) is written to ``rss_file`` when it exits."""
    return [sys.executable, "-c", _RSS_WRAPPER, str(rss_file), *cmd]


# ----------------------------------------------------------------------------------------------- data

_WORDS = (
    b"the quick brown fox jumps over a lazy dog while vault stores every chunk once and encrypts it "
    b"backup restore archive compress dedup version item tree pack index record key slot password "
    b"alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma"
).split()


def random_bytes(size: int, seed: int = 0) -> bytes:
    """Deterministic incompressible bytes."""
    return random.Random(seed).randbytes(size)


def text_bytes(size: int, seed: int = 0) -> bytes:
    """Deterministic, compressible, text-like bytes (words and newlines)."""
    rng = random.Random(seed)
    vocab = [w + (b"\n" if i % 11 == 0 else b" ") for i, w in enumerate(_WORDS)]
    # 256 random choices made once, then indexed by random bytes: fast, and not a repeating pattern.
    table = [rng.choice(vocab) for _ in range(256)]
    out = bytearray()
    while len(out) < size:
        out += b"".join(table[b] for b in rng.randbytes(8192))
    return bytes(out[:size])


STORED_DATA = random_bytes(5000, seed=1)  # f.bin of the ``stored`` vaults of tests/cli


def write_file(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(MiB):
            h.update(block)
    return h.hexdigest()


def snapshot(root: Path) -> dict[str, tuple[str, str]]:
    """Every entry under ``root``: relative path -> (kind, sha256 or link target). Used to prove that a
    directory is byte-identical before and after a command."""
    out: dict[str, tuple[str, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir", oct(p.stat().st_mode))
            else:
                out[rel] = ("file", sha256_file(p))
    return out


def vault_files(vault_dir: Path) -> list[Path]:
    return sorted(p for p in vault_dir.rglob("*") if p.is_file())


def objects(vault_dir: Path, kind: str) -> list[Path]:
    """The stored objects of one kind: ``data`` (packs), ``index``, ``versions``, ``keys``, ``config``."""
    if kind == "config":
        return [vault_dir / "config"]
    return sorted(p for p in (vault_dir / kind).rglob("*") if p.is_file() and not p.name.startswith("."))


def flip_byte(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0x40
    path.write_bytes(bytes(data))


def truncate(path: Path, keep: int | None = None) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2 if keep is None else keep)


def swap(a: Path, b: Path) -> None:
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)
    b.write_bytes(da)


def copy_vault(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


# --------------------------------------------------------------------------------------------- errors


def assert_error(result: Any, code: int, contains: str | None = None) -> None:
    """``result`` failed with ``code`` and the contract's standard error: one ``vault: error: ...`` line,
    maybe followed by ``vault: hint: ...``, every line starting with ``vault: ``, no traceback."""
    err = result.err
    assert result.code == code, (result.code, code, err)
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines, "no error message on standard error"
    errors = [i for i, ln in enumerate(lines) if ln.startswith("vault: error: ")]
    assert len(errors) == 1, err
    assert len(lines[errors[0]]) > len("vault: error: ") + 3, err
    for ln in lines[errors[0] + 1 :]:
        assert ln.startswith("vault: hint: "), err
    for ln in lines:
        assert ln.startswith("vault: "), err
    if contains is not None:
        assert contains in err, err


def parse_json(result: Any) -> Any:
    """Standard output holds exactly one JSON document (and only that)."""
    assert result.code == 0, (result.code, result.err)
    text = result.out.decode("utf-8")
    return json.loads(text)  # raises on anything but one document (json.loads rejects trailing data)


# ------------------------------------------------------------------------------------ unreadable files


_CAPS_PREFIX = ["setpriv", "--inh-caps=-all", "--bounding-set=-all"]


def unreadable_prefix(path: Path) -> list[str] | None:
    """A command prefix under which ``path`` (already chmod 000) can't be read, or None if there is none.

    Not root: chmod 000 is enough (empty prefix). Root: drop every capability with setpriv (DAC override
    included), so the file's mode applies to uid 0 too, while the vault dir and $HOME (owned by root) stay
    writable. The prefix is proven to deny the read before it is returned.
    """
    return _denying_prefix([sys.executable, "-c", f"open({str(path)!r}, 'rb')"])


def unwritable_prefix(directory: Path) -> list[str] | None:
    """Like :func:`unreadable_prefix`, for creating a file in ``directory`` (already chmod 0555)."""
    return _denying_prefix([sys.executable, "-c", f"open({str(directory / '.probe')!r}, 'xb')"])


def _denying_prefix(probe: list[str]) -> list[str] | None:
    if os.geteuid() != 0:
        prefix: list[str] = []
    elif shutil.which("setpriv"):
        prefix = list(_CAPS_PREFIX)
    else:
        return None
    done = subprocess.run([*prefix, *probe], capture_output=True)
    return prefix if done.returncode != 0 else None


# ---------------------------------------------------------------------------------------------- secrets


def secret_variants(secret: str) -> list[bytes]:
    """The raw bytes, case variants, and base64 at every alignment (minus the edge characters that depend on
    neighbouring bytes) of ``secret``."""
    raw = secret.encode()
    out = {raw, raw.lower(), raw.upper(), secret.swapcase().encode()}
    for pad in range(3):
        for enc in (base64.b64encode, base64.urlsafe_b64encode):
            b64 = enc(b"\0" * pad + raw).rstrip(b"=")
            # Drop the characters that mix padding or following bytes into the encoding.
            core = b64[(pad * 4 + 2) // 3 + 1 : -2]
            if len(core) >= 8:
                out.add(core)
    return sorted(out)


def find_in_files(paths: list[Path], needles: list[bytes]) -> list[tuple[str, bytes]]:
    hits = []
    for p in paths:
        data = p.read_bytes()
        for n in needles:
            if n in data:
                hits.append((str(p), n))
    return hits


# ----------------------------------------------------------------------------------- tamper tests' vault


SECOND_PASSWORD = "second password for the tamper tests"


@dataclass
class Template:
    vault_dir: Path
    sources: Path
    key_ids: dict[str, str]  # password -> key id


@dataclass
class ChunkPlace:
    pack: Path
    offset: int  # of the sealed blob in the pack
    length: int  # sealed length
    raw_length: int  # plaintext length


def chunk_places(vault_dir: Path, name: str, password: str = PASSWORD) -> list[ChunkPlace]:
    """Where the chunks of file ``name`` (an item or a path inside one; latest version) are, in order."""
    from vault import format as fmt
    from vault.repo.repository import Repository
    from vault.restore import resolve
    from vault.storage.local import LocalBackend

    repo = Repository.open(LocalBackend(vault_dir), password.encode(), rehash=False)
    _, node, _ = resolve(repo, name, None)
    places = []
    for blob_id in node.content:
        loc = repo.locate(blob_id, fmt.BlobType.DATA)
        h = loc.pack_handle.name
        places.append(ChunkPlace(vault_dir / "data" / h[:2] / h, loc.entry.offset, loc.entry.length,
                                 loc.entry.raw_length))
    return places
