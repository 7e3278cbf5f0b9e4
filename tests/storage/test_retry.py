"""RetryingBackend: retries transient failures only, backs off with jitter, and gives up clearly."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from contract import BackendContract
from faulty import FaultyBackend

from vault.errors import ObjectNotFoundError, StorageError, TransientStorageError
from vault.storage import Backend, Handle, Kind
from vault.storage.memory import MemoryBackend
from vault.storage.retry import RetryingBackend

H = Handle(Kind.DATA, "ab01")


class TestRetryingContract(BackendContract):
    def make_backend(self) -> Backend:
        return RetryingBackend(MemoryBackend(), sleep=lambda s: None)

    def make_missing_backend(self) -> Backend:
        return RetryingBackend(MemoryBackend(root_exists=False), sleep=lambda s: None)


def transient() -> TransientStorageError:
    return TransientStorageError(
        "cannot write <data/ab01> in memory: SlowDown: Please reduce your request rate"
    )


def wrapped(attempts: int = 5) -> tuple[RetryingBackend, FaultyBackend, list[float]]:
    slept: list[float] = []
    faulty = FaultyBackend(MemoryBackend())
    faulty.save(H, b"stored")
    faulty.calls.clear()
    return RetryingBackend(faulty, attempts=attempts, sleep=slept.append), faulty, slept


def test_location_passes_through() -> None:
    assert RetryingBackend(MemoryBackend()).location == "memory:"


def test_transient_failures_are_retried_until_success() -> None:
    store, faulty, slept = wrapped()
    faulty.fail_save_after(0, transient, times=2)
    store.save(H, b"new")
    assert faulty.calls["save"] == 3
    assert len(slept) == 2
    assert 0.05 <= slept[0] <= 0.1 and 0.1 <= slept[1] <= 0.2
    assert store.load(H) == b"new"


@pytest.mark.parametrize("method", ["exists_root", "create_root", "load", "stat", "remove", "save"])
def test_every_method_is_retried(method: str) -> None:
    store, faulty, _ = wrapped()
    faulty.fail(method, transient, times=1)
    calls: dict[str, Callable[[], object]] = {
        "exists_root": store.exists_root,
        "create_root": store.create_root,
        "load": lambda: store.load(H),
        "stat": lambda: store.stat(H),
        "remove": lambda: store.remove(H),
        "save": lambda: store.save(H, b"x"),
    }
    calls[method]()
    assert faulty.calls[method] == 2


@pytest.mark.parametrize(
    "error", [StorageError("disk full"), ObjectNotFoundError("<data/ab01> not found in memory:")]
)
def test_other_errors_are_not_retried(error: StorageError) -> None:
    store, faulty, slept = wrapped()
    faulty.fail_load(error)
    with pytest.raises(type(error)) as info:
        store.load(H)
    assert info.value is error
    assert faulty.calls["load"] == 1
    assert slept == []


def test_exhaustion_raises_a_permanent_storage_error() -> None:
    store, faulty, slept = wrapped(attempts=4)
    faulty.fail_load(transient)
    with pytest.raises(StorageError) as info:
        store.load(H)
    error = info.value
    assert type(error) is StorageError  # not transient: an outer retry loop must not multiply attempts
    assert error.exit_code == 30
    assert "gave up after 4 attempts" in str(error)
    assert "SlowDown" in str(error)
    assert isinstance(error.__cause__, TransientStorageError)
    assert faulty.calls["load"] == 4
    assert len(slept) == 3


def test_backoff_is_exponential_capped_and_jittered() -> None:
    store = RetryingBackend(MemoryBackend(), base_delay=1.0, max_delay=4.0)
    for retry, (low, high) in enumerate([(0.5, 1), (1, 2), (2, 4), (2, 4), (2, 4)]):
        delays = [store.delay(retry) for _ in range(50)]
        assert all(low <= d <= high for d in delays), retry
        assert len(set(delays)) > 1  # jitter


def test_list_restarts_without_repeating_names() -> None:
    store, faulty, slept = wrapped()
    for i in range(5):
        faulty.save(Handle(Kind.INDEX, f"aa0{i}"), b"x")
    faulty.fail_list(transient, after_items=2, times=2)
    names = [info.handle.name for info in store.list(Kind.INDEX)]
    assert sorted(names) == [f"aa0{i}" for i in range(5)]
    assert faulty.calls["list"] == 3
    assert len(slept) == 2


def test_list_gives_up_too() -> None:
    store, faulty, _ = wrapped(attempts=2)
    faulty.fail_list(transient)
    with pytest.raises(StorageError, match="gave up after 2 attempts"):
        list(store.list(Kind.DATA))


@pytest.mark.parametrize("kwargs", [{"attempts": 0}, {"base_delay": -1.0}, {"max_delay": -1.0}])
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryingBackend(MemoryBackend(), **kwargs)  # type: ignore[arg-type]
