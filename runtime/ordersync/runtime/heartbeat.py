"""Liveness for supervised processes: a file whose modification time says "still making progress".

The supervisor (``ordersync run``) gives each child a file in ``ORDERSYNC_HEARTBEAT_FILE``; the child's
main loop calls ``beat()`` as it goes round. A process that stops beating for longer than the
supervisor's hang timeout is presumed stuck (a dead-locked client, an event loop that never returns)
and is killed and restarted, like one that exited. Without the variable ``beat()`` does nothing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

ENV = "ORDERSYNC_HEARTBEAT_FILE"
_MIN_INTERVAL_S = 1.0
_last = 0.0


def beat() -> None:
    """Touch the heartbeat file (at most once a second: cheap enough for any loop)."""
    global _last
    path = os.environ.get(ENV)
    now = time.monotonic()
    if not path or now - _last < _MIN_INTERVAL_S:
        return
    _last = now
    Path(path).touch()


def age_s(path: Path) -> float | None:
    """Seconds since the last beat, or None if the process has not beaten yet."""
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None


async def beat_forever(interval_s: float = 1.0) -> None:
    """For asyncio processes: beats while the event loop keeps turning (a blocked loop stops it)."""
    import asyncio

    while True:
        beat()
        await asyncio.sleep(interval_s)
