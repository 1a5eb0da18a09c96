"""The web app: Starlette routes rendering Jinja2 templates. Every page opens a short PostgreSQL
connection in a worker thread; ids in URLs are validated before any query, so a bad one is a 404."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import KafkaException
from psycopg_pool import ConnectionPool
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ordersync.runtime import audit, store_health
from ordersync.runtime.automations import DEFAULT_RULES, Automations
from ordersync.runtime.kafka_status import KafkaStatus, StoreDeadLetters
from ordersync.runtime.settings import Settings
from ordersync.schemas.statuses import STATUSES
from ordersync.schemas.topics import Wiring
from ordersync.segmentation import campaigns as campaign_summaries
from ordersync.segmentation import rfm
from ordersync.segmentation.campaigns import CampaignResult, campaign_results, revenue_by_day
from ordersync.web import accounts, queries, segment_pages
from ordersync.web import insights as insights_data
from ordersync.web.auth import Access, LoginThrottle, check_csrf, client_key, safe_next
from ordersync.web.charts import bars, periods
from ordersync.web.common import HERE, access, connection_pool, db, page_number, render
from ordersync.web.gate import Gate
from ordersync.web.security import Guard, allowed_hosts

LOG = logging.getLogger(__name__)


async def home(request: Request) -> Response:
    return RedirectResponse("/contacts")


async def contacts(request: Request) -> Response:
    """Contacts whose e-mail starts with, or whose name contains, the search, within a list."""
    q = request.query_params.get("q", "")[:200]
    list_id = request.query_params.get("list") or None
    scope = access(request).lists
    found, all_lists = await db(
        request, lambda c: (queries.search_contacts(c, q, list_id, scope), queries.lists(c, scope))
    )
    return render(request, "contacts.html", {"q": q, "list_id": list_id, "lists": all_lists, "contacts": found})


async def contact(request: Request) -> Response:
    """A contact's profile with its Orders or Activity tab, newest first, a page at a time."""
    try:
        cid = str(uuid.UUID(request.path_params["contact_id"]))  # also urn:uuid: and braces, as PostgreSQL reads it
    except ValueError:
        raise HTTPException(404, "no such contact") from None
    tab = request.query_params.get("tab", "orders")
    if tab not in ("orders", "activity"):
        raise HTTPException(404, "no such tab")
    page = page_number(request)
    rows_for = queries.contact_orders if tab == "orders" else queries.contact_activity

    def load(conn: psycopg.Connection[Any]) -> dict[str, Any] | None:
        person = queries.contact(conn, cid)
        if person is None or not access(request).sees(person["list_id"]):
            return None
        stats, scores = queries.stats(conn, cid), rfm.contact_scores(conn, cid)
        return {"contact": person, "stats": stats, "rfm": scores, "rows": rows_for(conn, cid, page)}

    view = await db(request, load)
    if view is None:
        raise HTTPException(404, "no such contact")
    rows = view.pop("rows")
    more = len(rows) > queries.PAGE_SIZE
    return render(
        request, "contact.html", {**view, "tab": tab, "page": page, "more": more, "rows": rows[: queries.PAGE_SIZE]}
    )


async def order(request: Request) -> Response:
    """One order: its items, totals, coupons, refunds, dates and its own timeline."""
    store_id, oid = request.path_params["store_id"], request.path_params["source_order_id"]

    def load(conn: psycopg.Connection[Any]) -> dict[str, Any] | None:
        found = queries.order(conn, store_id, oid)
        if found is None or not access(request).sees(found["list_id"]):
            return None
        timeline = queries.order_activity(conn, store_id, oid)
        return {"order": found, "items": queries.order_items(conn, store_id, oid), "timeline": timeline}

    view = await db(request, load)
    if view is None:
        raise HTTPException(404, "no such order")
    return render(request, "order.html", view)


UNITS = {"day": dt.timedelta(days=60), "week": dt.timedelta(weeks=26), "month": dt.timedelta(days=366)}


async def insights(request: Request) -> Response:
    """Revenue over time per currency (net of refunds), orders per status, new and returning customers,
    top products and categories; per store; from the per-day summaries (ordersync.web.insights)."""
    unit = request.query_params.get("by", "month")
    if unit not in UNITS:
        raise HTTPException(400, "by must be day, week or month")
    store = request.query_params.get("store") or None
    since = dt.datetime.now(dt.UTC) - UNITS[unit]

    scope = access(request).lists
    wanted_currency = request.query_params.get("rfm_currency") or None

    def load(conn: psycopg.Connection[Any]) -> dict[str, Any]:
        return {
            **insights_data.load(conn, unit, since.date(), store, scope),
            "rfm": rfm.grid(conn, scope, wanted_currency),
        }

    view = await db(request, load)
    fmt = "%Y-%m-%d" if unit != "month" else "%Y-%m"
    every = periods(unit, since, dt.datetime.now(dt.UTC))
    charts = []
    for currency in sorted({r["currency"] for r in view["revenue"]}):
        rows = [r for r in view["revenue"] if r["currency"] == currency]
        total, orders = sum((r["revenue"] for r in rows), Decimal(0)), sum(r["orders"] for r in rows)
        by_period = {r["period"]: r["revenue"] for r in rows}
        series = [(start.strftime(fmt), by_period.get(start, Decimal(0))) for start in every]
        charts.append({"currency": currency, "bars": bars(series), "rows": rows, "total": total, "orders": orders,
                       "average": (total / orders).quantize(Decimal("0.01")) if orders else Decimal(0)})  # fmt: skip
    counts = {r["status"]: r["orders"] for r in view["statuses"]}
    by_start = {r["period"]: (r["new"], r["returning"]) for r in view["customers"]}
    customers = [(start.strftime(fmt), *by_start.get(start, (0, 0))) for start in every]
    return render(request, "insights.html", {
        "unit": unit, "store": store, "stores": view["stores"], "charts": charts, "products": view["products"],
        "categories": view["categories"], "customers": customers,
        "new_bars": bars([(label, Decimal(new)) for label, new, _ in customers]),
        "new_total": sum(c[1] for c in customers), "returning_total": sum(c[2] for c in customers),
        "statuses": [(s, counts.get(s, 0)) for s in STATUSES], "since": since, "pending": view["pending"],
        "rfm": view["rfm"],
    })  # fmt: skip


async def stores(request: Request) -> Response:
    """Each store's sync health (from the connectors' health file), the processor's and the sink's lag,
    and the dead letters of the last hour with the last reasons."""
    settings: Settings = request.app.state.settings
    health_file: Path | None = request.app.state.health_file
    now = time.time()
    health = store_health.read(health_file) if health_file else {}

    def from_kafka() -> tuple[dict[str, int], dict[str, StoreDeadLetters]] | None:
        wiring = Wiring.with_prefix(settings.topic_prefix)
        status = KafkaStatus(settings.kafka_bootstrap)
        try:
            lag = status.lag(wiring.groups())
            return lag, status.dead_letters_since(wiring.outputs.dlq, now - 3600)
        except (KafkaException, TimeoutError, ValueError):
            return None

    kafka = await run_in_threadpool(from_kafka)
    lag, dead = kafka if kafka is not None else ({}, {})
    scope = access(request).lists
    if scope is not None:  # an account limited to some lists sees the stores that sell to them
        visible = set(await db(request, lambda conn: insights_data.stores(conn, scope)))
        health = {name: h for name, h in health.items() if name in visible}
        dead = {name: d for name, d in dead.items() if name in visible}
    failing_after = settings.store_failing_after_s
    names = sorted(set(health) | set(dead))
    rows = []
    for name in names:
        h = health.get(name)
        failing_for = h.failing_for(now) if h else 0.0
        waiting = h is not None and (h.waiting_until or 0) > now
        state = (
            "failing"
            if failing_for > failing_after
            else ("retrying" if h and (h.consecutive_failures or waiting) else "ok")
        )
        rows.append({"store": name, "health": h, "state": state, "failing_for": failing_for,
                     "dead": dead.get(name, StoreDeadLetters())})  # fmt: skip
    destinations = await db(request, queries.destinations)
    return render(request, "stores.html", {
        "rows": rows, "lag": lag, "kafka_reachable": kafka is not None, "health_file": health_file,
        "failing_after": failing_after, "now": now, "destinations": destinations,
    })  # fmt: skip


TRIGGER_KINDS = ("ORDER_THANK_YOU", "FIRST_ORDER", "UPSELL", "CHECKOUT_ABANDONED", "WIN_BACK", "VIP_REACHED")


async def automations(request: Request) -> Response:
    """Triggers fired per kind and day (last 30 days), the latest ones with their contact and order, the
    rules in force, and how delivery to each destination goes."""
    scope = access(request).lists
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)

    def load(conn: psycopg.Connection[Any]) -> dict[str, Any]:
        return {
            "per_day": queries.triggers_per_day(conn, since, scope),
            "suppressed": queries.suppressed_per_kind(conn, since, scope),
            "latest": queries.latest_triggers(conn, scope),
            "destinations": queries.destinations(conn),
        }

    view = await db(request, load)
    days: dict[dt.date, dict[str, int]] = {}
    for row in view["per_day"]:
        days.setdefault(row["day"], {})[row["kind"]] = row["fired"]
    rules: Automations = request.app.state.automations
    shown = {k: v for k, v in rules.by_list.items() if scope is None or k in scope}
    return render(request, "automations.html", {
        "kinds": TRIGGER_KINDS, "days": sorted(days.items(), reverse=True), "latest": view["latest"],
        "destinations": view["destinations"], "rules": shown, "defaults": DEFAULT_RULES,
        "totals": {k: sum(d.get(k, 0) for d in days.values()) for k in TRIGGER_KINDS},
        "suppressed": view["suppressed"],
    })  # fmt: skip


async def campaigns(request: Request) -> Response:
    """Each campaign's reach, the revenue credited to it, and (with a holdout) what it added, side by side;
    its credited revenue per day after the send as a chart."""
    scope = access(request).lists
    wanted = request.query_params.get("list") or None
    if wanted is not None and scope is not None and wanted not in scope:
        raise HTTPException(404, f"no list {wanted!r}")

    def load(conn: psycopg.Connection[Any]) -> tuple[list[CampaignResult], dict[Any, list[Decimal]], tuple[int, Any]]:
        return campaign_results(conn, wanted), revenue_by_day(conn, wanted), campaign_summaries.pending(conn)

    results, by_day, (pending, computed_at) = await db(request, load)
    results = [r for r in results if scope is None or r.list_id in scope]
    charts = {
        (r.list_id, r.campaign_id, r.currency): bars([(f"day {d}", v) for d, v in enumerate(values)], height=120)
        for r in results
        if r.currency is not None and (values := by_day.get((r.list_id, r.campaign_id, r.currency)))
    }
    return render(request, "campaigns.html", {
        "results": results, "charts": charts, "list": wanted, "pending": pending, "computed_at": computed_at,
    })  # fmt: skip


async def error(request: Request, exc: Exception) -> Response:
    """Every error as a page: a 404 says what was not found; anything else never shows a traceback."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "something went wrong"
    return render(request, "error.html", {"status": status, "detail": detail}, status)


async def login(request: Request) -> Response:
    """The login form; a wrong name or password shows the form again with a 401."""
    target = safe_next(request.query_params.get("next"))
    if request.method == "GET":
        return render(request, "login.html", {"next": target, "failed": False})
    await check_csrf(request)
    throttle: LoginThrottle = request.app.state.login_throttle
    gate: Gate = request.app.state.gate
    client, now = request.client.host if request.client else "?", time.monotonic()
    form = await request.form()
    user, password = str(form.get("user", ""))[:200], str(form.get("password", ""))[:1000]
    wait = throttle.blocked_for(client, user, now)
    if wait:
        raise HTTPException(429, f"too many wrong passwords: try again in {max(1, round(wait / 60))} minutes")
    session_user, known = await db(request, lambda conn: gate.log_in(conn, user, password))
    if session_user is None:
        throttle.failed(client, user, now)
        # a name that is no account is not recorded: it may be a password typed in the wrong field
        actor = user if known else "(not an account)"
        await db(request, lambda conn: audit.record(conn, actor, audit.LOGIN_FAILED, client=client_key(client)))
        return render(request, "login.html", {"next": safe_next(str(form.get("next", ""))), "failed": True}, 401)
    throttle.succeeded(client, user)
    old_sid = request.session.get("sid")

    def start(conn: psycopg.Connection[Any]) -> str:
        accounts.end_session(conn, old_sid)
        audit.record(conn, user, audit.LOGIN, client=client_key(client))
        return accounts.start_session(conn, session_user, gate.rules, dt.datetime.now(dt.UTC))

    sid = await db(request, start)
    request.session.clear()  # a fresh session (and CSRF token) for the logged-in user
    request.session["user"] = user
    request.session["sid"] = sid
    return RedirectResponse(safe_next(str(form.get("next", ""))), status_code=303)


async def logout(request: Request) -> Response:
    """Ends the session on the server too: a copy of the cookie no longer logs anyone in."""
    await check_csrf(request)
    sid, who = request.session.get("sid"), access(request).user

    def end(conn: psycopg.Connection[Any]) -> None:
        accounts.end_session(conn, sid)
        if who is not None:
            audit.record(conn, who, audit.LOGOUT)

    await db(request, end)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


async def audit_page(request: Request) -> Response:
    """The audit trail's latest entries, for admins."""
    if not access(request).admin:
        raise HTTPException(403, "the audit trail is for admins")
    entries = await db(request, lambda conn: audit.recent(conn, 500))
    return render(request, "audit.html", {"entries": entries})


@contextlib.asynccontextmanager
async def pooled(app: Starlette) -> AsyncIterator[None]:
    """The app's connection pool, open while it runs. The summaries it reads (Insights, RFM, campaigns) are
    kept current by the refresher that ``ordersync run`` supervises (ordersync.segmentation.refresher)."""
    pool: ConnectionPool = app.state.pool
    pool.open()
    try:
        yield
    finally:
        pool.close()


def create_app(
    settings: Settings,
    health_file: Path | None = None,
    host: str = "127.0.0.1",
    automation_rules: Automations | None = None,
    accounts_in_database: bool = False,
) -> Starlette:
    """The app over the settings' database; ``health_file``: the connectors' store health (Sync health
    page); ``host``: the address it is bound to (the Host names it answers to follow from it);
    ``automation_rules``: the processor's trigger rules, shown on the Automations page;
    ``accounts_in_database``: whether ``ordersync users`` added any (a login is then needed from any
    address, so the app answers to any Host name unless told otherwise)."""
    bootstrap = Access.from_settings(settings)
    gate = Gate(bootstrap, accounts.SessionRules(settings.web_session_idle_s, settings.web_session_max_s))
    hosts = allowed_hosts(host, settings.web_allowed_hosts, bootstrap.login_required or accounts_in_database)
    secret = settings.web_session_secret.get_secret_value() if settings.web_session_secret else secrets.token_hex(32)
    app = Starlette(
        routes=[
            Route("/", home),
            Route("/login", login, methods=["GET", "POST"]),
            Route("/logout", logout, methods=["POST"]),
            *segment_pages.ROUTES,
            Route("/contacts", contacts),
            Route("/contacts/{contact_id}", contact),
            Route("/orders/{store_id}/{source_order_id}", order),
            Route("/insights", insights),
            Route("/stores", stores),
            Route("/automations", automations),
            Route("/campaigns", campaigns),
            Route("/audit", audit_page),
            Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
        ],
        exception_handlers={HTTPException: error, 500: error},
        lifespan=pooled,
        middleware=[
            Middleware(Guard, hosts=hosts),
            Middleware(
                SessionMiddleware,
                secret_key=secret,
                session_cookie="ordersync_session",
                same_site="lax",
                https_only=settings.web_https,
                max_age=int(settings.web_session_max_s),  # the cookie ends with the session, not 14 days later
            ),
            Middleware(BaseHTTPMiddleware, dispatch=gate.dispatch),
        ],
    )
    app.state.database_url = settings.database_url
    app.state.settings = settings
    app.state.health_file = health_file
    app.state.automations = automation_rules or Automations()
    app.state.gate = gate
    app.state.login_throttle = LoginThrottle()
    app.state.pool = connection_pool(settings)
    app.state.export_slots = threading.BoundedSemaphore(settings.web_max_exports)
    return app
