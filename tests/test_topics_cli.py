"""`ordersync topics` and `ordersync tail` against the real broker."""

from __future__ import annotations

import json
import subprocess
import sys

from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from ordersync.schemas import encode
from ordersync.schemas.topics import CATALOGUE
from tests.kafka_helpers import produce
from tests.samples import SAMPLES


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ordersync.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_topics_create_is_idempotent_and_matches_the_catalogue(
    subprocess_env: dict[str, str], kafka_bootstrap: str, topic_prefix: str
) -> None:
    env = {**subprocess_env, "ORDERSYNC_TOPIC_PREFIX": topic_prefix, "ORDERSYNC_PARTITIONS": "3"}
    first = cli(env, "topics", "create")
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("created") == len(CATALOGUE)

    second = cli(env, "topics", "create")
    assert second.returncode == 0, second.stderr
    assert "created" not in second.stdout and second.stdout.count("ok ") == len(CATALOGUE)

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    metadata = admin.list_topics(timeout=30)
    assert len(metadata.topics[f"{topic_prefix}orders"].partitions) == 3
    resources = [ConfigResource(ResourceType.TOPIC, f"{topic_prefix}{n}") for n in ("orders", "raw.orders")]
    configs = {
        r.name: {k: v.value for k, v in f.result(30).items()} for r, f in admin.describe_configs(resources).items()
    }
    assert configs[f"{topic_prefix}orders"]["cleanup.policy"] == "compact"
    assert configs[f"{topic_prefix}raw.orders"]["cleanup.policy"] == "delete"
    assert configs[f"{topic_prefix}raw.orders"]["retention.ms"] == "-1"

    # A cluster that differs from the catalogue is reported, and fails unless told to ignore it.
    differing = cli({**env, "ORDERSYNC_PARTITIONS": "5"}, "topics", "create")
    assert differing.returncode == 1
    assert f"{topic_prefix}orders: partitions 3 (catalogue: 5)" in differing.stderr
    assert cli({**env, "ORDERSYNC_PARTITIONS": "5"}, "topics", "create", "--ignore-differences").returncode == 0

    listed = cli(env, "topics", "list")
    assert f"{topic_prefix}activity" in listed.stdout and "MISSING" not in listed.stdout


def test_tail_prints_decoded_json_lines(
    subprocess_env: dict[str, str], kafka_bootstrap: str, topic_prefix: str
) -> None:
    env = {**subprocess_env, "ORDERSYNC_TOPIC_PREFIX": topic_prefix}
    assert cli(env, "topics", "create").returncode == 0
    order = SAMPLES["order"][0]
    produce(
        kafka_bootstrap,
        f"{topic_prefix}orders",
        [(b"woo-ch:1379", encode("order", order)), (b"bad", b"\xc3\x01garbage!")],
    )
    result = cli(env, "tail", "orders", "--from-beginning", "--limit", "2", "--idle-timeout", "60")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    good = next(line for line in lines if line["key"] == "woo-ch:1379")
    assert good["value"]["total"] == "1234.560000"
    assert good["value"]["items"][0]["name"] == order["items"][0]["name"]
    bad = next(line for line in lines if line["key"] == "bad")
    assert "undecodable" in bad and bad["value_hex"].startswith("c301")
