#!/usr/bin/env python3
"""Generate the benchmark data sets, deterministically, with bounded memory.

    python benchmarks/gen_data.py                 # mixed.bin + random.bin (1 GiB each) + stdlib/ tree
    python benchmarks/gen_data.py --size 64M      # smaller files for a quick run (the tree is always whole)
    python benchmarks/gen_data.py --big 4G        # also mixed-big.bin (for the RSS-scaling check)

Outputs (into benchmarks/data/, which is gitignored):

- ``mixed.bin``: alternating 8 MiB segments of random bytes and text-like bytes (words drawn from a seeded,
  Zipf-weighted vocabulary of 8,000 pseudo-words, with punctuation and line breaks). Half random, half text;
  zstd -3 compresses the text half about 3.2x, the whole file about 1.5x. A smaller ``--size`` gives a prefix
  of the bigger file; ``mixed-big.bin`` therefore starts with ``mixed.bin``.
- ``random.bin``: random bytes (Mersenne Twister; another seed than mixed.bin's random segments).
- ``stdlib/``: a copy of the running Python's standard library (``sysconfig.get_paths()['stdlib']``) without
  ``site-packages``, ``__pycache__`` kept: about 7,700 files, about 250 MB, mostly small text files.

Everything is written to ``NAME.partial`` then renamed, so an interrupted run never leaves a short file that
looks complete; an existing output of the right size (or tree with a ``.complete`` marker) is kept unless
``--force``. ``manifest.json`` records sizes, file counts and the SHA-256 of each file.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import random
import re
import shutil
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "data"
SEGMENT = 8 << 20  # the mixed file alternates random and text segments of this size
WRITE_BLOCK = 8 << 20
VOCAB_SIZE = 8000
ZIPF_S = 1.0
WORDS_PER_DRAW = 400_000  # one rng.choices() call: ~2.5 MB of text, bounded memory

_LETTERS = "etaoinshrdlcumwfgypbvkjxqz"
_LETTER_WEIGHTS = [12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8, 2.4, 2.4, 2.2, 2.0, 2.0,
                   1.9, 1.5, 1.0, 0.8, 0.15, 0.15, 0.1, 0.07]


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(i?[bB]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 1G, 64M, 1048576)")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2).lower()]
    return int(float(m.group(1)) * mult)


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"


# -- generators: each yields blocks of bytes, deterministic for a seed, memory bounded by one block ----------


def random_blocks(seed: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    while True:
        yield rng.randbytes(WRITE_BLOCK)


class TextSource:
    """An endless, seeded stream of text-like bytes, handed out in exact lengths."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        vocab = []
        for _ in range(VOCAB_SIZE):
            n = max(1, min(14, int(rng.gauss(5, 2.5))))
            vocab.append("".join(rng.choices(_LETTERS, weights=_LETTER_WEIGHTS, k=n)))
        # A few sentence and line ends, spread through the ranks so they recur like punctuation does.
        for rank in (3, 9, 17, 40, 90):
            vocab[rank] = vocab[rank] + "."
        for rank in (5, 12, 30, 70):
            vocab[rank] = vocab[rank] + ","
        vocab[25] = vocab[25] + ".\n"
        vocab[60] = vocab[60] + "\n\n"
        weights = [1.0 / (r + 1) ** ZIPF_S for r in range(VOCAB_SIZE)]
        self._vocab = vocab
        self._cum = list(itertools.accumulate(weights))
        self._rng = rng
        self._buf = b""

    def _more(self) -> bytes:
        words = self._rng.choices(self._vocab, cum_weights=self._cum, k=WORDS_PER_DRAW)
        return (" ".join(words) + " ").encode("ascii")

    def take(self, n: int) -> Iterator[bytes]:
        while n > 0:
            if not self._buf:
                self._buf = self._more()
            part, self._buf = self._buf[:n], self._buf[n:]
            n -= len(part)
            yield part


def mixed_blocks(seed: int) -> Iterator[bytes]:
    rnd = random.Random(seed)
    text = TextSource(seed + 1000)
    while True:
        yield rnd.randbytes(SEGMENT)
        yield from text.take(SEGMENT)


# -- writing -----------------------------------------------------------------------------------------------


def write_file(path: Path, size: int, blocks: Iterator[bytes], force: bool) -> dict[str, object]:
    if path.exists() and path.stat().st_size == size and not force:
        print(f"  {path.name}: exists ({human(size)}), kept (use --force to regenerate)")
        return {"path": path.name, "bytes": size, "sha256": _sha256_file(path), "kept": True}
    partial = path.with_name(path.name + ".partial")
    digest = hashlib.sha256()
    written = 0
    t0 = time.perf_counter()
    with open(partial, "wb") as fh:
        for block in blocks:
            if written >= size:
                break
            block = block[: size - written]
            fh.write(block)
            digest.update(block)
            written += len(block)
    os.replace(partial, path)
    dt = time.perf_counter() - t0
    print(f"  {path.name}: {human(size)} in {dt:.1f} s ({size / dt / 1e6:.0f} MB/s)")
    return {"path": path.name, "bytes": size, "sha256": digest.hexdigest()}


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(WRITE_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def copy_stdlib(dest: Path, force: bool) -> dict[str, object]:
    src = Path(sysconfig.get_paths()["stdlib"])
    marker = dest.with_name(dest.name + ".complete")
    if dest.is_dir() and marker.exists() and not force:
        print(f"  {dest.name}/: exists, kept (use --force to copy again)")
    else:
        if dest.exists():
            shutil.rmtree(dest)
        marker.unlink(missing_ok=True)
        t0 = time.perf_counter()
        shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns("site-packages"))
        marker.write_text(str(src) + "\n")
        print(f"  {dest.name}/: copied from {src} in {time.perf_counter() - t0:.1f} s")
    files = dirs = links = size = 0
    for root, dirnames, filenames in os.walk(dest):
        dirs += len(dirnames)
        for name in filenames:
            p = os.path.join(root, name)
            st = os.lstat(p)
            if os.path.islink(p):
                links += 1
            else:
                files += 1
                size += st.st_size
    print(f"  {dest.name}/: {files} files, {dirs} directories, {links} links, {human(size)} ({size / 1e6:.0f} MB)")
    return {"path": dest.name + "/", "source": str(src), "files": files, "dirs": dirs, "links": links,
            "bytes": size}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default benchmarks/data)")
    ap.add_argument("--size", type=parse_size, default=1 << 30, help="size of mixed.bin and random.bin (1G)")
    ap.add_argument("--big", type=parse_size, default=0,
                    help="also write mixed-big.bin of this size (e.g. 4G) for the memory-scaling check")
    ap.add_argument("--seed", type=int, default=20261125)
    ap.add_argument("--only", default="mixed,random,stdlib",
                    help="comma-separated subset of mixed,random,stdlib (default all)")
    ap.add_argument("--force", action="store_true", help="regenerate even when the outputs exist")
    args = ap.parse_args(argv)

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    need = (2 * args.size if "mixed" in args.only or "random" in args.only else 0) + args.big + (300 << 20)
    free = shutil.disk_usage(out).free
    if free < need * 1.2:
        print(f"gen_data: only {human(free)} free in {out}, need about {human(need)}", file=sys.stderr)
        return 1
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest["seed"] = args.seed
    print(f"writing into {out}")
    if "mixed" in only:
        manifest["mixed"] = write_file(out / "mixed.bin", args.size, mixed_blocks(args.seed), args.force)
    if "random" in only:
        manifest["random"] = write_file(out / "random.bin", args.size, random_blocks(args.seed + 1), args.force)
    if args.big:
        manifest["mixed-big"] = write_file(out / "mixed-big.bin", args.big, mixed_blocks(args.seed), args.force)
    if "stdlib" in only:
        manifest["stdlib"] = copy_stdlib(out / "stdlib", args.force)
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
