"""Proof that the parts under the tests are real: a Kafka broker with transactions, a faust worker
with a RocksDB table, a PostgreSQL server with COPY."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import psycopg
from confluent_kafka import Producer

from tests.kafka_helpers import consume_until, create_topic, drain, produce


def test_aborted_transactions_are_invisible_to_read_committed(kafka_bootstrap: str, topic_prefix: str) -> None:
    topic = f"{topic_prefix}tx"
    create_topic(kafka_bootstrap, topic, partitions=1)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": f"{topic_prefix}tx"})
    producer.init_transactions(30)
    producer.begin_transaction()
    for i in range(3):
        producer.produce(topic, key=b"k", value=f"committed-{i}".encode())
    producer.commit_transaction(30)
    producer.begin_transaction()
    for i in range(2):
        producer.produce(topic, key=b"k", value=f"aborted-{i}".encode())
    producer.flush(30)
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, key=b"k", value=b"committed-3")
    producer.commit_transaction(30)

    committed = drain(kafka_bootstrap, topic, isolation="read_committed")
    everything = drain(kafka_bootstrap, topic, isolation="read_uncommitted")

    assert [m.value() for m in committed] == [b"committed-0", b"committed-1", b"committed-2", b"committed-3"]
    # The aborted records really reached the log: only the isolation level hides them.
    assert b"aborted-0" in [m.value() for m in everything]


def test_faust_worker_counts_into_rocksdb_table_and_produces(
    kafka_bootstrap: str, topic_prefix: str, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    source = f"{topic_prefix}in"
    create_topic(kafka_bootstrap, source, partitions=2)
    keys = [b"alice", b"bob", b"alice", b"carol", b"alice", b"bob"]
    produce(kafka_bootstrap, source, [(k, json.dumps("x").encode()) for k in keys])

    env = {**subprocess_env, "PROOF_PREFIX": topic_prefix, "PROOF_DATADIR": str(tmp_path / "faust")}
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.apps.faust_counter", "worker", "-l", "warn"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        out = consume_until(
            kafka_bootstrap,
            f"{topic_prefix}out",
            lambda msgs: len(msgs) >= len(keys),
            deadline_s=120,
            alive=lambda: worker.poll() is None,
        )
        values = sorted(json.loads(m.value()) for m in out)
        assert values == ["alice=1", "alice=2", "alice=3", "bob=1", "bob=2", "carol=1"]
        # The table is RocksDB-backed: its files exist in the worker's data directory.
        assert list((tmp_path / "faust").rglob("*.sst")) or list((tmp_path / "faust").rglob("CURRENT"))
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            code = worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()
            code = worker.wait()
        log.close()
    assert code == 0, (tmp_path / "worker.log").read_text()[-3000:]


def test_postgres_copy_round_trip(database_url: str) -> None:
    rows = [
        (1, "Zoë “quoted” \t tab", Decimal("1234.56"), dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)),
        (2, None, Decimal("-10.00"), dt.datetime(2024, 3, 1, 23, 59, 59, tzinfo=dt.timezone(dt.timedelta(hours=2)))),
    ]
    with psycopg.connect(database_url) as conn:
        conn.execute("CREATE TABLE copy_check (id int, name text, amount numeric(12,2), at timestamptz)")
        with conn.cursor() as cur, cur.copy("COPY copy_check (id, name, amount, at) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        back = conn.execute("SELECT id, name, amount, at FROM copy_check ORDER BY id").fetchall()
    assert back == rows
    assert isinstance(back[0][2], Decimal)
