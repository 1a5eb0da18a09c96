"""Creating and inspecting the catalogue's topics through the Kafka admin API."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType  # type: ignore[attr-defined]

from ordersync.runtime.settings import Settings
from ordersync.schemas.topics import Topic, Wiring, catalogue, differences


@dataclass(frozen=True)
class ExistingTopic:
    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str]


@dataclass
class CreateReport:
    created: list[str]
    unchanged: list[str]
    differing: dict[str, list[str]]


def admin_client(settings: Settings) -> AdminClient:
    return AdminClient({"bootstrap.servers": settings.kafka_bootstrap})


def replication_for(configured: int | None, brokers: int) -> int:
    """How many copies of each topic: the configured number, else three where the cluster has three
    brokers or more (with ``min.insync.replicas=2`` an acknowledged record survives losing one broker),
    else one per broker there is."""
    if configured is not None:
        return configured
    return max(1, min(3, brokers))


def replication(settings: Settings, admin: AdminClient | None = None) -> int:
    """``replication_for`` the settings and the cluster they point at."""
    if settings.replication_factor is not None:
        return settings.replication_factor
    metadata = (admin or admin_client(settings)).list_topics(timeout=30)
    return replication_for(None, len(metadata.brokers))


def describe(admin: AdminClient, names: list[str]) -> dict[str, ExistingTopic]:
    metadata = admin.list_topics(timeout=30)
    present = [n for n in names if n in metadata.topics and metadata.topics[n].error is None]
    if not present:
        return {}
    futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, n) for n in present])
    out = {}
    for resource, future in futures.items():
        entries = future.result(30)
        topic_md = metadata.topics[resource.name]
        partitions = topic_md.partitions
        rf = len(next(iter(partitions.values())).replicas) if partitions else 0
        out[resource.name] = ExistingTopic(
            resource.name, len(partitions), rf, {k: str(v.value) for k, v in entries.items()}
        )
    return out


def create_topics(settings: Settings, only: set[str] | None = None) -> CreateReport:
    """Create missing catalogue topics (or only those short names); report existing ones whose settings
    differ. Idempotent."""
    admin = admin_client(settings)
    topics = catalogue(settings.topic_prefix, settings.partitions, replication(settings, admin))
    if only is not None:
        topics = [t for t in topics if t.spec.short_name in only]
    return create_missing(admin, topics)


def create_missing(admin: AdminClient, topics: list[Topic]) -> CreateReport:
    """Create those of ``topics`` that do not exist; report existing ones whose settings differ."""
    existing = describe(admin, [t.name for t in topics])
    missing = [t for t in topics if t.name not in existing]
    report = CreateReport(created=[], unchanged=[], differing={})
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(t.name, num_partitions=t.partitions, replication_factor=t.replication_factor, config=t.configs)
                for t in missing
            ]
        )
        for name, future in futures.items():
            try:
                future.result(60)
            except Exception as exc:
                # Another process may have created it between our describe and create: not an error.
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
            report.created.append(name)
    for topic in topics:
        if topic.name in existing:
            found = existing[topic.name]
            diff = differences(topic, found.partitions, found.replication_factor, found.configs)
            if diff:
                report.differing[topic.name] = diff
            else:
                report.unchanged.append(topic.name)
    return report


def create_processor_topics(settings: Settings, wiring: Wiring, app_id: str) -> tuple[list[Topic], CreateReport]:
    """Every topic the processor ``app_id`` reads or writes, internal ones included (ordersync.schemas.topics
    ``Wiring.processor_topics``), created before it subscribes: a topic faust creates itself as it
    subscribes can be missing from the metadata its group's first assignment sees, and that topic's
    partitions are then assigned to nobody, for good."""
    admin = admin_client(settings)
    topics = wiring.processor_topics(app_id, settings.partitions, replication(settings, admin))
    return topics, create_missing(admin, topics)


def list_topics(settings: Settings) -> list[tuple[Topic, ExistingTopic | None]]:
    admin = admin_client(settings)
    topics = catalogue(settings.topic_prefix, settings.partitions, replication(settings, admin))
    existing = describe(admin, [t.name for t in topics])
    return [(t, existing.get(t.name)) for t in topics]


def wait_until_ready(settings: Settings, topics: list[str], group: str, deadline_s: float = 120.0) -> None:
    """Block until the broker lists ``topics`` with a leader for every partition and can coordinate
    ``group``. A broker that has just started accepts connections before it serves either; faust's
    assignor then sees no partitions, assigns nothing, and never asks again (a processor that idles
    forever). Raises ``TimeoutError`` saying what is still missing."""
    import time

    from confluent_kafka import KafkaException

    admin = admin_client(settings)
    end = time.monotonic() + deadline_s
    missing: list[str] = list(topics)
    coordinator = "not asked yet"
    while True:
        try:
            metadata = admin.list_topics(timeout=5)
            missing = [
                name
                for name in topics
                if name not in metadata.topics
                or metadata.topics[name].error is not None
                or not metadata.topics[name].partitions
                or any(p.leader < 0 for p in metadata.topics[name].partitions.values())
            ]
            if not missing:
                described = admin.describe_consumer_groups([group], request_timeout=5)[group].result()
                coordinator = "ready" if described.coordinator is not None else "no coordinator"
                if described.coordinator is not None:
                    return
        except KafkaException as exc:
            coordinator = str(exc)
        if time.monotonic() > end:
            raise TimeoutError(
                f"Kafka not ready after {deadline_s:.0f}s: topics {missing or 'ok'}, group {coordinator}"
            )
        time.sleep(0.5)
