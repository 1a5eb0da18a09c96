"""Baseline for bench/processor.py: a bare faust agent that forwards every message of a topic to another
topic, with the processor's faust settings. What faust itself costs per message.

    python bench/faust_passthrough.py SOURCE_TOPIC DESTINATION_TOPIC BOOTSTRAP PARTITIONS
"""

from __future__ import annotations

import sys
import tempfile
import uuid

import faust


def main() -> None:
    source, destination, bootstrap, partitions = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    app = faust.App(
        f"bench-passthrough-{uuid.uuid4().hex[:6]}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        datadir=tempfile.mkdtemp(prefix="bench-faust-"),
        web_enabled=False,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        topic_partitions=partitions,
        broker_commit_interval=0.1,
        stream_buffer_maxsize=1024,
    )
    src = app.topic(source, key_type=bytes, value_type=bytes)
    dst = app.topic(destination, key_type=bytes, value_type=bytes)

    @app.agent(src)
    async def forward(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await dst.send(key=event.key, value=event.value)

    sys.argv = [sys.argv[0], "worker", "-l", "warn", "--without-web"]
    app.main()


if __name__ == "__main__":
    main()
