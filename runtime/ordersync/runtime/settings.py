"""The one settings object, read from ``ORDERSYNC_*`` environment variables.

When ``ORDERSYNC_KAFKA_BOOTSTRAP`` / ``ORDERSYNC_DATABASE_URL`` are set, every command and every test uses
that existing cluster / database; otherwise they point at the local stack (``ordersync stack up``).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

# ordersync.runtime.settings in a checkout: the checkout is three folders up
PROJECT_ROOT = Path(__file__).resolve().parents[3]


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


# Where ``from_env`` reads when given a mapping instead of the process environment (tests, children).
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("ordersync_environ", default=None)


class _Environment(EnvSettingsSource):
    def _load_env_vars(self) -> Mapping[str, str | None]:
        environ = _ENVIRON.get()
        if environ is None:
            return super()._load_env_vars()
        parsed: Mapping[str, str | None] = parse_env_vars(
            environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )
        return parsed


Seconds = Annotated[float, AfterValidator(lambda v: _seconds(v))]


def _connection_string(value: str) -> str:
    import psycopg.conninfo

    try:
        psycopg.conninfo.conninfo_to_dict(value)
    except psycopg.Error:
        # libpq's message quotes the whole string, password included: say what is wrong without it.
        raise ValueError("not a PostgreSQL URL or key=value connection string") from None
    return value


ConnectionString = Annotated[str, AfterValidator(_connection_string)]
NOT_SHOWN = ("URL", "PASSWORD", "SECRET")  # variables whose values are never echoed in an error


def _seconds(value: float) -> float:
    if not 0 <= value < float("inf"):
        raise ValueError("must be a number of seconds")
    return value


class Settings(BaseSettings):
    """Every setting, from ``ORDERSYNC_*`` environment variables (names beside each field)."""

    model_config = SettingsConfigDict(env_prefix="ORDERSYNC_", frozen=True, env_ignore_empty=True, extra="ignore")

    # Set: an existing cluster / database; unset: the local stack.
    kafka_bootstrap_env: str | None = Field(None, validation_alias="ORDERSYNC_KAFKA_BOOTSTRAP")
    database_url_env: ConnectionString | None = Field(None, validation_alias="ORDERSYNC_DATABASE_URL")
    topic_prefix: str = "ordersync."  # ORDERSYNC_TOPIC_PREFIX
    partitions: int = 4  # ORDERSYNC_PARTITIONS
    # Unset: three copies of every topic on a cluster of three brokers or more, one on a smaller one (the
    # local stack and compose run one broker); see ordersync/topics_admin.py replication_for.
    replication_factor: int | None = Field(None, ge=1)  # ORDERSYNC_REPLICATION_FACTOR
    stack_dir: Path = Field(default_factory=_default_stack_dir, validation_alias="ORDERSYNC_STACK_DIR")
    jar_cache_dir: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "ordersync", validation_alias="ORDERSYNC_CACHE_DIR"
    )
    kafka_port: int = Field(19092, validation_alias="ORDERSYNC_STACK_KAFKA_PORT")
    kafka_controller_port: int = Field(19093, validation_alias="ORDERSYNC_STACK_CONTROLLER_PORT")
    postgres_port: int = Field(55432, validation_alias="ORDERSYNC_STACK_POSTGRES_PORT")
    # A failing store's next attempt waits at most this long (credentials refused: exactly refused_retry).
    store_retry_max_s: Seconds = 60.0  # ORDERSYNC_STORE_RETRY_MAX_S
    store_refused_retry_s: Seconds = 300.0  # ORDERSYNC_STORE_REFUSED_RETRY_S
    # /health of `ordersync run` turns 503 once a store has been failing for this long.
    store_failing_after_s: Seconds = 300.0  # ORDERSYNC_STORE_FAILING_AFTER_S
    # The processor gives up on a record Kafka has not acknowledged after this long (the worker then stops
    # and its events are handled again after the restart: docs/processor.md).
    delivery_timeout_ms: int = Field(60_000, ge=1_000)  # ORDERSYNC_DELIVERY_TIMEOUT_MS
    # A webhook whose body has not fully arrived after this long gets a 408 (slow senders hold no socket).
    webhook_body_timeout_s: Seconds = 10.0  # ORDERSYNC_WEBHOOK_BODY_TIMEOUT_S
    # Order webhooks wait this long for others to share a raw order batch with (ordersync.producers.webhook_batches).
    webhook_linger_ms: int = Field(20, ge=0, le=1000)  # ORDERSYNC_WEBHOOK_LINGER_MS
    # The web app's bootstrap account, an admin (docs/security.md); people get accounts in PostgreSQL with
    # `ordersync users`. With any account, every page needs a login; with none, the app only binds to
    # loopback. web_lists: the comma-separated contact lists this account may see (all if unset).
    web_user: str | None = None  # ORDERSYNC_WEB_USER
    web_password: SecretStr | None = None  # ORDERSYNC_WEB_PASSWORD
    web_lists: str | None = None  # ORDERSYNC_WEB_LISTS
    # Signs the session cookie; unset: a random key per process, so a restart logs everyone out although
    # the sessions are kept in PostgreSQL. Give replicas, and restarts, the same one.
    web_session_secret: SecretStr | None = None  # ORDERSYNC_WEB_SESSION_SECRET
    # Behind TLS: the session cookie is sent over HTTPS only.
    web_https: bool = False  # ORDERSYNC_WEB_HTTPS
    # Host names the app answers to (comma-separated), besides the bound address and localhost. Unset and
    # with a login: any; without a login: only those (a DNS-rebinding page gets a 400).
    web_allowed_hosts: str | None = None  # ORDERSYNC_WEB_ALLOWED_HOSTS
    # A session unused this long ends (logging out ends it at once).
    web_session_idle_s: Seconds = 12 * 3600.0  # ORDERSYNC_WEB_SESSION_IDLE_S
    # ... and one ends this long after the login, however much it is used (the cookie's Max-Age too).
    web_session_max_s: Seconds = 24 * 3600.0  # ORDERSYNC_WEB_SESSION_MAX_S
    # PostgreSQL use: pages share a pool of this many connections, each query stops after the timeout,
    # and at most this many CSV exports stream at once (one more gets a 503).
    web_pool_size: int = Field(10, ge=1, le=200)  # ORDERSYNC_WEB_POOL_SIZE
    web_statement_timeout_ms: int = Field(15_000, ge=1)  # ORDERSYNC_WEB_STATEMENT_TIMEOUT_MS
    web_max_exports: int = Field(4, ge=1, le=100)  # ORDERSYNC_WEB_MAX_EXPORTS
    # Where `ordersync triggers forward` (and `ordersync run`, when set) POSTs automation triggers, the key
    # that signs them, and how many attempts a trigger gets before it goes to the dead-letter topic.
    triggers_url: str | None = None  # ORDERSYNC_TRIGGERS_URL
    triggers_secret: SecretStr | None = None  # ORDERSYNC_TRIGGERS_SECRET
    triggers_attempts: int = Field(8, ge=1, le=100)  # ORDERSYNC_TRIGGERS_ATTEMPTS
    # Triggers delivered at once (a contact's always one after the other, in order).
    triggers_in_flight: int = Field(64, ge=1, le=1000)  # ORDERSYNC_TRIGGERS_IN_FLIGHT
    # The key a sending platform signs its campaign event webhooks with (unset: the endpoint refuses all).
    campaign_webhook_secret: SecretStr | None = None  # ORDERSYNC_CAMPAIGN_WEBHOOK_SECRET

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, _Environment(settings_cls))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the process environment, or only ``env`` when given. A bad value is a ValueError naming
        the variable."""
        token = _ENVIRON.set(env)
        try:
            return cls()
        except ValidationError as exc:
            error = exc.errors()[0]
            name = str(error["loc"][0]) if error["loc"] else "?"
            name = name if name.startswith("ORDERSYNC_") else f"ORDERSYNC_{name.upper()}"
            shown = "(not shown)" if any(word in name for word in NOT_SHOWN) else repr(error.get("input"))
            raise ValueError(f"{name}: {error['msg']}, got {shown}") from None
        finally:
            _ENVIRON.reset(token)

    def with_prefix(self, topic_prefix: str) -> Settings:
        """The same settings for topics under another prefix (a replay's outputs)."""
        return self.model_copy(update={"topic_prefix": topic_prefix})

    @property
    def uses_external_kafka(self) -> bool:
        return self.kafka_bootstrap_env is not None

    @property
    def uses_external_database(self) -> bool:
        return self.database_url_env is not None

    @property
    def stack_kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    def points_at_stack_kafka(self) -> bool:
        """ORDERSYNC_KAFKA_BOOTSTRAP names the local stack's own address (what `stack env` exports)."""
        return self.kafka_bootstrap_env == self.stack_kafka_bootstrap

    def points_at_stack_database(self) -> bool:
        """ORDERSYNC_DATABASE_URL names a database on the local stack's server (`stack env`, the demo's)."""
        if self.database_url_env is None:
            return False
        from psycopg.conninfo import conninfo_to_dict

        try:
            params = conninfo_to_dict(self.database_url_env)
        except Exception:  # not parsed here: whatever it is, it is not the stack's
            return False
        return params.get("host") in ("127.0.0.1", "localhost") and str(params.get("port")) == str(self.postgres_port)

    @property
    def kafka_bootstrap(self) -> str:
        return self.kafka_bootstrap_env or self.stack_kafka_bootstrap

    @property
    def database_url(self) -> str:
        return self.database_url_env or f"postgresql://ordersync@127.0.0.1:{self.postgres_port}/ordersync"
