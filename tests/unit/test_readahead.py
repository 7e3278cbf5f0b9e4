"""BlockReader (vault/storage/readahead.py): small reads served from aligned blocks, read ahead, shared."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from vault.errors import TransientStorageError
from vault.storage.readahead import BlockReader

DATA = random.Random(7).randbytes(10_000)


class Store:
    def __init__(self, data: bytes = DATA, delay: float = 0.0) -> None:
        self.data = data
        self.delay = delay
        self.calls: list[tuple[str, int, int]] = []
        self.fail_next = 0
        self.lock = threading.Lock()

    def fetch(self, key: str, offset: int, length: int) -> bytes:
        with self.lock:
            self.calls.append((key, offset, length))
            if self.fail_next:
                self.fail_next -= 1
                raise TransientStorageError("flaky")
        time.sleep(self.delay)
        return self.data[offset : offset + length]


@pytest.mark.parametrize("block", [1, 7, 100, 4096, 20_000])
def test_every_range_reads_like_a_slice(block: int) -> None:
    store = Store()
    reader = BlockReader(store.fetch, block, capacity=4, ahead=2)
    rng = random.Random(block)
    for _ in range(300):
        offset = rng.randrange(0, 10_500)
        length = rng.randrange(1, 3 * block + 50)
        assert reader.read("k", offset, length) == DATA[offset : offset + length]
    reader.close()


def test_sequential_reads_fetch_each_block_once_and_read_ahead() -> None:
    store = Store()
    reader = BlockReader(store.fetch, 1000, capacity=6, ahead=2)
    for offset in range(0, 10_000, 250):
        assert reader.read("k", offset, 250) == DATA[offset : offset + 250]
    reader.close()
    offsets = sorted(o for _, o, _ in store.calls)
    assert offsets == sorted(set(offsets)), "a block was fetched twice"
    assert set(offsets) >= {i * 1000 for i in range(10)}
    # The ten blocks, and past the end at most the blocks read ahead from the last one (their GETs may start
    # before the short block that shows the end has come back; each then answers b"").
    assert len(offsets) <= 10 + reader.ahead


def test_threads_needing_one_block_share_one_fetch() -> None:
    store = Store(delay=0.05)
    reader = BlockReader(store.fetch, 4096, capacity=4, ahead=0)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: reader.read("k", i * 10, 10), range(8)))
    assert results == [DATA[i * 10 : i * 10 + 10] for i in range(8)]
    assert store.calls == [("k", 0, 4096)]


def test_a_failed_fetch_is_not_cached_and_a_retry_fetches_again() -> None:
    store = Store()
    reader = BlockReader(store.fetch, 1000, capacity=4, ahead=0)
    store.fail_next = 1
    with pytest.raises(TransientStorageError):
        reader.read("k", 10, 10)
    assert reader.read("k", 10, 10) == DATA[10:20]
    assert len(store.calls) == 2


def test_forget_drops_an_objects_blocks_and_capacity_bounds_the_cache() -> None:
    store = Store()
    reader = BlockReader(store.fetch, 1000, capacity=3, ahead=0)
    reader.read("a", 0, 10)
    reader.read("b", 0, 10)
    reader.forget("a")
    reader.read("a", 0, 10)
    assert [c[0] for c in store.calls] == ["a", "b", "a"]
    for key in "cdef":
        reader.read(key, 0, 10)
    assert len(reader._blocks) == 3


def test_keys_are_separate_and_past_the_end_is_empty() -> None:
    reader = BlockReader(Store().fetch, 1000, capacity=4, ahead=1)
    assert reader.read("x", 20_000, 5) == b""
    assert reader.read("y", 9_990, 100) == DATA[9_990:]
    reader.close()
    assert reader.read("z", 0, 3) == DATA[:3]  # still works after close, without read-ahead


def test_capacity_must_leave_room_for_the_blocks_read_ahead() -> None:
    with pytest.raises(ValueError):
        BlockReader(Store().fetch, 1000, capacity=2, ahead=1)
