"""Tar out (`vault get DIR -o -`) and in (`vault put - --tar --name NAME`) through the installed command:
`get -o - | tar -x` gives the tree `get` gives, a tar stream stores what a put of its tree stores, and hostile or
odd streams are refused or reported as the contract says."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from helpers import assert_error, chunk_places, flip_byte, parse_json, random_bytes, text_bytes, write_file


def _tree_state(root: Path) -> dict[str, tuple[str, int, int, bytes | str]]:
    """Every entry under ``root`` (and ``root`` itself as "."): kind, mode, mtime (ns), contents or target."""
    out: dict[str, tuple[str, int, int, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames] if dirpath == str(root) else [*dirnames, *filenames]:
            p = Path(dirpath) if name == "." else Path(dirpath, name)
            rel = "." if name == "." else str(p.relative_to(root))
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", 0, st.st_mtime_ns, os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns, b"")
            else:
                out[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_mtime_ns, p.read_bytes())
    return out


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    src = tmp_path / "src" / "site"
    write_file(src / "index.html", text_bytes(50_000, seed=1))
    write_file(src / "media" / "video.bin", random_bytes(5_000_000, seed=2))
    write_file(src / "empty.txt", b"")
    write_file(src / ("long-" + "n" * 150) / ("x" * 120 + ".txt"), b"long names\n")
    write_file(src / os.fsdecode(b"bytes-\xff\xfe.txt"), b"not utf-8\n")
    write_file(src / "ünïcödé.txt", "ü\n".encode())
    (src / "empty-dir").mkdir()
    os.symlink("../index.html", src / "media" / "up-link")
    os.symlink("/absolute/target", src / "abs-link")
    (src / "media" / "video.bin").chmod(0o600)
    (src / "empty-dir").chmod(0o700)
    os.utime(src / "index.html", ns=(1_234_567_890_123_456_789, 1_234_567_890_123_456_789))
    os.utime(src / "empty.txt", ns=(0, -1_500_000_000))
    return src


def test_get_to_tar_matches_get(vault, tree: Path, tmp_path: Path) -> None:
    vault("put", str(tree), check=0)
    restored = tmp_path / "restored"
    vault("get", "site", "-o", str(restored), check=0)
    stream = vault("get", "site", "-o", "-", check=0).out
    extracted = tmp_path / "extracted"
    extracted.mkdir()
    subprocess.run(["tar", "-x", "-C", str(extracted)], input=stream, check=True)
    assert _tree_state(extracted) == _tree_state(restored)
    assert _tree_state(restored) == _tree_state(tree) | {".": _tree_state(restored)["."]}
    with tarfile.open(fileobj=io.BytesIO(stream), mode="r|") as tar:
        members = [(m.name, m.type) for m in tar]
    assert members[0] == (".", tarfile.DIRTYPE)
    assert ("media/up-link", tarfile.SYMTYPE) in members
    assert len(stream) % tarfile.RECORDSIZE == 0
    log = parse_json(vault("log", "-n", "1", "--json"))[-1]
    assert log["command"] == "get" and log["bytes"] == sum(
        p.stat().st_size for p in tree.rglob("*") if p.is_file() and not p.is_symlink())


def test_put_tar_stores_what_a_put_stores(vault, tree: Path, tmp_path: Path) -> None:
    vault("put", str(tree), check=0)
    tar_c = ["tar", "--format=posix", "-c", "-C", str(tree), "."]
    stream = subprocess.run(tar_c, capture_output=True, check=True).stdout
    put = parse_json(vault("put", "-", "--tar", "--name", "site-from-tar", "--json", input=stream))
    assert put[0]["type"] == "dir" and put[0]["files"] == 6
    assert put[0]["bytes_added"] < 10_000  # the data dedups with the put of the same tree
    a, b = tmp_path / "a", tmp_path / "b"
    vault("get", "site", "-o", str(a), check=0)
    vault("get", "site-from-tar", "-o", str(b), check=0)
    assert _tree_state(a) == _tree_state(b)
    # Round trip through our own stream, and a compressed stream from a file.
    again = vault("get", "site-from-tar", "-o", "-", check=0).out
    vault("put", "-", "--tar", "--name", "again", input=again, check=0)
    gz = tmp_path / "site.tar.gz"
    subprocess.run(["tar", "--format=posix", "-cz", "-f", str(gz), "-C", str(tree), "."], check=True)
    vault("put", str(gz), "--tar", "--name", "from-gz", check=0)
    for name in ("again", "from-gz"):
        out = tmp_path / name
        vault("get", name, "-o", str(out), check=0)
        assert _tree_state(out) == _tree_state(a)


def _tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _info(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, **kw: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, mode, 1_700_000_000
    for k, v in kw.items():
        setattr(info, k, v)
    return info


def test_put_tar_takes_members_in_any_order(vault, tmp_path: Path) -> None:
    stream = _tar(
        (_info("b/c/deep.txt"), b"deep"),  # before its directories
        (_info("a.txt"), b"first"),
        (_info("b", tarfile.DIRTYPE, 0o750), None),  # comes late: gives b its mode
        (_info("a.txt"), b"second wins"),  # a later member of the same name replaces the earlier one
        (_info("hard", tarfile.LNKTYPE, linkname="b/c/deep.txt"), None),  # a hard link: a copy of the file
        (_info("./", tarfile.DIRTYPE, 0o711), None),
        (_info("sym", tarfile.SYMTYPE, linkname="a.txt"), None),
    )
    vault("put", "-", "--tar", "--name", "mixed", input=stream, check=0)
    out = tmp_path / "out"
    vault("get", "mixed", "-o", str(out), check=0)
    assert (out / "a.txt").read_bytes() == b"second wins"
    assert (out / "b" / "c" / "deep.txt").read_bytes() == b"deep"
    assert (out / "hard").read_bytes() == b"deep"
    assert os.readlink(out / "sym") == "a.txt"
    assert stat.S_IMODE((out / "b").stat().st_mode) == 0o750
    assert stat.S_IMODE(out.stat().st_mode) == 0o711
    assert stat.S_IMODE((out / "b" / "c").stat().st_mode) == 0o755  # made up from the names
    assert (out / "a.txt").stat().st_mtime_ns == 1_700_000_000 * 10**9


def test_put_tar_skips_other_kinds_with_exit_3(vault, tmp_path: Path) -> None:
    stream = _tar((_info("fifo", tarfile.FIFOTYPE), None), (_info("dev", tarfile.CHRTYPE), None),
                  (_info("ok.txt"), b"ok"))
    r = vault("put", "-", "--tar", "--name", "odd", input=stream)
    assert r.code == 3, r.err
    assert "fifo" in r.err and "dev" in r.err
    assert parse_json(vault("ls", "odd", "--json"))[0]["name"] == "ok.txt"


@pytest.mark.parametrize("bad", ["/etc/passwd", "../escape.txt", "a/../../b", "ok/../.."])
def test_put_tar_refuses_absolute_and_climbing_names(vault, bad: str) -> None:
    stream = _tar((_info("fine.txt"), b"fine"), (_info(bad), b"evil"))
    assert_error(vault("put", "-", "--tar", "--name", "evil", input=stream), 2)
    assert vault("ls", "--json", check=0).stdout.strip() == "[]"


def test_put_tar_usage_and_input_errors(vault, tmp_path: Path) -> None:
    stream = _tar((_info("f"), b"x"))
    assert_error(vault("put", "-", "--tar", input=stream), 2)  # no --name
    assert_error(vault("put", str(tmp_path), str(tmp_path), "--tar", "--name", "x"), 2)
    assert_error(vault("put", "-", "--tar", "--name", "x", input=b"this is not a tar stream" * 100), 2)
    assert_error(vault("put", "-", "--tar", "--name", "x", input=stream[:700]), 30)  # cut short
    assert_error(vault("put", str(tmp_path / "missing.tar"), "--tar", "--name", "x"), 4)
    assert vault("ls", "--json", check=0).stdout.strip() == "[]"


def test_get_to_tar_stops_with_exit_20_on_damage(vault, tree: Path, tmp_path: Path) -> None:
    vault("put", str(tree), "--compression", "0", check=0)
    place = chunk_places(vault.vault_path, "site/media/video.bin")[2]
    flip_byte(place.pack, place.offset + 64)
    r = vault("get", "site", "-o", "-")
    assert_error(r, 20)
    # What came out before the damage is authenticated data, and the stream has no end-of-archive blocks.
    assert not r.out.endswith(b"\0" * 1024) or len(r.out) < 1024
    with pytest.raises(tarfile.ReadError), tarfile.open(fileobj=io.BytesIO(r.out), mode="r|") as tar:
        for m in tar:
            if m.isfile():
                tar.extractfile(m).read()  # type: ignore[union-attr]


def test_get_dir_to_stdout_streams_a_large_tree(vault, tmp_path: Path) -> None:
    src = tmp_path / "src" / "many"
    for i in range(300):
        write_file(src / f"d{i % 7}" / f"f{i}.txt", b"%d\n" % i)
    vault("put", str(src), check=0)
    started = time.monotonic()
    stream = vault("get", "many", "-o", "-", check=0).out
    assert time.monotonic() - started < 60
    with tarfile.open(fileobj=io.BytesIO(stream)) as tar:
        files = [m for m in tar.getmembers() if m.isfile()]
        assert len(files) == 300
        assert all(tar.extractfile(m).read() == b"%d\n" % int(m.name.split("/f")[1][:-4]) for m in files)  # type: ignore[union-attr]


def test_owners_travel_through_tar_both_ways(vault, tmp_path: Path) -> None:
    """`get -o -` writes the stored owners (ids and names, as tar does); `put --tar` stores the members' owners,
    and an owner a tree could not hold (an id out of range, a name with a control character) is not stored."""
    stream = _tar(
        (_info("./", tarfile.DIRTYPE, 0o755, uid=1234, gid=2345, uname="alice", gname="staff"), None),
        (_info("./a.txt", uid=1234, gid=2345, uname="alice", gname="staff"), b"a\n"),
        (_info("./b.txt", uid=7, gid=8, uname="bad\x01name", gname="ok"), b"b\n"),
        (_info("./big.txt", uid=2**40, gid=3), b"c\n"),
    )
    vault("put", "-", "--tar", "--name", "owned", input=stream, check=0)
    out = vault("get", "owned", "-o", "-", check=0).out
    with tarfile.open(fileobj=io.BytesIO(out), mode="r|") as tar:
        owners = {m.name: (m.uid, m.gid, m.uname, m.gname) for m in tar}
    assert owners["."] == (1234, 2345, "alice", "staff")
    assert owners["a.txt"] == (1234, 2345, "alice", "staff")
    assert owners["b.txt"] == (7, 8, "", "ok")
    assert owners["big.txt"][:2] == (os.getuid(), os.getgid())
    vault("check", "--read-data", check=0)
