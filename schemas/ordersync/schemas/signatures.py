"""ordersync's request signature, both ways: on the triggers it POSTs to a sending tool, and on the
campaign events a sending platform POSTs to it (docs/contract.md "Forwarding triggers", "Campaign events").

``X-Ordersync-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + [scope + "."] + body>``: the
timestamp is signed too, so a captured request cannot be replayed later than the receiver's tolerance;
the scope (a campaign webhook's list) binds the request to where it was sent, so one signed for list 1
cannot be stored in list 2.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import OrderedDict

SIGNATURE = "X-Ordersync-Signature"
PAST_S = 300  # how old a signed timestamp may be
FUTURE_S = 30  # how far ahead of our clock it may be (clocks drift; a request from the future does not)
MAX_HEADER = 200  # a well-formed header is under 100 characters


def sign(secret: bytes, timestamp: int, body: bytes, scope: str = "") -> str:
    prefix = f"{timestamp}." + (f"{scope}." if scope else "")
    mac = hmac.new(secret, prefix.encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def parse(header: str) -> tuple[int, str] | None:
    """(timestamp, v1) of a well-formed header, None for anything else (never raises)."""
    if len(header) > MAX_HEADER or not header.isascii():
        return None
    try:
        parts = dict(part.split("=", 1) for part in header.split(","))
        t, v1 = parts["t"], parts["v1"]
    except (ValueError, KeyError):
        return None
    if not t.isdigit() or len(t) > 12 or len(v1) != 64:
        return None
    return int(t), v1


def verify(
    secret: bytes, header: str, body: bytes, now: float, tolerance_s: float = PAST_S, scope: str = "",
    future_s: float = FUTURE_S,
) -> bool:  # fmt: skip
    """Whether ``header`` signs ``body`` (and ``scope``) with ``secret``, dated at most ``tolerance_s``
    before ``now`` and ``future_s`` after it (constant time)."""
    parsed = parse(header)
    if parsed is None:
        return False
    timestamp, v1 = parsed
    if not (now - tolerance_s <= timestamp <= now + future_s):
        return False
    expected = sign(secret, timestamp, body, scope).split("v1=", 1)[1]
    return hmac.compare_digest(expected.encode(), v1.encode())


class SeenSignatures:
    """Signatures accepted within the tolerance window: a request replayed unchanged inside it is refused.
    Bounded: the oldest are forgotten first, and any older than the window no longer verify anyway."""

    def __init__(self, window_s: float = PAST_S + FUTURE_S, most: int = 100_000) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._window_s, self._most = window_s, most
        self._lock = threading.Lock()

    def first(self, header: str, now: float | None = None) -> bool:
        """True the first time this signature is seen within the window (and remembers it)."""
        now = time.time() if now is None else now
        parsed = parse(header)
        if parsed is None:
            return False
        key = parsed[1]
        with self._lock:
            while self._seen and (
                len(self._seen) >= self._most or next(iter(self._seen.values())) < now - self._window_s
            ):
                self._seen.popitem(last=False)
            if key in self._seen:
                return False
            self._seen[key] = now
            return True
