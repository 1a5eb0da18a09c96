"""What the benchmarks share: endpoints (the local stack unless ORDERSYNC_* say otherwise), fresh topic
prefixes and databases, RSS readings, and a uniform way of printing figures."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ordersync.runtime.settings import Settings  # noqa: E402
from ordersync.stack import LocalKafka, LocalPostgres  # noqa: E402


def settings_with_stack() -> Settings:
    settings = Settings.from_env()
    if not settings.uses_external_kafka:
        LocalKafka(settings).up()
    if not settings.uses_external_database:
        LocalPostgres(settings).up()
    return settings


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def unique_prefix(name: str) -> str:
    return f"bench-{name}-{uuid.uuid4().hex[:6]}."


@contextmanager
def fresh_database(settings: Settings, name: str) -> Iterator[str]:
    db = f"bench_{name}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    try:
        yield psycopg.conninfo.make_conninfo(settings.database_url, dbname=db)
    finally:
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far (user + system), summed per program: this process, PostgreSQL (every
    ``postgres`` process) and the Kafka broker (``java``). Differences of two readings say where the
    machine's cores went during a run."""
    tick = os.sysconf("SC_CLK_TCK")
    totals = {"this process": 0.0, "postgresql": 0.0, "kafka broker": 0.0}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # ended while we looked
        comm = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        # utime, stime, and cutime, cstime: the time of children already reaped (a closed connection's
        # PostgreSQL backend, the sink's writer process once it ended)
        used = sum(int(f) for f in fields[11:15]) / tick
        if stat.parent.name == str(os.getpid()) or fields[1] == str(os.getpid()):  # we, or a child of ours
            totals["this process"] += used
        elif comm == "postgres":
            totals["postgresql"] += used
        elif comm == "java":
            totals["kafka broker"] += used
    return totals


def cpu_used(before: dict[str, float], after: dict[str, float]) -> str:
    return ", ".join(f"{name} {after[name] - before[name]:.1f} s" for name in before)


def end_offsets(bootstrap: str, topic: str) -> int:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "bench-offsets", "isolation.level": "read_committed"}
    )
    try:
        md = consumer.list_topics(topic, timeout=30)
        if topic not in md.topics or md.topics[topic].error is not None:
            return 0
        total = 0
        for p in md.topics[topic].partitions:
            try:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            except KafkaException as exc:  # a topic just created may have no leader yet: nothing there so far
                if not exc.args[0].retriable() and exc.args[0].code() != KafkaError.NOT_LEADER_FOR_PARTITION:
                    raise
                high = 0
            total += high
        return total
    finally:
        consumer.close()


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ordersync.cli", *args], env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip


def report(title: str, rows: list[tuple[str, str]]) -> None:
    print(f"\n## {title}\nmachine: {machine()}")
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = time.perf_counter() - self.start


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) one process has used so far; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def produce_waiting(producer: Producer, topic: str, key: str, value: bytes, **kw: Any) -> None:
    """Produce, serving deliveries while librdkafka's local queue is full."""
    while True:
        try:
            producer.produce(topic, key=key.encode(), value=value, **kw)
            return
        except BufferError:
            producer.poll(0.05)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
