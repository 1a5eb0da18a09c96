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
    for service in (
        "kafka",
        "postgres",
        "topics",
        "migrate",
        "connectors",
        "webhooks",
        "processor",
        "sink",
        "refresher",
        "web",
    ):
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
    """The Dockerfile builds the wheel from copied folders: the shell and every component folder that
    pyproject.toml maps a package to (ordersync.schemas = schemas/ordersync/schemas, ...). One left out
    fails the image build."""
    import tomllib

    mapped = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    folders = {path.split("/")[0] for path in mapped.values()}
    assert {"producers", "processors", "schemas", "sinks"} <= folders
    copied = {line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("COPY ")}
    assert ({"ordersync"} | folders) - copied == set()


def test_no_symbolic_links_in_the_tree() -> None:
    """Every path Python reports is a path git knows: the namespace is made of real folders."""
    listed = subprocess.run(["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert [line for line in listed.stdout.splitlines() if line.startswith("120000")] == []


def test_the_component_folders_are_not_importable_from_the_root() -> None:
    """From the checkout's root a bare folder name is not a second copy of the code."""
    import importlib.util

    for folder in ("processors", "producers", "schemas", "sinks", "web"):
        spec = importlib.util.find_spec(folder)
        assert spec is None or spec.origin is None, f"{folder} imports as code: {spec.origin}"
        assert not (ROOT / folder / "__init__.py").exists()
    import ordersync.processors.agents

    assert Path(ordersync.processors.agents.__file__).resolve().is_relative_to(ROOT / "processors" / "ordersync")
