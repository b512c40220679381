"""Handing the C allocator's free memory back to the system (rpm.runtime)."""

from __future__ import annotations

import subprocess
import sys

from rpm.config import Settings
from rpm.runtime import FreeMemoryReturner
from tests.fixtures.waiting import wait_until

# In a child process: it fragments its heap on purpose. 100 MB in 64 KiB blocks (below glibc's
# mmap threshold, so from the heap), then one more block above them that keeps free() from
# shrinking the heap by itself, then the 100 MB freed: still resident until handed back.
FRAGMENTED_HEAP = """
import ctypes
from rpm.runtime import return_free_memory

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]

def anonymous_kib():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1])

blocks = [libc.malloc(64 * 1024) for _ in range(1600)]
for block in blocks:
    ctypes.memset(block, 1, 64 * 1024)
pin = libc.malloc(64 * 1024)
ctypes.memset(pin, 1, 64 * 1024)
for block in blocks:
    libc.free(block)
before = anonymous_kib()
returned = return_free_memory()
print(returned, before - anonymous_kib())
"""


def test_free_heap_memory_is_handed_back_to_the_system():
    done = subprocess.run([sys.executable, "-c", FRAGMENTED_HEAP], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    returned, freed_kib = done.stdout.split()
    assert returned == "True"
    assert int(freed_kib) > 80 * 1024  # of the 100 MB freed


async def test_the_returner_runs_on_its_interval_until_stopped():
    returner = FreeMemoryReturner(0.01).start()
    try:
        await wait_until(lambda: returner.returned >= 3, "three rounds of handing memory back")
    finally:
        returner.stop()
    assert not returner._thread.is_alive()


def test_zero_seconds_switches_it_off():
    returner = FreeMemoryReturner(0).start()
    assert not returner._thread.is_alive()
    returner.stop()
    assert returner.returned == 0


def test_the_servers_hand_memory_back_every_minute_unless_told_otherwise(monkeypatch):
    monkeypatch.delenv("RPM_MEMORY_RETURN_SECONDS", raising=False)
    assert Settings().memory_return_seconds == 60
    monkeypatch.setenv("RPM_MEMORY_RETURN_SECONDS", "0")
    assert Settings().memory_return_seconds == 0
    monkeypatch.setenv("RPM_MEMORY_RETURN_SECONDS", "-1")
    try:
        Settings()
    except ValueError as error:
        assert "memory_return_seconds" in str(error)
    else:
        raise AssertionError("a negative interval was taken")
