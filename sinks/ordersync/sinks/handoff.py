"""Write one batch while the next is read.

Decoding Avro and formatting rows is Python work in the consumer's process; the SQL runs in the writer
process and the PostgreSQL server. Done one after the other, each waits for the other. ``Handoff`` hands
batches to a thread that passes them to the writer and waits for its answer (without the GIL), with at
most one batch being written and one waiting, so memory stays bounded and the consumer slows down when
PostgreSQL does.

Batches are written in the order they were handed over, one at a time, each in its own transaction with
its offsets, so the exactly-once argument of ordersync.sinks.writer is unchanged. Whoever needs the database to
be current (a rebalance reading the stored offsets, shutdown) calls ``drain()`` first. A write that
fails is raised again in the consumer's thread at its next ``submit()`` or ``drain()``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Handoff(Generic[T]):
    def __init__(self, write: Callable[[T], None], name: str = "sink-writer") -> None:
        self._write = write
        self._queue: queue.Queue[T | None] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self._error is None:  # after a failure, nothing more is written
                    self._write(item)
            except BaseException as exc:  # handed to the consumer's thread, which decides
                self._error = exc
            finally:
                self._queue.task_done()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, item: T) -> None:
        """Queue ``item``; blocks while one batch is being written and another already waits."""
        self._raise_if_failed()
        self._queue.put(item)

    def drain(self) -> None:
        """Return once everything submitted is written (or raise what went wrong)."""
        self._queue.join()
        self._raise_if_failed()

    def close(self) -> None:
        """Drain and stop the thread (the last error, if any, is raised)."""
        try:
            self.drain()
        finally:
            self._queue.put(None)
            self._thread.join()
