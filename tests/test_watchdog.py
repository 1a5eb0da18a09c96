"""The processor's watchdog: an agent inside one event for too long is reported, others are not."""

from __future__ import annotations

import pytest

from ordersync.processors.watchdog import Watchdog


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_agent_inside_one_event_too_long_is_stuck_and_leaving_it_clears_that() -> None:
    clock = Clock()
    dog = Watchdog(clock)
    with dog.event("join"):
        clock.now += 5
        with dog.event("normalise"):
            clock.now += 89
            assert dog.stuck(after_s=90) == {"join": 94.0}  # normalise, 89 s inside, not yet
            clock.now += 2
            assert dog.stuck(after_s=90) == {"join": 96.0, "normalise": 91.0}
        assert dog.stuck(after_s=90) == {"join": 96.0}
    assert dog.stuck(after_s=90) == {}  # join left its event


def test_an_agent_waiting_for_input_is_not_stuck() -> None:
    clock = Clock()
    dog = Watchdog(clock)
    with dog.event("normalise"):
        pass
    clock.now += 3600  # an hour without events: idle, not stuck
    assert dog.stuck(after_s=90) == {}


def test_an_event_that_raises_still_leaves() -> None:
    dog = Watchdog(Clock())
    with pytest.raises(RuntimeError), dog.event("customers"):
        raise RuntimeError("boom")
    assert dog.stuck(after_s=-1) == {}
