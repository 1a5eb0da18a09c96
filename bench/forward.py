"""Trigger forwarder throughput against a receiver that answers each POST after 50 ms (a real marketing
tool's webhook), many triggers in flight, beside the same run's serial rate (one in flight).

The triggers are built and written to a topic before anything is timed; the receiver checks every
signature and sleeps without using a core (asyncio), so the figures are the forwarder's.

    python bench/forward.py [--triggers 5000] [--serial 300] [--contacts 2000] [--delay-ms 50]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web
from common import (  # type: ignore[import-not-found]
    free_port,
    fresh_database,
    process_cpu,
    produce_waiting,
    report,
    rss_mib,
    settings_with_stack,
    spawn,
    unique_prefix,
)
from confluent_kafka import Producer

from ordersync.schemas import encode
from ordersync.schemas.signatures import SIGNATURE, verify
from ordersync.schemas.topics import TopicNames
from ordersync.sinks.forward import TRIGGER_ID
from ordersync.sinks.migrate import migrate
from ordersync.topics_admin import create_topics

SECRET = "bench-secret"
T0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def trigger(n: int, contact: int) -> dict[str, Any]:
    return {
        "trigger_id": str(uuid.UUID(int=n)), "kind": "ORDER_THANK_YOU", "list_id": "1",
        "contact_id": str(uuid.UUID(int=10**12 + contact)), "contact_email": f"c{contact}@example.com",
        "order_key": f"woo:{n}", "store_id": "woo", "source_order_id": str(n), "order_number": str(n),
        "status": "COMPLETED", "currency": "EUR", "total": Decimal("59.90"), "net_total": Decimal("59.90"),
        "items": [{"product_id": "31", "name": "Boot", "quantity": 1, "total": Decimal("59.90"), "categories": ["Shoes"]}],
        "spent": Decimal("59.90"), "threshold": None, "rule": None, "suggested_categories": [],
        "suggested_products": [], "order_count": 1, "last_order_at": T0, "fired_at": T0 + dt.timedelta(seconds=n),
    }  # fmt: skip


class Receiver:
    """Checks each signature, answers 200 after ``delay_s``; notes when each distinct id first came."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.first_seen: dict[str, float] = {}
        self.bad_signatures = 0
        self.port = free_port()
        self.ready = threading.Event()
        threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True).start()
        self.ready.wait(10)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not verify(SECRET.encode(), request.headers.get(SIGNATURE, ""), body, time.time()):
            self.bad_signatures += 1
            return web.Response(status=401)
        await asyncio.sleep(self.delay_s)
        self.first_seen.setdefault(request.headers[TRIGGER_ID], time.monotonic())
        return web.Response(status=200)

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port, backlog=1024).start()
        self.ready.set()
        await asyncio.Event().wait()


def run(
    env: dict[str, str], url: str, receiver: Receiver, ids: set[str], name: str, in_flight: int
) -> dict[str, float]:
    """One forwarder (its own consumer group) over the whole topic, stopped once ``ids`` all arrived."""
    start = time.monotonic()
    receiver.first_seen.clear()
    log = Path(f"/tmp/bench-forward-{name}.log")
    proc = spawn(["triggers", "forward", "--url", url, "--name", name],
                 {**env, "ORDERSYNC_TRIGGERS_IN_FLIGHT": str(in_flight)}, log)  # fmt: skip
    peak_rss = 0.0
    try:
        while not ids <= receiver.first_seen.keys():
            if proc.poll() is not None:
                raise SystemExit(f"the forwarder exited with {proc.returncode}: see {log}")
            peak_rss = max(peak_rss, rss_mib(proc.pid))
            time.sleep(0.2)
        cpu = process_cpu(proc.pid)
    finally:
        proc.terminate()
        proc.wait(60)
    seen = sorted(receiver.first_seen[i] for i in ids)
    span = seen[-1] - seen[0]
    return {"rate": (len(ids) - 1) / span if span else float("nan"), "wall": time.monotonic() - start,
            "cpu_per_trigger_ms": 1000 * cpu / len(ids), "rss": peak_rss}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--triggers", type=int, default=5000)
    parser.add_argument("--serial", type=int, default=300, help="triggers for the serial baseline")
    parser.add_argument("--contacts", type=int, default=2000)
    parser.add_argument("--delay-ms", type=float, default=50.0)
    parser.add_argument("--in-flight", type=int, default=64)
    args = parser.parse_args()

    settings = settings_with_stack()
    built = [trigger(n, n % args.contacts) for n in range(args.triggers)]
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 20})

    def topic_of(triggers: list[dict[str, Any]]) -> str:
        prefix = unique_prefix("forward")
        create_topics(settings.with_prefix(prefix), {"triggers", "dlq"})
        for t in triggers:
            produce_waiting(
                producer, TopicNames.with_prefix(prefix).triggers, f"1:{t['contact_id']}", encode("trigger", t)
            )
        producer.flush(60)
        return prefix

    # The serial baseline gets a topic of its own with fewer triggers: at 1 in flight the whole set
    # would take minutes.
    serial_prefix, prefix = topic_of(built[: args.serial]), topic_of(built)
    receiver = Receiver(args.delay_ms / 1000)
    url = f"http://127.0.0.1:{receiver.port}/hooks"
    with fresh_database(settings, "forward") as db:
        migrate(db)
        env = {"ORDERSYNC_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "ORDERSYNC_DATABASE_URL": db,
               "ORDERSYNC_TRIGGERS_SECRET": SECRET}  # fmt: skip
        serial_env = {**env, "ORDERSYNC_TOPIC_PREFIX": serial_prefix}
        serial = run(serial_env, url, receiver, {t["trigger_id"] for t in built[: args.serial]}, "serial", 1)
        all_ids = {t["trigger_id"] for t in built}
        concurrent = run({**env, "ORDERSYNC_TOPIC_PREFIX": prefix}, url, receiver, all_ids, "many", args.in_flight)
    report(
        f"Trigger forwarder: {args.triggers:,} triggers over {args.contacts:,} contacts, receiver answering after {args.delay_ms:.0f} ms",
        [
            (f"{args.in_flight} in flight", f"{concurrent['rate']:,.0f} triggers/s ({concurrent['cpu_per_trigger_ms']:.2f} ms CPU per trigger, peak RSS {concurrent['rss']:.0f} MiB)"),
            ("serial (1 in flight)", f"{serial['rate']:,.1f} triggers/s over {args.serial} triggers (baseline, same run)"),
            ("ratio", f"{concurrent['rate'] / serial['rate']:.1f}x"),
            ("bad signatures", str(receiver.bad_signatures)),
            ("cores", str(os.cpu_count())),
        ],
    )  # fmt: skip
    if receiver.bad_signatures:
        raise SystemExit("the receiver refused signatures")


if __name__ == "__main__":
    main()
