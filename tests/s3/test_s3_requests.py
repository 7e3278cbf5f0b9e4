"""How many requests commands make on S3 with a warm cache (issue "Scale"): a small put into a vault of any size
makes a bounded number, and `ls` does not read a record per version. Counted by a proxy in front of the moto
server, so the real `vault` command is measured as a user runs it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from helpers import parse_json, write_file
from s3_helpers import FaultProxy

ITEMS = 300  # versions in the vault: a put of this many files as items, then more puts


def _counted(s3_vault, proxy: FaultProxy, *args: str) -> tuple[int, Counter[str]]:  # type: ignore[no-untyped-def]
    before = len(proxy.log)
    s3_vault.via(proxy.endpoint)(*args, check=0)
    seen = proxy.log[before:]
    return len(seen), Counter(method for method, _ in seen)


def test_a_small_put_and_ls_stay_bounded_with_a_warm_cache(s3_vault, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "many"
    paths = [str(write_file(src / f"{i:03}.txt", f"version {i}\n".encode())) for i in range(ITEMS)]
    with FaultProxy(s3_vault.endpoint) as proxy:
        put_many, methods = _counted(s3_vault, proxy, "put", *paths)
        # The catalog is read once for all 300 items (a put used to read every record again per item).
        assert put_many < 3 * ITEMS, methods
        assert len(s3_vault.keys_of("versions")) < 64  # loose records were folded into a segment
        _counted(s3_vault, proxy, "ls")  # the first run after the put, as the "after the first run"
        ls, methods = _counted(s3_vault, proxy, "ls")
        assert ls <= 10, methods
        one = write_file(tmp_path / "one.bin", b"x" * 1024)
        put_one, methods = _counted(s3_vault, proxy, "put", str(one))
        assert put_one <= 20, methods
        history, methods = _counted(s3_vault, proxy, "history", "150.txt")
        assert history <= 10, methods
        get, methods = _counted(s3_vault, proxy, "get", "150.txt", "-o", "-")
        assert get <= 12, methods
    assert len(parse_json(s3_vault("ls", "--json"))) == ITEMS + 1
