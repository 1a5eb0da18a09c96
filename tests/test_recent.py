"""The poll's memory of what it published: skip exact repeats only."""

from __future__ import annotations

import datetime as dt

from ordersync.producers.recent import RecentlyPublished

T0 = dt.datetime(2026, 11, 27, 12, 0, 0, tzinfo=dt.UTC)


def test_an_unchanged_document_is_published_once() -> None:
    recent = RecentlyPublished()
    assert recent.is_new("7", '{"id":7,"status":"pending"}', T0)
    assert not recent.is_new("7", '{"id":7,"status":"pending"}', T0)


def test_a_change_in_the_same_second_is_still_published() -> None:
    recent = RecentlyPublished()
    assert recent.is_new("7", '{"id":7,"status":"pending","date_modified":"12:00:00"}', T0)
    assert recent.is_new("7", '{"id":7,"status":"processing","date_modified":"12:00:00"}', T0)
    assert not recent.is_new("7", '{"id":7,"status":"processing","date_modified":"12:00:00"}', T0)


def test_forgetting_keeps_what_later_polls_can_still_see() -> None:
    recent = RecentlyPublished()
    recent.is_new("old", "a", T0)
    recent.is_new("new", "b", T0 + dt.timedelta(seconds=10))
    recent.is_new("undated", "c", None)
    recent.forget_before(T0 + dt.timedelta(seconds=5))
    assert len(recent) == 1
    assert not recent.is_new("new", "b", T0 + dt.timedelta(seconds=10))
    assert recent.is_new("old", "a", T0)
