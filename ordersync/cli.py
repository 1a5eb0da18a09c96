"""The one entry point: ``ordersync <command>``. Each command is thin wiring over a component."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from ordersync.runtime import heartbeat, supervision
from ordersync.runtime.logs import configure_logging
from ordersync.runtime.settings import Settings
from ordersync.schemas.topics import TopicNames, Wiring
from ordersync.stack.service import LocalService
from ordersync.users_cli import users


@click.group()
@click.version_option(package_name="ordersync")
def main() -> None:
    """ordersync: sync web-shop orders into a marketing contact database through Kafka."""
    supervision.end_with_supervisor()
    try:
        Settings.from_env()
    except ValueError as exc:  # a bad ORDERSYNC_* value: say which, not a traceback
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


# -- stack -----------------------------------------------------------------------------------------
@main.group()
def stack() -> None:
    """The local Kafka broker and PostgreSQL server (no Docker needed)."""


def _services(settings: Settings, running_too: bool = False) -> list[LocalService]:
    """The local services to manage: those no ORDERSYNC_* variable points away from, and with
    ``running_too`` also those the variables point at while they run (after `eval "$(stack env)"`, `stack
    down` and `stack status` still see the stack as theirs)."""
    from ordersync.stack import LocalKafka, LocalPostgres

    kafka, postgres = LocalKafka(settings), LocalPostgres(settings)
    services: list[LocalService] = []
    if not settings.uses_external_kafka or (running_too and settings.points_at_stack_kafka() and kafka.pid()):
        services.append(kafka)
    if not settings.uses_external_database or (running_too and settings.points_at_stack_database() and postgres.pid()):
        services.append(postgres)
    return services


@stack.command("up")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for each service.")
def stack_up(timeout: float) -> None:
    """Start Kafka and PostgreSQL (harmless if they already run) and wait until both answer."""
    from ordersync.stack import ServiceError

    settings = Settings.from_env()
    services = _services(settings)
    if not services:
        click.echo("ORDERSYNC_KAFKA_BOOTSTRAP and ORDERSYNC_DATABASE_URL are set: nothing local to start.")
    for service in services:
        try:
            service.up(timeout)
        except ServiceError as exc:
            click.echo(f"stack up failed: {exc}", err=True)
            sys.exit(1)
        click.echo(service.status().describe())


@stack.command("down")
def stack_down() -> None:
    """Stop the local services cleanly."""
    for service in reversed(_services(Settings.from_env(), running_too=True)):
        service.down()
        click.echo(f"{service.name}: stopped")


@stack.command("status")
def stack_status() -> None:
    """Say what runs where; exit 1 if something local is not running."""
    settings = Settings.from_env()
    all_up = True
    services = _services(settings, running_too=True)
    for service in services:
        status = service.status()
        all_up &= status.running
        click.echo(status.describe())
    names = {service.name for service in services}
    if "kafka" not in names:
        click.echo(f"kafka      external                {settings.kafka_bootstrap}")
    if "postgres" not in names:
        click.echo("postgres   external                (ORDERSYNC_DATABASE_URL)")
    sys.exit(0 if all_up else 1)


@stack.command("env")
def stack_env() -> None:
    """Print shell lines to point other tools at the stack: eval "$(ordersync stack env)"."""
    settings = Settings.from_env()
    # Quoted for the shell: a password may hold spaces, quotes or $.
    click.echo(f"export ORDERSYNC_KAFKA_BOOTSTRAP={shlex.quote(settings.kafka_bootstrap)}")
    click.echo(f"export ORDERSYNC_DATABASE_URL={shlex.quote(settings.database_url)}")


# -- topics ----------------------------------------------------------------------------------------
@main.group()
def topics() -> None:
    """The topic catalogue (ordersync.schemas.topics) on the Kafka cluster."""


@topics.command("create")
@click.option("--ignore-differences", is_flag=True, help="Exit 0 even if existing topics differ from the catalogue.")
def topics_create(ignore_differences: bool) -> None:
    """Create missing topics (idempotent); report existing ones whose settings differ."""
    from ordersync.topics_admin import create_topics

    report = create_topics(Settings.from_env())
    for name in report.created:
        click.echo(f"created    {name}")
    for name in report.unchanged:
        click.echo(f"ok         {name}")
    for name, diffs in report.differing.items():
        click.echo(f"DIFFERS    {name}: {'; '.join(diffs)}", err=True)
    if report.differing and not ignore_differences:
        click.echo("existing topics differ from the catalogue (use --ignore-differences to accept)", err=True)
        sys.exit(1)


@topics.command("list")
def topics_list() -> None:
    """Show the catalogue's topics with partitions and configs as they are on the cluster."""
    from ordersync.topics_admin import list_topics

    for topic, existing in list_topics(Settings.from_env()):
        if existing is None:
            click.echo(f"{topic.name:<36} MISSING  ({topic.spec.description})")
            continue
        shown = {k: existing.configs.get(k) for k in ("cleanup.policy", "retention.ms", "retention.bytes")}
        configs = " ".join(f"{k}={v}" for k, v in shown.items())
        click.echo(
            f"{topic.name:<36} partitions={existing.partitions} rf={existing.replication_factor} {configs}"
            f"  key={topic.spec.key_format} value={topic.spec.value_subject or 'raw bytes'}"
        )


@main.command("tail")
@click.argument("topic")
@click.option("--from-beginning", is_flag=True, help="Start at the oldest event instead of the newest.")
@click.option("--limit", type=int, default=None, help="Stop after N events.")
@click.option("--idle-timeout", type=float, default=None, help="Stop after this many seconds without events.")
def tail_command(topic: str, from_beginning: bool, limit: int | None, idle_timeout: float | None) -> None:
    """Print TOPIC's events as JSON lines (decimals as strings). TOPIC: short ("orders") or full name."""
    from ordersync.tail import tail

    with contextlib.suppress(KeyboardInterrupt):
        tail(Settings.from_env(), topic, from_beginning=from_beginning, limit=limit, idle_timeout=idle_timeout)


# -- connectors ------------------------------------------------------------------------------------
@main.command("connect")
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--store", "store_ids", multiple=True, help="Only this store (repeatable).")
@click.option(
    "--backfill-only", "mode", flag_value="backfill", default=True, help="Import the history, then exit (default)."
)
@click.option("--follow", "mode", flag_value="follow", help="After the backfill, keep polling for changes.")
@click.option("--full", is_flag=True, help="Forget the cursors and re-import everything.")
def connect_command(config_path: str, store_ids: tuple[str, ...], mode: str, full: bool) -> None:
    """Publish the stores' orders and customers to the raw topics."""
    import asyncio

    from ordersync.producers.run import connect
    from ordersync.runtime.stores import ConfigError, load_stores
    from ordersync.topics_admin import create_topics

    configure_logging()
    try:
        stores = load_stores(config_path)
        if store_ids:
            unknown = set(store_ids) - {s.id for s in stores}
            if unknown:
                raise ConfigError(f"unknown store ids: {sorted(unknown)}")
            stores = [s for s in stores if s.id in store_ids]
        for store in stores:  # fail now, not mid-run, if a secret is missing
            for attr in (
                ("consumer_key_env", "consumer_secret_env") if store.platform == "woocommerce" else ("api_key_env",)
            ):
                store.secret(attr)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    settings = Settings.from_env()
    create_topics(settings)
    try:
        result = asyncio.run(connect(settings, stores, follow=mode == "follow", full=full))
    except Exception as exc:  # not a store's fault (those are retried or reported per store): a bug or Kafka setup
        logging.getLogger(__name__).exception("the connector process failed")
        click.echo(f"error: the connector process failed: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
    dead = f", {result.dead_letters} unreadable documents dead-lettered" if result.dead_letters else ""
    click.echo(f"published {result.orders} orders and {result.customers} customers{dead}")
    for error in result.errors:
        click.echo(f"error: {error}", err=True)
    sys.exit(1 if result.errors else 0)


@main.group()
def webhook() -> None:
    """The WooCommerce webhook receiver."""


@webhook.command("serve")
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8085, show_default=True)
@click.option("--access-log", is_flag=True, help="Log a line per request (costly at sale-day rates).")
def webhook_serve(config_path: str, host: str, port: int, access_log: bool) -> None:
    """Receive signed WooCommerce webhooks at POST /webhooks/woocommerce/{store_id}."""
    import asyncio

    from aiohttp import web
    from aiohttp.log import access_logger

    from ordersync.producers.campaign_events import CampaignWebhook
    from ordersync.producers.publisher import Publisher
    from ordersync.producers.webhook import WebhookReceiver
    from ordersync.producers.woocommerce import WooCommerceSource
    from ordersync.runtime.store_health import WebhookBoard
    from ordersync.runtime.stores import ConfigError, load_stores
    from ordersync.topics_admin import create_topics

    configure_logging()
    settings = Settings.from_env()
    try:
        stores = load_stores(config_path)
        publisher = Publisher(settings.kafka_bootstrap)
        prefix = settings.topic_prefix
        names = TopicNames.with_prefix(prefix)
        receiver = WebhookReceiver(
            stores,
            publisher,
            names.raw_orders,
            names.raw_customers,
            names.dlq,
            board=WebhookBoard.from_env(),
            body_timeout_s=settings.webhook_body_timeout_s,
            linger_s=settings.webhook_linger_ms / 1000,
        )
        secret = settings.campaign_webhook_secret
        campaign_events = CampaignWebhook(
            publisher, names.campaign_events, names.dlq, secret.get_secret_value().encode() if secret else None,
            {store.list_id for store in stores}, body_timeout_s=settings.webhook_body_timeout_s,
        )  # fmt: skip
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    create_topics(settings)

    async def serve() -> None:
        https = {s.id: WooCommerceSource.http_for(s) for s in stores if s.platform == "woocommerce"}
        for store_id, http in https.items():
            await http.__aenter__()
            receiver.sources[store_id] = WooCommerceSource(receiver.stores[store_id], http)
        # aiohttp's access log writes a line per request: off unless asked for (refusals are logged anyway).
        app = receiver.app()
        campaign_events.add_routes(app)
        runner = web.AppRunner(app, access_log=access_logger if access_log else None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        click.echo(f"webhook receiver on http://{host}:{port}/webhooks/woocommerce/<store_id>")
        try:
            await heartbeat.beat_forever()
        finally:
            await runner.cleanup()
            for http in https.values():
                await http.__aexit__()

    asyncio.run(serve())


@main.command("simulate")
@click.argument("platform", type=click.Choice(["woocommerce", "prestashop"]))
@click.option("--port", type=int, required=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--orders", type=int, default=1000, show_default=True, help="Orders in the history.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--rate", type=float, default=0.0, help="New or changed orders per second, live.")
@click.option("--fail-rate", type=float, default=0.0, help="Share of requests answered 429/500.")
@click.option("--latency-ms", type=float, default=0.0, help="Delay added to every API request.")
@click.option("--timezone", default=None, help="The shop's time zone.")
@click.option("--typing", type=click.Choice(["ints", "strings"]), default="ints", help="PrestaShop value typing.")
@click.option("--webhook-url", default=None, help="WooCommerce: deliver signed webhooks here.")
@click.option("--key-env", default=None, help="Env var with the API key (WooCommerce: KEY:SECRET).")
@click.option("--webhook-secret-env", default=None, help="Env var with the webhook secret.")
def simulate_command(
    platform: str, port: int, host: str, orders: int, seed: int, rate: float, fail_rate: float, latency_ms: float, timezone: str | None,
    typing: str, webhook_url: str | None, key_env: str | None, webhook_secret_env: str | None,
) -> None:  # fmt: skip
    """Serve a simulated shop that follows the store's documented API."""
    import asyncio
    import os

    from ordersync.producers.simulators import prestashop, woocommerce
    from ordersync.producers.simulators.faults import Faults

    faults = Faults(random_rate=fail_rate, latency_s=latency_ms / 1000)
    credential = os.environ.get(key_env or "", "") or ("ck_demo:cs_demo" if platform == "woocommerce" else "DEMOKEY")
    if platform == "woocommerce":
        key, _, secret = credential.partition(":")
        wsim = woocommerce.WooCommerceSimulator(
            seed=seed, orders=orders, consumer_key=key, consumer_secret=secret, timezone=timezone or "Europe/Zurich",
            webhook_url=webhook_url, webhook_secret=os.environ.get(webhook_secret_env or "") or None, faults=faults,
        )  # fmt: skip
        click.echo(f"WooCommerce simulator on http://{host}:{port}{woocommerce.API} ({orders} orders, seed {seed})")
        asyncio.run(woocommerce.serve(wsim, host, port, rate))
    else:
        psim = prestashop.PrestaShopSimulator(
            seed=seed,
            orders=orders,
            api_key=credential,
            timezone=timezone or "Europe/Lisbon",
            typing=typing,
            faults=faults,
        )
        click.echo(f"PrestaShop simulator on http://{host}:{port}/api ({orders} orders, seed {seed})")
        asyncio.run(prestashop.serve(psim, host, port, rate))


@main.group()
def contacts() -> None:
    """Contacts of the marketing lists."""


@contacts.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--list", "list_id", required=True, help="The contact list to import into.")
def contacts_import(csv_file: str, list_id: str) -> None:
    """Import contacts from a CSV file (email, first_name, last_name, phone, consent)."""
    from pathlib import Path

    from ordersync.producers.contacts_import import import_csv
    from ordersync.producers.publisher import Publisher
    from ordersync.topics_admin import create_topics

    settings = Settings.from_env()
    create_topics(settings)
    try:
        report = import_csv(
            Path(csv_file), list_id, Publisher(settings.kafka_bootstrap),
            TopicNames.with_prefix(settings.topic_prefix).contacts_import, TopicNames.with_prefix(settings.topic_prefix).dlq,
        )  # fmt: skip
    except (ValueError, UnicodeDecodeError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(f"imported {report.imported} contacts into list {list_id}")
    for reason in report.rejected:
        click.echo(f"rejected {reason} (kept in the dead-letter topic)", err=True)
    sys.exit(1 if report.rejected else 0)


@main.group()
def campaigns() -> None:
    """Campaign events in (sends, holdouts, opens, clicks) and what campaigns brought."""


@campaigns.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--list", "list_id", required=True, help="The contact list the recipients belong to.")
def campaigns_import(csv_file: str, list_id: str) -> None:
    """Import campaign events from a CSV file (type, campaign_id, email, occurred_at, ...)."""
    from pathlib import Path

    from ordersync.producers.campaign_events import import_csv
    from ordersync.producers.publisher import Publisher
    from ordersync.topics_admin import create_topics

    settings = Settings.from_env()
    create_topics(settings)
    names = TopicNames.with_prefix(settings.topic_prefix)
    try:
        report = import_csv(
            Path(csv_file), list_id, Publisher(settings.kafka_bootstrap), names.campaign_events, names.dlq
        )
    except (ValueError, UnicodeDecodeError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(f"imported {report.imported} campaign events into list {list_id}")
    for reason in report.rejected:
        click.echo(f"rejected {reason} (kept in the dead-letter topic)", err=True)
    sys.exit(1 if report.rejected else 0)


@campaigns.command("report")
@click.option("--list", "list_id", default=None, help="Only this contact list.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--window-days", type=click.IntRange(1, 90), default=5, show_default=True,
              help="Days after each send whose orders count towards incremental revenue (5 is kept as a summary; another "
                   "window is computed from the raw events and orders, slow on large lists).")  # fmt: skip
def campaigns_report(list_id: str | None, fmt: str, window_days: int) -> None:
    """Per campaign and currency: reach, attributed revenue, and with a holdout its incremental revenue."""
    import csv
    import json

    import psycopg

    from ordersync.segmentation.campaigns import COLUMNS, as_row, campaign_results, refresh
    from ordersync.segmentation.export import cell, printable

    settings = Settings.from_env()
    try:
        with psycopg.connect(settings.database_url) as conn:
            refresh(conn)
            rows = [as_row(r) for r in campaign_results(conn, list_id, window_days)]
    except psycopg.Error as exc:
        click.echo(f"error: PostgreSQL: {exc}", err=True)
        sys.exit(1)
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
    elif fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows({k: cell(v) for k, v in r.items()} for r in rows)
    else:
        rows = [{k: printable(v) for k, v in r.items()} for r in rows]
        shown = ("campaign", "currency", "recipients", "holdout", "clickers", "orders", "revenue", "revenue_per_recipient",
                 "conversion", "incremental_revenue", "ci_low", "ci_high", "lift", "significant")  # fmt: skip
        widths = {c: max([len(c), *(len(r[c]) for r in rows)]) for c in shown}
        click.echo("  ".join(c.ljust(widths[c]) for c in shown))
        for r in rows:
            click.echo("  ".join(r[c].ljust(widths[c]) for c in shown))
        if not rows:
            click.echo("(no campaign events yet: ordersync campaigns import FILE.csv --list L)")


# -- processor -------------------------------------------------------------------------------------
@main.command("process")
@click.option(
    "--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="stores.toml (status overrides)."
)
@click.option("--app-id", default=None, help="Processor identity (consumer group, state); default {prefix}processor.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="RocksDB state directory.")
@click.option("--web-port", type=int, default=None, help="Serve faust's web/metrics endpoints on this port.")
@click.option(
    "--standby-replicas",
    type=int,
    default=None,
    help="Warm copies of each table on other workers; default 1 on a cluster of three brokers or more, else 0.",
)
@click.option(
    "--output-prefix", default=None, help="Write outputs under this topic prefix (replays); default: the topic prefix."
)
@click.option("--loglevel", default="info", type=click.Choice(["crit", "error", "warn", "info", "debug"]))
def process_command(
    config_path: str | None, app_id: str | None, data_dir: str | None, web_port: int | None, standby_replicas: int | None,
    output_prefix: str | None, loglevel: str,
) -> None:  # fmt: skip
    """Run the processor (a faust worker): normalise orders, join contacts, derive activity."""
    from pathlib import Path

    import faust

    from ordersync.processors.app import ProcessorOptions, create_app, topics_of
    from ordersync.runtime.automations import load_automations
    from ordersync.runtime.stores import load_stores
    from ordersync.topics_admin import create_processor_topics, wait_until_ready

    settings = Settings.from_env()
    wiring = Wiring.with_prefix(settings.topic_prefix, output_prefix)
    app_id = app_id or wiring.processor_group
    # Every topic it reads or writes, internal ones included, before it subscribes (topics_admin.py).
    created, report = create_processor_topics(settings, wiring, app_id)
    for name, diffs in report.differing.items():
        click.echo(f"warning: {name} differs from the catalogue: {'; '.join(diffs)}", err=True)
    stores = load_stores(config_path) if config_path else []
    copies = created[0].replication_factor  # faust creates its changelog and internal topics with as many
    opts = ProcessorOptions(
        bootstrap=settings.kafka_bootstrap,
        topic_prefix=settings.topic_prefix,
        partitions=settings.partitions,
        replication_factor=copies,
        app_id=app_id,
        data_dir=Path(data_dir) if data_dir else settings.stack_dir / "processor" / app_id,
        status_overrides={s.id: s.status_overrides for s in stores},
        consent_keys={s.id: s.consent_meta_key for s in stores if s.consent_meta_key},
        web_port=web_port,
        standby_replicas=standby_replicas if standby_replicas is not None else (1 if copies >= 3 else 0),
        delivery_timeout_ms=settings.delivery_timeout_ms,
        output_prefix=output_prefix,
        automations=load_automations(config_path),
        replay=output_prefix is not None,  # outputs beside the live ones: a replay of history
    )
    opts.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(opts)
    unwired = topics_of(app) - {t.name for t in created}
    if unwired:  # a topic faust would subscribe to without its settings, perhaps before it exists
        click.echo(f"error: the processor uses topics the wiring does not create: {sorted(unwired)}", err=True)
        sys.exit(1)
    try:
        wait_until_ready(settings, sorted(topics_of(app)), app_id)
    except TimeoutError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    # faust and aiokafka log a debug line per message; with only the root level set (what the worker
    # does) each still builds a LogRecord: ~6% of the processor's time in a profile.
    level = logging.getLevelName({"crit": "CRITICAL", "warn": "WARNING"}.get(loglevel, loglevel.upper()))
    for name in ("faust", "aiokafka", "mode"):
        logging.getLogger(name).setLevel(level)
    faust.Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()


# -- sink / database --------------------------------------------------------------------------------
@main.group()
def db() -> None:
    """The PostgreSQL database."""


@db.command("migrate")
def db_migrate() -> None:
    """Apply the numbered SQL migrations that are missing (idempotent)."""
    from ordersync.sinks.migrate import migrate

    applied = migrate(Settings.from_env().database_url)
    for m in applied:
        click.echo(f"applied {m.version:03d}_{m.name}")
    if not applied:
        click.echo("database is up to date")


@main.command("refresh")
@click.option("--once", is_flag=True, help="One pass, then exit (prints what it recomputed).")
@click.option("--every", "every_s", type=float, default=5.0, show_default=True, help="Seconds between passes.")
def refresh_command(once: bool, every_s: float) -> None:
    """Keep the derived tables current: Insights' day summaries, RFM bounds, campaign summaries."""
    import signal
    import threading

    import psycopg

    from ordersync.segmentation import refresher

    configure_logging()
    settings = Settings.from_env()
    if once:
        with psycopg.connect(settings.database_url) as conn:
            done = refresher.refresh_all(conn)
        click.echo(", ".join(f"{what}: {n}" for what, n in done.items()))
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def beat() -> None:  # the supervisor's liveness beat, beside the loop: one pass may take minutes
        while not stop.wait(1.0):
            heartbeat.beat()

    threading.Thread(target=beat, daemon=True).start()
    refresher.run(settings.database_url, stop, every_s)


@main.command("sink")
@click.option("--consumer-name", default=None, help="Kafka group id and offsets key; default {prefix}sink.")
@click.option("--batch-size", default=5000, show_default=True)
@click.option("--idle-exit", type=float, default=None, help="Exit after this many seconds without messages.")
@click.option(
    "--input-prefix",
    default=None,
    help="Read campaign events under this prefix (a replay's sink); default: the prefix.",
)
def sink_command(consumer_name: str | None, batch_size: int, idle_exit: float | None, input_prefix: str | None) -> None:
    """Write orders, activity and contacts into PostgreSQL, exactly once."""

    from ordersync.sinks.consumer import PostgresSink, SinkAlreadyRunning, SinkOptions

    configure_logging()
    settings = Settings.from_env()
    opts = SinkOptions(
        bootstrap=settings.kafka_bootstrap,
        database_url=settings.database_url,
        topic_prefix=settings.topic_prefix,
        consumer_name=consumer_name or Wiring.with_prefix(settings.topic_prefix).sink_group,
        batch_size=batch_size,
        input_prefix=input_prefix,
    )
    try:
        totals = PostgresSink(opts).run(idle_exit_s=idle_exit)
    except SinkAlreadyRunning as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(" ".join(f"{k}={v}" for k, v in totals.items()))


@main.group()
def triggers() -> None:
    """Automation triggers: deliver them to the tool that sends the messages."""


def _audit_destination(settings: Settings, name: str, url: str) -> None:
    """Record in the audit trail when destination ``name`` starts sending somewhere new (the URL without
    its credentials and query, which may hold tokens)."""
    import psycopg
    from yarl import URL

    from ordersync.runtime import audit

    shown = str(URL(url).with_user(None).with_query(None).with_fragment(None))
    try:
        with psycopg.connect(settings.database_url, connect_timeout=5, autocommit=True) as conn:
            last = audit.last_detail(conn, audit.TRIGGER_DESTINATION, name=name)
            if last is None or last.get("url") != shown:
                audit.record(conn, "forwarder", audit.TRIGGER_DESTINATION, name=name, url=shown,
                             was=last.get("url") if last else None)  # fmt: skip
    except psycopg.Error as exc:  # the audit is for the admins' page: forwarding goes on without it
        logging.getLogger(__name__).warning("could not audit the trigger destination: %s", type(exc).__name__)


@triggers.command("forward")
@click.option("--url", default=None, help="Where to POST each trigger; default ORDERSYNC_TRIGGERS_URL.")
@click.option("--name", default="default", show_default=True, help="The destination's name (consumer group, health).")
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Seconds to wait for each answer.")
@click.option("--idle-exit", type=float, default=None, help="Exit after this many seconds without triggers.")
def triggers_forward(url: str | None, name: str, timeout: float, idle_exit: float | None) -> None:
    """POST every trigger as signed JSON, in order, retrying; dead-letter it after the last attempt."""
    import signal
    import time

    import psycopg

    from ordersync.sinks.forward import (
        SAVE_HEALTH,
        Destination,
        ForwardHealth,
        TriggerForwarder,
        plain_http_elsewhere,
    )

    configure_logging()
    settings = Settings.from_env()
    url = url or settings.triggers_url
    if not url or not url.startswith(("http://", "https://")):
        click.echo("error: give --url or ORDERSYNC_TRIGGERS_URL, an http(s) URL", err=True)
        sys.exit(2)
    if settings.triggers_secret is None:
        click.echo("error: ORDERSYNC_TRIGGERS_SECRET is not set: triggers are always signed", err=True)
        sys.exit(2)
    if plain_http_elsewhere(url):
        click.echo(
            "warning: the trigger URL is plain http:// to another machine: triggers carry personal data"
            " unencrypted, and a redirect to https:// is not followed (each such trigger is dead-lettered)",
            err=True,
        )
    destination = Destination(
        name, url, settings.triggers_secret.get_secret_value().encode(), settings.triggers_attempts, timeout,
        in_flight=settings.triggers_in_flight,
    )  # fmt: skip
    wiring = Wiring.with_prefix(settings.topic_prefix)
    last_saved = 0.0

    def save(health: ForwardHealth, force: bool = False) -> None:
        nonlocal last_saved
        if not force and time.monotonic() - last_saved < 1.0:
            return
        last_saved = time.monotonic()
        try:
            with psycopg.connect(settings.database_url, connect_timeout=5) as conn:
                conn.execute(SAVE_HEALTH, (name, health.delivered, health.dead_lettered, health.last_success,
                                           health.failing_since, health.last_error))  # fmt: skip
        except psycopg.Error as exc:  # health is for the page: forwarding goes on without it
            logging.getLogger(__name__).warning("could not save the destination's health: %s", type(exc).__name__)

    _audit_destination(settings, name, url)
    forwarder = TriggerForwarder(
        settings.kafka_bootstrap,
        wiring.outputs.triggers,
        wiring.outputs.dlq,
        wiring.forwarder_group(name),
        destination,
        on_health=save,
    )

    def stop(*_: object) -> None:
        forwarder.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        health = forwarder.run(idle_exit_s=idle_exit)
    except InterruptedError:
        health = forwarder.health
    save(health, force=True)
    click.echo(f"delivered={health.delivered} dead_lettered={health.dead_lettered}")


@main.command("run")
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--webhook-port", type=int, default=8085, show_default=True, help="0: no webhook receiver.")
@click.option("--metrics-port", type=int, default=9108, show_default=True, help="/health and /metrics.")
@click.option("--log-dir", type=click.Path(file_okay=False), default=None, help="Children's logs; default .stack/run/.")
def run_command(config_path: str, webhook_port: int, metrics_port: int, log_dir: str | None) -> None:
    """Run connectors, webhook receiver, processor and sink, supervised (restarted if one dies)."""
    import signal
    from pathlib import Path

    from ordersync.runtime.stores import ConfigError, load_stores
    from ordersync.supervisor import Child, Metrics, Supervisor, serve_http
    from ordersync.topics_admin import create_topics

    configure_logging()
    settings = Settings.from_env()
    try:
        stores = load_stores(config_path)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    create_topics(settings)
    children = [
        Child("processor", ["process", "--config", config_path, "--loglevel", "warn"]),
        Child("sink", ["sink"]),
        Child("connectors", ["connect", "--config", config_path, "--follow"]),
        Child("refresher", ["refresh"]),
    ]
    if settings.triggers_url:
        children.append(Child("triggers", ["triggers", "forward"]))
    if webhook_port and any(s.platform == "woocommerce" and s.webhook_secret_env for s in stores):
        children.append(Child("webhooks", ["webhook", "serve", "--config", config_path, "--port", str(webhook_port)]))
    supervisor = Supervisor(
        children,
        Path(log_dir) if log_dir else settings.stack_dir / "run",
        store_failing_after_s=settings.store_failing_after_s,
    )
    p = settings.topic_prefix
    groups = Wiring.with_prefix(p).groups()
    server = serve_http(
        supervisor, Metrics(supervisor, settings.kafka_bootstrap, settings.database_url, p, groups), metrics_port
    )
    click.echo(f"health and metrics on http://127.0.0.1:{metrics_port}/health and /metrics")
    signal.signal(signal.SIGTERM, supervisor.stop)
    signal.signal(signal.SIGINT, supervisor.stop)
    try:
        supervisor.watch()
    finally:
        supervisor.shutdown()
        server.shutdown()


@main.command("demo")
@click.option("--orders", type=int, default=5000, show_default=True, help="Orders of history across the two shops.")
@click.option("--rate", type=float, default=5.0, show_default=True, help="Live new/changed orders per second per shop.")
@click.option("--live-seconds", type=float, default=30.0, show_default=True, help="How long to watch live orders.")
@click.option(
    "--serve/--no-serve",
    default=None,
    help="End by serving the web app on the demo's data (default: when run from a terminal).",
)
@click.option("--port", type=int, default=8080, show_default=True, help="The web app's port.")
def demo_command(orders: int, rate: float, live_seconds: float, serve: bool | None, port: int) -> None:
    """See the whole pipeline work: two simulated shops → Kafka → processor → PostgreSQL, then a summary."""

    from ordersync.demo import run_demo

    configure_logging(logging.WARNING)
    if serve is None:
        serve = sys.stdin.isatty() and sys.stdout.isatty()
    sys.exit(run_demo(Settings.from_env(), orders, rate, live_seconds, port if serve else None))


@main.command("web")
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Beyond loopback only with ORDERSYNC_WEB_USER/PASSWORD."
)
@click.option("--port", type=int, default=8080, show_default=True)
@click.option(
    "--health-file",
    type=click.Path(dir_okay=False),
    default=lambda: os.environ.get("ORDERSYNC_STORE_HEALTH_FILE"),
    help="The connectors' store health file (ordersync run writes <log dir>/stores.health.json).",
)
@click.option(
    "--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="stores.toml: its automation rules."
)
def web_command(host: str, port: int, health_file: str | None, config_path: str | None) -> None:
    """Serve the marketers' web app: contacts, segments, insights, store health (docs/web.md)."""
    import psycopg
    import uvicorn

    from ordersync.sinks.migrate import missing
    from ordersync.web.accounts import any_user
    from ordersync.web.app import create_app
    from ordersync.web.auth import Access

    settings = Settings.from_env()
    problem = Access.from_settings(settings).problem(host, accounts_in_database=True)
    if problem:
        click.echo(f"error: {problem}", err=True)
        sys.exit(2)
    configure_logging()
    with psycopg.connect(settings.database_url) as conn:
        accounts_in_database = any_user(conn)
    problem = Access.from_settings(settings).problem(host, accounts_in_database)
    if problem:
        # The pages show personal data: refuse rather than expose it.
        click.echo(f"error: {problem}", err=True)
        sys.exit(2)
    not_applied = missing(settings.database_url)
    if not_applied:
        click.echo(
            f"error: the database lacks {len(not_applied)} migration(s) (the newest: {not_applied[-1].name}):"
            " run `ordersync db migrate` (or start `ordersync run`, whose sink migrates it) first",
            err=True,
        )
        sys.exit(2)
    click.echo(f"ordersync web app on http://{host}:{port}/ (Ctrl-C stops it)")
    from ordersync.runtime.automations import load_automations

    app = create_app(
        settings, Path(health_file) if health_file else None, host, load_automations(config_path), accounts_in_database
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=False)


@main.command("replay")
@click.option("--target-database", required=True, help="PostgreSQL URL of the database to rebuild (migrated if new).")
@click.option(
    "--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="stores.toml (status maps)."
)
@click.option(
    "--from", "since", default=None, help="Replay raw events from this ISO timestamp instead of the beginning."
)
@click.option(
    "--verify", is_flag=True, help="Then compare the rebuilt database with the live one; exit 1 on a difference."
)
@click.option("--timeout", type=float, default=3600, show_default=True)
def replay_command(
    target_database: str, config_path: str | None, since: str | None, verify: bool, timeout: float
) -> None:
    """Rebuild orders, activity and contacts from the raw topics into TARGET with a fresh processor."""
    import datetime as dt

    from ordersync.replay import run_replay
    from ordersync.sinks.verify import compare

    settings = Settings.from_env()
    start = (
        dt.datetime.fromisoformat(since).replace(tzinfo=dt.UTC)
        if since and "+" not in since
        else (dt.datetime.fromisoformat(since) if since else None)
    )
    try:
        plan = run_replay(settings, target_database, config=config_path, since=start, timeout_s=timeout)
    except (RuntimeError, TimeoutError) as exc:
        click.echo(f"replay failed: {exc}", err=True)
        sys.exit(1)
    click.echo(f"replay {plan.replay_id} complete into the target database (outputs under {plan.output_prefix})")
    if not verify:
        return
    results = compare(settings.database_url, target_database)
    click.echo(f"{'table':<22}{'live rows':>12}{'rebuilt rows':>14}  checksum")
    for r in results:
        click.echo(f"{r.table:<22}{r.live_count:>12}{r.rebuilt_count:>14}  {'equal' if r.equal else 'DIFFERENT'}")
    if not all(r.equal for r in results):
        click.echo("the rebuilt database differs from the live one", err=True)
        sys.exit(1)


# -- marketers' views -------------------------------------------------------------------------------
@main.command("segment")
@click.option("--file", "segment_file", type=click.File(), help="Segment document (JSON), '-' for stdin.")
@click.option("--json", "segment_json", help="Segment document inline (JSON).")
@click.option("--saved", "saved_name", help="A segment saved in the web app, by name (its list unless --list).")
@click.option("--list", "list_id", help="Only contacts of this list.")
@click.option("--ordered-last-days", type=int, help="Ordered in the last N days.")
@click.option("--ordered-from", help="Ordered on or after this date (ISO).")
@click.option("--ordered-to", help="Ordered before this date (ISO).")
@click.option("--min-orders", type=int, help="At least N orders (see --status).")
@click.option("--spent-over", help="Spent more than this amount (net of refunds, needs --currency).")
@click.option("--aov-over", help="Average order value above this amount (needs --currency).")
@click.option("--currency", help="ISO currency for amount and RFM conditions.")
@click.option("--product", help="Bought this product id.")
@click.option("--sku", help="Bought this SKU.")
@click.option("--product-name", help="Bought a product whose name contains this text.")
@click.option("--category", help="Bought from this category.")
@click.option("--status", help="Has an order in this status (with --min-orders: counts only those).")
@click.option("--abandoned-hours", type=int, help="Has a PENDING/CREATED order older than N hours, no COMPLETED since.")
@click.option("--lapsed-days", type=int, help="Ordered before, but not in the last N days.")
@click.option("--rfm", help="RFM code, R then F then M, e.g. 555 (in --currency, or in any; docs/rfm.md).")
@click.option("--rfm-r", help="Recency score: 4, 4+ (4 or 5), 2- (1 or 2) or 2-4.")
@click.option("--rfm-f", help="Frequency score, as --rfm-r.")
@click.option("--rfm-m", help="Monetary score, as --rfm-r.")
@click.option(
    "--consent",
    type=click.Choice(["given", "withdrawn", "unknown"]),
    help="Only contacts whose marketing consent is this (always required, also with --any).",
)
@click.option("--any", "match_any", is_flag=True, help="Flags combine with OR instead of AND.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--count", "count_only", is_flag=True, help="Print only the number of contacts.")
def segment_command(**kw: Any) -> None:
    """Contacts matching a segment: a JSON document and/or flags (see docs/segments.md)."""
    from ordersync.segment_cli import run_segment

    sys.exit(run_segment(Settings.from_env(), **kw))


@main.command("contact")
@click.argument("email")
@click.option("--list", "list_id", required=True, help="The contact list.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")
def contact_command(email: str, list_id: str, as_json: bool) -> None:
    """A contact, their orders (with items) and their activity timeline, newest first."""
    import psycopg

    from ordersync.schemas.json_view import to_json
    from ordersync.sinks.contact_view import load, render_text

    with psycopg.connect(Settings.from_env().database_url) as conn:
        view = load(conn, list_id, email)
    if view is None:
        click.echo(f"no contact {email!r} in list {list_id!r}", err=True)
        sys.exit(1)
    click.echo(to_json(view) if as_json else render_text(view))


main.add_command(users)

if __name__ == "__main__":
    main()
