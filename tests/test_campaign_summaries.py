"""Campaign summaries (migration 015) kept by marking: after every batch through the sink's writer (new
sends, opens and clicks, orders in and out of the windows after the sends, status changes, refunds, moves
to another contact, deletes and purges, credits before and after their orders) and a refresh, the results
equal those recomputed from scratch, on a real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import psycopg

from ordersync.schemas.identity import contact_id
from ordersync.segmentation import campaigns
from ordersync.sinks.migrate import migrate
from ordersync.sinks.writer import Batch, prepare, write_batch
from tests.samples import attribution, campaign_event
from tests.sink_data import mixed_batches

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
SPAN_H = 24 * 40  # orders over 40 days, sends every few days: many orders fall in a window, many do not
SUMMARIES = ", ".join(campaigns.SUMMARIES)
TABLES = f"campaign_events, attributions, campaign_stale, campaign_stale_recipients, {SUMMARIES}"


CREDITED = """
SELECT store_id || ':' || source_order_id FROM orders JOIN attributions USING (store_id, source_order_id)
WHERE NOT deleted AND status <> 'CANCELED' AND net_total > 0 ORDER BY 1 LIMIT 1
"""
IN_A_WINDOW = """
WITH sends AS (SELECT list_id, campaign_id, contact_id, min(occurred_at) AS sent_at
               FROM campaign_events WHERE type = 'SEND' GROUP BY 1, 2, 3)
SELECT o.store_id || ':' || o.source_order_id FROM orders o JOIN sends s USING (list_id, contact_id)
WHERE NOT o.deleted AND o.status <> 'CANCELED' AND o.net_total > 0
  AND o.created_at >= s.sent_at AND o.created_at < s.sent_at + interval '5 days'
  AND NOT EXISTS (SELECT FROM attributions a WHERE a.store_id = o.store_id AND a.source_order_id = o.source_order_id)
ORDER BY 1 LIMIT 1
"""
BUYER_NEVER_SENT = """
SELECT c.list_id, c.contact_id, c.email, min(o.created_at) FROM contacts c JOIN orders o USING (contact_id)
WHERE NOT o.deleted AND o.status <> 'CANCELED' AND o.net_total > 0
  AND NOT EXISTS (SELECT FROM campaign_events e WHERE e.contact_id = c.contact_id)
GROUP BY 1, 2, 3 ORDER BY 3 LIMIT 1
"""
NEVER_SENT = """
SELECT email FROM contacts c
WHERE list_id = %s AND NOT EXISTS (SELECT FROM campaign_events e WHERE e.contact_id = c.contact_id) ORDER BY 1 LIMIT 1
"""


def send_events(rng: random.Random, contacts: list[dict[str, Any]], batch: int) -> list[dict[str, Any]]:
    """Batch 0: three campaigns per list, a third of each held out; later even batches: late sends, opens
    and clicks (odd batches bring orders only, so only the orders' marking can keep them right)."""
    if batch % 2:
        return []
    events = []
    for c in rng.sample(contacts, 90 if batch == 0 else 12):
        for k in range(3) if batch == 0 else [rng.randrange(3)]:
            campaign = f"{c['list_id']}-c{k}"
            sent = NOW - dt.timedelta(hours=SPAN_H - 24 * 12 * k - rng.randrange(0, 48))
            kind = "SEND" if batch == 0 or rng.random() < 0.4 else rng.choice(["OPEN", "CLICK"])
            events.append({
                **campaign_event(), "event_id": f"b{batch}-{campaign}-{c['email']}-{kind}", "list_id": c["list_id"],
                "contact_id": c["contact_id"], "email": c["email"], "campaign_id": campaign,
                "campaign_name": campaign.upper(), "type": kind, "occurred_at": sent + dt.timedelta(hours=batch),
                "holdout": kind == "SEND" and int(c["contact_id"][:2], 16) % 3 == 0, "machine": rng.random() < 0.1,
            })  # fmt: skip
    return events


def credit(o: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    return {
        **attribution(), "order_key": o["order_key"], "store_id": o["store_id"], "source_order_id": o["source_order_id"],
        "list_id": o["list_id"], "contact_id": o["contact_id"] or contact_id(o["list_id"], "x@example.com"),
        "campaign_id": f"{o['list_id']}-c{rng.randrange(3)}", "order_created_at": o["created_at"],
    }  # fmt: skip


def results(conn: psycopg.Connection[Any]) -> tuple[Any, ...]:
    return campaigns.campaign_results(conn), campaigns.revenue_by_day(conn)


def from_scratch(conn: psycopg.Connection[Any]) -> tuple[Any, ...]:
    conn.execute(f"TRUNCATE {SUMMARIES}")
    conn.execute(campaigns.MARK_ALL)
    campaigns.refresh(conn)
    return results(conn)


def test_summaries_equal_a_recomputation_from_scratch_after_mixed_batches(database_url: str) -> None:
    migrate(database_url)
    rng = random.Random(5)
    contacts, batches, purges = mixed_batches(seed=9, now=NOW, span_hours=SPAN_H)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE contacts, orders, order_items, contact_order_stats, {TABLES}")
        prepare(conn)
        write_batch(conn, Batch(contacts=contacts, messages=1), "campaigns-test")
        late: list[dict[str, Any]] = []  # credits written one batch after their orders
        marked = []
        for b, (orders, purged) in enumerate(zip(batches, purges, strict=True)):
            credits = [credit(o, rng) for o in orders if o["version"] == 1 and rng.random() < 0.3]
            early = [c for c in credits if rng.random() < 0.2]  # a credit can arrive before its order
            batch_credits = late + [c for c in credits if c not in early]
            write_batch(conn, Batch(attributions=early, messages=1), "campaigns-test")
            write_batch(conn, Batch(orders=orders, purged_orders=purged, campaign_events=send_events(rng, contacts, b),
                                    attributions=batch_credits[: len(batch_credits) // 2], messages=1), "campaigns-test")  # fmt: skip
            late = batch_credits[len(batch_credits) // 2 :]
            marked.append(campaigns.pending(conn)[0])
            campaigns.refresh(conn)
            assert campaigns.pending(conn)[0] == 0 and campaigns.refresh(conn) == 0
            kept = results(conn)
            assert kept == from_scratch(conn), f"batch {b}"
        assert all(marked) and sum(r.orders for r in kept[0]) > 20 and any(r.incremental for r in kept[0])
        assert sum(r.revenue for r in kept[0]) > 0 and kept[1]

        # One change at a time, each of which alters some campaign's figures and nothing else marks them.
        current = {o["order_key"]: o for orders in batches for o in orders}
        for store_id, oid in (p for purged in purges for p in purged):
            current.pop(f"{store_id}:{oid}")

        def alone(batch: Batch) -> None:
            before = results(conn)
            write_batch(conn, batch, "campaigns-test")
            campaigns.refresh(conn)
            after = results(conn)
            assert after != before and after == from_scratch(conn)

        (key,) = conn.execute(CREDITED).fetchone() or (None,)
        alone(Batch(purged_orders=[(current[key]["store_id"], current[key]["source_order_id"])], messages=1))
        (key,) = conn.execute(IN_A_WINDOW).fetchone() or (None,)
        refunded = {**current[key], "refunded_total": current[key]["total"], "net_total": 0, "version": 9}
        alone(Batch(orders=[refunded], messages=1))
        # A first send to a contact who bought the day after: a new recipient with revenue in its window.
        lst, cid, mail, bought = conn.execute(BUYER_NEVER_SENT).fetchone() or (None,) * 4
        send = {**campaign_event(), "event_id": "late-send", "list_id": lst, "contact_id": str(cid), "email": mail,
                "campaign_id": f"{lst}-c0", "type": "SEND", "occurred_at": bought - dt.timedelta(days=1), "holdout": False}  # fmt: skip
        alone(Batch(campaign_events=[send], messages=1))
        (key,) = conn.execute(IN_A_WINDOW).fetchone() or (None,)
        (email,) = conn.execute(NEVER_SENT, (current[key]["list_id"],)).fetchone() or (None,)
        moved = {
            **current[key],
            "contact_email": email,
            "contact_id": contact_id(current[key]["list_id"], email),
            "version": 9,
        }
        alone(Batch(orders=[moved], messages=1))
        # A decision changed by a touch read late: the order leaves one campaign for another; then a
        # tombstone: it is credited to nothing. Both campaigns' figures follow.
        (key,) = conn.execute(CREDITED).fetchone() or (None,)
        (was,) = conn.execute(
            "SELECT campaign_id FROM attributions WHERE store_id || ':' || source_order_id = %s", (key,)
        ).fetchone() or (None,)
        other = next(c for c in (f"{current[key]['list_id']}-c{k}" for k in range(3)) if c != was)
        alone(
            Batch(
                attributions=[{**credit(current[key], rng), "campaign_id": other, "touch_event_id": "late"}], messages=1
            )
        )
        alone(Batch(unattributed={key}, messages=1))
        assert conn.execute(
            "SELECT count(*) FROM attributions WHERE store_id || ':' || source_order_id = %s", (key,)
        ).fetchone() == (0,)


def test_the_kept_window_is_the_one_the_sink_marks_with(database_url: str) -> None:
    migrate(database_url)
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT campaign_kept_window() = make_interval(days => %s)", (campaigns.KEPT_WINDOW_DAYS,))
        assert row.fetchone() == (True,)


def test_a_refresh_recomputes_a_campaign_whole_from_many_marked_recipients() -> None:
    many = [("1", "spring", f"c{i}") for i in range(campaigns.WHOLE_CAMPAIGN_FROM)]
    few = [("1", "news", "c1"), ("2", "autumn", "c2")]
    planned, recipients = campaigns._plan([("1", "news", True, False), ("1", "news", False, False)], many + few)
    assert sorted(planned) == [("1", "news", True, False), ("1", "spring", False, True), ("2", "autumn", False, False)]
    assert recipients == few  # spring's recipients are all recomputed with it
