"""Processor throughput: one `ordersync process` worker on pre-published raw orders, and in the same run
on the same topic, the baselines: a raw librdkafka consume, a bare faust pass-through agent, and a Quix
Streams app doing decode → normalise → encode. Each rate is steady (first output → last), read from
the end offsets of what the program writes; the worker's CPU seconds and RSS are printed too.

The raw topic is filled the way the connector fills it: pages of 100 orders, each page's orders that
share a partition in one raw_order_batch message (``--singles``: one message per order, as webhooks).

    python bench/processor.py [--orders 100000] [--singles] [--no-quix] [--scale] [--automations] [--attribution]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from common import (  # type: ignore[import-not-found]
    ROOT,
    end_offsets,
    process_cpu,
    produce_waiting,
    report,
    rss_mib,
    settings_with_stack,
    spawn,
    unique_prefix,
)
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from ordersync.runtime.settings import Settings
from ordersync.schemas import encode
from ordersync.schemas.batches import batch_of, by_partition
from ordersync.schemas.topics import TopicNames
from ordersync.topics_admin import create_topics

PAGE = 100
QUIX_VENV = ROOT / ".bench-venvs" / "quix"


def raw_event(i: int, contacts: int, rng: random.Random) -> bytes:
    items = [
        {"id": j + 1, "name": f"Product {p}", "product_id": p, "variation_id": 0, "quantity": 1 + j, "total": f"{10 + p}.50", "sku": f"S{p}", "price": 10.5}
        for j, p in enumerate(rng.sample(range(1, 200), 3))
    ]  # fmt: skip
    doc = {
        "id": i, "number": str(i), "status": rng.choice(["processing", "completed", "pending", "cancelled"]), "currency": "EUR",
        "date_created_gmt": "2025-01-01T10:00:00", "date_modified_gmt": f"2025-01-02T10:{i % 60:02d}:00",
        "total": "99.50", "total_tax": "10.00", "shipping_total": "4.00", "discount_total": "0.00",
        "customer_id": i % contacts, "billing": {"email": f"c{i % contacts}@example.com", "first_name": "A"}, "line_items": items,
        "refunds": [], "coupon_lines": [],
    }  # fmt: skip
    event = {
        "event_id": str(uuid.uuid4()), "store_id": "bench", "platform": "WOOCOMMERCE", "list_id": "1", "obtained_by": "BACKFILL",
        "operation": "UPSERT", "source_order_id": str(i), "source_modified_at": None, "fetched_at": dt.datetime.now(dt.UTC),
        "document": json.dumps(doc).replace("/", "\\/"),
        "context": {"store_timezone": "Europe/Lisbon", "currency_iso": None, "order_state": None, "customer": None,
                    "product_categories": [{"product_id": str(it["product_id"]), "categories": [{"id": "1", "name": "Shoes", "slug": None}]} for it in items]},
    }  # fmt: skip
    return encode("raw_order_event", event)


def fill(bootstrap: str, topic: str, orders: int, partitions: int, singles: bool) -> int:
    """Publish the orders; returns the number of messages."""
    rng = random.Random(1)
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "lz4", "batch.size": 1_000_000}
    )
    messages = 0

    def produce(key: str, value: bytes, partition: int = -1) -> None:
        produce_waiting(producer, topic, key, value, partition=partition)

    contacts = max(1, orders // 5)
    for start in range(1, orders + 1, PAGE):  # ids start at 1: WooCommerce has no order 0
        page = [(f"bench:{i}", raw_event(i, contacts, rng)) for i in range(start, min(orders, start + PAGE - 1) + 1)]
        if singles:
            for key, value in page:
                produce(key, value)
            messages += len(page)
            continue
        for partition, group in by_partition(page, partitions):
            produce(group[0][0], batch_of(str(uuid.uuid4()), [v for _, v in group]), partition)
            messages += 1
    producer.flush(300)
    return messages


def raw_consume(bootstrap: str, topic: str) -> float:
    """Seconds to read the whole topic with librdkafka."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"raw-{uuid.uuid4().hex}", "enable.partition.eof": True}
    )
    parts = list(consumer.list_topics(topic, timeout=30).topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    eof: set[int] = set()
    start = 0.0
    while len(eof) < len(parts):
        for m in consumer.consume(10000, 1.0):
            start = start or time.perf_counter()  # from the first message: not the group join
            if m.error():
                eof.add(m.partition())
    consumer.close()
    return time.perf_counter() - start


class Run:
    """A program that reads the raw topic, followed through the end offsets of what it writes."""

    def __init__(
        self, proc: subprocess.Popen[bytes], log: Path, others: list[subprocess.Popen[bytes]] | None = None
    ) -> None:
        self.proc, self.log, self.others = proc, log, others or []
        self.steady = self.cpu = self.rss = 0.0

    def follow(self, done: Callable[[], int], want: int, deadline_s: float = 3600) -> Run:
        samples: list[tuple[float, int]] = []
        end = time.monotonic() + deadline_s
        try:
            while time.monotonic() < end:
                if self.proc.poll() is not None:
                    sys.exit(f"{self.proc.args} died:\n{self.log.read_text()[-3000:]}")
                n = done()
                samples.append((time.perf_counter(), n))
                self.cpu = sum(process_cpu(p.pid) for p in (self.proc, *self.others))
                self.rss = max(self.rss, rss_mib(self.proc.pid))
                if n >= want:
                    break
                time.sleep(0.5)
            else:
                sys.exit(f"{self.proc.args}: {samples[-1][1]} of {want} within {deadline_s} s")
        finally:
            for proc in (self.proc, *self.others):
                proc.terminate()
            for proc in (self.proc, *self.others):
                proc.wait(60)
        first = next((s for s in samples if s[1] > 0), samples[-1])
        self.steady = (samples[-1][1] - first[1]) / max(1e-6, samples[-1][0] - first[0])
        return self


def quix_python() -> Path | None:
    python = QUIX_VENV / "bin" / "python"
    if not python.exists():
        print("(making the Quix Streams virtualenv for the baseline: .bench-venvs/quix)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(QUIX_VENV)], check=True)
        ok = subprocess.run([str(python), "-m", "pip", "install", "-q", "quixstreams==3.28.1", "fastavro>=1.9,<2"])
        if ok.returncode != 0:
            return None
    return python


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=100_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--singles", action="store_true", help="one message per order instead of page batches")
    ap.add_argument("--no-quix", action="store_true", help="skip the Quix Streams baseline")
    ap.add_argument("--scale", action="store_true", help="then two workers of one app against the one")
    ap.add_argument("--automations", action="store_true", help="then one worker with automations on for the list")
    ap.add_argument("--attribution", action="store_true", help="then one worker with campaign attribution on")
    args = ap.parse_args()
    base = settings_with_stack()
    bootstrap = base.kafka_bootstrap
    prefix = unique_prefix("processor")
    env = {
        "ORDERSYNC_TOPIC_PREFIX": prefix,
        "ORDERSYNC_PARTITIONS": str(args.partitions),
        "ORDERSYNC_KAFKA_BOOTSTRAP": bootstrap,
    }
    create_topics(Settings.from_env({**env, "ORDERSYNC_DATABASE_URL": base.database_url}))
    raw = TopicNames.with_prefix(prefix).raw_orders
    messages = fill(bootstrap, raw, args.orders, args.partitions, args.singles)
    per_message = args.orders / messages
    consume_s = raw_consume(bootstrap, raw)
    work = Path(tempfile.mkdtemp(prefix="ordersync-bench-"))

    def offsets(topic: str) -> Callable[[], int]:
        return lambda: end_offsets(bootstrap, topic)

    passthrough = Run(
        subprocess.Popen([sys.executable, str(ROOT / "bench" / "faust_passthrough.py"), raw, prefix + "passthrough", bootstrap,
                          str(args.partitions)], stdout=(work / "faust.log").open("wb"), stderr=subprocess.STDOUT),
        work / "faust.log",
    ).follow(offsets(prefix + "passthrough"), messages)  # fmt: skip

    quix: Run | None = None
    python = None if args.no_quix else quix_python()
    if python is not None:
        quix = Run(
            subprocess.Popen([str(python), str(ROOT / "bench" / "quix_baseline.py"), raw, prefix + "quix", bootstrap],
                             stdout=(work / "quix.log").open("wb"), stderr=subprocess.STDOUT),
            work / "quix.log",
        ).follow(offsets(prefix + "quix"), args.orders)  # fmt: skip

    def workers(n: int, tag: str = "", config: Path | None = None) -> Run:
        """``n`` workers of one app (they share the partitions), writing under their own prefix."""
        out = f"{prefix}w{n}{tag}."
        extra = ["--config", str(config)] if config else []
        procs = [
            spawn(["process", "--app-id", out + "app", "--output-prefix", out, "--data-dir", str(work / f"state-{n}{tag}-{i}"),
                   "--loglevel", "warn", *extra], env, work / f"worker-{n}{tag}-{i}.log")
            for i in range(n)
        ]  # fmt: skip
        run = Run(procs[0], work / f"worker-{n}-0.log", procs[1:])
        written = TopicNames.with_prefix(out)
        return run.follow(
            lambda: end_offsets(bootstrap, written.orders) + end_offsets(bootstrap, written.dlq), args.orders
        )

    worker = workers(1)
    scaled = workers(2) if args.scale else None
    automated = None
    if args.automations:  # every order also folded into its contact's purchase summary (ordersync.processors.triggers)
        rules = work / "stores.toml"
        rules.write_text('[automations."1"]\n')
        automated = workers(1, "a", rules)
    attributed = None
    if (
        args.attribution
    ):  # every order also decided against its contact's campaign touches (ordersync.processors.attribution)
        rules = work / "attribution.toml"
        rules.write_text('[attribution."1"]\n')
        attributed = workers(1, "b", rules)

    shape = "one message per order" if args.singles else f"page batches, {per_message:.1f} orders per message"
    rows = [
        ("ordersync worker, steady", f"{worker.steady:,.0f} orders/s (target ≥ 5,000)"),
        ("  worker CPU / RSS", f"{worker.cpu:.1f} s → {worker.cpu / args.orders * 1e6:.0f} µs per order; RSS {worker.rss:.0f} MiB"),
        ("baseline: librdkafka consume", f"{messages / consume_s:,.0f} msg/s = {args.orders / consume_s:,.0f} orders/s"),
        ("baseline: faust pass-through agent", f"{passthrough.steady:,.0f} msg/s = {passthrough.steady * per_message:,.0f} orders/s; CPU {passthrough.cpu:.1f} s"),
    ]  # fmt: skip
    if automated is not None:
        rows.append(("worker with automations on", f"{automated.steady:,.0f} orders/s = {automated.steady / worker.steady:.2f}x; "
                     f"CPU {automated.cpu / args.orders * 1e6:.0f} µs per order"))  # fmt: skip
    if attributed is not None:
        rows.append(("worker with attribution on", f"{attributed.steady:,.0f} orders/s = {attributed.steady / worker.steady:.2f}x; "
                     f"CPU {attributed.cpu / args.orders * 1e6:.0f} µs per order"))  # fmt: skip
    if scaled is not None:
        rows.append(
            (
                "two workers of one app (shared partitions)",
                f"{scaled.steady:,.0f} orders/s = {scaled.steady / worker.steady:.2f}x one worker",
            )
        )
    if quix is not None:
        rows.append(
            ("baseline: Quix Streams decode → normalise → encode", f"{quix.steady:,.0f} orders/s; CPU {quix.cpu:.1f} s")
        )
    report(f"Processor, one worker, {args.orders:,} WooCommerce orders (3 items, {args.orders // 5:,} contacts), "
           f"{args.partitions} partitions, {shape}", rows)  # fmt: skip


if __name__ == "__main__":
    main()
