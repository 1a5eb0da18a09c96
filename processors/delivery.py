"""Commit only what Kafka acknowledged.

With ``stream_publish_on_commit`` faust publishes the outputs attached to the offsets it is about to
commit and waits for them, but it does not look at the outcome: a send that failed (a broker restart,
a request timeout) is logged as ``_on_published error`` and the source offset is committed anyway, so
that output is lost for good. ``checked_handle_attached`` replaces that step: if any output was not
acknowledged it raises ``ProducerSendError``, which faust answers by crashing the worker *before* the
commit. The supervisor restarts it and the uncommitted events are processed again; every output is
idempotent, so that is safe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from faust.exceptions import ProducerSendError
from faust.transport.consumer import Consumer
from faust.types import TP


def unacknowledged(pending: list[asyncio.Future[Any]]) -> list[str]:
    """Why each send that did not succeed failed (empty when all were acknowledged)."""
    reasons = []
    for fut in pending:
        if not fut.done():
            reasons.append("still in flight")
        elif fut.cancelled():
            reasons.append("cancelled")
        elif fut.exception() is not None:
            reasons.append(repr(fut.exception()))
    return reasons


async def checked_handle_attached(self: Any, commit_offsets: Mapping[TP, int]) -> None:
    for tp, offset in commit_offsets.items():
        pending = await self.app._attachments.publish_for_tp_offset(tp, offset)
        if not pending:
            continue
        await self.app.producer.wait_many(pending)
        failed = unacknowledged(pending)
        if failed:
            raise ProducerSendError(
                f"{len(failed)} of {len(pending)} outputs for {tp.topic}[{tp.partition}] up to offset {offset}"
                f" were not acknowledged ({failed[0]}); not committing"
            )


def install() -> None:
    """Patch faust's consumer (process-wide; the processor is the only faust app in its process)."""
    Consumer._handle_attached = checked_handle_attached  # type: ignore[method-assign]
