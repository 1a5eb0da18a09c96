"""Which agent is inside an event, and since when.

The processor's heartbeat (read by the supervisor) comes from a timer on the event loop, so it proves
the loop turns, not that the agents do: an agent awaiting something that never completes leaves the
loop healthy. Each agent marks the time it spends inside one event; the heartbeat stops while one has
been inside the same event for longer than any event should take, and the supervisor then restarts the
worker (at-least-once delivery makes that safe: the event is read again).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

# One event is a few milliseconds of work and a few sends; during a broker outage a send may wait for
# the producer's buffer for up to its request timeout (40 s). Longer than this is a hang.
STUCK_AFTER_S = 90.0


class Watchdog:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._inside: dict[str, float] = {}  # agent → when it started its current event

    @contextlib.contextmanager
    def event(self, agent: str) -> Iterator[None]:
        self._inside[agent] = self._clock()
        try:
            yield
        finally:
            del self._inside[agent]

    def stuck(self, after_s: float = STUCK_AFTER_S) -> dict[str, float]:
        """Agents inside one event for longer than ``after_s``, with how long (seconds)."""
        now = self._clock()
        return {agent: now - since for agent, since in self._inside.items() if now - since > after_s}
