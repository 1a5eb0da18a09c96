"""The builder's form rows ↔ segment documents (pure: no database)."""

from __future__ import annotations

import pytest

from ordersync.segmentation import SegmentError
from ordersync.segmentation.form import (
    DEFAULTS,
    KINDS,
    Builder,
    builder_from_document,
    builder_from_query,
    document_from_builder,
    new_row,
    query_from_builder,
)


def test_every_kind_round_trips_through_the_form() -> None:
    rows = [new_row(kind) for kind in KINDS]
    rows[5]["text"] = "Shoes"  # bought needs a value
    rows.append({**new_row("spent"), "when": "between", "from": "2026-01-01", "to": "2026-02-01"})
    rows.append({**new_row("order_count"), "status": "COMPLETED", "when": "last", "days": "365"})
    document = document_from_builder(Builder("any", rows))
    again = builder_from_document(document)
    assert again is not None
    assert document_from_builder(again) == document
    assert document_from_builder(builder_from_query(query_from_builder(again))) == document


def test_the_form_adds_and_removes_rows() -> None:
    query = query_from_builder(Builder("all", [new_row("lapsed"), new_row("ordered")]))
    assert [r["kind"] for r in builder_from_query({**query, "add": "spent"}).rows] == ["lapsed", "ordered", "spent"]
    assert [r["kind"] for r in builder_from_query({**query, "remove": "0"}).rows] == ["ordered"]
    assert builder_from_query({**query, "add": "nonsense"}).rows == builder_from_query(query).rows


def test_nested_documents_are_left_to_the_json_editor() -> None:
    assert builder_from_document({"all": [{"not": {"has_status": "CANCELED"}}]}) is None
    assert builder_from_document({"all": [{"any": [{"lapsed": {"days": 3}}]}]}) is None
    single = builder_from_document({"lapsed": {"days": 3}})
    assert single is not None and single.rows == [{"kind": "lapsed", "days": "3", "when": "ever"}]


@pytest.mark.parametrize(
    ("row", "says"),
    [
        ({"kind": "spent", "op": ">", "amount": "lots", "currency": "EUR"}, "condition 1 (Amount spent)"),
        ({"kind": "ordered", "when": "between"}, "give a from date, a to date or both"),
        ({"kind": "lapsed", "days": "-3"}, "days must be a whole number"),
        ({"kind": "bought", "by": "colour", "text": "red"}, "choose what to match"),
        ({"kind": "bought", "by": "sku", "text": ""}, "give the SKU"),
        ({"kind": "order_count", "op": "~", "number": "2"}, "'~' is not one of"),
    ],
)
def test_an_incomplete_row_says_which_and_why(row: dict[str, str], says: str) -> None:
    with pytest.raises(SegmentError, match=says.replace("(", r"\(").replace(")", r"\)")):
        document_from_builder(Builder("all", [row]))


def test_defaults_cover_every_kind() -> None:
    assert set(DEFAULTS) == set(KINDS)


def test_csv_cells_a_spreadsheet_would_run_are_defused() -> None:
    from ordersync.segmentation.export import COLUMNS, csv_rows

    contact = {"email": "-x@example.com", "first_name": "=HYPERLINK(\"http://evil\")", "last_name": None,
               "list_id": "1", "contact_id": "c"}  # fmt: skip
    header, row = csv_rows([contact])
    assert header == list(COLUMNS)
    assert row == ["'-x@example.com", '\'=HYPERLINK("http://evil")', "", "1", "c", ""]  # consent never stated


@pytest.mark.parametrize("name", [" =1+1", "\u00a0@SUM(A1)", "\n-2", "  +cmd", "\t=x"])
def test_formula_cells_behind_white_space_are_defused_too(name: str) -> None:
    from ordersync.segmentation.export import cell

    assert cell(name) == "'" + name
    assert cell("Ana =") == "Ana ="


@pytest.mark.parametrize("name", ['\uff1dHYPERLINK("http://evil")', " \uff0bcmd", "\uff20SUM(A1)", "\uff0d2+3"])
def test_full_width_formula_starts_are_defused_and_plain_numbers_kept(name: str) -> None:
    """Some spreadsheets read a full-width equals sign as =. Campaign names come from sending platforms."""
    from ordersync.segmentation.export import cell

    assert cell(name) == "'" + name
    assert cell("-35.659737") == "-35.659737" and cell("+12") == "+12" and cell("12.5") == "12.5"


def test_terminal_escapes_are_shown_not_run() -> None:
    from ordersync.segmentation.export import printable

    assert printable("Spring\x1b[2J\x1b]0;pwned\x07 sale") == "Spring\\x1b[2J\\x1b]0;pwned\\x07 sale"
    assert printable("Frühling -20 %") == "Frühling -20 %"
    assert printable("a\u009bb") == "a\\x9bb"
