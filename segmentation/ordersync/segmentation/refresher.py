"""The derived tables' refresher: Insights' day summaries, the RFM bounds and the campaign summaries,
brought up to date every few seconds from what the sink wrote.

It is a pipeline component (``ordersync refresh``, supervised by ``ordersync run`` and run by the demo),
not part of the web app: the figures stay current whether or not anyone has the web app open, and any
number of web replicas only read them. Each refresh takes an advisory lock, so two refreshers never do
the same work twice.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg

from ordersync.segmentation import campaigns, insight_days, rfm

LOG = logging.getLogger(__name__)

REFRESH_EVERY_S = 5.0


def refresh_all(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """One pass over every derived table; how much each one recomputed."""
    return {
        "insight days": insight_days.refresh(conn),
        "rfm lists": rfm.refresh(conn),
        "campaigns": campaigns.refresh(conn),
    }


def run(database_url: str, stop: threading.Event, every_s: float = REFRESH_EVERY_S) -> None:
    """Refresh until ``stop`` is set; a database error is logged and the next pass tries again."""
    while not stop.is_set():
        try:
            with psycopg.connect(database_url) as conn:
                done = refresh_all(conn)
            if any(done.values()):
                LOG.info("refreshed: %s", ", ".join(f"{n} {what}" for what, n in done.items() if n))
        except psycopg.Error as exc:
            LOG.warning("refresh failed, trying again in %.0f s: %s", every_s, type(exc).__name__)
        stop.wait(every_s)
