"""An S3 server that misbehaves: throttling and 5xx answers are retried through; a server that is gone ends
the command with exit 30 in bounded time and leaves the vault valid; refusals are not retried; credentials
never reach a message or a log.

The faults come from :class:`FaultProxy` (tests/s3_helpers.py), an HTTP proxy in front of moto that answers
chosen requests with an S3 error, and from a closed port on 127.0.0.1 (connections refused).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from helpers import MiB, assert_error, random_bytes
from s3_helpers import FaultProxy, closed_port

BOUND_S = 60.0  # a command against a store that stays unreachable must give up within this


@pytest.fixture
def proxy(s3_server: str) -> Iterator[FaultProxy]:
    with FaultProxy(s3_server) as p:
        yield p


def _data_put(method: str, path: str) -> bool:
    return method == "PUT" and "/data/" in path


def _timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    result = fn(*args, **kwargs)
    return result, time.monotonic() - started


# ----------------------------------------------------------------------------------- retried through


def test_slowdown_answers_are_retried_through(s3_vault, proxy: FaultProxy) -> None:
    """503 SlowDown to the next few requests, whatever they are: put and get succeed all the same."""
    via = s3_vault.via(proxy.endpoint)
    data = random_bytes(3 * MiB, seed=50)
    proxy.fail_next(3, 503, "SlowDown")
    r = via("-vv", "put", "-", "--name", "throttled", input=data, check=0)
    assert proxy.failures == 3
    assert "SlowDown" in r.err and "retrying" in r.err  # the retries are visible with -vv
    proxy.fail_next(2, 503, "SlowDown")
    assert via("get", "throttled", "-o", "-", check=0).out == data
    assert proxy.failures == 5


def test_internal_errors_on_pack_uploads_are_retried_through(s3_vault, proxy: FaultProxy) -> None:
    """500 InternalError to four pack uploads (fewer than the attempts per object): the data restores."""
    via = s3_vault.via(proxy.endpoint)
    data = random_bytes(20 * MiB, seed=51)
    proxy.fail_next(4, 500, "InternalError", "We encountered an internal error. Please try again.", _data_put)
    via("put", "-", "--name", "big", "--compression", "0", input=data, check=0)
    assert proxy.failures == 4
    assert s3_vault("get", "big", "-o", "-", check=0).out == data


def test_a_refusal_is_not_retried(s3_vault, proxy: FaultProxy) -> None:
    """403 AccessDenied would be the same on every attempt: exit 30 at once, with the server's reason."""
    s3_vault("put", "-", "--name", "x", input=b"x", check=0)
    via = s3_vault.via(proxy.endpoint)
    proxy.fail_next(-1, 403, "AccessDenied", "Access Denied", lambda m, p: m == "GET")
    r, elapsed = _timed(via, "get", "x", "-o", "-")
    assert_error(r, 30, "AccessDenied")
    assert proxy.failures == 1
    assert elapsed < 10


def test_init_says_why_it_cannot_create_the_bucket(s3, proxy: FaultProxy) -> None:
    via = s3.via(proxy.endpoint)
    proxy.fail_next(-1, 403, "AccessDenied", "Access Denied", lambda m, p: m == "PUT" and p.strip("/") == s3.bucket)
    r = via("init", "--kdf-memory", "8", "--kdf-time", "1", "--kdf-parallelism", "1")
    assert_error(r, 30, f"cannot create bucket {s3.bucket}: access denied")
    assert "CreateBucket" in r.err  # the hint names the permission
    assert not s3.bucket_exists()


def test_setup_mistakes_are_explained(s3) -> None:
    """No credentials, an unknown profile, a bucket name the store refuses: exit 30, one line saying what
    is wrong, and a hint where there is one to give."""
    no_creds = {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None}
    r = s3("ls", env=no_creds)
    assert_error(r, 30, "Unable to locate credentials")
    assert "vault: hint: set AWS_ACCESS_KEY_ID" in r.err
    assert_error(s3("ls", env={"AWS_PROFILE": "no-such-profile"}), 30, "no-such-profile")
    r = s3("--vault", "s3://ab", "init", "--kdf-memory", "8", "--kdf-time", "1", "--kdf-parallelism", "1")
    assert_error(r, 30, "cannot create bucket ab")
    assert "3 to 63 characters" in r.err


# ------------------------------------------------------------------------------------------ gone


def test_a_server_that_is_gone_is_exit_30_in_bounded_time(s3_vault, tmp_path) -> None:  # type: ignore[no-untyped-def]
    s3_vault("put", "-", "--name", "before", input=b"stored before", check=0)
    gone = s3_vault.via(f"http://127.0.0.1:{closed_port()}")
    src = tmp_path / "file.bin"
    src.write_bytes(random_bytes(100_000, seed=52))
    for args in (("ls",), ("put", str(src)), ("get", "before", "-o", str(tmp_path / "out"))):
        r, elapsed = _timed(gone, "-v", *args)
        assert_error(r, 30)
        assert elapsed < BOUND_S, (args, elapsed)
        assert "could not connect" in r.err.lower(), r.err
        assert "gave up after" in r.err
    assert not (tmp_path / "out").exists()
    # Reachable again: nothing was harmed.
    s3_vault("check", "--read-data", check=0)


def test_a_server_that_dies_during_put_leaves_the_vault_valid(s3_vault, proxy: FaultProxy) -> None:
    """From the first pack upload on, every request fails with 503 (so the put can't even release its
    lock). The put gives up with exit 30 in bounded time; afterwards, with the server back, check passes,
    earlier data restores, the dead put's lock is broken by the next exclusive command, and prune clears
    what the put left behind."""
    s3_vault("put", "-", "--name", "before", input=b"stored before", check=0)
    stored = s3_vault.stored_bytes()
    tripped = []

    def dead_after_first_upload(method: str, path: str) -> bool:
        if not tripped and _data_put(method, path):
            tripped.append(path)
        return bool(tripped)

    proxy.fail_next(-1, 503, "ServiceUnavailable", "Service Unavailable", dead_after_first_upload)
    data = random_bytes(24 * MiB, seed=53)
    r, elapsed = _timed(s3_vault.via(proxy.endpoint), "put", "-", "--name", "during", "--compression", "0",
                        input=data)
    assert_error(r, 30, "gave up after")
    assert elapsed < BOUND_S, elapsed
    assert tripped

    assert s3_vault.keys_of("locks")  # the put could not remove its lock
    s3_vault("check", "--read-data", check=0)
    s3_vault("prune", check=0)
    assert s3_vault.keys_of("locks") == []
    assert s3_vault.stored_bytes() == stored
    # And the same put, tried again, works; what was stored before is still there.
    s3_vault("put", "-", "--name", "during", input=data, check=0)
    assert s3_vault("get", "during", "-o", "-", check=0).out == data
    assert s3_vault("get", "before", "-o", "-", check=0).out == b"stored before"


# ----------------------------------------------------------------------------------------- credentials


def test_credentials_never_appear_in_output_or_logs(s3_vault, proxy: FaultProxy) -> None:
    """Failures of every kind, at full verbosity: neither the secret key nor the access key id shows up
    on standard output or error, in the operation log or in the debug log."""
    via = s3_vault.via(proxy.endpoint)
    results = [via("-vv", "put", "-", "--name", "x", input=b"x")]
    proxy.fail_next(2, 503, "SlowDown")
    results.append(via("-vv", "ls", "--json"))
    proxy.fail_next(-1, 403, "SignatureDoesNotMatch",
                    "The request signature we calculated does not match the signature you provided.")
    results.append(via("-vv", "ls"))
    proxy.fail_next(-1, 403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist.")
    results.append(via("-vv", "get", "x", "-o", "-"))
    results.append(s3_vault.via(f"http://127.0.0.1:{closed_port()}")("-vv", "info"))
    assert [r.code for r in results] == [0, 0, 30, 30, 30]

    files = {p.name: p for p in s3_vault.state_files()}
    assert "vault-debug.log" in files
    assert any(name.endswith(".jsonl") for name in files)
    debug_log = files["vault-debug.log"].read_text()
    assert "retrying" in debug_log and "SlowDown" in debug_log  # the check below has something to read
    s3_vault.assert_no_credentials(*results)


@pytest.mark.parametrize(
    "scheme",
    [
        "s3://",
        "S3://",
    ],
)
def test_credentials_typed_into_the_location_are_not_logged(s3, scheme: str) -> None:
    """A location with credentials in it is refused (exit 2); neither the message nor the operation log
    repeats them."""
    r = s3("--vault", f"{scheme}AKIAIOSFODNN7EXAMPLE:TOPSECRET99@bucket/x", "ls")
    assert_error(r, 2, "credentials do not belong")
    assert "TOPSECRET99" not in r.err
    for path in s3.state_files():
        assert b"TOPSECRET99" not in path.read_bytes(), path
