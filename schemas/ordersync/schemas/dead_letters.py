"""The dead-letter contract: every component that gives up on a record publishes its bytes unchanged to
the ``dlq`` topic with these headers (docs/contract.md): why (``dlq.reason``), which stage
(``dlq.stage``: connector, webhook, processor stage, sink) and where from (``dlq.source.*``)."""

from __future__ import annotations

REASON = "dlq.reason"
STAGE = "dlq.stage"
SOURCE = "dlq.source."
MAX_REASON = 1000


def dead_letter_headers(reason: str, stage: str, **source: str | int) -> list[tuple[str, bytes]]:
    """Headers for one dead letter; ``source`` names where it came from, e.g. ``topic=..., offset=...``."""
    headers = [(REASON, reason[:MAX_REASON].encode("utf-8", "replace")), (STAGE, stage.encode())]
    headers += [(SOURCE + name, str(value).encode("utf-8", "replace")) for name, value in source.items()]
    return headers
