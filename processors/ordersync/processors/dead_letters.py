"""Dead-letter records: the original bytes and headers, plus why and where from."""

from __future__ import annotations

import logging

from ordersync.schemas.dead_letters import dead_letter_headers as headers_for

log = logging.getLogger(__name__)


class DeadLetterCounter:
    """Counts dead letters by stage; logged on every letter and exposed as a metric."""

    def __init__(self) -> None:
        self.by_stage: dict[str, int] = {}

    def add(self, stage: str) -> int:
        self.by_stage[stage] = self.by_stage.get(stage, 0) + 1
        return sum(self.by_stage.values())

    @property
    def total(self) -> int:
        return sum(self.by_stage.values())


def dead_letter_headers(
    reason: str,
    stage: str,
    topic: str,
    partition: int,
    offset: int,
    original: list[tuple[str, bytes]] | None = None,
) -> list[tuple[str, bytes]]:
    return [*(original or []), *headers_for(reason, stage, topic=topic, partition=partition, offset=offset)]
