"""What both local services share: pid files that survive crashes, readiness polling, log tails."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class ServiceError(RuntimeError):
    """A local service failed to start or stop; the message names it and carries its log tail."""


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    running: bool
    pid: int | None
    endpoint: str
    state_dir: Path
    log_file: Path

    def describe(self) -> str:
        state = f"running (pid {self.pid})" if self.running else "stopped"
        return f"{self.name:<10} {state:<22} {self.endpoint:<50} data={self.state_dir} log={self.log_file}"


class LocalService(Protocol):
    name: str

    def up(self, deadline_s: float = ...) -> None: ...
    def down(self, grace_s: float = ...) -> None: ...
    def status(self) -> ServiceStatus: ...


def pid_alive(pid: int, cmdline_marker: str) -> bool:
    """True if ``pid`` runs and its command line contains ``cmdline_marker``.

    The marker check matters after a crash: a stale pid file can point at a recycled pid that now
    belongs to an unrelated process.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    state = _proc_state(pid)
    return cmdline_marker in cmdline and state != "Z"


def _proc_state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "?"
    return stat.rsplit(")", 1)[1].split()[0]


def read_pid(pid_file: Path) -> int | None:
    try:
        text = pid_file.read_text().split()
        return int(text[0]) if text else None
    except (OSError, ValueError):
        return None


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def log_tail(log_file: Path, lines: int = 30) -> str:
    try:
        content = log_file.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {log_file})"
    return "\n".join(content[-lines:])


def wait_until(
    condition: Callable[[], bool],
    deadline_s: float,
    *,
    interval_s: float = 0.2,
    still_alive: Callable[[], bool] | None = None,
) -> bool:
    """Poll ``condition`` until it holds or the deadline passes; stop early if the process died."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if condition():
            return True
        if still_alive is not None and not still_alive():
            return condition()
        time.sleep(interval_s)
    return condition()


def terminate(pid: int, marker: str, grace_s: float) -> None:
    """SIGTERM, wait up to ``grace_s``, then SIGKILL."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if wait_until(lambda: not pid_alive(pid, marker), grace_s, interval_s=0.1):
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    wait_until(lambda: not pid_alive(pid, marker), 10, interval_s=0.1)
