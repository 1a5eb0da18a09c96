from __future__ import annotations

from pathlib import Path

from ordersync.schemas import registry
from ordersync.schemas.topics import BY_CONTACT, CATALOGUE, Wiring, catalogue, differences, find


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


def test_the_processor_and_the_sink_read_what_the_wiring_says(tmp_path: Path, kafka_bootstrap: str) -> None:
    """One home for who reads what (ordersync.schemas.topics Wiring): the processor's agents, the sink's
    subscription and the consumer lag of `ordersync run` and the Stores page all come from it. Before,
    `ordersync run` measured the processor's lag without contacts.import."""
    from ordersync.processors.app import ProcessorOptions, create_app
    from ordersync.sinks.consumer import PostgresSink, SinkOptions

    wiring = Wiring.with_prefix("p.")
    opts = ProcessorOptions(kafka_bootstrap, "p.", 2, 1, wiring.processor_group, tmp_path, {})
    app = create_app(opts)
    read = {topic for agent in app.agents.values() for topic in agent.channel.topics}  # type: ignore[attr-defined]
    assert read - {wiring.by_contact} == set(wiring.processor_reads)
    sink = PostgresSink(SinkOptions(kafka_bootstrap, "postgresql://nobody@127.0.0.1:1/x", "p.", wiring.sink_group))
    assert list(sink.topics) == wiring.sink_reads
    sink.consumer.close()
    assert wiring.groups() == {
        "p.processor": [*wiring.processor_reads, "p.processor.by-contact"],
        "p.sink": wiring.sink_reads,
    }
    assert "p.contacts.import" in wiring.processor_reads


def test_replicated_topics_need_two_replicas_in_sync() -> None:
    assert all(t.configs.get("min.insync.replicas") == "2" for t in catalogue("x.", 12, 3))
    assert all("min.insync.replicas" not in t.configs for t in catalogue("x.", 4, 1))  # the local one-broker stack


def test_three_copies_on_a_real_cluster_one_on_the_local_broker() -> None:
    from ordersync.topics_admin import replication_for

    assert replication_for(None, 1) == 1  # the local stack, compose
    assert replication_for(None, 2) == 2
    assert replication_for(None, 5) == 3  # a real cluster: and min.insync.replicas=2 (catalogue)
    assert replication_for(2, 5) == 2  # ORDERSYNC_REPLICATION_FACTOR wins


def test_every_topic_the_processor_uses_is_in_the_wiring(tmp_path: Path) -> None:
    """The worker's subscriptions and changelogs, internal ones included, are all topics the wiring
    creates before it starts: one that faust created as it subscribed could be missing from its group's
    first assignment, and was then read by nobody (a demo with 0 contacts)."""
    from ordersync.processors.app import ProcessorOptions, create_app, topics_of

    for output_prefix in (None, "p.replay-1."):
        wiring = Wiring.with_prefix("p.", output_prefix)
        app = create_app(ProcessorOptions("127.0.0.1:1", "p.", 2, 1, "app", tmp_path, {}, output_prefix=output_prefix))
        created = {t.name: t for t in wiring.processor_topics("app", 2, 1)}
        used = topics_of(app)
        assert used <= set(created)
        assert {wiring.by_contact, "app-order-state-changelog", "app-trigger-timers-changelog"} <= used
        assert set(wiring.processor_writes) <= set(created)
        assert created[wiring.by_contact].configs["retention.ms"] == str(30 * 24 * 3600 * 1000)
        assert created["app-contacts-changelog"].configs == {"cleanup.policy": "compact"}


def test_internal_topics_of_a_replicated_cluster_need_two_replicas_in_sync() -> None:
    topics = Wiring.with_prefix("p.").processor_topics("app", 12, 3)
    assert all(t.configs.get("min.insync.replicas") == "2" for t in topics)


def test_a_replay_reads_campaign_events_where_they_were_imported() -> None:
    wiring = Wiring.with_prefix("p.", "p.replay-1.")
    assert "p.campaign.events" in wiring.sink_reads
    assert "p.replay-1.attributions" in wiring.sink_reads and "p.replay-1.attributions" in wiring.processor_writes


def _spelled_topic_names(path: Path) -> list[str]:
    """Where a module spells a catalogue topic's name: a literal of a dotted or dashed one, or any short
    name joined to a prefix (``f"{prefix}orders"``, ``prefix + "orders"``)."""
    import ast

    short = {spec.short_name for spec in CATALOGUE} | {BY_CONTACT.short_name}
    distinct = {name for name in short if "." in name or "-" in name}  # never a word of SQL or prose

    def spelled(node: ast.AST) -> object:
        if isinstance(node, ast.Constant) and node.value in distinct:
            return node.value
        if isinstance(node, ast.JoinedStr):  # a constant right after a {value}
            after = [b for a, b in zip(node.values, node.values[1:], strict=False) if isinstance(a, ast.FormattedValue)]
            return next((b.value for b in after if isinstance(b, ast.Constant) and b.value in short), None)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and isinstance(node.right, ast.Constant):
            return node.right.value if node.right.value in short else None
        return None

    tree = ast.parse(path.read_text(), str(path))
    return [f"{path}:{getattr(n, 'lineno', 0)}: {spelled(n)!r}" for n in ast.walk(tree) if spelled(n) is not None]


def test_no_module_spells_a_topic_name() -> None:
    """Topic names come from the wiring (ordersync.schemas.topics) only: a module that spells one drifts
    from it (replay once lost the campaign events that way)."""
    root = Path(__file__).resolve().parents[1]
    home = root / "schemas" / "ordersync" / "schemas" / "topics.py"
    folders = ["processors", "producers", "runtime", "schemas", "segmentation", "sinks", "web", "ordersync", "bench"]
    modules = [p for folder in folders for p in (root / folder).rglob("*.py") if p != home]
    assert len(modules) > 50
    spelled = [hit for path in modules for hit in _spelled_topic_names(path)]
    assert spelled == []


def test_every_catalogue_topic_has_a_writer_and_a_reader() -> None:
    wiring = Wiring.with_prefix("p.")
    roles = wiring.roles()
    written = {t for reads_writes in roles.values() for t in reads_writes[1]}
    read = {t for reads_writes in roles.values() for t in reads_writes[0]}
    for topic in catalogue("p.", 1, 1):
        assert topic.name in written, f"nothing writes {topic.name}"
        assert topic.name in read, f"nothing reads {topic.name}"
