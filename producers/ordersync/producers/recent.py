"""Which polled documents were already published, unchanged.

Each poll re-reads a few seconds before the high-water mark (``POLL_OVERLAP``), so at a few hundred
changes per second most of a poll's documents are ones the previous polls already published, byte for
byte. Publishing them again is harmless (the processor drops duplicates) but multiplies the raw topic
and the processor's work by up to the overlap / poll interval. A document is skipped only if its exact
text was published before: a second change within the same second (same modification time, new
content) is still published.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from ordersync.producers.documents import raw_bytes


def _digest(text: str) -> bytes:
    return hashlib.blake2b(raw_bytes(text), digest_size=12).digest()


class RecentlyPublished:
    def __init__(self) -> None:
        self._seen: dict[str, tuple[bytes, dt.datetime | None]] = {}

    def is_new(self, order_id: str, text: str, modified: dt.datetime | None) -> bool:
        """True (and remembered) unless this exact document was published already."""
        digest = _digest(text)
        known = self._seen.get(order_id)
        if known is not None and known[0] == digest:
            return False
        self._seen[order_id] = (digest, modified)
        return True

    def forget_before(self, moment: dt.datetime) -> None:
        """Drop what the next polls cannot see again (modified before their lower bound)."""
        self._seen = {k: v for k, v in self._seen.items() if v[1] is not None and v[1] >= moment}

    def __len__(self) -> int:
        return len(self._seen)
