"""Keeping Python's cyclic garbage collector off the long-lived heap.

A running collector holds about a million long-lived objects (compiled queries, their index, models,
caches). CPython's full collections walk all of them each time enough young objects survive, and
ingest allocates many (posts, matches, payloads): on the ingest benchmark that was about a sixth of the
CPU, for almost no garbage found. `settle` collects once, then freezes what is left (`gc.freeze`) so
later collections only walk objects made since. Frozen objects are still freed by reference counting;
only a frozen object that later becomes part of an unreachable cycle would stay (compiled queries and
their index hold no cycles: tests/test_heap.py checks it).
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Collect the garbage of now, then leave every surviving object out of future collections."""
    gc.collect()
    gc.freeze()
