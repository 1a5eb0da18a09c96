"""``ordersync replay``: rebuild everything from the raw topics into a target database.

A fresh processor identity reads the raw topics from the beginning (or from a timestamp) and writes its
outputs under a replay-only topic prefix; a sink with its own identity writes those into the target
database. When both have caught up with what the raw topics held at the start, they are stopped. With
``--verify`` the target is then compared with the live database, table by table.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from ordersync.runtime.settings import Settings
from ordersync.schemas.topics import Wiring
from ordersync.topics_admin import create_topics

RAW_TOPICS = ("raw.orders", "raw.customers", "contacts.import")
OUTPUT_TOPICS = ("orders", "activity", "contacts")


@dataclass(frozen=True)
class ReplayPlan:
    replay_id: str
    output_prefix: str
    processor_id: str
    sink_id: str


def plan(settings: Settings) -> ReplayPlan:
    replay_id = dt.datetime.now(dt.UTC).strftime("replay-%Y%m%d%H%M%S-") + uuid.uuid4().hex[:4]
    output_prefix = f"{settings.topic_prefix}{replay_id}."
    wiring = Wiring.with_prefix(settings.topic_prefix, output_prefix)
    return ReplayPlan(replay_id, output_prefix, wiring.processor_group, wiring.sink_group)


def _consumer(settings: Settings, group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )


def _partitions(consumer: Consumer, topic: str) -> list[TopicPartition]:
    md = consumer.list_topics(topic, timeout=30)
    if topic not in md.topics or md.topics[topic].error is not None:
        return []
    return [TopicPartition(topic, p) for p in md.topics[topic].partitions]


def end_offsets(settings: Settings, topics: list[str]) -> dict[tuple[str, int], int]:
    consumer = _consumer(settings, "ordersync-replay-probe")
    try:
        out = {}
        for topic in topics:
            for tp in _partitions(consumer, topic):
                out[(topic, tp.partition)] = consumer.get_watermark_offsets(tp, timeout=30)[1]
        return out
    finally:
        consumer.close()


def committed(settings: Settings, group: str, topics: list[str]) -> dict[tuple[str, int], int]:
    consumer = _consumer(settings, group)
    try:
        tps = [tp for topic in topics for tp in _partitions(consumer, topic)]
        return {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(tps, timeout=30)}
    finally:
        consumer.close()


def start_from(settings: Settings, group: str, topics: list[str], since: dt.datetime) -> None:
    """Commit, for the fresh processor group, the first offsets at or after ``since``."""
    consumer = _consumer(settings, group)
    try:
        millis = int(since.timestamp() * 1000)
        tps = [
            TopicPartition(tp.topic, tp.partition, millis) for topic in topics for tp in _partitions(consumer, topic)
        ]
        found = consumer.offsets_for_times(tps, timeout=30)
        ends = {(tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=30)[1] for tp in tps}
        fixed = [
            TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else ends[(tp.topic, tp.partition)])
            for tp in found
        ]
        consumer.commit(offsets=fixed, asynchronous=False)
    finally:
        consumer.close()


def _caught_up(done: dict[tuple[str, int], int], target: dict[tuple[str, int], int]) -> bool:
    return all(done.get(k, -1) >= v for k, v in target.items() if v > 0)


def sink_offsets(url: str, consumer_name: str) -> dict[tuple[str, int], int]:
    import psycopg

    try:
        with psycopg.connect(url) as conn:
            return {
                (t, p): o
                for t, p, o in conn.execute(
                    "SELECT topic, partition, next_offset FROM sink_offsets WHERE consumer = %s", (consumer_name,)
                )
            }
    except psycopg.Error:
        return {}


def run_replay(
    settings: Settings,
    target_url: str,
    *,
    config: str | None,
    since: dt.datetime | None,
    timeout_s: float,
    log_dir: Path | None = None,
) -> ReplayPlan:
    the_plan = plan(settings)
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="ordersync-replay-"))
    raw = [settings.topic_prefix + t for t in RAW_TOPICS]
    create_topics(settings)
    out_settings = settings.with_prefix(the_plan.output_prefix)
    create_topics(out_settings, set(OUTPUT_TOPICS) | {"triggers", "dlq"})
    if since is not None:
        start_from(settings, the_plan.processor_id, raw, since)
    raw_ends = end_offsets(settings, raw)
    env = {**os.environ, "ORDERSYNC_DATABASE_URL": target_url}
    process_args = [sys.executable, "-m", "ordersync.cli", "process", "--app-id", the_plan.processor_id,
                    "--output-prefix", the_plan.output_prefix, "--data-dir", str(log_dir / "state"), "--loglevel", "warn"]  # fmt: skip
    if config:
        process_args += ["--config", config]
    sink_args = [sys.executable, "-m", "ordersync.cli", "sink", "--consumer-name", the_plan.sink_id]
    processor = subprocess.Popen(
        process_args, env=env, stdout=(log_dir / "processor.log").open("wb"), stderr=subprocess.STDOUT
    )
    sink = subprocess.Popen(
        sink_args, env={**env, "ORDERSYNC_TOPIC_PREFIX": the_plan.output_prefix},
        stdout=(log_dir / "sink.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + timeout_s
    try:
        print(
            f"replay {the_plan.replay_id}: processing {sum(raw_ends.values())} raw events (logs in {log_dir})",
            file=sys.stderr,
        )
        while not _caught_up(committed(settings, the_plan.processor_id, raw), raw_ends):
            _check(processor, sink, deadline, log_dir)
            time.sleep(1)
        internal = [the_plan.output_prefix + "processor.by-contact"]
        while not _caught_up(committed(settings, the_plan.processor_id, internal), end_offsets(settings, internal)):
            _check(processor, sink, deadline, log_dir)
            time.sleep(1)
        outputs = end_offsets(out_settings, [the_plan.output_prefix + t for t in OUTPUT_TOPICS])
        while not _caught_up(sink_offsets(target_url, the_plan.sink_id), outputs):
            _check(processor, sink, deadline, log_dir)
            time.sleep(1)
    finally:
        for proc in (processor, sink):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (processor, sink):
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
    return the_plan


def _check(processor: subprocess.Popen[bytes], sink: subprocess.Popen[bytes], deadline: float, log_dir: Path) -> None:
    for name, proc in (("processor", processor), ("sink", sink)):
        if proc.poll() is not None:
            raise RuntimeError(f"replay {name} exited with {proc.returncode}; see {log_dir / (name + '.log')}")
    if time.monotonic() > deadline:
        raise TimeoutError(f"replay did not catch up in time; see {log_dir}")
