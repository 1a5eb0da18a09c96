"""The sink's writer process against the real PostgreSQL: it writes what it is sent, reports failures to
the consumer's process, and never outlives it."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest

from ordersync.sinks.migrate import migrate
from ordersync.sinks.writer import Batch, Staged, WriteResult, stage
from ordersync.sinks.writer_process import WriterError, WriterProcess
from tests.processes import ROOT, wait_for
from tests.sink_data import dt, order


def _staged(database_url: str, batch: Batch) -> Staged:
    with psycopg.connect(database_url) as conn, conn.cursor() as adapters:
        return stage(batch, adapters)


def test_writes_in_order_and_reports_a_failed_batch(database_url: str) -> None:
    migrate(database_url)
    at = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    first = Batch(orders=[order(9001, "w@example.com", created=at)], offsets={("wp.orders", 0): 7}, messages=1)
    writer = WriterProcess(database_url, "writer-process-test")
    try:
        assert writer.write(_staged(database_url, first)) == WriteResult(orders=1, activities=0, contacts=0)
        with psycopg.connect(database_url) as conn:
            landed = conn.execute(
                "SELECT next_offset FROM sink_offsets WHERE consumer = 'writer-process-test'"
            ).fetchall()
            assert landed == [(7,)]
        broken = _staged(database_url, Batch(offsets={("wp.orders", 0): 8}, messages=1))
        broken = dataclasses.replace(broken, activity=b"not\ta\tCOPY\trow\n")
        with pytest.raises(WriterError, match=r"failed: InvalidTextRepresentation: .* uuid"):
            writer.write(broken)
        with psycopg.connect(database_url) as conn:  # the failed batch's offsets did not move
            assert conn.execute(
                "SELECT next_offset FROM sink_offsets WHERE consumer = 'writer-process-test'"
            ).fetchall() == [(7,)]
    finally:
        writer.close()


def test_a_writer_whose_process_died_says_so(database_url: str) -> None:
    writer = WriterProcess(database_url, "writer-process-test")
    writer._process.kill()
    writer._process.join()
    with pytest.raises(WriterError, match="ended"):
        writer.write(_staged(database_url, Batch(messages=1)))
    writer.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (dead, not yet reaped by init) counts as gone
    return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"


def test_a_killed_sink_leaves_no_writer_to_commit_its_batch(database_url: str, tmp_path: Path) -> None:
    """The writer is blocked inside a batch (a lock held here) when its sink is SIGKILLed: once the lock
    is released, that batch must not commit, or a new sink that already read the offsets would apply it
    twice."""
    migrate(database_url)
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        import psycopg
        from ordersync.sinks.writer import Batch, stage
        from ordersync.sinks.writer_process import WriterProcess
        writer = WriterProcess({database_url!r}, "writer-process-kill")
        with psycopg.connect({database_url!r}) as conn:
            staged = stage(Batch(offsets={{("wp.kill", 0): 42}}, messages=1), conn.cursor())
        print(writer._process.pid, flush=True)
        writer.write(staged)
        print("written", flush=True)
        """
    )
    with psycopg.connect(database_url) as lock:
        lock.execute("LOCK TABLE sink_offsets IN ACCESS EXCLUSIVE MODE")
        parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=tmp_path)
        try:
            assert parent.stdout is not None
            child = int(parent.stdout.readline())
            wait_for(
                lambda: (
                    lock.execute(
                        "SELECT count(*) FROM pg_locks WHERE relation = 'sink_offsets'::regclass AND NOT granted"
                    ).fetchone()
                    == (1,)
                ),
                30,
                "the writer to wait for the lock",
            )
            parent.kill()
            parent.wait(30)
            wait_for(lambda: not _alive(child), 30, "the writer process to end with its sink")
        finally:
            parent.kill()
    # The writer died before the lock was released: no COMMIT can come from it any more.
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM sink_offsets WHERE consumer = 'writer-process-kill'").fetchone() == (
            0,
        )
