"""Diffing orders into timeline events, and joining them to contacts (pure, no broker)."""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from ordersync.processors import envelope
from ordersync.processors.activity import decide
from ordersync.processors.contacts import customer_alias, merge, new_contact
from ordersync.processors.join import join_item, on_alias, on_contact, on_order, routing_key
from ordersync.processors.model import ContactHint
from ordersync.processors.normalise import normalise_order
from ordersync.schemas.identity import contact_id, normalise_email
from tests.raw_events import woo_doc, woo_event

UTC = dt.UTC


def order(status: str = "processing", modified: str = "2024-03-14T09:05:00", **doc: Any) -> dict[str, Any]:
    return normalise_order(woo_event(woo_doc(status=status, date_modified_gmt=modified, **doc))).order


def test_first_sight_is_created() -> None:
    d = decide(None, order())
    assert d.apply and [a["type"] for a in d.activities] == ["ORDER_CREATED"]
    assert d.activities[0]["to_status"] == "PENDING"


def test_duplicate_and_older_versions_emit_nothing() -> None:
    first = decide(None, order())
    assert first.state is not None
    assert decide(first.state, order()).apply is False
    newer = decide(first.state, order("completed", "2024-03-14T10:00:00"))
    assert newer.state is not None
    assert decide(newer.state, order("processing", "2024-03-14T09:05:00")).apply is False


def test_status_change_names_from_and_to() -> None:
    first = decide(None, order())
    d = decide(first.state, order("completed", "2024-03-14T10:00:00"))
    assert [a["type"] for a in d.activities] == ["ORDER_STATUS_CHANGED"]
    a = d.activities[0]
    assert (a["from_status"], a["to_status"], a["from_store_status"], a["to_store_status"]) == (
        "PENDING",
        "COMPLETED",
        "processing",
        "completed",
    )


def test_content_change_is_an_update_naming_the_fields() -> None:
    first = decide(None, order())
    changed = order(modified="2024-03-14T10:00:00", total="40.00", refunds=[{"id": 1, "reason": "x", "total": "-4.05"}])
    d = decide(first.state, changed)
    assert [a["type"] for a in d.activities] == ["ORDER_UPDATED"]
    assert set(d.activities[0]["changed_fields"]) >= {"total", "refunded_total", "refunds"}


def test_delete_then_restore() -> None:
    first = decide(None, order())
    deleted = {**order(), "deleted": True, "version": first.state["version"] + 1}  # type: ignore[index]
    d = decide(first.state, deleted)
    assert [a["type"] for a in d.activities] == ["ORDER_DELETED"]
    assert decide(d.state, {**deleted}).apply is False  # the same delete again
    restored = decide(d.state, order(modified="2024-03-15T00:00:00"))
    assert (
        restored.activities[-1]["type"] == "ORDER_UPDATED"
        and restored.activities[-1]["changed_fields"][0] == "restored"
    )


def test_event_ids_are_deterministic() -> None:
    a = decide(None, order()).activities[0]["event_id"]
    b = decide(None, copy.deepcopy(order())).activities[0]["event_id"]
    assert a == b
    assert a != decide(None, order(modified="2024-03-14T09:06:00")).activities[0]["event_id"]


def test_email_normalisation_and_contact_ids() -> None:
    assert normalise_email("  Zoë@Example.COM ") == "zoë@example.com"
    assert normalise_email("not an email") is None and normalise_email("") is None
    assert contact_id("7", "a@b.co") == contact_id("7", "a@b.co") != contact_id("8", "a@b.co")


def hint(email: str | None = "zoe.muller@example.com", customer: str | None = "12") -> ContactHint:
    return ContactHint(email, "Zoë", "Müller", None, customer)


def test_order_before_customer_creates_one_contact_and_customer_data_merges_into_it() -> None:
    contacts: dict[str, Any] = {}
    pending: dict[str, Any] = {}
    o = order()
    key = routing_key(o, hint())
    out = on_order(contacts, pending, key, o, [], hint())
    assert (
        len(out.contacts) == 1
        and out.orders[0]["matched"]
        and out.orders[0]["contact_id"] == out.contacts[0]["contact_id"]
    )
    assert out.contacts[0]["origin"] == "ORDER_BILLING"
    later = new_contact(
        "7",
        o["contact_email"],
        ContactHint(o["contact_email"], "Zoe", "Muller", "+41", "12"),
        "STORE_CUSTOMER",
        "woo-ch",
        dt.datetime(2025, 1, 1, tzinfo=UTC),
    )
    merged = on_contact(contacts, {}, key, later)
    assert len(merged.contacts) == 1
    c = merged.contacts[0]
    assert c["contact_id"] == out.contacts[0]["contact_id"] and c["origin"] == "ORDER_BILLING" and c["phone"] == "+41"
    assert len(contacts) == 1
    assert on_contact(contacts, {}, key, later).contacts == []  # the same again changes nothing


def test_a_contact_restored_without_its_position_is_emitted_again() -> None:
    """A crash sent the contact's changelog write but neither its position's nor the contact itself; a
    restore on a new disk finds the contact and no position. When the item comes again (its offset was not
    committed), the contact must be emitted: nothing else would ever send it."""
    o = order()
    item = {"kind": "order", "order": o, "activities": decide(None, o).activities, "hint": dict(vars(hint()))}
    key = routing_key(o, hint())
    contacts: dict[str, Any] = {}
    first, kept = join_item(contacts, {}, key, item, 80, None)
    assert len(first.contacts) == 1 and kept == 80
    restored = dict(contacts)  # the contact's changelog write survived; the position's did not
    again, kept = join_item(restored, {}, key, item, 80, None)
    assert again.contacts == first.contacts and again.orders == first.orders
    assert kept == 80  # kept now, so the contact is sent once, not on every later item
    later, _ = join_item(restored, {}, key, item, 81, 80)
    assert later.contacts == [] and later.orders == first.orders
    # The same for a hint (an order stage that found the order's contact needed): it changed nothing, but
    # a contact without a position is sent again.
    hint_item = {"kind": "hint", "list_id": "7", "email": o["contact_email"], "store_id": "woo-ch",
                 "at": o["created_at"], "hint": dict(vars(hint()))}  # fmt: skip
    sent, kept = join_item(dict(contacts), {}, key, hint_item, 90, None)
    assert sent.contacts == first.contacts and kept == 90


def test_order_without_email_waits_for_its_customer_then_matches() -> None:
    contacts: dict[str, Any] = {}
    pending: dict[str, Any] = {}
    o = normalise_order(woo_event(woo_doc(billing={"email": ""}, customer_id=55))).order
    h = hint(email=None, customer="55")
    key = routing_key(o, h)
    assert key == customer_alias("7", "woo-ch", "55")
    activity = decide(None, o).activities
    first = on_order(contacts, pending, key, o, activity, h)
    assert first.orders[0]["matched"] is False and first.activities[0]["contact_id"] is None
    assert key in pending
    contact = new_contact(
        "7",
        "late@example.com",
        ContactHint("late@example.com", None, None, None, "55"),
        "STORE_CUSTOMER",
        "woo-ch",
        dt.datetime(2025, 1, 1, tzinfo=UTC),
    )
    matched = on_alias(contacts, pending, key, contact, offset=40)
    assert matched.orders[0]["matched"] and matched.orders[0]["contact_id"] == contact["contact_id"]
    assert matched.activities[0]["event_id"] == activity[0]["event_id"]  # same event, now with its contact
    # The worker dies before those outputs leave; the alias event (offset 40) comes again.
    again = on_alias(contacts, pending, key, contact, offset=40, redelivery=True)
    assert again.orders == matched.orders and again.activities == matched.activities
    # Any other sight of the customer matches nothing more, and later orders attach directly.
    assert on_alias(contacts, pending, key, contact, offset=41).orders == []
    later = on_order(contacts, pending, key, o, [], h)
    assert later.orders[0]["matched"] and later.orders[0]["contact_id"] == contact["contact_id"]


def test_guest_without_email_or_customer_is_kept_unmatched() -> None:
    o = normalise_order(woo_event(woo_doc(billing={"email": ""}, customer_id=0))).order
    h = hint(email=None, customer=None)
    out = on_order({}, {}, routing_key(o, h), o, [], h)
    assert out.orders[0]["matched"] is False and out.contacts == []


def test_merge_keeps_identity_and_moves_version_forward() -> None:
    base = new_contact(
        "7", "a@b.co", ContactHint("a@b.co", "A", None, None, None), "IMPORT", None, dt.datetime(2024, 1, 1, tzinfo=UTC)
    )
    update = {**base, "last_name": "B", "first_name": None, "version": base["version"] - 10, "origin": "STORE_CUSTOMER"}
    merged = merge(base, update)
    assert merged is not None
    assert merged["first_name"] == "A" and merged["last_name"] == "B" and merged["origin"] == "IMPORT"
    assert merged["version"] > base["version"]


def test_envelope_keeps_decimals_and_times_exact() -> None:
    value = {"a": Decimal("1.100000"), "t": dt.datetime(2024, 1, 1, 12, tzinfo=UTC), "n": [None, "x"]}
    assert envelope.loads(envelope.dumps(value)) == value


def test_a_redelivered_event_reproduces_its_outputs_even_if_the_state_ran_ahead() -> None:
    from ordersync.processors.activity import is_redelivery, state_before, to_store

    first = order()
    d1 = decide(state_before(None, 10), first)
    entry = to_store(d1, None, 10)
    second = order("completed", "2024-03-14T10:00:00")
    d2 = decide(state_before(entry, 11), second)
    entry2 = to_store(d2, state_before(entry, 11), 11)
    # The worker dies after storing entry2 but before publishing d2's outputs; offset 11 comes again.
    assert is_redelivery(entry2, 11)
    again = decide(state_before(entry2, 11), second)
    assert again.apply and [a["event_id"] for a in again.activities] == [a["event_id"] for a in d2.activities]
    # A genuine duplicate (a later offset, same version) still emits nothing.
    assert decide(state_before(entry2, 12), second).apply is False


def test_two_uncommitted_events_of_one_order_both_replay_after_a_crash() -> None:
    from ordersync.processors.activity import is_redelivery, state_before, to_store

    created, completed = order(), order("completed", "2024-03-14T10:00:00")
    d1 = decide(state_before(None, 10), created)
    entry = to_store(d1, None, 10)
    d2 = decide(state_before(entry, 11), completed)
    entry = to_store(d2, state_before(entry, 11), 11, entry)
    # Neither output was published before the crash: offsets 10 and 11 both come again, in order.
    assert is_redelivery(entry, 10) and is_redelivery(entry, 11)
    again1 = decide(state_before(entry, 10), created)
    again2 = decide(state_before(entry, 11), completed)
    assert [a["type"] for a in again1.activities] == ["ORDER_CREATED"]
    assert [a["event_id"] for a in again1.activities] == [a["event_id"] for a in d1.activities]
    assert [a["event_id"] for a in again2.activities] == [a["event_id"] for a in d2.activities]


def test_states_stored_with_a_single_prior_are_still_understood() -> None:
    from ordersync.processors.activity import is_redelivery, state_before

    first = order()
    d1 = decide(None, first)
    assert d1.state is not None
    legacy = {**d1.state, "offset": 10, "prior": None}
    assert is_redelivery(legacy, 10) and state_before(legacy, 10) is None
    assert state_before(legacy, 11) == d1.state


def test_every_unconfirmed_change_of_an_order_replays_however_many_there_are() -> None:
    """Six changes of one order inside one uncommitted window (the agents run on while a commit waits for
    Kafka): after a crash all six come again and each reproduces its outputs; with four steps of
    history, the first lost its ORDER_CREATED. Steps whose outputs are confirmed are dropped."""
    import json

    from ordersync.processors.order_stage import step_order

    statuses = ["pending", "processing", "on-hold", "processing", "completed", "refunded"]
    raws = [woo_event(woo_doc(status=s, date_modified_gmt=f"2024-03-14T10:0{i}:00")) for i, s in enumerate(statuses)]
    stored: bytes | None = None
    first: list[list[str]] = []
    for position, raw in enumerate(raws, start=100):
        step = step_order(raw, stored, position, None)  # type: ignore[arg-type]
        first.append([a["event_id"] for a in step.emit.activities])
        stored = step.state or stored
    again = [[a["event_id"] for a in step_order(raw, stored, p, None).emit.activities]  # type: ignore[arg-type]
             for p, raw in enumerate(raws, start=100)]  # fmt: skip
    assert again == first
    assert [a["type"] for a in step_order(raws[0], stored, 100, None).emit.activities] == ["ORDER_CREATED"]  # type: ignore[arg-type]
    # Once the first five are confirmed, only the last HISTORY steps stay (bounded, not grown forever).
    late = woo_event(woo_doc(status="completed", date_modified_gmt="2024-03-14T11:00:00"))
    step = step_order(late, stored, 200, None, confirmed_below=106)  # type: ignore[arg-type]
    assert step.state is not None
    assert [position for position, _ in json.loads(step.state)["history"]] == [103, 104, 105, 200]


def test_a_redelivered_event_writes_its_state_again() -> None:
    """The crash that makes an event come again may have lost the changelog send of the state it wrote:
    the redelivery sends that state again (it used to store nothing), so a restore from the changelog on
    a new disk finds it and a repeated version is not taken for a new order."""
    from ordersync.processors.order_stage import step_order

    raw = woo_event(woo_doc(status="processing"))
    first = step_order(raw, None, 100, None)  # type: ignore[arg-type]
    assert first.state is not None
    again = step_order(raw, first.state, 100, None)  # type: ignore[arg-type]
    assert [a["type"] for a in again.emit.activities] == ["ORDER_CREATED"]
    assert again.state == first.state
    assert step_order(raw, first.state, 101, None).state is None  # a later duplicate changes nothing  # type: ignore[arg-type]


def test_a_late_delete_loses_to_the_restore_that_followed_it() -> None:
    """A trash at 10:00, restored at 10:05, and the trash's event arrives last: the delete carries the
    store's time, so it is older than the restore and changes nothing (it used to be versioned by our
    clock and deleted the restored order)."""
    from ordersync.processors.order_stage import step_order

    restored = woo_event(woo_doc(status="processing", date_modified_gmt="2024-03-14T10:05:00"))
    first = step_order(restored, None, 100, None)  # type: ignore[arg-type]
    late = woo_event(
        woo_doc(status="trash", date_modified_gmt="2024-03-14T10:00:00"),
        operation="DELETE",
        source_modified_at=dt.datetime(2024, 3, 14, 10, 0, tzinfo=UTC),
        fetched_at=dt.datetime(2024, 3, 14, 10, 30, tzinfo=UTC),
    )
    assert step_order(late, first.state, 101, None).emit.orders == []  # type: ignore[arg-type]
    timely = {**late, "source_modified_at": dt.datetime(2024, 3, 14, 10, 10, tzinfo=UTC)}
    deleted = step_order(timely, first.state, 102, None).emit.orders  # type: ignore[arg-type]
    assert [o["deleted"] for o in deleted] == [True]
    assert deleted[0]["version"] == int(dt.datetime(2024, 3, 14, 10, 10, tzinfo=UTC).timestamp() * 1_000_000)


def test_orders_waiting_for_one_customer_stay_below_the_record_limit() -> None:
    """Hundreds of e-mail-less orders of one store customer, none of them matched yet: the waiting list
    is one table value (and one changelog record), so it is kept below MAX_PENDING_BYTES, the oldest let
    go (they stay unmatched, as emitted). Unbounded, it grew past Kafka's record limit: a crash loop."""
    from ordersync.processors.join import MAX_PENDING_BYTES

    contacts: dict[str, Any] = {}
    pending: dict[str, Any] = {}
    h = hint(email=None, customer="55")
    for n in range(1, 401):
        o = normalise_order(woo_event(woo_doc(n, billing={"email": ""}, customer_id=55))).order
        key = routing_key(o, h)
        on_order(contacts, pending, key, o, decide(None, o).activities, h)
    assert len(pending[key]) <= MAX_PENDING_BYTES
    contact = new_contact("7", "late@example.com", ContactHint("late@example.com", None, None, None, "55"),
                          "STORE_CUSTOMER", "woo-ch", dt.datetime(2025, 1, 1, tzinfo=UTC))  # fmt: skip
    matched = [o["source_order_id"] for o in on_alias(contacts, pending, key, contact, offset=1).orders]
    assert matched[-1] == "400" and 50 < len(matched) < 400  # the newest, in order
    assert matched == [str(n) for n in range(401 - len(matched), 401)]


def test_the_delete_of_an_order_waiting_for_its_customer_takes_the_same_path() -> None:
    """An order without e-mail but with a store customer goes through the contact stage; its delete used
    to leave directly and could overtake it (and a later match re-emitted the order live). Now the delete
    follows it and takes it out of the waiting list."""
    from ordersync.processors.order_stage import step_order

    live = woo_event(woo_doc(77, billing={"email": ""}, customer_id=55))
    first = step_order(live, None, 100, None)  # type: ignore[arg-type]
    assert first.emit.orders == [] and first.forward is not None
    route, item = first.forward
    assert ":customer:" in route
    gone = woo_event(woo_doc(77), operation="DELETE", source_modified_at=dt.datetime(2025, 1, 1, tzinfo=UTC))
    delete = step_order(gone, first.state, 101, None)  # type: ignore[arg-type]
    assert delete.emit.orders == [] and delete.forward is not None
    assert delete.forward[0] == route and delete.forward[1]["order"]["deleted"]
    contacts: dict[str, Any] = {}
    pending: dict[str, Any] = {}
    h = ContactHint(**item["hint"])
    on_order(contacts, pending, route, item["order"], item["activities"], h)
    deleted_item = delete.forward[1]
    out = on_order(contacts, pending, route, deleted_item["order"], deleted_item["activities"], h)
    assert [o["deleted"] for o in out.orders] == [True]
    contact = new_contact("7", "late@example.com", ContactHint("late@example.com", None, None, None, "55"),
                          "STORE_CUSTOMER", "woo-ch", dt.datetime(2025, 2, 1, tzinfo=UTC))  # fmt: skip
    assert on_alias(contacts, pending, route, contact, offset=5).orders == []  # not brought back live


def test_two_changes_in_one_second_are_ordered_by_when_the_store_was_read() -> None:
    """Stores give whole seconds. A webhook for the later change (read at :05) is handled before a poll
    that read the earlier one at :02: the poll's copy is an earlier look at the same second and loses
    (it used to win, being handled last). In the usual order both apply."""
    from ordersync.processors.order_stage import step_order

    def at(status: str, second: int) -> Any:
        doc = woo_doc(status=status, date_modified_gmt="2024-03-14T10:00:00")
        return woo_event(doc, fetched_at=dt.datetime(2024, 3, 14, 10, 0, second, tzinfo=UTC))

    earlier, later = at("processing", 2), at("completed", 5)
    webhook_first = step_order(later, None, 1, None)  # type: ignore[arg-type]
    assert step_order(earlier, webhook_first.state, 2, None).emit.orders == []  # type: ignore[arg-type]
    poll_first = step_order(earlier, None, 1, None)  # type: ignore[arg-type]
    then = step_order(later, poll_first.state, 2, None)  # type: ignore[arg-type]
    assert [o["status"] for o in then.emit.orders] == ["COMPLETED"]


def test_only_the_events_own_errors_are_dead_lettered_a_broken_state_stops_the_worker() -> None:
    """The order stage caught KeyError/TypeError/ValueError/AttributeError around everything, state
    decoding included: a state entry of an unexpected shape sent every later event of that order to the
    dead-letter topic, silently freezing it. Now a document that does not fit is the event's fault (a
    NormaliseError, dead-lettered), and anything else (here the stored state) is not: it stops the worker
    uncommitted (ordersync.processors.agents stop_without_commit)."""
    from ordersync.processors.agents import BAD_EVENT_ERRORS
    from ordersync.processors.order_stage import step_order
    from ordersync.processors.values import NormaliseError
    from tests.raw_events import woo_doc, woo_event

    broken_document = woo_event(woo_doc(total={"not": "money"}))
    with pytest.raises(NormaliseError):
        step_order(broken_document, None, 1, None)
    with pytest.raises(Exception) as raised:
        step_order(woo_event(woo_doc()), b'{"unexpected": "shape"}', 2, None)
    assert not isinstance(raised.value, BAD_EVENT_ERRORS)
    with pytest.raises(Exception) as raised:
        step_order(woo_event(woo_doc()), b"not json", 2, None)
    assert not isinstance(raised.value, BAD_EVENT_ERRORS)


def test_an_alias_key_never_emits_its_raw_customer_copy_and_ignores_an_older_customer() -> None:
    """A store customer's contact is stored twice: merged at {list}:{email}, and as the raw customer copy at
    its alias key (for orders without e-mail). A redelivered alias item re-emitted the copy, at a version
    equal to the merged one, so the sink applied it: consent NULL, origin and other stores' refs lost.
    And an older customer record read late moved later orders back to the old e-mail's contact."""
    key = customer_alias("7", "woo-ch", "55")
    at = dt.datetime(2025, 1, 1, tzinfo=UTC)
    old = new_contact(
        "7", "old@example.com", ContactHint("old@example.com", None, None, None, "55"), "STORE_CUSTOMER", "woo-ch", at
    )
    new = new_contact("7", "new@example.com", ContactHint("new@example.com", None, None, None, "55"), "STORE_CUSTOMER", "woo-ch", at + dt.timedelta(days=1))  # fmt: skip
    contacts: dict[str, Any] = {}
    pending: dict[str, Any] = {}
    alias_item = {"kind": "alias", "contact": new}
    first, kept = join_item(contacts, pending, key, alias_item, 50, None)
    assert first.contacts == [] and kept == 50
    again, _ = join_item(contacts, pending, key, alias_item, 50, 50)  # redelivered after a crash
    assert again.contacts == []
    restored, _ = join_item(dict(contacts), {}, key, alias_item, 50, None)  # restored without its position
    assert restored.contacts == []
    # The older record, read late: the alias keeps the newer e-mail, so orders without e-mail follow it.
    join_item(contacts, pending, key, {"kind": "alias", "contact": old}, 51, 50)
    o = normalise_order(woo_event(woo_doc(billing={"email": ""}, customer_id=55))).order
    later = on_order(contacts, pending, key, o, [], hint(email=None, customer="55"))
    assert later.orders[0]["contact_id"] == new["contact_id"]
