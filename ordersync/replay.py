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

from confluent_kafka import TopicPartition

from ordersync import catchup
from ordersync.catchup import behind, committed, end_offsets, partitions, wait_until_drained
from ordersync.runtime.settings import Settings
from ordersync.schemas.topics import Wiring
from ordersync.topics_admin import create_processor_topics


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


def start_from(settings: Settings, group: str, topics: list[str], since: dt.datetime) -> None:
    """Commit, for the fresh processor group, the first offsets at or after ``since``."""
    consumer = catchup.probe_consumer(settings, group)
    try:
        millis = int(since.timestamp() * 1000)
        tps = [TopicPartition(tp.topic, tp.partition, millis) for topic in topics for tp in partitions(consumer, topic)]
        found = consumer.offsets_for_times(tps, timeout=30)
        ends = {(tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=30)[1] for tp in tps}
        fixed = [
            TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else ends[(tp.topic, tp.partition)])
            for tp in found
        ]
        consumer.commit(offsets=fixed, asynchronous=False)
    finally:
        consumer.close()


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
    wiring = Wiring.with_prefix(settings.topic_prefix, the_plan.output_prefix)
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="ordersync-replay-"))
    create_processor_topics(settings, wiring, the_plan.processor_id)
    if since is not None:
        start_from(settings, the_plan.processor_id, wiring.processor_reads, since)
    raw_ends = end_offsets(settings, wiring.processor_reads)
    env = {**os.environ, "ORDERSYNC_DATABASE_URL": target_url}
    process_args = [sys.executable, "-m", "ordersync.cli", "process", "--app-id", the_plan.processor_id,
                    "--output-prefix", the_plan.output_prefix, "--data-dir", str(log_dir / "state"), "--loglevel", "warn"]  # fmt: skip
    if config:
        process_args += ["--config", config]
    sink_args = [sys.executable, "-m", "ordersync.cli", "sink", "--consumer-name", the_plan.sink_id,
                 "--input-prefix", settings.topic_prefix]  # fmt: skip
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
        # First what the raw topics held at the start (they may grow meanwhile), then everything that
        # follows from it: the processor's hand-off, and every topic the sink reads.
        while behind(committed(settings, the_plan.processor_id, wiring.processor_reads), raw_ends):
            _check(processor, sink, deadline, log_dir)
            time.sleep(1)
        left = wait_until_drained(
            settings, wiring, target_url, processor_group=the_plan.processor_id, sink_name=the_plan.sink_id,
            deadline_s=max(0.0, deadline - time.monotonic()), check=lambda: _check(processor, sink, deadline, log_dir),
        )  # fmt: skip
        if not left.done:
            raise TimeoutError(f"replay did not catch up in time ({left}); see {log_dir}")
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
