"""The processor emits exactly the golden records for the golden history (tests/golden.py): outputs
unchanged, read back through the contract, whatever the processor's internals."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import pytest

from ordersync.runtime.settings import Settings
from ordersync.topics_admin import create_topics
from tests.golden import GOLDEN, comparable, count, output_count, run_history
from tests.processes import running, wait_for


@pytest.mark.parametrize("batched", [False, True], ids=["one-event-per-message", "page-batches"])
def test_processor_output_equals_the_golden_file(
    subprocess_env: dict[str, str], topic_prefix: str, kafka_bootstrap: str, tmp_path: Path, batched: bool
) -> None:
    partitions = 2
    golden = json.loads(GOLDEN.read_text())
    env = {**subprocess_env, "ORDERSYNC_TOPIC_PREFIX": topic_prefix, "ORDERSYNC_PARTITIONS": str(partitions)}
    create_topics(Settings.from_env(env))
    args = ["process", "--app-id", f"{topic_prefix}p", "--data-dir", str(tmp_path / "state"), "--loglevel", "warn"]

    with running(args, env, tmp_path / "proc.log") as proc:

        def phase_done(i: int, before: dict[str, int]) -> None:
            want = {t: before[t] + n for t, n in count(golden[i]).items()}
            wait_for(
                lambda: not proc.alive() or output_count(kafka_bootstrap, topic_prefix) == want,
                deadline_s=120,
                what=f"phase {i} outputs {want}",
            )
            assert proc.alive(), proc.output()[-3000:]

        got = run_history(kafka_bootstrap, topic_prefix, phase_done, partitions if batched else None)

    for i, (now, then) in enumerate(zip(got, golden, strict=True)):
        mine, theirs = comparable(now, batched), comparable(then, batched)
        for topic in theirs:
            if mine[topic] != theirs[topic]:
                diff = difflib.unified_diff(_lines(theirs[topic]), _lines(mine[topic]), "golden", "now", lineterm="")
                pytest.fail(f"phase {i}, topic {topic} differs:\n" + "\n".join(diff))


def _lines(value: object) -> list[str]:
    return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False).splitlines()
