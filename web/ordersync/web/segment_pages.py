"""The segment builder: conditions as form rows (or a JSON document), the live count and a preview of the
first contacts, CSV export, and segments saved by name for the CLI (`ordersync segment --saved NAME`)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ordersync.runtime import audit
from ordersync.segmentation import SegmentError, build_query, rfm, saved, uses_rfm
from ordersync.segmentation.conditions import MAX_DEPTH, check_size
from ordersync.segmentation.export import csv_rows
from ordersync.segmentation.form import (
    KINDS,
    OPTIONS,
    Builder,
    builder_from_document,
    builder_from_query,
    document_from_builder,
    query_from_builder,
)
from ordersync.web import queries
from ordersync.web.auth import Reader, check_csrf
from ordersync.web.common import access, db, render

PREVIEW = 20
MAX_JSON = 20_000


@dataclass
class Draft:
    """The segment being edited: rows (None when edited as JSON), its JSON, its list, and its document or
    why it has none."""

    builder: Builder | None
    json_text: str
    list_id: str | None
    document: dict[str, Any] | None
    error: str | None
    name: str = ""

    @property
    def state(self) -> str:
        """The draft as a query string: links to the builder, the export and the save form carry it."""
        fields: dict[str, str] = {"list": self.list_id or "", "name": self.name}
        if self.builder is not None:
            fields.update(query_from_builder(Builder(self.builder.match, self.builder.rows)))
        else:
            fields.update(mode="json", json=self.json_text)
        return urlencode({k: v for k, v in fields.items() if v})


def _parse_json(text: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        document = json.loads(text)
    except RecursionError:
        return None, f"segment: conditions nest at most {MAX_DEPTH} deep"
    except json.JSONDecodeError as exc:
        return None, f"the segment is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
    if not isinstance(document, dict):
        return None, 'the segment is a JSON object, e.g. {"all": [{"ordered": {"last_days": 30}}]}'
    try:
        check_size(document)
    except SegmentError as exc:
        return None, str(exc)
    return document, None


def draft_from(params: Mapping[str, str]) -> Draft:
    """The draft a form or link describes; an incomplete or invalid one carries the error to show."""
    list_id, name = params.get("list") or None, params.get("name", "")[:200]
    if params.get("mode") == "json":
        text = params.get("json", "")[:MAX_JSON]
        document, error = _parse_json(text)
        if document is not None and params.get("as_form"):
            rows = builder_from_document(document, list_id)
            if rows is None:
                error = "this segment nests conditions, which only the JSON editor shows"
            else:
                return Draft(rows, json.dumps(document, indent=2), list_id, document, None, name)
        return Draft(None, text, list_id, document, error, name)
    builder = builder_from_query(params)
    try:
        document = document_from_builder(builder)
    except SegmentError as exc:
        return Draft(builder, "", list_id, None, str(exc), name)
    return Draft(builder, json.dumps(document, indent=2), list_id, document, None, name)


def _queries(draft: Draft, scope: tuple[str, ...] | None) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The count and preview queries; SegmentError when the document does not compile."""
    assert draft.document is not None
    count = build_query(draft.document, list_id=draft.list_id, count=True, lists=scope)
    preview = build_query(draft.document, list_id=draft.list_id, limit=PREVIEW, lists=scope)
    return count, preview


def _refresh_rfm(conn: psycopg.Connection[Any], draft: Draft, who: Reader) -> None:
    """Bounds as of now for a segment with RFM conditions (ordersync.segmentation.rfm)."""
    if draft.document is not None and uses_rfm(draft.document):
        rfm.refresh(conn, [draft.list_id] if draft.list_id else who.lists)


def _visible_list(who: Reader, draft: Draft) -> None:
    """A 404 for a draft of a list the reader may not see (as if it did not exist)."""
    if draft.list_id is not None and not who.sees(draft.list_id):
        raise HTTPException(404, "no such list")


async def _result(request: Request, draft: Draft) -> dict[str, Any]:
    """The count and the first contacts of ``draft``, or the reason there are none."""
    who = access(request)
    _visible_list(who, draft)
    if draft.error is not None or draft.document is None:
        return {"count": None, "preview": [], "error": draft.error}
    try:
        (count_sql, count_params), (preview_sql, preview_params) = _queries(draft, who.lists)
    except SegmentError as exc:
        return {"count": None, "preview": [], "error": str(exc)}

    def run(conn: psycopg.Connection[Any]) -> dict[str, Any]:
        _refresh_rfm(conn, draft, who)
        row = conn.execute(count_sql, count_params).fetchone()
        cur = conn.execute(preview_sql, preview_params)
        names = [d.name for d in cur.description or []]
        contacts = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        return {"count": row[0] if row else 0, "preview": contacts, "error": None}

    found: dict[str, Any] = await db(request, run)
    return found


async def _builder_page(request: Request, draft: Draft, segment: saved.SavedSegment | None = None) -> Response:
    result = await _result(request, draft)
    status = 400 if result["error"] and (draft.builder is None or draft.builder.rows or draft.builder.unknown) else 200
    if request.query_params.get("fragment"):
        return render(request, "segment_result.html", {"draft": draft, **result}, status)
    lists = await db(request, lambda conn: queries.lists(conn, access(request).lists))
    context = {"draft": draft, "segment": segment, "lists": lists, "kinds": KINDS, "options": OPTIONS, **result}
    return render(request, "segment.html", context, status)


async def builder(request: Request) -> Response:
    """A new segment: the builder on the conditions in the query string (none at first)."""
    return await _builder_page(request, draft_from(request.query_params))


def _saved_id(request: Request) -> int:
    raw = request.path_params["segment_id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise HTTPException(404, "no such segment")
    return int(raw)


async def _load_saved(request: Request) -> saved.SavedSegment:
    found: saved.SavedSegment | None = await db(request, lambda conn: saved.by_id(conn, _saved_id(request)))
    if found is None or (found.list_id is not None and not access(request).sees(found.list_id)):
        raise HTTPException(404, "no such segment")
    return found


def _may_change(who: Reader, list_id: str | None) -> None:
    """An account limited to some lists saves and deletes only segments of those lists: one for every
    list is read-only to it (403)."""
    if who.lists is not None and list_id is None:
        raise HTTPException(403, "this account may change only the segments of its own lists: choose a list")


def _draft_of(segment: saved.SavedSegment) -> Draft:
    text = json.dumps(segment.document, indent=2)
    rows = builder_from_document(segment.document, segment.list_id)
    return Draft(rows, text, segment.list_id, segment.document, None, segment.name)


async def saved_segment(request: Request) -> Response:
    """A saved segment in the builder, its count and preview; saving again under its name replaces it."""
    segment = await _load_saved(request)
    return await _builder_page(request, _draft_of(segment), segment)


async def index(request: Request) -> Response:
    """The saved segments (GET), or save the posted draft under its name (POST)."""
    if request.method == "POST":
        return await _save(request)
    who = access(request)
    every = await db(request, saved.every)
    visible = [s for s in every if s.list_id is None or who.sees(s.list_id)]
    return render(request, "segments.html", {"segments": visible})


async def _save(request: Request) -> Response:
    await check_csrf(request)
    form = await request.form()
    params = {k: v for k, v in _query_pairs(str(form.get("state", "")))}
    draft = draft_from({**params, "name": str(form.get("name", ""))})
    _visible_list(access(request), draft)
    _may_change(access(request), draft.list_id)
    if draft.document is None:
        return await _builder_page(request, draft)

    def store(conn: psycopg.Connection[Any]) -> int:
        return saved.save(conn, draft.name, draft.list_id, draft.document or {})

    try:
        segment_id = await db(request, store)
    except SegmentError as exc:
        draft.error = str(exc)
        return await _builder_page(request, draft)
    return RedirectResponse(f"/segments/{segment_id}", status_code=303)


def _query_pairs(state: str) -> list[tuple[str, str]]:
    return parse_qsl(state[: MAX_JSON * 2], keep_blank_values=True)


async def delete(request: Request) -> Response:
    await check_csrf(request)
    segment = await _load_saved(request)
    _may_change(access(request), segment.list_id)
    await db(request, lambda conn: saved.delete(conn, segment.segment_id))
    return RedirectResponse("/segments", status_code=303)


class ExportSlot:
    """One of the app's export slots, given back exactly once however the export ends."""

    def __init__(self, slots: threading.BoundedSemaphore) -> None:
        self._slots, self._lock, self._held = slots, threading.Lock(), True
        self.rows, self.complete = -1, False  # what the export sent, for the audit trail (after the header)

    def release(self) -> None:
        with self._lock:
            if self._held:
                self._held = False
                self._slots.release()


class ExportResponse(StreamingResponse):
    """A CSV stream that gives its slot back when the response ends, however it ends: a client that went
    away before the first chunk never ran the rows' own ``finally`` (a generator not started has none to
    run), and one that went away later left it for the garbage collector: a burst of aborted exports made
    every export answer 503 for minutes."""

    def __init__(
        self, rows: Iterator[str], slot: ExportSlot, headers: dict[str, str], on_end: Callable[[ExportSlot], None]
    ) -> None:
        super().__init__(rows, media_type="text/csv; charset=utf-8", headers=headers)
        self._rows, self._slot, self._on_end = rows, slot, on_end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with contextlib.suppress(ValueError):  # still running in its thread: it ends by itself
                self._rows.close()  # type: ignore[attr-defined]  # a generator: returns its connection
            self._slot.release()
            await run_in_threadpool(self._on_end, self._slot)


def _csv_rows(
    pool: ConnectionPool,
    slot: ExportSlot,
    query: sql.Composed,
    params: list[Any],
    before: Callable[[psycopg.Connection[Any]], None],
) -> Iterator[str]:
    """The CSV a chunk at a time, read through a server-side cursor (a segment may hold every contact);
    gives its export slot back when done or when the reader goes away. ``before``: run on the connection
    before the query (the RFM bounds' refresh)."""
    try:
        out = io.StringIO()
        writer = csv.writer(out)
        with pool.connection() as conn:
            before(conn)
            with conn.cursor(name="segment_export", row_factory=dict_row) as cur:
                cur.execute(query, params)
                for row in csv_rows(cur):
                    writer.writerow(row)
                    slot.rows += 1
                    if out.tell() > 64 * 1024:
                        yield out.getvalue()
                        out.seek(0)
                        out.truncate()
        slot.complete = True
        yield out.getvalue()
    finally:
        slot.release()


def _export(request: Request, draft: Draft, who: Reader, filename: str) -> Response:
    _visible_list(who, draft)
    if draft.document is None:
        raise HTTPException(400, f"cannot export: {draft.error}")
    try:
        query, params = build_query(draft.document, list_id=draft.list_id, lists=who.lists)
    except SegmentError as exc:
        raise HTTPException(400, f"cannot export: {exc}") from None
    slots: threading.BoundedSemaphore = request.app.state.export_slots
    if not slots.acquire(blocking=False):  # each export holds a connection for as long as it is read
        raise HTTPException(503, "too many exports are running: try again when one has finished")
    slot = ExportSlot(slots)
    headers = {"Content-Disposition": f'attachment; filename="{filename}.csv"'}
    pool: ConnectionPool = request.app.state.pool
    rows = _csv_rows(pool, slot, query, params, lambda conn: _refresh_rfm(conn, draft, who))

    def audited(ended: ExportSlot) -> None:  # by segment and count: never the contacts themselves
        with contextlib.suppress(psycopg.Error), pool.connection() as conn:
            audit.record(conn, who.user or "(no login)", audit.EXPORT, segment=draft.name or "(unnamed)",
                         list=draft.list_id, rows=max(0, ended.rows), complete=ended.complete)  # fmt: skip

    return ExportResponse(rows, slot, headers, audited)


async def export(request: Request) -> Response:
    """Every contact of the draft as CSV: e-mail, first and last name, list, contact id."""
    draft = draft_from(request.query_params)
    filename = re.sub(r"[^A-Za-z0-9._-]+", "-", draft.name).strip("-") or "segment"
    return _export(request, draft, access(request), filename)


ROUTES = [
    Route("/segments", index, methods=["GET", "POST"]),
    Route("/segments/new", builder),
    Route("/segments/export.csv", export),
    Route("/segments/{segment_id}", saved_segment),
    Route("/segments/{segment_id}/delete", delete, methods=["POST"]),
]
