"""Raw order batches (docs/contract.md "Batches"): several raw_order_event records that share a raw.orders
partition, in one message.

A connector encodes each event on its own first (so a document that does not fit the contract is
dead-lettered alone); the batch is then assembled from those encodings without encoding them again. In
Avro's binary format a record is its fields in order and an array is a block count, the items, and a
zero, so a ``raw_order_batch`` body is the batch id, the count, the event bodies, and 0.
"""

from __future__ import annotations

from collections.abc import Sequence

from ordersync.schemas.partitioning import connector_partition
from ordersync.schemas.registry import SchemaRegistry, registry
from ordersync.schemas.serde import HEADER_LEN, MARKER

BATCH_SUBJECT = "raw_order_batch"
EVENT_SUBJECT = "raw_order_event"


def _zigzag(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _string(text: str) -> bytes:
    data = text.encode()
    return _zigzag(len(data)) + data


def batch_of(batch_id: str, events: Sequence[bytes], reg: SchemaRegistry | None = None) -> bytes:
    """A raw_order_batch message holding ``events`` (each a single-object raw_order_event encoding)."""
    reg = reg or registry()
    event_fp = reg.current(EVENT_SUBJECT).fingerprint_bytes
    batch = reg.current(BATCH_SUBJECT)
    if not events:
        raise ValueError("a batch holds at least one event")
    for data in events:
        if data[:2] != MARKER or data[2:HEADER_LEN] != event_fp:
            raise ValueError(f"not a current {EVENT_SUBJECT} encoding")
    body = b"".join(data[HEADER_LEN:] for data in events)
    return MARKER + batch.fingerprint_bytes + _string(batch_id) + _zigzag(len(events)) + body + b"\x00"


MAX_BATCH_BYTES = 512 * 1024  # well under the broker's default 1 MiB message limit
MAX_BATCH_EVENTS = 1000  # a consumer tells a batch's events apart by index (processors use 16 bits)


def by_partition(
    keyed: Sequence[tuple[str, bytes]],
    partitions: int,
    max_bytes: int = MAX_BATCH_BYTES,
    max_events: int = MAX_BATCH_EVENTS,
) -> list[tuple[int, list[tuple[str, bytes]]]]:
    """Group (key, encoded event) pairs by the raw.orders partition of their key, each group in the
    given order and cut where it would pass ``max_bytes`` or ``max_events``."""
    groups: dict[int, list[list[tuple[str, bytes]]]] = {}
    for key, value in keyed:
        chunks = groups.setdefault(connector_partition(key.encode(), partitions), [[]])
        last = chunks[-1]
        if last and (len(last) >= max_events or sum(len(v) for _, v in last) + len(value) > max_bytes):
            last = []
            chunks.append(last)
        last.append((key, value))
    return [(partition, chunk) for partition, chunks in groups.items() for chunk in chunks]
