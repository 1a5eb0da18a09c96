"""Avro single-object encoding: ``C3 01`` + 8-byte little-endian CRC-64-AVRO fingerprint + Avro binary body.

Writers always use a subject's current version. Readers look the writer schema up by fingerprint and
resolve it to the current version of the same subject, so a consumer holding the ``.avsc`` files reads
every version ever written.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import fastavro

from ordersync.schemas.registry import SchemaRegistry, registry

MARKER = b"\xc3\x01"
HEADER_LEN = len(MARKER) + 8


class UnknownSchema(Exception):
    """A record written with a schema this reader does not have: a producer was deployed before its
    readers. Not bad data: a reader must stop (and commit nothing) rather than dead-letter every record."""


class DecodeError(ValueError):
    """Bytes that are not a decodable ordersync event. ``reason`` says why, in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EncodeError(ValueError):
    """A record that does not fit its schema (missing field, wrong type, too many decimal places, ...)."""


def encode(subject: str, record: Mapping[str, Any], reg: SchemaRegistry | None = None) -> bytes:
    schema = (reg or registry()).current(subject)
    out = io.BytesIO()
    out.write(MARKER)
    out.write(schema.fingerprint_bytes)
    try:
        fastavro.schemaless_writer(out, schema.parsed, record)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise EncodeError(f"{subject}: record does not fit schema v{schema.version}: {exc}") from exc
    return out.getvalue()


def decode(
    data: bytes | None, subject: str | tuple[str, ...] | None = None, reg: SchemaRegistry | None = None
) -> dict[str, Any]:
    """Decode one single-object-encoded event; ``subject`` (if given) is what the caller expects, or a
    tuple of the subjects it accepts."""
    reg = reg or registry()
    if data is None:
        raise DecodeError("no value (a tombstone or an empty message)")
    if len(data) < HEADER_LEN:
        raise DecodeError(f"{len(data)} bytes is shorter than the {HEADER_LEN}-byte single-object header")
    if data[:2] != MARKER:
        raise DecodeError(f"missing Avro single-object marker C3 01 (starts with {data[:2].hex()})")
    fingerprint = int.from_bytes(data[2:HEADER_LEN], "little")
    writer = reg.by_fingerprint(fingerprint)
    if writer is None:
        raise UnknownSchema(
            f"a record written with schema fingerprint {fingerprint:016x}, which this version of ordersync does "
            "not know: upgrade the readers (processor, sink) before the writers (docs/contract.md)"
        )
    expected = (subject,) if isinstance(subject, str) else subject
    if expected is not None and writer.subject not in expected:
        raise DecodeError(f"expected a {' or '.join(expected)} event, got {writer.subject} v{writer.version}")
    reader = reg.current(writer.subject)
    body = io.BytesIO(data[HEADER_LEN:])
    try:
        record = fastavro.schemaless_reader(body, writer.parsed, reader.parsed)
    except Exception as exc:  # fastavro raises many types on corrupt bodies: EOFError, ValueError, ...
        raise DecodeError(f"corrupt {writer.subject} v{writer.version} body: {type(exc).__name__}: {exc}") from exc
    if body.tell() != len(data) - HEADER_LEN:
        raise DecodeError(f"{len(data) - HEADER_LEN - body.tell()} trailing bytes after the {writer.subject} body")
    if not isinstance(record, dict):
        raise DecodeError(f"{writer.subject} body did not decode to a record")
    return record
