"""docker-compose.yml must parse; checked with whichever compose client this machine has."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def compose_command() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_docker_compose_file_parses() -> None:
    command = compose_command()
    if command is None:
        pytest.skip("no docker compose client on this machine")
    result = compose_config(
        command, POSTGRES_PASSWORD="not-a-default", ORDERSYNC_WEB_USER="m", ORDERSYNC_WEB_PASSWORD="not-a-default"
    )
    assert result.returncode == 0, result.stderr
    for service in ("kafka", "postgres", "topics", "migrate", "connectors", "webhooks", "processor", "sink", "web"):
        assert f"  {service}:" in result.stdout
    assert "not-a-default" in result.stdout


def test_docker_compose_has_no_default_database_password() -> None:
    """A known fallback password would be the password of every deployment that forgot to set one."""
    command = compose_command()
    if command is None:
        pytest.skip("no docker compose client on this machine")
    result = compose_config(command)
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr


def compose_config(command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """``compose config`` in an environment holding only ``env`` (and no .env file beside it)."""
    return subprocess.run(
        [*command, "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", **env},
    )


def test_example_store_config_is_valid() -> None:
    from ordersync.runtime.stores import load_stores

    stores = load_stores(ROOT / "stores.example.toml")
    assert {s.platform for s in stores} == {"woocommerce", "prestashop"}


def test_the_image_build_copies_every_package_the_wheel_declares() -> None:
    """The Dockerfile builds the wheel from copied folders: the ordersync package and every component folder
    it links to (ordersync/schemas -> ../schemas, ...). One left out fails the image build."""
    linked = {p.name for p in (ROOT / "ordersync").iterdir() if p.is_symlink()}
    assert {"producers", "processors", "schemas", "sinks"} <= linked
    copied = {line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("COPY ")}
    assert ({"ordersync"} | linked) - copied == set()
