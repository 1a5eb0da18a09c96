"""RFM scores (docs/rfm.md): recency, frequency and monetary value, each 1 to 5, per list and currency.

Over the contacts of a list with at least one order that counts towards "spent" (neither deleted nor
CANCELED) in a currency, the bounds are the values at 20, 40, 60 and 80 % of the ranked contacts
(PostgreSQL's ``percentile_disc``) of

- R: the time of the contact's last order,
- F: the number of its orders that count towards "spent",
- M: the amount it spent (net of refunds),

and a score is 1 plus the number of bounds the contact's value exceeds. Equal values share a score, so a
list where most contacts ordered once has F scores 1 and then higher ones only.

The sink keeps each contact's statistics current with every batch and marks the lists the batch changed
(``rfm_stale_lists``). Scores are computed when read, from the statistics and the bounds; the bounds of
a marked list are recomputed by :func:`refresh`, which a segment run calls before its query and the web
app every few seconds in the background.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

LETTERS = ("r", "f", "m")
_COLUMNS = {
    "r": ("s.last_order_at", "b.recency"),
    "f": ("s.priced_orders", "b.frequency"),
    "m": ("s.spent", "b.monetary"),
}


def _score(letter: str) -> str:
    value, bounds = _COLUMNS[letter]
    return "1 + " + " + ".join(f"({value} > {bounds}[{i}])::int" for i in range(1, 5))


# Every scored contact: one row per contact and currency.
SCORES = f"""
SELECT s.contact_id, s.list_id, s.currency, {_score("r")} AS r, {_score("f")} AS f, {_score("m")} AS m,
       s.last_order_at, s.priced_orders, s.spent
FROM contact_order_stats s
JOIN rfm_bounds b USING (list_id, currency)
WHERE s.priced_orders > 0
"""

CLAIM_STALE = (
    "DELETE FROM rfm_stale_lists WHERE %(lists)s::text[] IS NULL OR list_id = ANY(%(lists)s) RETURNING list_id"
)
MARK_STALE = "INSERT INTO rfm_stale_lists SELECT unnest(%s::text[]) ORDER BY 1 ON CONFLICT DO NOTHING"
STALE = "SELECT count(*) FROM rfm_stale_lists"
FORGET_BOUNDS = (
    "DELETE FROM rfm_bounds WHERE list_id = ANY(%(lists)s)",
    "DELETE FROM rfm_cells WHERE list_id = ANY(%(lists)s)",
)
COMPUTE_BOUNDS = """
INSERT INTO rfm_bounds
SELECT list_id, currency, count(*),
       percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY last_order_at),
       percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY priced_orders),
       percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY spent),
       now()
FROM contact_order_stats
WHERE priced_orders > 0 AND list_id = ANY(%(lists)s)
GROUP BY list_id, currency
"""

COMPUTE_CELLS = f"""
INSERT INTO rfm_cells
SELECT list_id, currency, r, f, count(*), sum(spent)
FROM ({SCORES} AND s.list_id = ANY(%(lists)s)) x
GROUP BY 1, 2, 3, 4
"""

CONTACT_SCORES = f"SELECT currency, r, f, m FROM ({SCORES} AND s.contact_id = %s) x ORDER BY currency"
# The Insights grid: contacts per R and F score (and their average amount spent), one currency, as of the
# lists' last refresh.
GRID = """
SELECT r, f, sum(contacts)::int AS contacts, round(sum(spent) / sum(contacts), 2) AS average_spent
FROM rfm_cells
WHERE currency = %(currency)s AND (%(lists)s::text[] IS NULL OR list_id = ANY(%(lists)s))
GROUP BY r, f
"""
CURRENCIES = """
SELECT currency, sum(contacts)::int AS contacts, min(computed_at) AS computed_at FROM rfm_bounds
WHERE %(lists)s::text[] IS NULL OR list_id = ANY(%(lists)s)
GROUP BY currency ORDER BY sum(contacts) DESC, currency
"""


class RangeError(ValueError):
    """A score range that is not 1-5, N+, N-, or N-M."""


@dataclass(frozen=True)
class ScoreRange:
    low: int
    high: int

    def sql(self, letter: str) -> str:
        """The range as a comparison of the contact's value with the bounds (``score >= N`` is ``value >
        bound[N-1]``), so the query needs no score column."""
        value, bounds = _COLUMNS[letter]
        parts = [f"{value} > {bounds}[{self.low - 1}]"] if self.low > 1 else []
        parts += [f"NOT ({value} > {bounds}[{self.high}])"] if self.high < 5 else []
        return " AND ".join(parts) or "true"

    def holds(self, score: int) -> bool:
        return self.low <= score <= self.high


_RANGE = re.compile(r"([1-5])(?:(\+)|(-)|-([1-5]))?")


def parse_range(text: Any) -> ScoreRange:
    """``"4"``, ``"4+"`` (4 or 5), ``"2-"`` (1 or 2), ``"2-4"``; RangeError for anything else."""
    match = _RANGE.fullmatch(str(text).strip())
    if isinstance(text, bool) or match is None:
        raise RangeError(f"{text!r} is not a score (1 to 5), N+ (N or more), N- (N or less) or N-M")
    n = int(match[1])
    if match[2]:
        return ScoreRange(n, 5)
    if match[3]:
        return ScoreRange(1, n)
    if match[4]:
        if int(match[4]) < n:
            raise RangeError(f"{text!r}: the range runs from the lower score to the higher")
        return ScoreRange(n, int(match[4]))
    return ScoreRange(n, n)


def parse_code(text: Any) -> dict[str, ScoreRange]:
    """``"555"`` (R, F and M) as one range per letter."""
    code = str(text).strip()
    if isinstance(text, bool) or not re.fullmatch(r"[1-5]{3}", code):
        raise RangeError(f"{text!r} is not an RFM code: three scores 1 to 5, R then F then M, e.g. 555")
    return {letter: ScoreRange(int(c), int(c)) for letter, c in zip(LETTERS, code, strict=True)}


def condition_sql(ranges: dict[str, ScoreRange], currency: str | None) -> tuple[str, list[Any]]:
    """A subquery of the contacts whose scores (in ``currency``, or in any) fall in ``ranges``."""
    tests = [ranges[letter].sql(letter) for letter in LETTERS if letter in ranges]
    params: list[Any] = []
    if currency is not None:
        tests.append("s.currency = %s")
        params.append(currency)
    query = (
        "SELECT s.contact_id FROM contact_order_stats s JOIN rfm_bounds b USING (list_id, currency)"
        " WHERE s.priced_orders > 0 AND " + " AND ".join(tests)
    )
    return query, params


def refresh(conn: psycopg.Connection[Any], lists: Sequence[str] | None = None) -> int:
    """Recompute the bounds of the marked lists (of ``lists``, or all); how many lists were recomputed.

    The marks are taken in a short transaction of their own, so a sink marking the same list meanwhile
    never waits for the computation; its mark stays for the next refresh. A computation that fails puts
    the marks back."""
    scope = {"lists": list(lists) if lists is not None else None}
    with conn.transaction():
        claimed = [row[0] for row in conn.execute(CLAIM_STALE, scope).fetchall()]
    if not claimed:
        return 0
    try:
        with conn.transaction():
            for statement in (*FORGET_BOUNDS, COMPUTE_BOUNDS, COMPUTE_CELLS):
                conn.execute(statement, {"lists": claimed})
    except BaseException:
        if not conn.closed and not conn.broken:
            with conn.transaction():
                conn.execute(MARK_STALE, (claimed,))
        raise
    return len(claimed)


def stale(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(STALE).fetchone()
    return int(row[0]) if row else 0


def contact_scores(conn: psycopg.Connection[Any], contact_id: str) -> list[dict[str, Any]]:
    """The contact's scores per currency (none before its first order that counts)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(CONTACT_SCORES, (contact_id,)).fetchall()


@dataclass(frozen=True)
class Grid:
    currency: str | None
    currencies: list[dict[str, Any]]
    cells: dict[tuple[int, int], dict[str, Any]]

    @property
    def contacts(self) -> int:
        return sum(int(cell["contacts"]) for cell in self.cells.values())


def grid(conn: psycopg.Connection[Any], lists: Sequence[str] | None, currency: str | None = None) -> Grid:
    """Contacts per R and F score in ``currency`` (default: the currency with the most scored contacts), as
    of the lists' last refresh."""
    scope = {"lists": list(lists) if lists is not None else None}
    with conn.cursor(row_factory=dict_row) as cur:
        currencies = cur.execute(CURRENCIES, scope).fetchall()
        known = [row["currency"] for row in currencies]
        chosen = currency if currency in known else (known[0] if known else None)
        if chosen is None:
            return Grid(None, currencies, {})
        cells = {(row["r"], row["f"]): row for row in cur.execute(GRID, {**scope, "currency": chosen}).fetchall()}
    return Grid(chosen, currencies, cells)
