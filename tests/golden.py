"""The processor's golden history: a fixed mixed history of raw events (both platforms, status changes,
duplicates and late versions, deletes, refunds, contacts arriving after their orders, imports, dead
letters) in three phases, and what the processor emitted for it, read back through the contract.

Phases keep the result deterministic: within a phase no contact is touched by two sources, and a phase
starts only once the previous one's outputs are all out. ``tests/golden/processor.json`` was recorded
from the processor as it was before the batching rewrite (``python -m tests.golden record``);
tests/test_golden.py checks that today's processor emits the same records.

    python -m tests.golden record   # needs the local stack (ordersync stack up)
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from ordersync.schemas import decode, encode
from ordersync.schemas.identity import contact_id
from tests.raw_events import T, ps_doc, ps_event, state, woo_doc, woo_event
from tests.samples import raw_customer_event

GOLDEN = Path(__file__).parent / "golden" / "processor.json"
OUTPUTS = ("orders", "activity", "contacts", "dlq")
Record = tuple[bytes, bytes]


def _woo(order_id: int, status: str, minute: int, **doc: Any) -> Record:
    event = woo_event(
        woo_doc(order_id, status=status, date_modified_gmt=f"2024-03-14T10:{minute:02d}:00", **doc),
        fetched_at=T + dt.timedelta(minutes=minute),
    )
    return f"woo-ch:{order_id}".encode(), encode("raw_order_event", event)


def _woo_delete(order_id: int, minute: int) -> Record:
    event = woo_event(
        {"id": order_id},
        operation="DELETE",
        source_modified_at=None,
        fetched_at=T + dt.timedelta(hours=1, minutes=minute),
    )
    return f"woo-ch:{order_id}".encode(), encode("raw_order_event", event)


def _ps(order_id: int, sid: int, name: str, minute: int, **flags: bool) -> Record:
    event = ps_event(
        ps_doc(order_id, date_upd=f"2024-07-01 11:{minute:02d}:00"),
        state(sid, name, **flags),
        store_id="ps-pt",
        fetched_at=T + dt.timedelta(minutes=minute),
    )
    event["context"]["customer"] = None  # the order names customer 42 only by id: it waits for the customer
    return f"ps-pt:{order_id}".encode(), encode("raw_order_event", event)


def _customer(store: str, platform: str, cid: str, document: dict[str, Any]) -> Record:
    event = raw_customer_event()
    event.update(store_id=store, platform=platform, source_customer_id=cid, document=json.dumps(document))
    return f"{store}:{cid}".encode(), encode("raw_customer_event", event)


def _import(email: str, first_name: str) -> Record:
    contact = {
        "contact_id": contact_id("7", email),
        "list_id": "7",
        "email": email,
        "first_name": first_name,
        "last_name": None,
        "phone": None,
        "marketing_consent": True,
        "origin": "IMPORT",
        "store_customers": [],
        "created_at": T,
        "updated_at": T,
        "version": 1,
    }
    return f"7:{email}".encode(), encode("contact", contact)


def _not_json(order_id: int) -> Record:
    event = woo_event(woo_doc(order_id))
    event["document"] = "<html><body>Fatal error</body></html>"
    return f"woo-ch:{order_id}".encode(), encode("raw_order_event", event)


def phases() -> list[dict[str, list[Record]]]:
    """Three phases of input, by short topic name."""
    no_email = {"billing": {"email": ""}}
    refund = {"refunds": [{"id": 5, "reason": "damaged", "total": "-35.95"}]}
    coupon = {"coupon_lines": [{"id": 1, "code": "SPRING", "discount": "5.00"}]}
    return [
        {
            "raw.orders": [
                _woo(10, "pending", 1),
                _woo(10, "processing", 2),
                _woo(10, "processing", 2),  # a duplicate delivery
                _woo(10, "pending", 1),  # late: an older version
                _woo(11, "processing", 1, customer_id=55, **no_email),  # waits for customer 55
                _woo(12, "processing", 1, customer_id=0, **no_email),  # a guest without e-mail: unmatched
                _woo(13, "completed", 3, billing={"email": "Ana@Example.com", "first_name": "Ana"}, **coupon),
                _woo(14, "processing", 2, billing={"email": "bo@example.com"}),
                _woo(14, "refunded", 4, billing={"email": "bo@example.com"}, **refund),
                _ps(7, 2, "Payment accepted", 1, paid=True),
                _ps(8, 6, "Canceled", 2),
                (b"woo-ch:19", b"\x00garbage"),
                _not_json(20),
            ],
        },
        {
            "raw.customers": [
                _customer(
                    "woo-ch",
                    "WOOCOMMERCE",
                    "55",
                    {
                        "id": 55,
                        "email": "ZOE.Muller@example.com",
                        "first_name": "Zoë",
                        "last_name": "Müller",
                        "billing": {"phone": "+41 79 000"},
                    },
                ),
                _customer(
                    "ps-pt",
                    "PRESTASHOP",
                    "42",
                    {"id": 42, "email": "joão@example.pt", "firstname": "João", "newsletter": "1"},
                ),
                _customer("woo-ch", "WOOCOMMERCE", "56", {"id": 56, "email": ""}),  # no usable e-mail: dead letter
            ],
            "contacts.import": [_import("new@example.com", "Nina")],
        },
        {
            "raw.orders": [
                _woo(11, "completed", 5, customer_id=55, **no_email),  # now matched through the alias
                _woo(10, "refunded", 6, **refund),
                _woo(15, "processing", 3, billing={"email": "NEW@example.com"}),  # the imported contact
                _woo_delete(13, 1),
                _woo_delete(16, 1),  # a delete of an order never seen
                _ps(7, 5, "Delivered", 9, paid=True, shipped=True),
            ],
        },
    ]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return f"Decimal:{value}"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    return value


def canonical(
    prefix: str, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
) -> dict[str, Any]:
    """One output message as comparable JSON: the decoded record (or, for dead letters, the headers and a
    digest of the original bytes). Topic names appear without the run's prefix."""
    out: dict[str, Any] = {"key": (key or b"").decode("utf-8", "replace")}
    if topic == "dlq":
        out["headers"] = {
            k: v.decode("utf-8", "replace").removeprefix(prefix) for k, v in headers if k.startswith("dlq.")
        }
        out["value_sha256"] = hashlib.sha256(value or b"").hexdigest()
        out["value_head"] = base64.b64encode((value or b"")[:16]).decode()
        return out
    out["record"] = _plain(decode(value))
    if headers:
        out["headers"] = {k: v.decode("utf-8", "replace") for k, v in headers}
    return out


def by_key(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Records per key, each key's in the order emitted (order across keys is not part of the contract)."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        grouped.setdefault(rec["key"], []).append(rec)
    return dict(sorted(grouped.items()))


def as_batches(records: list[Record], partitions: int) -> list[tuple[bytes, bytes, int]]:
    """Raw order records as a connector publishes a page: the events of one partition in one
    raw_order_batch, placed in that partition; what is not an event goes alone."""
    from ordersync.schemas.batches import batch_of, by_partition
    from ordersync.schemas.partitioning import connector_partition

    events, others = [], []
    for key, value in records:
        try:
            decode(value, "raw_order_event")
            events.append((key.decode(), value))
        except ValueError:
            others.append((key, value, connector_partition(key, partitions)))
    batches = [
        (group[0][0].encode(), batch_of(f"golden-{i}", [v for _, v in group]), partition)
        for i, (partition, group) in enumerate(by_partition(events, partitions))
    ]
    return others + batches


def run_history(
    bootstrap: str,
    prefix: str,
    wait_phase: Callable[[int, dict[str, int]], None],
    batched_partitions: int | None = None,
) -> list[dict[str, dict[str, list[dict[str, Any]]]]]:
    """Produce each phase and call ``wait_phase(i, outputs_before)`` until its outputs are out; returns
    each phase's new outputs per topic, grouped by key. With ``batched_partitions`` the raw orders go
    as batches, as the connector publishes pages."""
    from confluent_kafka import Producer

    from tests.kafka_helpers import drain, produce

    done: dict[str, set[tuple[int, int]]] = {short: set() for short in OUTPUTS}  # (partition, offset) seen
    result = []
    for i, phase in enumerate(phases()):
        for short, records in phase.items():
            if short == "raw.orders" and batched_partitions:
                producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
                for key, value, partition in as_batches(records, batched_partitions):
                    producer.produce(prefix + short, key=key, value=value, partition=partition)
                assert producer.flush(30) == 0
            else:
                produce(bootstrap, prefix + short, records)
        wait_phase(i, {short: len(seen) for short, seen in done.items()})
        got = {}
        for short in OUTPUTS:
            new = [m for m in drain(bootstrap, prefix + short) if (m.partition(), m.offset()) not in done[short]]
            done[short].update((m.partition(), m.offset()) for m in new)
            got[short] = by_key([canonical(prefix, short, m.key(), m.value(), list(m.headers() or [])) for m in new])
        result.append(got)
    return result


def output_count(bootstrap: str, prefix: str) -> dict[str, int]:
    from tests.kafka_helpers import drain

    return {short: len(drain(bootstrap, prefix + short)) for short in OUTPUTS}


def comparable(
    phase: dict[str, dict[str, list[dict[str, Any]]]], batched: bool = False
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """A phase's outputs with the one order the contract leaves open fixed: the activity events one
    order change produces share a version and may be published in any order. ``batched``: a dead letter
    names the batch message's offset (and the event's index in it), not the single event's offset."""
    out = dict(phase)
    if batched:
        where = ("dlq.source.offset", "dlq.source.batch_index")
        out["dlq"] = {
            key: [{**r, "headers": {k: v for k, v in r["headers"].items() if k not in where}} for r in recs]
            for key, recs in phase["dlq"].items()
        }
    out["activity"] = {
        key: sorted(recs, key=lambda r: (r["record"]["version"], r["record"]["type"]))
        for key, recs in phase["activity"].items()
    }
    return out


def count(phase: dict[str, dict[str, list[Any]]]) -> dict[str, int]:
    return {topic: sum(len(v) for v in keyed.values()) for topic, keyed in phase.items()}


def _record() -> None:
    """Run the processor over the history and write the golden file; each phase ends once its outputs
    stopped changing for 10 s (there is nothing to compare with yet)."""
    from ordersync.runtime.settings import Settings
    from ordersync.topics_admin import create_topics
    from tests.processes import running

    settings = Settings.from_env()
    prefix = f"golden-{int(time.time())}."
    env = {
        "ORDERSYNC_TOPIC_PREFIX": prefix,
        "ORDERSYNC_PARTITIONS": "2",
        "ORDERSYNC_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
    }
    create_topics(Settings.from_env(env))
    work = Path(tempfile.mkdtemp(prefix="golden-"))

    def settle(_: int, __: dict[str, int]) -> None:
        last, stable_since = -1, time.monotonic()
        while time.monotonic() - stable_since < 10:
            now = sum(output_count(settings.kafka_bootstrap, prefix).values())
            if now != last:
                last, stable_since = now, time.monotonic()
            time.sleep(0.5)

    import os

    args = ["process", "--app-id", prefix + "p", "--data-dir", str(work / "state"), "--loglevel", "warn"]
    with running(args, {**os.environ, **env}, work / "proc.log"):
        result = run_history(settings.kafka_bootstrap, prefix, settle)
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(result, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}: {[count(p) for p in result]}")


if __name__ == "__main__":
    if sys.argv[1:] == ["record"]:
        _record()
    else:
        sys.exit(__doc__)
