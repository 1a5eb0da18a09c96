"""``ordersync segment``: flags and documents → a segment query → table, CSV, JSON or a count."""

from __future__ import annotations

import csv
import json
import sys
from typing import IO, Any

import click
import psycopg

from ordersync.runtime.settings import Settings
from ordersync.schemas.json_view import to_json
from ordersync.segmentation import SegmentError, build_query, rfm, saved, uses_rfm
from ordersync.segmentation.export import COLUMNS, CONSENT_CELL, csv_rows


def conditions_from_flags(kw: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if kw.get("ordered_last_days") is not None:
        out.append({"ordered": {"last_days": kw["ordered_last_days"]}})
    if kw.get("ordered_from") or kw.get("ordered_to"):
        out.append({"ordered": {"from": kw.get("ordered_from"), "to": kw.get("ordered_to")}})
    if kw.get("min_orders") is not None:
        out.append({"order_count": {"op": ">=", "value": kw["min_orders"], "status": kw.get("status")}})
    elif kw.get("status"):
        out.append({"has_status": kw["status"]})
    if kw.get("spent_over") is not None:
        out.append({"spent": {"op": ">", "value": kw["spent_over"], "currency": kw.get("currency")}})
    if kw.get("aov_over") is not None:
        out.append({"average_order_value": {"op": ">", "value": kw["aov_over"], "currency": kw.get("currency")}})
    for flag, key in (("product", "product_id"), ("sku", "sku"), ("product_name", "name"), ("category", "category")):
        if kw.get(flag):
            out.append({"bought": {key: kw[flag]}})
    if kw.get("abandoned_hours") is not None:
        out.append({"abandoned_checkout": {"hours": kw["abandoned_hours"]}})
    if kw.get("lapsed_days") is not None:
        out.append({"lapsed": {"days": kw["lapsed_days"]}})
    scores = {"score": kw.get("rfm"), **{letter: kw.get(f"rfm_{letter}") for letter in "rfm"}}
    if any(scores.values()):
        currency = {"currency": kw["currency"]} if kw.get("currency") else {}
        out.append({"rfm": {**{k: v for k, v in scores.items() if v}, **currency}})
    return out


def segment_document(kw: dict[str, Any]) -> dict[str, Any]:
    parts = []
    for source in (kw.get("segment_file"), kw.get("segment_json")):
        if source is None:
            continue
        text = source.read() if hasattr(source, "read") else source
        try:
            parts.append(json.loads(text))
        except json.JSONDecodeError as exc:
            raise SegmentError(f"segment document is not JSON: {exc}") from exc
    flags = conditions_from_flags(kw)
    if flags:
        parts.append({"any" if kw.get("match_any") else "all": flags})
    if kw.get("consent"):  # a requirement on top of the rest, never one alternative among --any's
        parts.append({"consent": kw["consent"]})
    if not parts:
        raise SegmentError("give a segment: --json, --file or condition flags (see --help)")
    return parts[0] if len(parts) == 1 else {"all": parts}


def write(rows: list[dict[str, Any]], fmt: str, out: IO[str]) -> None:
    if fmt == "json":
        for row in rows:
            out.write(to_json(row) + "\n")
        return
    columns = list(COLUMNS)
    if fmt == "csv":
        csv.writer(out).writerows(csv_rows(rows))
        return
    shown = [
        {c: CONSENT_CELL[row.get(c)] if c == "marketing_consent" else str(row[c] or "") for c in columns}
        for row in rows
    ]
    widths = {c: max([len(c), *(len(row[c]) for row in shown)]) for c in columns}
    out.write("  ".join(c.ljust(widths[c]) for c in columns) + "\n")
    for row in shown:
        out.write("  ".join(row[c].ljust(widths[c]) for c in columns) + "\n")
    out.write(f"({len(rows)} contacts)\n")


def with_saved(conn: psycopg.Connection[Any], kw: dict[str, Any]) -> dict[str, Any]:
    """``kw`` with the saved segment ``--saved NAME`` added as a document (and its list, unless --list)."""
    name = kw.get("saved_name")
    if not name:
        return kw
    segment = saved.by_name(conn, name, kw.get("list_id"))
    if segment is None:
        raise SegmentError(f"no saved segment is named {name!r} (the web app's Segments page lists them)")
    others = [json.loads(kw["segment_json"])] if kw.get("segment_json") else []
    document = {"all": [segment.document, *others]} if others else segment.document
    return {**kw, "segment_json": json.dumps(document), "list_id": kw.get("list_id") or segment.list_id}


def run_segment(settings: Settings, **kw: Any) -> int:
    with psycopg.connect(settings.database_url) as conn:
        try:
            kw = with_saved(conn, kw)
            document = segment_document(kw)
            query, params = build_query(document, list_id=kw.get("list_id"), count=bool(kw.get("count_only")))
        except (SegmentError, json.JSONDecodeError) as exc:
            click.echo(f"invalid segment: {exc}", err=True)
            return 2
        if uses_rfm(document):
            conn.commit()  # the marks are taken and the bounds written in transactions of their own
            rfm.refresh(conn, [kw["list_id"]] if kw.get("list_id") else None)
        cur = conn.execute(query, params)
        if kw.get("count_only"):
            row = cur.fetchone()
            click.echo(row[0] if row else 0)
            return 0
        names = [d.name for d in cur.description or []]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    write(rows, kw.get("fmt") or "table", sys.stdout)
    return 0
