"""Billing tables and their repository functions: invoices and lines, gapless number series,
billed sessions, finance tasks, manual holds and flags, manual postings, service items, discounts.

Plain SQLAlchemy Core (not ORM objects): the month-end run reads and writes tens of thousands of
rows per minute and the billing activities only need statements. Every function takes the
caller's connection and tenant; the caller owns the transaction (activities commit once per step,
so a retried activity either sees all of a step or none of it).

Invariants kept here:
- one invoice per (tenant, account, cycle key) — a retried or re-run cycle finds its own draft;
- numbers are allocated gaplessly per (tenant, series), once per invoice: the invoice row is locked
  first and an already numbered invoice returns its number, then the series row is locked and
  incremented in the same transaction as the invoice update (``allocate_number``);
- a finalized invoice is never changed; corrections go on later invoices (``billing_session``
  remembers which rating of a session was billed where; unique per session and rating).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql import Select

from runtime.invoicing import (
    PaymentTerms,
    Period,
    PeriodDiscount,
    ServiceBill,
    ServicePrice,
    ServiceSubscription,
    bill_services,
    document_dates,
)
from store.models import Tenant, metadata
from store.types import ExactDecimal, UTCDateTime, new_id, utcnow
from store.writelock import sqlite_write_lock

__all__ = [
    "INVOICE_SERIES",
    "ActiveHolds",
    "AllocationError",
    "FinalizeResult",
    "account_discount",
    "account_rows",
    "active_holds",
    "add_posting",
    "allocate_number",
    "billed_invoice_ids",
    "billed_session",
    "billing_hold",
    "close_if_empty",
    "close_task",
    "consume_holds",
    "count_by_status",
    "draw_numbers",
    "driver_insert",
    "ensure_series",
    "escalate_task",
    "finalize_invoice",
    "finalize_new_draft",
    "finalize_new_drafts",
    "finance_task",
    "ids_on_open_invoices",
    "in_values",
    "insert_drafts",
    "insert_lines",
    "insert_many_lines",
    "invoice",
    "invoice_line",
    "invoices_of_session",
    "issue_dates",
    "number_series",
    "open_task",
    "period_discounts",
    "period_services",
    "place_hold",
    "posting",
    "postings_of",
    "previous_net",
    "release_hold",
    "service_item",
    "tenant_row",
    "tenant_zone",
    "write_transaction",
]

_ID = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements only INTEGER keys


def _s(n: int) -> String:
    return String(length=n)


def _dec(name: str, nullable: bool = False) -> Column[Any]:
    return Column(name, ExactDecimal(), nullable=nullable)


invoice = Table(
    "billing_invoice", metadata,
    Column("id", _s(40), primary_key=True),
    Column("tenant_id", _s(40), ForeignKey("tenant.id"), nullable=False),
    Column("account_id", _s(40), ForeignKey("billing_account.id"), nullable=False),
    Column("customer_id", _s(40), nullable=False),
    Column("cycle_key", _s(120), nullable=False),
    Column("kind", _s(20), nullable=False),  # invoice | credit_note
    Column("status", _s(20), nullable=False),  # draft | held | finalized | rejected | empty
    Column("currency", _s(3), nullable=False),
    Column("period_start", UTCDateTime(), nullable=False),
    Column("period_end", UTCDateTime(), nullable=False),
    Column("local_start", Date(), nullable=False),
    Column("local_end", Date(), nullable=False),
    Column("timezone", _s(64), nullable=False),
    Column("issue_date", Date(), nullable=False),
    Column("due_date", Date(), nullable=False),
    Column("payment_terms", _s(50), nullable=False),
    _dec("net_total"), _dec("tax_total"), _dec("gross_total"),
    Column("tax_groups", JSON(), nullable=False),
    Column("sessions", Integer(), nullable=False),
    _dec("energy_kwh"),
    Column("hold_reasons", JSON(), nullable=False),
    Column("comparison", JSON(), nullable=False),
    Column("corrects", JSON(), nullable=False),
    Column("series", _s(20), nullable=True),
    Column("number", _s(40), nullable=True),
    Column("number_seq", Integer(), nullable=True),
    Column("workflow_id", _s(200), nullable=False),
    Column("ruleset_version_id", _s(40), nullable=True),
    Column("rejected_reason", _s(1000), nullable=False),
    Column("decided_by", _s(40), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("finalized_at", UTCDateTime(), nullable=True),
    UniqueConstraint("tenant_id", "account_id", "cycle_key", name="uq_billing_invoice_cycle"),
    UniqueConstraint("tenant_id", "series", "number_seq", name="uq_billing_invoice_number"),
    Index("ix_billing_invoice_tenant_status", "tenant_id", "status"),
    Index("ix_billing_invoice_account_end", "tenant_id", "account_id", "period_end"),
)

invoice_line = Table(
    "billing_invoice_line", metadata,
    # no foreign keys on month-end's largest insert tables (migration 0046): a line is written
    # only with its invoice, in its transaction, by this module; its key is its invoice's and the
    # number the invoice gives it, and it has no other index (migration 0047: ~200 lines per
    # account at month-end, each index entry server work per row)
    Column("tenant_id", _s(40), nullable=False),
    Column("invoice_id", _s(40), primary_key=True),
    Column("seq", Integer(), primary_key=True, autoincrement=False),
    Column("kind", _s(20), nullable=False),
    Column("component", _s(30), nullable=False),
    Column("description", _s(300), nullable=False),
    _dec("quantity"),
    Column("unit", _s(20), nullable=False),
    _dec("unit_price"), _dec("net"), _dec("net_unrounded"), _dec("tax_rate"),
    Column("session_id", _s(40), nullable=False),
    Column("rating_id", _s(40), nullable=False),
    Column("rule", _s(500), nullable=False),
    Column("corrects", _s(200), nullable=False),
)

number_series = Table(
    "billing_number_series", metadata,
    Column("tenant_id", _s(40), ForeignKey("tenant.id"), primary_key=True),
    Column("series", _s(20), primary_key=True),
    Column("prefix", _s(20), nullable=False),
    Column("next_value", Integer(), nullable=False),
)

billed_session = Table(
    "billing_session", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("tenant_id", _s(40), nullable=False),  # no foreign keys, as the lines (migration 0046)
    Column("session_id", _s(40), nullable=False),
    Column("rating_id", _s(40), nullable=False),
    Column("invoice_id", _s(40), nullable=False),
    UniqueConstraint("tenant_id", "session_id", "rating_id", name="uq_billing_session_rating"),
)

finance_task = Table(
    "billing_finance_task", metadata,
    Column("id", _s(40), primary_key=True),
    Column("tenant_id", _s(40), ForeignKey("tenant.id"), nullable=False),
    # the held invoice (kind invoice_hold); empty for a task about something else (subject_id)
    Column("invoice_id", _s(40), ForeignKey("billing_invoice.id"), nullable=True),
    Column("account_id", _s(40), nullable=False),
    Column("workflow_id", _s(200), nullable=False),
    Column("kind", _s(30), nullable=False),  # invoice_hold | batch_delivery
    Column("subject_id", _s(40), nullable=True),  # a batch_delivery's posting batch
    Column("status", _s(20), nullable=False),  # open | approved | rejected | released
    Column("reasons", JSON(), nullable=False),
    Column("comparison", JSON(), nullable=False),
    Column("escalation_level", Integer(), nullable=False),
    Column("escalated_at", UTCDateTime(), nullable=True),
    Column("decided_by", _s(40), nullable=False),
    Column("decision_reason", _s(1000), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("closed_at", UTCDateTime(), nullable=True),
    UniqueConstraint("invoice_id", "kind", name="uq_billing_task_invoice"),
    Index("ix_billing_task_tenant_status", "tenant_id", "status"),
    Index("ix_billing_task_subject", "tenant_id", "kind", "subject_id"),
)

billing_hold = Table(
    "billing_hold", metadata,
    Column("id", _s(40), primary_key=True),
    Column("tenant_id", _s(40), ForeignKey("tenant.id"), nullable=False),
    Column("account_id", _s(40), ForeignKey("billing_account.id"), nullable=False),
    Column("kind", _s(10), nullable=False),  # hold (stops the next invoice) | flag (hold rules read it)
    Column("name", _s(100), nullable=False),
    Column("reason", _s(500), nullable=False),
    Column("placed_by", _s(40), nullable=False),
    Column("placed_at", UTCDateTime(), nullable=False),
    Column("released_by", _s(40), nullable=True),
    Column("released_at", UTCDateTime(), nullable=True),
    # a manual hold holds the account's next invoice only: the draft it held, once it held one
    Column("consumed_by_invoice", _s(40), nullable=True),
    Column("consumed_at", UTCDateTime(), nullable=True),
    Index("ix_billing_hold_account", "tenant_id", "account_id"),
)

posting = Table(
    "billing_posting", metadata,
    Column("id", _s(60), primary_key=True),  # chosen by the workflow, so a retried activity inserts once
    Column("tenant_id", _s(40), ForeignKey("tenant.id"), nullable=False),
    Column("invoice_id", _s(40), ForeignKey("billing_invoice.id"), nullable=False),
    Column("description", _s(300), nullable=False),
    _dec("amount"), _dec("tax_rate"),
    Column("author_id", _s(40), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_billing_posting_invoice", "invoice_id"),
)

service_item = Table(
    "billing_service_item", metadata,
    Column("id", _s(40), primary_key=True),
    Column("tenant_id", _s(40), ForeignKey("tenant.id"), nullable=False),
    Column("account_id", _s(40), ForeignKey("billing_account.id"), nullable=False),
    Column("product", _s(100), nullable=False),
    Column("description", _s(300), nullable=False),
    # product: the ruleset service that prices the item ("supervision.ac_charger"), or "" when the
    # item carries its own unit_price and tax_rate; unit: what that price covers (month | quarter |
    # year | each; "" for ruleset-priced items, whose ruleset says)
    _dec("quantity"), _dec("unit_price", nullable=True), _dec("tax_rate", nullable=True),
    Column("unit", _s(20), nullable=False),
    Column("valid_from", Date(), nullable=False),
    Column("valid_to", Date(), nullable=True),
    Index("ix_billing_service_item_account", "tenant_id", "account_id"),
)

account_discount = Table(
    "billing_discount", metadata,
    Column("id", _s(40), primary_key=True),
    Column("tenant_id", _s(40), ForeignKey("tenant.id"), nullable=False),
    Column("account_id", _s(40), ForeignKey("billing_account.id"), nullable=False),
    Column("description", _s(300), nullable=False),
    _dec("percent", nullable=True), _dec("amount", nullable=True), _dec("tax_rate", nullable=True),
    Column("valid_from", Date(), nullable=False),
    Column("valid_to", Date(), nullable=True),
    Index("ix_billing_discount_account", "tenant_id", "account_id"),
)

INVOICE_SERIES = {"invoice": ("INV", "INV-"), "credit_note": ("CN", "CN-")}


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that writes. On SQLite it takes the write lock up front (BEGIN IMMEDIATE):
    a deferred transaction that read first fails at once with SQLITE_BUSY when another writer
    committed meanwhile, whereas waiting for the lock is covered by the busy timeout."""
    with sqlite_write_lock(engine), engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.commit()
        except BaseException:
            conn.rollback()
            raise


class AllocationError(RuntimeError):
    """The invoice cannot be numbered (rejected, or another tenant's)."""


# statements of month-end's path, built once: building a statement costs more than SQLite running it
_Q_SERIES = select(number_series.c.series).where(number_series.c.tenant_id == bindparam("t"),
                                                 number_series.c.series == bindparam("s"))
_Q_DRAW = (update(number_series)
           .where(number_series.c.tenant_id == bindparam("t"), number_series.c.series == bindparam("s"))
           .values(next_value=number_series.c.next_value + 1)
           .returning(number_series.c.next_value, number_series.c.prefix))
_Q_DRAW_MANY = (update(number_series)
                .where(number_series.c.tenant_id == bindparam("t"), number_series.c.series == bindparam("s"))
                .values(next_value=number_series.c.next_value + bindparam("n"))
                .returning(number_series.c.next_value, number_series.c.prefix))
_Q_FINALIZE_NEW = (update(invoice).where(invoice.c.id == bindparam("i"), invoice.c.status == "draft")
                   .values(series=bindparam("series"), number=bindparam("number"), number_seq=bindparam("seq"),
                           status="finalized", finalized_at=bindparam("at"), decided_by=""))
_Q_TENANT_ZONE = select(Tenant.__table__.c.timezone).where(Tenant.__table__.c.id == bindparam("t"))  # type: ignore[attr-defined]
_Q_PREVIOUS_NET = (select(invoice.c.net_total, invoice.c.currency).where(
    invoice.c.tenant_id == bindparam("t"), invoice.c.account_id == bindparam("a"), invoice.c.status == "finalized",
    invoice.c.kind == "invoice", invoice.c.period_end <= bindparam("before"))
    .order_by(invoice.c.period_end.desc()).limit(1))
_Q_HOLDS = select(billing_hold.c.id, billing_hold.c.kind, billing_hold.c.name, billing_hold.c.reason,
                  billing_hold.c.consumed_by_invoice).where(
    billing_hold.c.tenant_id == bindparam("t"), billing_hold.c.account_id == bindparam("a"),
    billing_hold.c.released_at.is_(None))
_Q_POSTINGS = select(posting).where(posting.c.invoice_id == bindparam("i")).order_by(posting.c.created_at, posting.c.id)
# the account's open invoices first (a handful, by the account index), then their lines: at
# month-end the tenant has thousands of drafts, so starting from the status index would not do
_Q_OPEN_INVOICES = select(invoice.c.id).where(
    invoice.c.tenant_id == bindparam("t"), invoice.c.account_id == bindparam("a"),
    invoice.c.status.in_(("draft", "held")), invoice.c.id != bindparam("i"))
_Q_OPEN_LINES = select(invoice_line.c.session_id).where(
    invoice_line.c.invoice_id.in_(bindparam("open", expanding=True)),
    invoice_line.c.session_id.in_(bindparam("ids", expanding=True)))


def ensure_series(conn: Connection, tenant_id: str, series: str, prefix: str, start: int = 1) -> None:
    """Create the series row once (a race between two creators is settled by the primary key)."""
    if conn.execute(_Q_SERIES, {"t": tenant_id, "s": series}).first():
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(pg_insert(number_series).values(tenant_id=tenant_id, series=series, prefix=prefix,
                                                     next_value=start).on_conflict_do_nothing())
    else:
        conn.execute(insert(number_series).prefix_with("OR IGNORE").values(
            tenant_id=tenant_id, series=series, prefix=prefix, next_value=start))


def draw_numbers(conn: Connection, tenant_id: str, series: str, count: int = 1, width: int = 6) -> list[str]:
    """``count`` consecutive numbers of an existing series (``ensure_series``), gapless: the series
    row stays locked until the caller's transaction ends, so a rollback returns them all."""
    if count < 1:
        return []
    n = conn.execute(_Q_DRAW_MANY, {"t": tenant_id, "s": series, "n": count}).first()
    if n is None:
        raise AllocationError(f"number series {series!r} of tenant {tenant_id!r} does not exist")
    first = n.next_value - count
    return [f"{n.prefix}{seq:0{width}d}" for seq in range(first, first + count)]


def _lock_invoice(conn: Connection, tenant_id: str, invoice_id: str) -> Any:
    cond = and_(invoice.c.id == invoice_id, invoice.c.tenant_id == tenant_id)
    if conn.dialect.name == "sqlite":
        # SQLite has no row locks: writing first takes the database write lock before anything is
        # read, so a later write can never fail on a stale read snapshot
        conn.execute(update(invoice).where(cond).values(status=invoice.c.status))
        return conn.execute(select(invoice).where(cond)).first()
    return conn.execute(select(invoice).where(cond).with_for_update()).first()


def allocate_number(conn: Connection, tenant_id: str, invoice_id: str, kind: str = "invoice") -> tuple[str, int]:
    """The invoice's number, allocated at most once. Call inside the transaction that finalizes."""
    row = _lock_invoice(conn, tenant_id, invoice_id)
    if row is None:
        raise AllocationError(f"invoice {invoice_id!r} not found")
    if row.number:
        return row.number, row.number_seq
    if row.status == "rejected":
        raise AllocationError(f"invoice {invoice_id!r} was rejected")
    series, _prefix = INVOICE_SERIES[kind]
    number, seq = _draw_number(conn, tenant_id, series)
    conn.execute(update(invoice).where(invoice.c.id == invoice_id)
                 .values(series=series, number=number, number_seq=seq))
    return number, seq


def _draw_number(conn: Connection, tenant_id: str, series: str) -> tuple[str, int]:
    # the series row lock (UPDATE ... RETURNING locks it) serialises allocators of one series;
    # it is held until commit, together with the invoice's new number: no gap, no duplicate
    n = conn.execute(_Q_DRAW, {"t": tenant_id, "s": series}).first()
    if n is None:
        raise AllocationError(f"number series {series!r} of tenant {tenant_id!r} does not exist")
    seq = n.next_value - 1
    return f"{n.prefix}{seq:06d}", seq


@dataclass(frozen=True, slots=True)
class FinalizeResult:
    invoice_id: str
    number: str
    kind: str
    gross_total: Decimal
    already: bool


def tenant_zone(conn: Connection, tenant_id: str, fallback: str = "Europe/Berlin") -> str:
    """The tenant's IANA zone: documents are dated in the issuer's zone."""
    from zoneinfo import ZoneInfo

    zone = conn.execute(_Q_TENANT_ZONE, {"t": tenant_id}).scalar() or fallback
    try:
        ZoneInfo(zone)
    except (KeyError, ValueError):  # ZoneInfoNotFoundError is a KeyError: a zone stored before validation
        return fallback
    return str(zone)


def issue_dates(conn: Connection, tenant_id: str, kind: str, payment_terms: str, at: datetime,
                fallback_zone: str = "Europe/Berlin") -> tuple[date, date]:
    """(issue, due) of a document finalized at ``at``: the day in the tenant's zone and the
    invoice's payment terms (``runtime.invoicing.document_dates``)."""
    try:
        terms = PaymentTerms.parse(payment_terms)
    except ValueError:
        terms = PaymentTerms()
    return document_dates(kind, terms, at, tenant_zone(conn, tenant_id, fallback_zone))


def finalize_invoice(conn: Connection, tenant_id: str, invoice_id: str, decided_by: str = "",
                     at: datetime | None = None) -> FinalizeResult:
    """Number the invoice, mark it finalized and record which session ratings it billed.

    ``at`` is the moment of finalization (the workflow's time, so a replayed or retried step dates
    the same day; default: now): the invoice is dated that day in the tenant's zone and falls due
    after its payment terms from there."""
    row = _lock_invoice(conn, tenant_id, invoice_id)
    if row is None:
        raise AllocationError(f"invoice {invoice_id!r} not found")
    if row.status == "finalized":
        return FinalizeResult(invoice_id, row.number, row.kind, row.gross_total, True)
    if row.status not in ("draft", "held"):
        raise AllocationError(f"invoice {invoice_id!r} is {row.status}")
    number, _ = allocate_number(conn, tenant_id, invoice_id, row.kind)
    at = at or utcnow()
    issued, due = issue_dates(conn, tenant_id, row.kind, row.payment_terms, at, row.timezone)
    conn.execute(update(invoice).where(invoice.c.id == invoice_id)
                 .values(status="finalized", finalized_at=at, decided_by=decided_by, issue_date=issued,
                         due_date=due))
    pairs = conn.execute(select(invoice_line.c.session_id, invoice_line.c.rating_id).distinct()
                         .where(invoice_line.c.invoice_id == invoice_id, invoice_line.c.session_id != "",
                                invoice_line.c.rating_id != "")).all()
    _record_billed(conn, tenant_id, invoice_id, pairs)
    _open_item(conn, tenant_id, invoice_id)
    return FinalizeResult(invoice_id, number, row.kind, row.gross_total, False)


def close_if_empty(conn: Connection, tenant_id: str, invoice_id: str, decided_by: str) -> str | None:
    """Close an approved draft without a single line as ``empty`` (only a service item no ruleset
    prices held it, and finance approved without it): no number is drawn, no document is made.
    Returns the invoice's kind when it is (or already was) closed so, else None. Idempotent."""
    row = conn.execute(select(invoice.c.status, invoice.c.kind, invoice.c.number).where(
        invoice.c.id == invoice_id, invoice.c.tenant_id == tenant_id)).first()
    if row is None or row.number or row.status not in ("draft", "held", "empty"):
        return None
    if row.status != "empty":
        if conn.execute(select(invoice_line.c.seq).where(invoice_line.c.invoice_id == invoice_id)
                        .limit(1)).first() is not None:
            return None
        conn.execute(update(invoice).where(invoice.c.id == invoice_id).values(status="empty", decided_by=decided_by))
    return str(row.kind)


def finalize_new_draft(conn: Connection, tenant_id: str, invoice_id: str, kind: str, gross_total: Decimal,
                       billed: Iterable[tuple[str, str]], at: datetime | None = None) -> FinalizeResult:
    """Finalize a draft that this very transaction inserted, with the (session, rating) pairs its
    lines bill (``insert_lines`` returns them). Nobody else can see the row before commit, so
    there is nothing to lock or re-read: month-end's clean path saves the round trips. The caller
    wrote the draft with the issue and due dates of ``at`` (``issue_dates``)."""
    series, _prefix = INVOICE_SERIES[kind]
    number, seq = _draw_number(conn, tenant_id, series)
    conn.execute(_Q_FINALIZE_NEW, {"i": invoice_id, "series": series, "number": number, "seq": seq,
                                   "at": at or utcnow()})
    _record_billed(conn, tenant_id, invoice_id, billed)
    _open_item(conn, tenant_id, invoice_id)
    return FinalizeResult(invoice_id, number, kind, gross_total, False)


def finalize_new_drafts(conn: Connection, tenant_id: str, drafts: Sequence[tuple[str, str, Decimal,
                                                                                 Sequence[tuple[str, str]]]],
                        at: datetime | None = None,
                        lines: Mapping[str, Sequence[tuple[str, Decimal, Decimal]]] | None = None
                        ) -> tuple[list[FinalizeResult], list[Any]]:
    """``finalize_new_draft`` for many drafts this transaction inserted, set-based: ``drafts`` are
    (invoice id, kind, gross total, billed pairs) in the order their numbers are to be given. One
    block of numbers per series (``UPDATE ... RETURNING`` once: gapless, as the block is drawn in
    the transaction that writes the invoices), one update of all the invoices, one insert of their
    billed sessions, one read of their rows, and their open items and journal entries in bulk
    (``store.receivables.open_invoice_items``; ``lines``: the drafts' (kind, VAT rate, net) per
    line as written, so the journal need not read them back). Returns the results in the order
    of ``drafts`` and the invoices' finalized rows (for the hand-over to collection)."""
    if not drafts:
        return [], []
    from store.receivables import open_invoice_items

    at = at or utcnow()
    numbers: dict[str, tuple[str, int]] = {}
    for kind in dict.fromkeys(k for _i, k, _g, _b in drafts):
        series, prefix = INVOICE_SERIES[kind]
        ids = [i for i, k, _g, _b in drafts if k == kind]
        ensure_series(conn, tenant_id, series, prefix)
        n = conn.execute(_Q_DRAW_MANY, {"t": tenant_id, "s": series, "n": len(ids)}).first()
        if n is None:
            raise AllocationError(f"number series {series!r} of tenant {tenant_id!r} does not exist")
        first = n.next_value - len(ids)
        numbers.update((i, (f"{n.prefix}{seq:06d}", seq)) for seq, i in enumerate(ids, start=first))
    conn.execute(_Q_FINALIZE_NEW, [{"i": i, "series": INVOICE_SERIES[k][0], "number": numbers[i][0],
                                    "seq": numbers[i][1], "at": at} for i, k, _g, _b in drafts])
    driver_insert(conn, billed_session, ("tenant_id", "session_id", "rating_id", "invoice_id"),
                  [(tenant_id, s, r, i) for i, _k, _g, billed in drafts for s, r in billed])
    rows: dict[str, Any] = {}
    for cond in in_values(conn, invoice.c.id, [i for i, _k, _g, _b in drafts]):
        rows.update((r.id, r) for r in conn.execute(select(invoice).where(cond)))
    ordered = [rows[i] for i, _k, _g, _b in drafts]
    open_invoice_items(conn, tenant_id, ordered, lines=lines)
    return [FinalizeResult(i, numbers[i][0], k, g, False) for i, k, g, _b in drafts], ordered


def _open_item(conn: Connection, tenant_id: str, invoice_id: str) -> None:
    """A finalized invoice is a receivable from the same transaction on (a credit note takes off
    what it corrects): ``store.receivables``."""
    from store.receivables import open_invoice_item

    row = conn.execute(select(invoice).where(invoice.c.id == invoice_id)).one()
    open_invoice_item(conn, tenant_id, row)


def _record_billed(conn: Connection, tenant_id: str, invoice_id: str, pairs: Iterable[tuple[str, str]]) -> None:
    driver_insert(conn, billed_session, ("tenant_id", "session_id", "rating_id", "invoice_id"),
                  [(tenant_id, s, r, invoice_id) for s, r in pairs])


def previous_net(conn: Connection, tenant_id: str, account_id: str, before: datetime,
                 currency: str | None = None) -> Decimal | None:
    """The net of the account's last finalized invoice before ``before``; None when there is none,
    or when it was written in another currency than ``currency`` (no jump across currencies)."""
    row = conn.execute(_Q_PREVIOUS_NET, {"t": tenant_id, "a": account_id, "before": before}).first()
    if row is None or (currency is not None and row.currency != currency):
        return None
    net: Decimal = row.net_total
    return net


class ActiveHolds(NamedTuple):
    flags: frozenset[str]
    reasons: list[str]  # of the manual holds that hold the draft
    hold_ids: tuple[str, ...]  # those manual holds, for ``consume_holds`` once the draft is written


def active_holds(conn: Connection, tenant_id: str, account_id: str, invoice_id: str | None = None,
                 rows: Sequence[Any] | None = None) -> ActiveHolds:
    """What currently holds the account's draft ``invoice_id``: a manual hold holds the next invoice
    only, so one already consumed by another draft is left out (one consumed by this draft still
    holds it when the draft is rebuilt). ``rows``: the account's unreleased holds, read before."""
    if rows is None:
        rows = conn.execute(_Q_HOLDS, {"t": tenant_id, "a": account_id}).all()
    manual = [r for r in rows if r.kind == "hold" and r.consumed_by_invoice in (None, invoice_id)]
    return ActiveHolds(frozenset(r.name for r in rows if r.kind == "flag"),
                       [r.reason or r.name for r in manual], tuple(r.id for r in manual))


def consume_holds(conn: Connection, tenant_id: str, hold_ids: Sequence[str], invoice_id: str) -> None:
    """The manual holds ``hold_ids`` have held the draft ``invoice_id``: later drafts are not theirs
    (a hold placed after the draft was assembled is left for the next one)."""
    if hold_ids:
        conn.execute(update(billing_hold).where(
            billing_hold.c.tenant_id == tenant_id, billing_hold.c.id.in_(hold_ids),
            billing_hold.c.consumed_by_invoice.is_(None)).values(consumed_by_invoice=invoice_id, consumed_at=utcnow()))


def place_hold(conn: Connection, tenant_id: str, account_id: str, kind: str, name: str, reason: str,
               user_id: str) -> str:
    hid = new_id("hold")
    conn.execute(insert(billing_hold).values(id=hid, tenant_id=tenant_id, account_id=account_id, kind=kind,
                                             name=name, reason=reason, placed_by=user_id, placed_at=utcnow()))
    return hid


def release_hold(conn: Connection, tenant_id: str, hold_id: str, user_id: str) -> Any:
    row = conn.execute(select(billing_hold).where(billing_hold.c.id == hold_id,
                                                  billing_hold.c.tenant_id == tenant_id)).first()
    if row is None or row.released_at is not None:
        return row
    conn.execute(update(billing_hold).where(billing_hold.c.id == hold_id)
                 .values(released_by=user_id, released_at=utcnow()))
    return row


def open_task(conn: Connection, tenant_id: str, invoice_id: str, account_id: str, workflow_id: str,
              reasons: list[dict[str, str]], comparison: dict[str, Any]) -> str:
    """The finance task of a held invoice (one per invoice: a retry finds the existing one)."""
    row = conn.execute(select(finance_task.c.id).where(finance_task.c.invoice_id == invoice_id,
                                                       finance_task.c.kind == "invoice_hold")).first()
    if row is not None:
        conn.execute(update(finance_task).where(finance_task.c.id == row[0])
                     .values(reasons=reasons, comparison=comparison))
        return str(row[0])
    tid = new_id("task")
    conn.execute(insert(finance_task).values(
        id=tid, tenant_id=tenant_id, invoice_id=invoice_id, account_id=account_id, workflow_id=workflow_id,
        kind="invoice_hold", status="open", reasons=reasons, comparison=comparison, escalation_level=0,
        decided_by="", decision_reason="", created_at=utcnow()))
    conn.execute(update(invoice).where(invoice.c.id == invoice_id).values(status="held"))
    return tid


def escalate_task(conn: Connection, task_id: str, level: int) -> None:
    # the level comes from the workflow, so a retried activity sets the same value again
    conn.execute(update(finance_task).where(finance_task.c.id == task_id, finance_task.c.status == "open")
                 .values(escalation_level=level, escalated_at=utcnow()))


def close_task(conn: Connection, task_id: str, status: str, user_id: str, reason: str = "") -> None:
    conn.execute(update(finance_task).where(finance_task.c.id == task_id, finance_task.c.status == "open")
                 .values(status=status, decided_by=user_id, decision_reason=reason, closed_at=utcnow()))


def add_posting(conn: Connection, tenant_id: str, invoice_id: str, posting_id: str, description: str,
                amount: Decimal, tax_rate: Decimal, author_id: str) -> None:
    if conn.execute(select(posting.c.id).where(posting.c.id == posting_id)).first():
        return
    conn.execute(insert(posting).values(id=posting_id, tenant_id=tenant_id, invoice_id=invoice_id,
                                        description=description, amount=amount, tax_rate=tax_rate,
                                        author_id=author_id, created_at=utcnow()))


def billed_invoice_ids(tenant_id: str, session_id: str) -> Select[Any]:
    """The ids of the finalized invoices that billed the session, as a subquery: their billed
    sessions (``billed_session``, which finalizing records). The lines have no index by session
    (migration 0047), so a session's lines are read through these invoices, by the lines' key."""
    return select(billed_session.c.invoice_id).where(billed_session.c.tenant_id == tenant_id,
                                                     billed_session.c.session_id == session_id)


def invoices_of_session(conn: Connection, tenant_id: str, session_id: str) -> list[Any]:
    """The invoices whose lines bill the session (id, number, status, kind; in id order). The lines
    have no index by session (migration 0047): a finalized invoice is found by its billed sessions
    (``billed_session``, which finalizing records), one not finalized (draft, held, rejected,
    empty: a tenant has few) by its lines."""
    i, il = invoice.c, invoice_line.c
    open_ = (select(il.invoice_id).join_from(invoice_line, invoice, i.id == il.invoice_id)
             .where(i.tenant_id == tenant_id, i.status.in_(_NOT_FINALIZED), il.session_id == session_id))
    return list(conn.execute(select(i.id, i.number, i.status, i.kind)
                             .where(i.tenant_id == tenant_id,
                                    i.id.in_(billed_invoice_ids(tenant_id, session_id).union(open_)))
                             .order_by(i.id)).all())


_NOT_FINALIZED = ("draft", "held", "rejected", "empty")


def postings_of(conn: Connection, invoice_id: str) -> list[Any]:
    return list(conn.execute(_Q_POSTINGS, {"i": invoice_id}).all())


def count_by_status(conn: Connection, tenant_id: str) -> dict[str, int]:
    rows = conn.execute(select(invoice.c.status, func.count()).where(invoice.c.tenant_id == tenant_id)
                        .group_by(invoice.c.status)).all()
    return {r[0]: int(r[1]) for r in rows}


def insert_lines(conn: Connection, tenant_id: str, invoice_id: str, lines: Iterable[Any],
                 rating_of: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """Write an invoice's lines. ``rating_of`` (session id -> rating id) names the rating a
    session line bills where the line itself does not carry one (fees and discounts never do).
    Returns the distinct (session, rating) pairs the lines bill, in line order."""
    rows = _line_rows(tenant_id, invoice_id, lines, rating_of or {})
    driver_insert(conn, invoice_line, _LINE_COLUMNS, rows)
    return list(dict.fromkeys((r[12], r[13]) for r in rows if r[12] and r[13]))


def _line_rows(tenant_id: str, invoice_id: str, lines: Iterable[Any], rating_of: Mapping[str, str]
               ) -> list[tuple[Any, ...]]:
    # a line names the rating it bills where it carries one, or is a fee or discount (which bill
    # no rating); a session's line the session's (inline: ~200 lines per invoice at month-end)
    return [(tenant_id, invoice_id, ln.seq, ln.kind, ln.component, ln.description[:300], ln.quantity,
             ln.unit[:20], ln.unit_price, ln.net, ln.net_unrounded, ln.tax_rate, ln.session_id,
             str(ln.rating_id) if ln.rating_id or not ln.session_id or ln.kind in ("fee", "discount")
             else rating_of.get(ln.session_id, ""),
             ln.rule[:500], ln.corrects[:200]) for ln in lines]


def insert_drafts(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert new draft invoice rows (all with the same keys) in one statement."""
    if rows:
        cols = tuple(rows[0])
        driver_insert(conn, invoice, cols, [tuple(r[c] for c in cols) for r in rows])


def insert_many_lines(conn: Connection, tenant_id: str, drafts: Sequence[tuple[str, Iterable[Any], Mapping[str, str]]]
                      ) -> list[list[tuple[str, str]]]:
    """``insert_lines`` for many invoices in one statement: ``drafts`` are (invoice id, lines,
    rating_of); returns each invoice's billed (session, rating) pairs, in the order of ``drafts``."""
    rows: list[tuple[Any, ...]] = []
    billed = []
    for invoice_id, lines, rating_of in drafts:
        mine = _line_rows(tenant_id, invoice_id, lines, rating_of)
        rows += mine
        billed.append(list(dict.fromkeys((r[12], r[13]) for r in mine if r[12] and r[13])))
    driver_insert(conn, invoice_line, _LINE_COLUMNS, rows)
    return billed


_LINE_COLUMNS = ("tenant_id", "invoice_id", "seq", "kind", "component", "description", "quantity", "unit",
                 "unit_price", "net", "net_unrounded", "tax_rate", "session_id", "rating_id", "rule", "corrects")
_inserts: dict[tuple[str, str, str, tuple[str, ...], bool], tuple[str, list[Any], list[Any], list[int] | None]] = {}


_FEW_ROWS = 8


def _bind_processor(type_: Any, dialect: Any) -> Any:
    if isinstance(type_, ExactDecimal):
        return type_.fast_bind(dialect)
    return type_.dialect_impl(dialect).bind_processor(dialect)


def driver_insert(conn: Connection, table: Table, columns: tuple[str, ...], rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert many rows straight through the driver, values in ``columns`` order.

    The same rows as ``conn.execute(insert(table), dicts)`` (each value goes through its column
    type's bind processor, so decimals stay exact strings on SQLite), without SQLAlchemy's
    per-row parameter compilation: month-end writes a few hundred lines per invoice and that
    compilation cost more than the database's own work. SQLite gets ``executemany``; PostgreSQL
    gets ``COPY ... FROM STDIN`` in the connection's transaction (one statement for all rows
    instead of one ``INSERT`` each)."""
    if not rows:
        return
    dialect = conn.dialect
    # a COPY costs three round trips (start, data, end): a handful of rows (finalization's one
    # invoice) go as one INSERT, which psycopg pipelines when there are several
    few = len(rows) < _FEW_ROWS
    key = (dialect.name, dialect.driver, table.name, columns, few)
    got = _inserts.get(key)
    if got is None:
        prep = dialect.identifier_preparer
        cols = ", ".join(prep.quote(c) for c in columns)
        if dialect.name == "postgresql" and dialect.driver == "psycopg" and not few:
            sql = f"COPY {prep.format_table(table)} ({cols}) FROM STDIN"
        else:
            mark = "?" if dialect.paramstyle == "qmark" else "%s"
            sql = f"INSERT INTO {prep.format_table(table)} ({cols}) VALUES ({', '.join([mark] * len(columns))})"
        # the dialect's own type, as SQLAlchemy binds it (a JSON column on psycopg wraps its value)
        types = [table.c[c].type for c in columns]
        procs = [_bind_processor(t, dialect) for t in types]
        # when the only columns with a processor are money on PostgreSQL (a Decimal goes through as
        # it is), their indexes: rows whose values there are all Decimal need no conversion at all
        money = [i for i, t in enumerate(types) if isinstance(t, ExactDecimal)]
        same = money if dialect.name == "postgresql" and all(p is None for i, p in enumerate(procs)
                                                              if i not in money) else None
        got = _inserts[key] = (sql, procs,
                               [t.bind_decimals(dialect) if isinstance(t, ExactDecimal) else None for t in types],
                               same)
    sql, procs, decimals, same = got
    if same is not None and all(set(map(type, map(itemgetter(i), rows))) == {Decimal} for i in same):
        pass  # each value would come back from its processor as it is: the rows go as they are
    elif any(procs):
        # column by column (month-end converts a million values): a money column of Decimals only
        # in one call, any other value through its column's processor
        cols: list[Sequence[Any]] = list(zip(*rows, strict=True))
        for i, p in enumerate(procs):
            if p is not None:
                col = cols[i]
                whole = decimals[i]
                cols[i] = whole(col) if whole is not None and set(map(type, col)) == {Decimal} else list(map(p, col))
        rows = list(zip(*cols, strict=True))
    if sql.startswith("COPY"):
        driver = conn.connection.driver_connection  # the psycopg connection of this very transaction
        assert driver is not None
        with driver.cursor() as cur, cur.copy(sql) as copy:
            for r in rows:
                copy.write_row(r)
    else:
        conn.exec_driver_sql(sql, list(rows))


def ids_on_open_invoices(conn: Connection, tenant_id: str, account_id: str, except_id: str,
                         session_ids: Sequence[str], open_ids: Sequence[str] | None = None) -> set[str]:
    """Sessions already on another draft or held invoice of the account (not to be billed twice);
    ``open_ids``: those invoices' ids when the caller read them already."""
    if not session_ids:
        return set()
    if open_ids is None:
        open_ids = [r[0] for r in conn.execute(_Q_OPEN_INVOICES, {"t": tenant_id, "a": account_id, "i": except_id})]
    if not open_ids:
        return set()
    return {r[0] for r in conn.execute(_Q_OPEN_LINES, {"open": list(open_ids), "ids": list(session_ids)})}


# ---------------------------------------------------------------- service items and discounts
def _in_period_query(table: Table) -> Any:
    # the index finds the account's rows; their validity is compared here (a handful per account).
    # Built once per table: month-end asks it twice per account, and building a statement costs
    # more than SQLite running it
    return (select(table).where(table.c.tenant_id == bindparam("t"), table.c.account_id == bindparam("a"),
                                table.c.valid_from < bindparam("end"))
            .order_by(table.c.valid_from, table.c.id))


_Q_IN_PERIOD: dict[str, Any] = {}


def _in_period(conn: Connection, table: Table, tenant_id: str, account_id: str, period: Period) -> Any:
    q = _Q_IN_PERIOD.get(table.name)
    if q is None:
        q = _Q_IN_PERIOD[table.name] = _in_period_query(table)
    return conn.execute(q, {"t": tenant_id, "a": account_id, "end": period.local_end})


def _given_in_period(rows: Sequence[Any], period: Period) -> list[Any]:
    """What ``_in_period`` would read, of the account's rows read before (``store.cycle.GroupReads``)."""
    return sorted((r for r in rows if r.valid_from < period.local_end), key=lambda r: (r.valid_from, r.id))


def period_services(conn: Connection, tenant_id: str, account_id: str, period: Period,
                    catalogue: Mapping[str, ServicePrice] | None, rows: Sequence[Any] | None = None) -> ServiceBill:
    """The account's service lines for ``period``; ``catalogue`` prices the items that name a
    ruleset service (the ruleset version the cycle uses). An item naming a service that version
    does not have comes back in ``unpriced`` (the cycle holds the draft for finance). ``rows``:
    all the account's service items, read before."""
    got = _in_period(conn, service_item, tenant_id, account_id, period) if rows is None else \
        _given_in_period(rows, period)
    subs = [ServiceSubscription(r.id, r.product, r.description, r.quantity, r.unit_price, r.tax_rate, r.unit,
                                r.valid_from, r.valid_to) for r in got]
    return bill_services(subs, period, catalogue) if subs else ServiceBill()


def period_discounts(conn: Connection, tenant_id: str, account_id: str, period: Period,
                     rows: Sequence[Any] | None = None) -> list[PeriodDiscount]:
    """The account's discounts valid on some day of ``period``, oldest first (``rows``: all the
    account's discounts, read before)."""
    got = _in_period(conn, account_discount, tenant_id, account_id, period) if rows is None else \
        _given_in_period(rows, period)
    return [PeriodDiscount(d.description, d.percent, d.amount, d.tax_rate) for d in got
            if d.valid_to is None or d.valid_to > period.local_start]


def account_rows(conn: Connection, table: Table, tenant_id: str, account_id: str, *, after_id: str | None = None,
                 limit: int = 50, active_on: date | None = None) -> list[Any]:
    """A page of an account's service items or discounts in id (creation) order; ``active_on``
    keeps the rows valid on that day."""
    stmt = select(table).where(table.c.tenant_id == tenant_id, table.c.account_id == account_id)
    if after_id:
        stmt = stmt.where(table.c.id > after_id)
    if active_on is not None:
        stmt = stmt.where(table.c.valid_from <= active_on,
                          or_(table.c.valid_to.is_(None), table.c.valid_to > active_on))
    return list(conn.execute(stmt.order_by(table.c.id).limit(limit)).all())


def tenant_row(conn: Connection, table: Table, tenant_id: str, row_id: str) -> Any:
    """One row of ``table`` if it is the tenant's (None otherwise: another tenant's row does not exist)."""
    return conn.execute(select(table).where(table.c.id == row_id, table.c.tenant_id == tenant_id)).first()


def in_values(conn: Connection, column: Any, values: Sequence[Any]) -> list[Any]:
    """Conditions "``column`` is one of ``values``" for a set-based read or update of many rows:
    one ``= ANY(array)`` on PostgreSQL (one statement, one parameter), ``IN`` lists of 900 on
    SQLite (it caps the parameters of a statement); the caller runs its statement once per
    condition. No values, no conditions."""
    if not values:
        return []
    if conn.dialect.name == "postgresql":
        from sqlalchemy import any_, bindparam
        from sqlalchemy.dialects.postgresql import ARRAY

        return [column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))]
    return [column.in_(list(values[i:i + 900])) for i in range(0, len(values), 900)]


def customer_groups(conn: Connection, customer_id: str) -> set[str]:
    """The groups a customer belongs to (a tax policy's ``reverse_charge for group x``)."""
    from store.models import Customer

    c = Customer.__table__  # type: ignore[attr-defined]
    return set(conn.execute(select(c.c.groups).where(c.c.id == customer_id)).scalar() or ())

def orphan_counts(conn: Any) -> dict[str, int]:
    """What the foreign keys dropped by migration 0046 used to refuse, counted: invoice lines and
    billed sessions whose invoice is missing or belongs to another tenant (``evbill doctor``)."""
    out = {}
    for name, table in (("invoice lines", invoice_line), ("billed sessions", billed_session)):
        inv = invoice.alias("inv")
        q = select(func.count()).select_from(table.outerjoin(inv, inv.c.id == table.c.invoice_id)).where(
            (inv.c.id.is_(None)) | (inv.c.tenant_id != table.c.tenant_id))
        out[name] = int(conn.execute(q).scalar_one())
    return out
