"""`ordersync stack` on its own state dir and ports: up, env, status, recovery after kill -9, down."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from ordersync.runtime.settings import Settings
from ordersync.stack import LocalKafka, LocalPostgres
from ordersync.stack.service import pid_alive, wait_until
from tests.endpoints import docker_available


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ordersync.cli", "stack", *args], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.broker
@pytest.mark.skipif(docker_available(), reason="the local stack is only used without Docker")
def test_stack_up_env_kill9_recovery_down() -> None:
    # A private stack: its own state dir and ports. pytest's tmp_path is private to root, so the state
    # dir is a world-traversable /tmp folder that the unprivileged postgres user can reach.
    state_dir = Path(tempfile.mkdtemp(prefix="ordersync-stack-test-"))
    state_dir.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERSYNC_")}
    env.update(
        ORDERSYNC_STACK_DIR=str(state_dir),
        ORDERSYNC_STACK_KAFKA_PORT=str(free_port()),
        ORDERSYNC_STACK_CONTROLLER_PORT=str(free_port()),
        ORDERSYNC_STACK_POSTGRES_PORT=str(free_port()),
    )
    settings = Settings.from_env(env)
    exported = {
        **env,
        "ORDERSYNC_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "ORDERSYNC_DATABASE_URL": settings.database_url,
    }
    # A cluster id from base64url may begin with "-" (about one in 64): `kafka-storage format -t -x...`
    # took it for an option, and the id file is reused on every later try.
    (state_dir / "kafka").mkdir(parents=True)
    (state_dir / "kafka" / "cluster.id").write_text("-x6Plk2cSkOIYwB1IyPk3w\n")
    try:
        up = run_cli(env, "up")
        assert up.returncode == 0, up.stderr

        printed = run_cli(env, "env").stdout
        assert f"export ORDERSYNC_KAFKA_BOOTSTRAP=127.0.0.1:{settings.kafka_port}" in printed
        assert f"export ORDERSYNC_DATABASE_URL={settings.database_url}" in printed
        with psycopg.connect(settings.database_url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)

        # Second `up` is harmless and keeps the same processes.
        kafka, pg = LocalKafka(settings), LocalPostgres(settings)
        before = (kafka.pid(), pg.pid())
        assert run_cli(env, "up").returncode == 0
        assert (kafka.pid(), pg.pid()) == before

        # kill -9 both: pid files go stale, `status` notices, `up` brings both back.
        kafka_pid, pg_pid = before
        assert kafka_pid is not None and pg_pid is not None
        os.kill(kafka_pid, signal.SIGKILL)
        os.kill(pg_pid, signal.SIGKILL)
        assert wait_until(lambda: not pid_alive(kafka_pid, "kafka.Kafka") and not pid_alive(pg_pid, "postgres"), 30)
        assert run_cli(env, "status").returncode == 1
        again = run_cli(env, "up")
        assert again.returncode == 0, again.stderr
        assert kafka.pid() not in (None, kafka_pid) and pg.pid() not in (None, pg_pid)
        assert kafka.ready() and pg.ready()
        assert run_cli(env, "status").returncode == 0
        # README's sequence: `eval "$(ordersync stack env)"`, then `stack status` and `stack down` still
        # see the stack as theirs (they took its own address for an external cluster and left it running).
        exported = {
            **env,
            "ORDERSYNC_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "ORDERSYNC_DATABASE_URL": settings.database_url,
        }
        status = run_cli(exported, "status")
        assert status.returncode == 0 and "external" not in status.stdout, status.stdout
    finally:
        down = run_cli(exported, "down")
    assert down.returncode == 0, down.stderr
    assert LocalKafka(settings).pid() is None and LocalPostgres(settings).pid() is None
    shutil.rmtree(state_dir, ignore_errors=True)


@pytest.mark.broker
def test_up_reports_which_service_failed_with_its_log(tmp_path: Path) -> None:
    # A port already taken by something else is a clear, named failure, not a hang.
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERSYNC_")}
        env.update(
            ORDERSYNC_STACK_DIR=str(tmp_path / "stack"),
            ORDERSYNC_STACK_KAFKA_PORT=str(blocker.getsockname()[1]),
            ORDERSYNC_DATABASE_URL="postgresql://unused@127.0.0.1:1/none",
        )
        result = run_cli(env, "up", "--timeout", "20")
    assert result.returncode == 1
    assert "kafka" in result.stderr and "taken" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="the shared fallback folder is only used as root")
def test_a_planted_fallback_folder_is_refused(tmp_path: Path) -> None:
    """/var/tmp/ordersync-<hash> has a predictable name: one made by another user, or a symlink, must
    not be chowned and written through."""
    from ordersync.stack.postgres import root_owned_dir
    from ordersync.stack.service import ServiceError

    fresh = root_owned_dir(tmp_path / "fresh")
    assert fresh.is_dir() and (fresh.stat().st_mode & 0o777) == 0o755
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(ServiceError, match="symlink"):
        root_owned_dir(tmp_path / "link")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    os.chown(foreign, 65534, 65534)
    with pytest.raises(ServiceError, match="another"):
        root_owned_dir(foreign)
    (tmp_path / "open").mkdir(mode=0o777)
    os.chmod(tmp_path / "open", 0o777)
    with pytest.raises(ServiceError, match="writable by others"):
        root_owned_dir(tmp_path / "open")
