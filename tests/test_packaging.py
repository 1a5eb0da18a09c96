"""What ``pip install .`` really installs: a wheel built from the checkout, installed into a fresh
virtualenv outside it, must carry its schemas and migrations and run against the real services."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOT_SOURCE = (".git", ".venv", ".stack", "build", "*.egg-info", "__pycache__", ".*_cache", "tests", "bench")

ROUND_TRIP = """
from fastavro.utils import generate_one
from ordersync.schemas import decode, encode, registry

subjects = registry().subjects
for subject in subjects:
    for version in registry().versions(subject):
        record = generate_one(version.parsed)
        assert decode(encode(subject, record), subject) is not None, subject
print("round-tripped", len(subjects), "subjects:", " ".join(subjects))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ folder of a fresh virtualenv holding only the built wheel and its declared dependencies."""
    where = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools builds in the source tree, which must not collect build/ litter.
    source = shutil.copytree(ROOT, where / "source", ignore=shutil.ignore_patterns(*NOT_SOURCE))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(where / "dist"), str(source)],
        check=True,
        cwd=where,
    )
    (wheel,) = (where / "dist").glob("ordersync-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        (where / "wheel-files.txt").write_text("\n".join(archive.namelist()))
    venv.create(where / "venv", with_pip=True)
    bin_dir = where / "venv" / "bin"
    subprocess.run([bin_dir / "pip", "install", "-q", str(wheel)], check=True, cwd=where)
    return bin_dir


def test_the_wheel_installs_one_package_namespace(installed: Path) -> None:
    """Only ``ordersync`` (and its dist-info) lands in site-packages: no generic top-level ``web`` or
    ``schemas`` to collide with other distributions."""
    names = (installed.parent.parent / "wheel-files.txt").read_text().split()
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"ordersync", "ordersync-0.1.0.dist-info"}
    assert "ordersync/schemas/avro/order/v1.avsc" in names


def run_installed(bin_dir: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    # Outside the checkout, so nothing can be imported from it by accident.
    return subprocess.run(args, cwd=bin_dir.parent, env=clean, capture_output=True, text=True, timeout=300)


def test_the_wheel_carries_every_schema_and_migration(installed: Path) -> None:
    listing = run_installed(
        installed,
        [
            str(installed / "python"),
            "-c",
            "import ordersync.schemas as s, ordersync.sinks as k; print(s.__file__); print(k.__file__)",
        ],
        dict(os.environ),
    )
    assert listing.returncode == 0, listing.stderr
    assert str(ROOT) not in listing.stdout, "imported from the checkout, not from the installed wheel"
    site = Path(listing.stdout.splitlines()[0]).parent.parent
    shipped = {p.relative_to(site).as_posix() for p in site.glob("schemas/avro/*/*.avsc")}
    # in the checkout, each component folder holds its portion of the namespace: schemas/ordersync/schemas
    in_checkout = {
        p.relative_to(ROOT / "schemas" / "ordersync").as_posix()
        for p in ROOT.glob("schemas/ordersync/schemas/avro/*/*.avsc")
    }
    assert shipped == in_checkout
    migrations = {p.name for p in (site / "sinks" / "migrations").glob("*.sql")}
    assert migrations == {p.name for p in (ROOT / "sinks" / "ordersync" / "sinks" / "migrations").glob("*.sql")}

    def templates_and_styles(root: Path) -> set[str]:
        return {
            p.relative_to(root).as_posix()
            for folder in ("templates", "static")
            for p in (root / "web" / folder).iterdir()
        }

    assert templates_and_styles(site) == templates_and_styles(ROOT / "web" / "ordersync")
    code = run_installed(installed, [str(installed / "python"), "-c", ROUND_TRIP], dict(os.environ))
    assert code.returncode == 0, code.stderr
    assert "round-tripped" in code.stdout


@pytest.mark.broker
def test_the_installed_command_migrates_and_creates_topics(
    installed: Path, subprocess_env: dict[str, str], database_url: str, topic_prefix: str
) -> None:
    env = {**subprocess_env, "ORDERSYNC_DATABASE_URL": database_url, "ORDERSYNC_TOPIC_PREFIX": topic_prefix}
    migrate = run_installed(installed, [str(installed / "ordersync"), "db", "migrate"], env)
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    topics = run_installed(installed, [str(installed / "ordersync"), "topics", "create"], env)
    assert topics.returncode == 0, topics.stdout + topics.stderr
    assert f"{topic_prefix}raw.orders" in topics.stdout + topics.stderr
