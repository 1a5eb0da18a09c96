"""`ordersync triggers forward` against a real broker and a local receiver that fails the way real
endpoints do: 500s, an answer slower than the timeout, a refusal, and a forwarder killed mid-POST."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ordersync.runtime.settings import Settings
from ordersync.schemas import encode
from ordersync.schemas.signatures import SIGNATURE, sign, verify
from ordersync.sinks.forward import TRIGGER_ID, backoff, payload, retryable
from ordersync.topics_admin import create_topics
from tests.kafka_helpers import drain, produce
from tests.processes import Proc, wait_for
from tests.samples import trigger

SECRET = "s3cret-for-tests"


# -- pure ----------------------------------------------------------------------------------------------
def test_a_signature_verifies_only_for_its_body_secret_and_time() -> None:
    body = payload(trigger())
    header = sign(SECRET.encode(), 1_800_000_000, body)
    assert verify(SECRET.encode(), header, body, now=1_800_000_010)
    assert not verify(SECRET.encode(), header, body + b" ", now=1_800_000_010)
    assert not verify(b"other", header, body, now=1_800_000_010)
    assert not verify(SECRET.encode(), header, body, now=1_800_000_000 + 3600)  # a replayed capture
    assert not verify(SECRET.encode(), "garbage", body, now=1_800_000_000)


def test_the_payload_keeps_money_exact_and_times_in_utc() -> None:
    body = json.loads(payload(trigger()))
    assert body["spent"] == "2150.00" and body["items"][0]["total"] == "1200.00"
    assert body["fired_at"].endswith("Z")


def test_which_answers_are_retried() -> None:
    assert retryable(None) and retryable(500) and retryable(503) and retryable(429) and retryable(408)
    assert not retryable(400) and not retryable(401) and not retryable(422)
    assert [backoff(a, 0.5, 3) for a in (1, 2, 3, 4, 5)] == [0.5, 1, 2, 3, 3]


# -- against the broker --------------------------------------------------------------------------------
class Receiver:
    """Answers by a script of (status, delay) per request, then 200; records what it received."""

    def __init__(self, script: list[tuple[int, float]]) -> None:
        self.script = list(script)
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.holding = threading.Event()  # a request is being held (status 0: until released)
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    status, delay = receiver.script.pop(0) if receiver.script else (200, 0.0)
                    receiver.received.append(
                        {
                            "id": self.headers[TRIGGER_ID],
                            "body": json.loads(body),
                            "signed": verify(SECRET.encode(), self.headers[SIGNATURE], body, time.time()),
                            "status": status,
                        }
                    )
                if status == 0:
                    receiver.holding.set()
                    receiver.release.wait(60)
                    status = 200
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.end_headers()
                except OSError:  # the forwarder gave up waiting (its timeout) or was killed
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def ids(self) -> list[str]:
        with self.lock:
            return [r["id"] for r in self.received]


@pytest.fixture
def receiver_factory() -> Iterator[Any]:
    made: list[Receiver] = []

    def make(script: list[tuple[int, float]]) -> Receiver:
        made.append(Receiver(script))
        return made[-1]

    yield make
    for r in made:
        r.release.set()
        r.server.shutdown()


def _triggers(n_contacts: int, per_contact: int) -> list[dict[str, Any]]:
    out = []
    for i in range(per_contact):
        for c in range(n_contacts):
            t = trigger()
            t.update(trigger_id=f"00000000-0000-5000-8000-{c:06d}{i:06d}", contact_id=f"00000000-0000-5000-9000-{c:012d}",
                     fired_at=dt.datetime(2026, 12, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=i))  # fmt: skip
            out.append(t)
    return out


@pytest.mark.broker
def test_every_trigger_is_delivered_signed_and_in_order_per_contact_through_failures_and_a_kill(
    subprocess_env: dict[str, str], topic_prefix: str, kafka_bootstrap: str, tmp_path: Path, receiver_factory: Any
) -> None:
    env = {**subprocess_env, "ORDERSYNC_TOPIC_PREFIX": topic_prefix, "ORDERSYNC_PARTITIONS": "2",
           "ORDERSYNC_TRIGGERS_SECRET": SECRET, "ORDERSYNC_TRIGGERS_ATTEMPTS": "20"}  # fmt: skip
    create_topics(Settings.from_env(env))
    sent = _triggers(n_contacts=5, per_contact=8)
    produce(kafka_bootstrap, f"{topic_prefix}triggers",
            [(f"7:{t['contact_id']}".encode(), encode("trigger", t)) for t in sent])  # fmt: skip
    # 500, 500, 503, an answer after the 1 s timeout, then held until the forwarder is killed.
    receiver = receiver_factory([(500, 0), (500, 0), (503, 0), (200, 2.5), (200, 0), (0, 0)])
    args = ["triggers", "forward", "--url", receiver.url, "--timeout", "1"]
    proc = Proc(args, env, tmp_path / "forward-1.log")
    try:
        wait_for(lambda: receiver.holding.is_set() or not proc.alive(), 60, "a request held mid-POST")
        assert proc.alive(), proc.output()[-2000:]
        held = receiver.ids()[-1]
        proc.kill()
    finally:
        proc.close()
    receiver.release.set()
    with_restart = Proc([*args, "--idle-exit", "5"], env, tmp_path / "forward-2.log")
    try:
        assert with_restart.wait(120) == 0, with_restart.output()[-2000:]
    finally:
        with_restart.close()

    ids = receiver.ids()
    assert set(ids) == {t["trigger_id"] for t in sent}  # every trigger delivered
    assert ids.count(held) >= 2  # killed mid-POST: sent again, with the same id for the receiver's dedup
    assert all(r["signed"] for r in receiver.received)
    first_seen = list(dict.fromkeys(ids))
    for contact in {t["contact_id"] for t in sent}:
        mine = [t["trigger_id"] for t in sent if t["contact_id"] == contact]
        assert [i for i in first_seen if i in mine] == mine  # a contact's triggers in the order they fired


@pytest.mark.broker
def test_a_refused_trigger_goes_to_the_dead_letter_topic_with_the_reason(
    subprocess_env: dict[str, str], topic_prefix: str, kafka_bootstrap: str, tmp_path: Path, receiver_factory: Any
) -> None:
    env = {**subprocess_env, "ORDERSYNC_TOPIC_PREFIX": topic_prefix, "ORDERSYNC_TRIGGERS_SECRET": SECRET,
           "ORDERSYNC_TRIGGERS_ATTEMPTS": "3"}  # fmt: skip
    create_topics(Settings.from_env(env))
    refused, gone, fine = _triggers(3, 1)
    produce(kafka_bootstrap, f"{topic_prefix}triggers",
            [(b"7:x", encode("trigger", t)) for t in (refused, gone, fine)] + [(b"7:x", b"not avro")])  # fmt: skip
    receiver = receiver_factory([(422, 0), (500, 0), (500, 0), (500, 0)])
    proc = Proc(["triggers", "forward", "--url", receiver.url, "--idle-exit", "3"], env, tmp_path / "f.log")
    try:
        assert proc.wait(120) == 0, proc.output()[-2000:]
        output = proc.output()
    finally:
        proc.close()
    assert "delivered=1 dead_lettered=3" in output
    reasons = sorted(dict(m.headers())["dlq.reason"].decode() for m in drain(kafka_bootstrap, f"{topic_prefix}dlq"))
    assert reasons[0].startswith("default: HTTP 422 after 1 attempts")
    assert reasons[1].startswith("default: HTTP 500 after 3 attempts")
    assert reasons[2].startswith("not a trigger")
    assert "zoe@example.ch" not in output  # no personal data in the log


def test_the_forwarder_refuses_to_run_unsigned(subprocess_env: dict[str, str]) -> None:
    from tests.processes import ordersync

    result = ordersync("triggers", "forward", "--url", "http://127.0.0.1:9/x", env=subprocess_env)
    assert result.returncode == 2 and "ORDERSYNC_TRIGGERS_SECRET" in result.stderr


def test_a_plain_http_url_to_another_machine_is_warned_about() -> None:
    from ordersync.sinks.forward import plain_http_elsewhere

    assert plain_http_elsewhere("http://hooks.example.com/x") and plain_http_elsewhere("http://10.0.0.5/x")
    assert not plain_http_elsewhere("https://hooks.example.com/x")
    assert not plain_http_elsewhere("http://127.0.0.1:8080/x") and not plain_http_elsewhere("http://localhost/x")
    assert not plain_http_elsewhere("http://[::1]:9/x")


def test_offsets_are_committed_up_to_the_first_trigger_still_in_flight() -> None:
    from ordersync.sinks.forward import OffsetTracker

    offsets = OffsetTracker()
    for offset in (10, 11, 12, 13):
        offsets.consumed(0, offset)
    offsets.consumed(1, 4)
    offsets.finished(0, 12)
    offsets.finished(0, 10)
    assert offsets.committable() == {0: 11, 1: 4}  # 11 is in flight: 12 is done but not committable
    offsets.finished(0, 11)
    offsets.finished(0, 13)
    offsets.finished(1, 4)
    assert offsets.committable() == {0: 14, 1: 5} and offsets.open == 0
    offsets.forget({1})
    assert offsets.committable() == {0: 14}


class Redirector:
    """Answers every POST with a redirect elsewhere, as a URL missing its https or its trailing slash does."""

    def __init__(self, statuses: list[int], location: str) -> None:
        self.statuses = list(statuses)
        handler_self = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(handler_self.statuses.pop(0) if handler_self.statuses else 302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"


@pytest.mark.broker
def test_a_redirect_is_never_taken_for_a_delivery(
    subprocess_env: dict[str, str], topic_prefix: str, kafka_bootstrap: str, tmp_path: Path, receiver_factory: Any
) -> None:
    """urllib turned a POST answered 301/302/303 into a body-less GET to wherever it pointed, and counted
    that GET's 200 as delivered. Now no redirect is followed: each trigger is dead-lettered with the target."""
    env = {**subprocess_env, "ORDERSYNC_TOPIC_PREFIX": topic_prefix, "ORDERSYNC_TRIGGERS_SECRET": SECRET}
    create_topics(Settings.from_env(env))
    sent = _triggers(3, 1)
    produce(
        kafka_bootstrap,
        f"{topic_prefix}triggers",
        [(f"7:{t['contact_id']}".encode(), encode("trigger", t)) for t in sent],
    )
    elsewhere = receiver_factory([])  # where the redirects point: must receive nothing
    redirector = Redirector([301, 302, 307], elsewhere.url)
    try:
        proc = Proc(["triggers", "forward", "--url", redirector.url, "--idle-exit", "3"], env, tmp_path / "f.log")
        try:
            assert proc.wait(120) == 0, proc.output()[-2000:]
            output = proc.output()
        finally:
            proc.close()
    finally:
        redirector.server.shutdown()
    assert "delivered=0 dead_lettered=3" in output
    assert elsewhere.ids() == []
    reasons = sorted(dict(m.headers())["dlq.reason"].decode() for m in drain(kafka_bootstrap, f"{topic_prefix}dlq"))
    assert [r.split(" redirect")[0] for r in reasons] == ["default: HTTP 301", "default: HTTP 302", "default: HTTP 307"]
    assert all(f"redirect to {elsewhere.url} (not followed)" in r for r in reasons)


@pytest.mark.broker
def test_a_dead_letter_kafka_refuses_stops_the_forwarder_without_committing(
    subprocess_env: dict[str, str], topic_prefix: str, kafka_bootstrap: str, tmp_path: Path, receiver_factory: Any
) -> None:
    """A failed dead-letter write passed `flush() == 0` and the trigger's offset was committed: lost. Now
    only an acknowledged dead letter lets the offset go; otherwise the forwarder stops, and its restart
    (once Kafka takes the dead letter) sends it there."""
    from tests.kafka_helpers import set_topic_config

    env = {**subprocess_env, "ORDERSYNC_TOPIC_PREFIX": topic_prefix, "ORDERSYNC_TRIGGERS_SECRET": SECRET,
           "ORDERSYNC_TRIGGERS_ATTEMPTS": "1"}  # fmt: skip
    create_topics(Settings.from_env(env))
    set_topic_config(kafka_bootstrap, f"{topic_prefix}dlq", {"max.message.bytes": "64"})  # every dead letter refused
    (refused,) = _triggers(1, 1)
    produce(kafka_bootstrap, f"{topic_prefix}triggers", [(b"7:x", encode("trigger", refused))])
    receiver = receiver_factory([(422, 0)])
    args = ["triggers", "forward", "--url", receiver.url, "--idle-exit", "3"]
    proc = Proc(args, env, tmp_path / "f1.log")
    try:
        assert proc.wait(120) != 0, proc.output()[-2000:]
        assert "dead letter was not written" in proc.output()
    finally:
        proc.close()
    set_topic_config(kafka_bootstrap, f"{topic_prefix}dlq", {"max.message.bytes": "1048588"})
    again = Proc(args, env, tmp_path / "f2.log")
    try:
        assert again.wait(120) == 0, again.output()[-2000:]
        assert "delivered=1 dead_lettered=0" in again.output()  # read again: it was not committed
    finally:
        again.close()
    assert receiver.ids() == [refused["trigger_id"]] * 2


def test_a_malformed_signature_header_is_refused_without_an_error() -> None:
    """A non-ASCII v1 made hmac.compare_digest raise TypeError, a huge t an OverflowError: unauthenticated
    500s with a traceback each. Both are plain refusals now."""
    body = payload(trigger())
    for header in ("t=1800000000,v1=ü" + "a" * 63, "t=1" + "9" * 5000 + ",v1=" + "a" * 64, "t=1e9,v1=x", "=,=", ""):
        assert not verify(SECRET.encode(), header, body, now=1_800_000_000)


def test_a_signature_is_bound_to_its_scope_and_to_a_narrow_window() -> None:
    from ordersync.schemas.signatures import SeenSignatures

    body = b"[]"
    header = sign(SECRET.encode(), 1_800_000_000, body, "1")
    assert verify(SECRET.encode(), header, body, now=1_800_000_010, scope="1")
    assert not verify(SECRET.encode(), header, body, now=1_800_000_010, scope="2")  # another list
    assert not verify(SECRET.encode(), header, body, now=1_800_000_010)
    assert not verify(SECRET.encode(), header, body, now=1_800_000_000 - 120, scope="1")  # 2 minutes ahead
    seen = SeenSignatures()
    assert seen.first(header, now=1_800_000_010) and not seen.first(header, now=1_800_000_020)
    assert seen.first(header, now=1_800_000_000 + 1000)  # outside the window: verify refuses it anyway
