"""Fuzzed store payloads: normalisation either yields an order that fits the contract or raises
NormaliseError (which the processor sends to the dead-letter topic); it never crashes another way."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ordersync.processors.normalise import normalise_order
from ordersync.processors.values import NormaliseError
from ordersync.schemas import encode
from tests.raw_events import ps_doc, ps_event, state, woo_doc, woo_event

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63), st.floats(allow_nan=True), st.text(max_size=20),
    st.sampled_from(["", "0", "12.50", "-1", "1e400", "NaN", "2024-13-45T99:00:00", "0000-00-00 00:00:00", "abc"]),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8,
)


def mutate(doc: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    doc = json.loads(json.dumps(doc))
    for _ in range(data.draw(st.integers(1, 4))):
        field = data.draw(st.sampled_from(sorted(doc)))
        if data.draw(st.booleans()):
            doc[field] = data.draw(values)
        else:
            del doc[field]
    return doc


def check(event: dict[str, Any]) -> None:
    try:
        result = normalise_order(event)
    except NormaliseError:
        return
    encode("order", result.order)  # what was accepted fits the contract (EncodeError would be a bug here)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzzed_woocommerce_documents(data: st.DataObject) -> None:
    doc = mutate(woo_doc(), data)
    event = woo_event(woo_doc())
    event["document"] = json.dumps(doc, default=str)
    check(event)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzzed_prestashop_documents(data: st.DataObject) -> None:
    event = ps_event(ps_doc(), state(2, "Payment accepted", paid=True))
    event["document"] = json.dumps({"order": mutate(ps_doc(), data)}, default=str)
    check(event)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_fuzzed_raw_bytes_as_document(blob: bytes) -> None:
    event = woo_event(woo_doc())
    event["document"] = blob.decode("utf-8", errors="replace")
    check(event)
