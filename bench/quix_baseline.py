"""Baseline for bench/processor.py: what a user would write with Quix Streams instead: decode each raw
message (one event or a batch), normalise every order with ordersync's own function, encode it and
produce it. Runs in its own virtualenv (bench/processor.py makes it), as Quix Streams pins its own
confluent-kafka.

    python bench/quix_baseline.py SOURCE_TOPIC DESTINATION_TOPIC BOOTSTRAP
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quixstreams import Application

from ordersync.processors.normalise import normalise_order
from ordersync.schemas import decode, encode


def process(value: bytes) -> list[bytes]:
    record = decode(value, ("raw_order_event", "raw_order_batch"))
    events: list[dict[str, Any]] = record.get("events", [record])
    return [encode("order", normalise_order(event).order) for event in events]


def main() -> None:
    source, destination, bootstrap = sys.argv[1], sys.argv[2], sys.argv[3]
    app = Application(
        broker_address=bootstrap,
        consumer_group=f"bench-quix-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        processing_guarantee="at-least-once",
    )
    src = app.topic(source, value_deserializer="bytes", key_deserializer="bytes")
    dst = app.topic(destination, value_serializer="bytes", key_serializer="bytes")
    sdf = app.dataframe(src)
    sdf = sdf.apply(process, expand=True)
    sdf.to_topic(dst)
    app.run()


if __name__ == "__main__":
    main()
