"""core.heap freezes the long-lived heap; that is only safe while what it freezes holds no cycles."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from core import heap
from core.query.index import QueryIndex
from core.query.matcher import Document, compile_query
from core.query.text import tokenize

QUERIES = [
    "путин AND войн*",
    '"красная площадь" OR kremlin',
    "/(a|b)+c/ lang:ru",
    "nato -ukraine",
    "#war OR @kremlin",
    "channel:rian_ru взрыв",
    "الحرب",
    "台灣 OR 台湾",
    "lang:fa تهران",
]
TEXTS = ["путин о войне и kremlin", "взрыв в москве #war", "الحرب في غزة", "台灣 新聞", "نیروی تهران"]


@pytest.fixture
def no_collector() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_a_removed_index_is_freed_without_the_cyclic_collector(no_collector: None) -> None:
    index = QueryIndex()
    for n in range(900):
        index.add(n, compile_query(f"{QUERIES[n % len(QUERIES)]} w{n}"))
    matched = 0
    for text in TEXTS:
        matched += len(list(index.match(Document.of(text, tokens=tokenize(text)))))
    assert matched > 0  # the queries were exercised, spans and all
    for n in range(900):
        index.remove(n)
    del index
    assert gc.collect() == 0  # nothing was left for the cyclic collector: reference counting freed it all


def test_settle_collects_then_freezes() -> None:
    class Node:
        def __init__(self) -> None:
            self.me = self

    Node()  # a cycle that only the cyclic collector frees
    before = gc.get_freeze_count()
    try:
        heap.settle()
        assert gc.collect() == 0  # the cycle was collected before freezing, not frozen
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()


def test_settle_collects_young_objects_less_often() -> None:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # CPython's defaults
    try:
        heap.settle()
        assert gc.get_threshold() == (heap.YOUNG, 10, 10)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_a_settle_now_and_then_collects_cycles_that_were_frozen_alive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(heap, "_revisited", None)  # this test's clock, put back after it

    class Node:
        def __init__(self) -> None:
            self.me = self

    now = [1_000_000.0]
    before = gc.get_threshold()
    try:
        heap.settle(clock=lambda: now[0])  # revisits: the first, or REVISIT after the last
        held = [Node() for _ in range(50)]  # alive at the next freeze, garbage right after
        heap.settle(clock=lambda: now[0])
        del held
        now[0] += 1
        heap.settle(clock=lambda: now[0])
        assert gc.collect() == 0 and gc.get_freeze_count() > 0
        gc.unfreeze()
        assert gc.collect() >= 50  # the frozen cycles were still there: this settle did not look
        held = [Node() for _ in range(50)]
        heap.settle(clock=lambda: now[0])
        del held
        now[0] += heap.REVISIT
        heap.settle(clock=lambda: now[0])
        gc.unfreeze()
        assert gc.collect() == 0  # this one looked at the frozen objects again and collected them
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
