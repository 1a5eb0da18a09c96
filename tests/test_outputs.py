"""The processor's output producer against the real broker: confirm returns once what was sent is
acknowledged, and a record Kafka refuses stops the commit (OutputFailed), never passes silently."""

from __future__ import annotations

import asyncio
import os

import pytest

from ordersync.processors.outputs import OutputFailed, OutputProducer
from tests.kafka_helpers import create_topic, drain


def test_confirm_waits_for_every_record_and_reports_changelog_offsets(kafka_bootstrap: str, unique: str) -> None:
    topic, changelog = f"{unique}-out", f"{unique}-changelog"
    create_topic(kafka_bootstrap, topic, 2)
    create_topic(kafka_bootstrap, changelog, 2)
    outputs = OutputProducer(kafka_bootstrap)
    outputs.watched_topics.add(changelog)
    for i in range(500):
        outputs.send(topic, f"k{i}".encode(), b"v")
    outputs.send(changelog, b"state", b"1", partition=1)
    outputs.send(changelog, b"state", b"2", partition=1)
    stored: dict[tuple[str, int], int] = {}
    asyncio.run(outputs.confirm(on_stored=stored.update))
    assert outputs.in_flight == 0
    assert len(drain(kafka_bootstrap, topic)) == 500
    assert stored == {(changelog, 1): 1}  # the highest acknowledged offset of the watched topic


def test_a_refused_record_fails_the_confirmation_with_the_reason(kafka_bootstrap: str, unique: str) -> None:
    topic = f"{unique}-tiny"
    create_topic(kafka_bootstrap, topic, 1, {"max.message.bytes": "2000"})
    outputs = OutputProducer(kafka_bootstrap)
    outputs.send(topic, b"ok", b"small")
    asyncio.run(outputs.confirm())
    outputs.send(topic, b"big", os.urandom(50_000))  # incompressible: the batch stays too big
    with pytest.raises(OutputFailed, match=r"1 failures, no commit until the worker restarts.*tiny.*too large"):
        asyncio.run(outputs.confirm())
    outputs.send(topic, b"ok", b"small again")
    # faust commits again while it shuts down after the crash: that commit must not pass the lost record
    # either, whatever was acknowledged since (it used to: the failure was reported once, then forgotten).
    with pytest.raises(OutputFailed, match="too large"):
        asyncio.run(outputs.confirm())
    assert outputs.failed


def test_an_agent_failure_refuses_every_later_commit(kafka_bootstrap: str, unique: str) -> None:
    outputs = OutputProducer(kafka_bootstrap)
    asyncio.run(outputs.confirm())
    outputs.fail("agent normalise failed on raw.orders[0]@12: RuntimeError: a bug")
    for _ in range(2):
        with pytest.raises(OutputFailed, match="a bug"):
            asyncio.run(outputs.confirm())
