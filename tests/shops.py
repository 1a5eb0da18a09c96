"""Simulated shops as subprocesses, and a stores.toml pointing at them."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.processes import Proc, free_port, http_json, port_open, running, wait_for

WOO_KEY, WOO_SECRET, PS_KEY, HOOK_SECRET = "ck_test_1", "cs_test_1", "PSKEYTEST1", "hook-secret-1"
SECRETS = {
    "T_WOO_KEY": WOO_KEY,
    "T_WOO_SECRET": WOO_SECRET,
    "T_PS_KEY": PS_KEY,
    "T_HOOK": HOOK_SECRET,
    "T_WOO_CRED": f"{WOO_KEY}:{WOO_SECRET}",
}


@dataclass
class Shop:
    platform: str
    store_id: str
    port: int
    proc: Proc

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _tick(self, **body: int) -> dict[str, Any]:
        status, raw = http_json(
            f"{self.base_url}/__sim/tick", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        assert status == 200, raw
        return dict(json.loads(raw))

    def tick(self, creates: int = 0, updates: int = 0, trashes: int = 0) -> list[int]:
        return list(self._tick(creates=creates, updates=updates, trashes=trashes)["changed"])

    def delete_customers(self, n: int) -> list[int]:
        """WooCommerce shop only: delete ``n`` random customer accounts now; returns their ids."""
        return list(self._tick(customer_deletes=n)["deleted_customers"])

    def update_customers(self, n: int) -> list[int]:
        """Give ``n`` random customers a new phone number now; returns their ids."""
        return list(self._tick(customer_updates=n)["updated_customers"])

    def poison(self, *kinds: str) -> dict[str, int]:
        """WooCommerce shop only: one new, broken order per kind (ordersync.producers.simulators.woocommerce
        POISONS); returns {kind: order id}."""
        status, raw = http_json(
            f"{self.base_url}/__sim/poison",
            json.dumps({"kinds": list(kinds)}).encode(),
            {"Content-Type": "application/json"},
        )
        assert status == 200, raw
        return {k: int(v) for k, v in json.loads(raw).items()}

    def faults(self, **body: Any) -> None:
        status, _ = http_json(
            f"{self.base_url}/__sim/faults", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        assert status == 200

    def truth(self) -> dict[str, Any]:
        status, body = http_json(f"{self.base_url}/__sim/truth")
        assert status == 200
        return dict(json.loads(body))

    def stats(self) -> dict[str, Any]:
        return dict(json.loads(http_json(f"{self.base_url}/__sim/stats")[1]))


@contextlib.contextmanager
def shop(
    platform: str, store_id: str, env: dict[str, str], log_dir: Path, *extra: str, orders: int = 300, seed: int = 1
) -> Iterator[Shop]:
    port = free_port()
    key_env = "T_WOO_CRED" if platform == "woocommerce" else "T_PS_KEY"
    args = [
        "simulate",
        platform,
        "--port",
        str(port),
        "--orders",
        str(orders),
        "--seed",
        str(seed),
        "--key-env",
        key_env,
        *extra,
    ]
    with running(args, {**env, **SECRETS}, log_dir / f"sim-{store_id}.log") as proc:
        wait_for(lambda: port_open(port) or not proc.alive(), 60, f"{platform} simulator on port {port}")
        assert proc.alive(), proc.output()
        yield Shop(platform, store_id, port, proc)


def sign(body: bytes, secret: str = HOOK_SECRET) -> str:
    """X-WC-Webhook-Signature of ``body``, as WooCommerce computes it."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


@contextlib.contextmanager
def webhook_receiver(s: Shop, env: dict[str, str], log_dir: Path) -> Iterator[tuple[str, Proc]]:
    """``ordersync webhook serve`` for shop ``s``: yields its URL for that store, and the process."""
    config = stores_toml(log_dir / "stores.toml", s)
    port = free_port()
    args = ["webhook", "serve", "--config", str(config), "--port", str(port)]
    with running(args, env, log_dir / "webhooks.log") as proc:
        wait_for(lambda: port_open(port) or not proc.alive(), 60, "webhook receiver")
        yield f"http://127.0.0.1:{port}/webhooks/woocommerce/{s.store_id}", proc


def stores_toml(
    path: Path,
    *shops: Shop,
    list_id: str = "1",
    poll_interval_s: float = 1.0,
    overrides: dict[str, dict[str, str]] | None = None,
    customer_rescan_s: float | None = None,
) -> Path:
    parts = []
    for s in shops:
        lines = [
            "[[store]]",
            f'id = "{s.store_id}"',
            f'platform = "{s.platform}"',
            f'base_url = "{s.base_url}"',
            f'list_id = "{list_id}"',
            f'timezone = "{"Europe/Zurich" if s.platform == "woocommerce" else "Europe/Lisbon"}"',
            f"poll_interval_s = {poll_interval_s}",
        ]
        if customer_rescan_s is not None:
            lines.append(f"customer_rescan_s = {customer_rescan_s}")
        if s.platform == "woocommerce":
            lines += [
                'consumer_key_env = "T_WOO_KEY"',
                'consumer_secret_env = "T_WOO_SECRET"',
                'webhook_secret_env = "T_HOOK"',
            ]
        else:
            lines += ['api_key_env = "T_PS_KEY"']
        if overrides and s.store_id in overrides:
            lines.append("[store.status_overrides]")
            lines += [f'"{k}" = "{v}"' for k, v in overrides[s.store_id].items()]
        parts.append("\n".join(lines))
    path.write_text("\n\n".join(parts) + "\n")
    return path
