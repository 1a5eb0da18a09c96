"""Has the pipeline done everything its inputs hold? Offsets compared with the topics' ends.

The processor commits its Kafka offsets only after its outputs are acknowledged, and the sink keeps its
offsets in PostgreSQL in the transaction that writes the rows: so "the processor's group has committed
up to the end of its inputs and of its own hand-off, and the sink's stored offsets reach the end of what
it reads" means every input record is in PostgreSQL. The demo drains with it before its summary, and a
replay waits on it before it stops.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from confluent_kafka import Consumer, TopicPartition

from ordersync.runtime.settings import Settings
from ordersync.schemas.topics import Wiring

Offsets = dict[tuple[str, int], int]


def probe_consumer(settings: Settings, group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )


def partitions(consumer: Consumer, topic: str) -> list[TopicPartition]:
    md = consumer.list_topics(topic, timeout=30)
    if topic not in md.topics or md.topics[topic].error is not None:
        return []
    return [TopicPartition(topic, p) for p in md.topics[topic].partitions]


def end_offsets(settings: Settings, topics: list[str]) -> Offsets:
    consumer = probe_consumer(settings, "ordersync-catchup-probe")
    try:
        out = {}
        for topic in topics:
            for tp in partitions(consumer, topic):
                out[(topic, tp.partition)] = consumer.get_watermark_offsets(tp, timeout=30)[1]
        return out
    finally:
        consumer.close()


def committed(settings: Settings, group: str, topics: list[str]) -> Offsets:
    consumer = probe_consumer(settings, group)
    try:
        tps = [tp for topic in topics for tp in partitions(consumer, topic)]
        return {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(tps, timeout=30)}
    finally:
        consumer.close()


def sink_offsets(url: str, consumer_name: str) -> Offsets:
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            return {
                (t, p): o
                for t, p, o in conn.execute(
                    "SELECT topic, partition, next_offset FROM sink_offsets WHERE consumer = %s", (consumer_name,)
                )
            }
    except psycopg.Error:
        return {}


def behind(done: Offsets, target: Offsets) -> int:
    """Records of ``target`` (end offsets) not yet covered by ``done`` (next offsets)."""
    return sum(max(0, end - max(done.get(k, 0), 0)) for k, end in target.items())


@dataclass(frozen=True)
class Progress:
    processor_behind: int  # input and hand-off records the processor has not committed
    sink_behind: int  # output records the sink has not written

    @property
    def done(self) -> bool:
        return self.processor_behind == 0 and self.sink_behind == 0


def progress(
    settings: Settings, wiring: Wiring, database_url: str, *, processor_group: str, sink_name: str
) -> Progress:
    """How far the processor and the sink are from the ends of what they read, now."""
    processor_topics = [*wiring.processor_reads, wiring.by_contact]
    processor = behind(committed(settings, processor_group, processor_topics), end_offsets(settings, processor_topics))
    sink = behind(sink_offsets(database_url, sink_name), end_offsets(settings, wiring.sink_reads))
    return Progress(processor, sink)


def wait_until_drained(
    settings: Settings,
    wiring: Wiring,
    database_url: str,
    *,
    processor_group: str,
    sink_name: str,
    deadline_s: float,
    check: Callable[[], None] = lambda: None,
) -> Progress:
    """Poll until the processor and the sink have caught up with the ends of their topics, as they are
    when each poll reads them (so feed nothing new meanwhile). ``check`` raises if a component died.
    Returns the last progress: ``done`` is False when the deadline passed first."""
    end = time.monotonic() + deadline_s
    while True:
        check()
        now = progress(settings, wiring, database_url, processor_group=processor_group, sink_name=sink_name)
        if now.done or time.monotonic() > end:
            return now
        time.sleep(1)
