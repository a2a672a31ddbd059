"""Keeping Python's cyclic garbage collector out of the way of ingest.

A running collector holds about a million long-lived objects (compiled queries, their index, models,
caches). CPython's full collections walk all of them each time enough young objects survive, and
ingest allocates many (posts, matches, payloads): on the ingest benchmark that was about a sixth of the
CPU, for almost no garbage found. `settle` collects once, then freezes what is left (`gc.freeze`) so
later collections only walk objects made since. Frozen objects are still freed by reference counting;
only a frozen object that later becomes part of an unreachable cycle would stay (compiled queries and
their index hold no cycles: tests/test_heap.py checks it). So that objects which happened to be alive
at a freeze (a request in flight, an exception being handled) cannot pile up in a process that reloads
its queries often, a settle looks at the frozen objects again once every REVISIT seconds.

`relax` then collects young objects every YOUNG allocations instead of CPython's 700: a batch keeps
thousands of small objects alive while it is matched (each post's words and positions), and every
young collection walked them again — a third of the time of matching. Nearly all garbage here is freed
by reference counting anyway; the rare cycle waits a little longer.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

YOUNG = 50_000  # container objects allocated (net) between young collections
REVISIT = 600.0  # seconds between settles that collect among the frozen objects too

_revisited: float | None = None  # when a settle last did


def settle(*, clock: Callable[[], float] = time.monotonic) -> None:
    """Collect the garbage of now, leave every surviving object out of future collections, `relax`."""
    global _revisited
    now = clock()
    if _revisited is None or now - _revisited >= REVISIT:
        gc.unfreeze()  # a full collection: frozen objects may have become garbage since
        _revisited = now
    gc.collect()
    gc.freeze()
    relax()


def relax() -> None:
    """Young collections every YOUNG allocations (older generations keep CPython's ratios)."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG, middle, old)
