"""A PostgreSQL server from the machine's own binaries (Debian's /usr/lib/postgresql/*/bin or PATH).

PostgreSQL refuses to run as root, so as root the server runs as the unprivileged ``postgres`` user.
Local-stack tuning: ``fsync=off``. A crashed *server* loses nothing with it (the OS page cache still
holds the writes); only an OS crash could. That trade is right for a laptop stack, never for production.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import shutil
import signal
import stat
import subprocess
from pathlib import Path

from ordersync.runtime.settings import Settings
from ordersync.stack.service import ServiceError, ServiceStatus, log_tail, pid_alive, read_pid, wait_until

SUPERUSER = "ordersync"
DATABASE = "ordersync"
UNPRIVILEGED_USER = "postgres"


def find_bin_dir() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version_key(p.parent.name))
    for bin_dir in reversed(candidates):
        if (bin_dir / "pg_ctl").exists():
            return bin_dir
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        return Path(pg_ctl).parent
    raise ServiceError("postgres: no PostgreSQL server binaries (pg_ctl) in /usr/lib/postgresql/*/bin or on PATH")


def _reachable_by_server_user(path: Path) -> bool:
    """Can the unprivileged server user traverse every folder down to ``path`` (or its nearest parent)?"""
    existing = path
    while not existing.exists():
        existing = existing.parent
    try:
        pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        return True  # the user does not exist yet; _prepare_dirs creates it and checks again
    probe = subprocess.run(["runuser", "-u", UNPRIVILEGED_USER, "--", "test", "-x", str(existing)], capture_output=True)
    return probe.returncode == 0


def root_owned_dir(path: Path) -> Path:
    """``path`` as a folder only root can change, made if missing. In a shared folder such as /var/tmp
    the name is predictable, so one that another user made first (or a symlink to elsewhere) is refused:
    root would otherwise chown and write wherever it points."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o755)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ServiceError(
            f"postgres: {path} exists but is not a folder that only root can change (a symlink, another "
            "user's, or writable by others); remove it or set ORDERSYNC_STACK_DIR to a folder of your own"
        )
    os.chmod(path, 0o755)  # mkdir's mode is cut by the umask; the server user must traverse it
    return path


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


class LocalPostgres:
    name = "postgres"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dir = self._state_dir(settings.stack_dir / "postgres")
        self.data_dir = self.dir / "data"
        self.log_file = self.dir / "postgres.log"

    @staticmethod
    def _state_dir(wanted: Path) -> Path:
        """As root, the server runs as ``postgres``, which cannot enter a checkout under a private folder
        (``mktemp -d`` makes 0700 ones). Then the data lives in a folder it can reach, named after the
        wanted one so each checkout keeps its own."""
        if os.geteuid() != 0 or _reachable_by_server_user(wanted.parent):
            return wanted
        digest = hashlib.sha1(str(wanted.resolve()).encode(), usedforsecurity=False).hexdigest()[:10]
        parent = root_owned_dir(Path("/var/tmp") / f"ordersync-{digest}")
        return parent / "postgres"

    # -- running as an unprivileged user when we are root -------------------------------------------
    def _as_server_user(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        return ["runuser", "-u", UNPRIVILEGED_USER, "--", *argv]

    def _prepare_dirs(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            return
        try:
            pw = pwd.getpwnam(UNPRIVILEGED_USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", UNPRIVILEGED_USER], check=True)
            pw = pwd.getpwnam(UNPRIVILEGED_USER)
        for path in (self.dir, *(p for p in self.dir.rglob("*") if not p.is_symlink())):
            os.chown(path, pw.pw_uid, pw.pw_gid, follow_symlinks=False)
        probe = subprocess.run(["runuser", "-u", UNPRIVILEGED_USER, "--", "test", "-w", str(self.dir)])
        if probe.returncode != 0:
            raise ServiceError(
                f"postgres: user {UNPRIVILEGED_USER!r} cannot reach {self.dir} (a parent folder is not "
                "traversable); set ORDERSYNC_STACK_DIR to a folder it can use, e.g. /tmp/ordersync-stack"
            )

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self._as_server_user(argv), capture_output=True, text=True, cwd="/")

    # -- lifecycle ---------------------------------------------------------------------------------
    def pid(self) -> int | None:
        pid = read_pid(self.data_dir / "postmaster.pid")
        return pid if pid is not None and pid_alive(pid, "postgres") else None

    def ready(self) -> bool:
        bin_dir = find_bin_dir()
        result = subprocess.run(
            [str(bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.settings.postgres_port)],
            capture_output=True,
        )
        return result.returncode == 0

    def status(self) -> ServiceStatus:
        pid = self.pid()
        return ServiceStatus(self.name, pid is not None, pid, self.settings.database_url, self.data_dir, self.log_file)

    def up(self, deadline_s: float = 60) -> None:
        bin_dir = find_bin_dir()
        self._prepare_dirs()
        if not (self.data_dir / "PG_VERSION").exists():
            result = self._run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--no-sync",
                ]
            )
            if result.returncode != 0:
                raise ServiceError(f"postgres: initdb failed:\n{result.stdout}{result.stderr}")
        if self.pid() is None:
            self._reap_orphans()
            options = " ".join(
                [
                    f"-p {self.settings.postgres_port}",
                    f"-k {self.dir}",
                    "-c listen_addresses=127.0.0.1",
                    "-c fsync=off",
                    "-c max_connections=200",
                    "-c shared_buffers=256MB",
                    "-c timezone=UTC",
                ]
            )
            result = self._run(
                [
                    str(bin_dir / "pg_ctl"),
                    "start",
                    "-w",
                    "-t",
                    str(int(deadline_s)),
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                    "-o",
                    options,
                ]
            )
            if result.returncode != 0:
                raise ServiceError(
                    f"postgres: pg_ctl start failed:\n{result.stdout}{result.stderr}\nlast lines of {self.log_file}:\n{log_tail(self.log_file)}"
                )
        if not wait_until(self.ready, deadline_s):
            raise ServiceError(
                f"postgres: not accepting connections on port {self.settings.postgres_port}\n{log_tail(self.log_file)}"
            )
        self._ensure_database()

    def _reap_orphans(self) -> None:
        """After ``kill -9`` of the postmaster its backends may linger and hold shared memory, which makes
        a new postmaster refuse to start. They are the postgres processes whose cwd is our data dir."""
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if Path(os.readlink(proc / "cwd")) == self.data_dir.resolve():
                    os.kill(int(proc.name), signal.SIGKILL)
            except OSError:
                continue

    def _ensure_database(self) -> None:
        import psycopg

        admin_url = f"postgresql://{SUPERUSER}@127.0.0.1:{self.settings.postgres_port}/postgres"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')

    def down(self, grace_s: float = 30) -> None:
        if self.pid() is None:
            return
        result = self._run(
            [
                str(find_bin_dir() / "pg_ctl"),
                "stop",
                "-w",
                "-t",
                str(int(grace_s)),
                "-m",
                "fast",
                "-D",
                str(self.data_dir),
            ]
        )
        if result.returncode != 0 and self.pid() is not None:
            raise ServiceError(f"postgres: pg_ctl stop failed:\n{result.stdout}{result.stderr}")
