"""Segment query times on 1,000,000 orders and 200,000 contacts (with the migrations' indexes).

python bench/segments.py [--orders 1000000] [--contacts 200000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import random
import statistics
import time
import uuid

import psycopg
from common import Timer, fresh_database, report, settings_with_stack  # type: ignore[import-not-found]

from ordersync.segmentation import build_query
from ordersync.sinks.migrate import migrate
from ordersync.sinks.statements import SUMMARIES, from_scratch

NOW = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
CATS = ["Shoes", "Bags", "Shirts", "Sale", "Jackets", "Accessories", "Scarves", "Belts"]
SEGMENTS = {
    "ordered in the last 30 days": {"ordered": {"last_days": 30}},
    "ordered between two dates": {"ordered": {"from": "2026-01-01", "to": "2026-02-01"}},
    ">= 5 orders": {"order_count": {"op": ">=", "value": 5}},
    ">= 2 COMPLETED in 365 days": {"order_count": {"op": ">=", "value": 2, "status": "COMPLETED", "last_days": 365}},
    "spent > 200 EUR (all time)": {"spent": {"op": ">", "value": 200, "currency": "EUR"}},
    "spent > 200 EUR in 90 days": {"spent": {"op": ">", "value": 200, "currency": "EUR", "last_days": 90}},
    "average order value > 150 EUR": {"average_order_value": {"op": ">", "value": 150, "currency": "EUR"}},
    "bought product P17": {"bought": {"product_id": "P17"}},
    "bought SKU-17": {"bought": {"sku": "SKU-17"}},
    "bought category Shoes": {"bought": {"category": "Shoes"}},
    "has a PENDING order": {"has_status": "PENDING"},
    "abandoned checkout (2 h)": {"abandoned_checkout": {"hours": 2}},
    "lapsed 180 days": {"lapsed": {"days": 180}},
    "combined: 30 days AND Shoes AND spent > 100": {
        "all": [
            {"ordered": {"last_days": 30}},
            {"bought": {"category": "Shoes"}},
            {"spent": {"op": ">", "value": 100, "currency": "EUR"}},
        ]
    },
}


def load(url: str, n_orders: int, n_contacts: int) -> None:
    rng = random.Random(7)
    ids = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(n_contacts)]
    with psycopg.connect(url) as conn:
        buf = io.StringIO()
        for i, cid in enumerate(ids):
            buf.write(f"{cid}\t1\tc{i}@example.com\tImport\t2024-01-01 00:00:00+00\t2024-01-01 00:00:00+00\t1\n")
        with conn.cursor().copy(
            "COPY contacts (contact_id, list_id, email, origin, created_at, updated_at, version) FROM STDIN"
        ) as cp:
            cp.write(buf.getvalue())
        statuses = ["COMPLETED"] * 6 + ["PENDING", "CREATED", "CANCELED", "UNKNOWN"]
        chunk = 100_000
        for start in range(0, n_orders, chunk):
            ob, ib = io.StringIO(), io.StringIO()
            for i in range(start, min(n_orders, start + chunk)):
                # Most contacts order a few times, some often: a mild skew over all contacts.
                cid = ids[min(n_contacts - 1, int(rng.expovariate(1.0) * n_contacts / 3))]
                created = NOW - dt.timedelta(minutes=rng.randrange(60 * 24 * 900))
                total = rng.randrange(500, 50000) / 100
                status = rng.choice(statuses)
                cur = "EUR" if rng.random() < 0.8 else "CHF"
                ob.write(
                    f"s\t{i}\ts:{i}\tWOOCOMMERCE\t{i}\t1\t{cid}\tx@example.com\tt\t{status}\t{status.lower()}\t{cur}\t{total}\t{total}\t0\t0\t0\t0\t{total}\t{created.isoformat()}\t{created.isoformat()}\t1\n"
                )
                for j in range(rng.choice([1, 2, 3, 3, 4, 5])):
                    p = rng.randrange(2000)
                    ib.write(f"s\t{i}\t{j}\tP{p}\tSKU-{p}\tProduct {p}\t1\t10\t10\t{{{rng.choice(CATS)}}}\n")
            with conn.cursor().copy(
                "COPY orders (store_id, source_order_id, order_key, platform, order_number, list_id, contact_id, contact_email, matched, "
                "status, store_status, currency, total, subtotal, tax_total, shipping_total, discount_total, refunded_total, net_total, "
                "created_at, modified_at, version) FROM STDIN"
            ) as cp:
                cp.write(ob.getvalue())
            with conn.cursor().copy(
                "COPY order_items (store_id, source_order_id, item_id, product_id, sku, name, quantity, unit_price, total, categories) FROM STDIN"
            ) as cp:
                cp.write(ib.getvalue())
        for table in SUMMARIES:  # what the sink keeps current, computed once for everyone
            conn.execute(f"INSERT INTO {table} {from_scratch(table)}")
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--contacts", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    settings = settings_with_stack()
    with fresh_database(settings, "segments") as url:
        migrate(url)
        with Timer() as t:
            load(url, args.orders, args.contacts)
        rows = [("load (COPY + stats + VACUUM ANALYZE)", f"{t.seconds:.0f} s")]
        with psycopg.connect(url) as conn:
            items = conn.execute("SELECT count(*) FROM order_items").fetchone()
            rows.append(
                ("data", f"{args.orders:,} orders, {items[0] if items else 0:,} items, {args.contacts:,} contacts")
            )
            for name, segment in SEGMENTS.items():
                query, params = build_query(segment, list_id="1", now=NOW, count=True)
                times = []
                for _ in range(args.runs):
                    start = time.perf_counter()
                    found = conn.execute(query, params).fetchone()
                    times.append((time.perf_counter() - start) * 1000)
                rows.append(
                    (
                        name,
                        f"median {statistics.median(times):7.1f} ms  max {max(times):7.1f} ms  ({found[0] if found else 0:,} contacts)",
                    )
                )
    report(f"Segment queries (count), median and max of {args.runs} runs each", rows)


if __name__ == "__main__":
    main()
