"""Process-wide tuning shared by the long-running processes (`rpm api`, `rpm ingest`)."""

from __future__ import annotations

import gc


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
