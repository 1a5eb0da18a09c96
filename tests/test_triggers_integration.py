"""Automation triggers from a real processor worker on the real broker: none for history, exactly one of
each for a live order across a SIGKILL, and durable abandoned-checkout timers across a lost disk."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ordersync.runtime.settings import Settings
from ordersync.schemas import decode, encode
from ordersync.topics_admin import create_topics
from tests.kafka_helpers import consume_until, drain, produce
from tests.processes import Proc, ordersync, running, wait_for
from tests.raw_events import woo_doc, woo_event

pytestmark = pytest.mark.broker


@pytest.fixture
def env(subprocess_env: dict[str, str], topic_prefix: str) -> dict[str, str]:
    return {**subprocess_env, "ORDERSYNC_TOPIC_PREFIX": topic_prefix, "ORDERSYNC_PARTITIONS": "2"}


def gmt(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def raw(order_id: int, email: str, status: str, at: dt.datetime, obtained_by: str, created: dt.datetime | None = None, fetched: dt.datetime | None = None, list_id: str = "7") -> tuple[bytes, bytes]:  # fmt: skip
    billing = {"first_name": "A", "last_name": "B", "email": email, "phone": ""}
    doc = woo_doc(order_id, status=status, billing=billing, customer_id=0, date_modified_gmt=gmt(at),
                  date_created_gmt=gmt(created or at))  # fmt: skip
    event = woo_event(
        doc,
        list_id=list_id,
        obtained_by=obtained_by,
        fetched_at=fetched or at + dt.timedelta(seconds=1),
        source_modified_at=at,
    )
    return f"woo-ch:{order_id}".encode(), encode("raw_order_event", event)


def process_args(env: dict[str, str], data_dir: Path, config: Path | None = None) -> list[str]:
    args = ["process", "--app-id", f"{env['ORDERSYNC_TOPIC_PREFIX']}p", "--data-dir", str(data_dir), "--loglevel", "warn"]  # fmt: skip
    return [*args, "--config", str(config)] if config else args


def triggers(bootstrap: str, prefix: str) -> list[dict[str, Any]]:
    return [decode(m.value(), "trigger") for m in drain(bootstrap, f"{prefix}triggers")]


def test_history_fires_nothing_and_a_live_order_fires_one_thank_you_and_one_first_order_across_a_sigkill(
    env: dict[str, str], topic_prefix: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    create_topics(Settings.from_env(env))
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    past = now - dt.timedelta(days=400)
    history = []
    for i in range(300):  # a backfill: completed orders of 100 contacts
        history.append(
            raw(10_000 + i, f"old{i % 100}@example.com", "completed", past + dt.timedelta(hours=i), "BACKFILL")
        )
    # A late poll of a week-old change is history too (older than the 24 h horizon).
    history.append(raw(19_999, "stale@example.com", "completed", now - dt.timedelta(days=7), "POLL", fetched=now))
    n = 400
    live = []
    for i in range(n):
        live.append(raw(20_000 + i, f"new{i}@example.com", "pending", now, "WEBHOOK"))
        live.append(raw(20_000 + i, f"new{i}@example.com", "completed", now + dt.timedelta(seconds=5), "WEBHOOK"))
    # A list without automations: its live orders fire nothing.
    live += [raw(40_000 + i, f"other{i}@example.com", "completed", now, "WEBHOOK", list_id="8") for i in range(5)]
    # An old customer's live order: thanked, but not a first order.
    live.append(raw(30_000, "old1@example.com", "completed", now, "WEBHOOK"))
    produce(kafka_bootstrap, f"{topic_prefix}raw.orders", history + live)

    config = tmp_path / "stores.toml"
    config.write_text('[automations."7"]\nmarketing_needs_consent = false\n')  # the defaults, consent aside
    data_dir = tmp_path / "state"
    proc = Proc(process_args(env, data_dir, config), env, tmp_path / "p1.log")
    try:
        wait_for(
            lambda: not proc.alive() or len(drain(kafka_bootstrap, f"{topic_prefix}triggers")) > 50,
            180,
            "some triggers",
        )
        assert proc.alive(), proc.output()[-3000:]
        proc.kill()  # mid-stream: some outputs sent, offsets not committed
    finally:
        proc.close()

    expected = 2 * n + 1
    ids: set[str] = set()

    def all_fired(ms: list[Any]) -> bool:
        ids.update(decode(m.value(), "trigger")["trigger_id"] for m in ms)
        return len(ids) >= expected

    with running(process_args(env, data_dir, config), env, tmp_path / "p2.log") as proc:
        consume_until(kafka_bootstrap, f"{topic_prefix}triggers", all_fired, alive=proc.alive, deadline_s=240)
        # Every order has been through the contact stage once its contact is out: nothing more to come.
        consume_until(kafka_bootstrap, f"{topic_prefix}contacts", lambda ms: len({m.key() for m in ms}) >= n + 106,
                      alive=proc.alive, deadline_s=120)  # fmt: skip
    fired = triggers(kafka_bootstrap, topic_prefix)
    by_id: dict[str, list[dict[str, Any]]] = {}
    for t in fired:
        by_id.setdefault(t["trigger_id"], []).append(t)
    assert all(copy == copies[0] for copies in by_id.values() for copy in copies)  # redeliveries identical
    distinct = [copies[0] for copies in by_id.values()]
    kinds = Counter((t["kind"], t["contact_email"].startswith("new")) for t in distinct)
    assert kinds == {("ORDER_THANK_YOU", True): n, ("FIRST_ORDER", True): n, ("ORDER_THANK_YOU", False): 1}
    assert not [t for t in distinct if t["order_key"] and int(t["order_key"].split(":")[1]) < 20_000]
    thanked = next(t for t in distinct if t["order_key"] == "woo-ch:30000")
    assert thanked["order_count"] == 4 and thanked["items"] and thanked["currency"] == "EUR"


def test_checkout_abandoned_fires_after_the_delay_unless_completed_and_survives_a_lost_disk(
    env: dict[str, str], topic_prefix: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = {**env, "ORDERSYNC_PARTITIONS": "1"}  # one timers partition: checked in due order
    create_topics(Settings.from_env(env))
    config = tmp_path / "stores.toml"
    config.write_text(
        '[automations."7"]\nabandoned_after_h = 0.008\nwin_back_after_days = 0\nmarketing_needs_consent = false\n'
    )  # 28.8 s
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    produce(
        kafka_bootstrap,
        f"{topic_prefix}raw.orders",
        [
            raw(1, "completes@example.com", "pending", now - dt.timedelta(seconds=2), "WEBHOOK"),
            raw(1, "completes@example.com", "completed", now, "WEBHOOK", created=now - dt.timedelta(seconds=2)),
            raw(2, "waits@example.com", "pending", now, "WEBHOOK"),
        ],
    )
    data_dir = tmp_path / "state"
    with running(process_args(env, data_dir, config), env, tmp_path / "p1.log") as proc:
        consume_until(
            kafka_bootstrap,
            f"{topic_prefix}triggers",
            lambda ms: sum(decode(m.value())["kind"] == "FIRST_ORDER" for m in ms) >= 2,
            alive=proc.alive,
            deadline_s=120,
        )
        assert proc.stop() == 0
    # The timers are in the changelog only: a new disk restores them.
    shutil.rmtree(data_dir)
    with running(process_args(env, data_dir, config), env, tmp_path / "p2.log") as proc:
        consume_until(
            kafka_bootstrap,
            f"{topic_prefix}triggers",
            lambda ms: any(decode(m.value())["kind"] == "CHECKOUT_ABANDONED" for m in ms),
            alive=proc.alive,
            deadline_s=180,
        )
    abandoned = [t for t in triggers(kafka_bootstrap, topic_prefix) if t["kind"] == "CHECKOUT_ABANDONED"]
    # Order 1's timer fell due first (same partition, due order) and found the order completed.
    assert {t["order_key"] for t in abandoned} == {"woo-ch:2"}
    assert abandoned[0]["fired_at"] == now + dt.timedelta(seconds=28.8)
    assert dt.datetime.now(dt.UTC) >= abandoned[0]["fired_at"]


def test_a_checkout_completed_in_the_backlog_is_not_called_abandoned_after_a_restart(
    env: dict[str, str], topic_prefix: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """After downtime: two checkouts were opened three hours ago (the abandoned check falls due after one
    hour), one was completed half an hour later, and all of it waits in raw.orders behind 3,000 other
    orders. Timers used to fire on the wall clock ahead of unread input: the completed checkout was called
    abandoned before its completion was read. Now they fire on stream time (the event times the contact
    stage has seen) until the worker has caught up, and on the wall clock only then."""
    create_topics(Settings.from_env(env))
    config = tmp_path / "stores.toml"
    config.write_text(
        '[automations."7"]\nabandoned_after_h = 1\nwin_back_after_days = 0\nmarketing_needs_consent = false\n'
    )
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    opened, paid = now - dt.timedelta(hours=3), now - dt.timedelta(hours=2, minutes=30)
    backlog = [
        raw(1, "paid@example.com", "pending", opened, "POLL"),
        raw(2, "left@example.com", "pending", opened, "POLL"),
        # Another list's orders (no automations) between the checkouts and the completion.
        *(raw(100 + i, f"o{i}@example.com", "pending", opened, "POLL", list_id="8") for i in range(3000)),
        raw(1, "paid@example.com", "completed", paid, "POLL", created=opened),
    ]
    produce(kafka_bootstrap, f"{topic_prefix}raw.orders", backlog)
    with running(process_args(env, tmp_path / "state", config), env, tmp_path / "p.log") as proc:
        consume_until(
            kafka_bootstrap,
            f"{topic_prefix}triggers",
            lambda ms: any(decode(m.value())["kind"] == "CHECKOUT_ABANDONED" for m in ms),
            alive=proc.alive,
            deadline_s=240,
        )
    # Both timers fell due in the pass that fired order 2's (all caught up, wall clock): order 1's found
    # its order completed.
    abandoned = [t for t in triggers(kafka_bootstrap, topic_prefix) if t["kind"] == "CHECKOUT_ABANDONED"]
    assert [t["order_key"] for t in abandoned] == ["woo-ch:2"]


def test_marketing_triggers_go_only_to_contacts_who_consented_and_every_buyer_is_thanked(
    env: dict[str, str], topic_prefix: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Marketing triggers fired for contacts who never agreed to marketing. Now a FIRST_ORDER (marketing)
    reaches ``triggers`` only for the contact who consented; the others' go to ``triggers.suppressed``
    (never delivered), and the thank-you (transactional) goes out for every buyer."""
    create_topics(Settings.from_env(env))
    csv_file = tmp_path / "contacts.csv"
    csv_file.write_text("email,consent\nyes@example.com,yes\nno@example.com,no\n")
    assert ordersync("contacts", "import", str(csv_file), "--list", "7", env=env).returncode == 0
    config = tmp_path / "stores.toml"
    config.write_text('[automations."7"]\n')  # the defaults: marketing needs consent
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with running(process_args(env, tmp_path / "state", config), env, tmp_path / "p.log") as proc:
        consume_until(kafka_bootstrap, f"{topic_prefix}contacts", lambda ms: len(ms) >= 2, alive=proc.alive)
        emails = ("yes@example.com", "no@example.com", "never@example.com")  # never: no statement at all
        produce(kafka_bootstrap, f"{topic_prefix}raw.orders",
                [raw(700 + n, email, "completed", now, "WEBHOOK") for n, email in enumerate(emails)])  # fmt: skip
        sent = consume_until(kafka_bootstrap, f"{topic_prefix}triggers", lambda ms: len(ms) >= 4, alive=proc.alive)
        withheld = consume_until(
            kafka_bootstrap, f"{topic_prefix}triggers.suppressed", lambda ms: len(ms) >= 2, alive=proc.alive
        )
    out = sorted((t["kind"], t["contact_email"], t["purpose"], t["marketing_consent"])
                 for t in (decode(m.value(), "trigger") for m in sent))  # fmt: skip
    assert out == [
        ("FIRST_ORDER", "yes@example.com", "MARKETING", True),
        ("ORDER_THANK_YOU", "never@example.com", "TRANSACTIONAL", None),
        ("ORDER_THANK_YOU", "no@example.com", "TRANSACTIONAL", False),
        ("ORDER_THANK_YOU", "yes@example.com", "TRANSACTIONAL", True),
    ]
    held = sorted((t["kind"], t["contact_email"], t["marketing_consent"])
                  for t in (decode(m.value(), "trigger") for m in withheld))  # fmt: skip
    assert held == [("FIRST_ORDER", "never@example.com", None), ("FIRST_ORDER", "no@example.com", False)]


def ps_customer(customer_id: int, email: str, newsletter: int, since: dt.datetime, changed: dt.datetime) -> tuple[bytes, bytes]:  # fmt: skip
    document = {"id": customer_id, "email": email, "firstname": "A", "newsletter": str(newsletter), "optin": "0",
                "newsletter_date_add": since.strftime("%Y-%m-%d %H:%M:%S") if newsletter else "0000-00-00 00:00:00",
                "date_upd": changed.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
    event = {"event_id": f"c{customer_id}-{changed.timestamp()}", "store_id": "ps", "platform": "PRESTASHOP",
             "list_id": "7", "obtained_by": "POLL", "operation": "UPSERT", "source_customer_id": str(customer_id),
             "source_modified_at": changed, "fetched_at": changed, "store_timezone": "UTC",
             "document": json.dumps(document)}  # fmt: skip
    return f"ps:{customer_id}".encode(), encode("raw_customer_event", event)


def unsubscribe(email: str, at: dt.datetime) -> tuple[bytes, bytes]:
    from ordersync.schemas.identity import contact_id

    event = {"event_id": f"unsub-{email}", "list_id": "7", "contact_id": contact_id("7", email), "email": email,
             "campaign_id": "spring", "campaign_name": None, "channel": "EMAIL", "type": "UNSUBSCRIBE",
             "occurred_at": at, "holdout": False, "machine": False, "url": None, "source": "WEBHOOK",
             "received_at": at}  # fmt: skip
    return f"7:{email}".encode(), encode("campaign_event", event)


def test_a_withdrawal_stops_marketing_triggers_and_an_older_statement_read_later_does_not_undo_it(
    env: dict[str, str], topic_prefix: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Consent followed whichever record had the higher version, and unsubscribes were not read: a
    customer record read again after an unsubscribe (subscribed since last year, changed since for an
    address) gave consent back, and marketing triggers went out. Now the latest statement by its own time
    wins. bob withdraws in the store; ann unsubscribes on the campaign platform, then her older
    subscription is read again: both get the thank-you, and their FIRST_ORDER is withheld."""
    create_topics(Settings.from_env(env))
    config = tmp_path / "stores.toml"
    config.write_text('[automations."7"]\n')
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    t0, t1, t2 = now - dt.timedelta(days=300), now - dt.timedelta(days=3), now - dt.timedelta(days=1)
    produce(kafka_bootstrap, f"{topic_prefix}raw.customers", [
        ps_customer(1, "ann@example.com", 1, since=t0, changed=t0),
        ps_customer(2, "bob@example.com", 1, since=t0, changed=t0),
        ps_customer(2, "bob@example.com", 0, since=t0, changed=t1),  # bob unticks the newsletter box
    ])  # fmt: skip
    produce(kafka_bootstrap, f"{topic_prefix}campaign.events", [unsubscribe("ann@example.com", t1)])
    with running(process_args(env, tmp_path / "state", config), env, tmp_path / "p.log") as proc:

        def withdrawn(ms: list[Any]) -> bool:
            latest = {c["email"]: c for c in (decode(m.value(), "contact") for m in ms)}
            return all(
                e in latest and latest[e]["marketing_consent"] is False for e in ("ann@example.com", "bob@example.com")
            )

        consume_until(kafka_bootstrap, f"{topic_prefix}contacts", withdrawn, alive=proc.alive)
        # ann's record again: still subscribed since t0 as far as the shop knows, changed at t2.
        produce(
            kafka_bootstrap,
            f"{topic_prefix}raw.customers",
            [ps_customer(1, "ann@example.com", 1, since=t0, changed=t2)],
        )
        produce(kafka_bootstrap, f"{topic_prefix}raw.orders",
                [raw(800 + n, email, "completed", now, "WEBHOOK") for n, email in enumerate(("ann@example.com", "bob@example.com"))])  # fmt: skip
        consume_until(kafka_bootstrap, f"{topic_prefix}triggers", lambda ms: len(ms) >= 2, alive=proc.alive)
        withheld = consume_until(
            kafka_bootstrap, f"{topic_prefix}triggers.suppressed", lambda ms: len(ms) >= 2, alive=proc.alive
        )
        contacts = {
            c["email"]: c
            for c in (decode(m.value(), "contact") for m in drain(kafka_bootstrap, f"{topic_prefix}contacts"))
        }
    out = sorted(
        (t["kind"], t["contact_email"], t["marketing_consent"]) for t in triggers(kafka_bootstrap, topic_prefix)
    )
    assert out == [("ORDER_THANK_YOU", "ann@example.com", False), ("ORDER_THANK_YOU", "bob@example.com", False)]
    held = sorted((t["kind"], t["contact_email"]) for t in (decode(m.value(), "trigger") for m in withheld))
    assert held == [("FIRST_ORDER", "ann@example.com"), ("FIRST_ORDER", "bob@example.com")]
    ann = contacts["ann@example.com"]
    assert ann["marketing_consent"] is False
    assert [(s["consent"], s["at"], s["source"]) for s in ann["consent_history"]] == [
        (True, t0, "store:ps"), (False, t1, "unsubscribe:spring")
    ]  # fmt: skip
    assert [s["source"] for s in contacts["bob@example.com"]["consent_history"]] == ["store:ps", "store:ps"]
