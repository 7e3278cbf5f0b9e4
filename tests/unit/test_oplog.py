"""The operation log behind `vault log`: round trip, rotation, corruption, permissions, never failing."""

from __future__ import annotations

import hashlib
import json
import re
import stat
import threading
from pathlib import Path

from vault.errors import AuthenticationError
from vault.oplog import (
    OperationLog,
    OpRecord,
    default_log_dir,
    format_error,
    redact,
    utc_now_iso,
    vault_key,
)

LOCATION = "/home/alice/secret-project/vault"


def rec(i: int, **kw: object) -> OpRecord:
    fields: dict[str, object] = {
        "time": f"2026-11-25T01:02:{i % 60:02d}.000Z",
        "command": "put",
        "outcome": "success",
        "exit_code": 0,
        "duration_s": 0.5 + i,
        "bytes": 1000 * i,
        "error": None,
        "location": LOCATION,
        "extra": {"i": i},
    }
    fields.update(kw)
    return OpRecord(**fields)  # type: ignore[arg-type]


def test_round_trip(tmp_path: Path) -> None:
    log = OperationLog(LOCATION, base_dir=tmp_path)
    records = [
        rec(1),
        rec(2, command="get", outcome="error", exit_code=12, bytes=None, error="AuthenticationError: wrong"),
        rec(3, command="repair", outcome="partial", exit_code=3, extra={"actions": ["rebuilt index"]}),
    ]
    for r in records:
        log.append(r)
    assert log.read() == records
    # A fresh object for the same location reads the same file.
    assert OperationLog(LOCATION, base_dir=tmp_path).read() == records


def test_one_json_line_per_record_with_contract_keys(tmp_path: Path) -> None:
    log = OperationLog(LOCATION, base_dir=tmp_path)
    log.append(rec(1))
    log.append(rec(2))
    lines = log.path.read_bytes().splitlines()
    assert len(lines) == 2
    data = json.loads(lines[0])
    assert {"time", "command", "outcome", "exit_code", "duration_s", "bytes", "error"} <= data.keys()


def test_file_name_hides_location(tmp_path: Path) -> None:
    log = OperationLog(LOCATION, base_dir=tmp_path)
    expected = hashlib.sha256(LOCATION.encode()).hexdigest()[:32]
    assert vault_key(LOCATION) == expected
    assert log.path == tmp_path / f"{expected}.jsonl"
    assert "secret-project" not in log.path.name
    assert OperationLog("s3://bucket/other", base_dir=tmp_path).path != log.path


def test_default_directory_is_user_state_logs() -> None:
    log = OperationLog(LOCATION)
    assert log.path.parent == default_log_dir()
    assert default_log_dir().name == "logs"
    assert default_log_dir().parent.name == "vault"


def test_read_without_log_is_empty(tmp_path: Path) -> None:
    assert OperationLog(LOCATION, base_dir=tmp_path / "nothing").read() == []


def test_read_n_most_recent_oldest_first(tmp_path: Path) -> None:
    log = OperationLog(LOCATION, base_dir=tmp_path)
    records = [rec(i) for i in range(10)]
    for r in records:
        log.append(r)
    assert log.read(3) == records[-3:]
    assert log.read(1) == records[-1:]
    assert log.read(100) == records
    assert log.read(0) == []
    assert log.read(-5) == []


def test_rotation(tmp_path: Path) -> None:
    line_size = len(json.dumps(rec(10).to_json(), separators=(",", ":"))) + 1
    max_bytes = line_size * 4
    log = OperationLog(LOCATION, base_dir=tmp_path, max_bytes=max_bytes, keep=2)
    records = [rec(i) for i in range(10, 40)]
    for r in records:
        log.append(r)
    rotated = [log.path.with_name(log.path.name + f".{n}") for n in (1, 2, 3)]
    assert log.path.exists() and rotated[0].exists() and rotated[1].exists()
    assert not rotated[2].exists()
    for path in (log.path, rotated[0], rotated[1]):
        assert 0 < path.stat().st_size <= max_bytes
    kept = log.read()
    # What is kept is the most recent run of records, in order, ending with the last one.
    assert kept == records[-len(kept) :]
    assert len(kept) >= 8
    # n spanning the current and a rotated file
    assert log.read(6) == records[-6:]


def test_rotation_keep_zero_truncates(tmp_path: Path) -> None:
    log = OperationLog(LOCATION, base_dir=tmp_path, max_bytes=200, keep=0)
    for i in range(10):
        log.append(rec(i))
    assert log.read()[-1] == rec(9)
    assert not log.path.with_name(log.path.name + ".1").exists()


def test_corrupt_lines_are_skipped(tmp_path: Path) -> None:
    log = OperationLog(LOCATION, base_dir=tmp_path)
    log.append(rec(1))
    with open(log.path, "ab") as f:
        f.write(b"not json at all\n")
        f.write(b'{"time": "x", "command": "put"\n')  # truncated
        f.write(b"[1, 2, 3]\n")  # not an object
        f.write(b'{"time": 1, "command": "put", "outcome": "success", "exit_code": 0, "duration_s": 1}\n')
        f.write(b'{"time": "t", "command": "put", "outcome": "ok", "exit_code": true, "duration_s": 1}\n')
        f.write(b"\xff\xfe\n")
        f.write(b"\n")
    log.append(rec(2))
    assert log.read() == [rec(1), rec(2)]


def test_minimal_record_is_read_with_defaults(tmp_path: Path) -> None:
    log = OperationLog(LOCATION, base_dir=tmp_path)
    log.path.parent.mkdir(parents=True, exist_ok=True)
    log.path.write_bytes(
        b'{"time":"2026-01-01T00:00:00.000Z","command":"ls","outcome":"success","exit_code":0,"duration_s":1}\n'
    )
    (r,) = log.read()
    assert r.command == "ls" and r.duration_s == 1.0 and r.bytes is None and r.error is None and r.extra == {}


def test_modes_0600_and_0700(tmp_path: Path) -> None:
    base = tmp_path / "state" / "vault" / "logs"
    log = OperationLog(LOCATION, base_dir=base)
    log.append(rec(1))
    assert stat.S_IMODE(log.path.stat().st_mode) == 0o600
    for directory in (base, base.parent, base.parent.parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_existing_loose_file_is_tightened(tmp_path: Path) -> None:
    log = OperationLog(LOCATION, base_dir=tmp_path)
    log.path.write_bytes(b"")
    log.path.chmod(0o644)
    log.append(rec(1))
    assert stat.S_IMODE(log.path.stat().st_mode) == 0o600


def test_unwritable_log_directory_does_not_raise(tmp_path: Path) -> None:
    # A regular file where the directory should be: mkdir and open fail even for root.
    blocker = tmp_path / "blocker"
    blocker.write_text("I am a file")
    for base in (blocker, blocker / "logs"):
        log = OperationLog(LOCATION, base_dir=base)
        log.append(rec(1))  # must not raise
        assert log.read() == []
    assert blocker.read_text() == "I am a file"


def test_unserializable_record_does_not_raise(tmp_path: Path) -> None:
    log = OperationLog(LOCATION, base_dir=tmp_path)
    log.append(rec(1, duration_s=float("nan")))  # not valid JSON: dropped, not raised
    log.append(rec(2, extra={"path": Path("/x"), "obj": object()}))  # stringified
    (r,) = log.read()
    assert r.extra["path"] == "/x"


def test_concurrent_appends_keep_every_line_whole(tmp_path: Path) -> None:
    log = OperationLog(LOCATION, base_dir=tmp_path)

    def worker(t: int) -> None:
        for i in range(50):
            log.append(rec(i, command=f"t{t}", extra={"pad": "x" * 200}))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = log.read()
    assert len(records) == 400
    assert len(log.path.read_bytes().splitlines()) == 400


def test_append_redacts_given_secrets(tmp_path: Path) -> None:
    log = OperationLog(LOCATION, base_dir=tmp_path)
    secret = b"hunter2-password"
    log.append(
        rec(1, error="AuthenticationError: bad hunter2-password", extra={"note": ["x hunter2-password y"]}),
        secrets=[secret],
    )
    raw = log.path.read_bytes()
    assert b"hunter2" not in raw
    (r,) = log.read()
    assert r.error == "AuthenticationError: bad ***"
    assert r.extra == {"note": ["x *** y"]}


def test_redact() -> None:
    assert redact("pw is hunter2!", [b"hunter2"]) == "pw is ***!"
    assert redact("a hunter2 b hunter2", [b"hunter2"]) == "a *** b ***"
    assert redact("one two", [b"one", b"two"]) == "*** ***"
    assert redact("nothing here", [b"absent"]) == "nothing here"
    assert redact("short a", [b"a"]) == "short ***"  # any non-empty secret
    assert redact("text", [b""]) == "text"
    assert redact("text", []) == "text"
    # the longer secret first: no half-visible remainder
    assert redact("key=abcdef", [b"abc", b"abcdef"]) == "key=***"
    # non-ASCII and undecodable secrets
    assert redact("pässwörd here", ["pässwörd".encode()]) == "*** here"
    undecodable = b"\xffpw1"
    assert redact("x " + undecodable.decode("utf-8", "surrogateescape"), [undecodable]) == "x ***"
    assert redact("x pw1", [undecodable]) == "x ***"


def test_redact_leaves_a_secret_inside_a_path_or_a_word() -> None:
    """Issue 18, item 3: a short password (``main``) used to be replaced wherever it occurred, so every path
    through ``/work/main/`` came out as ``/work/***/`` in the log. A secret is redacted where it stands as a word
    of its own; inside a path or a longer word it is something else."""
    assert redact("cannot read /work/main/vault/x.py", [b"main"]) == "cannot read /work/main/vault/x.py"
    assert redact("domain remained mainly", [b"main"]) == "domain remained mainly"
    assert redact("main/x and x/main", [b"main"]) == "main/x and x/main"
    assert redact("password main was wrong", [b"main"]) == "password *** was wrong"
    assert redact("'main' main. (main) main=main", [b"main"]) == "'***' ***. (***) ***=***"
    assert redact("main", [b"main"]) == "***"


def test_format_error_and_time() -> None:
    assert (
        format_error(AuthenticationError("wrong password\nsecond line"))
        == "AuthenticationError: wrong password"
    )
    assert format_error(KeyboardInterrupt()) == "KeyboardInterrupt"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", utc_now_iso())


def test_the_rotation_lock_never_follows_a_link(tmp_path: Path) -> None:
    """Issue 18, item 7d: the lock file beside the log (``<key>.jsonl.lock``, in VAULT_LOG_DIR) was opened with
    O_CREAT but without O_NOFOLLOW, so a link planted there made vault create (or open) whatever it pointed at.
    Now the link is refused; the record is still written, only that rotation waits."""
    log = OperationLog(LOCATION, base_dir=tmp_path / "logs")
    log.base_dir.mkdir()
    target = tmp_path / "elsewhere" / "created-through-the-link"
    target.parent.mkdir()
    lock = log.path.with_name(log.path.name + ".lock")
    lock.symlink_to(target)
    log.append(rec(1))
    assert not target.exists()
    assert lock.is_symlink()
    assert [r.extra for r in log.read()] == [{"i": 1}]
