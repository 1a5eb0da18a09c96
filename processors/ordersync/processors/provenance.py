"""Live or historical (pure): how a change reached ordersync, and whether it is news.

Automations act on news only (docs/contract.md "Live or historical"). A change is history when it came
from a backfill or a replay, or when the store made it longer ago than the list's horizon before we
fetched it (a poll that catches up after a week's outage, a connector started on an old shop). The
decision reads only the raw event, so a redelivery or a restart decides the same.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from ordersync.schemas.records import ChangeSource, Order, RawOrderEvent

DEFAULT_HORIZON = dt.timedelta(hours=24)
_SOURCES: dict[str, ChangeSource] = {"BACKFILL": "BACKFILL", "POLL": "POLL", "WEBHOOK": "WEBHOOK"}


@dataclass(frozen=True)
class HistoryPolicy:
    """``replay``: every output is a replay's (and history); ``horizons``: per list, how old a store
    change may be when fetched and still be news."""

    replay: bool = False
    horizons: Mapping[str, dt.timedelta] = field(default_factory=dict)

    def mark(self, raw: RawOrderEvent, order: Order) -> Order:
        """``order`` with its ``source`` and ``historical`` fields set."""
        source: ChangeSource = "REPLAY" if self.replay else _SOURCES.get(raw["obtained_by"], "OTHER")
        if source in ("BACKFILL", "REPLAY"):
            historical = True
        else:
            horizon = self.horizons.get(order["list_id"], DEFAULT_HORIZON)
            historical = raw["fetched_at"] - order["modified_at"] > horizon
        return {**order, "source": source, "historical": historical}


LIVE = HistoryPolicy()  # no replay, the default horizon everywhere
