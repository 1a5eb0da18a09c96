"""The web builder's form ↔ a segment document.

The builder shows one row per condition, combined by "all" or "any". A row is a flat dict of strings (what
an HTML form sends, ``kind0``, ``op0``, ``amount0``… for row 0) and becomes one condition of the segment
language (docs/segments.md). Documents the rows cannot show (a nested "any" inside "all", a "not") are
edited as JSON instead; :func:`rows_from_document` returns None for them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ordersync.schemas.statuses import STATUSES
from ordersync.segmentation.conditions import OPERATORS, SegmentError, compile_condition

MAX_ROWS = 20

# Each kind: its label and the row fields it reads.
KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "ordered": ("Order date", ("when", "days", "from", "to")),
    "order_count": ("Number of orders", ("op", "number", "status", "when", "days", "from", "to")),
    "spent": ("Amount spent", ("op", "amount", "currency", "when", "days", "from", "to")),
    "average_order_value": ("Average order value", ("op", "amount", "currency")),
    "has_status": ("Has an order in status", ("status",)),
    "bought": ("Bought", ("by", "text")),
    "abandoned_checkout": ("Abandoned checkout", ("hours",)),
    "lapsed": ("Lapsed", ("days",)),
    "rfm": ("RFM score", ("r", "f", "m", "currency")),
    "consent": ("Marketing consent", ("consent",)),
}
FIELDS = (
    "kind", "op", "number", "amount", "currency", "status", "when", "days", "from", "to", "by", "text", "hours",
    "r", "f", "m", "consent",
)  # fmt: skip
# The score ranges a row offers (docs/rfm.md); "" is any score.
SCORES = {
    "": "any",
    **{s: s for s in "54321"},
    **{f"{n}+": f"{n} or more" for n in "432"},
    **{f"{n}-": f"{n} or less" for n in "432"},
}
BOUGHT_BY = {"product_id": "product id", "sku": "SKU", "name": "product name contains", "category": "category"}
WHEN = {"ever": "ever", "last": "in the last … days", "between": "between dates"}
DEFAULTS: dict[str, dict[str, str]] = {
    "ordered": {"when": "last", "days": "30"},
    "order_count": {"op": ">=", "number": "2", "when": "ever"},
    "spent": {"op": ">", "amount": "100", "currency": "EUR", "when": "ever"},
    "average_order_value": {"op": ">", "amount": "50", "currency": "EUR"},
    "has_status": {"status": "PENDING"},
    "bought": {"by": "category", "text": ""},
    "abandoned_checkout": {"hours": "2"},
    "lapsed": {"days": "90"},
    "rfm": {"r": "4+", "f": "", "m": "", "currency": ""},
    "consent": {"consent": "given"},
}
CONSENT_STATES = {"given": "given", "withdrawn": "withdrawn", "unknown": "never stated"}

Row = dict[str, str]


@dataclass
class Builder:
    """What the builder form holds: how rows combine, the rows, the list."""

    match: str = "all"
    rows: list[Row] = field(default_factory=list)
    list_id: str | None = None
    unknown: list[str] = field(default_factory=list)  # kinds sent that the builder does not know


def new_row(kind: str) -> Row:
    """A row of ``kind`` with its defaults, as "Add" puts it in the form."""
    if kind not in KINDS:
        raise SegmentError(f"{kind!r} is not a condition the builder knows")
    return {"kind": kind, **DEFAULTS[kind]}


def builder_from_query(params: Mapping[str, str]) -> Builder:
    """The form as submitted (``kind0``, ``op0``, …), with rows added or removed by its buttons."""
    rows: list[Row] = []
    unknown: list[str] = []
    for i in range(MAX_ROWS):
        kind = params.get(f"kind{i}")
        if kind is None:
            break
        if kind not in KINDS:
            unknown.append(kind[:50])
            continue
        rows.append({name: params.get(f"{name}{i}", "").strip()[:200] for name in FIELDS})
    remove = params.get("remove", "")
    if remove.isascii() and remove.isdigit() and int(remove) < len(rows):
        del rows[int(remove)]
    if params.get("add") in KINDS and len(rows) < MAX_ROWS:
        rows.append(new_row(params["add"]))
    match = "any" if params.get("match") == "any" else "all"
    return Builder(match, rows, params.get("list") or None, unknown)


def _label(i: int, row: Row) -> str:
    return f"condition {i + 1} ({KINDS[row['kind']][0]})" if row.get("kind") in KINDS else f"condition {i + 1}"


def _whole(row: Row, name: str, at: str) -> int:
    value = row.get(name, "")
    if not (value.isascii() and value.isdigit()):
        raise SegmentError(f"{at}: {name} must be a whole number, not {value!r}")
    return int(value)


def _period(row: Row, at: str) -> dict[str, Any]:
    when = row.get("when") or "ever"
    if when == "last":
        return {"last_days": _whole(row, "days", at)}
    if when == "between":
        if not row.get("from") and not row.get("to"):
            raise SegmentError(f"{at}: give a from date, a to date or both")
        return {k: row[k] for k in ("from", "to") if row.get(k)}
    return {}


def _op(row: Row, at: str) -> str:
    op = row.get("op") or ">="
    if op not in OPERATORS:
        raise SegmentError(f"{at}: {op!r} is not one of {' '.join(OPERATORS)}")
    return op


def condition_from_row(row: Row, at: str) -> dict[str, Any]:
    """The condition one row stands for; SegmentError naming ``at`` when the row is incomplete."""
    kind = row.get("kind", "")
    if kind == "ordered":
        period = _period({**row, "when": row.get("when") or "last"}, at)
        if not period:
            raise SegmentError(f"{at}: choose the last … days or dates")
        return {"ordered": period}
    if kind == "order_count":
        spec: dict[str, Any] = {"op": _op(row, at), "value": _whole(row, "number", at), **_period(row, at)}
        return {"order_count": {**spec, "status": row["status"]} if row.get("status") else spec}
    if kind in ("spent", "average_order_value"):
        spec = {"op": _op(row, at), "value": row.get("amount", ""), "currency": row.get("currency", "").upper()}
        return {kind: {**spec, **_period(row, at)} if kind == "spent" else spec}
    if kind == "has_status":
        return {"has_status": row.get("status", "")}
    if kind == "consent":
        return {"consent": row.get("consent", "")}
    if kind == "bought":
        by = row.get("by", "")
        if by not in BOUGHT_BY:
            raise SegmentError(f"{at}: choose what to match: {', '.join(BOUGHT_BY)}")
        if not row.get("text"):
            raise SegmentError(f"{at}: give the {BOUGHT_BY[by]}")
        return {"bought": {by: row["text"]}}
    if kind == "abandoned_checkout":
        return {"abandoned_checkout": {"hours": _whole(row, "hours", at)}}
    if kind == "lapsed":
        return {"lapsed": {"days": _whole(row, "days", at)}}
    if kind == "rfm":
        scores = {letter: row[letter] for letter in ("r", "f", "m") if row.get(letter)}
        currency = {"currency": row["currency"].upper()} if row.get("currency") else {}
        return {"rfm": {**scores, **currency}}
    raise SegmentError(f"{at}: {kind!r} is not a condition the builder knows")


def document_from_builder(builder: Builder) -> dict[str, Any]:
    """The segment document of the form; SegmentError naming the row when one is incomplete."""
    if builder.unknown:
        raise SegmentError(f"{builder.unknown[0]!r} is not a condition the builder knows")
    if not builder.rows:
        raise SegmentError("add a condition")
    conditions = []
    for i, row in enumerate(builder.rows):
        condition = condition_from_row(row, _label(i, row))
        compile_condition(condition, dt.datetime.now(dt.UTC), _label(i, row))  # its errors name the row
        conditions.append(condition)
    return {builder.match: conditions}


def _row_from_condition(condition: Any) -> Row | None:
    if not isinstance(condition, dict) or len(condition) != 1:
        return None
    ((kind, spec),) = condition.items()
    if kind not in KINDS:
        return None
    row: Row = {"kind": kind}
    if kind == "has_status":
        return {**row, "status": str(spec)}
    if kind == "consent":
        return {**row, "consent": str(spec)}
    if not isinstance(spec, dict):
        return None
    if kind == "bought":
        ((by, text),) = spec.items() if len(spec) == 1 else ((None, None),)
        return {**row, "by": str(by), "text": str(text)} if by in BOUGHT_BY else None
    if kind == "rfm":
        return _rfm_row(spec)
    for key, value in spec.items():
        name = {"value": "number" if kind == "order_count" else "amount", "last_days": "days"}.get(key, key)
        if name not in FIELDS or value is None:
            continue
        row[name] = str(value)
    row["when"] = "last" if "last_days" in spec else ("between" if spec.get("from") or spec.get("to") else "ever")
    return row


def _rfm_row(spec: dict[str, Any]) -> Row | None:
    """An RFM condition as a row, when each of its ranges is one the row offers."""
    scores = dict(zip("rfm", str(spec["score"]), strict=False)) if spec.get("score") else {}
    scores.update({k: str(spec[k]) for k in ("r", "f", "m") if spec.get(k)})
    if set(spec) - {"score", "r", "f", "m", "currency"} or any(v not in SCORES for v in scores.values()):
        return None
    return {
        "kind": "rfm",
        **{k: scores.get(k, "") for k in ("r", "f", "m")},
        "currency": str(spec.get("currency") or ""),
    }


def builder_from_document(document: Any, list_id: str | None = None) -> Builder | None:
    """The form showing ``document``, or None when it nests conditions the rows cannot show."""
    if not isinstance(document, dict) or len(document) != 1:
        return None
    ((match, conditions),) = document.items()
    if match not in ("all", "any") or not isinstance(conditions, list):
        single = _row_from_condition(document)
        return Builder("all", [single], list_id) if single else None
    rows = [_row_from_condition(c) for c in conditions]
    if any(r is None for r in rows) or len(rows) > MAX_ROWS:
        return None
    return Builder(match, [r for r in rows if r is not None], list_id)


def query_from_builder(builder: Builder) -> dict[str, str]:
    """The form's fields, to link to the builder showing these rows."""
    query = {"match": builder.match, **({"list": builder.list_id} if builder.list_id else {})}
    for i, row in enumerate(builder.rows):
        query.update({f"{name}{i}": value for name, value in row.items() if value})
    return query


OPTIONS = {
    "op": {op: op for op in OPERATORS},
    "status": {s: s.capitalize() for s in STATUSES},
    "by": BOUGHT_BY,
    "when": WHEN,
    "score": SCORES,
    "consent": CONSENT_STATES,
}
