"""The faust processor as a real worker subprocess against the real broker."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ordersync.runtime.settings import Settings
from ordersync.schemas import decode, encode
from ordersync.schemas.headers import read_order_headers
from ordersync.topics_admin import create_topics
from tests.kafka_helpers import consume_until, drain, produce, set_topic_config
from tests.processes import Proc, running, wait_for
from tests.raw_events import woo_doc, woo_event
from tests.samples import raw_customer_event


@pytest.fixture
def env(subprocess_env: dict[str, str], topic_prefix: str) -> dict[str, str]:
    return {**subprocess_env, "ORDERSYNC_TOPIC_PREFIX": topic_prefix, "ORDERSYNC_PARTITIONS": "2"}


@pytest.fixture
def topics(env: dict[str, str], topic_prefix: str) -> str:
    create_topics(Settings.from_env(env))
    return topic_prefix


# A restarted worker may first wait for the group to drop a dead member (faust's session timeout: 60 s).
# CI ran out of 120 s here twice under the full suite's load, cause not established: the worker's log
# tail, printed when a test fails, will say where the time went.
RESTART_DEADLINE_S = 240


def processor(env: dict[str, str], tmp_path: Path, name: str = "p") -> list[str]:
    return [
        "process",
        "--app-id",
        f"{env['ORDERSYNC_TOPIC_PREFIX']}{name}",
        "--data-dir",
        str(tmp_path / f"state-{name}"),
        "--loglevel",
        "info",
    ]


def order_event(order_id: int, status: str, minute: int, **doc: Any) -> tuple[bytes, bytes]:
    event = woo_event(woo_doc(order_id, status=status, date_modified_gmt=f"2024-03-14T10:{minute:02d}:00", **doc))
    return f"woo-ch:{order_id}".encode(), encode("raw_order_event", event)


def activities(bootstrap: str, prefix: str) -> list[dict[str, Any]]:
    return [decode(m.value()) for m in drain(bootstrap, f"{prefix}activity")]


def test_duplicates_and_late_versions_emit_nothing_extra(
    env: dict[str, str], topics: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    produce(
        kafka_bootstrap,
        f"{topics}raw.orders",
        [
            order_event(1, "pending", 1),
            order_event(1, "processing", 2),
            order_event(1, "processing", 2),  # duplicate delivery
            order_event(1, "pending", 1),  # late, older version
            order_event(1, "completed", 3),
            order_event(1, "processing", 2),  # late again
            order_event(1, "refunded", 4, refunds=[{"id": 5, "reason": "x", "total": "-35.95"}]),  # the sentinel
        ],
    )
    with running(processor(env, tmp_path), env, tmp_path / "proc.log") as proc:
        consume_until(
            kafka_bootstrap,
            f"{topics}activity",
            lambda ms: any(decode(m.value())["to_store_status"] == "refunded" for m in ms),
            alive=proc.alive,
            deadline_s=120,
        )
    events = activities(kafka_bootstrap, topics)
    versions = [e["version"] for e in events]
    assert versions == sorted(versions)  # one order's timeline arrives in order (one key, one partition)
    assert sorted((e["version"], e["type"], e["to_store_status"] or "") for e in events) == sorted(
        [
            (versions[0], "ORDER_CREATED", "pending"),
            (versions[1], "ORDER_STATUS_CHANGED", "processing"),
            (versions[2], "ORDER_STATUS_CHANGED", "completed"),
            (versions[-1], "ORDER_STATUS_CHANGED", "refunded"),
            (versions[-1], "ORDER_UPDATED", ""),
        ]
    )
    assert next(e for e in events if e["type"] == "ORDER_UPDATED")["changed_fields"] == ["refunded_total", "refunds"]
    messages = drain(kafka_bootstrap, f"{topics}orders")
    orders = [decode(m.value()) for m in messages]
    assert [o["store_status"] for o in orders] == ["pending", "processing", "completed", "refunded"]
    # the headers the sink reads instead of decoding say what the values say
    assert [read_order_headers(m.headers()) for m in messages] == [(o["version"], False) for o in orders]


def test_a_worker_on_a_cluster_without_its_internal_topics_creates_them_first_and_contacts_land(
    env: dict[str, str], topic_prefix: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A new cluster or prefix (the demo, a replay): only the raw topic exists when the worker starts.
    Before, faust created processor.by-contact as it subscribed, the group's first assignment could miss
    it, and nobody read it: orders landed, contacts never did."""
    from ordersync.processors.app import ProcessorOptions, create_app, topics_of
    from ordersync.topics_admin import admin_client, describe

    settings = Settings.from_env(env)
    create_topics(settings, {"raw.orders"})
    produce(
        kafka_bootstrap,
        f"{topic_prefix}raw.orders",
        [order_event(i, "processing", 1, billing={"email": f"c{i}@example.com"}) for i in range(1, 9)],
    )
    app_id = f"{topic_prefix}p"
    with running(processor(env, tmp_path), env, tmp_path / "proc.log") as proc:
        consume_until(
            kafka_bootstrap, f"{topic_prefix}contacts", lambda ms: len(ms) >= 8, alive=proc.alive, deadline_s=120
        )
    used = topics_of(create_app(ProcessorOptions(kafka_bootstrap, topic_prefix, 2, 1, app_id, tmp_path / "x", {})))
    found = describe(admin_client(settings), sorted(used))
    assert set(found) == used  # every topic it uses exists, created with the wiring's settings:
    assert found[f"{topic_prefix}processor.by-contact"].configs["retention.ms"] == str(30 * 24 * 3600 * 1000)
    assert found[f"{app_id}-contacts-changelog"].configs["cleanup.policy"] == "compact"


def test_order_before_customer_gets_one_contact_and_emailless_orders_match_later(
    env: dict[str, str], topics: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    customer = raw_customer_event()
    customer.update(
        platform="WOOCOMMERCE", store_id="woo-ch", source_customer_id="55",
        document=json.dumps({"id": 55, "email": "ZOE.Muller@example.com", "first_name": "Zoë", "last_name": "Müller", "billing": {"phone": "+41 79 000"}}),
    )  # fmt: skip
    produce(
        kafka_bootstrap,
        f"{topics}raw.orders",
        [
            order_event(10, "processing", 1, customer_id=55),  # has an e-mail: contact created from billing
            order_event(11, "processing", 1, customer_id=55, billing={"email": ""}),  # no e-mail: waits for customer 55
            order_event(
                12, "processing", 1, customer_id=0, billing={"email": ""}
            ),  # guest, no e-mail: unmatched forever
        ],
    )
    with running(processor(env, tmp_path), env, tmp_path / "proc.log") as proc:
        consume_until(kafka_bootstrap, f"{topics}orders", lambda ms: len(ms) >= 3, alive=proc.alive, deadline_s=120)
        produce(kafka_bootstrap, f"{topics}raw.customers", [(b"woo-ch:55", encode("raw_customer_event", customer))])

        def matched_11(ms: list[Any]) -> bool:
            return any(decode(m.value())["source_order_id"] == "11" and decode(m.value())["matched"] for m in ms)

        consume_until(kafka_bootstrap, f"{topics}orders", matched_11, alive=proc.alive, deadline_s=60)
        consume_until(
            kafka_bootstrap,
            f"{topics}contacts",
            lambda ms: any(decode(m.value())["phone"] for m in ms),
            alive=proc.alive,
            deadline_s=60,
        )
    contacts = [decode(m.value()) for m in drain(kafka_bootstrap, f"{topics}contacts")]
    assert {c["contact_id"] for c in contacts} == {contacts[0]["contact_id"]}  # one contact, updated
    assert {m.key() for m in drain(kafka_bootstrap, f"{topics}contacts")} == {b"1:zoe.muller@example.com"} or {
        c["email"] for c in contacts
    } == {"zoe.muller@example.com"}
    assert contacts[-1]["origin"] == "ORDER_BILLING" and contacts[-1]["phone"] == "+41 79 000"
    latest = {o["source_order_id"]: o for o in (decode(m.value()) for m in drain(kafka_bootstrap, f"{topics}orders"))}
    assert latest["10"]["contact_id"] == latest["11"]["contact_id"] == contacts[0]["contact_id"]
    assert latest["12"]["matched"] is False and latest["12"]["contact_id"] is None
    # The activity of the order that waited is re-emitted with its contact, under the same event id.
    acts = [a for a in activities(kafka_bootstrap, topics) if a["source_order_id"] == "11"]
    assert len({a["event_id"] for a in acts}) == 1 and acts[-1]["contact_id"] == contacts[0]["contact_id"]


def test_garbage_goes_to_the_dead_letter_topic_and_the_stream_goes_on(
    env: dict[str, str], topics: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    bad_doc = woo_event(woo_doc(20))
    bad_doc["document"] = "<html><body>Fatal error</body></html>"
    produce(
        kafka_bootstrap,
        f"{topics}raw.orders",
        [
            (b"woo-ch:19", b"\x00garbage"),
            (b"woo-ch:20", encode("raw_order_event", bad_doc)),
            order_event(21, "completed", 5),
        ],
    )
    with running(processor(env, tmp_path), env, tmp_path / "proc.log") as proc:
        consume_until(kafka_bootstrap, f"{topics}activity", lambda ms: len(ms) >= 1, alive=proc.alive, deadline_s=120)
        dead = consume_until(kafka_bootstrap, f"{topics}dlq", lambda ms: len(ms) >= 2, alive=proc.alive, deadline_s=60)
        log = proc.output()
    by_key = {m.key(): dict(m.headers() or []) for m in dead}
    assert b"marker" in by_key[b"woo-ch:19"]["dlq.reason"] or b"single-object" in by_key[b"woo-ch:19"]["dlq.reason"]
    assert by_key[b"woo-ch:19"]["dlq.stage"] == b"decode"
    assert b"not JSON" in by_key[b"woo-ch:20"]["dlq.reason"] and by_key[b"woo-ch:20"]["dlq.stage"] == b"normalise"
    assert by_key[b"woo-ch:20"]["dlq.source.topic"] == f"{topics}raw.orders".encode()
    assert [m.value() for m in dead if m.key() == b"woo-ch:19"] == [b"\x00garbage"]  # original bytes kept
    assert "dead letter #2" in log


def test_worker_killed_mid_stream_loses_nothing_and_redeliveries_are_identical(
    env: dict[str, str], topics: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    n = 1500
    records = [order_event(1000 + i, "pending", 1) for i in range(n)] + [
        order_event(1000 + i, "completed", 2) for i in range(n)
    ]
    produce(kafka_bootstrap, f"{topics}raw.orders", records)
    args = processor(env, tmp_path, "killed")
    for round_ in range(2):
        proc = Proc(args, env, tmp_path / f"proc-{round_}.log")
        try:
            wait_for(
                lambda p=proc, r=round_: (
                    not p.alive() or len(drain(kafka_bootstrap, f"{topics}activity")) > (r + 1) * 400
                ),
                180,
                "some activity",
            )
            assert proc.alive(), proc.output()[-3000:]
            proc.kill()
        finally:
            proc.close()
    # Wait for every distinct event *id* (not distinct bytes: a redelivery that differed would then end
    # the wait early and look like a loss).
    ids: list[str] = []

    def every_event(ms: list[Any]) -> bool:
        ids.extend(decode(m.value())["event_id"] for m in ms[len(ids) :])
        return len(set(ids)) >= 2 * n

    with running(args, env, tmp_path / "proc-final.log") as proc:
        consume_until(
            kafka_bootstrap,
            f"{topics}activity",
            every_event,
            alive=proc.alive,
            deadline_s=300,
        )
    events = activities(kafka_bootstrap, topics)
    by_id: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        by_id.setdefault(e["event_id"], []).append(e)
    assert len(by_id) == 2 * n, f"{len(by_id)} distinct events, expected {2 * n}"
    # At-least-once delivery: a batch in flight when the worker died may be delivered again, but as the
    # very same event (same id, same content), which every consumer upserts away.
    differing = {i: copies for i, copies in by_id.items() if any(copy != copies[0] for copy in copies)}
    assert not differing, f"redeliveries differ: {list(differing.items())[:2]}"
    assert Counter(copies[0]["type"] for copies in by_id.values()) == {"ORDER_CREATED": n, "ORDER_STATUS_CHANGED": n}


def test_fresh_app_id_replays_to_the_same_event_ids(
    env: dict[str, str], topics: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    produce(kafka_bootstrap, f"{topics}raw.orders", [order_event(30, "pending", 1), order_event(30, "completed", 2)])
    with running(processor(env, tmp_path, "a"), env, tmp_path / "a.log") as proc:
        consume_until(kafka_bootstrap, f"{topics}activity", lambda ms: len(ms) >= 2, alive=proc.alive, deadline_s=120)
    first = {e["event_id"] for e in activities(kafka_bootstrap, topics)}
    # A second identity over the same raw topic, writing under its own prefix (as `ordersync replay` does),
    # produces the very same event ids.
    replay_prefix = f"{topics}replay."
    args = [*processor(env, tmp_path, "b"), "--output-prefix", replay_prefix]
    with running(args, env, tmp_path / "b.log") as proc:
        consume_until(
            kafka_bootstrap, f"{replay_prefix}activity", lambda ms: len(ms) >= 2, alive=proc.alive, deadline_s=120
        )
    replayed = {e["event_id"] for e in activities(kafka_bootstrap, replay_prefix)}
    assert replayed == first and len(first) == 2


def test_contacts_import_feeds_the_processor_and_bad_rows_are_kept(
    env: dict[str, str], topics: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    csv_file = tmp_path / "contacts.csv"
    csv_file.write_text(
        "Email,First_Name,Last_Name,consent\n Ana@Example.com ,Ana,Silva,yes\nnot-an-email,X,Y,\nbo@example.com,Bo,,no\n"
    )
    with running(["contacts", "import", str(csv_file), "--list", "1"], env, tmp_path / "import.log") as imp:
        assert imp.wait(60) == 1  # one bad row
        assert "imported 2 contacts" in imp.output() and "line 3" in imp.output()
    assert [dict(m.headers() or [])["dlq.stage"] for m in drain(kafka_bootstrap, f"{topics}dlq")] == [
        b"contacts-import"
    ]
    with running(processor(env, tmp_path), env, tmp_path / "proc.log") as proc:
        got = consume_until(
            kafka_bootstrap, f"{topics}contacts", lambda ms: len(ms) >= 2, alive=proc.alive, deadline_s=120
        )
    emails = {decode(m.value())["email"]: decode(m.value()) for m in got}
    assert set(emails) == {"ana@example.com", "bo@example.com"}
    assert emails["ana@example.com"]["marketing_consent"] is True and emails["ana@example.com"]["origin"] == "IMPORT"


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> list[int]:
    """The group's committed offsets of ``topic`` (-1001: none)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=30)
        return [tp.offset for tp in found]
    finally:
        consumer.close()


def wait_for_orders(bootstrap: str, prefix: str, ids: range, proc: Proc) -> None:
    """Until ``orders`` holds a record of each order id (or ``proc`` dies)."""
    wanted = {str(n) for n in ids}
    consume_until(
        bootstrap,
        f"{prefix}orders",
        lambda ms: {decode(m.value())["source_order_id"] for m in ms} >= wanted,
        alive=proc.alive,
        deadline_s=RESTART_DEADLINE_S,
    )


def wait_until_committed(
    bootstrap: str, prefix: str, messages: int, partitions: int, proc: Proc, topic: str = "raw.orders"
) -> None:
    """Until the processor has committed ``messages`` messages of ``topic``: an offset is committed only
    once every output of the events below it is acknowledged, so the output topics are complete up to
    there. (Seeing one output is not enough: the others may still be in flight when the test kills the
    worker.)"""
    group, topic = f"{prefix}p", f"{prefix}{topic}"

    def done() -> bool:
        assert proc.alive(), proc.output()
        return sum(max(0, offset) for offset in committed(bootstrap, group, topic, partitions)) >= messages

    wait_for(done, RESTART_DEADLINE_S, f"a commit of {messages} raw.orders messages")


def test_an_exception_in_an_agent_stops_the_worker_before_the_commit(
    env: dict[str, str], topic_prefix: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A bug (not bad data) on one event: faust's default restarts the agent and acks the event, so it is
    committed and skipped. Here the worker stops, nothing at or after the event is committed, and after
    the restart every order is there, once."""
    env = {**env, "ORDERSYNC_PARTITIONS": "1", "BUG_ORDER_ID": "13", "BUG_FLAG": str(tmp_path / "bug-fired")}
    create_topics(Settings.from_env(env))
    produce(kafka_bootstrap, f"{topic_prefix}raw.orders", [order_event(n, "processing", 1) for n in range(1, 21)])
    args = processor(env, tmp_path)
    with running(args, env, tmp_path / "first.log", module="tests.apps.processor_with_a_bug") as proc:
        code = proc.wait(120)
        assert code != 0, proc.output()
        assert "stopping the worker without committing" in proc.output()
    (offset,) = committed(kafka_bootstrap, f"{topic_prefix}p", f"{topic_prefix}raw.orders", 1)
    assert offset <= 12, f"committed past the failed event (offset 12): {offset}"
    with running(args, env, tmp_path / "second.log", module="tests.apps.processor_with_a_bug") as proc:
        wait_for_orders(kafka_bootstrap, topic_prefix, range(1, 21), proc)
        wait_until_committed(kafka_bootstrap, topic_prefix, 20, 1, proc)
    created = Counter(
        e["source_order_id"] for e in activities(kafka_bootstrap, topic_prefix) if e["type"] == "ORDER_CREATED"
    )
    assert set(created) == {str(n) for n in range(1, 21)}  # order 13 too: the failed event was not skipped


def test_a_record_of_an_unknown_schema_stops_the_processor_with_nothing_dead_lettered(
    env: dict[str, str], topic_prefix: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A connector upgraded before the processor: the processor stops with a clear message and commits
    nothing past the record, instead of emptying raw.orders into the dead-letter topic."""
    from ordersync.schemas.serde import MARKER

    env = {**env, "ORDERSYNC_PARTITIONS": "1"}
    create_topics(Settings.from_env(env))
    newer = MARKER + (0x1234_5678_9ABC_DEF0).to_bytes(8, "little") + b"a newer raw order"
    produce(kafka_bootstrap, f"{topic_prefix}raw.orders", [order_event(1, "processing", 1), (b"woo-ch:2", newer)])
    with running(processor(env, tmp_path), env, tmp_path / "proc.log") as proc:
        assert proc.wait(120) != 0, proc.output()
        assert "upgrade the readers" in proc.output()
    (offset,) = committed(kafka_bootstrap, f"{topic_prefix}p", f"{topic_prefix}raw.orders", 1)
    assert offset <= 1
    assert not drain(kafka_bootstrap, f"{topic_prefix}dlq")


def test_a_send_that_fails_for_good_stops_the_worker_and_nothing_is_lost(
    env: dict[str, str], topic_prefix: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A record the broker refuses for good (over the topic's max.message.bytes): the worker stops, and
    the commit it makes while shutting down does not pass the event either (it used to: the failure was
    forgotten once reported). Once the limit is raised, the restarted worker emits every order."""
    import secrets

    env = {**env, "ORDERSYNC_PARTITIONS": "1"}
    create_topics(Settings.from_env(env))
    set_topic_config(kafka_bootstrap, f"{topic_prefix}orders", {"max.message.bytes": "6000"})
    items = [
        {"id": n + 1, "name": secrets.token_hex(80), "product_id": 22, "variation_id": 0, "quantity": 1,
         "total": "1.00", "sku": None, "price": 1}
        for n in range(60)
    ]  # fmt: skip
    events = [order_event(n, "processing", 1, **({"line_items": items} if n == 5 else {})) for n in range(1, 11)]
    produce(kafka_bootstrap, f"{topic_prefix}raw.orders", events)
    with running(processor(env, tmp_path), env, tmp_path / "first.log") as proc:
        assert proc.wait(180) != 0, proc.output()
        assert "too large" in proc.output().lower()
    (offset,) = committed(kafka_bootstrap, f"{topic_prefix}p", f"{topic_prefix}raw.orders", 1)
    assert offset <= 4, f"committed past the order whose output was refused (offset 4): {offset}"
    set_topic_config(kafka_bootstrap, f"{topic_prefix}orders", {"max.message.bytes": "1048588"})
    with running(processor(env, tmp_path), env, tmp_path / "second.log") as proc:
        wait_for_orders(kafka_bootstrap, topic_prefix, range(1, 11), proc)


def test_a_restore_from_changelogs_on_a_new_disk_emits_no_second_creation(
    env: dict[str, str], topic_prefix: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """The worker is killed, its data directory is lost (a new disk), and the shops send the same versions
    again: the restored state knows them, so no order gets a second ORDER_CREATED and no contact is made
    again."""
    import shutil

    create_topics(Settings.from_env(env))
    produce(kafka_bootstrap, f"{topic_prefix}raw.orders", [order_event(n, "processing", 1) for n in range(1, 41)])
    args = processor(env, tmp_path)
    with running(args, env, tmp_path / "first.log") as proc:
        consume_until(
            kafka_bootstrap, f"{topic_prefix}orders", lambda ms: len(ms) >= 40, alive=proc.alive, deadline_s=120
        )
        wait_until_committed(kafka_bootstrap, topic_prefix, 40, 2, proc)
        proc.kill()
    shutil.rmtree(tmp_path / "state-p")
    repeats = [order_event(n, "processing", 1) for n in range(1, 41)]
    produce(kafka_bootstrap, f"{topic_prefix}raw.orders", [*repeats, order_event(41, "processing", 1)])
    with running(args, env, tmp_path / "second.log") as proc:
        wait_for_orders(kafka_bootstrap, topic_prefix, range(41, 42), proc)
        wait_until_committed(kafka_bootstrap, topic_prefix, 81, 2, proc)
    created = Counter(
        e["source_order_id"] for e in activities(kafka_bootstrap, topic_prefix) if e["type"] == "ORDER_CREATED"
    )
    assert set(created) == {str(n) for n in range(1, 42)}
    ids = Counter(e["event_id"] for e in activities(kafka_bootstrap, topic_prefix) if e["type"] == "ORDER_CREATED")
    assert len(ids) == 41, "an order got a second, different creation event"
    contacts = {decode(m.value())["contact_id"] for m in drain(kafka_bootstrap, f"{topic_prefix}contacts")}
    assert len(contacts) == 1


def test_a_restore_that_lost_a_position_still_sends_its_contact(
    env: dict[str, str], topic_prefix: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A crash sent the contact's changelog write but lost its position's and the contact itself: the
    position's changelog record is deleted (a tombstone), the contacts topic truncated, the contact
    stage's offset put back (it was not committed) and the disk lost. The restored worker must send the
    contact when the item comes again; nothing else ever would."""
    import shutil

    from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient

    create_topics(Settings.from_env(env))
    produce(kafka_bootstrap, f"{topic_prefix}raw.orders", [order_event(1, "processing", 1)])
    args, group = processor(env, tmp_path), f"{topic_prefix}p"
    by_contact, contacts_topic = f"{topic_prefix}processor.by-contact", f"{topic_prefix}contacts"
    with running(args, env, tmp_path / "first.log") as proc:
        sent = consume_until(kafka_bootstrap, contacts_topic, lambda ms: len(ms) >= 1, alive=proc.alive)
        wait_until_committed(kafka_bootstrap, topic_prefix, 1, 2, proc, "processor.by-contact")
        proc.kill()
    shutil.rmtree(tmp_path / "state-p")

    positions = drain(kafka_bootstrap, f"{group}-join-offsets-changelog")
    assert positions, "the contact stage kept no position"
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for record in positions:
        producer.produce(record.topic(), key=record.key(), value=None, partition=record.partition())
    assert producer.flush(30) == 0
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    ends = [TopicPartition(contacts_topic, m.partition(), m.offset() + 1) for m in sent]
    set_topic_config(kafka_bootstrap, contacts_topic, {"cleanup.policy": "compact,delete"})  # compact refuses it
    for future in admin.delete_records(ends).values():
        future.result(30)
    set_topic_config(kafka_bootstrap, contacts_topic, {"cleanup.policy": "compact"})
    assert drain(kafka_bootstrap, contacts_topic) == []

    def group_empty() -> bool:
        state = admin.describe_consumer_groups([group])[group].result(30).state
        return bool(state in (ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD))

    wait_for(group_empty, 120, "the killed worker to leave its group")
    rewind = ConsumerGroupTopicPartitions(group, [TopicPartition(by_contact, p, 0) for p in range(2)])
    admin.alter_consumer_group_offsets([rewind])[group].result(30)

    with running(args, env, tmp_path / "second.log") as proc:
        again = consume_until(kafka_bootstrap, contacts_topic, lambda ms: len(ms) >= 1, alive=proc.alive)
    assert [decode(m.value())["contact_id"] for m in again] == [decode(sent[0].value())["contact_id"]]


def test_an_order_too_large_for_a_record_is_dead_lettered_and_the_stream_goes_on(
    env: dict[str, str], topics: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """4,000 lines of one product in 60 categories: a raw event of a few hundred kilobytes whose order
    record is megabytes. librdkafka refused it for good and the worker stopped on every restart; now the
    event goes to the dead-letter topic with the size, and the next order is emitted."""
    lines = [{"id": i + 1, "name": "Sock", "product_id": 22, "variation_id": 0, "quantity": 1, "total": "1.00",
              "sku": None, "price": 1} for i in range(4000)]  # fmt: skip
    giant = woo_event(woo_doc(30, line_items=lines, total="4004.95"))
    giant["context"]["product_categories"] = [
        {
            "product_id": "22",
            "categories": [{"id": str(c), "name": f"Category number {c}", "slug": f"c{c}"} for c in range(60)],
        }
    ]
    value = encode("raw_order_event", giant)
    assert len(value) < 900_000
    produce(kafka_bootstrap, f"{topics}raw.orders", [(b"woo-ch:30", value), order_event(31, "completed", 5)])
    with running(processor(env, tmp_path), env, tmp_path / "proc.log") as proc:
        consume_until(kafka_bootstrap, f"{topics}orders", lambda ms: len(ms) >= 1, alive=proc.alive, deadline_s=120)
        dead = consume_until(kafka_bootstrap, f"{topics}dlq", lambda ms: len(ms) >= 1, alive=proc.alive, deadline_s=60)
    reason = dict(dead[0].headers() or [])["dlq.reason"].decode()
    assert dead[0].key() == b"woo-ch:30" and "bytes, over a record's" in reason
    assert [decode(m.value())["source_order_id"] for m in drain(kafka_bootstrap, f"{topics}orders")] == ["31"]
