"""What every page handler shares: templates and their filters, a short database connection in a worker
thread, the page number, the reader's access."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from ordersync.web.auth import Access, csrf_token

HERE = Path(__file__).parent


def money(value: Decimal | None) -> str:
    """An amount as shops show it: two places, more only when the store used them (never a float)."""
    if value is None:
        return ""
    shown = value.quantize(Decimal("0.01")) if value == value.quantize(Decimal("0.01")) else value.normalize()
    return f"{shown:,}"


TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
TEMPLATES.env.filters["money"] = money
TEMPLATES.env.filters["isotime"] = lambda epoch: dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat()


def access(request: Request) -> Access:
    found: Access = request.app.state.access
    return found


async def db(request: Request, work: Callable[[psycopg.Connection[Any]], Any]) -> Any:
    """Run ``work`` with a short connection, in a worker thread."""
    url: str = request.app.state.database_url

    def run() -> Any:
        with psycopg.connect(url) as conn:
            return work(conn)

    return await run_in_threadpool(run)


def page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    if not raw.isdigit() or not 1 <= int(raw) <= 100_000:
        raise HTTPException(400, "page must be a number from 1")
    return int(raw)


def render(request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
    """A page; every template gets the CSRF token for its forms and who is logged in."""
    has_session = "session" in request.scope  # not for errors caught outside the session middleware
    extra = {
        "csrf": csrf_token(request) if has_session else "",
        "user": request.session.get("user") if has_session else None,
    }
    return TEMPLATES.TemplateResponse(request, template, {**extra, **context}, status_code=status)
