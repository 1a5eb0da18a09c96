"""The contract: every schema round-trips, fingerprints follow the spec, bad bytes fail clearly,
and every current schema reads all older versions of itself."""

from __future__ import annotations

import copy
import io
import json
from decimal import Decimal
from typing import Any

import fastavro
import pytest

from ordersync.schemas import DecodeError, EncodeError, SchemaRegistry, UnknownSchema, decode, encode, registry
from ordersync.schemas.compatibility import check_registry, incompatibilities
from ordersync.schemas.fingerprint import crc64_avro
from ordersync.schemas.json_view import to_json
from ordersync.schemas.registry import build_version
from ordersync.schemas.serde import MARKER
from tests.samples import SAMPLES, contact


def contact_v3_fill(record: dict[str, Any]) -> dict[str, Any]:
    """A contact sample as the current reader returns it: the fields added since, with their defaults."""
    return {
        **record,
        "marketing_consent": record.get("marketing_consent"),
        "consent_history": record.get("consent_history", []),
        "consent_at": record.get("consent_at"),
    }


@pytest.mark.parametrize(("subject", "index"), [(s, i) for s, recs in SAMPLES.items() for i in range(len(recs))])
def test_every_schema_round_trips(subject: str, index: int) -> None:
    record = SAMPLES[subject][index]
    data = encode(subject, record)
    assert data[:2] == MARKER
    decoded = decode(data, subject)
    expected = contact_v3_fill(record) if subject == "contact" else record
    assert decoded == expected


def test_every_subject_has_a_sample() -> None:
    assert set(SAMPLES) == set(registry().subjects)


def test_decimals_stay_exact_and_render_as_strings() -> None:
    order = SAMPLES["order"][0]
    decoded = decode(encode("order", order))
    assert decoded["total"] == Decimal("1234.56") and isinstance(decoded["total"], Decimal)
    rendered = json.loads(to_json(decoded))
    assert rendered["total"] == "1234.560000"
    assert rendered["created_at"] == "2024-03-14T09:26:53.589000Z"


def test_too_many_decimal_places_is_an_encode_error_not_a_silent_rounding() -> None:
    order = copy.deepcopy(SAMPLES["order"][0])
    order["total"] = Decimal("1.1234567")
    with pytest.raises(EncodeError, match="order"):
        encode("order", order)


def test_crc64_avro_matches_the_specification_vector() -> None:
    # From the Avro specification's test data: the fingerprint of the schema "null".
    assert crc64_avro(b'"null"') == 7195948357588979594


def test_fingerprint_is_little_endian_in_the_header() -> None:
    data = encode("activity", SAMPLES["activity"][0])
    assert data[2:10] == registry().current("activity").fingerprint.to_bytes(8, "little")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (None, "no value"),
        (b"\xc3", "shorter"),
        (b'{"json": "not avro"}', "marker"),
    ],
)
def test_bad_bytes_raise_one_clear_error(data: bytes | None, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason) as info:
        decode(data)
    assert reason in info.value.reason


def test_an_unknown_writer_schema_is_not_bad_data() -> None:
    """A record of a schema this reader lacks (a writer upgraded first) is no DecodeError: readers stop."""
    with pytest.raises(UnknownSchema, match=r"fingerprint 0000000000000000.*upgrade the readers"):
        decode(MARKER + b"\x00" * 8 + b"body")


def test_truncated_and_padded_bodies_are_corrupt() -> None:
    data = encode("order", SAMPLES["order"][0])
    with pytest.raises(DecodeError, match="corrupt order"):
        decode(data[:-20])
    with pytest.raises(DecodeError, match="trailing bytes"):
        decode(data + b"\x00\x00")


def test_wrong_subject_is_refused() -> None:
    with pytest.raises(DecodeError, match="expected a order event, got activity"):
        decode(encode("activity", SAMPLES["activity"][0]), "order")


def test_v1_contact_data_is_read_with_the_current_schema() -> None:
    reg = registry()
    v1, *_ = reg.versions("contact")
    assert v1.version == 1
    # Write with the released v1 schema exactly as an old producer did.
    out = io.BytesIO()
    out.write(MARKER + v1.fingerprint_bytes)
    record = contact()
    fastavro.schemaless_writer(out, v1.parsed, record)
    decoded = decode(out.getvalue(), "contact")
    assert decoded["marketing_consent"] is None  # the v2 field's default
    assert decoded["consent_history"] == [] and decoded["consent_at"] is None  # v3's
    assert decoded["email"] == record["email"]


def test_all_current_schemas_read_all_their_older_versions() -> None:
    assert check_registry(registry()) == []


def _contact_versions(v2: dict[str, Any]) -> SchemaRegistry:
    v1 = registry().versions("contact")[0].definition
    return SchemaRegistry([build_version("contact", 1, v1), build_version("contact", 2, v2)])


def test_the_check_fails_on_a_new_field_without_default() -> None:
    v2 = copy.deepcopy(registry().versions("contact")[0].definition)
    v2["fields"].append({"name": "score", "type": "int"})
    problems = check_registry(_contact_versions(v2))
    assert problems and "score: new field without a default" in problems[0]


def test_the_check_fails_on_a_changed_field_type() -> None:
    v2 = copy.deepcopy(registry().versions("contact")[0].definition)
    for field in v2["fields"]:
        if field["name"] == "version":
            field["type"] = "int"  # long → int narrows: old data cannot be read
    assert any("version: writer long cannot be read as int" in p for p in check_registry(_contact_versions(v2)))


def test_the_check_fails_when_an_enum_loses_a_symbol_without_default() -> None:
    reader = {"type": "enum", "name": "E", "symbols": ["A"]}
    writer = {"type": "enum", "name": "E", "symbols": ["A", "B"]}
    assert incompatibilities(reader, writer)
    assert incompatibilities({**reader, "default": "A"}, writer) == []


def test_the_check_accepts_promotions_and_union_widening() -> None:
    assert incompatibilities("long", "int") == []
    assert incompatibilities(["null", "string"], "string") == []
    assert incompatibilities("string", ["null", "string"]) != []  # a null could not be read


def test_the_check_agrees_with_fastavro_on_real_data() -> None:
    # Static verdicts backed by an actual resolution through fastavro.
    v1 = registry().versions("contact")[0]
    v2 = registry().versions("contact")[1]
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, v1.parsed, contact())
    buf.seek(0)
    assert fastavro.schemaless_reader(buf, v1.parsed, v2.parsed)["marketing_consent"] is None


def test_order_headers_carry_version_and_deletion() -> None:
    from ordersync.schemas.headers import order_headers, read_order_headers

    assert read_order_headers(order_headers({"version": 1_714_000_000_000_123, "deleted": False})) == (
        1_714_000_000_000_123,
        False,
    )
    assert read_order_headers(order_headers({"version": 7, "deleted": True})) == (7, True)
    assert read_order_headers({"ordersync.version": "8"}) == (8, False)  # a mapping, str values
    # without a usable version the message must be decoded
    assert read_order_headers(None) is None
    assert read_order_headers([("ordersync.deleted", b"true")]) is None
    assert read_order_headers([("ordersync.version", b"seven")]) is None
