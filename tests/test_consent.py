"""Marketing consent as dated statements (pure): the latest wins, whatever order they are read in."""

from __future__ import annotations

import datetime as dt
import itertools
import json

import pytest

from ordersync.processors import consent
from ordersync.processors.contacts import merge, new_contact
from ordersync.processors.model import ContactHint
from ordersync.schemas.records import ConsentStatement, Contact

T = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def test_the_latest_statement_wins_in_any_order_of_arrival() -> None:
    given = consent.statement(True, T, "store:ps")
    withdrawn = consent.statement(False, T + DAY, "unsubscribe:spring")
    again = consent.statement(True, T + 2 * DAY, "import")
    for order in itertools.permutations([given, withdrawn, again]):
        now, _ = consent.heard(list(order))
        assert now.latest == again, order
        kept = consent.of(now.on(contact_with([]))).latest  # what a record keeps of it: consent and time
        assert kept is not None and (kept["consent"], kept["at"]) == (True, again["at"])


def test_a_withdrawal_wins_a_tie_and_a_restatement_is_no_change_of_the_history() -> None:
    given = consent.statement(True, T, "store:ps")
    assert consent.Consent([given], given).hear(consent.statement(False, T, "unsubscribe:spring")) is not None
    withdrawn = consent.statement(False, T, "x")
    assert consent.Consent([withdrawn], withdrawn).hear(consent.statement(True, T, "y")) is None
    restated = consent.Consent([given], given).hear(consent.statement(True, T + DAY, "store:ps"))
    assert restated is not None and restated.history == [given] and restated.latest is not None
    assert restated.hear(consent.statement(False, T + DAY / 2, "unsubscribe:old")) is None  # older than the restatement


def test_the_history_keeps_the_newest_changes_only() -> None:
    now, _ = consent.heard(
        [consent.statement(n % 2 == 0, T + n * DAY, "import") for n in range(consent.MAX_HISTORY + 10)]
    )
    assert len(now.history) == consent.MAX_HISTORY and now.history[-1]["at"] == T + (consent.MAX_HISTORY + 9) * DAY


def contact_with(statements: list[ConsentStatement], at: dt.datetime = T) -> Contact:
    hint = ContactHint(email="ann@example.com", first_name="Ann", last_name=None, phone=None, store_customer_id=None)
    return new_contact("1", "ann@example.com", hint, "STORE_CUSTOMER", "ps", at, statements)


def test_merging_takes_the_later_statement_not_the_later_record() -> None:
    """Before, the record with the higher version set the flag: a customer record re-read later (its
    newsletter flag set since last year) undid a newer unsubscribe."""
    unsubscribed = contact_with([consent.statement(False, T + DAY, "unsubscribe:spring")], at=T + DAY)
    reread = contact_with([consent.statement(True, T, "store:ps")], at=T + 3 * DAY)
    merged = merge(unsubscribed, reread)
    assert merged is None or merged["marketing_consent"] is False
    later = merge(unsubscribed, contact_with([consent.statement(True, T + 2 * DAY, "store:ps")], at=T + 3 * DAY))
    assert later is not None and later["marketing_consent"] is True
    assert [s["consent"] for s in later["consent_history"]] == [False, True]


def test_a_record_without_history_states_its_flag_as_of_its_update() -> None:
    old = {**contact_with([]), "marketing_consent": True, "origin": "IMPORT"}
    del old["consent_history"], old["consent_at"]  # type: ignore[misc]  # a v2 record
    assert consent.statements_of(old) == [consent.statement(True, T, "import")]  # type: ignore[arg-type]


def test_store_documents_state_consent_with_their_own_dates() -> None:
    ps = {"newsletter": "1", "newsletter_date_add": "2025-05-04 10:00:00", "optin": "0"}
    stated = consent.prestashop(ps, T, "Europe/Paris", "ps")
    assert stated == consent.statement(True, dt.datetime(2025, 5, 4, 8, tzinfo=dt.UTC), "store:ps")
    assert consent.prestashop({"newsletter": "0", "optin": "0"}, T, "UTC", "ps") == consent.statement(
        False, T, "store:ps"
    )
    assert consent.prestashop({}, T, "UTC", "ps") is None
    woo = {"meta_data": [{"id": 1, "key": "_mc4wp_optin", "value": "yes"}]}
    assert consent.woocommerce(woo, "_mc4wp_optin", T, "w") == consent.statement(True, T, "store:w")
    assert consent.woocommerce(woo, "other_key", T, "w") is None
    assert consent.woocommerce({"meta_data": [{"key": "k", "value": "maybe"}]}, "k", T, "w") is None
    assert consent.word("No") is False and consent.word(1) is True and consent.word(None) is None


def test_an_unsubscribe_read_before_its_contact_waits_for_it() -> None:
    """The contact stage reads campaign events and store customers from different topics: an unsubscribe
    read first found no contact and was lost, and the contact then arrived with its consent given."""
    from ordersync.processors.join import on_consent, on_contact

    contacts: dict[str, bytes] = {}
    pending: dict[str, bytes] = {}
    key = "1:ann@example.com"
    early = on_consent(contacts, pending, key, consent.statement(False, T + DAY, "unsubscribe:spring"))
    assert early.contacts == [] and key not in contacts  # an address alone is no contact
    out = on_contact(contacts, pending, key, contact_with([consent.statement(True, T, "store:ps")]))
    assert [c["marketing_consent"] for c in out.contacts] == [False]
    assert json.loads(pending[key]) == {"consent": []}  # applied once: the worker's tables never delete


@pytest.mark.broker  # a real PostgreSQL (the local stack)
def test_the_timeline_shows_each_change_of_consent_with_its_source(database_url: str) -> None:
    """The sink keeps a contact's consent history, and its Activity (the web app's query and `ordersync
    contact`) shows each change as consent given or withdrawn, with where it was stated."""
    import psycopg

    from ordersync.sinks import contact_view
    from ordersync.sinks.migrate import migrate
    from ordersync.sinks.writer import Batch, prepare, write_batch
    from ordersync.web import queries

    given = consent.statement(True, T, "store:ps")
    withdrawn = consent.statement(False, T + DAY, "unsubscribe:spring")
    ann = consent.Consent([given, withdrawn], withdrawn).on(contact_with([given]))
    migrate(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        prepare(conn)
        write_batch(conn, Batch(contacts=[ann], messages=1), "test")
        rows = queries.contact_activity(conn, ann["contact_id"], 1)
        view = contact_view.load(conn, "1", "ann@example.com")
    assert [(r["type"], r["occurred_at"], r["rule"]) for r in rows] == [
        ("CONSENT_WITHDRAWN", T + DAY, "unsubscribe:spring"), ("CONSENT_GIVEN", T, "store:ps")
    ]  # fmt: skip
    assert view is not None
    text = contact_view.render_text(view)
    assert "marketing consent: withdrawn (unsubscribed from campaign spring" in text
    assert "CONSENT_GIVEN" in text and "store ps" in text
