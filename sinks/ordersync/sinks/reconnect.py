"""One PostgreSQL connection that comes back after a restart or a failover."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg

from ordersync.runtime import heartbeat

log = logging.getLogger(__name__)
R = TypeVar("R")


class Reconnecting:
    """Runs actions on a connection (autocommit: each ``conn.transaction()`` is a real transaction). An
    action failing with ``OperationalError`` is retried on a new connection, with backoff, until it
    succeeds or ``give_up()`` says to stop; the action must therefore be safe to run again (a
    transaction that failed was rolled back)."""

    def __init__(
        self,
        url: str,
        *,
        retry_max_s: float = 10.0,
        on_connect: Callable[[psycopg.Connection[Any]], None] | None = None,
    ) -> None:
        self.url = url
        self.retry_max_s = retry_max_s
        self.on_connect = on_connect
        self._conn: psycopg.Connection[Any] | None = None

    def connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self.url, autocommit=True)
            if self.on_connect is not None:
                self.on_connect(self._conn)
        return self._conn

    def run(
        self, what: str, action: Callable[[psycopg.Connection[Any]], R], give_up: Callable[[], bool] = lambda: False
    ) -> R:
        delay = 0.2
        while True:
            try:
                return action(self.connection())
            except psycopg.OperationalError as exc:
                if give_up():
                    raise
                log.warning("PostgreSQL unavailable during %s (%s); retrying in %.1fs", what, exc, delay)
                heartbeat.beat()  # waiting for PostgreSQL is not hanging: a restart would not help
                self.close()
                time.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
