"""The TypedDicts of ordersync.schemas.records match the current .avsc of every subject, nested records
included: a field added to a schema without its type here (or the reverse) fails."""

from __future__ import annotations

import typing
from typing import Any

import pytest

from ordersync.schemas import registry
from ordersync.schemas.records import BY_SUBJECT


def record_types(hint: Any) -> list[type]:
    """The TypedDicts inside a field's type (``X``, ``X | None``, ``list[X]``)."""
    if typing.is_typeddict(hint):
        return [hint]
    return [t for arg in typing.get_args(hint) for t in record_types(arg)]


def schema_records(schema: Any) -> list[dict[str, Any]]:
    """The record schemas inside a field's Avro type."""
    if isinstance(schema, list):
        return [r for branch in schema for r in schema_records(branch)]
    if isinstance(schema, dict):
        if schema.get("type") == "record":
            return [schema]
        if schema.get("type") == "array":
            return schema_records(schema["items"])
    return []


def compare(typed: type, record: dict[str, Any], path: str) -> None:
    hints = typing.get_type_hints(typed)
    fields = {f["name"]: f["type"] for f in record["fields"]}
    assert list(hints) == list(fields), f"{path}: {typed.__name__} keys differ from the schema's fields"
    for name, avro_type in fields.items():
        nullable = isinstance(avro_type, list) and "null" in avro_type
        assert nullable == (type(None) in typing.get_args(hints[name])), f"{path}.{name}: nullability differs"
        nested_schemas = schema_records(avro_type)
        nested_types = record_types(hints[name])
        assert len(nested_schemas) == len(nested_types), f"{path}.{name}: nested records differ"
        for sub_type, sub_schema in zip(nested_types, nested_schemas, strict=True):
            compare(sub_type, sub_schema, f"{path}.{name}")


@pytest.mark.parametrize("subject", sorted(registry().subjects))
def test_typed_records_match_the_current_schema(subject: str) -> None:
    assert subject in BY_SUBJECT, f"no TypedDict for {subject}"
    compare(BY_SUBJECT[subject], registry().current(subject).definition, subject)
