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
    TopicSpec("campaign.events", "{list_id}:{email}", "campaign_event", FOREVER,
              "Campaign sends, holdouts, opens, clicks and unsubscribes, from CSV imports and platform webhooks."),
    TopicSpec("attributions", "{store_id}:{source_order_id}", "attribution", COMPACTED,
              "The campaign each attributed order is credited to (decided once; its revenue follows the order)."),
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
    """Who reads what: the pipeline's consumer groups and the topics each one reads, in one place for the
    processor, the sink, the CLI (lag metrics, replay) and the web app's Stores page.

    ``prefix`` names the groups (``{prefix}processor``, ``{prefix}sink``); ``inputs`` is where the
    processor reads, ``outputs`` where it writes and the sink reads (a replay writes under its own prefix).
    """

    prefix: str
    inputs: TopicNames
    outputs: TopicNames

    @classmethod
    def with_prefix(cls, prefix: str, output_prefix: str | None = None) -> Wiring:
        out = output_prefix or prefix
        return cls(out, TopicNames.with_prefix(prefix), TopicNames.with_prefix(out))

    @property
    def processor_group(self) -> str:
        return f"{self.prefix}processor"

    @property
    def sink_group(self) -> str:
        return f"{self.prefix}sink"

    @property
    def processor_reads(self) -> list[str]:
        return [
            self.inputs.raw_orders,
            self.inputs.raw_customers,
            self.inputs.contacts_import,
            self.inputs.campaign_events,
        ]

    @property
    def sink_reads(self) -> list[str]:
        return [
            self.outputs.orders,
            self.outputs.activity,
            self.outputs.contacts,
            self.outputs.triggers,
            self.outputs.attributions,
            self.outputs.campaign_events,
        ]

    def groups(self) -> dict[str, list[str]]:
        """Each consumer group and the topics it reads (consumer lag is measured over these)."""
        return {self.processor_group: self.processor_reads, self.sink_group: self.sink_reads}
