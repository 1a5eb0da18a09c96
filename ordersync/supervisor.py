"""``ordersync run``: the streaming deployment in one command.

Runs connectors (follow mode), the webhook receiver, the processor and the sink as child processes,
restarts any that dies (with backoff), and serves ``/health`` and Prometheus ``/metrics``: components up,
restarts, consumer lag per group, dead letters, and end-to-end latency (store change → PostgreSQL row).
Each part is also runnable alone (``ordersync connect --follow``, ``webhook serve``, ``process``,
``sink``) for separate containers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from ordersync.runtime import heartbeat, store_health, supervision
from ordersync.runtime.kafka_status import KafkaStatus
from ordersync.runtime.store_health import StoreHealth
from ordersync.schemas.topics import TopicNames

log = logging.getLogger(__name__)
LATENCY_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass
class Child:
    name: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0
    log_file: Path | None = None
    heartbeat_file: Path | None = None
    hangs: int = 0
    beats: bool = True  # it calls runtime.heartbeat; False for helpers that do not (simulators)
    retired: bool = False  # stopped on purpose: not restarted

    @property
    def up(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Supervisor:
    def __init__(
        self, children: list[Child], log_dir: Path, hang_after_s: float = 120.0, store_failing_after_s: float = 300.0
    ) -> None:
        self.children = children
        self.log_dir = log_dir
        self.hang_after_s = hang_after_s  # no heartbeat for this long: killed and restarted
        self.store_failing_after_s = store_failing_after_s  # /health turns 503 once a store failed this long
        self.stopping = threading.Event()
        self.store_health_file = log_dir / "stores.health.json"  # written by the connectors child

    def stores(self) -> dict[str, StoreHealth]:
        return store_health.read(self.store_health_file)

    def health(self) -> tuple[int, dict[str, Any]]:
        """The /health answer: 200 while every component runs and no store has failed for too long."""
        now = time.time()
        stores = self.stores()
        failing = sorted(s for s, h in stores.items() if h.failing_for(now) > self.store_failing_after_s)
        body: dict[str, Any] = {
            "components": {c.name: {"up": c.up, "restarts": c.restarts} for c in self.children},
            "stores": {
                s: {
                    "failing": s in failing,
                    "failing_for_s": round(h.failing_for(now), 1),
                    "consecutive_failures": h.consecutive_failures,
                    "last_success": h.last_success,
                    "last_error": h.last_error,
                }
                for s, h in stores.items()
            },
        }
        ok = all(c.up for c in self.children) and not failing
        return (200 if ok else 503), body

    def start(self, child: Child) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        child.log_file = self.log_dir / f"{child.name}.log"
        child.heartbeat_file = self.log_dir / f"{child.name}.heartbeat"
        child.heartbeat_file.unlink(missing_ok=True)
        out = child.log_file.open("ab")
        child.proc = subprocess.Popen(
            [sys.executable, "-m", "ordersync.cli", *child.args],
            env={
                **os.environ,
                **child.env,
                heartbeat.ENV: str(child.heartbeat_file),
                store_health.ENV: str(self.store_health_file),
                supervision.ENV: str(os.getpid()),
            },
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the supervisor, which stops children in order
        )
        child.started_at = time.monotonic()
        log.info("started %s (pid %d), log %s", child.name, child.proc.pid, child.log_file)

    def watch(self) -> None:
        for child in self.children:
            if child.proc is None:  # not started by the caller already
                self.start(child)
        while not self.stopping.wait(1.0):
            for child in self.children:
                if child.retired:
                    continue
                if child.up and self.hung(child):
                    child.hangs += 1
                    log.warning("%s made no progress for %.0fs: killing it", child.name, self.hang_after_s)
                    assert child.proc is not None
                    child.proc.kill()
                    child.proc.wait()
                if child.up or self.stopping.is_set():
                    continue
                code = child.proc.returncode if child.proc else None
                # Back off when a child keeps dying right after start.
                delay = min(30.0, 2.0 ** min(child.restarts, 5)) if time.monotonic() - child.started_at < 30 else 1.0
                log.warning(
                    "%s exited with %s; restarting in %.0fs (restart #%d)", child.name, code, delay, child.restarts + 1
                )
                if self.stopping.wait(delay):
                    break
                child.restarts += 1
                self.start(child)

    def hung(self, child: Child) -> bool:
        """No heartbeat for ``hang_after_s`` (counting from the start until it first beats)."""
        if child.heartbeat_file is None or not child.beats:
            return False
        age = heartbeat.age_s(child.heartbeat_file)
        if age is None:
            age = time.monotonic() - child.started_at
        return age > self.hang_after_s

    def stop(self, *_: Any) -> None:
        self.stopping.set()

    def retire(self, names: set[str], grace_s: float = 60) -> None:
        """Stop these children for good (a drain: the producers first, so that nothing new comes in)."""
        for child in reversed(self.children):
            if child.name in names:
                child.retired = True
                self._terminate(child, grace_s)

    def shutdown(self, grace_s: float = 60) -> None:
        # In reverse start order: producers first, then the processor, the sink last.
        for child in reversed(self.children):
            self._terminate(child, grace_s)

    def _terminate(self, child: Child, grace_s: float) -> None:
        if child.up and child.proc is not None:
            child.proc.send_signal(signal.SIGTERM)
            try:
                child.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                child.proc.kill()
            log.info("stopped %s", child.name)


class Metrics:
    """A Prometheus collector (``prometheus_client``) read when scraped: components, stores, consumer
    lag, dead letters and end-to-end latency (store change → PostgreSQL row). One Kafka admin client
    serves every scrape."""

    def __init__(
        self, supervisor: Supervisor, bootstrap: str, database_url: str, prefix: str, groups: dict[str, list[str]]
    ) -> None:
        self.supervisor = supervisor
        self.bootstrap = bootstrap
        self.database_url = database_url
        self.prefix = prefix
        self.groups = groups  # group id → topics it consumes
        self.kafka = KafkaStatus(bootstrap)
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def lag(self) -> dict[str, int]:
        """Messages not yet consumed (committed) per consumer group."""
        return self.kafka.lag(self.groups)

    def dead_letters(self) -> int:
        return sum(self.kafka.end_offsets([TopicNames.with_prefix(self.prefix).dlq]).values())

    def latencies(self) -> list[float]:
        import psycopg

        with contextlib.suppress(psycopg.Error), psycopg.connect(self.database_url, connect_timeout=3) as conn:
            rows = conn.execute(
                "SELECT extract(epoch FROM synced_at - modified_at) FROM orders"
                " WHERE synced_at > now() - interval '5 minutes' AND modified_at > now() - interval '10 minutes'"
            ).fetchall()
            return [float(r[0]) for r in rows]
        return []

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("ordersync_component_up", "1 while the component runs", labels=["component"])
        restarts = CounterMetricFamily(
            "ordersync_component_restarts", "restarts by the supervisor", labels=["component"]
        )
        for child in self.supervisor.children:
            up.add_metric([child.name], int(child.up))
            restarts.add_metric([child.name], child.restarts)
        yield from (up, restarts)
        yield from self._store_metrics()
        with contextlib.suppress(KafkaException, TimeoutError, ValueError):
            lag = GaugeMetricFamily("ordersync_consumer_lag", "messages not yet consumed", labels=["group"])
            for group, value in self.lag().items():
                lag.add_metric([group], value)
            yield lag
        with contextlib.suppress(KafkaException, TimeoutError, ValueError):
            yield GaugeMetricFamily(
                "ordersync_dead_letters", "messages in the dead-letter topic", value=self.dead_letters()
            )
        values = self.latencies()
        buckets = [(str(b), sum(1 for v in values if v <= b)) for b in LATENCY_BUCKETS] + [("+Inf", len(values))]
        yield HistogramMetricFamily(
            "ordersync_end_to_end_latency_seconds",
            "store modification to PostgreSQL row, last 5 minutes",
            buckets=buckets,
            sum_value=sum(values),
        )

    def _store_metrics(self) -> Iterator[Metric]:
        stores = self.supervisor.stores()
        now = time.time()
        failing = GaugeMetricFamily(
            "ordersync_store_failing_seconds", "how long a store's attempts have failed (0: healthy)", labels=["store"]
        )
        failures = GaugeMetricFamily(
            "ordersync_store_consecutive_failures", "failed attempts in a row", labels=["store"]
        )
        success = GaugeMetricFamily(
            "ordersync_store_last_success_timestamp_seconds", "when a store last went through", labels=["store"]
        )
        for store, health in stores.items():
            failing.add_metric([store], health.failing_for(now))
            failures.add_metric([store], health.consecutive_failures)
            if health.last_success is not None:
                success.add_metric([store], health.last_success)
        yield from (failing, failures, success)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def serve_http(supervisor: Supervisor, metrics: Metrics, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                import json

                status, answer = supervisor.health()
                body, content_type = json.dumps(answer).encode(), "application/json"
            elif self.path == "/metrics":
                body, status, content_type = metrics.render(), 200, CONTENT_TYPE_LATEST
            else:
                body, status, content_type = b"not found\n", 404, "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
