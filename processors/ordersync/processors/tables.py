"""The processor's state tables, read and written one partition at a time.

They are faust tables: faust declares their changelog topics, restores them on (re)assignment and keeps
standby replicas. Writes bypass faust's ``table[key] = value`` (which sends every write through faust's
own producer, ~150 µs each, and indexes every key in memory): the value goes to the partition's RocksDB
and to the changelog through the output producer, which confirms it before the next commit. Keys and
values are JSON bytes, as faust's json codec writes them, so state written by earlier versions reads the
same.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, MutableMapping
from typing import Any

from faust.types import TP, TableT

from ordersync.processors.outputs import OutputProducer


def table_key(key: str) -> bytes:
    """A table key as faust's json codec stores it."""
    return json.dumps(key).encode()


class StateTable:
    """One faust table, read and written by partition; writes go to RocksDB and the changelog."""

    def __init__(self, table: TableT[Any, Any], outputs: OutputProducer) -> None:
        self.table = table
        self.outputs = outputs
        self._changelog: str | None = None

    @property
    def changelog(self) -> str:
        """The changelog topic's name (asked once: faust names it after the app)."""
        if self._changelog is None:
            self._changelog = self.table.changelog_topic.get_topic_name()
            self.outputs.watched_topics.add(self._changelog)
        return self._changelog

    def _db(self, partition: int) -> Any:
        # faust-streaming's RocksDB store keeps one database per partition (pinned: faust-streaming <0.16).
        return self.table.data._db_for_partition(partition)  # type: ignore[attr-defined]

    def get(self, partition: int, key: str) -> bytes | None:
        """The stored value, or None."""
        value: bytes | None = self._db(partition).get(table_key(key))
        return value

    def put(self, partition: int, key: str, value: bytes) -> None:
        """Store ``value`` locally and send it to the changelog (confirmed before the next commit)."""
        raw_key = table_key(key)
        self._db(partition).put(raw_key, value)
        self.outputs.send(self.changelog, raw_key, value, partition=partition)

    def delete(self, partition: int, key: str) -> None:
        """Remove ``key`` locally and from the changelog (a tombstone, which a restore applies as a delete)."""
        raw_key = table_key(key)
        self._db(partition).delete(raw_key)
        self.outputs.send(self.changelog, raw_key, None, partition=partition)

    def items_before(self, partition: int, bound: str) -> Iterator[tuple[str, bytes]]:
        """The partition's entries in key order, while their key sorts below ``bound``."""
        limit = table_key(bound)
        for raw_key, value in self._db(partition).items():
            if raw_key >= limit:
                return
            if raw_key.startswith(b'"'):  # skip faust's own bookkeeping key (its persisted offset)
                yield json.loads(raw_key), value

    def stored(self, offsets: dict[tuple[str, int], int]) -> None:
        """Record how far the local store holds its changelog, so a restart reads only what follows."""
        for (topic, partition), offset in offsets.items():
            if topic == self.changelog:
                self.table.data.set_persisted_offset(TP(topic, partition), offset)  # type: ignore[attr-defined]

    def view(self, partition: int) -> PartitionView:
        """The partition as a mapping."""
        return PartitionView(self, partition)


class PartitionView(MutableMapping[str, bytes]):
    """One partition of a table as a mapping, for the pure join functions."""

    def __init__(self, table: StateTable, partition: int) -> None:
        self._table = table
        self._partition = partition

    def __getitem__(self, key: str) -> bytes:
        value = self._table.get(self._partition, key)
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value: bytes) -> None:
        self._table.put(self._partition, key, value)

    def __delitem__(self, key: str) -> None:
        raise NotImplementedError("the processor never deletes state")

    def __iter__(self) -> Iterator[str]:
        raise NotImplementedError("a partition's keys are not listed")

    def __len__(self) -> int:
        raise NotImplementedError("a partition's keys are not counted")
