"""What every page handler shares: templates and their filters, a short database connection in a worker
thread, the page number, the reader's access."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from ordersync.runtime.settings import Settings
from ordersync.schemas import consent
from ordersync.web.auth import Reader, csrf_token

HERE = Path(__file__).parent
POOL_WAIT_S = 10.0


def money(value: Decimal | None) -> str:
    """An amount as shops show it: two places, more only when the store used them (never a float)."""
    if value is None:
        return ""
    shown = value.quantize(Decimal("0.01")) if value == value.quantize(Decimal("0.01")) else value.normalize()
    return f"{shown:,}"


TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
TEMPLATES.env.filters["money"] = money
TEMPLATES.env.filters["consent_source"] = consent.describe
TEMPLATES.env.filters["isotime"] = lambda epoch: dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat()


def access(request: Request) -> Reader:
    """Who reads this page (set by the login gate, web/gate.py)."""
    found: Reader = request.state.reader
    return found


def connection_pool(settings: Settings) -> ConnectionPool:
    """The app's PostgreSQL connections: at most ``web_pool_size`` (the sink needs the server too), each
    statement stopped after ``web_statement_timeout_ms``. Opened by the app's lifespan."""
    options = f"-c statement_timeout={settings.web_statement_timeout_ms} -c application_name=ordersync-web"
    return ConnectionPool(
        settings.database_url,
        min_size=1,
        max_size=settings.web_pool_size,
        kwargs={"options": options},
        timeout=POOL_WAIT_S,
        open=False,
    )


async def db(request: Request, work: Callable[[psycopg.Connection[Any]], Any]) -> Any:
    """Run ``work`` with one of the pool's connections, in a worker thread; a 503 when every connection is
    busy for longer than ``POOL_WAIT_S``, or when the query ran past the statement timeout."""
    pool: ConnectionPool = request.app.state.pool

    def run() -> Any:
        with pool.connection() as conn:
            return work(conn)

    try:
        return await run_in_threadpool(run)
    except PoolTimeout:
        raise HTTPException(503, "the database is busy: try again in a moment") from None
    except psycopg.errors.QueryCanceled:
        raise HTTPException(503, "this page took too long to compute: narrow it down and try again") from None
    except psycopg.DataError:  # a value PostgreSQL cannot take (out of range, a NUL): the request's fault
        raise HTTPException(400, "a value in this request cannot be looked up") from None


def page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 100_000:
        raise HTTPException(400, "page must be a number from 1")
    return int(raw)


def render(request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
    """A page; every template gets the CSRF token for its forms and who is logged in."""
    has_session = "session" in request.scope  # not for errors caught outside the session middleware
    extra = {
        "csrf": csrf_token(request) if has_session else "",
        "user": request.session.get("user") if has_session else None,
        "admin": bool(getattr(request.state, "reader", None) and request.state.reader.admin),
    }
    return TEMPLATES.TemplateResponse(request, template, {**extra, **context}, status_code=status)
