"""Numbered SQL migrations (``sinks/ordersync/sinks/migrations/NNN_name.sql``), applied once each, in order.

Each migration runs in its own transaction together with its row in ``schema_migrations``; an advisory
lock keeps two processes from migrating at once. A changed file that was already applied is an error.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_NAME = re.compile(r"^(\d{3})_([\w-]+)\.sql$")
_LOCK_ID = 0x0D5E_5A1C  # arbitrary, fixed: "ordersync migrations"


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for file in sorted(directory.glob("*.sql")):
        match = _NAME.match(file.name)
        if not match:
            raise MigrationError(f"{file.name}: migration files are named NNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), file.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migrations share a number")
    return found


def migrate(conninfo: str, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply what is missing; return what was applied (empty when up to date)."""
    applied_now = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {v: c for v, c in conn.execute("SELECT version, checksum FROM schema_migrations")}
            for migration in discover(directory):
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.version:03d}_{migration.name} changed after it was applied; "
                            "add a new migration instead"
                        )
                    continue
                with conn.transaction():
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                applied_now.append(migration)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied_now


def missing(conninfo: str, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations not applied yet (all of them on an empty database); changes nothing."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        done = {v for (v,) in conn.execute("SELECT version FROM schema_migrations")} if row and row[0] else set()
    return [m for m in discover(directory) if m.version not in done]
