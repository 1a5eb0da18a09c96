"""The local stack: a real single-node KRaft Kafka broker and a PostgreSQL server, no Docker needed."""

from ordersync.stack.kafka import LocalKafka
from ordersync.stack.postgres import LocalPostgres
from ordersync.stack.service import LocalService, ServiceError, ServiceStatus

__all__ = ["LocalKafka", "LocalPostgres", "LocalService", "ServiceError", "ServiceStatus"]
