"""``ordersync demo``: the whole pipeline on this machine, against two simulated shops.

Starts the local stack, a WooCommerce and a PrestaShop simulator with a history that keep taking and
changing orders (WooCommerce also delivers signed webhooks), and the supervised pipeline (connectors,
webhook receiver, processor, sink). Shows progress, waits for the history to land, watches live orders
for a while, then prints a summary. Ctrl-C stops everything cleanly.
"""

from __future__ import annotations

import datetime as dt
import secrets
import socket
import statistics
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import psycopg

from ordersync.catchup import wait_until_drained
from ordersync.runtime.settings import Settings, without_password
from ordersync.schemas.topics import Wiring
from ordersync.segmentation import build_query
from ordersync.sinks.contact_view import load, render_text
from ordersync.supervisor import Child, Supervisor
from ordersync.topics_admin import create_topics

DEMO_DB = "ordersync_demo"
EXAMPLE_SEGMENTS: dict[str, dict[str, Any]] = {
    "ordered in the last 30 days": {"ordered": {"last_days": 30}},
    "spent more than 200 EUR": {"spent": {"op": ">", "value": 200, "currency": "EUR"}},
    "bought from category Shoes": {"bought": {"category": "Shoes"}},
    "pending order older than 2 hours, nothing completed since": {"abandoned_checkout": {"hours": 2}},
    "3 or more orders, ordered nothing in 90 days": {
        "all": [{"order_count": {"op": ">=", "value": 3}}, {"lapsed": {"days": 90}}]
    },
}


# Orders matched to a contact that is not (yet) in PostgreSQL.
CONTACTLESS_ORDERS = (
    "SELECT count(*) FROM orders o WHERE o.contact_id IS NOT NULL"
    " AND NOT EXISTS (SELECT 1 FROM contacts c WHERE c.contact_id = o.contact_id)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, deadline_s: float) -> bool:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.3)
    return False


def fresh_database(settings: Settings, name: str) -> str:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urllib.parse.urlsplit(settings.database_url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def query_one(url: str, sql: str, params: tuple[Any, ...] = ()) -> Any:
    try:
        with psycopg.connect(url) as conn:
            row = conn.execute(sql, params).fetchone()
            return row[0] if row else None
    except psycopg.Error:
        return None


@dataclass
class DemoSetup:
    """Two simulated shops and the pipeline that syncs them, ready to hand to a Supervisor."""

    prefix: str
    db_url: str
    env: dict[str, str]
    config: Path
    work: Path
    woo_port: int
    ps_port: int
    woo_orders: int
    ps_orders: int
    sims: list[Child]
    pipeline: list[Child]


def prepare(settings: Settings, orders: int, rate: float, database: str = DEMO_DB, name: str = "demo") -> DemoSetup:
    """Start the local stack (unless ORDERSYNC_* point elsewhere), fresh topics and a fresh database,
    and describe the simulators (sharing ``orders`` 3:2, each changing ``rate`` orders/s) and the pipeline."""
    from ordersync.stack import LocalKafka, LocalPostgres

    if not settings.uses_external_kafka:
        LocalKafka(settings).up()
    if not settings.uses_external_database:
        LocalPostgres(settings).up()
    prefix = dt.datetime.now(dt.UTC).strftime(f"{name}-%Y%m%d%H%M%S.")
    run_settings = settings.with_prefix(prefix)
    create_topics(run_settings)
    db_url = fresh_database(settings, database)
    work = settings.stack_dir / name
    work.mkdir(parents=True, exist_ok=True)
    woo_port, ps_port, hook_port = free_port(), free_port(), free_port()
    woo_orders, ps_orders = orders * 3 // 5, orders - orders * 3 // 5
    key, secret, ps_key, hook = (secrets.token_hex(12) for _ in range(4))
    env = {
        "ORDERSYNC_TOPIC_PREFIX": prefix, "ORDERSYNC_DATABASE_URL": db_url, "ORDERSYNC_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "DEMO_WOO_KEY": key, "DEMO_WOO_SECRET": secret, "DEMO_WOO_CRED": f"{key}:{secret}", "DEMO_PS_KEY": ps_key, "DEMO_HOOK": hook,
    }  # fmt: skip
    config = work / "stores.toml"
    config.write_text(
        f'[[store]]\nid = "woo"\nplatform = "woocommerce"\nbase_url = "http://127.0.0.1:{woo_port}"\nlist_id = "1"\n'
        'timezone = "Europe/Zurich"\npoll_interval_s = 5\nconsumer_key_env = "DEMO_WOO_KEY"\n'
        'consumer_secret_env = "DEMO_WOO_SECRET"\nwebhook_secret_env = "DEMO_HOOK"\n\n'
        f'[[store]]\nid = "ps"\nplatform = "prestashop"\nbase_url = "http://127.0.0.1:{ps_port}"\nlist_id = "1"\n'
        'timezone = "Europe/Lisbon"\npoll_interval_s = 0.5\napi_key_env = "DEMO_PS_KEY"\n\n'
        # Timers shortened so that they fall due while the demo watches (real ones: hours and days).
        '[attribution."1"]\n'  # orders credited to campaigns: last click within 5 days, else last open
        '[automations."1"]\nabandoned_after_h = 0.005\nwin_back_after_days = 0\nvip_spent = { EUR = "2500" }\n'
        '[[automations."1".upsell]]\nname = "shoe-care"\nwhen_categories = ["Shoes"]\n'
        'suggest_categories = ["Accessories"]\ndelay_h = 0.003\n'
    )
    sims = [
        Child("sim-woocommerce", ["simulate", "woocommerce", "--port", str(woo_port), "--orders", str(woo_orders), "--seed", "1",
                                  "--rate", str(rate), "--key-env", "DEMO_WOO_CRED", "--webhook-secret-env", "DEMO_HOOK",
                                  "--webhook-url", f"http://127.0.0.1:{hook_port}/webhooks/woocommerce/woo"], env, beats=False),
        Child("sim-prestashop", ["simulate", "prestashop", "--port", str(ps_port), "--orders", str(ps_orders), "--seed", "2",
                                 "--rate", str(rate), "--typing", "strings", "--key-env", "DEMO_PS_KEY"], env, beats=False),
    ]  # fmt: skip
    pipeline = [
        Child(
            "processor",
            [
                "process",
                "--config",
                str(config),
                "--loglevel",
                "warn",
                "--data-dir",
                str(work / "processor-state" / prefix),
            ],
            env,
        ),
        Child("sink", ["sink"], env),
        Child("webhooks", ["webhook", "serve", "--config", str(config), "--port", str(hook_port)], env),
        Child("connectors", ["connect", "--config", str(config), "--follow"], env),
        Child("refresher", ["refresh"], env),
    ]
    return DemoSetup(prefix, db_url, env, config, work, woo_port, ps_port, woo_orders, ps_orders, sims, pipeline)


def run_demo(settings: Settings, orders: int, rate: float, live_seconds: float, serve_port: int | None = None) -> int:
    setup = prepare(settings, orders, rate)
    prefix, db_url, config, work = setup.prefix, setup.db_url, setup.config, setup.work
    woo_port, ps_port, woo_orders, ps_orders = setup.woo_port, setup.ps_port, setup.woo_orders, setup.ps_orders
    sims, pipeline = setup.sims, setup.pipeline
    began = dt.datetime.now(dt.UTC)
    problems: list[str] = []
    supervisor = Supervisor(sims + pipeline, work / "logs" / prefix.rstrip("."))
    click.echo(
        f"ordersync demo: {woo_orders} WooCommerce + {ps_orders} PrestaShop orders of history, {rate}/s live changes per shop"
    )
    click.echo(f"logs in {supervisor.log_dir}")
    watcher = threading.Thread(target=supervisor.watch, daemon=True)
    watcher.start()
    try:
        if not (wait_port(woo_port, 300) and wait_port(ps_port, 300)):
            click.echo("the simulators did not start; see their logs", err=True)
            return 1
        started = time.monotonic()
        while True:
            landed = query_one(db_url, "SELECT count(*) FROM orders") or 0
            activity = query_one(db_url, "SELECT count(*) FROM activity") or 0
            rate_now = landed / max(1e-6, time.monotonic() - started)
            click.echo(
                f"\r  history: {landed}/{orders} orders in PostgreSQL ({rate_now:,.0f}/s), {activity} activity events   ",
                nl=False,
            )
            if landed >= orders:
                break
            time.sleep(2)
        click.echo(f"\n  history landed in {time.monotonic() - started:.0f} s; waiting for its contacts")
        # Contacts leave the processor after a second hop, so they land after the orders: campaigns are
        # sent to list 1's contacts, which must all be there first.
        if not wait_until(lambda: query_one(db_url, CONTACTLESS_ORDERS) == 0, 300):
            problems.append(f"{query_one(db_url, CONTACTLESS_ORDERS)} orders still name a contact that never landed")
        campaigns = send_campaigns(db_url, settings.with_prefix(prefix), work)
        click.echo(
            f"  campaigns sent (imported as campaign events): {campaigns.imported} events for {campaigns.contacts} contacts"
        )
        click.echo(f"  watching live orders for {live_seconds:.0f} s")
        live_from = dt.datetime.now(dt.UTC)
        time.sleep(live_seconds)
        # Drain: the stores' side stops, then the processor and the sink finish what is in the topics.
        supervisor.retire({child.name for child in sims} | {"connectors", "webhooks"})
        wiring = Wiring.with_prefix(prefix)
        left = wait_until_drained(
            settings.with_prefix(prefix), wiring, db_url, processor_group=wiring.processor_group,
            sink_name=wiring.sink_group, deadline_s=300,
        )  # fmt: skip
        if not left.done:
            problems.append(
                f"the pipeline did not catch up within 300 s: {left.processor_behind} records not processed,"
                f" {left.sink_behind} not written to PostgreSQL"
            )
        problems += summary(db_url, live_from, prefix, campaigns, began)
    except KeyboardInterrupt:
        click.echo("\ninterrupted: stopping")
        return 130
    finally:
        supervisor.stop()
        supervisor.shutdown(grace_s=30)
    if problems:
        click.echo("\nThe demo did not do its whole job:", err=True)
        for problem in problems:
            click.echo(f"  - {problem}", err=True)
        click.echo(f"logs in {supervisor.log_dir}", err=True)
        return 1
    if serve_port is not None:
        serve(settings.model_copy(update={"database_url_env": db_url, "topic_prefix": prefix}),
              supervisor.store_health_file, serve_port, config)  # fmt: skip
    return 0


def wait_until(condition: Callable[[], bool], deadline_s: float) -> bool:
    end = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(1)
    return True


@dataclass(frozen=True)
class CampaignsSent:
    imported: int
    contacts: int
    refused: int


def send_campaigns(db_url: str, settings: Settings, work: Path) -> CampaignsSent:
    """Two campaigns to list 1's contacts, as a sending platform's export would say, an hour ago: "Autumn
    sale" to a third of them with another third held out (a third of the recipients click), "Newsletter"
    to the rest (half of them open). The live orders that follow from these contacts are credited to them."""
    import csv

    from ordersync.producers.campaign_events import import_csv
    from ordersync.producers.publisher import Publisher
    from ordersync.schemas.topics import TopicNames

    with psycopg.connect(db_url) as conn:
        emails = [
            r[0] for r in conn.execute("SELECT email FROM contacts WHERE list_id = '1' ORDER BY contact_id LIMIT 1500")
        ]
    sent = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
    path = work / "campaign-events.csv"
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["type", "campaign_id", "campaign_name", "email", "occurred_at", "holdout"])
        split = len(emails) * 2 // 3
        for i, email in enumerate(emails[:split]):
            holdout = i % 2 == 1
            out.writerow(["send", "autumn", "Autumn sale", email, sent.isoformat(), holdout])
            if not holdout and i % 3 == 0:
                out.writerow(
                    ["click", "autumn", "Autumn sale", email, (sent + dt.timedelta(minutes=20)).isoformat(), ""]
                )
        for i, email in enumerate(emails[split:]):
            out.writerow(["send", "news", "Newsletter", email, sent.isoformat(), ""])
            if i % 2 == 0:
                out.writerow(["open", "news", "Newsletter", email, (sent + dt.timedelta(minutes=30)).isoformat(), ""])
    names = TopicNames.with_prefix(settings.topic_prefix)
    report = import_csv(path, "1", Publisher(settings.kafka_bootstrap), names.campaign_events, names.dlq)
    return CampaignsSent(report.imported, len(emails), len(report.rejected))


def campaigns_summary(conn: psycopg.Connection[Any], sent: CampaignsSent) -> list[str]:
    """Revenue per campaign: credited to it (attributed) and, with a holdout, what sending added."""
    from ordersync.segmentation.campaigns import campaign_results, refresh

    refresh(conn)
    problems = []
    stored = conn.execute("SELECT count(*) FROM campaign_events WHERE list_id = '1'").fetchone()
    if sent.imported == 0 or stored is None or stored[0] < sent.imported:
        problems.append(f"{sent.imported} campaign events imported, {stored[0] if stored else 0} in PostgreSQL")
    click.echo("\nCampaigns (live orders credited to the last click, else open; incremental = sent vs holdout)")
    for r in campaign_results(conn, "1"):
        inc = r.incremental
        added = (
            f"incremental {inc.incremental_revenue:,.2f} (95 % interval {inc.low:,.2f} to {inc.high:,.2f} per recipient,"
            f" {'significant' if inc.significant else 'not significant'})"
            if inc
            else "no holdout"
        )
        click.echo(
            f"  {r.name or r.campaign_id:<12} {r.recipients:>4} sent, {r.holdout:>4} held out, {r.clickers:>3} clicked:"
            f" {r.orders:>3} orders credited, {r.revenue:>10,.2f} {r.currency or ''}; {added}"
        )
    return problems


def triggers_summary(conn: psycopg.Connection[Any], began: dt.datetime) -> list[str]:
    """Automation triggers by kind: only live changes fire (docs/contract.md "Triggers"). A trigger
    dated before the demo began would have come from a store change of the history: there must be none."""
    click.echo("\nAutomation triggers fired (live changes only; timers shortened to seconds for the demo)")
    fired = conn.execute("SELECT kind, count(*) FROM triggers GROUP BY 1 ORDER BY 1").fetchall()
    for kind, n in fired:
        click.echo(f"  {n:>6}  {kind}")
    if not fired:
        click.echo("       0  (no live change fired one yet)")
    # fired_at is the store's time of the change (or a timer's due time), which a live change to an old
    # order puts in the past: what shows history firing is a trigger about an order no live change touched.
    from_history = conn.execute(
        "SELECT count(*) FROM triggers t JOIN orders o USING (store_id, source_order_id) WHERE o.modified_at < %s",
        (began,),
    ).fetchone()
    click.echo(f"  {from_history[0] if from_history else 0:>6}  fired by the history import (must be 0)")
    withheld = conn.execute("SELECT kind, count(*) FROM suppressed_triggers GROUP BY 1 ORDER BY 1").fetchall()
    shown = ", ".join(f"{n} {kind}" for kind, n in withheld) or "none"
    click.echo(f"  withheld for lack of marketing consent (never sent): {shown}")
    problems = [] if fired else ["no automation trigger fired"]
    if from_history and from_history[0]:
        problems.append(f"{from_history[0]} triggers fired for orders of the history")
    return problems


def serve(settings: Settings, health_file: Path, port: int, config: Path) -> None:
    """The web app on the demo's data until Ctrl-C."""
    import psycopg
    import uvicorn

    from ordersync.runtime.automations import load_automations
    from ordersync.segmentation import refresher
    from ordersync.web.app import create_app

    click.echo(f"\nThe web app on the demo's data: http://127.0.0.1:{port}/  (Ctrl-C stops it)")
    with psycopg.connect(settings.database_url) as conn:  # the pipeline (and its refresher) has stopped
        refresher.refresh_all(conn)
    app = create_app(settings, health_file, automation_rules=load_automations(config))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def summary(
    db_url: str, live_from: dt.datetime, prefix: str, campaigns: CampaignsSent, began: dt.datetime
) -> list[str]:
    """Prints what the pipeline did; returns what it should have done and did not (empty: all done)."""
    with psycopg.connect(db_url) as conn:
        problems = triggers_summary(conn, began)
        problems += campaigns_summary(conn, campaigns)
        contacts = conn.execute("SELECT count(*) FROM contacts").fetchone()
        if not contacts or not contacts[0]:
            problems.append("no contact reached PostgreSQL")
        click.echo("\nOrders per normalised status per store")
        rows = conn.execute(
            "SELECT store_id, status, count(*), sum(net_total) FILTER (WHERE currency = 'EUR') FROM orders WHERE NOT deleted"
            " GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
        for store, status, n, eur in rows:
            click.echo(f"  {store:<5} {status:<10} {n:>6} orders   net {eur or 0:>12,.2f} EUR")
        matched = conn.execute("SELECT count(*) FILTER (WHERE matched), count(*) FROM orders").fetchone()
        if matched:
            click.echo(
                f"  {matched[0]} of {matched[1]} orders matched to a contact (the rest have no e-mail and are kept, flagged)"
            )
        click.echo("\nExample segments (list 1)")
        for name, segment in EXAMPLE_SEGMENTS.items():
            query, params = build_query(segment, list_id="1", count=True)
            row = conn.execute(query, params).fetchone()
            click.echo(f"  {row[0] if row else 0:>6} contacts  {name}")
            if not row or not row[0]:
                problems.append(f"the example segment '{name}' is empty")
        email = conn.execute(
            "SELECT c.email FROM contacts c JOIN orders o USING (contact_id) GROUP BY c.email ORDER BY count(*) DESC, c.email LIMIT 1"
        ).fetchone()
        if email:
            view = load(conn, "1", email[0])
            if view:
                click.echo("\nOne contact, with their orders and timeline\n")
                click.echo(
                    "\n".join("  " + line for line in render_text(view, max_orders=3, max_activity=8).splitlines())
                )
        lat = [
            float(r[0])
            for r in conn.execute(
                "SELECT extract(epoch FROM synced_at - modified_at) FROM orders WHERE modified_at >= %s", (live_from,)
            ).fetchall()
        ]
    click.echo(
        "\nEnd-to-end latency of live orders (store modification → PostgreSQL row; store times have 1 s resolution)"
    )
    if len(lat) >= 2:
        q = statistics.quantiles(lat, n=100)
        click.echo(
            f"  {len(lat)} orders: p50 {q[49]:.2f} s, p95 {q[94]:.2f} s, p99 {q[98]:.2f} s, max {max(lat):.2f} s"
        )
    else:
        click.echo(f"  only {len(lat)} live orders were measured")
    click.echo("\nTry next (the demo's data stays in database ordersync_demo):")
    shown = without_password(db_url)
    click.echo(f"  export ORDERSYNC_DATABASE_URL={shown} ORDERSYNC_TOPIC_PREFIX={prefix}")
    if shown != db_url:
        click.echo("  (the password is not printed: put yours in place of ***)")
    click.echo("  .venv/bin/ordersync segment --list 1 --ordered-last-days 30 --spent-over 200 --currency EUR")
    click.echo("  .venv/bin/ordersync segment --list 1 --category Shoes --format csv")
    if email:
        click.echo(f"  .venv/bin/ordersync contact {email[0]} --list 1")
    click.echo("  .venv/bin/ordersync tail activity --limit 5")
    click.echo("  .venv/bin/ordersync campaigns report --list 1")
    return problems
