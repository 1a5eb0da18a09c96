"""Campaign events in (CSV import, signed webhooks) and orders credited to campaigns, on the real broker
with a real processor worker."""

from __future__ import annotations

import datetime as dt
import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from ordersync.runtime.settings import Settings
from ordersync.schemas import decode
from ordersync.schemas.dead_letters import REASON
from ordersync.schemas.signatures import SIGNATURE, sign
from ordersync.topics_admin import create_topics
from tests.kafka_helpers import consume_until, drain, produce
from tests.processes import free_port, http_json, ordersync, port_open, running, wait_for
from tests.test_processor_integration import wait_until_committed
from tests.test_triggers_integration import process_args, raw

pytestmark = pytest.mark.broker

SECRET = "campaign-hook-secret"
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@pytest.fixture
def env(subprocess_env: dict[str, str], topic_prefix: str) -> dict[str, str]:
    return {
        **subprocess_env,
        "ORDERSYNC_TOPIC_PREFIX": topic_prefix,
        "ORDERSYNC_PARTITIONS": "2",
        "ORDERSYNC_CAMPAIGN_WEBHOOK_SECRET": SECRET,
        "W_KEY": "ck",
        "W_SECRET": "cs",
        "W_HOOK": "woo-hook",
        "ORDERSYNC_WEBHOOK_BODY_TIMEOUT_S": "1",
    }


def iso(at: dt.datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def events(bootstrap: str, prefix: str) -> list[dict[str, Any]]:
    return [decode(m.value(), "campaign_event") for m in drain(bootstrap, f"{prefix}campaign.events")]


def dead_letters(bootstrap: str, prefix: str) -> list[str]:
    return [dict(m.headers() or [])[REASON].decode() for m in drain(bootstrap, f"{prefix}dlq")]


def test_a_csv_import_stores_good_rows_and_dead_letters_bad_ones_with_their_line(
    env: dict[str, str], topic_prefix: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    csv_file = tmp_path / "events.csv"
    csv_file.write_text(
        "type,campaign_id,campaign_name,email,occurred_at,holdout,machine\n"
        f"send,spring,Spring sale,Ana@Example.com,{iso(NOW)},false,\n"
        f"send,spring,Spring sale,bo@example.com,{iso(NOW)},true,\n"
        f"open,spring,Spring sale,ana@example.com,{iso(NOW)},,yes\n"
        f"click,spring,Spring sale,ana@example.com,2026-03-01T10:00:00,,\n"  # no offset
        f"bounce,spring,Spring sale,ana@example.com,{iso(NOW)},,\n"
    )
    result = ordersync("campaigns", "import", str(csv_file), "--list", "1", env=env)
    assert result.returncode == 1, result.stderr
    assert "imported 3 campaign events into list 1" in result.stdout
    assert "line 5: occurred_at has no UTC offset" in result.stderr and "line 6: type must be" in result.stderr
    stored = events(kafka_bootstrap, topic_prefix)
    assert sorted((e["email"], e["type"], e["holdout"], e["machine"]) for e in stored) == [
        ("ana@example.com", "OPEN", False, True),
        ("ana@example.com", "SEND", False, False),
        ("bo@example.com", "SEND", True, False),
    ]
    assert sorted(r.split(":")[0] for r in dead_letters(kafka_bootstrap, topic_prefix)) == ["line 5", "line 6"]
    # the same file again: the same event ids (derived from the events), so consumers see repeats only
    ordersync("campaigns", "import", str(csv_file), "--list", "1", env=env)
    assert len({e["event_id"] for e in events(kafka_bootstrap, topic_prefix)}) == 3


def test_the_webhook_refuses_unsigned_events_and_names_the_ones_that_do_not_fit(
    env: dict[str, str], topic_prefix: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    config = tmp_path / "stores.toml"
    config.write_text(
        '[[store]]\nid = "woo"\nplatform = "woocommerce"\nbase_url = "http://127.0.0.1:9"\nlist_id = "1"\n'
        'timezone = "UTC"\nconsumer_key_env = "W_KEY"\nconsumer_secret_env = "W_SECRET"\nwebhook_secret_env = "W_HOOK"\n\n'
        '[[store]]\nid = "woo2"\nplatform = "woocommerce"\nbase_url = "http://127.0.0.1:9"\nlist_id = "2"\n'
        'timezone = "UTC"\nconsumer_key_env = "W_KEY"\nconsumer_secret_env = "W_SECRET"\nwebhook_secret_env = "W_HOOK"\n'
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}/webhooks/campaigns/1"
    batch = [
        {
            "type": "click",
            "campaign_id": "spring",
            "email": "ana@example.com",
            "occurred_at": iso(NOW),
            "event_id": "x1",
        },
        {"type": "open", "campaign_id": "spring", "email": "not an address", "occurred_at": iso(NOW)},
        {"type": "open", "campaign_id": "spring", "email": "bo@example.com", "occurred_at": iso(NOW), "event_id": "x2"},
    ]
    body = json.dumps(batch).encode()
    with running(
        ["webhook", "serve", "--config", str(config), "--port", str(port)], env, tmp_path / "hook.log"
    ) as hook:
        wait_for(lambda: port_open(port) or not hook.alive(), 60, "the receiver")
        assert http_json(url, body)[0] == 401
        forged = {SIGNATURE: sign(b"another key", int(time.time()), body)}
        assert http_json(url, body, forged)[0] == 401
        old = {SIGNATURE: sign(SECRET.encode(), int(time.time()) - 3600, body)}  # replayed an hour later
        assert http_json(url, body, old)[0] == 401
        assert not events(kafka_bootstrap, topic_prefix), "an unsigned event was stored"
        unscoped = {SIGNATURE: sign(SECRET.encode(), int(time.time()), body)}  # the list not signed
        assert http_json(url, body, unscoped)[0] == 401
        future = {SIGNATURE: sign(SECRET.encode(), int(time.time()) + 240, body, "1")}  # 4 minutes ahead
        assert http_json(url, body, future)[0] == 401
        signed = {SIGNATURE: sign(SECRET.encode(), int(time.time()), body, "1")}
        status, answer = http_json(url, body, signed)
        assert status == 400, answer
        assert json.loads(answer) == {"accepted": 2, "rejected": ["event 1: email is missing or not an e-mail address"]}
        assert http_json(url, body, signed)[0] == 401  # the same request again, within the window
        # Signed for list 1, sent unchanged to list 2: refused (it was stored in list 2 before).
        other = f"http://127.0.0.1:{port}/webhooks/campaigns/2"
        assert http_json(other, body, {SIGNATURE: sign(SECRET.encode(), int(time.time()), body, "1")})[0] == 401
        nowhere = f"http://127.0.0.1:{port}/webhooks/campaigns/99"
        assert http_json(nowhere, body, {SIGNATURE: sign(SECRET.encode(), int(time.time()), body, "99")})[0] == 404
        # Malformed signatures: 401 with one log line, never a 500 with a traceback.
        for bad in ("t=1" + "9" * 5000 + ",v1=" + "a" * 64, "t=1800000000,v1=ü" + "a" * 63, "t=,v1=", "x" * 5000):
            assert http_json(url, body, {SIGNATURE: bad})[0] == 401
        assert "Traceback" not in hook.output()
        # Too many objects in one request: refused whole, with how many are allowed.
        many = json.dumps([batch[0]] * 1001).encode()
        assert http_json(url, many, {SIGNATURE: sign(SECRET.encode(), int(time.time()), many, "1")})[0] == 413
        # Many bad ones: each dead-lettered, the answer summarised (was one reason per object, 26 MB).
        bad = json.dumps([{"type": "open"}] * 30).encode()
        status, answer = http_json(url, bad, {SIGNATURE: sign(SECRET.encode(), int(time.time()), bad, "1")})
        summary = json.loads(answer)
        assert status == 400 and len(summary["rejected"]) == 20 and summary["more_rejected"] == 10
        # A body that trickles: 408 once the body deadline passes (20 slow connections stayed open 49 s).
        with socket.create_connection(("127.0.0.1", port)) as slow:
            slow.sendall(b"POST /webhooks/campaigns/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n[")
            slow.settimeout(30)
            assert slow.recv(200).startswith(b"HTTP/1.1 408")
    assert sorted(e["event_id"] for e in events(kafka_bootstrap, topic_prefix)) == ["x1", "x2"]
    reasons = dead_letters(kafka_bootstrap, topic_prefix)
    assert reasons[0] == "event 1: email is missing or not an e-mail address" and len(reasons) == 1 + 30


def test_orders_are_credited_to_the_last_click_else_the_last_open_once_and_across_a_sigkill(
    env: dict[str, str], topic_prefix: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Touches imported first, then orders (some live, some a backfill of older ones): each order is
    credited as the rules say, a list without attribution gets nothing, and a worker killed midway
    credits nobody twice differently."""
    create_topics(Settings.from_env(env))
    csv_file = tmp_path / "events.csv"
    t = NOW - dt.timedelta(days=3)
    rows = ["type,campaign_id,email,occurred_at,machine"]
    for n in range(1, 61):
        email = f"c{n}@example.com"
        rows.append(f"send,spring,{email},{iso(t)},")
        if n % 3 == 0:
            rows.append(f"click,spring,{email},{iso(t + dt.timedelta(seconds=3))},")  # a link scanner
        if n % 3 == 1:
            rows.append(f"click,spring,{email},{iso(t + dt.timedelta(hours=2))},")
            rows.append(f"open,summer,{email},{iso(t + dt.timedelta(hours=5))},")  # later, but an open
        if n % 5 == 0:
            rows.append(f"open,summer,{email},{iso(t + dt.timedelta(hours=1))},yes")  # a privacy proxy
        if n % 5 == 1:
            rows.append(f"open,summer,{email},{iso(t + dt.timedelta(hours=1))},")
    csv_file.write_text("\n".join(rows) + "\n")
    assert ordersync("campaigns", "import", str(csv_file), "--list", "7", env=env).returncode == 0
    assert ordersync("campaigns", "import", str(csv_file), "--list", "8", env=env).returncode == 0
    config = tmp_path / "stores.toml"
    config.write_text('[attribution."7"]\n')  # the defaults; list 8 has none

    def expected(n: int) -> tuple[str, str] | None:
        if n % 3 == 1:
            return "spring", "CLICK"
        if n % 5 == 1:
            return "summer", "OPEN"
        return None

    created = t + dt.timedelta(days=1)
    orders = [raw(n, f"c{n}@example.com", "completed", created, "BACKFILL") for n in range(1, 31)]
    orders += [raw(100 + n, f"c{n}@example.com", "completed", created, "BACKFILL", list_id="8") for n in range(1, 11)]
    args = process_args(env, tmp_path / "state", config)
    with running(args, env, tmp_path / "first.log") as proc:
        # Touches first (docs/contract.md "Attribution": an order is decided with the touches known when
        # it is first seen): every campaign event committed means every touch is ahead of the orders.
        total = len(rows) - 1
        wait_until_committed(kafka_bootstrap, topic_prefix, 2 * total, 2, proc, "campaign.events")
        produce(kafka_bootstrap, f"{topic_prefix}raw.orders", orders)
        want = {str(n) for n in range(1, 31) if expected(n)}
        consume_until(
            kafka_bootstrap, f"{topic_prefix}attributions",
            lambda ms: {decode(m.value())["source_order_id"] for m in ms} >= want, alive=proc.alive, deadline_s=120,
        )  # fmt: skip
        proc.kill()
    later = [raw(n, f"c{n - 30}@example.com", "processing", created, "WEBHOOK") for n in range(31, 61)]
    produce(kafka_bootstrap, f"{topic_prefix}raw.orders", later)
    with running(args, env, tmp_path / "second.log") as proc:
        want |= {str(n) for n in range(31, 61) if expected(n - 30)}
        consume_until(
            kafka_bootstrap, f"{topic_prefix}attributions",
            lambda ms: {decode(m.value())["source_order_id"] for m in ms} >= want, alive=proc.alive, deadline_s=120,
        )  # fmt: skip
    credited: dict[str, set[tuple[str, str]]] = {}
    for m in drain(kafka_bootstrap, f"{topic_prefix}attributions"):
        record = decode(m.value())
        credited.setdefault(record["source_order_id"], set()).add((record["campaign_id"], record["touch"]))
    assert all(len(found) == 1 for found in credited.values()), "an order was credited two ways"
    got = {int(order_id): found.pop() for order_id, found in credited.items()}
    assert got == {n: expected(n if n <= 30 else n - 30) for n in range(1, 61) if expected(n if n <= 30 else n - 30)}


def test_a_list_with_automations_and_attribution_gets_both_from_each_live_order(
    env: dict[str, str], topic_prefix: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """With automations on, the contact stage gets the whole purchase rather than a credit item: each live
    order is credited to the click before it and fires its thank-you and first-order triggers."""
    create_topics(Settings.from_env(env))
    csv_file = tmp_path / "events.csv"
    t = NOW - dt.timedelta(hours=6)
    rows = ["type,campaign_id,email,occurred_at"]
    for n in range(1, 11):
        rows += [
            f"send,spring,b{n}@example.com,{iso(t)}",
            f"click,spring,b{n}@example.com,{iso(t + dt.timedelta(hours=1))}",
        ]
    csv_file.write_text("\n".join(rows) + "\n")
    assert ordersync("campaigns", "import", str(csv_file), "--list", "7", env=env).returncode == 0
    config = tmp_path / "stores.toml"
    config.write_text(
        '[automations."7"]\nmarketing_needs_consent = false\n[attribution."7"]\n'
    )  # defaults, consent aside
    with running(process_args(env, tmp_path / "state", config), env, tmp_path / "p.log") as proc:
        wait_until_committed(kafka_bootstrap, topic_prefix, 20, 2, proc, "campaign.events")
        produce(
            kafka_bootstrap,
            f"{topic_prefix}raw.orders",
            [raw(500 + n, f"b{n}@example.com", "completed", NOW, "WEBHOOK") for n in range(1, 11)],
        )
        credited = consume_until(
            kafka_bootstrap, f"{topic_prefix}attributions", lambda ms: len(ms) >= 10, alive=proc.alive, deadline_s=120
        )
        fired = consume_until(
            kafka_bootstrap, f"{topic_prefix}triggers", lambda ms: len(ms) >= 20, alive=proc.alive, deadline_s=120
        )
    credits = {
        decode(m.value())["source_order_id"]: (decode(m.value())["campaign_id"], decode(m.value())["touch"])
        for m in credited
    }
    assert credits == {str(500 + n): ("spring", "CLICK") for n in range(1, 11)}
    kinds = sorted((decode(m.value(), "trigger")["kind"], decode(m.value(), "trigger")["order_key"]) for m in fired)
    assert kinds == sorted(
        (kind, f"woo-ch:{500 + n}") for n in range(1, 11) for kind in ("FIRST_ORDER", "ORDER_THANK_YOU")
    )


def test_a_giant_csv_field_refuses_its_row_and_the_import_goes_on(
    env: dict[str, str], topic_prefix: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A field over the csv module's limit (131,072 characters) ended the whole import with a traceback."""
    csv_file = tmp_path / "events.csv"
    csv_file.write_text(
        "type,campaign_id,campaign_name,email,occurred_at\n"
        f"send,spring,Spring,ana@example.com,{iso(NOW)}\n"
        f"send,spring,{'x' * 200_000},bo@example.com,{iso(NOW)}\n"
        f"send,spring,Spring,cy@example.com,{iso(NOW)}\n"
    )
    result = ordersync("campaigns", "import", str(csv_file), "--list", "1", env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "imported 2 campaign events into list 1" in result.stdout
    assert "line 3: field larger than field limit" in result.stderr
    assert sorted(e["email"] for e in events(kafka_bootstrap, topic_prefix)) == ["ana@example.com", "cy@example.com"]
