"""Keeping Python's cyclic garbage collector out of the way of ingest.

A running collector holds about a million long-lived objects (compiled queries, their index, models,
caches). CPython's full collections walk all of them each time enough young objects survive, and
ingest allocates many (posts, matches, payloads): on the ingest benchmark that was about a sixth of the
CPU, for almost no garbage found. `settle` collects once, then freezes what is left (`gc.freeze`) so
later collections only walk objects made since. Frozen objects are still freed by reference counting;
only a frozen object that later becomes part of an unreachable cycle would stay (compiled queries and
their index hold no cycles: tests/test_heap.py checks it).

`relax` then collects young objects every YOUNG allocations instead of CPython's 700: a batch keeps
thousands of small objects alive while it is matched (each post's words and positions), and every
young collection walked them again — a third of the time of matching. Nearly all garbage here is freed
by reference counting anyway; the rare cycle waits a little longer.
"""

from __future__ import annotations

import gc

YOUNG = 50_000  # container objects allocated (net) between young collections


def settle() -> None:
    """Collect the garbage of now, leave every surviving object out of future collections, `relax`."""
    gc.collect()
    gc.freeze()
    relax()


def relax() -> None:
    """Young collections every YOUNG allocations (older generations keep CPython's ratios)."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG, middle, old)
