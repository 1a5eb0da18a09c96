"""Where the tests find Kafka and PostgreSQL, in order of preference:

1. ``ORDERSYNC_KAFKA_BOOTSTRAP`` / ``ORDERSYNC_DATABASE_URL`` from the environment (``make test`` sets them);
2. testcontainers, when a Docker engine answers (checked once, cheaply);
3. the local stack (``ordersync stack up``), started here if it is not running.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass

from ordersync.runtime.settings import Settings


@dataclass(frozen=True)
class Endpoints:
    kafka_bootstrap: str
    database_url: str
    source: str


@functools.cache
def docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


@contextlib.contextmanager
def provide_endpoints() -> Iterator[Endpoints]:
    settings = Settings.from_env()
    if settings.uses_external_kafka and settings.uses_external_database:
        yield Endpoints(settings.kafka_bootstrap, settings.database_url, "environment")
        return
    if docker_available():
        from testcontainers.kafka import KafkaContainer
        from testcontainers.postgres import PostgresContainer

        with KafkaContainer("apache/kafka:4.1.1").with_kraft() as kafka, PostgresContainer("postgres:16") as pg:
            url = pg.get_connection_url().replace("postgresql+psycopg2://", "postgresql://")
            yield Endpoints(
                settings.kafka_bootstrap_env or kafka.get_bootstrap_server(),
                settings.database_url_env or url,
                "testcontainers",
            )
        return
    from ordersync.stack import LocalKafka, LocalPostgres

    if not settings.uses_external_kafka:
        LocalKafka(settings).up()
    if not settings.uses_external_database:
        LocalPostgres(settings).up()
    yield Endpoints(settings.kafka_bootstrap, settings.database_url, "local stack")
