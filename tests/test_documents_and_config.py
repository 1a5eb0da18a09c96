from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import pytest

from ordersync.producers.documents import PageError, Rejected, page_text, raw_bytes, split_array, split_resource_list
from ordersync.producers.http_client import redacted
from ordersync.producers.webhook import signature_valid
from ordersync.runtime.settings import without_password
from ordersync.runtime.stores import ConfigError, load_stores


def test_split_array_keeps_each_document_byte_for_byte() -> None:
    page = '[{"id":1,"u":"https:\\/\\/x.ch","p":7.50} , {"id":2,"price":3}]'
    docs = split_array(page)
    assert [t for t, _ in docs] == ['{"id":1,"u":"https:\\/\\/x.ch","p":7.50}', '{"id":2,"price":3}']
    assert str(docs[0][1]["p"]) == "7.50"  # parsed as Decimal, never float


def test_split_array_empty_and_broken() -> None:
    assert split_array(" [ ] ") == []
    with pytest.raises(PageError):
        split_array("<html>")
    with pytest.raises(PageError):
        split_array('[{"id":1} {"id":2}]')


def test_prestashop_lists_and_empty_answer() -> None:
    assert [d["id"] for _, d in split_resource_list('{"orders":[{"id":1},{"id":"2"}]}', "orders")] == [1, "2"]
    assert split_resource_list("[]", "orders") == []


def test_secrets_are_redacted_from_urls() -> None:
    shown = redacted(
        "https://shop/wp-json/wc/v3/orders", {"page": 2, "consumer_key": "ck_x", "consumer_secret": "cs_y"}
    )
    assert "ck_x" not in shown and "cs_y" not in shown and "page=2" in shown


def test_webhook_signature_is_over_raw_bytes() -> None:
    body = b'{"id":1,"u":"https:\\/\\/x"}'
    sig = base64.b64encode(hmac.new(b"s3cret", body, hashlib.sha256).digest()).decode()
    assert signature_valid(body, "s3cret", sig)
    assert not signature_valid(body.replace(b"\\/", b"/"), "s3cret", sig)  # re-serialised: refused
    assert not signature_valid(body, "other", sig)
    assert not signature_valid(body, "s3cret", None)


def test_store_config_loads_and_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "stores.toml"
    path.write_text(
        '[[store]]\nid = "w"\nplatform = "woocommerce"\nbase_url = "http://x"\nlist_id = 7\ntimezone = "Europe/Zurich"\n'
        'consumer_key_env = "K"\nconsumer_secret_env = "S"\n[store.status_overrides]\nrefunded = "completed"\n'
    )
    (store,) = load_stores(path)
    assert store.list_id == "7" and store.status_overrides == {"refunded": "COMPLETED"}
    monkeypatch.setenv("K", "ck_live_123")
    assert store.secret("consumer_key_env") == "ck_live_123"
    assert "ck_live_123" not in repr(store)
    monkeypatch.delenv("S", raising=False)
    with pytest.raises(ConfigError, match="S"):
        store.secret("consumer_secret_env")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[store]]\nid = "w"\nplatform = "magento"\nbase_url = "x"\nlist_id = "1"\n', "platform"),
        (
            '[[store]]\nid = "w"\nplatform = "woocommerce"\nbase_url = "x"\nlist_id = "1"\ntimezone = "Mars/Base"\n',
            "timezone",
        ),
        (
            '[[store]]\nid = "w"\nplatform = "woocommerce"\nbase_url = "x"\nlist_id = "1"\npassword = "x"\n',
            "unknown keys",
        ),
        (
            '[[store]]\nid = "w"\nplatform = "woocommerce"\nbase_url = "x"\nlist_id = "1"\n[store.status_overrides]\na = "DONE"\n',
            "status_overrides",
        ),
        ("not toml [", "stores.toml"),
    ],
)
def test_bad_store_config_is_a_clear_error(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "stores.toml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=message):
        load_stores(path)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://ordersync:s3cret@db:5432/x", "postgresql://ordersync:***@db:5432/x"),
        ("postgresql://u:p%40ss@[::1]:5432/x?sslmode=require", "postgresql://u:***@[::1]:5432/x?sslmode=require"),
        ("postgresql://ordersync@127.0.0.1:55432/x", "postgresql://ordersync@127.0.0.1:55432/x"),
        ("host=db password=s3cret dbname=x", "(a connection string)"),
    ],
)
def test_database_urls_are_printed_without_their_password(url: str, shown: str) -> None:
    assert without_password(url) == shown


def test_a_page_with_unreadable_documents_keeps_every_other_document() -> None:
    """One bad document costs only itself: not UTF-8, nested too deeply for the parser, or malformed."""
    deep = "[" * 100_000 + "]" * 100_000
    body = (
        b'[{"id":1,"name":"ok"},{"id":2,"name":"caf\xff"},{"id":3,"meta":'
        + deep.encode()
        + b'},{"id":4,"bad": tru},{"id":5,"name":"\\u00e9 \\"quoted\\" ]}"}]'
    )
    docs = split_array(page_text(body))
    assert [doc["id"] for _, doc in docs if not isinstance(doc, Rejected)] == [1, 5]
    rejected = {text[:7]: doc for text, doc in docs if isinstance(doc, Rejected)}
    assert rejected['{"id":2'].raw == b'{"id":2,"name":"caf\xff"}' and "UTF-8" in rejected['{"id":2'].reason
    assert rejected['{"id":3'].raw.endswith(b"]}") and "deeply" in rejected['{"id":3'].reason
    assert rejected['{"id":4'].raw == b'{"id":4,"bad": tru}' and "malformed" in rejected['{"id":4'].reason
    # Every byte of the page is in exactly one document, in order.
    assert b",".join(raw_bytes(text) for text, _ in docs) == body[1:-1]


def test_a_page_cut_off_inside_a_document_is_an_error_as_a_whole() -> None:
    with pytest.raises(PageError, match="cut off"):
        split_array('[{"id":1},{"id":2,"name":"x')


def test_store_fields_that_cannot_be_read_are_none_not_errors() -> None:
    from ordersync.producers.source import parse_time
    from ordersync.producers.woocommerce import _created, _customer_id, _int_id

    assert parse_time("0001-01-01T00:00:00", "Asia/Tokyo") is None  # before year 1 in UTC
    assert parse_time("2024-13-45T99:00:00", "UTC") is None
    assert parse_time("2024-03-01T10:00:00", "Europe/Zurich") is not None
    assert _created({"date_created_gmt": "2024-13-45T99:00:00"}) is None
    assert _created({"date_created_gmt": "0001-01-01T00:00:00"}) is None  # one second before it does not exist
    assert _created({"date_created_gmt": "2024-03-01T10:00:00"}) == "2024-03-01T10:00:00"
    assert _customer_id({"id": "²"}) is None and _int_id("²") is None  # "²".isdigit() is True, int() fails
    assert _customer_id({"id": "42"}) == 42


def test_a_bad_setting_names_its_variable_and_the_cli_exits_2() -> None:
    import subprocess
    import sys

    from ordersync.runtime.settings import Settings

    with pytest.raises(ValueError, match=r"ORDERSYNC_STORE_RETRY_MAX_S: .*seconds.*'-5'"):
        Settings.from_env({"ORDERSYNC_STORE_RETRY_MAX_S": "-5"})
    assert Settings.from_env({"ORDERSYNC_TOPIC_PREFIX": "x."}).with_prefix("y.").topic_prefix == "y."
    result = subprocess.run(
        [sys.executable, "-m", "ordersync.cli", "topics", "list"],
        env={"PATH": "/usr/bin:/bin", "ORDERSYNC_PARTITIONS": "four"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "ORDERSYNC_PARTITIONS" in result.stderr and "Traceback" not in result.stderr


PASSWORD = "s3cret pw'$x"


@pytest.mark.parametrize(
    "url",
    [f"postgres:/u:{PASSWORD}@h/db", f"postgresql://u:{PASSWORD}@127.0.0.1:notaport/db",
     "postgresql://u:s3cretpw@127.0.0.1:1/db", "host=127.0.0.1 port=1 password=s3cretpw dbname=x"],
)  # fmt: skip
def test_the_database_password_is_never_printed(url: str) -> None:
    """Not by a settings error (an unparsable URL), not by a connection error, not in a traceback."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "ordersync.cli", "db", "migrate"],
        env={"PATH": "/usr/bin:/bin", "ORDERSYNC_DATABASE_URL": url},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode != 0
    assert "s3cret" not in result.stdout + result.stderr, result.stderr


def test_redaction_covers_urls_and_keyword_strings() -> None:
    from ordersync.runtime.logs import redact

    assert redact("at postgresql://u:pw@h:5/db and mysql:/a:b@c") == "at postgresql://u:***@h:5/db and mysql:/a:***@c"
    assert redact("host=h password='a b\\' c' dbname=x") == "host=h password=*** dbname=x"
    assert redact("nothing secret in http://h/x?y=z") == "nothing secret in http://h/x?y=z"


def test_stack_env_quotes_its_values_for_the_shell() -> None:
    import subprocess
    import sys

    url = f"postgresql://u:{PASSWORD}@127.0.0.1:1/db"
    shown = subprocess.run(
        ["bash", "-c", f'eval "$({sys.executable} -m ordersync.cli stack env)" && printf %s "$ORDERSYNC_DATABASE_URL"'],
        env={"PATH": "/usr/bin:/bin", "ORDERSYNC_DATABASE_URL": url},
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout == url


def test_every_setting_and_stores_file_section_is_documented() -> None:
    """docs/configuration.md lists every ORDERSYNC_* variable and every section of the stores file."""
    import re
    import tomllib

    from ordersync.runtime.settings import Settings
    from tests.processes import ROOT

    doc = (ROOT / "docs" / "configuration.md").read_text()
    for name, found in Settings.model_fields.items():
        variable = found.validation_alias or f"ORDERSYNC_{name.upper()}"
        assert f"`{variable}`" in doc, f"{variable} is not in docs/configuration.md"
    example = tomllib.loads((ROOT / "stores.example.toml").read_text())
    sections = {f"[[{key}]]" if isinstance(value, list) else f'[{key}."<list>"]' for key, value in example.items()}
    sections |= {f"[store.{key}]" for store in example["store"] for key, v in store.items() if isinstance(v, dict)}
    sections |= {
        f'[[automations."<list>".{key}]]'
        for rules in example.get("automations", {}).values()
        for key, v in rules.items()
        if isinstance(v, list) and v and isinstance(v[0], dict)
    }
    documented = set(re.findall(r"`(\[\[?[^`]+\]\]?)`", doc))
    assert sections <= documented, sections - documented
