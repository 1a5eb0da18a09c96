"""Per-store health of a connector process: when each store last went through, how many attempts in a
row failed and the last error (secrets are redacted from store errors where they are made).

The process writes it as JSON to the file named by ``ORDERSYNC_STORE_HEALTH_FILE`` after every change;
``ordersync run`` gives each connector process such a file and serves it in ``/health`` and ``/metrics``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ENV = "ORDERSYNC_STORE_HEALTH_FILE"


@dataclass
class StoreHealth:
    store_id: str
    last_success: float | None = None  # epoch seconds of the last poll or checkpoint that went through
    consecutive_failures: int = 0
    failing_since: float | None = None  # epoch seconds of the first failure of the current run of them
    last_error: str | None = None
    # The backfill of this run of the process: orders published, the shop's own total where its API
    # gives one (WooCommerce's X-WP-Total; PrestaShop gives none), and whether it has finished.
    backfill_published: int = 0
    backfill_total: int | None = None
    backfill_complete: bool = False
    last_webhook: float | None = None  # epoch seconds of the last webhook accepted (the webhook receiver's file)
    waiting_until: float | None = None  # the store asked to wait (Retry-After) until then (epoch seconds)
    waiting_reason: str | None = None

    def failing_for(self, now: float) -> float:
        return 0.0 if self.failing_since is None else now - self.failing_since


class HealthBoard:
    """The stores of one process; written through to the health file (if any) on every change."""

    def __init__(self, store_ids: list[str], path: str | None = None) -> None:
        self.stores = {s: StoreHealth(s) for s in store_ids}
        self.path = Path(path) if path else None
        self._write()

    @classmethod
    def from_env(cls, store_ids: list[str]) -> HealthBoard:
        return cls(store_ids, os.environ.get(ENV))

    def succeeded(self, store_id: str) -> None:
        health = self.stores[store_id]
        changed = health.consecutive_failures > 0 or health.last_success is None
        health.last_success = time.time()
        health.consecutive_failures = 0
        health.failing_since = None
        changed |= health.waiting_until is not None
        health.waiting_until = health.waiting_reason = None
        # Rewriting the file for every poll of a healthy store is needless; once a second is plenty.
        if changed or self.path is None or _age_s(self.path) > 1.0:
            self._write()

    def backfilled(self, store_id: str, published: int, total: int | None, *, complete: bool = False) -> None:
        """The backfill's progress (a page went through, so the store is healthy too)."""
        health = self.stores[store_id]
        finishing = complete and not health.backfill_complete
        health.backfill_published, health.backfill_total, health.backfill_complete = published, total, complete
        self.succeeded(store_id)
        if finishing:
            self._write()

    def waiting(self, store_id: str, until: float, reason: str) -> None:
        """The store asked to be left alone until ``until`` (Retry-After): shown, not silent."""
        health = self.stores[store_id]
        health.waiting_until, health.waiting_reason = until, reason[:200]
        health.failing_since = health.failing_since or time.time()
        self._write()

    def failed(self, store_id: str, error: str) -> None:
        health = self.stores[store_id]
        health.consecutive_failures += 1
        health.failing_since = health.failing_since or time.time()
        health.last_error = error[:500]
        self._write()

    def _write(self) -> None:
        if self.path is None:
            return
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({s: asdict(h) for s, h in self.stores.items()}))
        temporary.replace(self.path)  # readers never see half a file


def webhooks_path(path: Path) -> Path:
    """The webhook receiver's file beside the connectors' one (``stores.health.json`` →
    ``stores.health.webhooks.json``): two processes, two files, never one written by both."""
    return path.with_name(f"{path.stem}.webhooks.json")


class WebhookBoard:
    """When the webhook receiver last accepted a webhook of each store; written through to its file (at
    once for a store's first, then at most once a second)."""

    def __init__(self, path: str | None = None) -> None:
        self.path = webhooks_path(Path(path)) if path else None
        self.last: dict[str, float] = {}

    @classmethod
    def from_env(cls) -> WebhookBoard:
        return cls(os.environ.get(ENV))

    def accepted(self, store_id: str) -> None:
        first = store_id not in self.last
        self.last[store_id] = time.time()
        if self.path is not None and (first or _age_s(self.path) > 1.0):
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(json.dumps(self.last))
            temporary.replace(self.path)


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read(path: Path) -> dict[str, StoreHealth]:
    """The store health the connectors wrote, with the webhook receiver's last webhook per store ({} if
    neither has written yet)."""
    stores = {s: StoreHealth(**h) for s, h in _json(path).items()}
    for store_id, at in _json(webhooks_path(path)).items():
        stores.setdefault(store_id, StoreHealth(store_id)).last_webhook = float(at)
    return stores


def _age_s(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")
