"""The sink's writer thread: order kept, at most one batch waiting, failures surface in the caller."""

from __future__ import annotations

import threading

import pytest

from ordersync.sinks.handoff import Handoff


def test_items_are_written_in_order_and_drain_waits_for_all() -> None:
    written: list[int] = []
    handoff: Handoff[int] = Handoff(written.append)
    for i in range(100):
        handoff.submit(i)
    handoff.drain()
    assert written == list(range(100))
    handoff.close()


def test_submit_blocks_while_one_item_is_written_and_another_waits() -> None:
    release = threading.Event()
    started = threading.Event()

    def slow(item: int) -> None:
        started.set()
        assert release.wait(10)

    handoff: Handoff[int] = Handoff(slow)
    handoff.submit(1)  # taken by the writer
    assert started.wait(10)
    handoff.submit(2)  # waits in the single slot
    third = threading.Thread(target=handoff.submit, args=(3,))
    third.start()
    third.join(0.5)  # the slot is full: the third cannot be queued yet
    blocked = third.is_alive()
    release.set()
    third.join(10)
    handoff.close()
    assert blocked and not third.is_alive()


def test_a_failed_write_is_raised_in_the_caller_and_stops_later_writes() -> None:
    written: list[int] = []

    def write(item: int) -> None:
        if item == 2:
            raise RuntimeError("database said no")
        written.append(item)

    handoff: Handoff[int] = Handoff(write)
    handoff.submit(1)
    handoff.submit(2)
    with pytest.raises(RuntimeError, match="database said no"):
        handoff.drain()
    with pytest.raises(RuntimeError):
        handoff.submit(3)
    with pytest.raises(RuntimeError):
        handoff.close()
    assert written == [1]
