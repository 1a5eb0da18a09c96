"""Automation rules per contact list (``[automations."<list id>"]`` in stores.toml): when the processor
fires each trigger kind (docs/contract.md "Triggers"). A list has automations only with a section (an
empty one takes every default): without, the processor keeps no purchase summary for its contacts, which
costs a backfill nothing.

```toml
[automations."1"]
horizon_h = 24                      # older store changes are history: no trigger
thank_you_status = "COMPLETED"      # ORDER_THANK_YOU when an order first reaches this status
first_order = true
abandoned_after_h = 4               # CHECKOUT_ABANDONED: CREATED/PENDING this long (0: off)
win_back_after_days = 90            # WIN_BACK: no order this long after at least two (0: off)
vip_spent = { EUR = "1000", CHF = "1000" }   # VIP_REACHED: completed net spend per currency

[attribution."1"]                  # credit this list's orders to campaigns (docs/contract.md "Attribution")
click_window_days = 5
open_window_days = 5
opens = true                        # false: clicks only
machine_opens = false               # privacy-proxy opens are kept but not credited
scanner_clicks = false              # nor clicks within scanner_s of the send
scanner_s = 10

[[automations."1".upsell]]
name = "boots-care"
when_categories = ["Boots"]         # an item in one of these categories ...
when_products = []                  # ... or one of these product ids
suggest_categories = ["Shoe care"]
suggest_products = []
delay_h = 72
```
"""

from __future__ import annotations

import datetime as dt
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ordersync.runtime.stores import ConfigError

M = TypeVar("M", bound=BaseModel)


class UpsellRule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    when_categories: tuple[str, ...] = ()
    when_products: tuple[str, ...] = ()
    suggest_categories: tuple[str, ...] = ()
    suggest_products: tuple[str, ...] = ()
    delay_h: float = Field(72.0, ge=0)

    @property
    def delay(self) -> dt.timedelta:
        return dt.timedelta(hours=self.delay_h)


class AutomationRules(BaseModel):
    """One list's rules (hours and days may be fractions: tests and demos shorten them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    horizon_h: float = Field(24.0, gt=0)
    thank_you_status: Literal["CREATED", "PENDING", "COMPLETED"] = "COMPLETED"
    first_order: bool = True
    abandoned_after_h: float = Field(4.0, ge=0)
    win_back_after_days: float = Field(90.0, ge=0)
    vip_spent: dict[str, Decimal] = Field(default_factory=dict)
    upsell: tuple[UpsellRule, ...] = ()
    # Marketing triggers (all but the thank-you) only for contacts who gave consent (docs/privacy.md).
    marketing_needs_consent: bool = True

    @field_validator("vip_spent")
    @classmethod
    def _positive(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for currency, amount in value.items():
            if len(currency) != 3 or not currency.isalpha() or currency != currency.upper():
                raise ValueError(f"{currency!r} is not an ISO 4217 currency code")
            if not amount.is_finite() or amount <= 0:
                raise ValueError(f"{currency}: the threshold must be a positive amount")
        return value

    @property
    def horizon(self) -> dt.timedelta:
        return dt.timedelta(hours=self.horizon_h)

    @property
    def abandoned_after(self) -> dt.timedelta | None:
        return dt.timedelta(hours=self.abandoned_after_h) if self.abandoned_after_h else None

    @property
    def win_back_after(self) -> dt.timedelta | None:
        return dt.timedelta(days=self.win_back_after_days) if self.win_back_after_days else None


DEFAULT_RULES = AutomationRules()


class AttributionRules(BaseModel):
    """How one list credits orders to campaigns (``[attribution."<list id>"]``; docs/contract.md
    "Attribution"): the last click within ``click_window_days`` before the order's creation, else the last
    open within ``open_window_days``. Machine opens and scanner clicks are kept but not credited unless
    switched on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    click_window_days: float = Field(5.0, gt=0, le=90)
    open_window_days: float = Field(5.0, gt=0, le=90)
    opens: bool = True
    machine_opens: bool = False
    scanner_clicks: bool = False
    scanner_s: float = Field(10.0, ge=0, le=3600)  # a click this soon after its send is a link scanner

    @property
    def click_window(self) -> dt.timedelta:
        return dt.timedelta(days=self.click_window_days)

    @property
    def open_window(self) -> dt.timedelta:
        return dt.timedelta(days=self.open_window_days)


class Automations:
    """Every list's rules; only lists with rules have automations, only lists with attribution rules
    have their orders credited to campaigns."""

    def __init__(
        self,
        by_list: dict[str, AutomationRules] | None = None,
        attribution: dict[str, AttributionRules] | None = None,
    ) -> None:
        self.by_list = by_list or {}
        self.attribution = attribution or {}

    def attributed(self, list_id: str) -> AttributionRules | None:
        return self.attribution.get(list_id)

    def summarised(self, list_id: str) -> bool:
        """Whether the contact stage needs a summary of this list's orders (for triggers or attribution)."""
        return list_id in self.by_list or list_id in self.attribution

    def enabled(self, list_id: str) -> bool:
        return list_id in self.by_list

    def for_list(self, list_id: str) -> AutomationRules:
        return self.by_list.get(list_id, DEFAULT_RULES)

    def horizons(self) -> dict[str, dt.timedelta]:
        return {list_id: rules.horizon for list_id, rules in self.by_list.items()}


def _sections(data: dict[str, Any], name: str, model: type[M]) -> dict[str, M]:
    sections = data.get(name, {})
    if not isinstance(sections, dict):
        raise ConfigError(f"{name}: expected a table of lists")
    by_list = {}
    for list_id, raw in sections.items():
        try:
            by_list[str(list_id)] = model.model_validate(raw)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"]) or "rules"
            raise ConfigError(f"{name} for list {list_id!r}: {where}: {error['msg']}") from None
    return by_list


def parse_automations(data: dict[str, Any]) -> Automations:
    """The ``automations`` and ``attribution`` tables of a parsed stores file; ConfigError names the
    list and the key."""
    return Automations(
        _sections(data, "automations", AutomationRules), _sections(data, "attribution", AttributionRules)
    )


def load_automations(path: Path | str | None) -> Automations:
    """The rules in a stores file (defaults everywhere without one)."""
    if path is None:
        return Automations()
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return parse_automations(data)
