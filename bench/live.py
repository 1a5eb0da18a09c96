"""Live latency with a cheap load generator: signed WooCommerce webhooks, generated, signed and rendered
as whole HTTP requests before the clock starts, are written at a fixed rate over kept-alive connections
(open loop: request i leaves at start + i / rate, whatever the answers) to `ordersync webhook serve`, with `ordersync process` and `ordersync sink` running. Latency is
PostgreSQL's ``synced_at`` of the order minus the moment its webhook was sent.

The shop itself is only asked for product categories (once per product); a double in this process
answers from memory. For each rate: p50/p95/p99, and the highest rate whose p99 stays under 1 s.

    python bench/live.py [--rates 500,750,1000] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import statistics
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

import psycopg
from aiohttp import web
from common import (  # type: ignore[import-not-found]
    cpu_seconds,
    cpu_used,
    free_port,
    fresh_database,
    process_cpu,
    report,
    settings_with_stack,
    spawn,
    unique_prefix,
)
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from ordersync.runtime.settings import Settings
from ordersync.schemas import decode
from ordersync.schemas.topics import TopicNames
from ordersync.sinks.migrate import migrate
from ordersync.topics_admin import create_topics

SECRET = "bench-webhook-secret"
PRODUCTS = 200
COMPONENTS = ("webhook receiver", "processor", "sink")  # spawned in this order
CONNECTIONS = 512  # kept alive, like a store's webhook workers; a request waits for a free one


def order_body(order_id: int, contacts: int) -> bytes:
    items = [
        {"id": j + 1, "name": f"Product {p}", "product_id": p, "variation_id": 0, "quantity": 1 + j,
         "total": f"{10 + p}.50", "sku": f"S{p}", "price": 10.5}
        for j, p in enumerate(((order_id * 7 + k * 31) % PRODUCTS) + 1 for k in range(3))
    ]  # fmt: skip
    doc = {
        "id": order_id, "number": str(order_id), "status": "processing", "currency": "EUR",
        "date_created_gmt": "2026-01-01T10:00:00", "date_modified_gmt": "2026-01-01T10:00:00",
        "total": "99.50", "total_tax": "10.00", "shipping_total": "4.00", "discount_total": "0.00",
        "customer_id": order_id % contacts, "billing": {"email": f"c{order_id % contacts}@example.com", "first_name": "A"},
        "line_items": items, "refunds": [], "coupon_lines": [],
    }  # fmt: skip
    return json.dumps(doc).replace("/", "\\/").encode()


def signed(body: bytes) -> dict[str, str]:
    signature = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    return {
        "X-WC-Webhook-Topic": "order.created",
        "X-WC-Webhook-Signature": signature,
        "X-WC-Webhook-Delivery-ID": uuid.uuid4().hex,
        "Content-Type": "application/json",
    }


def products_body() -> bytes:
    return json.dumps(
        [
            {"id": p, "categories": [{"id": p % 7 + 1, "name": f"Category {p % 7 + 1}", "slug": None}]}
            for p in range(1, PRODUCTS + 1)
        ]
    ).encode()


async def shop_double(port: int) -> web.AppRunner:
    body = products_body()

    async def products(_: web.Request) -> web.Response:
        return web.Response(
            body=body, content_type="application/json", headers={"X-WP-Total": str(PRODUCTS), "X-WP-TotalPages": "1"}
        )

    app = web.Application()
    app.router.add_get("/wp-json/wc/v3/products", products)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def raw_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """The whole HTTP/1.1 request as bytes, built before the clock starts."""
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def post_at_rate(url: str, requests: list[tuple[int, bytes, dict[str, str]]], rate: float) -> dict[int, float]:
    """Send each request at its slot (open loop: request i leaves at start + i / rate) over kept-alive
    connections, writing pre-built bytes and reading only the status line and length: a few µs of this
    process per request, so the figure is the pipeline's, not the load generator's. Returns order id →
    send time (epoch seconds)."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    prepared = [(order_id, raw_request(host, port, parts.path, body, headers)) for order_id, body, headers in requests]
    sent: dict[int, float] = {}
    failures: list[str] = []
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(min(CONNECTIONS, len(prepared))):  # opened before the clock starts
        idle.put_nowait(await asyncio.open_connection(host, port))

    async def one(order_id: int, data: bytes, slot: float) -> None:
        # Latency counts from the request's slot: time spent waiting for a free connection counts too.
        sent[order_id] = slot
        reader, writer = await idle.get()
        try:
            writer.write(data)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
            failures.append(f"{order_id}: {type(exc).__name__}")
            writer.close()
            idle.put_nowait(await asyncio.open_connection(host, port))
            return
        idle.put_nowait((reader, writer))
        if status != 202:
            failures.append(f"{order_id}: HTTP {status}")

    start, wall = time.monotonic(), time.time()
    tasks = []
    for i, (order_id, data) in enumerate(prepared):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(order_id, data, wall + i / rate)))
    await asyncio.gather(*tasks)
    while not idle.empty():
        idle.get_nowait()[1].close()
    if failures:
        raise SystemExit(f"{len(failures)} webhooks refused, e.g. {failures[:3]}")
    return sent


def landed(db: str, ids: list[int]) -> dict[int, float]:
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            "SELECT source_order_id, extract(epoch FROM synced_at) FROM orders WHERE store_id = 'live' AND source_order_id = ANY(%s)",
            ([str(i) for i in ids],),
        ).fetchall()
    return {int(oid): float(at) for oid, at in rows}


def wait_landed(db: str, ids: list[int], deadline_s: float) -> dict[int, float]:
    end = time.monotonic() + deadline_s
    got: dict[int, float] = {}
    while time.monotonic() < end:
        got = landed(db, ids)
        if len(got) == len(ids):
            break
        time.sleep(0.5)
    return got


def written_at(bootstrap: str, topic: str, ids: set[int]) -> dict[int, float]:
    """When each order's first record in ``topic`` was produced (its Kafka CreateTime, epoch seconds):
    raw.orders messages are one event or a batch of them; ``orders`` is keyed ``live:ID``."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-stages", "enable.partition.eof": True})
    partitions = list(consumer.list_topics(topic, timeout=30).topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    found: dict[int, float] = {}
    at_end: set[int] = set()
    try:
        while len(at_end) < len(partitions):
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                if msg is not None and msg.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                continue
            at = msg.timestamp()[1] / 1000
            if topic.endswith(TopicNames.with_prefix("").raw_orders):
                record = decode(msg.value())
                order_ids = [int(e["source_order_id"]) for e in record.get("events", [record])]
            else:
                order_ids = [int(msg.key().decode().rpartition(":")[2])]
            for order_id in order_ids:
                if order_id in ids:
                    found.setdefault(order_id, at)
    finally:
        consumer.close()
    return found


def stages(bootstrap: str, prefix: str, sent: dict[int, float], got: dict[int, float]) -> str:
    """Median time spent in each hop: receiver (slot → raw.orders), processor (→ orders), sink (→ row)."""
    ids = set(got)
    names = TopicNames.with_prefix(prefix)
    raw = written_at(bootstrap, names.raw_orders, ids)
    out = written_at(bootstrap, names.orders, ids)
    both = [i for i in ids if i in raw and i in out]
    hops = {
        "receiver": [raw[i] - sent[i] for i in both],
        "processor": [out[i] - raw[i] for i in both],
        "sink": [got[i] - out[i] for i in both],
    }
    return ", ".join(f"{name} {statistics.median(v) * 1000:,.0f} ms" for name, v in hops.items() if v)


def percentiles(values: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(values, n=100)
    return q[49], q[94], q[98]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="500,750,1000", help="orders per second, comma-separated, each run in turn")
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    base = settings_with_stack()
    prefix = unique_prefix("live")
    work = Path(tempfile.mkdtemp(prefix="ordersync-bench-live-"))
    loop = asyncio.new_event_loop()
    shop_port, hook_port = free_port(), free_port()
    runner = loop.run_until_complete(shop_double(shop_port))
    (work / "stores.toml").write_text(
        f'[[store]]\nid = "live"\nplatform = "woocommerce"\nbase_url = "http://127.0.0.1:{shop_port}"\nlist_id = "1"\n'
        'timezone = "Europe/Lisbon"\nconsumer_key_env = "B_KEY"\nconsumer_secret_env = "B_SECRET"\nwebhook_secret_env = "B_HOOK"\n'
    )
    rows: list[tuple[str, str]] = []
    with fresh_database(base, "live") as db:
        migrate(db)
        env = {"ORDERSYNC_TOPIC_PREFIX": prefix, "ORDERSYNC_KAFKA_BOOTSTRAP": base.kafka_bootstrap, "ORDERSYNC_DATABASE_URL": db,
               "B_KEY": "ck_bench", "B_SECRET": "cs_bench", "B_HOOK": SECRET}  # fmt: skip
        create_topics(Settings.from_env({**os.environ, **env}))
        procs = [
            spawn(["webhook", "serve", "--config", str(work / "stores.toml"), "--port", str(hook_port)], env, work / "webhook.log"),
            spawn(["process", "--app-id", prefix + "processor", "--data-dir", str(work / "state"), "--loglevel", "warn"], env, work / "processor.log"),
            spawn(["sink"], env, work / "sink.log"),
        ]  # fmt: skip
        url = f"http://127.0.0.1:{hook_port}/webhooks/woocommerce/live"
        try:
            # Warm up until one order goes all the way (components joined, categories cached).
            warm = [(1, order_body(1, 1000), signed(order_body(1, 1000)))]
            deadline = time.monotonic() + 180
            while not landed(db, [1]):
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise SystemExit(f"pipeline did not start; logs in {work}")
                with contextlib.suppress(OSError, ValueError, IndexError, SystemExit):
                    loop.run_until_complete(post_at_rate(url, warm, 1))
                time.sleep(1)
            next_id, best = 2, 0.0
            for rate in rates:
                n = int(rate * args.seconds)
                ids = list(range(next_id, next_id + n))
                next_id += n
                requests = [(i, body, signed(body)) for i in ids for body in (order_body(i, max(1000, n // 5)),)]
                before = cpu_seconds()
                own = {name: process_cpu(proc.pid) for name, proc in zip(COMPONENTS, procs, strict=True)}
                started = time.monotonic()
                sent = loop.run_until_complete(post_at_rate(url, requests, rate))
                achieved = n / (time.monotonic() - started)
                got = wait_landed(db, ids, 300)
                after = cpu_seconds()
                spent = {name: process_cpu(proc.pid) - own[name] for name, proc in zip(COMPONENTS, procs, strict=True)}
                latencies = [got[i] - sent[i] for i in ids if i in got]
                p50, p95, p99 = percentiles(latencies)
                if p99 < 1.0 and len(got) == n:
                    best = max(best, rate)
                rows.append((f"{rate:g}/s for {args.seconds:g} s (sent at {achieved:,.0f}/s)",
                             f"p50 {p50 * 1000:,.0f} ms, p95 {p95 * 1000:,.0f} ms, p99 {p99 * 1000:,.0f} ms; {len(got):,}/{n:,} landed"))  # fmt: skip
                rows.append(("  median per hop", stages(base.kafka_bootstrap, prefix, sent, got)))
                rows.append(("  CPU during it", cpu_used(before, after)))
                rows.append(("  of which", ", ".join(f"{name} {secs:.1f} s" for name, secs in spent.items())))
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(60)
            loop.run_until_complete(runner.cleanup())
    rows.append(("highest rate with p99 under 1 s", f"{best:g}/s" if best else "none of those tried (target: 500/s)"))
    report("Live latency: signed webhooks → PostgreSQL (webhook receiver, processor, sink; Kafka; PostgreSQL)", rows)


if __name__ == "__main__":
    main()
