"""No request makes the web app answer 5xx: every route fuzzed (hypothesis) over a real PostgreSQL, plus
the inputs that once did (``page=²``, NUL bytes, ``urn:uuid:`` ids, conditions that are not objects,
``1e-99999``, deep nesting, huge segments). And its bounded use of PostgreSQL: a connection pool whose
statements time out, a cap on concurrent exports."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlencode

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from ordersync.runtime.settings import Settings
from ordersync.segmentation.conditions import MAX_CONDITIONS, MAX_DEPTH
from ordersync.web.app import create_app
from tests.endpoints import Endpoints
from tests.sink_data import load_segment_fixture, segment_fixture

CONTACTS, ORDERS = segment_fixture(dt.datetime.now(dt.UTC).replace(microsecond=0))


@pytest.fixture(scope="module")
def web(database_url: str) -> Iterator[TestClient]:
    load_segment_fixture(database_url, CONTACTS, ORDERS)
    env = {"ORDERSYNC_DATABASE_URL": database_url, "ORDERSYNC_WEB_MAX_EXPORTS": "1"}
    app = create_app(Settings.from_env(env))
    with TestClient(app, base_url="http://127.0.0.1", follow_redirects=False) as client:
        yield client


def segment_url(document: object) -> str:
    return "/segments/new?" + urlencode({"mode": "json", "json": json.dumps(document)})


def nested(depth: int) -> dict[str, object]:
    document: dict[str, object] = {"ordered": {"last_days": 1}}
    for _ in range(depth):
        document = {"not": document}
    return document


KNOWN_BAD = [
    "/contacts?page=%C2%B2",
    "/contacts/00000000-0000-0000-0000-000000000000?page=%C2%B2",
    "/contacts?q=a%00b",
    "/contacts?list=%00",
    "/contacts/urn:uuid:12345678-1234-5678-1234-567812345678",
    "/contacts/%7B12345678-1234-5678-1234-567812345678%7D",
    "/orders/s%00/1",
    "/insights?store=%00",
    "/segments/new?kind0=lapsed&days0=%C2%B2",
    "/segments/new?kind0=lapsed&days0=1&remove=%C2%B2",
    segment_url({"all": [1, "x", None]}),
    segment_url({"ordered": 5}),
    segment_url({"spent": "lots"}),
    segment_url({"spent": {"op": ">", "value": "1e-99999", "currency": "EUR"}}),
    segment_url({"spent": {"op": ">", "value": 1e-300, "currency": "EUR"}}),
    segment_url({"average_order_value": {"op": ">", "value": "1e-99999", "currency": "EUR"}}),
    segment_url(nested(400)),
    segment_url({"all": [{"lapsed": {"days": n}} for n in range(600)]}),
    "/segments/export.csv?" + urlencode({"mode": "json", "json": json.dumps(nested(400))}),
    "/segments/export.csv?" + urlencode({"mode": "json", "json": json.dumps({"ordered": 5})}),
    "/segments/%C2%B2",
]


@pytest.mark.parametrize("url", KNOWN_BAD)
def test_inputs_that_once_gave_500_are_told_apart(web: TestClient, url: str) -> None:
    answer = web.get(url)
    assert answer.status_code in (200, 400, 404), (answer.status_code, answer.text[:500])


def test_the_limits_are_named(web: TestClient) -> None:
    deep = web.get(segment_url(nested(MAX_DEPTH + 1)))
    assert deep.status_code == 400 and f"nest at most {MAX_DEPTH} deep" in deep.text
    many = web.get(segment_url({"any": [{"lapsed": {"days": n}} for n in range(MAX_CONDITIONS + 1)]}))
    assert many.status_code == 400 and f"at most {MAX_CONDITIONS} conditions" in many.text
    tiny = web.get(segment_url({"spent": {"op": ">", "value": "1e-99999", "currency": "EUR"}}))
    assert tiny.status_code == 400 and "decimal places" in tiny.text


ROUTES = ["/contacts", "/contacts/{}", "/orders/{}/{}", "/insights", "/segments/new", "/segments/{}",
          "/segments/export.csv", "/segments"]  # fmt: skip
PARAMS = ["q", "list", "page", "tab", "by", "store", "mode", "json", "match", "kind0", "days0", "value0", "op0",
          "currency0", "when0", "from0", "to0", "status0", "by0", "what0", "remove", "add", "as_form", "fragment"]  # fmt: skip


SPECIAL = ["²", "\x00", "a\x00b", "1e-99999", "1e99999", "NaN", "-1", "99999999999999999999", "urn:uuid:" + "1" * 32,
           "{}", "[]", '{"all": [1]}', '{"ordered": 5}', "\ud7ff", "../..", "%00", "0x10", "１２"]  # fmt: skip
VALUES = st.one_of(st.text(max_size=60), st.sampled_from(SPECIAL), st.integers().map(str))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(ROUTES),
    parts=st.lists(VALUES, min_size=2, max_size=2),
    query=st.dictionaries(st.sampled_from(PARAMS), VALUES, max_size=6),
)
def test_no_request_gives_a_server_error(web: TestClient, route: str, parts: list[str], query: dict[str, str]) -> None:
    path = route.format(*(quote(p, safe="") or "x" for p in parts))
    answer = web.get(path + "?" + urlencode(query))
    assert answer.status_code < 500, (path, query, answer.status_code, answer.text[:300])


def test_page_queries_run_on_a_capped_pool_with_a_statement_timeout(web: TestClient) -> None:
    pool = web.app.state.pool  # type: ignore[attr-defined]
    assert pool.max_size == Settings.model_fields["web_pool_size"].default
    with pool.connection() as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("15s",)
        conn.execute("SET statement_timeout = '10ms'")
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(1)")


def test_one_export_more_than_the_cap_is_refused(web: TestClient) -> None:
    url = "/segments/export.csv?" + urlencode({"kind0": "lapsed", "days0": "0"})
    slots = web.app.state.export_slots  # type: ignore[attr-defined]
    assert slots.acquire(blocking=False)  # an export being read right now
    try:
        busy = web.get(url)
        assert busy.status_code == 503 and "too many exports" in busy.text
    finally:
        slots.release()
    done = web.get(url)
    assert done.status_code == 200 and done.text.startswith("email,")
    again = web.get(url)  # the finished export gave its slot back
    assert again.status_code == 200


def fill_big_list(database_url: str) -> None:
    """A list large enough that an export streams many chunks."""
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO contacts (contact_id, list_id, email, origin, created_at, updated_at, version)"
            " SELECT gen_random_uuid(), 'big', 'c' || n || '@example.com', 'IMPORT', now(), now(), 1"
            " FROM generate_series(1, 20000) n ON CONFLICT DO NOTHING"
        )
        conn.execute(
            "INSERT INTO contact_order_stats (contact_id, list_id, currency, order_count, completed_count, spent,"
            " average_order_value, first_order_at, last_order_at)"
            " SELECT contact_id, list_id, 'EUR', 1, 1, 10, 10, now(), now() FROM contacts WHERE list_id = 'big'"
            " ON CONFLICT DO NOTHING"
        )


BIG_EXPORT = urlencode({"mode": "json", "json": json.dumps({"ordered": {"last_days": 36500}}), "list": "big"})


@pytest.mark.parametrize("chunks_read", [0, 1])
def test_an_export_gives_its_slot_back_when_its_response_ends(
    web: TestClient, database_url: str, chunks_read: int
) -> None:
    """The slot came back only when the garbage collector finalised the abandoned CSV generator (an idle
    server: minutes; one never started: never), so a burst of aborted exports answered 503 for about 6
    minutes. Driven through the ASGI interface with the collector off: the client goes away before the
    first chunk, or after one, and the slot must be free as soon as the response has ended."""
    import gc

    import anyio

    fill_big_list(database_url)
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": "GET", "scheme": "http", "path": "/segments/export.csv", "raw_path": b"/segments/export.csv",
        "root_path": "", "query_string": BIG_EXPORT.encode(), "headers": [(b"host", b"127.0.0.1")],
        "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5000),
    }  # fmt: skip
    sent: list[dict[str, object]] = []

    async def abandoned_export() -> None:
        gone, asked = anyio.Event(), False

        async def receive() -> dict[str, object]:
            nonlocal asked
            if not asked:
                asked = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, object]) -> None:
            sent.append(message)
            if sum(m["type"] == "http.response.body" for m in sent) >= chunks_read:
                gone.set()
                await anyio.sleep(0.5)  # the client is gone: what is sent now goes nowhere

        await web.app(scope, receive, send)  # type: ignore[arg-type]

    slots = web.app.state.export_slots  # type: ignore[attr-defined]
    gc.disable()
    try:
        web.portal.call(abandoned_export)  # type: ignore[union-attr]
        assert sent and sent[0]["status"] == 200
        chunks = [m for m in sent if m["type"] == "http.response.body" and m["body"]]
        assert len(chunks) < 10, f"{len(chunks)} chunks: the export ran to its end, nothing was abandoned"
        assert slots.acquire(blocking=False), "the abandoned export still holds its slot after its response ended"
        slots.release()
    finally:
        gc.enable()


def test_exports_the_client_abandons_give_their_slots_back(
    web: TestClient, database_url: str, endpoints: Endpoints, tmp_path: Path
) -> None:
    """A burst of exports whose clients went away kept every slot taken (every export answered 503 for
    about 6 minutes): the slot was given back by the rows' own `finally`, which a generator never started
    does not run. The response gives it back now, however it ends."""
    import socket
    import urllib.error
    import urllib.request

    from tests.processes import wait_for
    from tests.web_helpers import serve_web

    fill_big_list(database_url)
    path = "/segments/export.csv?" + BIG_EXPORT
    with serve_web(database_url, endpoints, tmp_path / "web.log", env={"ORDERSYNC_WEB_MAX_EXPORTS": "2"}) as url:
        port = int(url.rsplit(":", 1)[1])
        for n in range(12):  # each goes away: half before reading anything, half after the first bytes
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
                if n % 2:
                    s.recv(1024)

        def exports() -> bool:
            try:
                with urllib.request.urlopen(url + path, timeout=10) as answer:
                    return answer.status == 200 and answer.read().startswith(b"email,")
            except urllib.error.HTTPError as exc:
                assert exc.code == 503, exc.code
                return False

        wait_for(exports, 20, "an export after the abandoned ones")
        assert all(exports() for _ in range(3))
