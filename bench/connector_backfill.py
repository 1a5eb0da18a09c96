"""Backfill throughput: shop → connector → raw topic, against the raw confluent-kafka produce rate of the
very same messages measured in the same run. The shop is a double serving pre-generated pages from memory
(bench/shop_double.py), so the figure is the connector's; ``--simulator`` uses the full simulator instead.

    python bench/connector_backfill.py [--orders 100000] [--simulator]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import Timer, free_port, process_cpu, report, rss_mib, settings_with_stack, spawn, unique_prefix  # type: ignore[import-not-found]
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from ordersync.schemas import decode
from ordersync.schemas.topics import TopicNames


def read_all(bootstrap: str, topic: str, stamps: list[int] | None = None) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of ``topic``; ``stamps`` collects the messages' create times (ms)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"b-{uuid.uuid4().hex}", "enable.partition.eof": True})
    parts = list(c.list_topics(topic, timeout=30).topics[topic].partitions)
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    out, eof = [], set()
    while len(eof) < len(parts):
        for m in c.consume(10000, 1.0):
            if m.error():
                eof.add(m.partition())
            else:
                out.append((m.key(), m.value()))
                if stamps is not None:
                    stamps.append(m.timestamp()[1])
    c.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=100_000)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--simulator", action="store_true", help="the full WooCommerce simulator instead of the double")
    ap.add_argument(
        "--profile", action="store_true", help="Run the connector under cProfile and print where its time goes."
    )
    args = ap.parse_args()
    settings = settings_with_stack()
    prefix = unique_prefix("backfill")
    work = Path(tempfile.mkdtemp(prefix="ordersync-bench-"))
    port = free_port()
    env = {"ORDERSYNC_TOPIC_PREFIX": prefix, "ORDERSYNC_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "ORDERSYNC_DATABASE_URL": settings.database_url,
           "B_WOO": "ck_bench:cs_bench", "B_KEY": "ck_bench", "B_SECRET": "cs_bench"}  # fmt: skip
    if args.simulator:
        sim = spawn(
            ["simulate", "woocommerce", "--port", str(port), "--orders", str(args.orders), "--key-env", "B_WOO"],
            env,
            work / "sim.log",
        )
    else:
        sim = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("shop_double.py")), str(port), str(args.orders)],
            stdout=(work / "sim.log").open("wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.time() + 600
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.5)
    (work / "stores.toml").write_text(
        f'[[store]]\nid = "bench"\nplatform = "woocommerce"\nbase_url = "http://127.0.0.1:{port}"\nlist_id = "1"\n'
        f'consumer_key_env = "B_KEY"\nconsumer_secret_env = "B_SECRET"\npage_concurrency = {args.concurrency}\n'
    )
    try:
        with Timer() as t:
            connect_args = ["connect", "--config", str(work / "stores.toml")]
            if args.profile:
                conn = subprocess.Popen(
                    [sys.executable, "-m", "cProfile", "-o", str(work / "connect.prof"), "-m", "ordersync.cli", *connect_args],
                    env={**os.environ, **env}, stdout=(work / "connect.log").open("wb"), stderr=subprocess.STDOUT,
                )  # fmt: skip
            else:
                conn = spawn(connect_args, env, work / "connect.log")
            peak = 0.0
            conn_cpu = sim_cpu = 0.0
            while conn.poll() is None:
                peak = max(peak, rss_mib(conn.pid))
                conn_cpu = max(conn_cpu, process_cpu(conn.pid))
                sim_cpu = process_cpu(sim.pid)
                time.sleep(0.5)
        if conn.returncode != 0:
            sys.exit(f"connector failed:\n{(work / 'connect.log').read_text()[-3000:]}")
        sim_rss = rss_mib(sim.pid)
    finally:
        sim.terminate()
    stamps: list[int] = []
    messages = read_all(settings.kafka_bootstrap, TopicNames.with_prefix(prefix).raw_orders, stamps)
    published = sum(len(decode(v).get("events", [None])) for _, v in messages)
    publishing_s = max(1e-3, (max(stamps) - min(stamps)) / 1000)  # first order produced → last
    baseline_topic = prefix + "baseline"
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "enable.idempotence": True, "acks": "all",
                         "linger.ms": 20, "compression.type": "lz4", "batch.size": 1_000_000})  # fmt: skip
    with Timer() as b:
        for key, value in messages:
            while True:
                try:
                    producer.produce(baseline_topic, key=key, value=value)
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.flush(120)
    size = sum(len(v) for _, v in messages) / max(1, len(messages))
    report(
        f"Connector backfill, {'WooCommerce simulator' if args.simulator else 'shop double (pre-generated pages)'}, {args.orders:,} orders",
        [
            ("orders published", f"{published:,} (+ customers)"),
            ("connector wall time", f"{t.seconds:.1f} s"),
            (
                "connector throughput",
                f"{published / publishing_s:,.0f} orders/s steady (first raw message → last, {publishing_s:.1f} s); "
                f"{published / t.seconds:,.0f} orders/s over the process's life (start-up included, sampled every 0.5 s)",
            ),
            (
                "baseline: raw produce of the same messages",
                f"{len(messages) / b.seconds:,.0f} msg/s = {published / b.seconds:,.0f} orders/s ({b.seconds:.1f} s)",
            ),
            ("mean raw message size", f"{size / 1024:.1f} KiB ({len(messages):,} messages: page batches)"),
            (
                "CPU seconds: connector / shop",
                f"{conn_cpu:.1f} s / {sim_cpu:.1f} s (2 cores shared by both and the broker)",
            ),
            (
                "connector CPU per order",
                f"{conn_cpu / max(1, published) * 1e6:.0f} µs → at most {published / max(conn_cpu, 1e-6):,.0f} orders/s per core",
            ),
            ("connector peak RSS", f"{peak:.0f} MiB"),
            ("shop RSS", f"{sim_rss:.0f} MiB"),
        ],
    )
    print(f"  logs: {work}")
    if args.profile:
        import pstats

        print("\n  where the connector's time goes (cProfile, top 15 by own time):")
        pstats.Stats(str(work / "connect.prof")).sort_stats("tottime").print_stats(15)
    _ = os


if __name__ == "__main__":
    main()
