"""The five normalised order statuses of the contract (the ``status`` enum of the order schema)."""

from __future__ import annotations

CREATED, PENDING, COMPLETED, CANCELED, UNKNOWN = "CREATED", "PENDING", "COMPLETED", "CANCELED", "UNKNOWN"
STATUSES = (CREATED, PENDING, COMPLETED, CANCELED, UNKNOWN)
