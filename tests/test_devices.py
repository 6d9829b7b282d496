"""devices: what the process runs on, and the memory it holds."""

import sys

import pytest

from imdb_rnn.devices import release_free_memory


def _resident_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_release_free_memory_hands_freed_heap_back_to_the_system():
    """Memory freed on the C heap (below a block still in use) stays resident until
    `release_free_memory`, which hands it back."""
    chunks = [bytearray(64 * 1024) for _ in range(3200)]  # 200 MB in heap blocks
    still_used = bytearray(64 * 1024)  # above them: the heap's top cannot shrink by itself
    del chunks
    freed = _resident_mb()
    release_free_memory()
    assert _resident_mb() < freed - 150
    assert len(still_used) == 64 * 1024
