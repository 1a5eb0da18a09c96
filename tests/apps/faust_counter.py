"""A minimal faust-streaming app used only to prove a real worker runs against the real broker.

It counts values per key in a RocksDB-backed table and emits ``key=count`` to an output topic, with
exactly-once processing. Topic and app names come from the environment so every test is isolated.
"""

from __future__ import annotations

import os

import faust

PREFIX = os.environ["PROOF_PREFIX"]

app = faust.App(
    f"{PREFIX}counter",
    broker=f"kafka://{os.environ['ORDERSYNC_KAFKA_BOOTSTRAP']}",
    store="rocksdb://",
    datadir=os.environ["PROOF_DATADIR"],
    processing_guarantee="exactly_once",
    topic_partitions=2,
    topic_replication_factor=1,
    web_enabled=False,
    broker_commit_interval=0.2,
)

source = app.topic(f"{PREFIX}in", key_type=str, value_type=str, partitions=2)
sink = app.topic(f"{PREFIX}out", key_type=str, value_type=str, partitions=2)
counts = app.Table("counts", default=int, partitions=2)


@app.agent(source)
async def count(stream: faust.StreamT[str]) -> None:
    async for key, _value in stream.items():
        counts[key] += 1
        await sink.send(key=key, value=f"{key}={counts[key]}")


if __name__ == "__main__":
    app.main()
