"""A single-node KRaft Apache Kafka 4.x broker from Maven Central jars.

Kafka 4.1 is chosen over 4.4 because it was the newest line whose broker, aiokafka 0.14 (faust) and
librdkafka 2.x (confluent-kafka) were all exercised together here; the proof is tests/test_stack_is_real.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from importlib import resources
from pathlib import Path

from ordersync.runtime.settings import Settings
from ordersync.stack.service import (
    ServiceError,
    ServiceStatus,
    log_tail,
    pid_alive,
    port_open,
    read_pid,
    terminate,
    wait_until,
)

KAFKA_VERSION = "4.1.1"
MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"

LOG4J2_PROPERTIES = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.controller.name = org.apache.kafka.controller
logger.controller.level = WARN
"""


def server_properties(settings: Settings, log_dir: Path) -> str:
    port, cport = settings.kafka_port, settings.kafka_controller_port
    return f"""\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{cport}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={log_dir}
num.partitions={settings.partitions}
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
"""


class LocalKafka:
    name = "kafka"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dir = settings.stack_dir / "kafka"
        self.log_dir = self.dir / "data"
        self.pid_file = self.dir / "kafka.pid"
        self.log_file = self.dir / "kafka.log"
        self.jar_dir = settings.jar_cache_dir / f"kafka-{KAFKA_VERSION}"

    # -- jars --------------------------------------------------------------------------------------
    def jars_present(self) -> bool:
        return (self.jar_dir / ".complete").exists()

    def fetch_jars(self) -> None:
        """Resolve the broker jars through Maven once; later calls find them cached and do nothing."""
        if self.jars_present():
            return
        mvn = shutil.which("mvn")
        if mvn is None:
            raise ServiceError("kafka: Maven (mvn) is not on PATH; it is needed once to fetch the broker jars")
        self.jar_dir.mkdir(parents=True, exist_ok=True)
        pom = resources.files("ordersync.stack").joinpath("kafka-pom.xml")
        with resources.as_file(pom) as pom_path:
            print(f"kafka: fetching Apache Kafka {KAFKA_VERSION} jars with Maven into {self.jar_dir}", file=sys.stderr)
            result = subprocess.run(
                [
                    mvn,
                    "-q",
                    "-B",
                    "-f",
                    str(pom_path),
                    f"-Dkafka.version={KAFKA_VERSION}",
                    "dependency:copy-dependencies",
                    f"-DoutputDirectory={self.jar_dir}",
                ],
                capture_output=True,
                text=True,
            )
        if result.returncode != 0:
            raise ServiceError(
                f"kafka: Maven could not fetch the broker jars:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
            )
        core = self.jar_dir / f"kafka_2.13-{KAFKA_VERSION}.jar"
        if not core.exists():
            raise ServiceError(f"kafka: Maven finished but {core} is missing")
        (self.jar_dir / ".complete").write_text(KAFKA_VERSION + "\n")

    def _java(self, main: str, *args: str) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise ServiceError("kafka: java is not on PATH (Kafka 4.x needs Java 17+)")
        return [
            java,
            "-Xms256m",
            "-Xmx512m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
            "-cp",
            f"{self.jar_dir}/*",
            main,
            *args,
        ]

    # -- lifecycle ---------------------------------------------------------------------------------
    def pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        return pid if pid is not None and pid_alive(pid, MAIN_CLASS) else None

    def ready(self) -> bool:
        if not port_open("127.0.0.1", self.settings.kafka_port):
            return False
        from confluent_kafka.admin import AdminClient

        try:
            metadata = AdminClient({"bootstrap.servers": self.settings.kafka_bootstrap}).list_topics(timeout=3)
        except Exception:
            return False
        return len(metadata.brokers) >= 1

    def status(self) -> ServiceStatus:
        pid = self.pid()
        return ServiceStatus(self.name, pid is not None, pid, self.settings.kafka_bootstrap, self.dir, self.log_file)

    def up(self, deadline_s: float = 120) -> None:
        pid = self.pid()
        if pid is not None:
            if not wait_until(self.ready, deadline_s, still_alive=lambda: self.pid() is not None):
                raise ServiceError(
                    f"kafka: pid {pid} runs but does not answer on {self.settings.kafka_bootstrap}\n{log_tail(self.log_file)}"
                )
            return
        self.pid_file.unlink(missing_ok=True)  # stale after a crash or kill -9
        if port_open("127.0.0.1", self.settings.kafka_port):
            raise ServiceError(
                f"kafka: port {self.settings.kafka_port} is taken by another process; "
                "set ORDERSYNC_STACK_KAFKA_PORT or ORDERSYNC_KAFKA_BOOTSTRAP"
            )
        self.fetch_jars()
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "log4j2.properties").write_text(LOG4J2_PROPERTIES)
        props = self.dir / "server.properties"
        props.write_text(server_properties(self.settings, self.log_dir))
        if not (self.log_dir / "meta.properties").exists():
            cluster_id = self._cluster_id()
            result = subprocess.run(
                # "--cluster-id=ID": an id may begin with "-", which the tool takes for an option when apart.
                self._java(
                    STORAGE_TOOL, "format", f"--cluster-id={cluster_id}", "-c", str(props), "--ignore-formatted"
                ),
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                raise ServiceError(f"kafka: formatting {self.log_dir} failed:\n{result.stdout}{result.stderr}")
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                self._java(MAIN_CLASS, str(props)),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{proc.pid}\n")
        if not wait_until(self.ready, deadline_s, still_alive=lambda: proc.poll() is None):
            state = "exited" if proc.poll() is not None else f"still not ready after {deadline_s:.0f}s"
            raise ServiceError(f"kafka: broker {state}; last lines of {self.log_file}:\n{log_tail(self.log_file)}")

    def _cluster_id(self) -> str:
        id_file = self.dir / "cluster.id"
        if id_file.exists():
            return id_file.read_text().strip()
        # A Kafka cluster id is a base64url-encoded UUID without padding (what `random-uuid` prints).
        import base64

        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        id_file.write_text(cluster_id + "\n")
        return cluster_id

    def down(self, grace_s: float = 30) -> None:
        pid = self.pid()
        if pid is not None:
            terminate(pid, MAIN_CLASS, grace_s)
        self.pid_file.unlink(missing_ok=True)
