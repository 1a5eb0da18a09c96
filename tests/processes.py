"""Running ordersync commands as real subprocesses in tests, and stopping them for sure."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], bool], deadline_s: float, what: str, interval_s: float = 0.2) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(interval_s)
    if not condition():
        raise AssertionError(f"timed out after {deadline_s}s waiting for {what}")


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.3):
        return True
    return False


class Proc:
    def __init__(self, args: list[str], env: dict[str, str], log: Path, module: str = "ordersync.cli") -> None:
        self.args, self.env, self.log_path = args, env, log
        self._log = log.open("ab")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(30)

    def stop(self, timeout: float = 60) -> int:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                return self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        return self.popen.wait(30)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 80) -> str:
        text = self.output().replace("\r", "\n")
        return "\n".join([line[:300] for line in text.splitlines() if line.strip()][-lines:])

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.kill()
        self._log.close()


@contextlib.contextmanager
def running(args: list[str], env: dict[str, str], log: Path, module: str = "ordersync.cli") -> Iterator[Proc]:
    """``python -m MODULE ARGS`` (the ordersync CLI by default) while the block runs."""
    proc = Proc(args, env, log, module)
    try:
        yield proc
    except BaseException:
        # What the process was doing when the test gave up: pytest shows it beside the failure, which is
        # all a CI run on a machine that is gone afterwards leaves to read.
        print(f"--- last lines of {log.name} ({' '.join(args[:1])}) ---\n{proc.tail()}", file=sys.stderr)
        raise
    finally:
        proc.close()


def http_json(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=body, headers=headers or {}, method="POST" if body is not None else "GET"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def env_with(base: dict[str, str], **extra: str) -> dict[str, str]:
    return {**base, **extra, "PYTHONUNBUFFERED": "1", "COLUMNS": "120", "PATH": os.environ.get("PATH", "")}


def ordersync(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``ordersync ARGS`` run to its end, output captured, its exit status left to the caller."""
    return subprocess.run(
        [sys.executable, "-m", "ordersync.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
