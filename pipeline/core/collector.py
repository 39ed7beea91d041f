"""Python's cyclic garbage collector in a long-running process (worker, web app,
scheduler, `hotline run`).

The stages and intake allocate many short-lived rows per batch. With Python's
thresholds (700, 10, 10) the collector ran about 750 times per 15,000 reports in a
worker and took 5% of its CPU, mostly scanning again the long-lived objects of the
imports and caches; in the web app taking an import of 20,000 reports, ten full
collections took 1.4 s, 140 ms each, every request waiting meanwhile (measured with
`gc.callbacks`). What start-up made is frozen (never scanned again) and the
collector runs every 10,000 allocations, the older generations rarely: in a worker,
28 runs of about 5 ms took a fifth of what they did.
"""

from __future__ import annotations

import gc

THRESHOLDS = (10_000, 50, 100)


def settle_collector() -> None:
    """Collect once, freeze what is left (start-up's modules, settings, caches' first
    contents) and set `THRESHOLDS`: call when a process has started, before its work."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
