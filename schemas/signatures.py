"""ordersync's request signature, both ways: on the triggers it POSTs to a sending tool, and on the
campaign events a sending platform POSTs to it (docs/contract.md "Forwarding triggers").

``X-Ordersync-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>``: the timestamp is
signed too, so a captured request cannot be replayed later than the receiver's tolerance.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE = "X-Ordersync-Signature"


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: bytes, header: str, body: bytes, now: float, tolerance_s: float = 300) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``tolerance_s`` of ``now`` (constant time)."""
    try:
        parts = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), f"t={timestamp},v1={parts.get('v1', '')}")
