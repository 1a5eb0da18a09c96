"""Sink throughput (orders with ~3 items, their activity) against the raw COPY rate of the same rows
into the same PostgreSQL in the same run.

    python bench/sink.py [--orders 100000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import psycopg
from common import (  # type: ignore[import-not-found]
    Timer,
    cpu_seconds,
    cpu_used,
    fresh_database,
    produce_waiting,
    report,
    settings_with_stack,
    unique_prefix,
)
from confluent_kafka import Producer

from ordersync.runtime.settings import Settings
from ordersync.schemas import encode
from ordersync.schemas.headers import order_headers
from ordersync.schemas.topics import TopicNames
from ordersync.sinks.consumer import PostgresSink, SinkOptions, collect_rarely
from ordersync.sinks.migrate import migrate
from ordersync.sinks.rows import ACTIVITY_COLUMNS, ITEM_COLUMNS, ORDER_COLUMNS, activity_row, item_rows, order_row
from ordersync.topics_admin import create_topics

sys.path.insert(0, ".")
from tests.sink_data import random_history


def copy_final_rows(conn: psycopg.Connection[Any], orders: list[dict[str, Any]], acts: list[dict[str, Any]]) -> None:
    with conn.cursor() as cur:
        with cur.copy(f"COPY orders ({', '.join(ORDER_COLUMNS)}) FROM STDIN") as cp:
            for o in orders:
                cp.write_row(order_row(o))
        with cur.copy(f"COPY order_items ({', '.join(ITEM_COLUMNS)}) FROM STDIN") as cp:
            for o in orders:
                for row in item_rows(o):
                    cp.write_row(row)
        with cur.copy(f"COPY activity ({', '.join(ACTIVITY_COLUMNS)}) FROM STDIN") as cp:
            for a in acts:
                cp.write_row(activity_row(a))
    conn.commit()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=100_000)
    ap.add_argument("--batch-size", type=int, default=SinkOptions.batch_size, help="Messages per sink batch.")
    ap.add_argument("--profile", action="store_true", help="Profile the sink (cProfile) and print where its time goes.")
    args = ap.parse_args()
    base = settings_with_stack()
    prefix = unique_prefix("sink")
    settings = Settings.from_env(
        {
            "ORDERSYNC_TOPIC_PREFIX": prefix,
            "ORDERSYNC_KAFKA_BOOTSTRAP": base.kafka_bootstrap,
            "ORDERSYNC_DATABASE_URL": base.database_url,
        }
    )
    create_topics(settings)
    orders, acts, contacts = random_history(args.orders // 2, max(10, args.orders // 10))  # two versions per order
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "linger.ms": 20,
            "compression.type": "lz4",
            "batch.size": 1_000_000,
        }
    )

    def send(topic: str, key: str, value: bytes, headers: list[tuple[str, bytes]] | None = None) -> None:
        produce_waiting(producer, topic, key, value, headers=headers)

    names = TopicNames.with_prefix(prefix)
    for c in contacts:
        send(names.contacts, f"1:{c['email']}", encode("contact", c))
    for o in orders:
        send(names.orders, o["order_key"], encode("order", o), order_headers(o))  # as the processor does
    for a in acts:
        send(names.activity, a["order_key"], encode("activity", a))
    producer.flush(300)
    messages = len(orders) + len(acts) + len(contacts)
    item_count = sum(len(o["items"]) for o in orders)

    # Baseline: the final rows COPYed straight into the same tables, best of 3 runs, with the cyclic GC
    # held off as the sink holds it off (a conservative baseline: the fastest plain COPY we saw).
    copy_seconds = []
    for run in range(3):
        with fresh_database(settings, f"copy{run}") as url:
            migrate(url)
            with collect_rarely(), psycopg.connect(url) as conn, Timer() as copy_t:
                copy_final_rows(conn, orders[1::2], acts)  # the latest version of each order
            copy_seconds.append(copy_t.seconds)
    copy_best = min(copy_seconds)
    copy_rows = len(orders) // 2 + sum(len(o["items"]) for o in orders[1::2]) + len(acts)

    with fresh_database(settings, "sink") as url:
        sink = PostgresSink(
            SinkOptions(settings.kafka_bootstrap, url, prefix, prefix + "sink", batch_size=args.batch_size)
        )
        profiler = __import__("cProfile").Profile() if args.profile else None
        cpu_before = cpu_seconds()
        with Timer() as sink_t:
            if profiler:
                profiler.enable()
            totals = sink.run(idle_exit_s=3, install_signals=False)
            if profiler:
                profiler.disable()
        cpu_after = cpu_seconds()
        sink_seconds = sink_t.seconds - 3  # minus the idle wait that ends the run
        with psycopg.connect(url) as conn:
            landed = conn.execute("SELECT sum(next_offset) FROM sink_offsets").fetchone()
    assert landed and landed[0] == messages, (landed, messages)
    report(
        f"PostgreSQL sink, {len(orders):,} order messages (2 versions x {len(orders) // 2:,} orders, {item_count / len(orders):.1f} items each), {len(acts):,} activity, {len(contacts):,} contacts",
        [
            ("sink", f"{messages / sink_seconds:,.0f} messages/s ({sink_seconds:.1f} s, {totals['batches']} batches)"),
            (
                "sink, rows written",
                f"{(len(orders) + item_count + len(acts)) / sink_seconds:,.0f} rows/s (orders + items + activity, all versions)",
            ),
            (
                "CPU during the sink run",
                cpu_used(cpu_before, cpu_after)
                + f" (of {(os.cpu_count() or 1) * sink_t.seconds:.0f} core-s available)",
            ),
            (
                "baseline: raw COPY of the final rows",
                f"{copy_rows / copy_best:,.0f} rows/s (best of {len(copy_seconds)}: "
                + ", ".join(f"{s:.1f}" for s in sorted(copy_seconds))
                + " s; no indexes dropped)",
            ),
            (
                "sink / baseline",
                f"{((len(orders) + item_count + len(acts)) / sink_seconds) / (copy_rows / copy_best):.2f}",
            ),
        ],
    )
    if profiler:
        import pstats

        print("\n  where the sink's time goes (cProfile, top 20 by own time):")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    _ = time


if __name__ == "__main__":
    main()
