"""The supervisor restarts what dies and kills what hangs (no heartbeat), with real child processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ordersync.supervisor import Child, Supervisor
from tests.processes import ROOT, free_port, port_open, wait_for


def test_a_child_without_heartbeats_is_killed_and_restarted_but_a_beating_one_is_left_alone(
    subprocess_env: dict[str, str], topic_prefix: str, database_url: str, tmp_path: Path
) -> None:
    env = {**subprocess_env, "ORDERSYNC_TOPIC_PREFIX": topic_prefix, "ORDERSYNC_DATABASE_URL": database_url}
    # `tail` waits for messages forever and never beats: as good as hung. The sink beats as it polls.
    silent = Child("silent", ["tail", "orders"], env)
    beating = Child("sink", ["sink"], env)
    supervisor = Supervisor([silent, beating], tmp_path / "logs", hang_after_s=8)
    watcher = threading.Thread(target=supervisor.watch, daemon=True)
    watcher.start()
    try:
        wait_for(
            lambda: silent.hangs >= 1 and silent.restarts >= 1 and silent.up,
            90,
            "the silent child killed and restarted",
        )
        assert beating.hangs == 0 and beating.restarts == 0 and beating.up
        assert beating.heartbeat_file is not None and beating.heartbeat_file.exists()
    finally:
        supervisor.stop()
        supervisor.shutdown(grace_s=20)
        watcher.join(10)


def test_health_names_a_store_failing_for_longer_than_allowed(tmp_path: Path) -> None:
    from ordersync.runtime.store_health import HealthBoard

    supervisor = Supervisor([], tmp_path, store_failing_after_s=60)
    board = HealthBoard(["w", "p"], str(supervisor.store_health_file))
    board.succeeded("p")
    board.failed("w", "store w: HTTP 503 (http://shop/x)")
    status, body = supervisor.health()
    assert status == 200 and body["stores"]["w"]["consecutive_failures"] == 1  # failing, not for long yet
    board.stores["w"].failing_since = time.time() - 61
    board.failed("w", "store w: HTTP 401: credentials refused (http://shop/x)")
    status, body = supervisor.health()
    assert status == 503
    assert body["stores"]["w"]["failing"] and "credentials refused" in body["stores"]["w"]["last_error"]
    assert not body["stores"]["p"]["failing"] and body["stores"]["p"]["last_success"] is not None
    board.succeeded("w")
    assert supervisor.health()[0] == 200


def test_metrics_parse_and_count_lag_dead_letters_and_failing_stores(
    kafka_bootstrap: str, topic_prefix: str, database_url: str, tmp_path: Path
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from ordersync.runtime.settings import Settings
    from ordersync.runtime.store_health import HealthBoard
    from ordersync.supervisor import Metrics
    from ordersync.topics_admin import create_topics
    from tests.kafka_helpers import produce

    settings = Settings.from_env({"ORDERSYNC_KAFKA_BOOTSTRAP": kafka_bootstrap, "ORDERSYNC_TOPIC_PREFIX": topic_prefix,
                                  "ORDERSYNC_PARTITIONS": "2"})  # fmt: skip
    create_topics(settings)
    produce(kafka_bootstrap, f"{topic_prefix}dlq", [(b"k", b"dead")] * 3)
    produce(kafka_bootstrap, f"{topic_prefix}raw.orders", [(str(i).encode(), b"x") for i in range(5)])
    supervisor = Supervisor([Child("sink", ["sink"])], tmp_path)
    HealthBoard(["w"], str(supervisor.store_health_file)).failed("w", "store w: HTTP 503")
    groups = {f"{topic_prefix}processor": [f"{topic_prefix}raw.orders"]}
    metrics = Metrics(supervisor, kafka_bootstrap, database_url, topic_prefix, groups)
    for _ in range(2):  # scraped twice: one admin client serves both
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(metrics.render().decode())
            for s in family.samples
        }
        assert samples[("ordersync_dead_letters", ())] == 3
        assert samples[("ordersync_consumer_lag", (("group", f"{topic_prefix}processor"),))] == 5
        assert samples[("ordersync_component_up", (("component", "sink"),))] == 0
        assert samples[("ordersync_store_consecutive_failures", (("store", "w"),))] == 1
        assert ("ordersync_end_to_end_latency_seconds_count", ()) in samples


def test_children_end_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    """A SIGKILLed (or OOM-killed) supervisor must not leave its children running: a restarted one would
    start a second of each beside them (two connectors per store, a webhook receiver that cannot bind)."""
    port = free_port()
    script = (
        "import sys; from pathlib import Path; from ordersync.supervisor import Supervisor, Child; "
        f"Supervisor([Child('shop', ['simulate', 'woocommerce', '--port', '{port}', '--orders', '5'], beats=False)], "
        f"Path(sys.argv[1])).watch()"
    )
    supervisor = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "logs")], cwd=ROOT)
    try:
        wait_for(lambda: port_open(port), 60, "the supervised child")
        children = [int(pid) for task in Path(f"/proc/{supervisor.pid}/task").iterdir()
                    for pid in (task / "children").read_text().split()]  # fmt: skip
        assert children, "the supervisor has no child process"
        supervisor.kill()
        supervisor.wait(30)
        wait_for(
            lambda: not any(Path(f"/proc/{pid}").exists() and _running(pid) for pid in children), 30, "orphans to end"
        )
    finally:
        supervisor.kill()
        for task in Path("/proc").glob("[0-9]*/cmdline"):
            if f"--port\0{port}".encode() in task.read_bytes():
                os.kill(int(task.parent.name), signal.SIGKILL)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
