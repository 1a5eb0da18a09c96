"""The topic catalogue: every topic ordersync owns, in one place.

Raw topics and activity keep everything (``retention.ms=-1``): they are the history replay reads.
Latest-state topics (orders, contacts, connector state) are compacted. Names share one configurable
prefix; partitions and replication factor come from the settings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FOREVER = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}
COMPACTED = {"cleanup.policy": "compact"}
# The processor's hand-off to its contact stage is read within moments; 30 days (not the broker's default
# of 7) lets a worker stay down for weeks and still find what it had not handled (docs/processor.md).
HANDOFF = {"cleanup.policy": "delete", "retention.ms": str(30 * 24 * 3600 * 1000), "retention.bytes": "-1"}


@dataclass(frozen=True)
class TopicSpec:
    short_name: str
    key_format: str
    value_subject: str | None  # None: values are not Avro (the dead-letter topic keeps original bytes)
    configs: dict[str, str]
    description: str


CATALOGUE: tuple[TopicSpec, ...] = (
    TopicSpec("raw.orders", "{store_id}:{source_order_id}", "raw_order_event", FOREVER,
              "Store order documents as received, from backfill, polling and webhooks."),
    TopicSpec("raw.customers", "{store_id}:{source_customer_id}", "raw_customer_event", FOREVER,
              "Store customer documents as received."),
    TopicSpec("connector-state", "{store_id}:{stream}", "connector_cursor", COMPACTED,
              "Connector cursors (backfill position, incremental high-water mark)."),
    TopicSpec("orders", "{store_id}:{source_order_id}", "order", COMPACTED,
              "Latest normalised state of every order."),
    TopicSpec("activity", "{store_id}:{source_order_id}", "activity", FOREVER,
              "Timeline events: order created, status changed, updated, deleted."),
    TopicSpec("contacts", "{list_id}:{email}", "contact", COMPACTED,
              "Latest state of every contact."),
    TopicSpec("contacts.import", "{list_id}:{email}", "contact", FOREVER,
              "Contacts imported from CSV files, consumed by the processor."),
    TopicSpec("triggers", "{list_id}:{contact_id}", "trigger", FOREVER,
              "Automation triggers on live purchases (thank-you, first order, upsell, abandoned, win-back, VIP)."),
    TopicSpec("triggers.suppressed", "{list_id}:{contact_id}", "trigger", FOREVER,
              "Marketing triggers withheld for lack of the contact's consent: counted, never delivered."),
    TopicSpec("campaign.events", "{list_id}:{email}", "campaign_event", FOREVER,
              "Campaign sends, holdouts, opens, clicks and unsubscribes, from CSV imports and platform webhooks."),
    TopicSpec("attributions", "{store_id}:{source_order_id}", "attribution", COMPACTED,
              "The campaign each attributed order is credited to (a tombstone: credited to nothing any more; its revenue follows the order)."),
    TopicSpec("dlq", "the key of the original message", None, FOREVER,
              "Dead letters: original key, value and headers, plus headers saying why and where from."),
)  # fmt: skip


@dataclass(frozen=True)
class Topic:
    spec: TopicSpec
    name: str
    partitions: int
    replication_factor: int

    @property
    def configs(self) -> dict[str, str]:
        """The spec's settings; replicated three times or more, a write also needs two replicas in sync
        (with acks=all, an acknowledged record then survives the loss of any one broker)."""
        if self.replication_factor >= 3:
            return {**self.spec.configs, "min.insync.replicas": "2"}
        return self.spec.configs


# The processor's own topics, beside the catalogue. faust names a table's changelog
# "{app_id}-{table}-changelog"; every table the processor declares is listed here, so that every topic
# it reads or writes is created, with its settings, before it subscribes (ordersync.processors.app).
BY_CONTACT = TopicSpec("processor.by-contact", "{list_id}:{email} of each item", None, HANDOFF,
                       "The processor's items for its contact stage, partitioned by contact (internal).")  # fmt: skip
PROCESSOR_TABLES = (
    "order-state", "contacts", "pending", "join-offsets", "trigger-state", "trigger-timers", "attribution",
)  # fmt: skip


def changelog_spec(table: str) -> TopicSpec:
    return TopicSpec(f"{table}-changelog", "the table's key", None, COMPACTED, f"The processor's {table} table.")


def catalogue(prefix: str, partitions: int, replication_factor: int) -> list[Topic]:
    return [Topic(spec, prefix + spec.short_name, partitions, replication_factor) for spec in CATALOGUE]


@dataclass(frozen=True)
class TopicNames:
    """The full name of every catalogue topic under one prefix: what components use instead of
    concatenating names themselves."""

    raw_orders: str
    raw_customers: str
    connector_state: str
    orders: str
    activity: str
    contacts: str
    contacts_import: str
    triggers: str
    triggers_suppressed: str
    campaign_events: str
    attributions: str
    dlq: str

    @classmethod
    def with_prefix(cls, prefix: str) -> TopicNames:
        # Field names are the catalogue's short names with "." and "-" as "_".
        return cls(**{re.sub(r"[.-]", "_", spec.short_name): prefix + spec.short_name for spec in CATALOGUE})


def find(prefix: str, name: str) -> TopicSpec | None:
    """The spec for ``name``, given either as a short name ("orders") or a full name ("ordersync.orders")."""
    for spec in CATALOGUE:
        if name in (spec.short_name, prefix + spec.short_name):
            return spec
    return None


def differences(topic: Topic, partitions: int, replication_factor: int, configs: dict[str, str]) -> list[str]:
    """How an existing topic differs from the catalogue (empty: it matches)."""
    out = []
    if partitions != topic.partitions:
        out.append(f"partitions {partitions} (catalogue: {topic.partitions})")
    if replication_factor != topic.replication_factor:
        out.append(f"replication factor {replication_factor} (catalogue: {topic.replication_factor})")
    for key, want in topic.configs.items():
        have = configs.get(key)
        if have != want:
            out.append(f"{key}={have} (catalogue: {want})")
    return out


@dataclass(frozen=True)
class Wiring:
    """Who reads and writes what: the pipeline's consumer groups, the topics each one reads and writes,
    and the processor's internal topics, in one place for the processor, the sink, the forwarder, the CLI
    (topic creation, lag metrics, replay) and the web app's Stores page.

    ``prefix`` names the groups (``{prefix}processor``, ``{prefix}sink``); ``inputs`` is where the
    processor reads, ``outputs`` where it writes and the sink reads (a replay writes under its own prefix
    and reads the campaign events where they were imported).
    """

    prefix: str
    inputs: TopicNames
    outputs: TopicNames

    @classmethod
    def with_prefix(cls, prefix: str, output_prefix: str | None = None) -> Wiring:
        out = output_prefix or prefix
        return cls(out, TopicNames.with_prefix(prefix), TopicNames.with_prefix(out))

    @property
    def input_prefix(self) -> str:
        return self.inputs.raw_orders.removesuffix("raw.orders")

    @property
    def processor_group(self) -> str:
        return f"{self.prefix}processor"

    @property
    def sink_group(self) -> str:
        return f"{self.prefix}sink"

    def forwarder_group(self, destination: str) -> str:
        """The trigger forwarder's group for one destination (each reads every trigger)."""
        return f"{self.prefix}triggers-{destination}"

    @property
    def by_contact(self) -> str:
        return self.prefix + BY_CONTACT.short_name

    @property
    def processor_reads(self) -> list[str]:
        """The topics the processor's agents read from the stores' side (its own by-contact aside)."""
        return [
            self.inputs.raw_orders,
            self.inputs.raw_customers,
            self.inputs.contacts_import,
            self.inputs.campaign_events,
        ]

    @property
    def processor_records(self) -> list[str]:
        """What the processor derives, for the sink to store."""
        o = self.outputs
        return [o.orders, o.activity, o.contacts, o.triggers, o.triggers_suppressed, o.attributions]

    @property
    def processor_writes(self) -> list[str]:
        return [*self.processor_records, self.outputs.dlq]

    @property
    def sink_reads(self) -> list[str]:
        return [*self.processor_records, self.inputs.campaign_events]

    @property
    def forwarder_reads(self) -> list[str]:
        return [self.outputs.triggers]

    def roles(self) -> dict[str, tuple[list[str], list[str]]]:
        """Every component with the catalogue and internal topics it reads and those it writes."""
        i, o = self.inputs, self.outputs
        return {
            "connectors": ([i.connector_state], [i.raw_orders, i.raw_customers, i.connector_state, i.dlq]),
            # `ordersync contacts import`, `ordersync campaigns import` and the campaign webhook
            "imports": ([], [i.contacts_import, i.campaign_events, i.dlq]),
            "processor": ([*self.processor_reads, self.by_contact], [*self.processor_writes, self.by_contact]),
            "sink": (self.sink_reads, [o.dlq]),
            "forwarder": (self.forwarder_reads, [o.dlq]),
            "web": ([o.dlq], []),  # the Stores page counts the last hour's dead letters
        }

    def subject(self, topic: str) -> str | None:
        """The Avro subject of a topic's values (None: not Avro, or not a catalogue topic)."""
        spec = find(self.prefix, topic) or find(self.input_prefix, topic)
        return spec.value_subject if spec else None

    def groups(self) -> dict[str, list[str]]:
        """Each consumer group and the topics it reads (consumer lag is measured over these)."""
        return {self.processor_group: [*self.processor_reads, self.by_contact], self.sink_group: self.sink_reads}

    def processor_topics(self, app_id: str, partitions: int, replication_factor: int) -> list[Topic]:
        """Every topic a processor worker named ``app_id`` reads or writes, internal ones included: what
        must exist, with its settings, before it subscribes."""
        external = {*self.processor_reads, *self.processor_writes}
        topics = [
            t
            for prefix in dict.fromkeys((self.input_prefix, self.prefix))
            for t in catalogue(prefix, partitions, replication_factor)
            if t.name in external
        ]
        topics.append(Topic(BY_CONTACT, self.by_contact, partitions, replication_factor))
        for table in PROCESSOR_TABLES:
            spec = changelog_spec(table)
            topics.append(Topic(spec, f"{app_id}-{spec.short_name}", partitions, replication_factor))
        return topics
