"""MemoryBackend: the contract, plus the copies it keeps."""

from __future__ import annotations

from contract import BackendContract

from vault.storage import Backend, Handle, Kind
from vault.storage.memory import MemoryBackend


class TestMemoryContract(BackendContract):
    def make_backend(self) -> Backend:
        return MemoryBackend()

    def make_missing_backend(self) -> Backend:
        return MemoryBackend(root_exists=False)


def test_location() -> None:
    assert MemoryBackend().location == "memory:"


def test_stores_a_copy_of_the_callers_buffer() -> None:
    backend = MemoryBackend()
    h = Handle(Kind.DATA, "ab01")
    buffer = bytearray(b"original")
    backend.save(h, buffer)
    buffer[:] = b"changed!"
    assert backend.load(h) == b"original"


def test_list_is_a_snapshot() -> None:
    backend = MemoryBackend()
    for name in ("aa", "bb"):
        backend.save(Handle(Kind.INDEX, name), b"x")
    seen = []
    for info in backend.list(Kind.INDEX):  # saving while listing must not break the iteration
        seen.append(info.handle.name)
        backend.save(Handle(Kind.INDEX, "cc" + info.handle.name), b"y")
    assert sorted(seen) == ["aa", "bb"]
