from __future__ import annotations

from ordersync.schemas import registry
from ordersync.schemas.topics import CATALOGUE, catalogue, differences, find


def test_every_topic_names_a_known_subject() -> None:
    subjects = set(registry().subjects)
    for spec in CATALOGUE:
        assert spec.value_subject is None or spec.value_subject in subjects


def test_latest_state_topics_are_compacted_and_history_is_kept_forever() -> None:
    by_name = {spec.short_name: spec for spec in CATALOGUE}
    for name in ("orders", "contacts", "connector-state"):
        assert by_name[name].configs["cleanup.policy"] == "compact"
    for name in ("raw.orders", "raw.customers", "activity", "dlq"):
        assert by_name[name].configs == {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}


def test_names_share_the_prefix_and_settings() -> None:
    topics = catalogue("acme.", 6, 3)
    assert all(t.name.startswith("acme.") and t.partitions == 6 and t.replication_factor == 3 for t in topics)
    assert find("acme.", "orders") == find("acme.", "acme.orders") is not None
    assert find("acme.", "nope") is None


def test_differences_name_each_mismatch() -> None:
    topic = next(t for t in catalogue("p.", 4, 1) if t.spec.short_name == "orders")
    assert differences(topic, 4, 1, {"cleanup.policy": "compact"}) == []
    diffs = differences(topic, 2, 1, {"cleanup.policy": "delete"})
    assert diffs == ["partitions 2 (catalogue: 4)", "cleanup.policy=delete (catalogue: compact)"]
