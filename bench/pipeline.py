"""The whole pipeline, end to end: two simulated shops → connectors (+ webhooks) → Kafka → processor →
Kafka → sink → PostgreSQL, as `ordersync demo` wires it.

1. Backfill: the shops' history (``--orders``, shared 3:2 WooCommerce:PrestaShop) until every order is
   in PostgreSQL; orders/s from the first process start.
2. Live: the shops take and change orders at ``--live-rate`` per second in total for ``--live-seconds``;
   latency = PostgreSQL's ``synced_at`` minus the wall-clock moment the simulator made the change
   (milliseconds, not the stores' whole-second timestamps), for every order whose last change is in
   the window, once PostgreSQL holds that change.
3. RSS of every process, sampled each second: the maximum.
Baseline in the same run: raw produce + consume of the same number of 2 KiB messages on this broker.

    python bench/pipeline.py [--orders 100000] [--live-rate 500] [--live-seconds 60]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import statistics
import threading
import time
import urllib.request
import uuid
from collections import defaultdict
from typing import Any

import psycopg
from common import Timer, report, rss_mib, settings_with_stack  # type: ignore[import-not-found]
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from ordersync.demo import prepare, query_one
from ordersync.sinks.migrate import migrate
from ordersync.supervisor import Supervisor


def sim(port: int, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as response:
        return json.loads(response.read())


def raw_round_trip(bootstrap: str, n: int, size: int = 2048) -> float:
    """Messages/s to produce ``n`` messages (acks=all) and consume them back: the broker's own pace."""
    topic = f"bench-baseline-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 20, "compression.type": "lz4"})
    value = b"x" * size
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": topic, "enable.auto.commit": False})
    with Timer() as t:
        for i in range(n):
            while True:
                try:
                    producer.produce(topic, key=str(i).encode(), value=value)
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.flush(120)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(4)])  # no group join to wait for
        got = 0
        while got < n:
            got += sum(1 for m in consumer.consume(10000, 1.0) if not m.error())
    consumer.close()
    admin.delete_topics([topic])
    return n / t.seconds


def percentiles(values: list[float]) -> str:
    if len(values) < 2:
        return f"only {len(values)} measured"
    q = statistics.quantiles(values, n=100)
    return f"p50 {q[49] * 1000:,.0f} ms, p95 {q[94] * 1000:,.0f} ms, p99 {q[98] * 1000:,.0f} ms, max {max(values) * 1000:,.0f} ms (n={len(values)})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=100_000)
    ap.add_argument("--live-rate", type=float, default=500.0, help="new or changed orders per second, both shops")
    ap.add_argument("--live-seconds", type=float, default=60.0)
    args = ap.parse_args()
    settings = settings_with_stack()
    baseline = raw_round_trip(settings.kafka_bootstrap, args.orders)
    setup = prepare(settings, args.orders, args.live_rate / 2, database="ordersync_bench", name="bench-pipeline")
    migrate(setup.db_url)  # the sink would too, but the progress query below must find the tables
    supervisor = Supervisor(setup.sims + setup.pipeline, setup.work / "logs" / setup.prefix.rstrip("."))
    rss: dict[str, float] = defaultdict(float)
    done = threading.Event()

    def sample() -> None:
        while not done.wait(1.0):
            for child in supervisor.children:
                if child.proc is not None and child.proc.poll() is None:
                    with contextlib.suppress(OSError):  # it exited between the check and the read
                        rss[child.name] = max(rss[child.name], rss_mib(child.proc.pid))

    # The shops must not change anything before the backfill is measured: pause them as they come up.
    for child in setup.sims:
        supervisor.start(child)
    ports = (setup.woo_port, setup.ps_port)
    deadline = time.monotonic() + 300
    paused: set[int] = set()
    while len(paused) < 2:
        if time.monotonic() > deadline:
            raise SystemExit(f"the simulators did not start; logs in {supervisor.log_dir}")
        for port in set(ports) - paused:
            try:
                sim(port, "/__sim/faults", {"live_paused": True})
                paused.add(port)
            except OSError:
                time.sleep(0.2)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    watcher = threading.Thread(target=supervisor.watch, daemon=True)
    try:
        with Timer() as backfill:
            watcher.start()  # starts the pipeline (the shops run already)
            while (landed := query_one(setup.db_url, "SELECT count(*) FROM orders") or 0) < args.orders:
                if time.monotonic() - backfill.start > 3600:
                    raise SystemExit(f"backfill incomplete after an hour: {landed}/{args.orders}")
                time.sleep(1.0)
        live_from = time.time()
        for port in ports:
            sim(port, "/__sim/faults", {"live_paused": False})
        time.sleep(args.live_seconds)  # the measured window itself, not a synchronisation
        for port in ports:
            sim(port, "/__sim/faults", {"live_paused": True})
        live_to = time.time()
        truth = {("woo", k): v for k, v in sim(setup.woo_port, "/__sim/truth").items()}
        truth |= {("ps", k): v for k, v in sim(setup.ps_port, "/__sim/truth").items()}
        changed = {k: v for k, v in truth.items() if v["changed_at"] and live_from <= v["changed_at"] <= live_to}
        latencies: dict[tuple[str, str], float] = {}
        drain_deadline = time.monotonic() + 300
        while len(latencies) < len(changed) and time.monotonic() < drain_deadline:
            with psycopg.connect(setup.db_url) as conn:
                rows = conn.execute(
                    "SELECT store_id, source_order_id, store_status, deleted, extract(epoch FROM synced_at)"
                    " FROM orders WHERE synced_at >= %s",
                    (dt.datetime.fromtimestamp(live_from, dt.UTC),),
                ).fetchall()
            for store, oid, status, deleted, synced in rows:
                want = changed.get((store, oid))
                # The row must hold the last change: same status and written after it was made.
                if want is None or float(synced) < want["changed_at"] or want["trashed"] != deleted:
                    continue
                if deleted or want["status"] == status:
                    latencies[(store, oid)] = float(synced) - want["changed_at"]
            if len(latencies) < len(changed):
                time.sleep(1.0)
    finally:
        done.set()
        supervisor.stop()
        supervisor.shutdown(grace_s=30)
    live_changes = len(changed)
    report(
        f"End-to-end pipeline: {args.orders:,} orders of history, then {args.live_rate:g} changes/s for {args.live_seconds:g} s",
        [
            ("baseline: raw produce+consume, 2 KiB msgs", f"{baseline:,.0f} msg/s"),
            (
                "backfill, shops → PostgreSQL",
                f"{args.orders / backfill.seconds:,.0f} orders/s ({backfill.seconds:.1f} s)",
            ),
            ("live changes made", f"{live_changes:,} ({live_changes / (live_to - live_from):,.0f}/s achieved)"),
            ("live latency, change → PostgreSQL", percentiles(list(latencies.values()))),
            (
                "  WooCommerce (webhooks + polls)",
                percentiles([v for (store, _), v in latencies.items() if store == "woo"]),
            ),
            ("  PrestaShop (polls)", percentiles([v for (store, _), v in latencies.items() if store == "ps"])),
            ("live changes never seen in PostgreSQL", f"{live_changes - len(latencies)}"),
            *((f"max RSS {name}", f"{mib:,.0f} MiB") for name, mib in sorted(rss.items())),
        ],
    )


if __name__ == "__main__":
    main()
