"""The demo checks its own result: a summary of zeros is a failure, said as such."""

from __future__ import annotations

import datetime as dt

from ordersync.demo import CampaignsSent, summary
from ordersync.sinks.migrate import migrate


def test_a_summary_of_an_empty_pipeline_names_everything_missing(database_url: str) -> None:
    """The demo printed "0 contacts", empty segments and no triggers, and exited 0 (a processor that never
    read its by-contact topic). Now each missing result is named, and the demo exits 1."""
    migrate(database_url)
    now = dt.datetime.now(dt.UTC)
    problems = summary(database_url, now, "demo-x.", CampaignsSent(imported=10, contacts=5, refused=0), now)
    assert "no contact reached PostgreSQL" in problems
    assert "no automation trigger fired" in problems
    assert "10 campaign events imported, 0 in PostgreSQL" in problems
    assert "the example segment 'bought from category Shoes' is empty" in problems
