"""What each campaign brought (docs/campaigns.md): its reach, the revenue of the orders credited to it,
and, where it kept a holdout group, the revenue it actually added.

Attributed revenue is the net total (after refunds) of the orders credited to the campaign
(``attributions``, decided by the processor), cancelled and deleted orders excluded: it follows the
orders as they change. It overstates what the campaign caused, since many of those buyers would have
bought anyway. Incremental revenue answers that: every recipient's revenue in the ``window_days`` after
the send, whatever it is credited to, averaged over the sent group and over the holdout group (people
who were sent nothing on purpose); the difference per recipient, with its 95 % confidence interval
(normal approximation, unequal variances), times the recipients, is what sending added.

The figures are kept per campaign and per recipient (migration 015): the sink marks the campaigns and
recipients a batch changes, and ``refresh`` recomputes what is marked (the web app every few seconds, the
report before it reads; docs/campaigns.md). Money stays Decimal throughout; each figure is per currency.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg

Z95 = Decimal("1.959964")
KEPT_WINDOW_DAYS = 5  # the summaries' window: campaign_kept_window() in migration 015 (a test checks both)
CHART_DAYS = 14  # days after the first send kept for the page's chart

# What a computation is for: the campaigns (reach and credited revenue) and the recipients (window
# revenue) the sink marked, or a list's campaigns (incremental revenue over another window).
WANTED = """
CREATE TEMP TABLE IF NOT EXISTS wanted_campaigns (
    list_id text, campaign_id text, reach boolean, every_recipient boolean, PRIMARY KEY (list_id, campaign_id)
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS wanted_recipients (
    list_id text, campaign_id text, contact_id uuid, PRIMARY KEY (list_id, campaign_id, contact_id)
) ON COMMIT DELETE ROWS
"""
FILL_CAMPAIGNS = """
INSERT INTO wanted_campaigns SELECT * FROM unnest(%s::text[], %s::text[], %s::boolean[], %s::boolean[])
"""
FILL_RECIPIENTS = """
INSERT INTO wanted_recipients SELECT * FROM unnest(%s::text[], %s::text[], %s::uuid[]) ON CONFLICT DO NOTHING
"""

REACH = """
SELECT list_id, campaign_id, max(campaign_name), min(occurred_at) FILTER (WHERE type = 'SEND'),
       count(DISTINCT contact_id) FILTER (WHERE type = 'SEND' AND NOT holdout),
       count(DISTINCT contact_id) FILTER (WHERE type = 'SEND' AND holdout),
       count(DISTINCT contact_id) FILTER (WHERE type = 'OPEN' AND NOT machine),
       count(DISTINCT contact_id) FILTER (WHERE type = 'CLICK'),
       count(DISTINCT contact_id) FILTER (WHERE type = 'UNSUBSCRIBE'),
       now()
FROM wanted_campaigns JOIN campaign_events USING (list_id, campaign_id)
WHERE reach
GROUP BY list_id, campaign_id
"""

ATTRIBUTED = """
SELECT a.list_id, a.campaign_id, o.currency, count(*), count(DISTINCT o.contact_id), sum(o.net_total)
FROM wanted_campaigns w
JOIN attributions a USING (list_id, campaign_id)
JOIN orders o USING (store_id, source_order_id)
WHERE NOT o.deleted AND o.status <> 'CANCELED'
GROUP BY a.list_id, a.campaign_id, o.currency
"""

# Attributed revenue per day after the campaign's first send (day 0 is the send's day, in UTC days). The
# first send is read from campaign_reach, recomputed before whenever a new event came in.
REVENUE_BY_DAY = """
WITH firsts AS (
    SELECT list_id, campaign_id, first_send FROM wanted_campaigns JOIN campaign_reach USING (list_id, campaign_id)
)
SELECT a.list_id, a.campaign_id, o.currency,
       (o.created_at AT TIME ZONE 'UTC')::date - (f.first_send AT TIME ZONE 'UTC')::date AS day,
       sum(o.net_total)
FROM attributions a
JOIN firsts f USING (list_id, campaign_id)
JOIN orders o USING (store_id, source_order_id)
WHERE NOT o.deleted AND o.status <> 'CANCELED'
  AND o.created_at >= f.first_send AND o.created_at < f.first_send + make_interval(days => %(days)s + 1)
  AND (o.created_at AT TIME ZONE 'UTC')::date - (f.first_send AT TIME ZONE 'UTC')::date < %(days)s
GROUP BY 1, 2, 3, 4
"""


def _recipient_revenue(sends: str, where: str = "true") -> str:
    """Per recipient and currency: its group and its revenue in the window after its (first) send, for the
    SEND events of ``sends`` (rows that meet ``where``). Recipients without orders in the window have no row."""
    return f"""
WITH sends AS (
    SELECT list_id, campaign_id, contact_id, bool_or(holdout) AS holdout, min(occurred_at) AS sent_at
    FROM {sends}
    WHERE {where} AND type = 'SEND'
    GROUP BY list_id, campaign_id, contact_id
)
SELECT s.list_id, s.campaign_id, s.contact_id, o.currency, s.holdout, sum(o.net_total)
FROM sends s
-- One look-up per recipient in the orders' (contact_id, created_at) index, however many recipients: the
-- planner would otherwise sort every order to merge them with a large campaign's (3 s for 100,000
-- recipients of 1,000,000 orders); OFFSET 0 keeps it from flattening the subquery into that join.
CROSS JOIN LATERAL (
    SELECT currency, net_total FROM orders o
    WHERE o.contact_id = s.contact_id AND NOT o.deleted
      AND o.created_at >= s.sent_at AND o.created_at < s.sent_at + make_interval(days => %(days)s)
      AND o.list_id = s.list_id AND o.status <> 'CANCELED'
    OFFSET 0
) o
GROUP BY s.list_id, s.campaign_id, s.contact_id, o.currency, s.holdout
"""


RECIPIENT_REVENUE = _recipient_revenue(
    "wanted_recipients JOIN campaign_events USING (list_id, campaign_id, contact_id)"
)
EVERY_RECIPIENT_REVENUE = _recipient_revenue(
    "wanted_campaigns JOIN campaign_events USING (list_id, campaign_id)", "every_recipient"
)
WHOLE_CAMPAIGN_FROM = 5_000  # marked recipients from which a campaign's window is recomputed whole (cheaper)


def _window_sums(per_recipient: str) -> str:
    """Per campaign, group (sent or holdout) and currency: the sum and the sum of squares of each
    recipient's revenue in the window. Recipients without orders add zero to both (counted in REACH)."""
    return f"""
SELECT list_id, campaign_id, holdout, currency, sum(revenue), sum(revenue * revenue)
FROM ({per_recipient}) r (list_id, campaign_id, contact_id, currency, holdout, revenue)
WHERE (list_id, campaign_id) IN (SELECT list_id, campaign_id FROM wanted_campaigns)
GROUP BY list_id, campaign_id, holdout, currency
"""


WINDOW_SUMS = _window_sums("TABLE campaign_recipient_revenue")
WINDOW_FROM_RAW = _window_sums(  # another window than the kept one: every recipient of the wanted campaigns
    _recipient_revenue("wanted_campaigns JOIN campaign_events USING (list_id, campaign_id)")
)

# A refresh takes the marks in a short transaction of its own (a sink marking the same campaign
# meanwhile never waits for the computation; its mark stays for the next refresh), then replaces the
# marked rows in one transaction, so a reader sees either the old or the new figures. Every marked
# recipient's campaign is marked too, so the campaigns waiting are those in campaign_stale.
CLAIM_CAMPAIGNS = "DELETE FROM campaign_stale RETURNING list_id, campaign_id, reach, every_recipient"
CLAIM_RECIPIENTS = "DELETE FROM campaign_stale_recipients RETURNING list_id, campaign_id, contact_id"
MARK_CAMPAIGNS = """
INSERT INTO campaign_stale SELECT * FROM unnest(%s::text[], %s::text[], %s::boolean[], %s::boolean[]) ORDER BY 1, 2
ON CONFLICT (list_id, campaign_id) DO UPDATE
SET reach = campaign_stale.reach OR EXCLUDED.reach,
    every_recipient = campaign_stale.every_recipient OR EXCLUDED.every_recipient
"""
MARK_RECIPIENTS = """
INSERT INTO campaign_stale_recipients SELECT * FROM unnest(%s::text[], %s::text[], %s::uuid[]) ORDER BY 1, 2, 3
ON CONFLICT DO NOTHING
"""
# Every campaign whole, as migration 015 marks them: a recomputation from scratch.
MARK_ALL = """
INSERT INTO campaign_stale SELECT DISTINCT list_id, campaign_id, true, true FROM campaign_events
ON CONFLICT (list_id, campaign_id) DO UPDATE SET reach = true, every_recipient = true
"""
PER_CAMPAIGN = {  # table → (rows of the wanted campaigns it is recomputed for, query), in this order
    "campaign_reach": ("reach", REACH),
    "campaign_attributed": ("true", ATTRIBUTED),
    "campaign_days": ("true", REVENUE_BY_DAY),
}
FORGET_RECIPIENTS = (
    "DELETE FROM campaign_recipient_revenue WHERE (list_id, campaign_id, contact_id) IN (TABLE wanted_recipients)"
)
FORGET_EVERY_RECIPIENT = """
DELETE FROM campaign_recipient_revenue
WHERE (list_id, campaign_id) IN (SELECT list_id, campaign_id FROM wanted_campaigns WHERE every_recipient)
"""
FORGET_WINDOW_SUMS = (
    "DELETE FROM campaign_window WHERE (list_id, campaign_id) IN (SELECT list_id, campaign_id FROM wanted_campaigns)"
)
SUMMARIES = ("campaign_reach", "campaign_attributed", "campaign_days", "campaign_recipient_revenue", "campaign_window")
PENDING = "SELECT (SELECT count(*) FROM campaign_stale), (SELECT max(computed_at) FROM campaign_reach)"

_LIST = "%(list)s::text IS NULL OR list_id = %(list)s"
READ_REACH = f"""
SELECT list_id, campaign_id, name, first_send, recipients, holdout, openers, clickers, unsubscribed
FROM campaign_reach WHERE {_LIST}
ORDER BY first_send DESC NULLS LAST, list_id, campaign_id
"""
READ_ATTRIBUTED = (
    f"SELECT list_id, campaign_id, currency, orders, buyers, revenue FROM campaign_attributed WHERE {_LIST}"
)
READ_WINDOW = f"SELECT list_id, campaign_id, holdout, currency, revenue, squares FROM campaign_window WHERE {_LIST}"
READ_DAYS = f"SELECT list_id, campaign_id, currency, day, revenue FROM campaign_days WHERE {_LIST}"


Campaign = tuple[str, str, bool, bool]  # list, campaign, reach to recompute, every recipient's window too
Recipient = tuple[str, str, Any]  # list, campaign, contact id


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> tuple[list[Any], ...]:
    return tuple(list(column) for column in zip(*rows, strict=True)) if rows else ([],) * width


def _want(conn: psycopg.Connection[Any], campaigns: Sequence[Campaign], recipients: Sequence[Recipient] = ()) -> None:
    conn.execute(WANTED)
    conn.execute("DELETE FROM wanted_campaigns; DELETE FROM wanted_recipients")  # within an outer transaction too
    conn.execute(FILL_CAMPAIGNS, _columns(campaigns, 4))
    conn.execute(FILL_RECIPIENTS, _columns(recipients, 3))
    conn.execute("ANALYZE wanted_campaigns, wanted_recipients")


def _plan(campaigns: Sequence[Campaign], recipients: Sequence[Recipient]) -> tuple[list[Campaign], list[Recipient]]:
    """The claimed marks as one computation: every recipient's campaign, once; a campaign with many marked
    recipients (a send) recomputed whole, its recipients' marks then redundant."""
    merged: dict[tuple[str, str], list[bool]] = {}
    for lst, campaign, reach, every in campaigns:
        flags = merged.setdefault((lst, campaign), [False, False])
        flags[0], flags[1] = flags[0] or reach, flags[1] or every
    for (lst, campaign), count in Counter((r[0], r[1]) for r in recipients).items():
        flags = merged.setdefault((lst, campaign), [False, False])
        flags[1] = flags[1] or count >= WHOLE_CAMPAIGN_FROM
    whole = {key for key, (_, every) in merged.items() if every}
    return (
        [(lst, campaign, reach, every) for (lst, campaign), (reach, every) in merged.items()],
        [r for r in recipients if (r[0], r[1]) not in whole],
    )


def refresh(conn: psycopg.Connection[Any]) -> int:
    """Recompute what the sink marked: the reach of campaigns with new events, the credited revenue of
    marked campaigns, the window revenue of marked recipients, and their campaigns' sums; how many
    campaigns were recomputed. A computation that fails puts the marks back."""
    with conn.transaction():
        claimed_campaigns: list[Campaign] = [tuple(row) for row in conn.execute(CLAIM_CAMPAIGNS)]
        claimed_recipients: list[Recipient] = [tuple(row) for row in conn.execute(CLAIM_RECIPIENTS)]
    if not claimed_campaigns and not claimed_recipients:
        return 0
    campaigns, recipients = _plan(claimed_campaigns, claimed_recipients)
    try:
        with conn.transaction():
            _want(conn, campaigns, recipients)
            for table, (which, query) in PER_CAMPAIGN.items():
                if which == "reach" and not any(c[2] for c in campaigns):
                    continue  # as below: no campaign with new events, no reach to read
                conn.execute(
                    f"DELETE FROM {table} WHERE (list_id, campaign_id) IN "
                    f"(SELECT list_id, campaign_id FROM wanted_campaigns WHERE {which})"
                )
                days = CHART_DAYS if table == "campaign_days" else KEPT_WINDOW_DAYS
                conn.execute(f"INSERT INTO {table} {query}", {"days": days})
            whole = [c for c in campaigns if c[3]]
            for forget, query, needed in (
                (FORGET_RECIPIENTS, RECIPIENT_REVENUE, recipients),
                (FORGET_EVERY_RECIPIENT, EVERY_RECIPIENT_REVENUE, whole),
            ):
                if needed:  # the planner reads a whole campaign's sends even when no row is wanted
                    conn.execute(forget)
                    conn.execute(f"INSERT INTO campaign_recipient_revenue {query}", {"days": KEPT_WINDOW_DAYS})
            conn.execute(FORGET_WINDOW_SUMS)
            conn.execute(f"INSERT INTO campaign_window {WINDOW_SUMS}")
    except BaseException:
        if not conn.closed and not conn.broken:
            with conn.transaction():
                conn.execute(MARK_CAMPAIGNS, _columns(campaigns, 4))
                conn.execute(MARK_RECIPIENTS, _columns(recipients, 3))
        raise
    return len(campaigns)


def pending(conn: psycopg.Connection[Any]) -> tuple[int, Any]:
    """How many campaigns wait for a refresh, and when the newest summary was computed."""
    row = conn.execute(PENDING).fetchone()
    return (int(row[0]), row[1]) if row else (0, None)


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
    conn: psycopg.Connection[Any], list_id: str | None = None, window_days: int = KEPT_WINDOW_DAYS
) -> list[CampaignResult]:
    """One result per campaign and currency, newest campaign first, as of the last refresh. Incremental
    revenue over another window than the kept one is computed from the raw events and orders."""
    params = {"list": list_id}
    campaigns = conn.execute(READ_REACH, params).fetchall()
    attributed: dict[tuple[str, str], dict[str, tuple[int, int, Decimal]]] = {}
    for lst, campaign, currency, orders, buyers, revenue in conn.execute(READ_ATTRIBUTED, params):
        attributed.setdefault((lst, campaign), {})[currency] = (orders, buyers, revenue)
    if window_days == KEPT_WINDOW_DAYS:
        sums = conn.execute(READ_WINDOW, params).fetchall()
    else:
        with conn.transaction():
            _want(conn, [(row[0], row[1], False, False) for row in campaigns])
            sums = conn.execute(WINDOW_FROM_RAW, {"days": window_days}).fetchall()
    window: dict[tuple[str, str, str], dict[bool, tuple[Decimal, Decimal]]] = {}
    for lst, campaign, holdout, currency, total, squares in sums:
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


def revenue_by_day(
    conn: psycopg.Connection[Any], list_id: str | None = None
) -> dict[tuple[str, str, str], list[Decimal]]:
    """(list, campaign, currency) → attributed revenue on each of the CHART_DAYS days from the first send,
    as of the last refresh."""
    out: dict[tuple[str, str, str], list[Decimal]] = {}
    for lst, campaign, currency, day, revenue in conn.execute(READ_DAYS, {"list": list_id}):
        out.setdefault((lst, campaign, currency), [Decimal(0)] * CHART_DAYS)[day] = revenue
    return out
