"""The faust-streaming app: raw topics → normalised orders, contacts and activity.

Laid out as faust's own examples are: this module makes the app, its topics and tables
(``Topology``); ordersync.processors.agents holds the agents. Two stages, because an order's state is
partitioned by order key but its contact by e-mail:

1. ``orders`` reads ``raw.orders`` (one order event or a batch of them per message), normalises each
   order, diffs it against ``order-state`` and emits the order and its activity (ordersync.processors.order_stage).
   What needs a contact lookup goes to the internal topic ``processor.by-contact``, one message per
   destination partition per input message. ``customers`` and ``imports`` forward contacts there too.
2. ``contacts`` reads ``processor.by-contact``; the ``contacts`` and ``pending`` tables are
   co-partitioned with it, so the lookup is local (ordersync.processors.join). It emits contacts, and orders
   that waited for their store customer.

Delivery is at-least-once: every record goes through one librdkafka producer (ordersync.processors.outputs)
and a source offset is committed only after all of them are acknowledged (ordersync.processors.delivery);
every output is idempotent (deterministic event ids, contact ids and versions), so each consumer's
state is exactly-once. faust's ``exactly_once`` mode is deliberately not used (docs/processor.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import faust

from ordersync.processors import agents, delivery
from ordersync.processors.outputs import OutputProducer
from ordersync.processors.provenance import HistoryPolicy
from ordersync.processors.tables import StateTable
from ordersync.runtime.automations import Automations
from ordersync.schemas.topics import PROCESSOR_TABLES, TopicNames, Wiring

# Per table and partition (16 databases with the defaults). faust's defaults (64 MiB write buffers, three
# of them, and a 2 GiB block cache each) let a worker grow past 500 MiB with a million orders of state.
ROCKSDB = {"write_buffer_size": 8 << 20, "max_write_buffer_number": 2, "block_cache_size": 8 << 20}


@dataclass(frozen=True)
class ProcessorOptions:
    """What a worker needs to know, from the CLI and the settings."""

    bootstrap: str
    topic_prefix: str  # where the raw topics are
    partitions: int
    replication_factor: int
    app_id: str
    data_dir: Path
    status_overrides: Mapping[str, Mapping[str, str]]  # store id → overrides
    web_port: int | None = None  # None: no web server
    standby_replicas: int = 0
    commit_interval_s: float = 0.1  # outputs are confirmed at each commit: a floor on latency
    output_prefix: str | None = None  # where outputs and internal topics go (a replay writes elsewhere)
    stream_buffer: int = 1024  # messages buffered per partition ahead of the agents (a batch holds many orders)
    delivery_timeout_ms: int = 60_000  # a record not acknowledged by then fails (and stops the worker)
    automations: Automations = field(default_factory=Automations)  # trigger rules per list
    replay: bool = False  # every output is history: no trigger fires
    consent_keys: Mapping[str, str] = field(default_factory=dict)  # store id → its consent meta key (WooCommerce)


@dataclass(frozen=True)
class Topology:
    """The app's topics and tables, as the agents use them."""

    inputs: TopicNames
    outputs: TopicNames
    raw_orders: faust.TopicT
    raw_customers: faust.TopicT
    imports: faust.TopicT
    campaign_events: faust.TopicT
    by_contact: faust.TopicT
    order_state: StateTable
    contacts: StateTable
    pending: StateTable
    join_positions: StateTable
    trigger_state: StateTable
    trigger_timers: StateTable
    attribution: StateTable


def create_app(opts: ProcessorOptions) -> faust.App:
    """The faust app with its topics, tables and agents; the worker runs it."""
    app = faust.App(
        opts.app_id,
        broker=f"kafka://{opts.bootstrap}",
        store="rocksdb://",
        datadir=str(opts.data_dir),
        processing_guarantee="at_least_once",
        topic_partitions=opts.partitions,
        topic_replication_factor=opts.replication_factor,
        table_standby_replicas=opts.standby_replicas,
        broker_commit_interval=opts.commit_interval_s,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=opts.stream_buffer,
        web_enabled=opts.web_port is not None,
        web_port=opts.web_port or 6066,
        key_serializer="raw",
        value_serializer="raw",
    )
    outputs = OutputProducer(opts.bootstrap, **{"delivery.timeout.ms": opts.delivery_timeout_ms})

    def topic(name: str, internal: bool = False) -> faust.TopicT:
        return app.topic(name, key_type=bytes, value_type=bytes, partitions=opts.partitions, internal=internal)

    def table(name: str) -> StateTable:
        assert name in PROCESSOR_TABLES, f"{name}: a table's changelog must be in the wiring (ordersync.schemas.topics)"
        declared = app.Table(
            name, default=None, partitions=opts.partitions, key_type=bytes, value_type=bytes, options=ROCKSDB
        )
        return StateTable(declared, outputs)

    wiring = Wiring.with_prefix(opts.topic_prefix, opts.output_prefix)
    raw_orders, raw_customers, imports, campaign_events = wiring.processor_reads
    topology = Topology(
        inputs=wiring.inputs,
        outputs=wiring.outputs,
        raw_orders=topic(raw_orders),
        raw_customers=topic(raw_customers),
        imports=topic(imports),
        campaign_events=topic(campaign_events),
        by_contact=topic(wiring.by_contact, internal=True),
        order_state=table("order-state"),
        contacts=table("contacts"),
        pending=table("pending"),
        # The last by-contact position handled per routing key: a redelivery after a crash (see
        # ordersync.processors.activity) re-emits the key's contact, whose table entry may be ahead of its output.
        join_positions=table("join-offsets"),
        # Per contact, a summary of its orders; and the timers of triggers that need time to pass, by due
        # time (ordersync.processors.triggers). Both co-partitioned with processor.by-contact.
        trigger_state=table("trigger-state"),
        trigger_timers=table("trigger-timers"),
        # Per contact, its campaign touches and the orders already credited (ordersync.processors.attribution).
        attribution=table("attribution"),
    )
    tables = (
        topology.order_state,
        topology.contacts,
        topology.pending,
        topology.join_positions,
        topology.trigger_state,
        topology.trigger_timers,
        topology.attribution,
    )

    def stored(offsets: dict[tuple[str, int], int]) -> None:
        for state in tables:
            state.stored(offsets)

    policy = HistoryPolicy(replay=opts.replay, horizons=opts.automations.horizons())
    handlers = agents.register(
        app, topology, outputs, opts.status_overrides, opts.automations, policy, opts.consent_keys
    )
    delivery.install(outputs, stored, handlers.confirmed.update, handlers.forward.flush)
    delivery.keep_fetched_on_resume(app.flow_control)

    return app


def topics_of(app: faust.App) -> set[str]:
    """Every topic the worker subscribes to or keeps a changelog in: what must exist before it starts."""
    read = {topic for agent in app.agents.values() for topic in agent.channel.topics}
    return read | {table.changelog_topic.get_topic_name() for table in app.tables.values()}
