"""FaultyBackend: transparent when healthy, and each fault does what its docstring says."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from contract import BackendContract
from faulty import FaultyBackend

from vault.errors import ObjectNotFoundError, StorageError, TransientStorageError
from vault.storage import Backend, Handle, Kind
from vault.storage.local import LocalBackend
from vault.storage.memory import MemoryBackend


class TestFaultyContract(BackendContract):
    """With no fault configured the wrapper must be invisible."""

    def make_backend(self) -> Backend:
        return FaultyBackend(MemoryBackend())

    def make_missing_backend(self) -> Backend:
        return FaultyBackend(MemoryBackend(root_exists=False))


def h(name: str, kind: Kind = Kind.DATA) -> Handle:
    return Handle(kind, name)


def test_fail_save_after() -> None:
    store = FaultyBackend(MemoryBackend())
    store.fail_save_after(2)
    store.save(h("aa01"), b"1")
    store.save(h("aa02"), b"2")
    with pytest.raises(StorageError, match="injected fault"):
        store.save(h("aa03"), b"3")
    with pytest.raises(ObjectNotFoundError):
        store.stat(h("aa03"))
    assert store.calls["save"] == 3
    assert store.location == "memory:"


def test_fail_a_limited_number_of_times_with_a_factory() -> None:
    store = FaultyBackend(MemoryBackend())
    store.save(h("aa01"), b"x")
    store.fail_load(lambda: TransientStorageError("slow down"), times=2)
    errors = []
    for _ in range(2):
        with pytest.raises(TransientStorageError) as info:
            store.load(h("aa01"))
        errors.append(info.value)
    assert errors[0] is not errors[1]  # a fresh exception per failure
    assert store.load(h("aa01")) == b"x"


def test_fail_limited_to_kinds() -> None:
    store = FaultyBackend(MemoryBackend())
    store.fail("save", kinds={Kind.INDEX})
    store.save(h("aa01"), b"x")
    with pytest.raises(StorageError):
        store.save(h("aa01", Kind.INDEX), b"x")


@pytest.mark.parametrize("method", ["exists_root", "create_root", "stat", "remove"])
def test_fail_any_method(method: str) -> None:
    store = FaultyBackend(MemoryBackend())
    store.save(h("aa01"), b"x")
    store.fail(method, StorageError("boom"))
    calls: dict[str, Callable[[], object]] = {
        "exists_root": store.exists_root,
        "create_root": store.create_root,
        "stat": lambda: store.stat(h("aa01")),
        "remove": lambda: store.remove(h("aa01")),
    }
    with pytest.raises(StorageError, match="boom"):
        calls[method]()


def test_fail_list_mid_iteration() -> None:
    store = FaultyBackend(MemoryBackend())
    for i in range(5):
        store.save(h(f"aa0{i}"), b"x")
    store.fail_list(after_items=2, times=1)
    seen = []
    with pytest.raises(StorageError):
        for info in store.list(Kind.DATA):
            seen.append(info)
    assert len(seen) == 2
    assert len(list(store.list(Kind.DATA))) == 5


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError):
        FaultyBackend(MemoryBackend()).fail("put")


def test_disk_full_after_bytes() -> None:
    store = FaultyBackend(MemoryBackend())
    store.disk_full_after_bytes(100)
    store.save(h("aa01"), b"x" * 60)
    store.save(h("aa02"), b"x" * 40)
    with pytest.raises(StorageError) as info:
        store.save(h("aa03"), b"x")
    assert str(info.value).endswith("No space left on device")
    assert info.value.exit_code == 30
    assert {i.handle.name for i in store.list(Kind.DATA)} == {"aa01", "aa02"}
    assert store.saved_bytes == 100


def test_half_write_on_a_local_backend_leaves_a_temp_file(tmp_path: Path) -> None:
    local = LocalBackend(tmp_path / "vault")
    local.create_root()
    store = FaultyBackend(local)
    store.half_write(after=1, times=1)
    store.save(h("ab01"), b"fine")
    with pytest.raises(StorageError, match="crash"):
        store.save(h("ab02"), b"0123456789")
    temps = list((tmp_path / "vault" / "data" / "ab").glob(".tmp-*"))
    assert [p.read_bytes() for p in temps] == [b"01234"]
    assert {i.handle.name for i in store.list(Kind.DATA)} == {"ab01"}
    assert local.cleanup_temporary(0) == [f"data/ab/{temps[0].name}"]
    store.save(h("ab02"), b"0123456789")  # times=1: the next save goes through
    assert store.load(h("ab02")) == b"0123456789"


def test_half_write_elsewhere_stores_nothing() -> None:
    store = FaultyBackend(MemoryBackend())
    store.half_write()
    with pytest.raises(StorageError):
        store.save(h("ab02"), b"0123456789")
    assert list(store.list(Kind.DATA)) == []


def test_delay_and_heal() -> None:
    slept: list[float] = []
    store = FaultyBackend(MemoryBackend(), delay_s=0.25, sleep=slept.append)
    store.fail_save_after(0)
    with pytest.raises(StorageError):
        store.save(h("aa01"), b"x")
    store.exists_root()
    assert slept == [0.25, 0.25]
    store.heal()
    store.save(h("aa01"), b"x")
    assert slept == [0.25, 0.25]
    assert store.calls == {"save": 2, "exists_root": 1}
