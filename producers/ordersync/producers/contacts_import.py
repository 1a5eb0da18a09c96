"""``ordersync contacts import FILE.csv --list L``: contacts from a CSV file onto ``contacts.import``.

Columns (header row, case-insensitive): ``email`` (required), ``first_name``, ``last_name``, ``phone``,
``consent``. Rows without a usable e-mail are not dropped: each goes to the dead-letter topic with its
line number, is reported, and the command exits 1.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from ordersync.producers.publisher import Deliveries, Publisher
from ordersync.schemas import consent as sources
from ordersync.schemas import encode
from ordersync.schemas.dead_letters import dead_letter_headers
from ordersync.schemas.identity import contact_id, normalise_email


@dataclass
class ImportReport:
    imported: int = 0
    rejected: list[str] = field(default_factory=list)

    def reject(
        self, publisher: Publisher, deliveries: Deliveries, dlq_topic: str, key: str, row: dict[str, str],
        reason: str, stage: str, path: Path,
    ) -> None:  # fmt: skip
        """Report a CSV row that does not fit and keep it, with the reason, in the dead-letter topic."""
        self.rejected.append(reason)
        value = ",".join(row.values()).encode()
        publisher.publish(deliveries, dlq_topic, key, value, list(dead_letter_headers(reason, stage, file=str(path))))


def import_csv(path: Path, list_id: str, publisher: Publisher, topic: str, dlq_topic: str) -> ImportReport:
    report = ImportReport()
    now = dt.datetime.now(dt.UTC)
    deliveries = Deliveries()
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "email" not in [h.strip().lower() for h in reader.fieldnames]:
            raise ValueError(f"{path}: the header row must have an 'email' column")
        for line, row in enumerate(reader, start=2):
            row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
            email = normalise_email(row.get("email", ""))
            if email is None:
                reason = f"line {line}: {row.get('email', '')!r} is not an e-mail address"
                report.reject(
                    publisher, deliveries, dlq_topic, f"{list_id}:line-{line}", row, reason, "contacts-import", path
                )
                continue
            stated = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}.get(
                row.get("consent", "").lower()
            )
            record: dict[str, object] = {
                "contact_id": contact_id(list_id, email),
                "list_id": list_id,
                "email": email,
                "first_name": row.get("first_name") or None,
                "last_name": row.get("last_name") or None,
                "phone": row.get("phone") or None,
                "marketing_consent": stated,
                # a statement as of the import (docs/privacy.md): the latest statement by time wins
                "consent_history": [] if stated is None else [{"consent": stated, "at": now, "source": sources.IMPORT}],
                "origin": "IMPORT",
                "store_customers": [],
                "created_at": now,
                "updated_at": now,
                "version": int(now.timestamp() * 1_000_000),
            }
            publisher.publish(deliveries, topic, f"{list_id}:{email}", encode("contact", record))
            report.imported += 1
    publisher.wait_sync(deliveries)
    return report
