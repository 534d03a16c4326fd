"""The receivables subledger in the database: open items and their appended entries.

Every finalized invoice opens an item; credit notes, payments, returns, charges, refunds,
write-offs and goodwill only ever append entries (``receivable_entry`` is append-only: the
database refuses UPDATE and DELETE, as it does for the audit chain). What is open on an item is
the signed sum of its entries, added up in Python from the exact decimal text (never by an SQL
aggregate: SQLite sums text as floats). The rules live in ``runtime.receivables``; this module
stores what they decide, each event once: an event carries a key (the invoice id, a bank entry's
reference, a caller's idempotency key), and booking the same key again returns the first booking.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    bindparam,
    insert,
    select,
)

from runtime.money import ZERO, CurrencyMismatch
from runtime.receivables import (
    ENTRY_SIGNS,
    Allocation,
    Entry,
    ItemView,
    aging,
    allocate,
    open_amount,
    take_credit,
    written_off_vat,
)
from store.billing import driver_insert
from store.models import BillingAccount, metadata
from store.types import ExactDecimal, UTCDateTime, new_id, utcnow

__all__ = [
    "BookedEvent",
    "ItemState",
    "PaymentBatch",
    "aged_receivables",
    "apply_credit_balances",
    "book_netting",
    "book_payment",
    "book_refund",
    "book_refund_return",
    "book_return",
    "book_write_off",
    "entries_of",
    "event",
    "item_states",
    "open_charge_item",
    "open_invoice_item",
    "open_invoice_items",
    "open_invoice_items_due",
    "open_items",
    "open_of",
    "receivable_entry",
    "receivable_event",
    "receivable_item",
    "statement_lines",
]

_ID = BigInteger().with_variant(Integer(), "sqlite")

receivable_item = Table(
    "receivable_item", metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("customer_id", String(40), nullable=False),
    Column("account_id", String(40), nullable=False),
    Column("kind", String(20), nullable=False),  # invoice | credit_balance
    Column("invoice_id", String(40), nullable=True),  # the invoice an invoice item is for
    Column("number", String(40), nullable=False),  # the invoice number, or the credit's reference
    Column("currency", String(3), nullable=False),
    Column("amount", ExactDecimal(), nullable=False),  # what it opened with (a magnitude)
    Column("issue_date", Date(), nullable=False),
    Column("due_date", Date(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("tenant_id", "invoice_id", name="uq_receivable_item_invoice"),
    Index("ix_receivable_item_account", "tenant_id", "account_id", "currency"),
    Index("ix_receivable_item_customer", "tenant_id", "customer_id"),
)

receivable_event = Table(
    "receivable_event", metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("key", String(200), nullable=False),  # what makes a booking happen once
    Column("kind", String(30), nullable=False),
    Column("account_id", String(40), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", ExactDecimal(), nullable=False),
    Column("booked_on", Date(), nullable=False),
    Column("reference", String(300), nullable=False),
    Column("detail", JSON(), nullable=False),
    Column("created_by", String(40), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("tenant_id", "key", name="uq_receivable_event_key"),
)

receivable_entry = Table(
    "receivable_entry", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("item_id", String(40), ForeignKey("receivable_item.id"), nullable=False),
    Column("event_id", String(40), ForeignKey("receivable_event.id"), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("amount", ExactDecimal(), nullable=False),  # a magnitude; the kind gives the sign
    Column("currency", String(3), nullable=False),
    Column("booked_on", Date(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_receivable_entry_item", "item_id"),
    Index("ix_receivable_entry_event", "event_id"),
)


@dataclass(frozen=True, slots=True)
class ItemState:
    id: str
    customer_id: str
    account_id: str
    kind: str
    invoice_id: str | None
    number: str
    currency: str
    amount: Decimal
    open: Decimal
    issue_date: date
    due_date: date

    def view(self) -> ItemView:
        return ItemView(self.id, self.open, self.currency, self.due_date)

    def to_dict(self, as_of: date | None = None) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__slots__}  # type: ignore[attr-defined]
        d["status"] = "settled" if self.open == 0 else ("credit" if self.open < 0 else (
            "overdue" if as_of is not None and self.due_date < as_of else "open"))
        return d


@dataclass(frozen=True, slots=True)
class BookedEvent:
    event_id: str
    kind: str
    amount: Decimal
    currency: str
    entries: tuple[tuple[str, str, Decimal], ...]  # (item id, kind, amount)
    credit_item_id: str | None  # the credit balance what was left over went to
    left: Decimal
    duplicate: bool  # the key was booked before: this is that first booking


# built once: finalization asks these per invoice, and building a statement costs more than the
# database's answer
_Q_EVENT = select(receivable_event).where(receivable_event.c.tenant_id == bindparam("t"),
                                          receivable_event.c.key == bindparam("k"))
_Q_EVENT_ENTRIES = select(receivable_entry).where(receivable_entry.c.event_id == bindparam("e")) \
    .order_by(receivable_entry.c.id)


def event(conn: Connection, tenant_id: str, key: str) -> BookedEvent | None:
    """The booking made under ``key``, if there is one."""
    ev = conn.execute(_Q_EVENT, {"t": tenant_id, "k": key}).first()
    if ev is None:
        return None
    rows = conn.execute(_Q_EVENT_ENTRIES, {"e": ev.id}).all()
    credit = next((r.item_id for r in rows if r.kind == "overpayment"), None)
    left = next((r.amount for r in rows if r.kind == "overpayment"), ZERO)
    return BookedEvent(ev.id, ev.kind, ev.amount, ev.currency,
                       tuple((r.item_id, r.kind, r.amount) for r in rows), credit, left, True)


# built once (building a statement costs more than SQLite running it): dunning reads a customer's
# items at every wake-up of every case
_Q_ENTRIES = (select(receivable_entry.c.item_id, receivable_entry.c.kind, receivable_entry.c.amount,
                     receivable_entry.c.currency)
              .where(receivable_entry.c.item_id.in_(bindparam("ids", expanding=True)))
              .order_by(receivable_entry.c.id))
# a single row's dict through a prebuilt INSERT: ``.values(**row)`` coerces every value anew
_I_EVENT, _I_ITEM = insert(receivable_event), insert(receivable_item)


def entries_of(conn: Connection, item_ids: Sequence[str]) -> dict[str, list[Entry]]:
    out: dict[str, list[Entry]] = {i: [] for i in item_ids}
    if not item_ids:
        return out
    for item_id, kind, amount, currency in conn.execute(_Q_ENTRIES, {"ids": list(item_ids)}).all():
        out[item_id].append(Entry(item_id, kind, amount, currency))
    return out


_STATES: dict[tuple[bool, ...], Any] = {}


def _states_query(customer: bool, account: bool, currency: bool, items: bool, accounts: bool) -> Any:
    i, e = receivable_item.c, receivable_entry.c
    stmt = select(i.id, i.customer_id, i.account_id, i.kind, i.invoice_id, i.number, i.currency, i.amount,
                  i.issue_date, i.due_date, e.kind, e.amount, e.currency) \
        .outerjoin(receivable_entry, e.item_id == i.id).where(i.tenant_id == bindparam("t"))
    if customer:
        stmt = stmt.where(i.customer_id == bindparam("cus"))
    if account:
        stmt = stmt.where(i.account_id == bindparam("acc"))
    if currency:
        stmt = stmt.where(i.currency == bindparam("cur"))
    if items:
        stmt = stmt.where(i.id.in_(bindparam("items", expanding=True)))
    if accounts:
        stmt = stmt.where(i.account_id.in_(bindparam("accs", expanding=True)))
    return stmt


def item_states(conn: Connection, tenant_id: str, *, customer_id: str | None = None, account_id: str | None = None,
                currency: str | None = None, item_ids: Sequence[str] | None = None,
                account_ids: Sequence[str] | None = None) -> list[ItemState]:
    """Items with what is open on each, by due date then id (one read: the items joined with their
    entries)."""
    filters = (bool(customer_id), bool(account_id), bool(currency), item_ids is not None, account_ids is not None)
    stmt = _STATES.get(filters)
    if stmt is None:
        stmt = _STATES[filters] = _states_query(*filters)
    params: dict[str, Any] = {"t": tenant_id, "cus": customer_id, "acc": account_id, "cur": currency,
                              "items": list(item_ids or ()), "accs": list(account_ids or ())}
    rows: dict[str, list[Any]] = {}
    for iid, cus, acc, kind, inv, num, cur, amt, issued, due, ekind, eamount, ecur in conn.execute(stmt, params).all():
        got = rows.get(iid)
        if got is None:
            got = rows[iid] = [cus, acc, kind, inv, num, cur, amt, issued, due, ZERO]
        if ekind is not None:
            if ecur != cur:
                raise CurrencyMismatch(f"an item in {cur} has an entry in {ecur}")
            got[9] += ENTRY_SIGNS[ekind] * eamount
    out = [ItemState(iid, cus, acc, kind, inv, num, cur, amt, opened, issued, due)
           for iid, (cus, acc, kind, inv, num, cur, amt, issued, due, opened) in rows.items()]
    out.sort(key=lambda st: (st.due_date, st.id))
    return out


class _Written:
    """The events and entries one booking wrote, as rows: what its journal entries are posted from
    (``_post``), without reading them back."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.entries: list[dict[str, Any]] = []
        self.customers: dict[str, str] = {}  # billing account -> customer


def _new_event(conn: Connection, tenant_id: str, key: str, kind: str, account_id: str, currency: str,
               amount: Decimal, booked_on: date, reference: str, detail: dict[str, Any], created_by: str,
               written: _Written | None = None) -> str:
    eid = new_id("rcv")
    row = dict(id=eid, tenant_id=tenant_id, key=key, kind=kind, account_id=account_id, currency=currency,
               amount=amount, booked_on=booked_on, reference=reference, detail=detail, created_by=created_by,
               created_at=utcnow())
    conn.execute(_I_EVENT, row)
    if written is not None:
        written.events.append(row)
    return eid


def _append(conn: Connection, tenant_id: str, event_id: str, booked_on: date, entries: Iterable[Entry],
            written: _Written | None = None) -> None:
    rows = [dict(tenant_id=tenant_id, item_id=e.item_id, event_id=event_id, kind=e.kind, amount=e.amount,
                 currency=e.currency, booked_on=booked_on, created_at=utcnow()) for e in entries]
    if rows:
        conn.execute(insert(receivable_entry), rows)
        if written is not None:
            written.entries += rows


def _post(conn: Connection, tenant_id: str, written: _Written, invoices: dict[str, Any] | None = None) -> None:
    """Post the journal entries of the events this booking wrote (``store.accounting``: the one
    place every receivable event reaches the journal, in the same transaction)."""
    from store.accounting import post_events

    post_events(conn, tenant_id, written.events, written.entries, invoices, written.customers)


def _credit_item(conn: Connection, tenant_id: str, customer_id: str, account_id: str, currency: str,
                 reference: str, on: date) -> str:
    iid = new_id("itm")
    conn.execute(insert(receivable_item).values(
        id=iid, tenant_id=tenant_id, customer_id=customer_id, account_id=account_id, kind="credit_balance",
        invoice_id=None, number=reference[:40], currency=currency, amount=ZERO, issue_date=on, due_date=on,
        created_at=utcnow()))
    return iid


def _booked(eid: str, kind: str, alloc: Allocation, credit_item: str | None) -> BookedEvent:
    return BookedEvent(eid, kind, alloc.amount, alloc.currency,
                       tuple((e.item_id, e.kind, e.amount) for e in alloc.entries), credit_item, alloc.left, False)


def open_invoice_item(conn: Connection, tenant_id: str, inv: Any, created_by: str = "system") -> BookedEvent:
    """The open item of a finalized invoice (``inv``: its row), once. A credit note instead takes
    off the items of the invoices it corrects (what is left becomes a credit balance). Either way
    the account's credit balances are then used against what is open."""
    key = f"invoice:{inv.id}"
    done = event(conn, tenant_id, key)
    if done is not None:
        return done
    gross = Decimal(inv.gross_total)
    on = inv.issue_date
    written = _Written()
    written.customers[inv.account_id] = inv.customer_id
    if inv.kind == "credit_note":
        corrected = [str(c) for c in (inv.corrects or [])]
        rows = conn.execute(select(receivable_item.c.id).where(
            receivable_item.c.tenant_id == tenant_id, receivable_item.c.currency == inv.currency,
            receivable_item.c.account_id == inv.account_id,
            receivable_item.c.number.in_(corrected) | receivable_item.c.invoice_id.in_(corrected))).all()
        targets = [r.id for r in rows]
        states = item_states(conn, tenant_id, item_ids=targets) if targets else []
        alloc = allocate(abs(gross), inv.currency, [s.view() for s in states], kind="credit_note")
        eid = _new_event(conn, tenant_id, key, "credit_note", inv.account_id, inv.currency, abs(gross), on,
                         inv.number or inv.id, {"invoice_id": inv.id, "corrects": corrected}, created_by, written)
        _append(conn, tenant_id, eid, on, alloc.entries, written)
        credit = None
        if alloc.left > 0:
            credit = _credit_item(conn, tenant_id, inv.customer_id, inv.account_id, inv.currency,
                                  inv.number or inv.id, on)
            _append(conn, tenant_id, eid, on, [Entry(credit, "overpayment", alloc.left, inv.currency)], written)
        booked = _booked(eid, "credit_note", alloc, credit)
    else:
        item, ev, entry, booked = _invoice_rows(tenant_id, inv, created_by, utcnow())
        for table, row in ((receivable_item, item), (receivable_event, ev), (receivable_entry, entry)):
            driver_insert(conn, table, tuple(row), [tuple(row.values())])
        written.events.append(ev)
        written.entries.append(entry)
    _post(conn, tenant_id, written, {inv.id: inv})
    apply_credit_balances(conn, tenant_id, inv.account_id, inv.currency, on, created_by)
    return booked


def _invoice_rows(tenant_id: str, inv: Any, created_by: str,
                  now: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], BookedEvent]:
    """The item, event and opening entry an invoice writes, as rows, and its booking."""
    gross, on = Decimal(inv.gross_total), inv.issue_date
    iid, eid = new_id("itm"), new_id("rcv")
    item = dict(id=iid, tenant_id=tenant_id, customer_id=inv.customer_id, account_id=inv.account_id, kind="invoice",
                invoice_id=inv.id, number=inv.number or "", currency=inv.currency, amount=gross, issue_date=on,
                due_date=inv.due_date, created_at=now)
    ev = dict(id=eid, tenant_id=tenant_id, key=f"invoice:{inv.id}", kind="invoice", account_id=inv.account_id,
              currency=inv.currency, amount=gross, booked_on=on, reference=inv.number or "",
              detail={"invoice_id": inv.id}, created_by=created_by, created_at=now)
    entry = dict(tenant_id=tenant_id, item_id=iid, event_id=eid, kind="invoice", amount=gross, currency=inv.currency,
                 booked_on=on, created_at=now)
    return item, ev, entry, BookedEvent(eid, "invoice", gross, inv.currency, ((iid, "invoice", gross),), None, ZERO,
                                        False)


def open_invoice_items(conn: Connection, tenant_id: str, invs: Sequence[Any],
                       created_by: str = "system",
                       lines: Mapping[str, Sequence[tuple[str, Decimal, Decimal]]] | None = None) -> list[BookedEvent]:
    """``open_invoice_item`` for many invoices in one transaction (a month-end run finalizing a
    chunk of accounts): the invoices' items, events and entries are written in one insert per
    table and their journal entries in one ``post_events`` call, then each account's credit
    balances are used against what it owes (after all of the run's items are open, oldest due
    first). Credit notes and invoices booked before take the one-by-one path at their place in
    the order. ``lines``: the invoices' (kind, VAT rate, net) per line, when the caller wrote
    them in this transaction (the journal reads them otherwise). Returns the bookings in the
    order of ``invs``."""
    if not invs:
        return []
    keys = [f"invoice:{inv.id}" for inv in invs]
    e = receivable_event.c
    booked_before: set[str] = set()
    for i in range(0, len(keys), 1000):
        booked_before.update(conn.execute(select(e.key).where(e.tenant_id == tenant_id,
                                                              e.key.in_(keys[i:i + 1000]))).scalars())
    out: list[BookedEvent] = []
    run: list[Any] = []
    for inv, key in zip(invs, keys, strict=True):
        if inv.kind == "credit_note" or key in booked_before:
            out += _open_run(conn, tenant_id, run, created_by, lines)
            run = []
            out.append(open_invoice_item(conn, tenant_id, inv, created_by))
        else:
            booked_before.add(key)  # the same invoice twice: the second answers the first booking
            run.append(inv)
    out += _open_run(conn, tenant_id, run, created_by, lines)
    return out


def _open_run(conn: Connection, tenant_id: str, invs: Sequence[Any], created_by: str,
              lines: Mapping[str, Sequence[tuple[str, Decimal, Decimal]]] | None = None) -> list[BookedEvent]:
    if not invs:
        return []
    now = utcnow()
    items, events, entries, out = [], [], [], []
    for inv in invs:
        item, ev, entry, booked = _invoice_rows(tenant_id, inv, created_by, now)
        items.append(item)
        events.append(ev)
        entries.append(entry)
        out.append(booked)
    for table, rows in ((receivable_item, items), (receivable_event, events), (receivable_entry, entries)):
        cols = tuple(rows[0])
        driver_insert(conn, table, cols, list(map(itemgetter(*cols), rows)))
    from store.accounting import post_events

    post_events(conn, tenant_id, events, entries, {inv.id: inv for inv in invs},
                {inv.account_id: inv.customer_id for inv in invs}, lines)
    by_account: dict[tuple[str, str], list[ItemState]] = {(inv.account_id, inv.currency): [] for inv in invs}
    for st in item_states(conn, tenant_id, account_ids=sorted({a for a, _c in by_account})):
        got = by_account.get((st.account_id, st.currency))
        if got is not None:
            got.append(st)
    on = {(inv.account_id, inv.currency): inv.issue_date for inv in invs}
    for (account_id, currency), states in by_account.items():
        apply_credit_balances(conn, tenant_id, account_id, currency, on[(account_id, currency)], created_by, states)
    return out


def open_charge_item(conn: Connection, tenant_id: str, *, key: str, kind: str, customer_id: str, account_id: str,
                     currency: str, amount: Decimal, issue_date: date, due_date: date, number: str,
                     detail: dict[str, Any] | None = None, created_by: str = "system",
                     states: Sequence[ItemState] | None = None) -> str:
    """An item of its own for a charge dunning makes (``dunning_fee``, ``interest``, ``flat_fee``),
    collected and matched like an invoice; booked once per ``key`` (returns the item's id).
    ``states``: the account's items in ``currency`` as the caller read them in this transaction
    (``apply_credit_balances`` then reads them only when one is a credit balance)."""
    if ENTRY_SIGNS.get(kind) != +1 or kind in ("invoice", "return", "return_charge", "refund", "credit_used"):
        raise ValueError(f"{kind!r} is not a charge of its own")
    done = event(conn, tenant_id, key)
    if done is not None:
        return done.entries[0][0]
    iid = new_id("itm")
    conn.execute(_I_ITEM, dict(
        id=iid, tenant_id=tenant_id, customer_id=customer_id, account_id=account_id, kind=kind, invoice_id=None,
        number=number[:40], currency=currency, amount=amount, issue_date=issue_date, due_date=due_date,
        created_at=utcnow()))
    written = _Written()
    written.customers[account_id] = customer_id
    eid = _new_event(conn, tenant_id, key, kind, account_id, currency, amount, issue_date, number[:300],
                     detail or {}, created_by, written)
    _append(conn, tenant_id, eid, issue_date, [Entry(iid, kind, amount, currency)], written)
    _post(conn, tenant_id, written)
    apply_credit_balances(conn, tenant_id, account_id, currency, issue_date, created_by, states)
    return iid


def book_netting(conn: Connection, tenant_id: str, *, key: str, customer_id: str, currency: str, up_to: Decimal,
                 booked_on: date, reference: str, created_by: str = "system") -> Decimal:
    """Settle the customer's open items in ``currency`` (oldest due first, any of its accounts) with
    up to ``up_to`` of a credit the tenant owes it elsewhere (a host credit note's payable): one
    ``partner_netting`` event per account (key ``<key>:<account>``, booked once), entries of kind
    ``netting``; the journal posts the partner payable against the debtor. Disputed items are left
    alone. -> what was settled (0 when nothing is open)."""
    if up_to <= 0:
        return ZERO
    from store.dunning import open_disputes

    states = [s for s in item_states(conn, tenant_id, customer_id=customer_id, currency=currency) if s.open > 0]
    disputed = open_disputes(conn, tenant_id, [s.id for s in states])
    states = [s for s in states if s.id not in disputed]
    by_account: dict[str, list[ItemState]] = {}
    for s in states:
        by_account.setdefault(s.account_id, []).append(s)
    left, settled = up_to, ZERO
    for account_id in sorted(by_account, key=lambda a: (by_account[a][0].due_date, a)):
        if left <= 0:
            break
        akey = f"{key}:{account_id}"
        done = event(conn, tenant_id, akey)
        if done is not None:
            took = sum((amt for _iid, kind, amt in done.entries if kind == "netting"), ZERO)
        else:
            alloc = allocate(min(left, sum((s.open for s in by_account[account_id]), ZERO)), currency,
                             [s.view() for s in by_account[account_id]], kind="netting")
            took = alloc.allocated
            if took <= 0:
                continue
            written = _Written()
            written.customers[account_id] = customer_id
            eid = _new_event(conn, tenant_id, akey, "partner_netting", account_id, currency, took, booked_on,
                             reference[:300], {}, created_by, written)
            _append(conn, tenant_id, eid, booked_on, alloc.entries, written)
            _post(conn, tenant_id, written)
        left -= took
        settled += took
    return settled


def apply_credit_balances(conn: Connection, tenant_id: str, account_id: str, currency: str, on: date,
                          created_by: str = "system", states: Sequence[ItemState] | None = None) -> list[BookedEvent]:
    """Use the account's credit balances (oldest first) against its open items (oldest due first).
    ``states``: the account's items in ``currency`` as the caller just read them (else read here).
    An account without a credit balance is left at that read. Otherwise its row is locked first,
    as a refund request locks it (``store.payables``), and its items read again: on PostgreSQL an
    invoice finalized while a refund is requested waits for it and then sees the credit the refund
    took, so one credit is never both used and paid out (SQLite has one writer)."""
    if states is None:
        states = item_states(conn, tenant_id, account_id=account_id, currency=currency)
    if not any(s.open < 0 for s in states):
        return []
    acct = BillingAccount.__table__  # type: ignore[attr-defined]
    conn.execute(select(acct.c.id).where(acct.c.tenant_id == tenant_id, acct.c.id == account_id).with_for_update())
    states = item_states(conn, tenant_id, account_id=account_id, currency=currency)
    credits = [s for s in states if s.open < 0]
    open_now = {s.id: s.open for s in states}
    booked: list[BookedEvent] = []
    written = _Written()
    if credits:
        written.customers[account_id] = credits[0].customer_id
    for c in credits:
        # what each item owes after the credits used before this one
        debts = [ItemView(s.id, open_now[s.id], s.currency, s.due_date) for s in states if open_now[s.id] > 0]
        if not debts:
            break
        alloc = allocate(-c.open, currency, debts, kind="credit_applied")
        if not alloc.entries:
            continue
        used = alloc.allocated
        for e in alloc.entries:
            open_now[e.item_id] -= e.amount
        open_now[c.id] += used
        key = f"credit:{c.id}:{'+'.join(e.item_id for e in alloc.entries)}:{used}"
        eid = _new_event(conn, tenant_id, key, "credit_applied", account_id, currency, used, on, c.number,
                         {"credit_item_id": c.id}, created_by, written)
        _append(conn, tenant_id, eid, on, [*alloc.entries, Entry(c.id, "credit_used", used, currency)], written)
        booked.append(_booked(eid, "credit_applied", Allocation(used, currency, alloc.entries, ZERO), None))
    _post(conn, tenant_id, written)
    return booked


@dataclass(slots=True)
class _PaymentRows:
    """What booking one payment writes: its event, its entries (in booking order) and the credit
    balance item an overpayment opens."""

    event: dict[str, Any]
    entries: list[dict[str, Any]]
    credit_item: dict[str, Any] | None
    booked: BookedEvent


def _payment_rows(tenant_id: str, key: str, customer_id: str, account_id: str, amount: Decimal, currency: str,
                  booked_on: date, reference: str, items: Sequence[ItemView], targets: Sequence[str],
                  detail: dict[str, Any], created_by: str) -> _PaymentRows:
    """The one place that decides a payment's booking (``book_payment`` writes it at once,
    ``PaymentBatch`` in bulk)."""
    alloc = allocate(amount, currency, items, kind="payment", targets=targets)
    eid, now = new_id("rcv"), utcnow()
    ev = dict(id=eid, tenant_id=tenant_id, key=key, kind="payment", account_id=account_id, currency=currency,
              amount=amount, booked_on=booked_on, reference=reference, detail=detail, created_by=created_by,
              created_at=now)
    entries = list(alloc.entries)
    credit_row, credit = None, ""
    if alloc.left > 0:
        credit = new_id("itm")
        credit_row = dict(id=credit, tenant_id=tenant_id, customer_id=customer_id, account_id=account_id,
                          kind="credit_balance", invoice_id=None, number=(reference or key)[:40], currency=currency,
                          amount=ZERO, issue_date=booked_on, due_date=booked_on, created_at=now)
        entries.append(Entry(credit, "overpayment", alloc.left, currency))
    rows = [dict(tenant_id=tenant_id, item_id=e.item_id, event_id=eid, kind=e.kind, amount=e.amount,
                 currency=e.currency, booked_on=booked_on, created_at=now) for e in entries]
    return _PaymentRows(ev, rows, credit_row,
                        _booked(eid, "payment", alloc, credit if credit_row else None))


def book_payment(conn: Connection, tenant_id: str, *, key: str, customer_id: str, account_id: str, amount: Decimal,
                 currency: str, booked_on: date, reference: str, targets: Sequence[str] = (),
                 detail: dict[str, Any] | None = None, created_by: str = "system") -> BookedEvent:
    """A payment received for the account: spread over ``targets`` (item ids) first, then its open
    items by due date; an overpayment opens a credit balance. Booked once per ``key``."""
    done = event(conn, tenant_id, key)
    if done is not None:
        return done
    states = item_states(conn, tenant_id, account_id=account_id, currency=currency)
    rows = _payment_rows(tenant_id, key, customer_id, account_id, amount, currency, booked_on, reference,
                         [s.view() for s in states], targets, detail or {}, created_by)
    conn.execute(insert(receivable_event).values(**rows.event))
    if rows.credit_item is not None:
        conn.execute(insert(receivable_item).values(**rows.credit_item))
    if rows.entries:
        conn.execute(insert(receivable_entry), rows.entries)
    from store.accounting import post_events

    post_events(conn, tenant_id, [rows.event], rows.entries, customers={account_id: customer_id})
    return rows.booked


def open_items(conn: Connection, tenant_id: str, currency: str) -> list[ItemState]:
    """Every item of the tenant in ``currency`` with what is open on it, by due date then id: the
    same as ``item_states(currency=...)`` in two scans instead of a list of every item's id (a
    statement import looks at all of them at once)."""
    i, e = receivable_item.c, receivable_entry.c
    effect: dict[str, Decimal] = {}
    for item_id, kind, amount in conn.execute(select(e.item_id, e.kind, e.amount).where(
            e.tenant_id == tenant_id, e.currency == currency)).all():
        effect[item_id] = effect.get(item_id, ZERO) + ENTRY_SIGNS[kind] * amount
    rows = conn.execute(select(i.id, i.customer_id, i.account_id, i.kind, i.invoice_id, i.number, i.currency, i.amount,
                               i.issue_date, i.due_date)
                        .where(i.tenant_id == tenant_id, i.currency == currency)).all()
    # by position: a row's attributes by name cost more than the rest of this function
    out = [ItemState(iid, cus, acc, kind, inv, num, cur, amt, effect.get(iid, ZERO), issued, due)
           for iid, cus, acc, kind, inv, num, cur, amt, issued, due in rows]
    out.sort(key=lambda s: (s.due_date, s.id))
    return out


def open_invoice_items_due(conn: Connection, tenant_id: str, currency: str, due_by: date) -> list[ItemState]:
    """The tenant's invoice items in ``currency`` due by ``due_by`` with something open, by due
    date then id: what ``item_states`` gives for them, in two reads for all of them (a collection
    run gathers every account's due items at once)."""
    i, e = receivable_item.c, receivable_entry.c
    due = (i.tenant_id == tenant_id, i.currency == currency, i.kind == "invoice", i.due_date <= due_by)
    effect: dict[str, Decimal] = {}
    for item_id, kind, amount, cur in conn.execute(
            select(e.item_id, e.kind, e.amount, e.currency).join(receivable_item, i.id == e.item_id).where(*due)).all():
        if cur != currency:
            raise CurrencyMismatch(f"an item in {currency} has an entry in {cur}")
        effect[item_id] = effect.get(item_id, ZERO) + ENTRY_SIGNS[kind] * amount
    out = [ItemState(iid, cus, acc, kind, inv, num, cur, amt, effect.get(iid, ZERO), issued, due_date)
           for iid, cus, acc, kind, inv, num, cur, amt, issued, due_date in conn.execute(
               select(i.id, i.customer_id, i.account_id, i.kind, i.invoice_id, i.number, i.currency, i.amount,
                      i.issue_date, i.due_date).where(*due)).all()
           if effect.get(iid, ZERO) > 0]
    out.sort(key=lambda s: (s.due_date, s.id))
    return out


def open_of(conn: Connection, entries: Any) -> dict[str, Decimal]:
    """What is open on each item whose entries the select ``entries`` gives (rows of item id,
    kind, amount, the entry's currency and the item's), as ``item_states`` adds them up."""
    out: dict[str, Decimal] = {}
    for item_id, kind, amount, cur, item_currency in conn.execute(entries).all():
        if cur != item_currency:
            raise CurrencyMismatch(f"an item in {item_currency} has an entry in {cur}")
        out[item_id] = out.get(item_id, ZERO) + ENTRY_SIGNS[kind] * amount
    return out


class PaymentBatch:
    """Many payments in one currency booked against an in-memory copy of what is open, written in
    bulk by ``flush`` (a statement import: one read of the open items instead of one per payment,
    one insert per table instead of one per row). Each booking is decided exactly as
    ``book_payment`` decides it, seeing every booking made before it in the batch. The caller
    keeps the keys unique (it knows which were booked before) and flushes before anything else
    reads the receivables in its transaction."""

    def __init__(self, conn: Connection, tenant_id: str, currency: str) -> None:
        self.tenant_id, self.currency = tenant_id, currency
        self.states = {s.id: s for s in open_items(conn, tenant_id, currency)}
        self.open = {s.id: s.open for s in self.states.values()}
        # per account, the items with something open (allocation skips the rest)
        self._owed: dict[str, list[str]] = {}
        for s in self.states.values():
            if s.open > 0:
                self._owed.setdefault(s.account_id, []).append(s.id)
        self._events: list[dict[str, Any]] = []
        self._entries: list[dict[str, Any]] = []
        self._items: list[dict[str, Any]] = []
        self._customers: dict[str, str] = {}

    def book(self, *, key: str, customer_id: str, account_id: str, amount: Decimal, booked_on: date, reference: str,
             targets: Sequence[str] = (), detail: dict[str, Any] | None = None,
             created_by: str = "system") -> tuple[BookedEvent, dict[str, Decimal]]:
        """Book one payment; returns its booking and what was open before on the items it could
        pay (the account's items with something open)."""
        owed = [i for i in self._owed.get(account_id, ()) if self.open[i] > 0]
        self._owed[account_id] = owed
        views = [ItemView(i, self.open[i], self.currency, self.states[i].due_date) for i in owed]
        known = set(owed)
        rows = _payment_rows(self.tenant_id, key, customer_id, account_id, amount, self.currency, booked_on,
                             reference, views, [t for t in targets if t in known], detail or {}, created_by)
        self._events.append(rows.event)
        self._entries += rows.entries
        self._customers[account_id] = customer_id
        if rows.credit_item is not None:
            self._items.append(rows.credit_item)
            self.open[rows.credit_item["id"]] = ZERO
        for r in rows.entries:
            self.open[r["item_id"]] += ENTRY_SIGNS[r["kind"]] * r["amount"]
        return rows.booked, {v.id: v.open for v in views}

    def flush(self, conn: Connection) -> None:
        """Write what was booked since the last flush (items before the entries that refer to them)
        and post its journal entries."""
        from store.accounting import post_events

        events, entries = list(self._events), list(self._entries)
        for table, rows in ((receivable_item, self._items), (receivable_event, self._events),
                            (receivable_entry, self._entries)):
            if rows:
                cols = tuple(rows[0])
                driver_insert(conn, table, cols, list(map(itemgetter(*cols), rows)))
            rows.clear()
        post_events(conn, self.tenant_id, events, entries, customers=self._customers)


def aged_receivables(conn: Connection, tenant_id: str, as_of: date) -> dict[str, dict[str, Decimal]]:
    """Aged receivables per currency (buckets of ``runtime.receivables.aging``)."""
    by_currency: dict[str, list[ItemView]] = {}
    for s in item_states(conn, tenant_id):
        by_currency.setdefault(s.currency, []).append(s.view())
    return {cur: aging(views, as_of) for cur, views in sorted(by_currency.items())}


def statement_lines(conn: Connection, tenant_id: str, customer_id: str, currency: str, start: date | None,
                    end: date | None) -> tuple[Decimal, list[dict[str, Any]], Decimal]:
    """A customer's account statement in one currency: the balance before ``start``, each entry of
    [start, end) in booking order with the balance after it, and the closing balance."""
    items = {r.id: r for r in conn.execute(select(receivable_item).where(
        receivable_item.c.tenant_id == tenant_id, receivable_item.c.customer_id == customer_id,
        receivable_item.c.currency == currency)).all()}
    if not items:
        return ZERO, [], ZERO
    rows = conn.execute(select(receivable_entry, receivable_event.c.reference, receivable_event.c.kind.label("event_kind"))
                        .join(receivable_event, receivable_event.c.id == receivable_entry.c.event_id)
                        .where(receivable_entry.c.item_id.in_(list(items)))
                        .order_by(receivable_entry.c.booked_on, receivable_entry.c.id)).all()
    opening, lines = ZERO, []
    balance = ZERO
    for r in rows:
        if r.event_kind == "credit_applied":
            continue  # a credit balance used against an invoice: its two entries cancel out here
        effect = Entry(r.item_id, r.kind, r.amount, r.currency).effect
        if start is not None and r.booked_on < start:
            opening += effect
            balance = opening
            continue
        if end is not None and r.booked_on >= end:
            break
        balance += effect
        item = items[r.item_id]
        lines.append({"booked_on": r.booked_on, "kind": r.kind, "event": r.event_kind, "item_id": r.item_id,
                      "item_kind": item.kind, "number": item.number, "reference": r.reference,
                      "debit": effect if effect > 0 else ZERO, "credit": -effect if effect < 0 else ZERO,
                      "balance": balance})
    return opening, lines, balance


def book_return(conn: Connection, tenant_id: str, *, key: str, item_id: str, amount: Decimal, charge: Decimal,
                booked_on: date, reference: str, detail: dict[str, Any] | None = None,
                created_by: str = "system") -> BookedEvent:
    """A collected payment taken back (an R-transaction): ``amount`` is owed again on the item, and
    ``charge`` (the bank's fee, when passed on) on top. Booked once per ``key``."""
    done = event(conn, tenant_id, key)
    if done is not None:
        return done
    item = conn.execute(select(receivable_item).where(receivable_item.c.tenant_id == tenant_id,
                                                      receivable_item.c.id == item_id)).one()
    entries = [Entry(item_id, "return", amount, item.currency)] if amount > 0 else []
    if charge > 0:
        entries.append(Entry(item_id, "return_charge", charge, item.currency))
    written = _Written()
    written.customers[item.account_id] = item.customer_id
    eid = _new_event(conn, tenant_id, key, "return", item.account_id, item.currency, amount + charge, booked_on,
                     reference, detail or {}, created_by, written)
    _append(conn, tenant_id, eid, booked_on, entries, written)
    _post(conn, tenant_id, written)
    return BookedEvent(eid, "return", amount + charge, item.currency,
                       tuple((e.item_id, e.kind, e.amount) for e in entries), None, ZERO, False)


def book_refund(conn: Connection, tenant_id: str, *, key: str, account_id: str, currency: str, amount: Decimal,
                credits: Sequence[ItemView], booked_on: date, reference: str, detail: dict[str, Any] | None = None,
                created_by: str = "system") -> BookedEvent:
    """A credit balance paid out: ``amount`` taken from ``credits`` (credit balance items, oldest
    first) by ``refund`` entries, never more than they hold (``runtime.receivables.take_credit``
    raises ``InsufficientCredit`` and nothing is written). Booked once per ``key``."""
    done = event(conn, tenant_id, key)
    if done is not None:
        return done
    alloc = take_credit(amount, currency, credits)
    written = _Written()
    eid = _new_event(conn, tenant_id, key, "refund", account_id, currency, amount, booked_on, reference,
                     detail or {}, created_by, written)
    _append(conn, tenant_id, eid, booked_on, alloc.entries, written)
    _post(conn, tenant_id, written)
    return _booked(eid, "refund", alloc, None)


def book_refund_return(conn: Connection, tenant_id: str, *, key: str, refund_key: str, booked_on: date,
                       reference: str, detail: dict[str, Any] | None = None, created_by: str = "system") -> BookedEvent:
    """The transfer of the refund booked under ``refund_key`` came back: each credit item it took
    from gets back what it gave (``refund_return`` entries). Booked once per ``key``."""
    done = event(conn, tenant_id, key)
    if done is not None:
        return done
    refund = event(conn, tenant_id, refund_key)
    if refund is None:
        raise LookupError(f"no refund booked under {refund_key!r}")
    entries = [Entry(item, "refund_return", amt, refund.currency) for item, kind, amt in refund.entries
               if kind == "refund"]
    account_id = conn.execute(select(receivable_event.c.account_id).where(
        receivable_event.c.id == refund.event_id)).scalar_one()
    written = _Written()
    eid = _new_event(conn, tenant_id, key, "refund_return", account_id, refund.currency, refund.amount, booked_on,
                     reference, detail or {}, created_by, written)
    _append(conn, tenant_id, eid, booked_on, entries, written)
    _post(conn, tenant_id, written)
    return BookedEvent(eid, "refund_return", refund.amount, refund.currency,
                       tuple((e.item_id, e.kind, e.amount) for e in entries), None, ZERO, False)


class WriteOffRefused(ValueError):
    """A write-off that cannot be booked: ``code`` says why (``not_open``, ``amount_too_high``,
    ``not_receivable``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _document_vat(conn: Connection, tenant_id: str, item: Any) -> tuple[Decimal, tuple[tuple[Decimal, Decimal], ...]]:
    """The gross and the VAT per rate of the document behind an item: the invoice's VAT groups, a
    dunning fee's VAT as its stage stored it; nothing for interest, flat fees and stand-ins."""
    if item.kind == "invoice" and item.invoice_id:
        from store.billing import invoice

        row = conn.execute(select(invoice.c.tax_groups, invoice.c.gross_total).where(
            invoice.c.tenant_id == tenant_id, invoice.c.id == item.invoice_id)).first()
        if row is not None and row.tax_groups:
            return Decimal(str(row.gross_total)), tuple(
                (Decimal(str(g["rate"])), Decimal(str(g["tax"]))) for g in row.tax_groups)
        # no invoice row (an item opened from a stand-in): the VAT its journal entry booked
        from store.accounting import journal_entry, journal_line

        ev, je, jl = receivable_event.c, journal_entry.c, journal_line.c
        vat: dict[Decimal, Decimal] = {}
        for rate, side, amount in conn.execute(
                select(jl.vat, jl.side, jl.amount).join(journal_entry, je.id == jl.entry_id)
                .join(receivable_event, ev.id == je.source_id)
                .where(ev.tenant_id == tenant_id, ev.key == f"invoice:{item.invoice_id}", jl.role == "vat")):
            vat[Decimal(rate)] = vat.get(Decimal(rate), ZERO) + (amount if side == "credit" else -amount)
        return Decimal(item.amount), tuple(sorted(vat.items()))
    if item.kind == "dunning_fee":
        ev = receivable_event.c
        detail = conn.execute(select(ev.detail).join(receivable_entry, receivable_entry.c.event_id == ev.id).where(
            receivable_entry.c.item_id == item.id, receivable_entry.c.kind == "dunning_fee")).scalar()
        if detail and detail.get("vat_rate") is not None and detail.get("vat"):
            return Decimal(item.amount), ((Decimal(str(detail["vat_rate"])), Decimal(str(detail["vat"]))),)
    return Decimal(item.amount), ()


def _written_off_before(conn: Connection, item_id: str) -> tuple[Decimal, dict[Decimal, Decimal]]:
    """What earlier write-offs of the item gave up, and the VAT they corrected per rate."""
    e, ev = receivable_entry.c, receivable_event.c
    total, vat = ZERO, {}
    for amount, detail in conn.execute(select(e.amount, ev.detail).join(receivable_event, ev.id == e.event_id)
                                       .where(e.item_id == item_id, e.kind == "write_off")):
        total += Decimal(amount)
        for rate, tax in (detail or {}).get("vat", ()):
            vat[Decimal(rate)] = vat.get(Decimal(rate), ZERO) + Decimal(tax)
    return total, vat


def book_write_off(conn: Connection, tenant_id: str, *, key: str, item_id: str, amount: Decimal | None,
                   booked_on: date, reason: str, created_by: str = "system") -> BookedEvent:
    """Give up ``amount`` (all that is open when ``None``) of an item the customer owes: a
    ``write_off`` entry on the item, and its journal entry (the debtor credited, the net to bad
    debts, the VAT share corrected: ``runtime.receivables.written_off_vat``). Booked once per
    ``key``; raises ``WriteOffRefused`` (nothing written) and ``LookupError`` for an unknown item."""
    done = event(conn, tenant_id, key)
    if done is not None:
        return done
    item = conn.execute(select(receivable_item).where(receivable_item.c.tenant_id == tenant_id,
                                                      receivable_item.c.id == item_id).with_for_update()).first()
    if item is None:
        raise LookupError(item_id)
    if item.kind == "credit_balance":
        raise WriteOffRefused("not_receivable", "a credit balance is owed to the customer: refund it instead")
    is_open = open_amount(entries_of(conn, [item_id])[item_id], item.currency)
    if is_open <= 0:
        raise WriteOffRefused("not_open", f"item {item.number or item_id} has nothing open to write off")
    amount = is_open if amount is None else amount
    if amount <= 0:
        raise WriteOffRefused("amount_too_high", "a write-off is a positive amount")
    if amount > is_open:
        raise WriteOffRefused("amount_too_high", f"{amount} {item.currency} is more than the {is_open} "
                                                 f"{item.currency} open on item {item.number or item_id}")
    gross, vat = _document_vat(conn, tenant_id, item)
    before, done = _written_off_before(conn, item_id)
    corrected = written_off_vat(amount, max(gross, before + amount), vat, item.currency, before, done)
    written = _Written()
    written.customers[item.account_id] = item.customer_id
    detail = {"item_id": item_id, "reason": reason, "open_before": format(is_open, "f"),
              "vat": [[format(r, "f"), format(t, "f")] for r, t in corrected]}
    eid = _new_event(conn, tenant_id, key, "write_off", item.account_id, item.currency, amount, booked_on,
                     (item.number or item_id)[:300], detail, created_by, written)
    entry = Entry(item_id, "write_off", amount, item.currency)
    _append(conn, tenant_id, eid, booked_on, [entry], written)
    _post(conn, tenant_id, written)
    return BookedEvent(eid, "write_off", amount, item.currency, ((item_id, "write_off", amount),), None, ZERO, False)


def event_detail(conn: Connection, event_id: str) -> dict[str, Any]:
    """A receivable event's detail (a write-off's VAT corrections, ...); {} when it has none."""
    row = conn.execute(select(receivable_event.c.detail).where(receivable_event.c.id == event_id)).first()
    return dict(row.detail or {}) if row is not None else {}
