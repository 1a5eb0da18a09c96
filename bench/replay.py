"""Replay: ``--orders`` orders (3 items, one contact per 5 orders) already in the raw topics, rebuilt into
a fresh database by ``ordersync replay`` end to end (processor and sink together on this machine, with
Kafka and PostgreSQL). Prints orders/s and the CPU seconds of each component; the baseline in the same
run is a bare librdkafka read of the same raw topic.

    python bench/replay.py [--orders 1000000]
"""

from __future__ import annotations

import argparse
import os
import threading
from pathlib import Path

from common import Timer, cpu_seconds, cpu_used, fresh_database, report, settings_with_stack, unique_prefix  # type: ignore[import-not-found]
from processor import fill, raw_consume  # type: ignore[import-not-found]

from ordersync.replay import run_replay
from ordersync.runtime.settings import Settings
from ordersync.schemas.topics import TopicNames
from ordersync.sinks.migrate import migrate
from ordersync.topics_admin import create_topics

COMPONENTS = {"processor": "ordersync.cli\0process\0", "sink": "ordersync.cli\0sink\0"}


def component_cpu(stop: threading.Event, totals: dict[str, float]) -> None:
    """The CPU seconds of every processor and sink process, sampled each second (the last reading of
    each process counts), plus the sink's writer processes (children of the sink)."""
    tick = os.sysconf("SC_CLK_TCK")
    seen: dict[int, tuple[str, float]] = {}
    while not stop.wait(1.0):
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                cmdline = (proc / "cmdline").read_bytes()
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            name = next((n for n, marker in COMPONENTS.items() if marker.encode() in cmdline), None)
            if name is None and b"sinks.writer_process" in cmdline:
                name = "sink"
            if name is not None:
                seen[int(proc.name)] = (name, (int(fields[11]) + int(fields[12])) / tick)
        for name in COMPONENTS:
            totals[name] = sum(cpu for n, cpu in seen.values() if n == name)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--partitions", type=int, default=4)
    args = ap.parse_args()
    base = settings_with_stack()
    prefix = unique_prefix("replay")
    env = {"ORDERSYNC_TOPIC_PREFIX": prefix, "ORDERSYNC_PARTITIONS": str(args.partitions),
           "ORDERSYNC_KAFKA_BOOTSTRAP": base.kafka_bootstrap, "ORDERSYNC_DATABASE_URL": base.database_url}  # fmt: skip
    os.environ.update(env)
    settings = Settings.from_env(env)
    create_topics(settings)
    with Timer() as filling:
        messages = fill(
            base.kafka_bootstrap, TopicNames.with_prefix(prefix).raw_orders, args.orders, args.partitions, singles=False
        )
    consume_s = raw_consume(base.kafka_bootstrap, TopicNames.with_prefix(prefix).raw_orders)
    totals: dict[str, float] = {}
    stop = threading.Event()
    sampler = threading.Thread(target=component_cpu, args=(stop, totals), daemon=True)
    with fresh_database(base, "replay") as target:
        migrate(target)
        before = cpu_seconds()
        sampler.start()
        try:
            with Timer() as replay:
                run_replay(settings, target, config=None, since=None, timeout_s=3 * 3600)
        finally:
            stop.set()
            sampler.join()
        after = cpu_seconds()
        import psycopg

        with psycopg.connect(target) as conn:
            landed = conn.execute("SELECT count(*) FROM orders").fetchone()
            contacts = conn.execute("SELECT count(*) FROM contacts").fetchone()
    minutes = replay.seconds / 60
    report(
        f"Replay: {args.orders:,} orders (3 items, {args.orders // 5:,} contacts) from the raw topics into a fresh database",
        [
            ("replay wall time", f"{minutes:.1f} min → {args.orders / replay.seconds:,.0f} orders/s (target ≤ 6 min)"),
            ("rows in the new database", f"{landed[0] if landed else 0:,} orders, {contacts[0] if contacts else 0:,} contacts"),
            ("CPU: processor / sink", f"{totals.get('processor', 0):.0f} s / {totals.get('sink', 0):.0f} s"),
            ("CPU: machine-wide during the replay", cpu_used(before, after)),
            ("raw topic", f"{messages:,} messages (page batches), filled in {filling.seconds:.0f} s"),
            ("baseline: librdkafka read of the raw topic", f"{args.orders / consume_s:,.0f} orders/s ({consume_s:.1f} s)"),
        ],
    )  # fmt: skip


if __name__ == "__main__":
    main()
