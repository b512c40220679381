"""Process-wide tuning shared by the long-running processes (`rpm api`, `rpm ingest`)."""

from __future__ import annotations

import ctypes
import functools
import gc
import threading


def tune_garbage_collection() -> None:
    """For a server process once started (not for tests that run the app or a worker in-process).

    Everything made by then (modules, the FHIR and pydantic models, the engine) lives as long
    as the process: it is left out of garbage collection. A full collection walked all of it
    every few batches, a quarter of the ingest worker's time, and in the API it was the tail of
    the latency: a worklist page was 3 times slower at p99 than at p50 until frozen.

    A batch of readings, or a page of the worklist, makes tens of thousands of objects that are
    freed by reference counting (none form cycles). With the default threshold of 700 the
    collector walked them again and again: another tenth of the worker's time. Collections
    still run, about once per batch or page.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
    except (OSError, AttributeError):  # musl (Alpine), macOS: no malloc_trim
        return None
    return libc


def return_free_memory() -> bool:
    """Hand the pages glibc's allocator holds free back to the system; False where it cannot.

    A batch of readings or a page of the worklist allocates megabytes and frees them again.
    glibc keeps freed memory for reuse, and what sits between pages still in use it never gives
    back by itself: the process's RSS crept up by a tenth over its first twenty minutes, with no
    more objects alive (docs/performance.md, "Soak"). A trim takes a few milliseconds.
    """
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


class FreeMemoryReturner:
    """`return_free_memory` every `seconds`, on a thread of its own (a long-running process)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.returned = 0  # how many times it ran
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="return-free-memory", daemon=True)

    def start(self) -> FreeMemoryReturner:
        """Start unless switched off (0 seconds) or not on glibc."""
        if self.seconds > 0 and _glibc() is not None:
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            return_free_memory()
            self.returned += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
