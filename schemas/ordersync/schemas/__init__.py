"""The event contract: Avro schemas (``schemas/ordersync/schemas/avro/<subject>/v<N>.avsc``), their single-object serde,
and the topic catalogue. Every component imports this package; none imports another component."""

from ordersync.schemas.registry import SchemaRegistry, SchemaVersion, registry
from ordersync.schemas.serde import DecodeError, EncodeError, UnknownSchema, decode, encode

__all__ = [
    "DecodeError",
    "EncodeError",
    "SchemaRegistry",
    "SchemaVersion",
    "UnknownSchema",
    "decode",
    "encode",
    "registry",
]
