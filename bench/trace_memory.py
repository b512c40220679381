"""Run `rpm <command>` and write down, every EVERY_SECONDS, what its memory holds (bench/soak.py's
`--trace-memory`, for one of the two workers; the other runs plain, as a control).

    .venv/bin/python bench/trace_memory.py REPORT_FILE EVERY_SECONDS ingest

Cheap enough to leave the worker's speed alone (tracemalloc was not: a traced worker fell two
minutes behind at 500 readings/s): per snapshot, the blocks Python's allocator holds
(`sys.getallocatedblocks`), the C allocator's bytes in use and free-but-kept (glibc
`mallinfo2`), and the object types whose count grew most since the first snapshot, taken after
EVERY_SECONDS (start-up is not growth). Growing Python objects are a leak; flat objects and
blocks under a growing RSS are the allocators keeping what they once used (the worker itself
hands glibc's free pages back every RPM_MEMORY_RETURN_SECONDS, 60 by default).
"""

from __future__ import annotations

import ctypes
import gc
import sys
import threading
import time
import types
from collections import Counter
from pathlib import Path

TOP = 15


class _MallInfo2(ctypes.Structure):
    _FIELDS = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
    _fields_ = [(name, ctypes.c_size_t) for name in _FIELDS.split()]


def _malloc() -> str:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        info = libc.mallinfo2()
    except (OSError, AttributeError):
        return "malloc: (no glibc mallinfo2)"
    mb = 2**20
    return (
        f"malloc: {(info.uordblks + info.hblkhd) / mb:.1f} MB in use, {info.fordblks / mb:.1f} MB free but kept "
        f"({info.arena / mb:.1f} MB in arenas, {info.hblkhd / mb:.1f} MB mapped)"
    )


def _types() -> Counter[str]:
    """Objects by type; functions also by where they were made (a closure piling up names its
    maker)."""
    found: Counter[str] = Counter()
    for o in gc.get_objects():
        found[type(o).__qualname__] += 1
        if isinstance(o, types.FunctionType):
            code = o.__code__
            found[f"{o.__qualname__} ({code.co_filename.rsplit('/', 1)[-1]}:{code.co_firstlineno})"] += 1
    return found


def _watch(report: Path, every: float) -> None:
    time.sleep(every)
    first = _types()
    started = time.monotonic()
    with report.open("a") as out:
        blocks = sys.getallocatedblocks()
        out.write(f"first snapshot: {sum(first.values()):,} objects, {blocks:,} blocks; {_malloc()}\n")
    while True:
        time.sleep(every)
        now = _types()
        grew = sorted(((now[t] - first[t], t) for t in now if now[t] > first[t]), reverse=True)[:TOP]
        with report.open("a") as out:
            out.write(
                f"\n+{time.monotonic() - started:.0f} s: {sum(now.values()):,} objects "
                f"({sum(now.values()) - sum(first.values()):+,}), {sys.getallocatedblocks():,} blocks; {_malloc()}\n"
            )
            out.write("  grew most: " + (", ".join(f"{t} {d:+,}" for d, t in grew) or "nothing") + "\n")


def main() -> int:
    report, every, command = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
    threading.Thread(target=_watch, args=(report, every), name="trace-memory", daemon=True).start()
    from rpm.cli import main as rpm

    return rpm(command)


if __name__ == "__main__":
    sys.exit(main())
