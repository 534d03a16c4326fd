"""Ad-hoc charges paid by card (issue 16): one row per charge from the QR page to the receipt, and
their bookings on the open items.

A charge moves ``created`` -> ``authorized`` (the provider reserved the pre-authorization amount;
``declined`` / ``action_required`` otherwise) -> ``starting`` (RemoteStart sent) -> ``charging``
(the charger's StartTransaction named our one-time id tag) -> ``stopped`` -> ``captured`` (the final
amount taken, the rest released; ``released`` when nothing was owed) or ``failed`` (a start the
charger refused: the reservation is cancelled). The one-time id tag (``AH`` + 18 characters) is
what the gateway lets start exactly this EVSE while the charge is authorized (``tag_decision``).

Money: a capture opens an item of its own (``card_charge``, with the receipt's net and VAT per
rate for the journal) on the tenant's ad-hoc billing account and books the card payment against
it (``book_payment``, key ``card:<payment reference>``): what the card did not cover (a session
dearer than its pre-authorization) stays open on the item. A refund through the provider books
``card_refund`` (the charge is less) and ``return`` (the payment given back) on that item.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import JSON as SAJSON
from sqlalchemy import (
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    insert,
    select,
    update,
)

from runtime.money import ZERO
from runtime.receivables import Entry
from store.models import metadata
from store.types import ExactDecimal, UTCDateTime, new_id, utcnow

__all__ = [
    "ADHOC_TAG_PREFIX",
    "STATUSES",
    "AdhocCharge",
    "adhoc_account",
    "adhoc_charge",
    "book_capture",
    "book_card_refund",
    "by_key",
    "by_payment",
    "by_tag",
    "charges",
    "create",
    "draw_receipt_number",
    "is_adhoc_tag",
    "move_refunded",
    "refunds_of",
    "set_values",
    "tag_decision",
]

ADHOC_TAG_PREFIX = "AH"
STATUSES = ("created", "authorized", "action_required", "declined", "starting", "charging", "stopped", "captured",
            "released", "failed", "canceled")
# the id tag may start the charger in these states (a charger answers RemoteStart, then sends
# StartTransaction; a repeated StartTransaction after the start must still be accepted)
_STARTABLE = ("authorized", "starting", "charging")

adhoc_charge = Table(
    "adhoc_charge", metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    # the driver's page is found by this secret (its URL), never by the id
    Column("key", String(64), nullable=False, unique=True),
    Column("evse_id", String(40), nullable=False),
    Column("evse_uid", String(64), nullable=False),
    Column("charge_point_id", String(40), nullable=False),
    Column("connector_id", Integer(), nullable=False),
    Column("id_tag", String(20), nullable=False, unique=True),
    Column("status", String(20), nullable=False),
    Column("language", String(5), nullable=False),
    Column("email", String(200), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("preauth_amount", ExactDecimal(), nullable=False),
    Column("provider", String(20), nullable=False),
    Column("payment_ref", String(100), nullable=False),
    Column("decline_code", String(60), nullable=False),
    Column("message", String(300), nullable=False),
    Column("transaction_id", Integer(), nullable=True),
    Column("session_id", String(40), nullable=True),
    Column("ruleset_version_id", String(40), nullable=True),
    Column("energy_kwh", ExactDecimal(), nullable=True),
    Column("net", ExactDecimal(), nullable=True),
    Column("tax", ExactDecimal(), nullable=True),
    Column("gross", ExactDecimal(), nullable=True),
    Column("lines", SAJSON(), nullable=False),
    Column("tax_groups", SAJSON(), nullable=False),
    Column("captured", ExactDecimal(), nullable=True),
    Column("released", ExactDecimal(), nullable=True),
    Column("refunded", ExactDecimal(), nullable=False),
    Column("receipt_number", String(40), nullable=False),
    Column("receipt_pdf", LargeBinary(), nullable=True),
    Column("receipt_sent_at", UTCDateTime(), nullable=True),
    Column("item_id", String(40), nullable=True),
    Column("started_at", UTCDateTime(), nullable=True),
    Column("stopped_at", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("ix_adhoc_charge_payment", "provider", "payment_ref"),
    Index("ix_adhoc_charge_tenant", "tenant_id", "created_at"),
)


@dataclass(frozen=True, slots=True)
class AdhocCharge:
    id: str
    tenant_id: str
    key: str
    evse_id: str
    evse_uid: str
    charge_point_id: str
    connector_id: int
    id_tag: str
    status: str
    language: str
    email: str
    currency: str
    preauth_amount: Decimal
    provider: str
    payment_ref: str
    decline_code: str
    message: str
    transaction_id: int | None
    session_id: str | None
    ruleset_version_id: str | None
    energy_kwh: Decimal | None
    net: Decimal | None
    tax: Decimal | None
    gross: Decimal | None
    lines: list[dict[str, Any]]
    tax_groups: list[dict[str, Any]]
    captured: Decimal | None
    released: Decimal | None
    refunded: Decimal
    receipt_number: str
    receipt_pdf: bytes | None
    receipt_sent_at: datetime | None
    item_id: str | None
    started_at: datetime | None
    stopped_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Any) -> AdhocCharge:
        return cls(**{k: getattr(row, k) for k in cls.__slots__})


def _one(conn: Connection, *cond: Any) -> AdhocCharge | None:
    row = conn.execute(select(adhoc_charge).where(*cond)).first()
    return AdhocCharge.of(row) if row is not None else None


def create(conn: Connection, *, tenant_id: str, evse_id: str, evse_uid: str, charge_point_id: str, connector_id: int,
           language: str, email: str, currency: str, preauth_amount: Decimal, provider: str) -> AdhocCharge:
    now = utcnow()
    cid = new_id("adh")
    conn.execute(insert(adhoc_charge).values(
        id=cid, tenant_id=tenant_id, key=secrets.token_urlsafe(24), evse_id=evse_id, evse_uid=evse_uid,
        charge_point_id=charge_point_id, connector_id=connector_id,
        id_tag=ADHOC_TAG_PREFIX + secrets.token_hex(9).upper(), status="created", language=language,
        email=email[:200], currency=currency, preauth_amount=preauth_amount, provider=provider, payment_ref="",
        decline_code="", message="", transaction_id=None, session_id=None, ruleset_version_id=None,
        energy_kwh=None, net=None, tax=None, gross=None, lines=[], tax_groups=[], captured=None, released=None,
        refunded=ZERO, receipt_number="", receipt_pdf=None, receipt_sent_at=None, item_id=None, started_at=None,
        stopped_at=None, created_at=now, updated_at=now))
    out = _one(conn, adhoc_charge.c.id == cid)
    assert out is not None
    return out


def by_key(conn: Connection, key: str) -> AdhocCharge | None:
    return _one(conn, adhoc_charge.c.key == key)


def by_id(conn: Connection, tenant_id: str, charge_id: str) -> AdhocCharge | None:
    return _one(conn, adhoc_charge.c.tenant_id == tenant_id, adhoc_charge.c.id == charge_id)


def by_tag(conn: Connection, tenant_id: str, id_tag: str) -> AdhocCharge | None:
    return _one(conn, adhoc_charge.c.tenant_id == tenant_id, adhoc_charge.c.id_tag == id_tag)


def by_payment(conn: Connection, provider: str, payment_ref: str) -> AdhocCharge | None:
    return _one(conn, adhoc_charge.c.provider == provider, adhoc_charge.c.payment_ref == payment_ref)


def set_values(conn: Connection, charge_id: str, *, expect: tuple[str, ...] | None = None, **values: Any) -> bool:
    """Update a charge; with ``expect`` only from one of those statuses (False: it had moved on, a
    webhook and a page view racing for the same step)."""
    stmt = update(adhoc_charge).where(adhoc_charge.c.id == charge_id)
    if expect is not None:
        stmt = stmt.where(adhoc_charge.c.status.in_(expect))
    return bool(conn.execute(stmt.values(**values, updated_at=utcnow())).rowcount)


def link_session(conn: Connection, tenant_id: str, *, id_tag: str, session_id: str) -> None:
    """The charger's transaction was stored as a session (or stored again): the ad-hoc charge of its
    one-time tag names the same session as the transaction does, whether it was settled before
    the gateway stored the session or after."""
    conn.execute(update(adhoc_charge).where(adhoc_charge.c.tenant_id == tenant_id, adhoc_charge.c.id_tag == id_tag)
                 .values(session_id=session_id, updated_at=utcnow()))


def move_refunded(conn: Connection, charge_id: str, old: Decimal, new: Decimal) -> bool:
    """Set the refunded total from ``old`` to ``new`` only if nobody moved it in between: a refund
    claims its amount before asking the provider, so two refunds never pass the same check and a
    provider's webhook about it finds it already counted."""
    return bool(conn.execute(update(adhoc_charge).where(adhoc_charge.c.id == charge_id, adhoc_charge.c.refunded == old)
                             .values(refunded=new, updated_at=utcnow())).rowcount)


def is_adhoc_tag(id_tag: str) -> bool:
    """The shape of our one-time tags (``AH`` + 18 hex digits): sessions started with one are paid by
    card, so no billing account takes them (``api.session_io.assignment_of``) and they are rated
    as ``token adhoc`` (a ruleset can price ad-hoc charging with ``when token adhoc``)."""
    return len(id_tag) == 20 and id_tag.startswith(ADHOC_TAG_PREFIX) and all(c in "0123456789ABCDEF" for c in id_tag[2:])


def tag_decision(conn: Connection, tenant_id: str, evse_uid: str, id_tag: str,
                 charge_point_id: str = "") -> tuple[str, str] | None:
    """The gateway's answer for an ad-hoc id tag: None when ``id_tag`` is not one of ours, else
    (OCPP status, reason). A paid tag starts only the EVSE it was paid for (``evse_uid``; empty
    where the message names none) at its charger, only while authorized."""
    if not is_adhoc_tag(id_tag):
        return None
    row = conn.execute(select(adhoc_charge.c.status, adhoc_charge.c.evse_uid, adhoc_charge.c.charge_point_id).where(
        adhoc_charge.c.tenant_id == tenant_id, adhoc_charge.c.id_tag == id_tag)).first()
    if row is None:
        return None
    if (evse_uid and row.evse_uid != evse_uid) or (charge_point_id and row.charge_point_id != charge_point_id):
        return "Invalid", "adhoc_other_evse"
    if row.status not in _STARTABLE:
        return "Invalid", f"adhoc_{row.status}"[:60]
    return "Accepted", "adhoc_card_payment"


def draw_receipt_number(conn: Connection, tenant_id: str) -> str:
    from store.billing import draw_numbers, ensure_series

    ensure_series(conn, tenant_id, "ADHOC", "AH-")
    return draw_numbers(conn, tenant_id, "ADHOC", 1)[0]


# --- money on the open items ---------------------------------------------------------------------

ADHOC_CUSTOMER_REF = "evbill:adhoc"


def adhoc_account(conn: Connection, tenant_id: str, currency: str) -> tuple[str, str]:
    """(customer id, billing account id) of the tenant's ad-hoc card payments: one customer
    ("Ad-hoc card payments", ``external_ref`` ``evbill:adhoc``) with one account per currency,
    made on first use. Its account is never invoiced: each charge is its own receipt."""
    from store.customers import ref_account

    return ref_account(conn, tenant_id, ADHOC_CUSTOMER_REF, currency, customer={"name": "Ad-hoc card payments"},
                       account_name="Ad-hoc card payments", payment_terms="net 0")


def book_capture(conn: Connection, charge: AdhocCharge, *, booked_on: date) -> str:
    """The receipt's charge as an item of its own and the captured card payment against it; once
    per charge (the keys are the charge's). -> the item's id."""
    from store.receivables import book_payment, open_charge_item

    assert charge.gross is not None and charge.captured is not None
    customer_id, account_id = adhoc_account(conn, charge.tenant_id, charge.currency)
    item = open_charge_item(conn, charge.tenant_id, key=f"adhoc:{charge.id}", kind="card_charge",
                            customer_id=customer_id, account_id=account_id, currency=charge.currency,
                            amount=charge.gross, issue_date=booked_on, due_date=booked_on,
                            number=charge.receipt_number or charge.id,
                            detail={"adhoc_charge_id": charge.id, "tax_groups": charge.tax_groups})
    if charge.captured > 0:
        book_payment(conn, charge.tenant_id, key=f"card:{charge.provider}:{charge.payment_ref}", customer_id=customer_id,
                     account_id=account_id, amount=charge.captured, currency=charge.currency, booked_on=booked_on,
                     reference=charge.payment_ref, targets=[item],
                     detail={"adhoc_charge_id": charge.id, "provider": charge.provider})
    return item


def _refund_groups(charge: AdhocCharge, amount: Decimal) -> list[dict[str, str]]:
    """The refund's share of each VAT group, negative (the journal takes revenue and VAT back):
    gross shares by the groups' weights, each split into net and VAT at its rate, cents half-up,
    the last group taking the rounding rest so the shares add up to ``amount``."""
    groups = charge.tax_groups or [{"rate": "0", "net": str(charge.gross), "tax": "0"}]
    total = sum((Decimal(g["net"]) + Decimal(g["tax"]) for g in groups), ZERO)
    out, left = [], amount
    cent = Decimal("0.01")
    for i, g in enumerate(groups):
        gross_g = Decimal(g["net"]) + Decimal(g["tax"])
        share = left if i == len(groups) - 1 else (amount * gross_g / total).quantize(cent, ROUND_HALF_UP)
        left -= share
        rate = Decimal(g["rate"])
        tax = (share * rate / (100 + rate)).quantize(cent, ROUND_HALF_UP)
        out.append({"rate": g["rate"], "net": format(-(share - tax), "f"), "tax": format(-tax, "f")})
    return out


def book_card_refund(conn: Connection, charge: AdhocCharge, *, amount: Decimal, refund_ref: str,
                     booked_on: date, created_by: str = "system", reason: str = "") -> None:
    """A refund through the card provider on the charge's item: the charge is less by ``amount``
    (``card_refund``) and the payment given back (``return``); once per provider refund id."""
    from store.receivables import _append, _new_event, _post, _Written, event

    assert charge.item_id is not None
    key = f"card_refund:{charge.provider}:{refund_ref}"
    if event(conn, charge.tenant_id, key) is not None:
        return
    customer_id, account_id = adhoc_account(conn, charge.tenant_id, charge.currency)
    written = _Written()
    written.customers[account_id] = customer_id
    eid = _new_event(conn, charge.tenant_id, key, "card_refund", account_id, charge.currency, amount, booked_on,
                     refund_ref, {"adhoc_charge_id": charge.id, "tax_groups": _refund_groups(charge, amount),
                                  **({"reason": reason[:300]} if reason else {})},
                     created_by, written)
    _append(conn, charge.tenant_id, eid, booked_on, [Entry(charge.item_id, "card_refund", amount, charge.currency),
                                                     Entry(charge.item_id, "return", amount, charge.currency)], written)
    _post(conn, charge.tenant_id, written)


# the columns a list of charges shows (not the receipt's bytes)
_LISTED = [c for c in adhoc_charge.c if c.name not in ("receipt_pdf", "lines", "tax_groups")]


def charges(conn: Connection, tenant_id: str, *, status: str | None = None, start: datetime | None = None,
            end: datetime | None = None, offset: int = 0, limit: int = 100) -> list[Any]:
    """A tenant's charges newest first, each row with its site's name (``site_name``); ``status``
    one of ``STATUSES``, ``start``/``end`` bound the moment the charge was made."""
    from store.models import Evse, Location

    evse, loc = Evse.__table__, Location.__table__  # type: ignore[attr-defined]
    q = (select(*_LISTED, loc.c.name.label("site_name"))
         .select_from(adhoc_charge.outerjoin(evse, evse.c.id == adhoc_charge.c.evse_id)
                      .outerjoin(loc, loc.c.id == evse.c.location_id))
         .where(adhoc_charge.c.tenant_id == tenant_id))
    if status:
        q = q.where(adhoc_charge.c.status == status)
    if start is not None:
        q = q.where(adhoc_charge.c.created_at >= start)
    if end is not None:
        q = q.where(adhoc_charge.c.created_at < end)
    q = q.order_by(adhoc_charge.c.created_at.desc(), adhoc_charge.c.id.desc()).offset(offset).limit(limit)
    return list(conn.execute(q))


def refunds_of(conn: Connection, charge: AdhocCharge) -> list[Any]:
    """The refunds booked on a charge's item, oldest first: amount, booked on, the provider's refund
    id (``reference``), who made it (``created_by``: a person, or the provider's webhook for a
    refund made in its dashboard), ``created_at``, and ``detail`` (the reason given: ``detail["reason"]``)."""
    from store.receivables import receivable_entry, receivable_event

    if charge.item_id is None:
        return []
    return list(conn.execute(
        select(receivable_event.c.id, receivable_event.c.amount, receivable_event.c.currency,
               receivable_event.c.booked_on, receivable_event.c.reference, receivable_event.c.created_by,
               receivable_event.c.created_at, receivable_event.c.detail)
        .join(receivable_entry, receivable_entry.c.event_id == receivable_event.c.id)
        .where(receivable_event.c.tenant_id == charge.tenant_id, receivable_entry.c.item_id == charge.item_id,
               receivable_entry.c.kind == "card_refund")
        .order_by(receivable_event.c.created_at, receivable_event.c.id)))
