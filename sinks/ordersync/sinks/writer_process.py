"""The sink's writes, in a process of their own.

The consumer's process decodes and formats (pure Python: it holds the GIL nearly all the time). A writer
thread in that process would need the GIL back after every statement and wait for it each time; here
the process that talks to PostgreSQL does nothing else, and the consumer's writer thread only sends a
staged batch and waits for its answer, which costs it the GIL twice per batch.

Protocol on a pipe: the parent sends a ``Staged`` batch, the child writes it in one transaction (with
its offsets, see ordersync.sinks.writer) and answers ``("ok", WriteResult)`` or ``("error", message)``;
``None`` asks it to exit. One batch at a time, in order: the exactly-once argument is unchanged.
The child dies with its parent (PR_SET_PDEATHSIG), so a killed sink leaves no writer behind that could
commit a batch after a new sink has read the offsets.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import multiprocessing
import os
import signal
from multiprocessing.connection import Connection
from typing import Any

import psycopg

from ordersync.runtime.logs import configure_logging
from ordersync.sinks.reconnect import Reconnecting
from ordersync.sinks.writer import Staged, WriteResult, prepare, write_staged

_PR_SET_PDEATHSIG = 1


class WriterError(RuntimeError):
    """The writer process failed on a batch, or died."""


class BatchRefused(WriterError):
    """PostgreSQL refused the batch's data (a value out of range, a constraint): nothing of it was
    written, and writing it again will not help; some row in it must go."""


# Errors about the data itself (SQLSTATE classes 22 and 23), as opposed to the connection or our SQL.
REFUSED_DATA = (psycopg.errors.DataError, psycopg.errors.IntegrityError)


class WriterProcess:
    def __init__(
        self, database_url: str, consumer: str, retry_max_s: float = 10.0, generation: int | None = None
    ) -> None:
        # spawn, not fork: the consumer's process already runs librdkafka's threads.
        ctx = multiprocessing.get_context("spawn")
        self._pipe, child_end = ctx.Pipe()
        self._process = ctx.Process(
            target=_serve,
            args=(child_end, os.getpid(), database_url, consumer, retry_max_s, generation),
            name="sink-writer",
            daemon=True,
        )
        self._process.start()
        child_end.close()

    def write(self, staged: Staged) -> WriteResult:
        try:
            self._pipe.send(staged)
            status, answer = self._pipe.recv()
        except (EOFError, OSError) as exc:
            raise WriterError(f"the writer process ended (exit code {self._process.exitcode})") from exc
        if status == "refused":
            raise BatchRefused(f"the writer process failed: {answer}")
        if status != "ok":
            raise WriterError(f"the writer process failed: {answer}")
        assert isinstance(answer, WriteResult)
        return answer

    def close(self, timeout_s: float = 30.0) -> None:
        with contextlib.suppress(OSError):  # already gone
            self._pipe.send(None)
        self._process.join(timeout_s)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._pipe.close()


def _serve(
    pipe: Connection, parent: int, database_url: str, consumer: str, retry_max_s: float, generation: int | None
) -> None:
    _die_with(parent)
    # Ctrl-C reaches the whole process group: the parent decides when writing stops, not the signal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    configure_logging()  # a spawned process starts with nothing configured
    db = Reconnecting(database_url, retry_max_s=retry_max_s, on_connect=prepare)
    try:
        while True:
            try:
                staged = pipe.recv()
            except EOFError:
                return  # the parent is gone
            if staged is None:
                return
            answer: tuple[str, Any]
            try:
                # Retried until PostgreSQL is back, even when the sink is stopping: dropping a batch
                # would be safe (its offsets are not stored) but would only redo work.
                write = functools.partial(write_staged, staged=staged, consumer=consumer, generation=generation)
                answer = ("ok", db.run("flush", write))
            except REFUSED_DATA as exc:  # the parent finds the row to blame
                answer = ("refused", f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # sent to the parent, which stops the sink
                answer = ("error", f"{type(exc).__name__}: {exc}")
            pipe.send(answer)
    finally:
        db.close()


def _die_with(parent: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the pipe's EOF still ends the loop between batches
        pass
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)
