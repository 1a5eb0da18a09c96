"""Which partition a key lands in. Part of the contract because a batch of records that share a
partition is published with that partition named explicitly (docs/contract.md "Batches"): it must be
the partition each record's key would have picked alone, or one order's events would be split.

- Connectors publish with librdkafka's default partitioner: CRC-32 of the key modulo the partitions.
- The processor's outputs and its internal topic use Kafka's Java-compatible murmur2 partitioner (as
  every Java client and aiokafka do), so downstream consumers in any language agree with it.
"""

from __future__ import annotations

import zlib

from aiokafka.partitioner import murmur2


def connector_partition(key: bytes, partitions: int) -> int:
    return zlib.crc32(key) % partitions


def murmur2_partition(key: bytes, partitions: int) -> int:
    return int(murmur2(key) & 0x7FFFFFFF) % partitions
