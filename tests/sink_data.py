"""Contract records for sink and segment tests: orders with items, their activity, their contacts."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from decimal import Decimal
from typing import Any

from ordersync.schemas.identity import contact_id

UTC = dt.UTC
CATEGORIES = ["Shoes", "Bags", "Shirts", "Sale", "x'); DROP TABLE orders; --"]
STATUSES = ["CREATED", "PENDING", "COMPLETED", "CANCELED", "UNKNOWN"]


def contact(list_id: str, email: str, version: int = 1) -> dict[str, Any]:
    at = dt.datetime(2024, 1, 1, tzinfo=UTC)
    return {
        "contact_id": contact_id(list_id, email), "list_id": list_id, "email": email, "first_name": "F", "last_name": None,
        "phone": None, "marketing_consent": None, "origin": "IMPORT", "store_customers": [], "created_at": at, "updated_at": at,
        "version": version,
    }  # fmt: skip


def order(
    order_id: int,
    email: str | None,
    *,
    status: str = "COMPLETED",
    created: dt.datetime,
    total: str = "10.00",
    refunded: str = "0",
    currency: str = "EUR",
    items: list[dict[str, Any]] | None = None,
    version: int = 1,
    list_id: str = "1",
    deleted: bool = False,
) -> dict[str, Any]:
    t, r = Decimal(total), Decimal(refunded)
    return {
        "order_key": f"s:{order_id}", "store_id": "s", "platform": "WOOCOMMERCE", "source_order_id": str(order_id),
        "order_number": str(order_id), "list_id": list_id, "contact_id": contact_id(list_id, email) if email else None,
        "contact_email": email, "matched": email is not None, "store_customer_id": None, "status": status,
        "store_status": status.lower(), "store_status_label": None, "currency": currency, "total": t, "subtotal": t,
        "tax_total": Decimal(0), "shipping_total": Decimal(0), "discount_total": Decimal(0), "refunded_total": r,
        "net_total": t - r, "refunds": [], "coupons": [],
        "items": items if items is not None else [item("1", "P1", "Shoes")],
        "created_at": created, "modified_at": created, "paid_at": None, "completed_at": None, "deleted": deleted,
        "version": version,
    }  # fmt: skip


def item(item_id: str, product: str, category: str, name: str | None = None, sku: str | None = None) -> dict[str, Any]:
    return {
        "item_id": item_id, "product_id": product, "variation_id": None, "sku": sku, "name": name or f"Product {product}",
        "quantity": 1, "unit_price": Decimal("10"), "total": Decimal("10"), "categories": [category],
    }  # fmt: skip


def activity(o: dict[str, Any], kind: str = "ORDER_CREATED") -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{o['order_key']}|{kind}|{o['version']}")), "type": kind,
        "order_key": o["order_key"], "store_id": o["store_id"], "source_order_id": o["source_order_id"],
        "list_id": o["list_id"], "contact_id": o["contact_id"], "occurred_at": o["modified_at"], "from_status": None,
        "to_status": o["status"], "from_store_status": None, "to_store_status": o["store_status"],
        "currency": o["currency"], "total": o["total"], "changed_fields": [], "version": o["version"],
    }  # fmt: skip


def random_history(
    n_orders: int, n_contacts: int, seed: int = 1
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Orders (two versions each), their activity, and contacts."""
    rng = random.Random(seed)
    contacts = [contact("1", f"c{i}@example.com") for i in range(n_contacts)]
    orders, acts = [], []
    base = dt.datetime(2024, 1, 1, tzinfo=UTC)
    for i in range(n_orders):
        email = contacts[rng.randrange(n_contacts)]["email"] if rng.random() < 0.95 else None
        created = base + dt.timedelta(hours=rng.randrange(20000))
        items = [item(str(j), f"P{rng.randrange(30)}", rng.choice(CATEGORIES)) for j in range(rng.choice([1, 2, 3]))]
        first = order(
            i,
            email,
            status="PENDING",
            created=created,
            total=f"{rng.randrange(100, 50000) / 100:.2f}",
            items=items,
            version=1,
        )
        second = {**first, "status": rng.choice(STATUSES), "version": 2}
        orders += [first, second]
        acts += [activity(first), activity(second, "ORDER_STATUS_CHANGED")]
    return orders, acts, contacts


def segment_fixture(now: dt.datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """120 contacts of list 1 (10 never ordered) and one of list 2, with a seeded history up to ``now``."""
    rng = random.Random(42)
    contacts = [
        {**contact("1", f"p{i}@example.com"), "marketing_consent": (True, False, None)[i % 3]} for i in range(120)
    ] + [contact("2", "other-list@example.com")]
    orders: list[dict[str, Any]] = []
    oid = 0
    for c in contacts[:110]:  # 10 contacts never ordered
        for _ in range(rng.choice([1, 1, 2, 3, 5])):
            oid += 1
            created = now - dt.timedelta(hours=rng.randrange(1, 24 * 400))
            items = [
                item(str(j), f"P{rng.randrange(8)}", rng.choice(CATEGORIES), name=rng.choice(["Trail Boot", "Silk 100% Scarf", "Tote_bag"]), sku=rng.choice([None, "SKU-1", "SKU-2"]))
                for j in range(rng.choice([1, 2]))
            ]  # fmt: skip
            total = Decimal(rng.randrange(500, 40000)) / 100
            refunded = total if rng.random() < 0.05 else Decimal(0)
            orders.append(
                order(oid, c["email"], status=rng.choice(STATUSES), created=created, total=str(total), refunded=str(refunded),
                      currency=rng.choice(["EUR", "EUR", "CHF"]), items=items, list_id=c["list_id"], deleted=rng.random() < 0.03)
            )  # fmt: skip
    return contacts, orders


def load_segment_fixture(database_url: str, contacts: list[dict[str, Any]], orders: list[dict[str, Any]]) -> str:
    """Migrate the database and write the fixture through the sink's writer; deletes arrive later with a
    newer version, as from the processor. Returns ``database_url``."""
    import psycopg

    from ordersync.sinks.migrate import migrate
    from ordersync.sinks.writer import Batch, prepare, write_batch

    migrate(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        prepare(conn)
        live = [o for o in orders if not o["deleted"]]
        deleted = [{**o, "deleted": False} for o in orders if o["deleted"]]
        write_batch(conn, Batch(orders=live + deleted, contacts=contacts, messages=1), "test")
        write_batch(conn, Batch(orders=[{**o, "version": 9} for o in orders if o["deleted"]], messages=1), "test")
    return database_url


def mixed_batches(
    seed: int = 7, now: dt.datetime = dt.datetime(2026, 6, 1, tzinfo=UTC), span_hours: int = 24 * 300
) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]], list[list[tuple[str, str]]]]:
    """Contacts of two lists, then batches of new orders (created within ``span_hours`` before ``now``),
    status changes, refunds, moves, deletes and purges in EUR and CHF; many contacts order once."""
    rng = random.Random(seed)
    emails = {list_id: [f"r{list_id}-{i}@example.com" for i in range(70)] for list_id in ("1", "2")}
    contacts = [contact(list_id, e) for list_id, es in emails.items() for e in es]
    current: dict[int, dict[str, Any]] = {}
    batches: list[list[dict[str, Any]]] = []
    purges: list[list[tuple[str, str]]] = []
    next_id = 0
    for b in range(6):
        batch: list[dict[str, Any]] = []
        purged: list[tuple[str, str]] = []
        for _ in range(160 if b == 0 else 40):
            next_id += 1
            list_id = rng.choice(("1", "2"))
            email = rng.choice(emails[list_id][: 30 + 8 * b])  # later batches bring new buyers
            created = now - dt.timedelta(hours=rng.randrange(1, span_hours))
            o = order(next_id, email, status=rng.choice(["COMPLETED", "COMPLETED", "PENDING", "CANCELED"]), created=created,
                      total=f"{rng.randrange(500, 30000) / 100:.2f}", currency=rng.choice(["EUR", "EUR", "CHF"]),
                      items=[item("1", "P1", "Shoes")], list_id=list_id)  # fmt: skip
            current[next_id] = o
            batch.append(o)
        for oid in rng.sample(sorted(current), min(len(current), 25)) if b else []:
            old = current[oid]
            change = rng.choice(["status", "refund", "move", "delete", "purge"])
            if change == "purge":
                purged.append((old["store_id"], old["source_order_id"]))
                del current[oid]
                continue
            new = {**old, "version": old["version"] + 1}
            if change == "status":
                new["status"] = rng.choice(["COMPLETED", "CANCELED", "PENDING"])
            elif change == "refund":
                new["refunded_total"] = old["total"]
                new["net_total"] = Decimal(0)
            elif change == "move":
                email = rng.choice(emails[old["list_id"]])
                new.update(contact_email=email, contact_id=contact_id(old["list_id"], email))
            else:
                new["deleted"] = True
            current[oid] = new
            batch.append(new)
        batches.append(batch)
        purges.append(purged)
    return contacts, batches, purges
