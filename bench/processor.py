"""Processor throughput: raw order events → one faust worker (normalise + join + diff + produce),
against the raw aiokafka consume rate of the same topic, measured in the same run; worker RSS.

    python bench/processor.py [--orders 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from common import Timer, end_offsets, report, rss_mib, settings_with_stack, spawn, unique_prefix  # type: ignore[import-not-found]
from confluent_kafka import Producer

from ordersync.topics_admin import create_topics
from runtime.settings import Settings
from schemas import encode


def raw_event(i: int, rng: random.Random) -> bytes:
    items = [
        {"id": j + 1, "name": f"Product {p}", "product_id": p, "variation_id": 0, "quantity": 1 + j, "total": f"{10 + p}.50", "sku": f"S{p}", "price": 10.5}
        for j, p in enumerate(rng.sample(range(1, 200), 3))
    ]  # fmt: skip
    doc = {
        "id": i, "number": str(i), "status": rng.choice(["processing", "completed", "pending", "cancelled"]), "currency": "EUR",
        "date_created_gmt": "2025-01-01T10:00:00", "date_modified_gmt": f"2025-01-02T10:{i % 60:02d}:00",
        "total": "99.50", "total_tax": "10.00", "shipping_total": "4.00", "discount_total": "0.00",
        "customer_id": i % 20000, "billing": {"email": f"c{i % 20000}@example.com", "first_name": "A"}, "line_items": items,
        "refunds": [], "coupon_lines": [],
    }  # fmt: skip
    event = {
        "event_id": str(uuid.uuid4()), "store_id": "bench", "platform": "WOOCOMMERCE", "list_id": "1", "obtained_by": "BACKFILL",
        "operation": "UPSERT", "source_order_id": str(i), "source_modified_at": None, "fetched_at": __import__("datetime").datetime.now(__import__("datetime").UTC),
        "document": json.dumps(doc).replace("/", "\\/"),
        "context": {"store_timezone": "Europe/Lisbon", "currency_iso": None, "order_state": None, "customer": None,
                    "product_categories": [{"product_id": str(it["product_id"]), "categories": [{"id": "1", "name": "Shoes", "slug": None}]} for it in items]},
    }  # fmt: skip
    return encode("raw_order_event", event)


def domain_cost(rng: random.Random, n: int = 3000) -> float:
    """CPU per order of the pure functions the worker runs, without faust or Kafka."""
    from processors.activity import decide
    from processors.join import on_order, routing_key
    from processors.normalise import normalise_order
    from schemas import decode

    events = [raw_event(i, rng) for i in range(1, n + 1)]
    contacts: dict[str, Any] = {}
    pending: dict[str, Any] = {}
    start = time.perf_counter()
    for data in events:
        raw = decode(data, "raw_order_event")
        result = normalise_order(raw)
        decision = decide(None, result.order)
        out = on_order(
            contacts,
            pending,
            routing_key(result.order, result.contact),
            result.order,
            decision.activities,
            result.contact,
        )
        for o in out.orders:
            encode("order", o)
        for a in out.activities:
            encode("activity", a)
        for c in out.contacts:
            encode("contact", c)
    return (time.perf_counter() - start) / n * 1e6


async def raw_consume(bootstrap: str, topic: str, n: int) -> float:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"raw-{uuid.uuid4().hex}", auto_offset_reset="earliest",
                                enable_auto_commit=False, isolation_level="read_committed")  # fmt: skip
    await consumer.start()
    seen = 0
    start = time.perf_counter()
    try:
        while seen < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10000)
            seen += sum(len(v) for v in batch.values())
    finally:
        await consumer.stop()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=100_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument(
        "--profile", action="store_true", help="Run the worker under cProfile and print where its time goes."
    )
    args = ap.parse_args()
    base = settings_with_stack()
    prefix = unique_prefix("processor")
    settings = Settings.from_env({"ORDERSYNC_TOPIC_PREFIX": prefix, "ORDERSYNC_PARTITIONS": str(args.partitions),
                                  "ORDERSYNC_KAFKA_BOOTSTRAP": base.kafka_bootstrap, "ORDERSYNC_DATABASE_URL": base.database_url})  # fmt: skip
    create_topics(settings)
    rng = random.Random(1)
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "linger.ms": 20,
            "compression.type": "lz4",
            "batch.size": 1_000_000,
        }
    )
    for i in range(1, args.orders + 1):  # ids start at 1: WooCommerce has no order 0
        while True:
            try:
                producer.produce(prefix + "raw.orders", key=f"bench:{i}".encode(), value=raw_event(i, rng))
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(120)
    baseline_s = asyncio.run(raw_consume(settings.kafka_bootstrap, prefix + "raw.orders", args.orders))
    domain_us = domain_cost(rng)

    work = Path(tempfile.mkdtemp(prefix="ordersync-bench-"))
    env = {
        "ORDERSYNC_TOPIC_PREFIX": prefix,
        "ORDERSYNC_PARTITIONS": str(args.partitions),
        "ORDERSYNC_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
    }
    worker = spawn(
        ["process", "--app-id", prefix + "bench", "--data-dir", str(work / "state"), "--loglevel", "warn"],
        env,
        work / "worker.log",
    )
    samples: list[tuple[float, int]] = []
    try:
        with Timer() as t:
            done = 0
            while done < args.orders:
                if worker.poll() is not None:
                    sys.exit(f"worker died:\n{(work / 'worker.log').read_text()[-3000:]}")
                time.sleep(1)
                done = end_offsets(settings.kafka_bootstrap, prefix + "orders") + end_offsets(
                    settings.kafka_bootstrap, prefix + "dlq"
                )
                samples.append((time.perf_counter(), done))
        rss = rss_mib(worker.pid)
    finally:
        worker.terminate()
        worker.wait(60)
    first = next((s for s in samples if s[1] > 0), samples[-1])
    steady = (samples[-1][1] - first[1]) / max(1e-6, samples[-1][0] - first[0])
    report(
        f"Processor, one worker, {args.orders:,} WooCommerce orders (3 items each), {args.partitions} partitions",
        [
            ("wall time incl. worker start", f"{t.seconds:.1f} s → {args.orders / t.seconds:,.0f} orders/s"),
            ("steady rate (first output → last)", f"{steady:,.0f} orders/s"),
            ("baseline: raw aiokafka consume", f"{args.orders / baseline_s:,.0f} msg/s ({baseline_s:.1f} s)"),
            (
                "domain code alone (decode, normalise, diff, join, encode)",
                f"{domain_us:.0f} µs/order → {1e6 / domain_us:,.0f} orders/s on one core",
            ),
            (
                "worker RSS at the end",
                f"{rss:.0f} MiB ({args.orders:,} orders and {min(args.orders, 20000):,} contacts of state)",
            ),
        ],
    )


if __name__ == "__main__":
    main()
