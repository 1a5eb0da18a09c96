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
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ordersync.schemas.statuses import STATUSES

PLATFORMS = ("woocommerce", "prestashop")


class ConfigError(ValueError):
    """The stores file is invalid; the message names the store and the key."""


class StoreConfig(BaseModel):
    """One ``[[store]]`` of the stores file, validated (unknown keys are refused, not ignored)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, pattern=r"^[^:]+$")
    platform: Literal["woocommerce", "prestashop"]
    base_url: str = Field(min_length=1)
    list_id: str = Field(min_length=1)
    timezone: str = "UTC"
    poll_interval_s: float = 30.0
    # WooCommerce cannot list customers changed since a time: customer.* webhooks carry the changes, and
    # every this many seconds all customers are read again and the changed ones published (0: never).
    customer_rescan_s: float = 3600.0
    status_overrides: dict[str, str] = Field(default_factory=dict)
    # WooCommerce: the customer meta key its consent plugin writes (docs/privacy.md lists common ones).
    consent_meta_key: str | None = None
    consumer_key_env: str | None = None
    consumer_secret_env: str | None = None
    webhook_secret_env: str | None = None
    api_key_env: str | None = None
    page_concurrency: int = 4

    @field_validator("list_id", mode="before")
    @classmethod
    def _list_id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r}") from exc
        return value

    @field_validator("status_overrides", mode="before")
    @classmethod
    def _overrides_to_statuses(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        overrides = {str(k): str(v).upper() for k, v in value.items()}
        bad = {k: v for k, v in overrides.items() if v not in STATUSES}
        if bad:
            raise ValueError(f"must map to {STATUSES}, got {bad}")
        return overrides

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

    __str__ = __repr__


def parse_store(raw: dict[str, Any]) -> StoreConfig:
    try:
        return StoreConfig.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "store"
        if error["type"] == "extra_forbidden":
            unknown = sorted(str(e["loc"][0]) for e in exc.errors() if e["type"] == "extra_forbidden")
            raise ConfigError(f"store {raw.get('id')!r}: unknown keys {unknown}") from None
        raise ConfigError(f"store {raw.get('id')!r}: {where}: {error['msg']}") from None


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
