"""A simulated shop's data: customers, a catalogue and an order history, deterministic per seed, able
to keep taking and changing orders. Platform renderers (woocommerce.py, prestashop.py) turn it into
what each store API returns."""

from __future__ import annotations

import datetime as dt
import random
import time
from dataclasses import dataclass, field
from decimal import Decimal

FIRST = ["Ana", "João", "Zoë", "Léa", "Mehmet", "Sofia", "Pedro", "Chloé", "Ivan", "Maria", "Noah", "Inês"]
LAST = ["Silva", "Müller", "O'Brien", "Dupont", "Costa", "Rossi", "Nowak", "García", "Santos", "Smith"]
CATEGORIES = ["Shoes", "Shirts", "Bags", "Accessories", "Jackets", "Chaussures élégantes", "Sale"]
PRODUCT_WORDS = ["Classic", "Urban", "Trail", "Linen", "Wool", "Leather", "Canvas", "Silk"]
PRODUCT_KINDS = ["Sneaker", "Boot", "Tee", "Shirt", "Tote", "Belt", "Parka", "Scarf"]
TWO = Decimal("0.01")


@dataclass
class Product:
    id: int
    name: str
    sku: str | None
    price: Decimal
    categories: list[tuple[int, str]]
    variations: list[int]  # variation ids (WooCommerce) / attribute ids (PrestaShop)


@dataclass
class Customer:
    id: int
    email: str
    first_name: str
    last_name: str
    phone: str
    created: dt.datetime
    modified: dt.datetime
    newsletter: bool


@dataclass
class Line:
    id: int
    product_id: int
    variation_id: int  # 0: none
    sku: str | None
    name: str
    quantity: int
    unit_price: Decimal

    @property
    def total(self) -> Decimal:
        return (self.unit_price * self.quantity).quantize(TWO)


@dataclass
class Refund:
    id: int
    amount: Decimal
    reason: str


@dataclass
class Order:
    id: int
    number: str
    customer_id: int  # 0 for guests
    email: str  # may be "" for some guests
    first_name: str
    last_name: str
    status: str  # the platform's own status (WooCommerce slug / PrestaShop state id)
    currency: str
    created: dt.datetime  # UTC
    modified: dt.datetime  # UTC
    lines: list[Line]
    shipping: Decimal
    discount: Decimal
    coupon: str | None
    refunds: list[Refund] = field(default_factory=list)
    trashed: bool = False
    changed_at: float | None = None  # wall clock (epoch s, sub-second) of the last live change: latency benchmarks

    @property
    def subtotal(self) -> Decimal:
        return sum((line.total for line in self.lines), Decimal("0.00"))

    @property
    def tax(self) -> Decimal:
        return ((self.subtotal - self.discount + self.shipping) * Decimal("0.23")).quantize(TWO)

    @property
    def total(self) -> Decimal:
        return self.subtotal - self.discount + self.shipping + self.tax


@dataclass(frozen=True)
class StatusModel:
    """The platform's statuses and how orders move between them."""

    initial: list[tuple[str, int]]  # (status, weight) for history and new orders
    transitions: dict[str, list[str]]
    refunded: str
    canceled: str


class Shop:
    def __init__(
        self,
        seed: int,
        orders: int,
        statuses: StatusModel,
        *,
        currencies: tuple[str, ...] = ("EUR", "CHF", "USD"),
        start: dt.datetime = dt.datetime(2021, 1, 1, tzinfo=dt.UTC),
        end: dt.datetime | None = None,
        first_order_id: int = 1000,
        number_offset: int = 0,
    ) -> None:
        self.rng = random.Random(seed)
        self.statuses = statuses
        self.currencies = currencies
        self.end = end or dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
        self.clock = self.end
        self.version = 0  # bumped on every change: renderers cache per version
        self.next_line_id = 1
        self.next_refund_id = 900000
        self.number_offset = number_offset
        self.products = [self._product(i) for i in range(1, 61)]
        self.customers: dict[int, Customer] = {}
        for i in range(1, max(2, orders // 3) + 1):
            created = start + dt.timedelta(seconds=self.rng.randrange(int((self.end - start).total_seconds())))
            self.customers[i] = self._customer(i, created)
        self.next_customer_id = len(self.customers) + 1
        self.orders: dict[int, Order] = {}
        span = (self.end - start).total_seconds()
        moments = sorted(start + dt.timedelta(seconds=self.rng.random() * span) for _ in range(orders))
        self.next_order_id = first_order_id
        self.order_ids: list[int] = []  # in creation order; orders are trashed, never removed
        for moment in moments:
            self._new_order(moment.replace(microsecond=0))

    # -- generation ---------------------------------------------------------------------------------
    def _product(self, pid: int) -> Product:
        rng = self.rng
        cats = rng.sample(range(len(CATEGORIES)), k=rng.choice([1, 1, 2]))
        variations = [pid * 100 + v for v in range(1, rng.choice([1, 2, 4]))] if rng.random() < 0.4 else []
        return Product(
            id=pid,
            name=f"{rng.choice(PRODUCT_WORDS)} {rng.choice(PRODUCT_KINDS)} {pid}",
            sku=None if rng.random() < 0.1 else f"SKU-{pid:04d}",
            price=Decimal(rng.randrange(500, 25000)) / 100,
            categories=[(c + 10, CATEGORIES[c]) for c in cats],
            variations=variations,
        )

    def _customer(self, cid: int, created: dt.datetime) -> Customer:
        rng = self.rng
        first, last = rng.choice(FIRST), rng.choice(LAST)
        local = f"{first}.{last}.{cid}".lower().replace("'", "").replace(" ", "")
        email = f"{local}@example.com" if rng.random() < 0.9 else f"  {local.upper()}@Example.COM "
        return Customer(
            cid, email, first, last, f"+351 9{rng.randrange(10**7, 10**8)}", created, created, rng.random() < 0.5
        )

    def _pick_status(self) -> str:
        choices, weights = zip(*self.statuses.initial, strict=True)
        return str(self.rng.choices(choices, weights)[0])

    def _new_order(self, moment: dt.datetime) -> Order:
        rng = self.rng
        oid = self.next_order_id
        self.next_order_id += rng.choice([1, 1, 1, 2])  # gaps: ids are not dense in real shops
        lines = []
        for _ in range(rng.choice([1, 2, 3, 3, 4, 5])):
            product = rng.choice(self.products)
            variation = rng.choice(product.variations) if product.variations else 0
            lines.append(
                Line(
                    self.next_line_id,
                    product.id,
                    variation,
                    product.sku,
                    product.name,
                    rng.choice([1, 1, 2, 3]),
                    product.price,
                )
            )
            self.next_line_id += 1
        guest = rng.random() < 0.15
        if guest:
            first, last = rng.choice(FIRST), rng.choice(LAST)
            email = "" if rng.random() < 0.2 else f"guest.{oid}@example.org"
            customer_id = 0
        else:
            customer = self.customers.get(rng.randrange(1, self.next_customer_id))
            if customer is None:  # deleted since: a guest then
                first, last, email, customer_id = rng.choice(FIRST), rng.choice(LAST), f"guest.{oid}@example.org", 0
            else:
                first, last, email, customer_id = customer.first_name, customer.last_name, customer.email, customer.id
        coupon = rng.choice([None, None, None, "SPRING10", "WELCOME"])
        order = Order(
            id=oid,
            number=str(oid - 1000 + 1 + self.number_offset),
            customer_id=customer_id,
            email=email,
            first_name=first,
            last_name=last,
            status=self._pick_status(),
            currency=rng.choice(self.currencies),
            created=moment,
            modified=moment,
            lines=lines,
            shipping=Decimal(rng.choice([0, 399, 495, 990])) / 100,
            discount=Decimal("0.00"),
            coupon=coupon,
        )
        if coupon:
            order.discount = (order.subtotal * Decimal("0.10")).quantize(TWO)
        if order.status == self.statuses.refunded:
            order.refunds.append(self._refund(order.total, "Returned"))
        self.orders[oid] = order
        self.order_ids.append(oid)
        return order

    def _refund(self, amount: Decimal, reason: str) -> Refund:
        self.next_refund_id += 1
        return Refund(self.next_refund_id, amount, reason)

    # -- live changes -------------------------------------------------------------------------------
    def advance_clock(self, seconds: float = 1.0) -> dt.datetime:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        self.clock = max(now, self.clock + dt.timedelta(seconds=seconds)).replace(microsecond=0)
        return self.clock

    def create_order(self) -> Order:
        self.version += 1
        order = self._new_order(self.advance_clock(0))
        order.changed_at = time.time()
        return order

    def update_order(self) -> Order | None:
        """Move a random order along its status graph (or refund part of it); None if none can move."""
        rng = self.rng
        self.version += 1
        order = self._pick(self.order_ids[-500:] if rng.random() < 0.8 else self.order_ids)
        if order is None:
            return None
        moment = self.advance_clock(0)
        nexts = self.statuses.transitions.get(order.status, [])
        if nexts and rng.random() < 0.85:
            order.status = rng.choice(nexts)
            if order.status == self.statuses.refunded and not order.refunds:
                order.refunds.append(self._refund(order.total, "Refunded in full"))
        elif order.total > 10:
            order.refunds.append(self._refund(Decimal("5.00"), "Partial refund"))
        order.modified = moment if moment > order.modified else order.modified + dt.timedelta(seconds=1)
        order.changed_at = time.time()
        return order

    def _pick(self, ids: list[int]) -> Order | None:
        """A random order that is not trashed (a scan over all orders per change capped the live rate)."""
        for _ in range(20):
            if not ids:
                return None
            order = self.orders[self.rng.choice(ids)]
            if not order.trashed:
                return order
        live = [self.orders[i] for i in ids if not self.orders[i].trashed]
        return self.rng.choice(live) if live else None

    def trash_order(self) -> Order | None:
        order = self._pick(self.order_ids)
        if order is None:
            return None
        self.version += 1
        order.trashed = True
        order.modified = max(self.advance_clock(0), order.modified + dt.timedelta(seconds=1))
        order.changed_at = time.time()
        return order

    def update_customer(self) -> Customer | None:
        """Give a random customer a new phone number (a profile edit in the shop's account page)."""
        if not self.customers:
            return None
        customer = self.customers[self.rng.choice(sorted(self.customers))]
        customer.phone = f"+351 9{self.rng.randrange(10**7, 10**8)}"
        customer.modified = max(self.advance_clock(0), customer.modified + dt.timedelta(seconds=1))
        self.version += 1
        return customer

    def delete_customer(self) -> int | None:
        """Remove a random customer account (WooCommerce ``DELETE /customers/{id}?force=true``)."""
        if not self.customers:
            return None
        cid = self.rng.choice(sorted(self.customers))
        del self.customers[cid]
        self.version += 1
        return cid

    def live_orders(self) -> list[Order]:
        return [o for o in self.orders.values() if not o.trashed]
