"""Segments: marketing conditions → one parameterised SQL query over contacts.

A segment is a small document (JSON or YAML-like dict)::

    {"all": [
        {"ordered": {"last_days": 30}},
        {"spent": {"op": ">", "value": "200", "currency": "EUR"}},
        {"bought": {"category": "Shoes"}},
        {"any": [{"has_status": "PENDING"}, {"abandoned_checkout": {"hours": 2}}]}
    ]}

Each condition becomes ``c.contact_id IN (subquery)`` (or ``NOT IN`` when the comparison also holds for
contacts with no orders at all), which PostgreSQL plans as a (anti) semi-join using the indexes.
Values are always bound parameters; operators and statuses come from fixed lists, never from input.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from psycopg import sql

from ordersync.schemas.statuses import STATUSES
from ordersync.segmentation import rfm

MAX_AMOUNT = Decimal(10) ** 15  # far above any order total; keeps comparisons inside PostgreSQL's numeric
MAX_PLACES = 6  # amounts are stored as numeric(20,6)
# Each condition is a subquery: a segment is a link a marketer can be sent, so its size is bounded.
MAX_CONDITIONS = 50
MAX_DEPTH = 8
OBJECT_SPECS = {"ordered", "order_count", "spent", "average_order_value", "abandoned_checkout", "lapsed", "rfm"}
OPERATORS: dict[str, tuple[str, Callable[[Any, Any], bool]]] = {
    ">": (">", operator.gt),
    ">=": (">=", operator.ge),
    "<": ("<", operator.lt),
    "<=": ("<=", operator.le),
    "=": ("=", operator.eq),
    "!=": ("<>", operator.ne),
}


class SegmentError(ValueError):
    """The segment document is invalid; the message says where."""


@dataclass
class Compiled:
    """A WHERE fragment and its bound parameters, in order."""

    where: sql.Composable
    params: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class Period:
    start: dt.datetime | None
    end: dt.datetime | None

    def sql(self, column: str) -> tuple[sql.Composable, list[Any]]:
        parts, params = [], []
        if self.start is not None:
            parts.append(sql.SQL("{} >= %s").format(sql.SQL(column)))
            params.append(self.start)
        if self.end is not None:
            parts.append(sql.SQL("{} < %s").format(sql.SQL(column)))
            params.append(self.end)
        if not parts:
            return sql.SQL("true"), []
        return sql.SQL(" AND ").join(parts), params


def _timestamp(value: Any, where: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise SegmentError(f"{where}: {value!r} is not an ISO date or timestamp") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _number(value: Any, where: str) -> Decimal:
    if isinstance(value, float):
        value = str(value)
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise SegmentError(f"{where}: {value!r} is not a number") from exc
    if not number.is_finite() or abs(number) >= MAX_AMOUNT:
        raise SegmentError(f"{where}: {value!r} is not an amount (a finite number below {MAX_AMOUNT:,})")
    exponent = number.as_tuple().exponent
    if number and isinstance(exponent, int) and exponent < -MAX_PLACES:
        raise SegmentError(f"{where}: {value!r} has more than {MAX_PLACES} decimal places")
    return number


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SegmentError(f"{where}: {value!r} must be a non-negative integer")
    return value


def _ago(now: dt.datetime, value: Any, where: str, unit: str) -> dt.datetime:
    """``now`` minus ``value`` days or hours, for conditions that look back in time."""
    amount = _positive_int(value, where)
    try:
        return now - dt.timedelta(**{unit: amount})
    except OverflowError:
        raise SegmentError(f"{where}: {value!r} {unit} reaches back before the calendar begins") from None


def _period(spec: dict[str, Any], now: dt.datetime, where: str) -> Period:
    if "last_days" in spec:
        return Period(_ago(now, spec["last_days"], f"{where}.last_days", "days"), None)
    start = _timestamp(spec["from"], f"{where}.from") if spec.get("from") is not None else None
    end = _timestamp(spec["to"], f"{where}.to") if spec.get("to") is not None else None
    return Period(start, end)


def _op(spec: dict[str, Any], where: str) -> tuple[str, Callable[[Any, Any], bool]]:
    name = spec.get("op", ">=")
    if name not in OPERATORS:
        raise SegmentError(f"{where}.op: {name!r} is not one of {sorted(OPERATORS)}")
    return OPERATORS[name]


def _status(value: Any, where: str) -> str:
    status = str(value).upper()
    if status not in STATUSES:
        raise SegmentError(f"{where}: {value!r} is not one of {STATUSES}")
    return status


LIVE_ORDER = "o.contact_id IS NOT NULL AND NOT o.deleted"


def _in(subquery: str, params: list[Any], *, negate: bool = False) -> Compiled:
    template = "c.contact_id NOT IN ({})" if negate else "c.contact_id IN ({})"
    return Compiled(sql.SQL(template).format(sql.SQL(subquery)), params)


def _aggregate(expr: str, extra_where: sql.Composable, params: list[Any], op: tuple[str, Any], value: Any) -> Compiled:
    """Contacts whose aggregate over their orders compares to ``value``."""
    source = sql.SQL("SELECT o.contact_id FROM orders o WHERE " + LIVE_ORDER + " AND {} GROUP BY o.contact_id").format(
        extra_where
    )
    return _compare(expr, source, params, op, value)


def _from_stats(expr: str, op: tuple[str, Any], value: Any) -> Compiled:
    """The same over the per-contact statistics the sink keeps current (one row per contact and currency,
    over the same live orders): a scan of the contacts instead of every order."""
    source = sql.SQL("SELECT contact_id FROM contact_order_stats GROUP BY contact_id")
    return _compare(expr, source, [], op, value)


def _compare(expr: str, grouped: sql.Composable, params: list[Any], op: tuple[str, Any], value: Any) -> Compiled:
    """Contacts with no matching rows have the aggregate 0, so when ``0 op value`` holds the query keeps
    everyone except the contacts whose aggregate fails."""
    sql_op, py_op = op
    zero_passes = py_op(0, value)
    having = f"{expr} {sql_op} %s" if not zero_passes else f"NOT ({expr} {sql_op} %s)"
    subquery = sql.SQL("{} HAVING " + having).format(grouped)
    return Compiled(
        sql.SQL("c.contact_id NOT IN ({})" if zero_passes else "c.contact_id IN ({})").format(subquery),
        [*params, value],
    )


def check_size(segment: Any) -> None:
    """A SegmentError when ``segment`` has more than MAX_CONDITIONS conditions or nests deeper than
    MAX_DEPTH (walked without recursion, so any depth of JSON is answered with this message)."""
    conditions, stack = 0, [(segment, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise SegmentError(f"segment: conditions nest at most {MAX_DEPTH} deep")
        conditions += 1
        if conditions > MAX_CONDITIONS:
            raise SegmentError(f"segment: at most {MAX_CONDITIONS} conditions")
        if isinstance(node, dict) and len(node) == 1:
            ((kind, spec),) = node.items()
            if kind in ("all", "any") and isinstance(spec, list):
                stack.extend((child, depth + 1) for child in spec)
            elif kind == "not":
                stack.append((spec, depth + 1))


def uses_rfm(segment: Any) -> bool:
    """Whether ``segment`` has an RFM condition (its run then refreshes the RFM bounds first)."""
    stack = [segment]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "rfm" in node:
                return True
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def compile_segment(segment: Any, now: dt.datetime) -> Compiled:
    """A whole segment document as a WHERE fragment, after checking its size."""
    check_size(segment)
    return compile_condition(segment, now)


def compile_condition(cond: Any, now: dt.datetime, where: str = "segment") -> Compiled:
    """One condition (and what it nests) as a WHERE fragment over ``contacts c``; SegmentError naming
    ``where`` when it is invalid. ``now``: the moment "last N days" counts back from."""
    if not isinstance(cond, dict) or len(cond) != 1:
        raise SegmentError(f"{where}: each condition is an object with exactly one key")
    ((kind, spec),) = cond.items()
    at = f"{where}.{kind}"
    compile_kind = CONDITIONS.get(kind)
    if compile_kind is None:
        raise SegmentError(f"{at}: unknown condition {kind!r}")
    if kind in OBJECT_SPECS and not isinstance(spec, dict):
        raise SegmentError(f'{at}: needs an object of settings, e.g. {{"last_days": 30}}')
    return compile_kind(kind, spec, now, at)


def _boolean(kind: str, spec: Any, now: dt.datetime, at: str) -> Compiled:
    if not isinstance(spec, list) or not spec:
        raise SegmentError(f"{at}: needs a non-empty list of conditions")
    parts = [compile_condition(c, now, f"{at}[{i}]") for i, c in enumerate(spec)]
    joiner = sql.SQL(" AND " if kind == "all" else " OR ")
    return Compiled(sql.SQL("({})").format(joiner.join(p.where for p in parts)), [x for p in parts for x in p.params])


def _not(kind: str, spec: Any, now: dt.datetime, at: str) -> Compiled:
    inner = compile_condition(spec, now, at)
    return Compiled(sql.SQL("NOT ({})").format(inner.where), inner.params)


def _ordered(kind: str, spec: Any, now: dt.datetime, at: str) -> Compiled:
    period = _period(spec, now, at)
    if period.end is None:
        # Ordered since a time is "the last live order is at or after it", which the per-contact
        # statistics keep (last_order_at, over the same live orders): a smaller set than the orders.
        since, params = period.sql("last_order_at")
        return Compiled(
            sql.SQL("c.contact_id IN (SELECT contact_id FROM contact_order_stats WHERE {})").format(since), params
        )
    period_sql, params = period.sql("o.created_at")
    return _in_composed(period_sql, params)


def _order_count(kind: str, spec: Any, now: dt.datetime, at: str) -> Compiled:
    period, status = _period(spec, now, at), spec.get("status")
    wanted = _positive_int(spec.get("value"), f"{at}.value")
    if period.start is None and period.end is None and status is None:
        return _from_stats("sum(order_count)", _op(spec, at), wanted)
    if period.start is None and period.end is None and _status(status, f"{at}.status") == "COMPLETED":
        return _from_stats("sum(completed_count)", _op(spec, at), wanted)
    extra, params = period.sql("o.created_at")
    if spec.get("status") is not None:
        extra = sql.SQL("{} AND o.status = %s").format(extra)
        params = [*params, _status(spec["status"], f"{at}.status")]
    return _aggregate("count(*)", extra, params, _op(spec, at), wanted)


def _spent(kind: str, spec: Any, now: dt.datetime, at: str) -> Compiled:
    currency = _currency(spec, at)
    value = _number(spec.get("value"), f"{at}.value")
    period = _period(spec, now, at)
    if period.start is None and period.end is None:
        # All time: the per-contact statistics the sink keeps current answer it from one small table.
        sql_op, py_op = _op(spec, at)
        if py_op(0, value):
            return _in(
                f"SELECT contact_id FROM contact_order_stats WHERE currency = %s AND NOT (spent {sql_op} %s)",
                [currency, value],
                negate=True,
            )
        return _in(
            f"SELECT contact_id FROM contact_order_stats WHERE currency = %s AND spent {sql_op} %s",
            [currency, value],
        )
    extra, params = period.sql("o.created_at")
    extra = sql.SQL("{} AND o.status <> 'CANCELED' AND o.currency = %s").format(extra)
    return _aggregate("sum(o.net_total)", extra, [*params, currency], _op(spec, at), value)


def _average_order_value(kind: str, spec: Any, now: dt.datetime, at: str) -> Compiled:
    sql_op, _ = _op(spec, at)
    return _in(
        f"SELECT contact_id FROM contact_order_stats WHERE currency = %s AND average_order_value {sql_op} %s",
        [_currency(spec, at), _number(spec.get("value"), f"{at}.value")],
    )


def _has_status(kind: str, spec: Any, now: dt.datetime, at: str) -> Compiled:
    return _in(f"SELECT o.contact_id FROM orders o WHERE {LIVE_ORDER} AND o.status = %s", [_status(spec, at)])


def _abandoned_checkout(kind: str, spec: Any, now: dt.datetime, at: str) -> Compiled:
    since = _ago(now, spec.get("hours"), f"{at}.hours", "hours")
    # "Some open order older than N hours has no COMPLETED order after it" is the same as "the oldest
    # open order after the last COMPLETED one is older than N hours": the sink keeps that per contact.
    return _in("SELECT contact_id FROM contact_checkout WHERE open_since < %s", [since])


def _lapsed(kind: str, spec: Any, now: dt.datetime, at: str) -> Compiled:
    # Contacts who ordered before, but not in the last N days.
    return _in(
        "SELECT contact_id FROM contact_order_stats GROUP BY contact_id HAVING max(last_order_at) < %s",
        [_ago(now, spec.get("days"), f"{at}.days", "days")],
    )


def _rfm(kind: str, spec: Any, now: dt.datetime, at: str) -> Compiled:
    # Scores against the list's quintile bounds (ordersync.segmentation.rfm); a run refreshes the bounds first.
    unknown = sorted(set(spec) - {"score", "r", "f", "m", "currency"})
    if unknown:
        raise SegmentError(f"{at}: {unknown[0]!r} is not one of score, r, f, m, currency")
    try:
        ranges = rfm.parse_code(spec["score"]) if spec.get("score") is not None else {}
        for letter in rfm.LETTERS:
            if spec.get(letter) not in (None, ""):
                if letter in ranges:
                    raise SegmentError(f"{at}: give either score or {letter}, not both")
                ranges[letter] = rfm.parse_range(spec[letter])
    except rfm.RangeError as exc:
        raise SegmentError(f"{at}: {exc}") from None
    if not ranges:
        raise SegmentError(f'{at}: give a score ("555") or a range for r, f or m ("4+", "2-", "1-3")')
    currency = _currency(spec, at) if spec.get("currency") not in (None, "") else None
    return _in(*rfm.condition_sql(ranges, currency))


# Marketing consent as the contact holds it (docs/segments.md "Consent"): given, withdrawn, or never stated.
CONSENT = {
    "given": "c.marketing_consent IS TRUE",
    "withdrawn": "c.marketing_consent IS FALSE",
    "unknown": "c.marketing_consent IS NULL",
}


def _consent(kind: str, spec: Any, now: dt.datetime, at: str) -> Compiled:
    if spec not in CONSENT:
        raise SegmentError(f"{at}: one of {', '.join(CONSENT)}")
    return Compiled(sql.SQL(CONSENT[spec]), [])


CONDITIONS: dict[str, Callable[[str, Any, dt.datetime, str], Compiled]] = {
    "all": _boolean,
    "any": _boolean,
    "not": _not,
    "ordered": _ordered,
    "order_count": _order_count,
    "spent": _spent,
    "average_order_value": _average_order_value,
    "bought": lambda kind, spec, now, at: _bought(spec, at),
    "has_status": _has_status,
    "abandoned_checkout": _abandoned_checkout,
    "lapsed": _lapsed,
    "rfm": _rfm,
    "consent": _consent,
}


def _in_composed(extra: sql.Composable, params: list[Any]) -> Compiled:
    subquery = sql.SQL("SELECT o.contact_id FROM orders o WHERE " + LIVE_ORDER + " AND {}").format(extra)
    return Compiled(sql.SQL("c.contact_id IN ({})").format(subquery), params)


def _currency(spec: dict[str, Any], where: str) -> str:
    currency = spec.get("currency")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
        raise SegmentError(f'{where}.currency: amounts compare within one ISO currency, e.g. "EUR"')
    return currency.upper()


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _bought(spec: Any, where: str) -> Compiled:
    if not isinstance(spec, dict) or len(spec) != 1:
        raise SegmentError(f"{where}: give exactly one of product_id, sku, name, category")
    ((what, value),) = spec.items()
    tests = {
        "product_id": "i.product_id = %s",
        "sku": "i.sku = %s",
        "name": "lower(i.name) LIKE '%%' || lower(%s) || '%%'",
        "category": "i.categories @> ARRAY[%s]::text[]",
    }
    if what not in tests:
        raise SegmentError(f"{where}: {what!r} is not one of {sorted(tests)}")
    bound = _like_escape(str(value)) if what == "name" else str(value)
    if what == "category":
        # The sink keeps one row per contact and category bought (live, not cancelled orders) in the same
        # transaction as the orders: no join over every item.
        return _in("SELECT contact_id FROM contact_categories WHERE category = %s", [bound])
    return _in(
        "SELECT o.contact_id FROM orders o JOIN order_items i USING (store_id, source_order_id)"
        f" WHERE {LIVE_ORDER} AND o.status <> 'CANCELED' AND {tests[what]}",
        [bound],
    )


def build_query(
    segment: dict[str, Any],
    *,
    list_id: str | None = None,
    now: dt.datetime | None = None,
    count: bool = False,
    limit: int | None = None,
    lists: Sequence[str] | None = None,
) -> tuple[sql.Composed, list[Any]]:
    """The whole query: contacts of ``list_id`` (or all lists) that satisfy ``segment``, by e-mail;
    ``limit``: only the first ones (a preview); ``lists``: the lists the reader may see (None: all)."""
    compiled = compile_segment(segment, now or dt.datetime.now(dt.UTC))
    scopes: list[sql.Composable] = []
    params: list[Any] = []
    if list_id is not None:
        scopes.append(sql.SQL("c.list_id = %s AND "))
        params.append(list_id)
    if lists is not None:
        scopes.append(sql.SQL("c.list_id = ANY(%s) AND "))
        params.append(list(lists))
    scope = sql.Composed(scopes)
    select = (
        sql.SQL("SELECT count(*) FROM contacts c")
        if count
        else sql.SQL(
            "SELECT c.contact_id, c.list_id, c.email, c.first_name, c.last_name, c.marketing_consent FROM contacts c"
        )
    )
    order = sql.SQL("") if count else sql.SQL(" ORDER BY c.email")
    tail: list[Any] = []
    if limit is not None and not count:
        order, tail = sql.SQL(" ORDER BY c.email LIMIT %s"), [limit]
    query = sql.SQL("{} WHERE {}{}{}").format(select, scope, compiled.where, order)
    return query, [*params, *compiled.params, *tail]
