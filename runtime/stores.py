"""Store configuration (``stores.toml``): which shops to sync and how. Shared by every component.

Secrets are never in the file: it names the environment variables that hold them.

```toml
[[store]]
id = "woo-ch"
platform = "woocommerce"            # or "prestashop"
base_url = "https://shop.example.ch"
list_id = "7"                        # the contact list this store feeds
timezone = "Europe/Zurich"           # how to read the store's zone-less timestamps
poll_interval_s = 30
customer_rescan_s = 3600             # WooCommerce: re-read all customers this often (webhooks may be missed)
consumer_key_env = "WOO_CH_KEY"      # WooCommerce
consumer_secret_env = "WOO_CH_SECRET"
webhook_secret_env = "WOO_CH_WEBHOOK_SECRET"
# api_key_env = "PS_KEY"             # PrestaShop
[store.status_overrides]
refunded = "CANCELED"
```
"""

from __future__ import annotations

import os
import tomllib
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schemas.statuses import STATUSES

PLATFORMS = ("woocommerce", "prestashop")


class ConfigError(ValueError):
    """The stores file is invalid; the message names the store and the key."""


@dataclass(frozen=True)
class StoreConfig:
    id: str
    platform: str
    base_url: str
    list_id: str
    timezone: str = "UTC"
    poll_interval_s: float = 30.0
    # WooCommerce cannot list customers changed since a time: customer.* webhooks carry the changes, and
    # every this many seconds all customers are read again and the changed ones published (0: never).
    customer_rescan_s: float = 3600.0
    status_overrides: dict[str, str] = field(default_factory=dict)
    consumer_key_env: str | None = None
    consumer_secret_env: str | None = None
    webhook_secret_env: str | None = None
    api_key_env: str | None = None
    page_concurrency: int = 4

    def secret(self, attribute: str) -> str:
        """The value of the environment variable named by ``attribute`` (e.g. "consumer_key_env")."""
        name = getattr(self, attribute)
        if not name:
            raise ConfigError(f"store {self.id}: {attribute} is not set in the stores file")
        value = os.environ.get(name)
        if not value:
            raise ConfigError(f"store {self.id}: environment variable {name} (from {attribute}) is empty or unset")
        return value

    def __repr__(self) -> str:  # never print anything that could be a secret's value
        return f"StoreConfig(id={self.id!r}, platform={self.platform!r}, base_url={self.base_url!r})"


_FIELDS = {f for f in StoreConfig.__dataclass_fields__}


def parse_store(raw: dict[str, Any]) -> StoreConfig:
    store_id = raw.get("id")
    if not isinstance(store_id, str) or not store_id or ":" in store_id:
        raise ConfigError(f"store {store_id!r}: id must be a non-empty string without ':'")
    unknown = set(raw) - _FIELDS
    if unknown:
        raise ConfigError(f"store {store_id}: unknown keys {sorted(unknown)}")
    for key in ("platform", "base_url", "list_id"):
        if not raw.get(key):
            raise ConfigError(f"store {store_id}: {key} is required")
    if raw["platform"] not in PLATFORMS:
        raise ConfigError(f"store {store_id}: platform must be one of {PLATFORMS}, got {raw['platform']!r}")
    tz = raw.get("timezone", "UTC")
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"store {store_id}: unknown timezone {tz!r}") from exc
    overrides = {str(k): str(v).upper() for k, v in raw.get("status_overrides", {}).items()}
    bad = {k: v for k, v in overrides.items() if v not in STATUSES}
    if bad:
        raise ConfigError(f"store {store_id}: status_overrides must map to {STATUSES}, got {bad}")
    return StoreConfig(**{**raw, "list_id": str(raw["list_id"]), "status_overrides": overrides})


def load_stores(path: Path | str) -> list[StoreConfig]:
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    stores = [parse_store(raw) for raw in data.get("store", [])]
    ids = [s.id for s in stores]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{path}: duplicate store ids")
    return stores
