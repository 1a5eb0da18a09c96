"""The one settings object, read from ``ORDERSYNC_*`` environment variables.

When ``ORDERSYNC_KAFKA_BOOTSTRAP`` / ``ORDERSYNC_DATABASE_URL`` are set, every command and every test uses
that existing cluster / database; otherwise they point at the local stack (``ordersync stack up``).
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _default_stack_dir() -> Path:
    # Inside the checkout when running from one (the common case); a per-user state dir otherwise.
    if (PROJECT_ROOT / "pyproject.toml").exists():
        return PROJECT_ROOT / ".stack"
    return Path.home() / ".local" / "state" / "ordersync"


def without_password(url: str) -> str:
    """``url`` fit to print: a password in it is replaced by ``***`` (keyword/value strings are not URLs
    and are shown as ``(a connection string)``)."""
    if "://" not in url:
        return "(a connection string)" if "password" in url else url
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def _float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from exc
    if not 0 <= value < float("inf"):
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}")
    return value


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_env: str | None = None
    database_url_env: str | None = None
    topic_prefix: str = "ordersync."
    partitions: int = 4
    replication_factor: int = 1
    stack_dir: Path = field(default_factory=_default_stack_dir)
    jar_cache_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "ordersync")
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    postgres_port: int = 55432
    # A failing store's next attempt waits at most this long (credentials refused: exactly refused_retry).
    store_retry_max_s: float = 60.0
    store_refused_retry_s: float = 300.0
    # /health of `ordersync run` turns 503 once a store has been failing for this long.
    store_failing_after_s: float = 300.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = dict(os.environ if env is None else env)
        defaults = cls()
        return cls(
            kafka_bootstrap_env=e.get("ORDERSYNC_KAFKA_BOOTSTRAP") or None,
            database_url_env=e.get("ORDERSYNC_DATABASE_URL") or None,
            topic_prefix=e.get("ORDERSYNC_TOPIC_PREFIX", defaults.topic_prefix),
            partitions=_int(e, "ORDERSYNC_PARTITIONS", defaults.partitions),
            replication_factor=_int(e, "ORDERSYNC_REPLICATION_FACTOR", defaults.replication_factor),
            stack_dir=Path(e["ORDERSYNC_STACK_DIR"]) if e.get("ORDERSYNC_STACK_DIR") else defaults.stack_dir,
            jar_cache_dir=Path(e["ORDERSYNC_CACHE_DIR"]) if e.get("ORDERSYNC_CACHE_DIR") else defaults.jar_cache_dir,
            kafka_port=_int(e, "ORDERSYNC_STACK_KAFKA_PORT", defaults.kafka_port),
            kafka_controller_port=_int(e, "ORDERSYNC_STACK_CONTROLLER_PORT", defaults.kafka_controller_port),
            postgres_port=_int(e, "ORDERSYNC_STACK_POSTGRES_PORT", defaults.postgres_port),
            store_retry_max_s=_float(e, "ORDERSYNC_STORE_RETRY_MAX_S", defaults.store_retry_max_s),
            store_refused_retry_s=_float(e, "ORDERSYNC_STORE_REFUSED_RETRY_S", defaults.store_refused_retry_s),
            store_failing_after_s=_float(e, "ORDERSYNC_STORE_FAILING_AFTER_S", defaults.store_failing_after_s),
        )

    @property
    def uses_external_kafka(self) -> bool:
        return self.kafka_bootstrap_env is not None

    @property
    def uses_external_database(self) -> bool:
        return self.database_url_env is not None

    @property
    def kafka_bootstrap(self) -> str:
        return self.kafka_bootstrap_env or f"127.0.0.1:{self.kafka_port}"

    @property
    def database_url(self) -> str:
        return self.database_url_env or f"postgresql://ordersync@127.0.0.1:{self.postgres_port}/ordersync"
