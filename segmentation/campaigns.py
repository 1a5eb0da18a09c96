"""What each campaign brought (docs/campaigns.md): its reach, the revenue of the orders credited to it,
and, where it kept a holdout group, the revenue it actually added.

Attributed revenue is the net total (after refunds) of the orders credited to the campaign
(``attributions``, decided by the processor), cancelled and deleted orders excluded: it follows the
orders as they change. It overstates what the campaign caused, since many of those buyers would have
bought anyway. Incremental revenue answers that: every recipient's revenue in the ``window_days`` after
the send, whatever it is credited to, averaged over the sent group and over the holdout group (people
who were sent nothing on purpose); the difference per recipient, with its 95 % confidence interval
(normal approximation, unequal variances), times the recipients, is what sending added.

Money stays Decimal throughout; each figure is per currency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg

Z95 = Decimal("1.959964")

CAMPAIGNS = """
SELECT list_id, campaign_id, max(campaign_name) AS name, min(occurred_at) FILTER (WHERE type = 'SEND') AS first_send,
       count(DISTINCT contact_id) FILTER (WHERE type = 'SEND' AND NOT holdout) AS recipients,
       count(DISTINCT contact_id) FILTER (WHERE type = 'SEND' AND holdout) AS holdout,
       count(DISTINCT contact_id) FILTER (WHERE type = 'OPEN' AND NOT machine) AS openers,
       count(DISTINCT contact_id) FILTER (WHERE type = 'CLICK') AS clickers,
       count(DISTINCT contact_id) FILTER (WHERE type = 'UNSUBSCRIBE') AS unsubscribed
FROM campaign_events
WHERE %(list)s::text IS NULL OR list_id = %(list)s
GROUP BY list_id, campaign_id
ORDER BY first_send DESC NULLS LAST, list_id, campaign_id
"""

ATTRIBUTED = """
SELECT a.list_id, a.campaign_id, o.currency, count(*) AS orders, count(DISTINCT o.contact_id) AS buyers,
       sum(o.net_total) AS revenue
FROM attributions a
JOIN orders o USING (store_id, source_order_id)
WHERE NOT o.deleted AND o.status <> 'CANCELED' AND (%(list)s::text IS NULL OR a.list_id = %(list)s)
GROUP BY a.list_id, a.campaign_id, o.currency
"""

# Per campaign, group (sent or holdout) and currency: the sum and the sum of squares of each recipient's
# revenue in the window after its send. Recipients without orders add zero to both (counted in CAMPAIGNS).
WINDOW_REVENUE = """
WITH sends AS (
    SELECT list_id, campaign_id, contact_id, bool_or(holdout) AS holdout, min(occurred_at) AS sent_at
    FROM campaign_events
    WHERE type = 'SEND' AND (%(list)s::text IS NULL OR list_id = %(list)s)
    GROUP BY list_id, campaign_id, contact_id
), per_recipient AS (
    SELECT s.list_id, s.campaign_id, s.holdout, o.currency, sum(o.net_total) AS revenue
    FROM sends s
    JOIN orders o ON o.contact_id = s.contact_id AND o.list_id = s.list_id
     AND o.created_at >= s.sent_at AND o.created_at < s.sent_at + make_interval(days => %(days)s)
     AND NOT o.deleted AND o.status <> 'CANCELED'
    GROUP BY s.list_id, s.campaign_id, s.contact_id, s.holdout, o.currency
)
SELECT list_id, campaign_id, holdout, currency, sum(revenue), sum(revenue * revenue)
FROM per_recipient
GROUP BY list_id, campaign_id, holdout, currency
"""


@dataclass(frozen=True)
class Lift:
    """Revenue per recipient of the sent group minus the holdout's, with its 95 % interval."""

    sent_per_recipient: Decimal
    holdout_per_recipient: Decimal
    difference: Decimal
    low: Decimal
    high: Decimal
    incremental_revenue: Decimal  # difference times recipients
    lift: Decimal | None  # difference / the holdout's revenue per recipient (None when that is zero)

    @property
    def significant(self) -> bool:
        """The interval excludes zero."""
        return self.low > 0 or self.high < 0


def lift(
    n_sent: int, sum_sent: Decimal, sq_sent: Decimal, n_hold: int, sum_hold: Decimal, sq_hold: Decimal
) -> Lift | None:
    """From each group's count, sum and sum of squares (recipients without revenue count as zeros)."""
    if n_sent < 2 or n_hold < 2:
        return None

    def mean_var(n: int, total: Decimal, squares: Decimal) -> tuple[Decimal, Decimal]:
        mean = total / n
        return mean, max(Decimal(0), (squares - n * mean * mean) / (n - 1))

    mean_s, var_s = mean_var(n_sent, sum_sent, sq_sent)
    mean_h, var_h = mean_var(n_hold, sum_hold, sq_hold)
    diff = mean_s - mean_h
    margin = Z95 * (var_s / n_sent + var_h / n_hold).sqrt()
    return Lift(mean_s, mean_h, diff, diff - margin, diff + margin, diff * n_sent, diff / mean_h if mean_h else None)


@dataclass(frozen=True)
class CampaignResult:
    list_id: str
    campaign_id: str
    name: str | None
    first_send: Any
    recipients: int
    holdout: int
    openers: int
    clickers: int
    unsubscribed: int
    currency: str | None  # None: no order in any currency
    orders: int
    buyers: int
    revenue: Decimal

    incremental: Lift | None

    @property
    def average_order_value(self) -> Decimal | None:
        return self.revenue / self.orders if self.orders else None

    @property
    def revenue_per_recipient(self) -> Decimal | None:
        return self.revenue / self.recipients if self.recipients else None

    @property
    def conversion(self) -> Decimal | None:
        return Decimal(self.buyers) / self.recipients if self.recipients else None


def campaign_results(
    conn: psycopg.Connection[Any], list_id: str | None = None, window_days: int = 5
) -> list[CampaignResult]:
    """One result per campaign and currency, newest campaign first."""
    params = {"list": list_id, "days": window_days}
    campaigns = conn.execute(CAMPAIGNS, params).fetchall()
    attributed: dict[tuple[str, str], dict[str, tuple[int, int, Decimal]]] = {}
    for lst, campaign, currency, orders, buyers, revenue in conn.execute(ATTRIBUTED, params):
        attributed.setdefault((lst, campaign), {})[currency] = (orders, buyers, revenue)
    window: dict[tuple[str, str, str], dict[bool, tuple[Decimal, Decimal]]] = {}
    for lst, campaign, holdout, currency, total, squares in conn.execute(WINDOW_REVENUE, params):
        window.setdefault((lst, campaign, currency), {})[holdout] = (total, squares)
    results = []
    for lst, campaign, name, first_send, recipients, holdout, openers, clickers, unsubscribed in campaigns:
        found = set(attributed.get((lst, campaign), {})) | {c for (a, b, c) in window if (a, b) == (lst, campaign)}
        currencies: list[str | None] = [*sorted(found)] or [None]
        for currency in currencies:
            orders, buyers, revenue = attributed.get((lst, campaign), {}).get(currency or "", (0, 0, Decimal(0)))
            groups = window.get((lst, campaign, currency or ""), {})
            (sum_s, sq_s), (sum_h, sq_h) = groups.get(False, (Decimal(0),) * 2), groups.get(True, (Decimal(0),) * 2)
            incremental = lift(recipients, sum_s, sq_s, holdout, sum_h, sq_h) if holdout else None
            reach = (recipients, holdout, openers, clickers, unsubscribed)
            results.append(
                CampaignResult(lst, campaign, name, first_send, *reach, currency, orders, buyers, revenue, incremental)
            )
    return results


COLUMNS: Sequence[str] = (
    "list", "campaign", "name", "currency", "recipients", "holdout", "openers", "clickers", "orders", "buyers",
    "revenue", "aov", "revenue_per_recipient", "conversion", "incremental_revenue", "incremental_per_recipient",
    "ci_low", "ci_high", "lift", "significant",
)  # fmt: skip


def _money(value: Decimal | None) -> str:
    return "" if value is None else str(value.quantize(Decimal("0.01")))


def as_row(r: CampaignResult) -> dict[str, str]:
    """Plain strings per column (for the CLI's table, CSV and JSON)."""
    inc = r.incremental
    return {
        "list": r.list_id, "campaign": r.campaign_id, "name": r.name or "", "currency": r.currency or "",
        "recipients": str(r.recipients), "holdout": str(r.holdout), "openers": str(r.openers),
        "clickers": str(r.clickers), "orders": str(r.orders), "buyers": str(r.buyers), "revenue": _money(r.revenue),
        "aov": _money(r.average_order_value), "revenue_per_recipient": _money(r.revenue_per_recipient),
        "conversion": "" if r.conversion is None else f"{r.conversion * 100:.2f}%",
        "incremental_revenue": _money(inc.incremental_revenue) if inc else "",
        "incremental_per_recipient": _money(inc.difference) if inc else "",
        "ci_low": _money(inc.low) if inc else "", "ci_high": _money(inc.high) if inc else "",
        "lift": f"{inc.lift * 100:.1f}%" if inc and inc.lift is not None else "",
        "significant": ("yes" if inc.significant else "no") if inc else "",
    }  # fmt: skip


# Attributed revenue per day after the campaign's first send (day 0 is the send's day, in UTC days).
REVENUE_BY_DAY = """
WITH firsts AS (
    SELECT list_id, campaign_id, min(occurred_at) AS first_send
    FROM campaign_events WHERE type = 'SEND' AND (%(list)s::text IS NULL OR list_id = %(list)s)
    GROUP BY list_id, campaign_id
)
SELECT a.list_id, a.campaign_id, o.currency,
       (o.created_at AT TIME ZONE 'UTC')::date - (f.first_send AT TIME ZONE 'UTC')::date AS day,
       sum(o.net_total) AS revenue
FROM attributions a
JOIN firsts f USING (list_id, campaign_id)
JOIN orders o USING (store_id, source_order_id)
WHERE NOT o.deleted AND o.status <> 'CANCELED'
  AND o.created_at >= f.first_send AND o.created_at < f.first_send + make_interval(days => %(days)s)
GROUP BY 1, 2, 3, 4
"""


def revenue_by_day(
    conn: psycopg.Connection[Any], list_id: str | None = None, days: int = 14
) -> dict[tuple[str, str, str], list[Decimal]]:
    """(list, campaign, currency) → attributed revenue on each of the ``days`` days from the first send."""
    out: dict[tuple[str, str, str], list[Decimal]] = {}
    for lst, campaign, currency, day, revenue in conn.execute(REVENUE_BY_DAY, {"list": list_id, "days": days + 1}):
        if 0 <= day < days:
            out.setdefault((lst, campaign, currency), [Decimal(0)] * days)[day] = revenue
    return out
