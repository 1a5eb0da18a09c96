"""Campaign events from CSV rows and webhook objects (pure): what fits, and why what does not."""

from __future__ import annotations

import datetime as dt

import pytest

from ordersync.producers.campaign_events import BadEvent, event_from
from ordersync.schemas.identity import contact_id

NOW = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)
ROW = {
    "type": "Click",
    "campaign_id": "spring",
    "email": " Ana@Example.com ",
    "occurred_at": "2026-12-01T10:00:00+01:00",
}


def test_a_row_becomes_an_event_in_utc_with_a_derived_contact_and_a_stable_id() -> None:
    event = event_from(ROW, "1", "IMPORT", NOW)
    assert event["occurred_at"] == dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    assert (event["type"], event["email"], event["channel"]) == ("CLICK", "ana@example.com", "EMAIL")
    assert event["contact_id"] == contact_id("1", "ana@example.com")
    assert event_from(dict(ROW), "1", "IMPORT", NOW + dt.timedelta(hours=1))["event_id"] == event["event_id"]
    assert event_from({**ROW, "campaign_id": "summer"}, "1", "IMPORT", NOW)["event_id"] != event["event_id"]
    assert event_from({**ROW, "event_id": "esp-1"}, "1", "WEBHOOK", NOW)["event_id"] == "esp-1"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"occurred_at": "2026-12-01T10:00:00"}, "no UTC offset"),
        ({"occurred_at": "yesterday"}, "not an ISO 8601 time"),
        ({"type": "bounce"}, "type must be one of"),
        ({"email": "ana"}, "not an e-mail address"),
        ({"campaign_id": " "}, "campaign_id is missing"),
        ({"contact_id": contact_id("2", "ana@example.com")}, "not the id of this e-mail in this list"),
        ({"holdout": "true"}, "holdout is for sends"),
        ({"machine": "perhaps"}, "machine must be true or false"),
        ({"channel": "fax"}, "channel must be one of"),
        ({"occurred_at": "0001-01-01T00:00:00+01:00"}, "out of range"),  # was an OverflowError: a 500
        ({"occurred_at": "9999-12-31T23:59:59-01:00"}, "out of range"),
    ],
)
def test_a_row_that_does_not_fit_says_why(change: dict[str, str], reason: str) -> None:
    with pytest.raises(BadEvent, match=reason):
        event_from({**ROW, **change}, "1", "IMPORT", NOW)


def test_control_characters_never_enter_an_event() -> None:
    """A NUL in a campaign name was accepted and then stopped the sink for good (PostgreSQL stores none)."""
    event = event_from(
        {**ROW, "campaign_name": "Spring\x00 sale\x1b[31m", "url": "https://x.example/\x07a"}, "1", "WEBHOOK", NOW
    )
    assert (event["campaign_name"], event["url"]) == ("Spring sale[31m", "https://x.example/a")
