"""A running service's cyclic garbage collector: start-up frozen out of its passes, the youngest
pass after 20,000 net container allocations instead of 700, and reference cycles still freed
without anyone calling gc.collect()."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from shared.service import YOUNGEST_GENERATION_THRESHOLD, tune_collector


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def collector_restored() -> Iterator[None]:
    saved = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*saved)


@pytest.mark.usefixtures("collector_restored")
def test_start_up_is_frozen_and_the_youngest_pass_waits_longer() -> None:
    _, older, oldest = gc.get_threshold()
    gc.unfreeze()
    tune_collector()
    assert gc.get_threshold() == (YOUNGEST_GENERATION_THRESHOLD, older, oldest)
    assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("collector_restored")
def test_a_reference_cycle_is_still_freed_by_the_collector_on_its_own() -> None:
    tune_collector()
    gc.collect()  # a clean count to start from
    a, b = Node(), Node()
    a.other, b.other = b, a
    cycle = weakref.ref(a)
    del a, b
    assert cycle() is not None  # reference counting alone cannot free it
    kept = [[] for _ in range(YOUNGEST_GENERATION_THRESHOLD // 2)]
    assert cycle() is not None  # fewer allocations than the threshold: no pass yet
    kept += [[] for _ in range(YOUNGEST_GENERATION_THRESHOLD)]
    assert cycle() is None
    assert len(kept) > YOUNGEST_GENERATION_THRESHOLD
