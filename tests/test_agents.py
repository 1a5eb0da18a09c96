"""The processor agents' helpers that need no broker: hints sent once per contact, and forwarding that
groups what one message hands on by destination partition."""

from __future__ import annotations

from typing import Any

from ordersync.processors import envelope
from ordersync.processors.agents import Forwarder, HintedContacts
from ordersync.schemas.partitioning import murmur2_partition


class Collect:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, int]] = []

    def send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Any = None, partition: int = -1
    ) -> None:
        self.sent.append((topic, key, value, partition))


def test_a_contact_is_hinted_once_within_the_memory() -> None:
    hinted = HintedContacts(slots=1024)
    assert [hinted.first(k) for k in ("a", "a", "b", "a")] == [True, False, True, False]


def test_the_hint_memory_is_bounded_and_forgets_gracefully() -> None:
    """Half a million contacts cycling through: the old 250,000-key LRU forgot every one of them before
    it came round again (every order sent a hint); the hash table remembers most, in 16 MiB."""
    hinted = HintedContacts()
    keys = [f"1:c{i}@example.com" for i in range(500_000)]
    assert all(hinted.first(k) for k in keys[:1000])
    for k in keys:
        hinted.first(k)
    remembered = sum(not hinted.first(k) for k in keys)
    assert remembered > 0.75 * len(keys)
    assert len(hinted._slots) * hinted._slots.itemsize == 16 << 20


def test_forwarded_items_leave_as_one_message_per_partition_in_order() -> None:
    out = Collect()
    forward = Forwarder(out, "by-contact", 4)  # type: ignore[arg-type]
    keys = [f"1:c{i}@example.com" for i in range(40)]
    for i, key in enumerate(keys):
        forward.add(key, {"kind": "hint", "n": i})
    forward.flush()
    assert len(out.sent) == len({murmur2_partition(k.encode(), 4) for k in keys})
    for topic, key, value, partition in out.sent:
        assert topic == "by-contact" and key is None and value is not None
        items = envelope.loads(value)
        assert all(murmur2_partition(k.encode(), 4) == partition for k, _ in items)
        assert [item["n"] for _, item in items] == sorted(item["n"] for _, item in items)
    forward.flush()
    assert len(out.sent) == len({murmur2_partition(k.encode(), 4) for k in keys})  # nothing left behind


def test_hand_off_messages_are_cut_by_bytes_too() -> None:
    """Cut at 20,000 items only, a message of large items (orders waiting for their customer) reached
    about 2.8 MB: over a record's limit, refused for good, and the worker stopped on every restart."""
    from ordersync.processors.agents import MAX_MESSAGE_BYTES, pack

    items = [envelope.dumps([f"1:c{i}@example.com", {"kind": "order", "pad": "x" * 3000}]) for i in range(1000)]
    messages = pack(items, MAX_MESSAGE_BYTES, 65_535)
    assert len(messages) > 1 and all(len(m) <= MAX_MESSAGE_BYTES for m in messages)
    assert [tuple(i) for m in messages for i in envelope.loads(m)] == [tuple(envelope.loads(i)) for i in items]
    assert [len(envelope.loads(m)) for m in pack(items[:5], MAX_MESSAGE_BYTES, 2)] == [2, 2, 1]
