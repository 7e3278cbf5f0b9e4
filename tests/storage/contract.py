"""The conformance suite every Backend passes (restic's backend test.Suite, keyring's BackendBasicTests).

Subclass it as ``class TestSomething(BackendContract)`` and implement the two hooks; use an autouse fixture
in the subclass for whatever the hooks need (a temporary directory, a moto server).
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable

import pytest

from vault.errors import ObjectNotFoundError, StorageError
from vault.storage import CONFIG_NAME, Backend, Handle, Kind, ObjectInfo

MIB = 1 << 20


def hex_name(n: int = 16) -> str:
    return secrets.token_hex(n)


def handle(kind: Kind, name: str | None = None) -> Handle:
    if kind is Kind.CONFIG:
        return Handle(kind, CONFIG_NAME)
    return Handle(kind, name or hex_name())


def listed(backend: Backend, kind: Kind) -> dict[str, int]:
    """``list(kind)`` as {name: size}, checking that no name comes twice and every kind is right."""
    result: dict[str, int] = {}
    for info in backend.list(kind):
        assert isinstance(info, ObjectInfo)
        assert info.handle.kind is kind
        assert info.handle.name not in result, "listed twice"
        result[info.handle.name] = info.size
    return result


PARTIAL = bytes(range(256)) * 40  # 10240 bytes, every offset distinguishable modulo 256


class BackendContract:
    """Tests of every method of the Backend protocol."""

    def make_backend(self) -> Backend:
        """A fresh, empty backend whose root exists."""
        raise NotImplementedError

    def make_missing_backend(self) -> Backend:
        """A fresh backend whose root (directory, bucket) does not exist yet."""
        raise NotImplementedError

    @pytest.fixture
    def backend(self) -> Backend:
        return self.make_backend()

    # -- round trips ---------------------------------------------------------------------------------

    def test_location_is_printable(self, backend: Backend) -> None:
        assert isinstance(backend.location, str) and backend.location

    @pytest.mark.parametrize("size", [0, 1, 4097, 5 * MIB], ids=["empty", "1B", "4097B", "5MiB"])
    def test_round_trip(self, backend: Backend, size: int) -> None:
        h = handle(Kind.DATA)
        data = os.urandom(size)
        backend.save(h, data)
        loaded = backend.load(h)
        assert type(loaded) is bytes
        assert loaded == data
        assert backend.stat(h) == ObjectInfo(h, size)

    def test_save_accepts_any_buffer(self, backend: Backend) -> None:
        data = os.urandom(1000)
        wrappers: list[Callable[[bytes], bytes | bytearray | memoryview]] = [
            bytearray,
            memoryview,
            lambda b: memoryview(b"xx" + b + b"yy")[2:-2],  # a slice: offset into a larger buffer
        ]
        for i, wrap in enumerate(wrappers):
            h = handle(Kind.INDEX)
            backend.save(h, wrap(data))
            assert backend.load(h) == data, i

    def test_partial_load(self, backend: Backend) -> None:
        h = handle(Kind.DATA)
        backend.save(h, PARTIAL)
        cases: list[tuple[int, int | None]] = [
            (0, None),
            (10, None),
            (0, 10),
            (100, 50),
            (255, 257),
            (10230, 100),  # runs past the end: the 10 bytes that exist
            (10239, None),
            (10240, None),  # exactly at the end
            (10240, 5),
            (20000, 10),  # far past the end
            (20000, None),
            (5, 0),
            (0, 1 << 40),  # "up to 1 TiB" must not try to allocate it
        ]
        for offset, length in cases:
            end = None if length is None else offset + length
            assert backend.load(h, offset, length) == PARTIAL[offset:end], (offset, length)

    def test_partial_load_of_empty_object(self, backend: Backend) -> None:
        h = handle(Kind.DATA)
        backend.save(h, b"")
        assert backend.load(h, 0, 10) == b""
        assert backend.load(h, 5) == b""
        assert backend.load(h, 0, 0) == b""

    def test_negative_offset_or_length_is_refused(self, backend: Backend) -> None:
        h = handle(Kind.DATA)
        backend.save(h, b"abc")
        for offset, length in [(-1, None), (0, -1), (-5, 3)]:
            with pytest.raises(ValueError):
                backend.load(h, offset, length)

    def test_overwrite_replaces(self, backend: Backend) -> None:
        for sizes in [(3000, 10), (10, 3000)]:  # shrink, grow
            h = handle(Kind.LOCKS)
            first, second = os.urandom(sizes[0]), os.urandom(sizes[1])
            backend.save(h, first)
            backend.save(h, second)
            assert backend.load(h) == second
            assert backend.stat(h).size == len(second)
            backend.remove(h)
        h = handle(Kind.LOCKS)
        backend.save(h, b"one")
        backend.save(h, b"two!")
        assert listed(backend, Kind.LOCKS) == {h.name: 4}

    # -- every kind ----------------------------------------------------------------------------------

    def test_every_kind_round_trips(self, backend: Backend) -> None:
        for kind in Kind:
            h = handle(kind)
            data = os.urandom(123)
            backend.save(h, data)
            assert backend.load(h) == data, kind
            assert backend.load(h, 3, 4) == data[3:7], kind
            assert backend.stat(h) == ObjectInfo(h, 123), kind
            assert listed(backend, kind) == {h.name: 123}, kind
            backend.remove(h)
            assert listed(backend, kind) == {}, kind

    def test_list_shows_only_its_kind(self, backend: Backend) -> None:
        saved: dict[Kind, dict[str, int]] = {}
        for i, kind in enumerate(Kind):
            names = [CONFIG_NAME] if kind is Kind.CONFIG else [hex_name() for _ in range(3)]
            saved[kind] = {}
            for j, name in enumerate(names):
                size = 10 * i + j
                backend.save(Handle(kind, name), os.urandom(size))
                saved[kind][name] = size
        for kind in Kind:
            assert listed(backend, kind) == saved[kind], kind

    def test_list_walks_data_fan_out(self, backend: Backend) -> None:
        names = ["00" + hex_name(), "ff" + hex_name(), "3f" + hex_name(), "3f" + hex_name(), "ab", "abc"]
        expected = {}
        for i, name in enumerate(names):
            backend.save(Handle(Kind.DATA, name), b"x" * i)
            expected[name] = i
        assert listed(backend, Kind.DATA) == expected

    def test_empty_store_lists_nothing(self, backend: Backend) -> None:
        for kind in Kind:
            assert listed(backend, kind) == {}

    # -- stat, remove, missing objects ---------------------------------------------------------------

    def test_stat_sizes(self, backend: Backend) -> None:
        for size in (0, 1, 65536):
            h = handle(Kind.KEYS)
            backend.save(h, os.urandom(size))
            assert backend.stat(h) == ObjectInfo(h, size)

    def test_a_second_save_under_one_name_lists_with_another_tag(self, backend: Backend) -> None:
        """The cache reads an object again when its tag changed: a backend that reports tags must report a new
        one for every save (objects never change in place; a changed one was written again)."""
        h = handle(Kind.VERSIONS)
        backend.save(h, b"first")
        (first,) = [i for i in backend.list(Kind.VERSIONS) if i.handle == h]
        backend.save(h, b"other")
        (second,) = [i for i in backend.list(Kind.VERSIONS) if i.handle == h]
        assert first.tag == backend.stat(h).tag or not first.tag or backend.stat(h).tag == second.tag
        if first.tag or second.tag:
            assert first.tag != second.tag and backend.stat(h).tag == second.tag

    def test_remove(self, backend: Backend) -> None:
        keep, gone = handle(Kind.DATA), handle(Kind.DATA)
        backend.save(keep, b"keep")
        backend.save(gone, b"gone")
        backend.remove(gone)
        assert listed(backend, Kind.DATA) == {keep.name: 4}
        with pytest.raises(ObjectNotFoundError):
            backend.load(gone)
        with pytest.raises(ObjectNotFoundError):
            backend.remove(gone)
        assert backend.load(keep) == b"keep"

    def test_missing_object_is_not_found(self, backend: Backend) -> None:
        backend.save(handle(Kind.DATA, "ab"), b"a neighbour in the same fan-out directory")
        calls: dict[str, Callable[[Handle], object]] = {
            "load": lambda h: backend.load(h),
            "load_range": lambda h: backend.load(h, 5, 10),
            "load_nothing": lambda h: backend.load(h, 0, 0),
            "stat": backend.stat,
            "remove": backend.remove,
        }
        for kind in Kind:
            h = handle(kind, "ab" + hex_name())
            for op, call in calls.items():
                with pytest.raises(ObjectNotFoundError) as info:
                    call(h)
                message = str(info.value)
                assert isinstance(info.value, StorageError), (kind, op)
                assert info.value.exit_code == 30, (kind, op)
                assert str(h) in message and "\n" not in message, (kind, op, message)

    def test_invalid_names_are_refused(self, backend: Backend) -> None:
        cases = [
            (Kind.DATA, ""),
            (Kind.DATA, "a"),  # too short for the fan-out
            (Kind.DATA, "../../etc/passwd"),
            (Kind.KEYS, "ABCDEF"),
            (Kind.INDEX, "ab/cd"),
            (Kind.LOCKS, ".tmp-abcd"),
            (Kind.VERSIONS, "abc\x00"),
            (Kind.CONFIG, "other"),
            (Kind.CONFIG, "abcd"),
        ]
        calls: list[Callable[[Handle], object]] = [
            lambda h: backend.save(h, b"x"),
            backend.load,
            backend.stat,
            backend.remove,
        ]
        for kind, name in cases:
            for call in calls:
                with pytest.raises(ValueError):
                    call(Handle(kind, name))
        for kind in Kind:
            assert listed(backend, kind) == {}

    # -- threads -------------------------------------------------------------------------------------

    def test_concurrent_saves_of_distinct_objects(self, backend: Backend) -> None:
        payloads = {hex_name(): os.urandom(4096 + i) for i in range(64)}
        items = list(payloads.items())
        errors: list[BaseException] = []

        def worker(part: list[tuple[str, bytes]]) -> None:
            try:
                for name, data in part:
                    backend.save(Handle(Kind.DATA, name), data)
            except BaseException as e:  # surfaced below, in the test's thread
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(items[i::8],)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert listed(backend, Kind.DATA) == {name: len(data) for name, data in payloads.items()}
        for name, data in payloads.items():
            assert backend.load(Handle(Kind.DATA, name)) == data

    def test_concurrent_saves_of_one_name_never_mix(self, backend: Backend) -> None:
        h = handle(Kind.LOCKS)
        payloads = [bytes([i]) * (20000 + i) for i in range(8)]
        errors: list[BaseException] = []

        def worker(data: bytes) -> None:
            try:
                for _ in range(5):
                    backend.save(h, data)
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(p,)) for p in payloads]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert backend.load(h) in payloads  # whole, from exactly one writer
        assert listed(backend, Kind.LOCKS) == {h.name: backend.stat(h).size}

    # -- the root ------------------------------------------------------------------------------------

    def test_create_root_is_idempotent(self, backend: Backend) -> None:
        assert backend.exists_root()
        h = handle(Kind.CONFIG)
        backend.save(h, b"cfg")
        backend.create_root()
        backend.create_root()
        assert backend.exists_root()
        assert backend.load(h) == b"cfg"

    def test_missing_root(self) -> None:
        backend = self.make_missing_backend()
        assert not backend.exists_root()
        h = handle(Kind.DATA)
        with pytest.raises(ObjectNotFoundError):
            backend.load(h)
        with pytest.raises(ObjectNotFoundError):
            backend.stat(h)
        for kind in Kind:
            assert listed(backend, kind) == {}
        with pytest.raises(StorageError) as info:
            backend.save(h, b"data")
        assert not isinstance(info.value, ObjectNotFoundError)
        assert not backend.exists_root()
        backend.create_root()
        backend.create_root()
        assert backend.exists_root()
        backend.save(h, b"data")
        assert backend.load(h) == b"data"
