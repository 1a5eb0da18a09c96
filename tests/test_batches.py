"""Raw order batches (ordersync.schemas.batches): assembled from single encodings, read back as the events, and
grouped so that every event lands in the partition its own key picks."""

from __future__ import annotations

import pytest

from ordersync.schemas import decode, encode
from ordersync.schemas.batches import batch_of, by_partition
from ordersync.schemas.partitioning import connector_partition
from tests.samples import prestashop_raw_order_event, raw_order_event


def events(n: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        event = raw_order_event() if i % 2 else prestashop_raw_order_event()
        event.update(source_order_id=str(i), document="é" * (i * 37))  # lengths across varint boundaries
        out.append((f"{event['store_id']}:{i}", encode("raw_order_event", event)))
    return out


def test_a_batch_decodes_to_its_events_in_order() -> None:
    keyed = events(5)
    record = decode(batch_of("b-1", [v for _, v in keyed]), "raw_order_batch")
    assert record["batch_id"] == "b-1"
    assert record["events"] == [decode(v) for _, v in keyed]


def test_only_current_raw_order_event_encodings_make_a_batch() -> None:
    with pytest.raises(ValueError, match="at least one"):
        batch_of("b", [])
    with pytest.raises(ValueError, match="raw_order_event"):
        batch_of("b", [b"\x00not avro"])


def test_groups_keep_order_and_each_key_lands_where_it_would_alone() -> None:
    keyed = events(40)
    groups = by_partition(keyed, 3)
    assert sorted(k for _, g in groups for k, _ in g) == sorted(k for k, _ in keyed)
    for partition, group in groups:
        assert all(connector_partition(k.encode(), 3) == partition for k, _ in group)
        positions = [keyed.index(pair) for pair in group]
        assert positions == sorted(positions)


def test_groups_are_cut_at_the_size_and_count_limits() -> None:
    keyed = events(30)
    biggest = max(len(v) for _, v in keyed)
    for _, group in by_partition(keyed, 1, max_bytes=biggest * 2):
        assert sum(len(v) for _, v in group) <= biggest * 2
    assert [len(g) for _, g in by_partition(keyed, 1, max_events=7)] == [7, 7, 7, 7, 2]
