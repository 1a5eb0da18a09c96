"""The web app's pages on 1,000,000 orders (200,000 contacts, items, one activity event per order) and
about 5,000,000 campaign events (41 campaigns, each sent to half the contacts, a tenth of them held out,
opens and clicks) with 5 % of the orders credited to a campaign: p50 / p95 of each page fetched from
`ordersync web`, beside the bare SQL behind it, in the same run.

    python bench/web.py [--orders 1000000] [--contacts 200000] [--campaigns 41] [--requests 40]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from common import Timer, free_port, fresh_database, report, settings_with_stack, spawn  # type: ignore[import-not-found]
from segments import load  # type: ignore[import-not-found]

from ordersync.segmentation import build_query, campaigns, rfm
from ordersync.sinks.migrate import migrate
from ordersync.web import insights, queries
from ordersync.web.app import UNITS

ACTIVITY = """
INSERT INTO activity (event_id, type, order_key, store_id, source_order_id, list_id, contact_id, occurred_at,
                      to_status, to_store_status, currency, total, version)
SELECT md5(order_key)::uuid, 'ORDER_CREATED', order_key, store_id, source_order_id, list_id, contact_id, created_at,
       status, store_status, currency, total, version
FROM orders
"""


# Campaign k is sent to the contacts with (n + k) even; n % 10 = 0 are its holdout. A fifth of the others
# open, a twentieth click.
CAMPAIGN_EVENTS = """
INSERT INTO campaign_events (list_id, event_id, contact_id, campaign_id, campaign_name, channel, type, occurred_at,
                             holdout, machine, url)
SELECT c.list_id, k || '-' || v.t || '-' || c.n, c.contact_id, 'camp' || k, 'Campaign ' || k, 'EMAIL', v.t,
       now() - make_interval(days => 10 * (%(campaigns)s - k) + 3) + make_interval(hours => v.h),
       v.t = 'SEND' AND c.n %% 10 = 0, false, NULL
FROM generate_series(1, %(campaigns)s) k
CROSS JOIN (SELECT contact_id, list_id, row_number() OVER (ORDER BY contact_id) AS n FROM contacts) c
CROSS JOIN (VALUES ('SEND', 0), ('OPEN', 2), ('CLICK', 3)) v(t, h)
WHERE (c.n + k) %% 2 = 0
  AND (v.t = 'SEND' OR (c.n %% 10 <> 0 AND ((v.t = 'OPEN' AND c.n %% 5 = k %% 5)
                                            OR (v.t = 'CLICK' AND c.n %% 20 = k %% 20))))
"""
ATTRIBUTIONS = """
INSERT INTO attributions
SELECT store_id, source_order_id, list_id, contact_id, 'camp' || (1 + abs(hashtext(source_order_id)) %% %(campaigns)s),
       'Campaign ' || (1 + abs(hashtext(source_order_id)) %% %(campaigns)s), 'EMAIL', 'CLICK', 'bench',
       created_at - interval '1 day', created_at, false
FROM orders
WHERE contact_id IS NOT NULL AND abs(hashtext(source_order_id)) %% 20 = 0
"""
STALE_DAYS = "INSERT INTO insight_stale_days SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date FROM orders"
SEGMENT = {"all": [{"ordered": {"last_days": 90}}, {"spent": {"op": ">", "value": "200", "currency": "EUR"}}]}
BIGGEST_CAMPAIGN = """
SELECT list_id, campaign_id, count(*) FROM campaign_events GROUP BY list_id, campaign_id ORDER BY 3 DESC LIMIT 1
"""
RECIPIENTS = "SELECT list_id, campaign_id, contact_id FROM campaign_events WHERE list_id = %s AND campaign_id = %s AND type = 'SEND'"
RFM_SEGMENT = {"rfm": {"r": "5", "m": "5", "currency": "EUR"}}
RFM_FORM = "list=1&kind0=rfm&r0=5&m0=5&currency0=EUR&fragment=1"
SEGMENT_FORM = (
    "list=1&match=all&kind0=ordered&when0=last&days0=90"
    "&kind1=spent&op1=%3E&amount1=200&currency1=EUR&when1=ever&fragment=1"
)


def timed(n: int, call: Callable[[], Any]) -> tuple[float, float]:
    """p50 and p95 in milliseconds of ``n`` calls (after one warm-up call)."""
    call()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    q = statistics.quantiles(samples, n=20)
    return statistics.median(samples), q[18]


def get(url: str) -> Callable[[], None]:
    def fetch() -> None:
        with urllib.request.urlopen(url, timeout=30) as response:
            response.read()
            if response.status != 200:
                raise SystemExit(f"{url}: HTTP {response.status}")

    return fetch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--contacts", type=int, default=200_000)
    ap.add_argument("--campaigns", type=int, default=41)
    ap.add_argument("--requests", type=int, default=40)
    args = ap.parse_args()
    settings = settings_with_stack()
    rows: list[tuple[str, str]] = []
    with fresh_database(settings, "web") as url:
        migrate(url)
        with Timer() as t:
            load(url, args.orders, args.contacts)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(ACTIVITY)
                conn.execute("VACUUM ANALYZE activity")
                conn.execute(STALE_DAYS)  # as the sink marks them
                conn.execute(
                    "INSERT INTO rfm_stale_lists SELECT DISTINCT list_id FROM contact_order_stats ON CONFLICT DO NOTHING"
                )
        rows.append(("load (COPY, statistics, activity, VACUUM ANALYZE)", f"{t.seconds:.0f} s"))
        with Timer() as t, psycopg.connect(url, autocommit=True) as conn:
            conn.execute(CAMPAIGN_EVENTS, {"campaigns": args.campaigns})
            conn.execute(ATTRIBUTIONS, {"campaigns": args.campaigns})
            conn.execute("VACUUM ANALYZE campaign_events, attributions")
            events = conn.execute("SELECT count(*) FROM campaign_events").fetchone()
            credited = conn.execute("SELECT count(*) FROM attributions").fetchone()
        rows.append(("campaign events and attributions", f"{events[0] if events else 0:,} events, {credited[0] if credited else 0:,} credited orders, loaded in {t.seconds:.0f} s"))  # fmt: skip
        with psycopg.connect(url) as conn, Timer() as t:
            rfm.refresh(conn)
        rows.append(("RFM bounds from scratch (every list and currency)", f"{t.seconds * 1000:.0f} ms"))
        with psycopg.connect(url) as conn:
            # The busiest contact and one of its orders: the heaviest profile there is.
            cid, store, oid = conn.execute(
                "SELECT contact_id, min(store_id), min(source_order_id) FROM orders GROUP BY contact_id"
                " ORDER BY count(*) DESC LIMIT 1"
            ).fetchone() or (None, None, None)
            email = conn.execute("SELECT email FROM contacts WHERE contact_id = %s", (cid,)).fetchone()
            count = conn.execute("SELECT count(*) FROM orders WHERE contact_id = %s", (cid,)).fetchone()
        rows.append(("busiest contact", f"{count[0] if count else 0} orders"))
        with psycopg.connect(url) as conn, Timer() as t:
            days = insights.refresh(conn)
        rows.append(("Insights summaries from scratch (the background refresher after a backfill)", f"{days} stale days (those within 400 days recomputed) in {t.seconds:.1f} s"))  # fmt: skip
        with psycopg.connect(url) as conn:
            conn.execute(campaigns.MARK_ALL)  # as migration 015 marks them
            with Timer() as t:
                count = campaigns.refresh(conn)
            rows.append(("campaign summaries from scratch (every campaign and recipient)", f"{count} campaigns in {t.seconds:.1f} s"))  # fmt: skip
            lst, campaign, events = conn.execute(BIGGEST_CAMPAIGN).fetchone() or ("", "", 0)
            recipients = conn.execute(RECIPIENTS, (lst, campaign)).fetchall()
            for what, marked, reach in (
                ("a send to all its recipients", recipients, True),
                ("an order of one recipient", recipients[:1], False),
            ):
                timings = []
                for _ in range(5):  # marked as the sink marks them
                    conn.execute(campaigns.MARK_CAMPAIGNS, ([lst], [campaign], [reach], [False]))
                    conn.execute(campaigns.MARK_RECIPIENTS, tuple(map(list, zip(*marked, strict=True))))
                    conn.commit()
                    with Timer() as t:
                        campaigns.refresh(conn)
                    timings.append(t.seconds * 1000)
                rows.append((f"refresh after {what} (largest campaign, {events:,} events, {len(marked):,} recipients marked)", f"median of 5: {sorted(timings)[2]:,.0f} ms"))  # fmt: skip
        with psycopg.connect(url, autocommit=True) as conn:  # what autovacuum would do soon, not while pages are timed
            conn.execute(f"VACUUM ANALYZE campaign_stale, campaign_stale_recipients, {', '.join(campaigns.SUMMARIES)}")
        port = free_port()
        work = Path(tempfile.mkdtemp(prefix="ordersync-bench-web-"))
        web = spawn(["web", "--port", str(port)], {**os.environ, "ORDERSYNC_DATABASE_URL": url}, work / "web.log")
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    get(f"{base}/contacts")()
                    break
                except OSError:
                    if time.monotonic() > deadline or web.poll() is not None:
                        raise SystemExit(
                            f"the web app did not start: {(work / 'web.log').read_text()[-2000:]}"
                        ) from None
                    time.sleep(0.3)
            now = dt.datetime.now(dt.UTC)
            since, weeks, days60 = now - UNITS["month"], now - UNITS["week"], now - UNITS["day"]

            def segment(c: psycopg.Connection[Any]) -> None:
                for count in (True, False):
                    query, params = build_query(SEGMENT, list_id="1", count=count, limit=None if count else 20)
                    c.execute(query, params).fetchall()

            def rfm_segment(c: psycopg.Connection[Any]) -> None:
                rfm.refresh(c, ["1"])
                for count in (True, False):
                    query, params = build_query(RFM_SEGMENT, list_id="1", count=count, limit=None if count else 20)
                    c.execute(query, params).fetchall()

            prefix = (email[0] if email else "c1")[:4]
            pages: list[tuple[str, str, Callable[[psycopg.Connection[Any]], Any]]] = [
                ("contact search (e-mail prefix)", f"/contacts?q={prefix}", lambda c: queries.search_contacts(c, prefix, None, None)),
                ("contact profile, Orders tab", f"/contacts/{cid}", lambda c: (queries.contact(c, str(cid)), queries.stats(c, str(cid)), rfm.contact_scores(c, str(cid)), queries.contact_orders(c, str(cid), 1))),
                ("contact profile, Activity tab", f"/contacts/{cid}?tab=activity", lambda c: queries.contact_activity(c, str(cid), 1)),
                ("order detail", f"/orders/{store}/{oid}", lambda c: (queries.order(c, store, oid), queries.order_items(c, store, oid), queries.order_activity(c, store, oid))),
                ("segment count + preview (ordered in 90 days, spent > 200 EUR)", f"/segments/new?{SEGMENT_FORM}", segment),
                ("segment count + preview (RFM: R 5 and M 5 in EUR)", f"/segments/new?{RFM_FORM}", rfm_segment),
                ("campaigns (results per campaign, revenue per day)", "/campaigns", lambda c: (campaigns.campaign_results(c), campaigns.revenue_by_day(c), campaigns.pending(c))),
                ("insights, per month (12 months, with the RFM grid)", "/insights?by=month", lambda c: (insights.load(c, "month", since.date(), None, None), rfm.grid(c, None))),
                ("insights, per week (26 weeks)", "/insights?by=week", lambda c: insights.load(c, "week", weeks.date(), None, None)),
                ("insights, per day (60 days)", "/insights?by=day", lambda c: insights.load(c, "day", days60.date(), None, None)),
            ]  # fmt: skip
            with psycopg.connect(url) as conn:
                for name, path, sql in pages:
                    try:
                        p50, p95 = timed(args.requests, get(base + path))
                    except urllib.error.HTTPError as exc:  # a page past the app's statement timeout: 503
                        with Timer() as t:
                            sql(conn)
                        rows.append(
                            (name, f"page HTTP {exc.code} (NOT met); bare SQL once: {t.seconds * 1000:,.0f} ms")
                        )
                        continue
                    s50, s95 = timed(args.requests, lambda sql=sql: sql(conn))
                    verdict = "met" if p95 < 150 else "NOT met"
                    rows.append((name, f"page p50 {p50:.0f} ms, p95 {p95:.0f} ms ({verdict}); bare SQL p50 {s50:.0f} ms, p95 {s95:.0f} ms"))  # fmt: skip
        finally:
            web.terminate()
            web.wait(30)
    report(f"Web app pages on {args.orders:,} orders and {args.contacts:,} contacts (target: p95 < 150 ms)", rows)


if __name__ == "__main__":
    main()
