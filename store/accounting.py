"""The journal in the database: entries posted with the events that cause them, the chart of
accounts per tenant, personal debtor accounts, posting periods and posting batches.

Every receivable event (``store.receivables``: an invoice or credit note finalized, a payment
matched, a return and its charge, a credit balance used) is posted here in the same transaction
that writes it, through ``post_events``: the one seam, called from the receivables store wherever
it writes events. ``journal_entry`` and ``journal_line`` are append-only (the database refuses
UPDATE and DELETE, as for the audit chain); a correction is a new entry naming what it corrects.
Amounts are added up in Python, never by SQL.

Periods are months (``2026-12``). A closed period takes no postings: an event whose document
date falls in one is posted on the first day of the next open month and keeps its document date.
A posting batch takes the tenant's entries of one period (a month, or a day ``2026-12-05``) that
no batch has taken yet (``posting_batch_entry.entry_id`` is unique: never exported twice), and
archives its files (DATEV, DATEV debtors, CSV, JSON lines) with their sha256, once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
    bindparam,
    func,
    insert,
    select,
)

from runtime.accounting.chart import Chart, ChartError, debtor_range, template
from runtime.accounting.formats import (
    DatevHeader,
    Debtor,
    NumberedEntry,
    buchungsstapel,
    debitoren,
    generic_csv,
    json_lines,
)
from runtime.accounting.journal import EventFacts, JournalEntry, JournalLine, revenue_kind
from runtime.accounting.posting import book
from runtime.money import ZERO
from runtime.receivables import ENTRY_SIGNS
from store.billing import driver_insert
from store.errors import DomainError
from store.models import Tenant, metadata
from store.types import ExactDecimal, UTCDateTime, new_id, utcnow

__all__ = [
    "AccountingError",
    "BatchFile",
    "ChartError",
    "SftpTarget",
    "account_balances",
    "accounting_batch_schedule",
    "accounting_chart",
    "accounting_debtor",
    "accounting_period",
    "accounting_sftp_target",
    "batch",
    "batch_cadence",
    "batch_file",
    "batch_files",
    "batches",
    "chart_of",
    "check_chart_covers",
    "close_period",
    "closed_periods",
    "correct_entry",
    "create_batch",
    "cut_due_batches",
    "delivery",
    "entries",
    "functional_currency",
    "journal_entry",
    "journal_line",
    "open_delivery_task",
    "open_items_csv",
    "open_items_list",
    "period_of",
    "post_events",
    "posting_batch",
    "posting_batch_delivery",
    "posting_batch_entry",
    "posting_batch_file",
    "record_delivery",
    "role_balances",
    "set_batch_cadence",
    "set_chart",
    "set_sftp_target",
    "sftp_target",
    "tenant_country",
]

accounting_chart = Table(
    "accounting_chart", metadata,
    Column("tenant_id", String(40), ForeignKey("tenant.id"), primary_key=True),
    Column("chart", JSON(), nullable=False),
    Column("updated_by", String(40), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

accounting_debtor = Table(
    "accounting_debtor", metadata,
    Column("tenant_id", String(40), ForeignKey("tenant.id"), primary_key=True),
    Column("customer_id", String(40), primary_key=True),
    Column("account", String(9), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("tenant_id", "account", name="uq_accounting_debtor_account"),
)

accounting_period = Table(
    "accounting_period", metadata,
    Column("tenant_id", String(40), ForeignKey("tenant.id"), primary_key=True),
    Column("period", String(7), primary_key=True),  # YYYY-MM
    Column("closed_by", String(40), nullable=False),
    Column("closed_at", UTCDateTime(), nullable=False),
)

journal_entry = Table(
    "journal_entry", metadata,
    Column("id", String(40), primary_key=True),  # sortable: posting order
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("source_kind", String(30), nullable=False),
    Column("source_id", String(40), nullable=False),  # the receivable event it books
    Column("document", String(300), nullable=False),
    Column("document_date", Date(), nullable=False),
    Column("posting_date", Date(), nullable=False),
    Column("period", String(7), nullable=False),  # of the posting date
    Column("text", String(300), nullable=False),
    Column("corrects", String(40), nullable=False),  # the entry a correction reverses, else ""
    Column("created_at", UTCDateTime(), nullable=False),
    # a document in a foreign currency: the tenant's functional currency, the reference rate of the
    # document date (foreign units per functional unit) and the day it was published for
    Column("functional_currency", String(3), nullable=True),
    Column("rate", ExactDecimal(), nullable=True),
    Column("rate_date", Date(), nullable=True),
    UniqueConstraint("tenant_id", "source_id", "corrects", name="uq_journal_entry_source"),
    Index("ix_journal_entry_period", "tenant_id", "period"),
)

journal_line = Table(
    "journal_line", metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("entry_id", String(40), ForeignKey("journal_entry.id"), nullable=False),
    Column("line_no", Integer(), nullable=False),
    Column("account", String(9), nullable=False),
    Column("side", String(6), nullable=False),  # debit | credit
    Column("amount", ExactDecimal(), nullable=False),  # a magnitude
    Column("currency", String(3), nullable=False),
    Column("role", String(20), nullable=False),
    Column("revenue_kind", String(20), nullable=False),
    Column("vat", String(20), nullable=False),
    Column("bu_key", String(4), nullable=False),
    Column("functional_amount", ExactDecimal(), nullable=True),  # on the line's side; NULL: domestic
    Index("ix_journal_line_entry", "entry_id"),
    Index("ix_journal_line_account", "tenant_id", "account"),
)

posting_batch = Table(
    "posting_batch", metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("number", Integer(), nullable=False),
    Column("period", String(10), nullable=False),  # YYYY-MM or YYYY-MM-DD
    Column("entries", Integer(), nullable=False),
    Column("sha256", String(64), nullable=False),  # of the JSON lines file: the batch's content
    Column("created_by", String(40), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("tenant_id", "number", name="uq_posting_batch_number"),
)

posting_batch_entry = Table(
    "posting_batch_entry", metadata,
    Column("entry_id", String(40), ForeignKey("journal_entry.id"), primary_key=True),  # never exported twice
    Column("batch_id", String(40), ForeignKey("posting_batch.id"), nullable=False),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Index("ix_posting_batch_entry_batch", "batch_id"),
)

posting_batch_file = Table(
    "posting_batch_file", metadata,
    Column("batch_id", String(40), ForeignKey("posting_batch.id"), primary_key=True),
    Column("format", String(20), primary_key=True),  # datev | datev_debtors | csv | jsonl
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("filename", String(200), nullable=False),
    Column("media_type", String(100), nullable=False),
    Column("content", LargeBinary(), nullable=False),
    Column("sha256", String(64), nullable=False),
)

accounting_sftp_target = Table(
    "accounting_sftp_target", metadata,
    Column("tenant_id", String(40), ForeignKey("tenant.id"), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("port", Integer(), nullable=False),
    Column("username", String(100), nullable=False),
    # one of the two secrets; never shown by the API
    Column("password", String(200), nullable=False),
    Column("private_key", String(10000), nullable=False),  # OpenSSH private key text
    Column("directory", String(500), nullable=False),
    Column("host_key", String(2000), nullable=False),  # the pinned public host key ("ssh-ed25519 AAAA...")
    Column("updated_by", String(40), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

posting_batch_delivery = Table(
    "posting_batch_delivery", metadata,
    Column("batch_id", String(40), ForeignKey("posting_batch.id"), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("status", String(20), nullable=False),  # delivered | failed
    Column("target", String(800), nullable=False),  # user@host:port/directory
    Column("files", JSON(), nullable=False),  # [{name, sha256}]
    Column("error", String(1000), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

accounting_batch_schedule = Table(
    "accounting_batch_schedule", metadata,
    Column("tenant_id", String(40), ForeignKey("tenant.id"), primary_key=True),
    Column("cadence", String(10), nullable=False),  # off | daily | monthly
    Column("updated_by", String(40), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

APPEND_ONLY = ("journal_entry", "journal_line", "accounting_period", "posting_batch", "posting_batch_entry",
               "posting_batch_file")


_STATUS = {"not_found": 404, "nothing_to_export": 409, "rate_missing": 409, "period_closed": 409, "bad_period": 422,
           "debtor_range_full": 409, "invoice_inconsistent": 409}


class AccountingError(DomainError):
    """A refused accounting request, with a stable code (and the API's status for it)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.status = _STATUS.get(code, 409)


# ---------------------------------------------------------------- chart
def chart_of(conn: Connection, tenant_id: str) -> Chart:
    """The tenant's chart; a tenant that never set one books on the plain template."""
    row = conn.execute(_Q_CHART, {"t": tenant_id}).first()
    return Chart.from_dict(row.chart) if row is not None else template("plain")


def tenant_country(conn: Connection, tenant_id: str) -> str:
    from store.models import Tenant

    t = Tenant.__table__  # type: ignore[attr-defined]
    row = conn.execute(select(t.c.country).where(t.c.id == tenant_id)).first()
    return str(row.country or "") if row is not None else ""


def functional_currency(conn: Connection, tenant_id: str) -> str:
    """The currency the tenant keeps its books in (its own currency; EUR when unset)."""
    from store.models import Tenant

    t = Tenant.__table__  # type: ignore[attr-defined]
    return str(conn.execute(select(t.c.currency).where(t.c.id == tenant_id)).scalar() or "EUR")


def set_chart(conn: Connection, tenant_id: str, chart: Chart, vat_treatments: Iterable[str], by: str) -> Chart:
    """Set the tenant's chart after checking it maps every line its events can post for the
    given VAT treatments (those of its rulesets): an incomplete chart is refused here, with
    every gap named, rather than found missing when an invoice is finalized."""
    chart.check_complete(vat_treatments, tenant_country(conn, tenant_id), _books_foreign(conn, tenant_id))
    _forget(conn)
    now = utcnow()
    values = {"chart": chart.to_dict(), "updated_by": by, "updated_at": now}
    if conn.execute(select(accounting_chart.c.tenant_id).where(accounting_chart.c.tenant_id == tenant_id)
                    .with_for_update()).first() is None:
        conn.execute(insert(accounting_chart).values(tenant_id=tenant_id, **values))
    else:
        conn.execute(accounting_chart.update().where(accounting_chart.c.tenant_id == tenant_id).values(**values))
    return chart


def check_chart_covers(conn: Connection, tenant_id: str, vat_treatments: Iterable[str]) -> None:
    """Raise ``ChartError`` when the tenant's chart has no account for some line at these VAT
    treatments (a ruleset about to be published with a new rate)."""
    chart_of(conn, tenant_id).check_complete(vat_treatments, tenant_country(conn, tenant_id),
                                             _books_foreign(conn, tenant_id))


def _books_foreign(conn: Connection, tenant_id: str) -> bool:
    """Whether the tenant bills some account in another currency than its functional one (then the
    chart must map exchange differences too)."""
    from store.models import BillingAccount

    a = BillingAccount.__table__  # type: ignore[attr-defined]
    return conn.execute(select(a.c.id).where(a.c.tenant_id == tenant_id,
                                             a.c.currency != functional_currency(conn, tenant_id)).limit(1)).first() \
        is not None


# ---------------------------------------------------------------- periods
def period_of(d: date) -> str:
    return f"{d.year:04d}-{d.month:02d}"


def closed_periods(conn: Connection, tenant_id: str) -> set[str]:
    return {r.period for r in conn.execute(_Q_CLOSED, {"t": tenant_id})}


def close_period(conn: Connection, tenant_id: str, period: str, by: str) -> dict[str, Any]:
    _check_month(period)
    if period in closed_periods(conn, tenant_id):
        raise AccountingError("period_closed", f"period {period} is already closed")
    _forget(conn)
    now = utcnow()
    conn.execute(insert(accounting_period).values(tenant_id=tenant_id, period=period, closed_by=by, closed_at=now))
    return {"period": period, "closed_by": by, "closed_at": now}


def _check_month(period: str) -> None:
    try:
        y, m = period.split("-")
        if len(y) != 4 or len(m) != 2 or not 1 <= int(m) <= 12:
            raise ValueError
    except ValueError:
        raise AccountingError("bad_period", f"a period is a month YYYY-MM, not {period!r}") from None


def _posting_date(document_date: date, closed: set[str]) -> date:
    """The document date, unless its month is closed: then the first day of the next open month."""
    if period_of(document_date) not in closed:
        return document_date
    y, m = document_date.year, document_date.month
    while True:
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        if f"{y:04d}-{m:02d}" not in closed:
            return date(y, m, 1)


# ---------------------------------------------------------------- debtors
def _debtor_queries() -> tuple[Any, Any, Any, Any]:
    from store.models import Customer

    d, c = accounting_debtor.c, Customer.__table__.c  # type: ignore[attr-defined]
    have = select(d.customer_id, d.account).where(d.tenant_id == bindparam("t"),
                                                  d.customer_id.in_(bindparam("ids", expanding=True)))
    taken = select(d.account).where(d.tenant_id == bindparam("t"), d.account.in_(bindparam("a", expanding=True)))
    # accounts of one range have one length, so the greatest text is the greatest number
    top = select(func.max(accounting_debtor.c.account)).where(d.tenant_id == bindparam("t"), d.account >= bindparam("lo"),
                                            d.account <= bindparam("hi"))
    numbers = select(c.id, c.number).where(c.id.in_(bindparam("ids", expanding=True)))
    return have, taken, top, numbers


_Q_DEBTOR_HAVE, _Q_DEBTOR_TAKEN, _Q_DEBTOR_TOP, _Q_CUSTOMER_NUMBERS = _debtor_queries()


def _debtor_accounts(conn: Connection, tenant_id: str, chart: Chart, customer_ids: set[str]) -> dict[str, str]:
    """Each customer's personal debtor account, assigned once: the digits of its customer number
    when they fall in the debtor range and are free, else the next number after the range's
    highest one in use (the customers of one call in three reads and one insert)."""
    have: dict[str, str] = dict(conn.execute(_Q_DEBTOR_HAVE, {"t": tenant_id, "ids": sorted(customer_ids)}).all())
    todo = sorted(customer_ids - set(have))
    if not todo:
        return have
    lo, hi = debtor_range(chart.account_length)
    numbers = dict(conn.execute(_Q_CUSTOMER_NUMBERS, {"ids": todo}).all())
    wanted: dict[str, int] = {}
    for cid in todo:
        digits = "".join(ch for ch in (numbers.get(cid) or "") if ch.isdigit())
        wanted[cid] = int(digits) if digits else 0
    in_range = sorted({str(n) for n in wanted.values() if lo <= n <= hi})
    taken = set(conn.execute(_Q_DEBTOR_TAKEN, {"t": tenant_id, "a": in_range}).scalars()) if in_range else set()
    top: int | None = None
    rows = []
    now = utcnow()
    for cid in todo:
        n = wanted[cid]
        if not (lo <= n <= hi) or str(n) in taken:
            if top is None:
                got = conn.execute(_Q_DEBTOR_TOP, {"t": tenant_id, "lo": str(lo), "hi": str(hi)}).scalar()
                # this call's own assignments are not written yet: they count as in use too
                top = max([int(got) if got else lo - 1, *(int(a) for a in taken)])
            n = top + 1
            if n > hi:
                raise AccountingError("debtor_range_full", f"no free debtor account left in {lo}–{hi}")
        top = max(top, n) if top is not None else None
        have[cid] = str(n)
        taken.add(str(n))  # so the next customer of this call sees it taken
        rows.append((tenant_id, cid, str(n), now))
    driver_insert(conn, accounting_debtor, ("tenant_id", "customer_id", "account", "created_at"), rows)
    return have


# ---------------------------------------------------------------- posting
# entry kinds that sit on credit balance items (the rest sit on invoice items)
_CREDIT_ITEM_KINDS = frozenset({"overpayment", "credit_used", "refund", "refund_return"})
_ENTRY_COLUMNS = ("id", "tenant_id", "source_kind", "source_id", "document", "document_date", "posting_date", "period",
                  "text", "corrects", "created_at", "functional_currency", "rate", "rate_date")
_LINE_COLUMNS = ("id", "tenant_id", "entry_id", "line_no", "account", "side", "amount", "currency", "role",
                 "revenue_kind", "vat", "bu_key", "functional_amount")
_CACHE = "evbill.accounting"
# what posting reads once per transaction, built once (building a statement costs more than SQLite
# running one: a dunning fee posts in every case's first wake-up)
_Q_CHART = select(accounting_chart.c.chart).where(accounting_chart.c.tenant_id == bindparam("t"))
_Q_CLOSED = select(accounting_period.c.period).where(accounting_period.c.tenant_id == bindparam("t"))
_Q_TENANT_BOOKS = select(Tenant.__table__.c.country, Tenant.__table__.c.currency).where(  # type: ignore[attr-defined]
    Tenant.__table__.c.id == bindparam("t"))  # type: ignore[attr-defined]


@dataclass(slots=True)
class _Context:
    """What posting reads once per transaction and tenant (month-end posts an entry per invoice)."""

    chart: Chart
    country: str
    closed: set[str]
    debtors: dict[str, str]  # customer -> debtor account, as assigned so far
    functional: str = "EUR"  # the tenant's currency: what the books are kept in


def _context(conn: Connection, tenant_id: str) -> _Context:
    tx = conn.get_transaction()
    got = conn.info.get(_CACHE)
    if got is not None and got[0] is tx and got[1] == tenant_id:
        ctx: _Context = got[2]
        return ctx
    # the tenant's country and currency in one read (``tenant_country``, ``functional_currency``)
    books = conn.execute(_Q_TENANT_BOOKS, {"t": tenant_id}).first()
    ctx = _Context(chart_of(conn, tenant_id), str(books.country or "") if books is not None else "",
                   closed_periods(conn, tenant_id), {},
                   str(books.currency or "EUR") if books is not None else "EUR")
    conn.info[_CACHE] = (tx, tenant_id, ctx)
    return ctx


def _forget(conn: Connection) -> None:
    """The chart or the periods changed in this transaction: read them again when posting."""
    conn.info.pop(_CACHE, None)


def _lines_query() -> Any:
    from store.billing import invoice_line as il

    return select(il.c.invoice_id, il.c.kind, il.c.tax_rate, il.c.net).where(
        il.c.invoice_id.in_(bindparam("ids", expanding=True)))


_Q_LINES = _lines_query()


@dataclass(frozen=True, slots=True)
class _Invoice:
    number: str
    tax_groups: tuple[tuple[Decimal, Decimal, Decimal], ...]  # (rate, net, tax), signed
    lines: tuple[tuple[str, Decimal, Decimal], ...]  # (line kind, rate, net), signed
    treatment: str = ""  # AE / O / E: billed without VAT by that treatment (its 0 % group says so)


def _invoice_facts(conn: Connection, invoice_ids: Sequence[str], given: Mapping[str, Any],
                   given_lines: Mapping[str, Sequence[tuple[str, Decimal, Decimal]]] | None = None
                   ) -> dict[str, _Invoice]:
    """``given_lines``: (kind, VAT rate, net) of the lines of invoices the caller wrote in this
    transaction, as stored (not read back)."""
    from store.billing import invoice

    out: dict[str, _Invoice] = {}
    lines: dict[str, list[tuple[str, Decimal, Decimal]]] = {i: [] for i in invoice_ids}
    known = given_lines or {}
    read = [i for i in invoice_ids if i not in known]
    for iid in invoice_ids:
        if iid in known:
            lines[iid] = list(known[iid])
    if read:
        for iid, kind, rate, net in conn.execute(_Q_LINES, {"ids": read}):
            lines[iid].append((kind, Decimal(rate), Decimal(net)))
    missing = [i for i in invoice_ids if i not in given]
    rows = {r.id: r for r in conn.execute(select(invoice.c.id, invoice.c.number, invoice.c.tax_groups, invoice.c.gross_total)
                                          .where(invoice.c.id.in_(missing)))} if missing else {}
    for iid in invoice_ids:
        inv = given.get(iid) or rows.get(iid)
        if inv is None:
            raise AccountingError("invoice_missing", f"invoice {iid} is not there to post")
        groups = getattr(inv, "tax_groups", None)
        if groups is None:
            # the tests' stand-in invoices (open items only, no rows) carry no VAT groups: their
            # gross is booked as one group at 0 %; every finalized invoice row has its groups
            gross = abs(Decimal(str(inv.gross_total)))
            groups = [{"rate": "0", "net": str(-gross if inv.kind == "credit_note" else gross), "tax": "0"}]
        out[iid] = _Invoice(str(getattr(inv, "number", "") or iid),
                            tuple((Decimal(str(g["rate"])), Decimal(str(g["net"])), Decimal(str(g["tax"])))
                                  for g in groups),
                            tuple(lines[iid]), next((str(g["category"]) for g in groups if g.get("category")), ""))
    return out


def _revenue(inv: _Invoice) -> tuple[tuple[str, Decimal, Decimal], ...]:
    """Nets per (revenue kind, rate): the lines split each VAT group's net by kind; a group's net
    no line carries (only stand-in invoices have no lines) is charging revenue."""
    out: dict[tuple[str, Decimal], Decimal] = {}
    # the lines added up per (line kind, rate) first, in the order they come (exact sums: the same
    # totals in the same order as line by line; an invoice has ~200 lines of a few kinds)
    by_kind: dict[tuple[str, Decimal], Decimal] = {}
    for kind, lrate, lnet in inv.lines:
        by_kind[kind, lrate] = by_kind.get((kind, lrate), ZERO) + lnet
    for rate, net, _tax in inv.tax_groups:
        covered = ZERO
        for (kind, lrate), lnet in by_kind.items():
            if lrate == rate:
                k = (revenue_kind(kind), rate)
                out[k] = out.get(k, ZERO) + lnet
                covered += lnet
        if covered != net:
            if inv.lines and any(lr == rate for _k, lr, _n in inv.lines):
                raise AccountingError("invoice_inconsistent",
                                      f"invoice {inv.number}: lines at {rate} % add up to {covered}, its VAT group "
                                      f"to {net}")
            out[("charging", rate)] = out.get(("charging", rate), ZERO) + net - covered
    return tuple((k, r, n) for (k, r), n in out.items())


def post_events(conn: Connection, tenant_id: str, events: Sequence[Mapping[str, Any]],
                entries: Sequence[Mapping[str, Any]], invoices: Mapping[str, Any] | None = None,
                customers: Mapping[str, str] | None = None,
                lines: Mapping[str, Sequence[tuple[str, Decimal, Decimal]]] | None = None) -> int:
    """Post the journal entries of receivable events just written in this transaction: ``events``
    as their ``receivable_event`` rows, ``entries`` their ``receivable_entry`` rows, ``invoices``
    the invoice rows an invoice or credit note event books (read from the database when not
    given), ``customers`` the customer of each billing account (read when not given), ``lines``
    the (kind, VAT rate, net) of the lines of invoices written in this transaction (read when not
    given). Returns how many entries were written. Raises ``MappingMissing`` (the chart has no account for a line) or
    ``Unbalanced``: the caller's transaction, and the event, fail."""
    if not events:
        return 0
    ctx = _context(conn, tenant_id)
    chart, country, closed = ctx.chart, ctx.country, ctx.closed
    by_event: dict[str, list[Mapping[str, Any]]] = {}
    for e in entries:
        by_event.setdefault(e["event_id"], []).append(e)
    inv_ids = [str(ev["detail"]["invoice_id"]) for ev in events if ev["kind"] in ("invoice", "credit_note")]
    invs = _invoice_facts(conn, inv_ids, invoices or {}, lines)
    # partner events (host credit notes and their payouts) have no billing account
    accounts = {ev["account_id"] for ev in events if ev.get("account_id")}
    customers = {a: c for a, c in (customers or {}).items() if a in accounts}
    if len(customers) < len(accounts):
        customers.update(_customers_of(conn, accounts - set(customers)))
    if chart.debtors == "personal":
        todo = set(customers.values()) - set(ctx.debtors)
        if todo:
            ctx.debtors.update(_debtor_accounts(conn, tenant_id, chart, todo))
        debtor_of = {acc: ctx.debtors[cus] for acc, cus in customers.items()}
    else:
        control = chart.resolve("invoice", "debtor", country=country).account
        debtor_of = dict.fromkeys(customers, control)
    entry_rows: list[tuple[Any, ...]] = []
    line_rows: list[tuple[Any, ...]] = []
    now = utcnow()
    fx = _Valuation(conn, ctx.functional, events, by_event)
    for ev in events:
        kind = ev["kind"]
        rows = by_event.get(ev["id"], [])
        effects = tuple(("credit_balance" if r["kind"] in _CREDIT_ITEM_KINDS else "invoice",
                         ENTRY_SIGNS[r["kind"]] * Decimal(r["amount"])) for r in rows)
        facts: EventFacts
        text = kind.replace("_", " ")
        document = str(ev["reference"])
        if kind in ("invoice", "credit_note"):
            inv = invs[str(ev["detail"]["invoice_id"])]
            facts = EventFacts(kind, ev["currency"], effects, _revenue(inv),
                               tuple((rate, tax) for rate, _net, tax in inv.tax_groups), treatment=inv.treatment)
            document = inv.number
            text = f"{'Invoice' if kind == 'invoice' else 'Credit note'} {inv.number}"
        elif kind == "payment":
            facts = EventFacts(kind, ev["currency"], effects, bank=Decimal(ev["amount"]))
            text = f"Payment {document}"
        elif kind == "return":
            returned = sum((Decimal(r["amount"]) for r in rows if r["kind"] == "return"), ZERO)
            charge = sum((Decimal(r["amount"]) for r in rows if r["kind"] == "return_charge"), ZERO)
            facts = EventFacts(kind, ev["currency"], effects, bank=-returned, return_charge=charge)
            text = f"Return {document}"
        elif kind == "credit_applied":
            facts = EventFacts(kind, ev["currency"], effects)
            text = f"Credit balance used {document}"
        elif kind in ("refund", "refund_return"):
            # the refund's transfer is owed until the payout pays it (a clearing account)
            facts = EventFacts(kind, ev["currency"], effects, payout=-sum((e for _k, e in effects), ZERO))
            text = f"{'Refund' if kind == 'refund' else 'Refund returned'} {document}"
        elif kind in ("dunning_fee", "interest", "flat_fee"):
            # the charge's item is the customer's debt; a taxable fee carries its VAT (the stage's detail)
            gross = sum((e for _k, e in effects), ZERO)
            detail = ev["detail"] or {}
            rate = detail.get("vat_rate") if kind == "dunning_fee" else None
            tax = Decimal(str(detail.get("vat") or "0")) if rate is not None else ZERO
            facts = EventFacts(kind, ev["currency"], effects, vat=((Decimal(str(rate)), tax),) if tax else (),
                               income=gross - tax)
            text = {"dunning_fee": "Dunning fee", "interest": "Default interest", "flat_fee": "Flat fee"}[kind] \
                + f" {document}"
        elif kind in ("card_charge", "card_refund", "clearing_invoice"):
            # the receipt's net and VAT (store.adhoc puts them in the event's detail, signed: a
            # refund's are negative); a refund pays the money back out. A clearing invoice's the
            # same way (store.clearing.book_invoice)
            groups = [(Decimal(str(g["rate"])), Decimal(str(g["net"])), Decimal(str(g["tax"])))
                      for g in (ev["detail"] or {}).get("tax_groups", ())]
            facts = EventFacts(kind, ev["currency"], effects, revenue=tuple(("charging", r, n) for r, n, _t in groups),
                               vat=tuple((r, t) for r, _n, t in groups if t),
                               bank=-Decimal(ev["amount"]) if kind == "card_refund" else ZERO,
                               treatment=str((ev["detail"] or {}).get("treatment") or ""))
            text = {"card_charge": "Card payment receipt", "card_refund": "Card refund",
                    "clearing_invoice": "Clearing invoice"}[kind] + f" {document}"
        elif kind == "partner_netting":
            facts = EventFacts(kind, ev["currency"], effects, partner_payable=-sum((e for _k, e in effects), ZERO))
            text = f"Host credit netted {document}"
        elif kind in _PARTNER_EVENTS:
            facts = _partner_facts(ev)
            text = f"{_PARTNER_EVENTS[kind]} {document}"
        elif kind == "write_off":
            # the debtor credited with what was given up; its VAT share corrected (a debit on the VAT
            # account of each rate), the rest a bad-debt expense
            written_off = -sum((e for _k, e in effects), ZERO)
            vat = tuple((Decimal(r), Decimal(t)) for r, t in (ev["detail"] or {}).get("vat", ()))
            facts = EventFacts(kind, ev["currency"], effects, vat=tuple((r, -t) for r, t in vat),
                               expense=written_off - sum((t for _r, t in vat), ZERO))
            text = f"Write-off {document}"
        else:
            raise AccountingError("no_journal_rule", f"no journal rule for receivable events of kind {kind!r}")
        doc_date: date = ev["booked_on"]
        if facts.currency != ctx.functional:
            facts = fx.value(facts, doc_date, rows)
        entry = book(chart, facts, source_id=ev["id"], document=document[:300], document_date=doc_date,
                     posting_date=_posting_date(doc_date, closed), text=text[:300], country=country,
                     debtor_account=debtor_of[ev["account_id"]] if ev.get("account_id") else "")
        if entry is None:
            continue
        _entry_rows(tenant_id, new_id("jnl"), entry, now, entry_rows, line_rows)
    driver_insert(conn, journal_entry, _ENTRY_COLUMNS, entry_rows)
    driver_insert(conn, journal_line, _LINE_COLUMNS, line_rows)
    return len(entry_rows)


_PARTNER_EVENTS = {"host_credit_note": "Host credit note", "host_payout": "Host credit paid out",
                   "host_payout_return": "Host credit payout returned"}


def _partner_facts(ev: Mapping[str, Any]) -> EventFacts:
    """A partner event's facts from its detail: a credit note's expense, input VAT per rate and
    payable; a payout's amount (``amount``: what left, positive)."""
    d = ev["detail"] or {}
    if ev["kind"] == "host_credit_note":
        return EventFacts("host_credit_note", ev["currency"], expense=Decimal(str(d["expense"])),
                          input_vat=tuple((Decimal(str(r)), Decimal(str(t))) for r, t in d.get("input_vat", ())),
                          partner_payable=Decimal(str(d["partner_payable"])),
                          self_assessed=tuple((Decimal(str(r)), Decimal(str(t))) for r, t in d.get("self_assessed", ())))
    amount = Decimal(str(d["amount"]))
    sign = 1 if ev["kind"] == "host_payout" else -1
    return EventFacts(ev["kind"], ev["currency"], partner_payable=sign * amount, payout=-sign * amount)


def _entry_rows(tenant_id: str, eid: str, entry: JournalEntry, now: datetime, entry_rows: list[tuple[Any, ...]],
                line_rows: list[tuple[Any, ...]]) -> None:
    entry_rows.append((eid, tenant_id, entry.source_kind, entry.source_id, entry.document, entry.document_date,
                       entry.posting_date, period_of(entry.posting_date), entry.text, entry.corrects, now,
                       entry.functional_currency or None, entry.rate, entry.rate_date))
    for n, ln in enumerate(entry.lines, 1):
        line_rows.append((new_id("jln"), tenant_id, eid, n, ln.account, ln.side, ln.amount, ln.currency, ln.role,
                          ln.revenue_kind, ln.vat, ln.bu_key, ln.functional))


class _Valuation:
    """The reference rates a call's foreign-currency events need, read once: each event's document
    date and the days of the items its entries sit on (a receivable stays valued at the rate it
    was booked at; what a later rate makes of it is an exchange difference)."""

    def __init__(self, conn: Connection, functional: str, events: Sequence[Mapping[str, Any]],
                 by_event: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        from store.exchange_rates import rate_table
        from store.receivables import receivable_item as ri

        self.functional = functional
        foreign = [ev for ev in events if ev["currency"] != functional]
        self.item_days: dict[str, date] = {}
        if not foreign:
            self.table = None
            return
        ids = sorted({r["item_id"] for ev in foreign for r in by_event.get(ev["id"], ())})
        for i in range(0, len(ids), 1000):
            self.item_days.update((r.id, r.issue_date) for r in conn.execute(
                select(ri.c.id, ri.c.issue_date).where(ri.c.id.in_(ids[i:i + 1000]))))
        wanted = {(ev["currency"], ev["booked_on"]) for ev in foreign}
        wanted |= {(ev["currency"], self.item_days.get(r["item_id"], ev["booked_on"]))
                   for ev in foreign for r in by_event.get(ev["id"], ())}
        self.table = rate_table(conn, functional, wanted)

    def value(self, facts: EventFacts, day: date, rows: Sequence[Mapping[str, Any]]) -> EventFacts:
        from runtime.accounting.fx import RateMissing

        assert self.table is not None
        try:
            rate, published = self.table.rate_on(facts.currency, day)
            item_rates = tuple(self.table.rate_on(facts.currency, self.item_days.get(r["item_id"], day))[0]
                               for r in rows)
        except RateMissing as exc:
            raise AccountingError("rate_missing", str(exc)) from None
        return replace(facts, functional=self.functional, rate=rate, rate_date=published, item_rates=item_rates)


def _customers_of(conn: Connection, account_ids: set[str]) -> dict[str, str]:
    from store.models import BillingAccount

    a = BillingAccount.__table__  # type: ignore[attr-defined]
    found = {r.id: r.customer_id for r in conn.execute(select(a.c.id, a.c.customer_id)
                                                        .where(a.c.id.in_(sorted(account_ids))))}
    # an open item names its customer too (accounts of the tests' stand-ins have no row)
    if len(found) < len(account_ids):
        from store.receivables import receivable_item as ri

        for r in conn.execute(select(ri.c.account_id, ri.c.customer_id).distinct()
                              .where(ri.c.account_id.in_(sorted(account_ids - set(found))))):
            found.setdefault(r.account_id, r.customer_id)
    missing = account_ids - set(found)
    if missing:
        raise AccountingError("account_missing", f"no customer for billing account(s) {', '.join(sorted(missing))}")
    return found


def correct_entry(conn: Connection, tenant_id: str, entry_id: str, text: str, on: date) -> str:
    """Reverse an entry with a new one (same lines, other side) naming what it corrects."""
    from runtime.accounting.journal import reversal

    got = entries(conn, tenant_id, entry_ids=[entry_id])
    if not got:
        raise AccountingError("not_found", f"no journal entry {entry_id}")
    _eid, original = got[0]
    posting = _posting_date(on, closed_periods(conn, tenant_id))
    rev = reversal(original, original.source_id, posting, text)
    entry_rows: list[tuple[Any, ...]] = []
    line_rows: list[tuple[Any, ...]] = []
    eid = new_id("jnl")
    _entry_rows(tenant_id, eid, replace(rev, corrects=entry_id), utcnow(), entry_rows, line_rows)
    driver_insert(conn, journal_entry, _ENTRY_COLUMNS, entry_rows)
    driver_insert(conn, journal_line, _LINE_COLUMNS, line_rows)
    return eid


# ---------------------------------------------------------------- reading
def entries(conn: Connection, tenant_id: str, *, period: str | None = None, entry_ids: Sequence[str] | None = None,
            unexported: bool = False) -> list[tuple[str, JournalEntry]]:
    """Journal entries (id, entry) in posting order (posting date, then id)."""
    je, jl = journal_entry.c, journal_line.c
    stmt = select(journal_entry).where(je.tenant_id == tenant_id)
    if period is not None:
        stmt = stmt.where(je.posting_date == date.fromisoformat(period)) if len(period) == 10 \
            else stmt.where(je.period == period)
    if entry_ids is not None:
        stmt = stmt.where(je.id.in_(list(entry_ids)))
    if unexported:
        stmt = stmt.where(~je.id.in_(select(posting_batch_entry.c.entry_id)
                                     .where(posting_batch_entry.c.tenant_id == tenant_id)))
    rows = conn.execute(stmt.order_by(je.posting_date, je.id)).all()
    if not rows:
        return []
    lines: dict[str, list[JournalLine]] = {r.id: [] for r in rows}
    ids = list(lines)
    for i in range(0, len(ids), 5000):
        for ln in conn.execute(select(journal_line).where(jl.entry_id.in_(ids[i:i + 5000]))
                               .order_by(jl.entry_id, jl.line_no)):
            lines[ln.entry_id].append(JournalLine(
                ln.account, ln.side, Decimal(ln.amount), ln.currency, ln.role, ln.revenue_kind, ln.vat, ln.bu_key,
                Decimal(ln.functional_amount) if ln.functional_amount is not None else None))
    return [(r.id, JournalEntry(r.source_kind, r.source_id, r.document, r.document_date, r.posting_date, r.text,
                                tuple(lines[r.id]), r.corrects, r.functional_currency or "",
                                Decimal(r.rate) if r.rate is not None else None, r.rate_date)) for r in rows]


def account_balances(conn: Connection, tenant_id: str) -> dict[tuple[str, str], Decimal]:
    """Signed balance (debit positive) per (account, currency), added up in Python."""
    out: dict[tuple[str, str], Decimal] = {}
    jl = journal_line.c
    for account, side, amount, currency in conn.execute(select(jl.account, jl.side, jl.amount, jl.currency)
                                                        .where(jl.tenant_id == tenant_id)):
        k = (account, currency)
        out[k] = out.get(k, ZERO) + (amount if side == "debit" else -amount)
    return out


def role_balances(conn: Connection, tenant_id: str) -> dict[tuple[str, str, str], Decimal]:
    """Signed balance per (role, VAT treatment, currency): what the reconciliation compares."""
    out: dict[tuple[str, str, str], Decimal] = {}
    jl = journal_line.c
    for role, vat, side, amount, currency in conn.execute(
            select(jl.role, jl.vat, jl.side, jl.amount, jl.currency).where(jl.tenant_id == tenant_id)):
        k = (role, vat, currency)
        out[k] = out.get(k, ZERO) + (amount if side == "debit" else -amount)
    return out


# ---------------------------------------------------------------- batches
@dataclass(frozen=True, slots=True)
class BatchFile:
    format: str
    filename: str
    media_type: str
    content: bytes
    sha256: str


def _period_dates(period: str) -> tuple[date, date]:
    if len(period) == 10:
        try:
            d = date.fromisoformat(period)
        except ValueError:
            raise AccountingError("bad_period", f"a batch period is YYYY-MM or YYYY-MM-DD, not {period!r}") from None
        return d, d
    _check_month(period)
    y, m = int(period[:4]), int(period[5:])
    nxt = date(y + 1, 1, 1) if m == 12 else date(y, m + 1, 1)
    return date(y, m, 1), date.fromordinal(nxt.toordinal() - 1)


def create_batch(conn: Connection, tenant_id: str, period: str, by: str,
                 at: datetime | None = None) -> dict[str, Any]:
    """A posting batch of the period's entries no batch has taken yet, with its files archived.
    Raises ``AccountingError('nothing_to_export')`` when there are none."""
    start, end = _period_dates(period)
    todo = entries(conn, tenant_id, period=period, unexported=True)
    if not todo:
        raise AccountingError("nothing_to_export", f"no journal entries of {period} left to export")
    chart = chart_of(conn, tenant_id)
    at = at or utcnow()
    b = posting_batch.c
    last = conn.execute(select(func.max(posting_batch.c.number)).where(b.tenant_id == tenant_id)).scalar()
    number = int(last or 0) + 1
    numbered = [NumberedEntry(i, e) for i, (_id, e) in enumerate(todo, 1)]
    fy = date(start.year if start.month >= chart.fiscal_year_start else start.year - 1, chart.fiscal_year_start, 1)
    from store.models import Tenant

    t = Tenant.__table__  # type: ignore[attr-defined]
    currency = conn.execute(select(t.c.currency).where(t.c.id == tenant_id)).scalar() or "EUR"
    header = DatevHeader(chart.consultant, chart.client, fy, start, end, f"evbill {number} {period}", at,
                         currency=str(currency), locked=period[:7] in closed_periods(conn, tenant_id))
    debtor_accounts = {ln.account for _n, e in todo for ln in e.lines if ln.role in ("debtor", "customer_credit")}
    stem = f"batch-{number:06d}-{period}"
    files = [
        ("datev", f"EXTF_Buchungsstapel_{stem}.csv", "text/csv; charset=windows-1252",
         buchungsstapel(numbered, chart, header)),
        ("datev_debtors", f"EXTF_Debitoren_{stem}.csv", "text/csv; charset=windows-1252",
         debitoren(_debtors(conn, tenant_id, debtor_accounts) if chart.debtors == "personal" else [], chart, header)),
        ("csv", f"journal_{stem}.csv", "text/csv; charset=utf-8", generic_csv(numbered)),
        ("jsonl", f"journal_{stem}.jsonl", "application/x-ndjson", json_lines(numbered)),
    ]
    bid = new_id("pbt")
    sha = hashlib.sha256(files[3][3]).hexdigest()
    conn.execute(insert(posting_batch).values(id=bid, tenant_id=tenant_id, number=number, period=period,
                                              entries=len(todo), sha256=sha, created_by=by, created_at=at))
    driver_insert(conn, posting_batch_entry, ("entry_id", "batch_id", "tenant_id"),
                  [(eid, bid, tenant_id) for eid, _e in todo])
    conn.execute(insert(posting_batch_file), [
        {"batch_id": bid, "format": f, "tenant_id": tenant_id, "filename": name, "media_type": mt, "content": data,
         "sha256": hashlib.sha256(data).hexdigest()} for f, name, mt, data in files])
    return batch(conn, tenant_id, bid)


def _debtors(conn: Connection, tenant_id: str, accounts: set[str]) -> list[Debtor]:
    from store.models import Customer

    c = Customer.__table__  # type: ignore[attr-defined]
    d = accounting_debtor.c
    rows = conn.execute(select(d.account, c.c.number, c.c.name, c.c.company_name, c.c.kind, c.c.street,
                               c.c.postal_code, c.c.city, c.c.country, c.c.vat_id, c.c.email)
                        .join(c, c.c.id == d.customer_id)
                        .where(d.tenant_id == tenant_id, d.account.in_(sorted(accounts)))
                        .order_by(d.account)).all()
    return [Debtor(r.account, r.number or "", r.company_name or r.name, r.kind == "business" or bool(r.company_name),
                   r.street, r.postal_code, r.city, r.country, r.vat_id, r.email) for r in rows]


def batch(conn: Connection, tenant_id: str, batch_id: str) -> dict[str, Any]:
    row = conn.execute(select(posting_batch).where(posting_batch.c.tenant_id == tenant_id,
                                                   posting_batch.c.id == batch_id)).first()
    if row is None:
        raise AccountingError("not_found", f"no posting batch {batch_id}")
    f = posting_batch_file.c
    files = [{"format": r.format, "filename": r.filename, "media_type": r.media_type, "sha256": r.sha256}
             for r in conn.execute(select(f.format, f.filename, f.media_type, f.sha256)
                                   .where(f.batch_id == batch_id).order_by(f.format))]
    return {"id": row.id, "number": row.number, "period": row.period, "entries": row.entries, "sha256": row.sha256,
            "created_by": row.created_by, "created_at": row.created_at, "files": files}


def batches(conn: Connection, tenant_id: str) -> list[dict[str, Any]]:
    ids = [r.id for r in conn.execute(select(posting_batch.c.id).where(posting_batch.c.tenant_id == tenant_id)
                                      .order_by(posting_batch.c.number))]
    return [batch(conn, tenant_id, i) for i in ids]


def batch_file(conn: Connection, tenant_id: str, batch_id: str, fmt: str) -> BatchFile:
    f = posting_batch_file.c
    row = conn.execute(select(posting_batch_file).where(f.tenant_id == tenant_id, f.batch_id == batch_id,
                                                        f.format == fmt)).first()
    if row is None:
        raise AccountingError("not_found", f"no {fmt} file in posting batch {batch_id}")
    return BatchFile(row.format, row.filename, row.media_type, bytes(row.content), row.sha256)



# ---------------------------------------------------------------- delivery
@dataclass(frozen=True, slots=True)
class SftpTarget:
    host: str
    port: int
    username: str
    password: str
    private_key: str
    directory: str
    host_key: str

    @property
    def where(self) -> str:
        return f"{self.username}@{self.host}:{self.port}{'/' if not self.directory.startswith('/') else ''}" \
               f"{self.directory}"


def set_sftp_target(conn: Connection, tenant_id: str, target: SftpTarget, by: str) -> None:
    if not (target.password or target.private_key):
        raise AccountingError("sftp_credentials_missing", "an SFTP target needs a password or a private key")
    if not target.host_key.strip():
        raise AccountingError("sftp_host_key_missing", "an SFTP target pins the server's host key")
    values = dict(host=target.host, port=target.port, username=target.username, password=target.password,
                  private_key=target.private_key, directory=target.directory, host_key=target.host_key.strip(),
                  updated_by=by, updated_at=utcnow())
    t = accounting_sftp_target
    if conn.execute(select(t.c.tenant_id).where(t.c.tenant_id == tenant_id)).first() is None:
        conn.execute(insert(t).values(tenant_id=tenant_id, **values))
    else:
        conn.execute(t.update().where(t.c.tenant_id == tenant_id).values(**values))


def sftp_target(conn: Connection, tenant_id: str) -> SftpTarget | None:
    t = accounting_sftp_target
    r = conn.execute(select(t).where(t.c.tenant_id == tenant_id)).first()
    if r is None:
        return None
    return SftpTarget(r.host, r.port, r.username, r.password, r.private_key, r.directory, r.host_key)


def batch_files(conn: Connection, tenant_id: str, batch_id: str) -> list[BatchFile]:
    f = posting_batch_file.c
    rows = conn.execute(select(posting_batch_file).where(f.tenant_id == tenant_id, f.batch_id == batch_id)
                        .order_by(f.format)).all()
    return [BatchFile(r.format, r.filename, r.media_type, bytes(r.content), r.sha256) for r in rows]


def record_delivery(conn: Connection, tenant_id: str, batch_id: str, status: str, target: str,
                    files: Sequence[Mapping[str, str]], error: str = "") -> None:
    """What became of a batch's delivery: ``delivered`` (the files, under their final names) or
    ``failed`` (the last error, for finance to look at). A later delivery replaces a failure."""
    d = posting_batch_delivery
    values = dict(status=status, target=target[:800], files=list(files), error=error[:1000], updated_at=utcnow())
    if conn.execute(select(d.c.batch_id).where(d.c.batch_id == batch_id)).first() is None:
        conn.execute(insert(d).values(batch_id=batch_id, tenant_id=tenant_id, **values))
    else:
        conn.execute(d.update().where(d.c.batch_id == batch_id, d.c.tenant_id == tenant_id).values(**values))
    if status == "delivered":
        # finance's task about an earlier failure of this batch is done
        from store.billing import finance_task as ft

        conn.execute(ft.update().where(ft.c.tenant_id == tenant_id, ft.c.kind == "batch_delivery",
                                       ft.c.subject_id == batch_id, ft.c.status == "open")
                     .values(status="resolved", decided_by="system", decision_reason="delivered",
                             closed_at=utcnow()))


def delivery(conn: Connection, tenant_id: str, batch_id: str) -> dict[str, Any] | None:
    d = posting_batch_delivery
    r = conn.execute(select(d).where(d.c.batch_id == batch_id, d.c.tenant_id == tenant_id)).first()
    return None if r is None else {k: getattr(r, k) for k in ("status", "target", "files", "error", "updated_at")}



# ---------------------------------------------------------------- open items list (OPOS)
def open_items_list(conn: Connection, tenant_id: str, as_of: date) -> dict[str, Any]:
    """The open items list (OPOS) as of the end of ``as_of``: every item with something open on
    that day (entries booked up to it), grouped by debtor (the customer's personal account, or the
    control account for all), with days overdue; and, per currency, the items' total against the
    journal's receivable balance (debtor and customer-credit lines of entries dated up to that
    day): the list reconciles when they are equal."""
    from store.models import Customer
    from store.receivables import receivable_entry, receivable_item

    i, e = receivable_item.c, receivable_entry.c
    open_: dict[str, Decimal] = {}
    for item_id, kind, amount in conn.execute(select(e.item_id, e.kind, e.amount).where(
            e.tenant_id == tenant_id, e.booked_on <= as_of)):
        open_[item_id] = open_.get(item_id, ZERO) + ENTRY_SIGNS[kind] * Decimal(amount)
    ids = [k for k, v in open_.items() if v != 0]
    items = []
    for n in range(0, len(ids), 5000):
        items += conn.execute(select(receivable_item).where(i.tenant_id == tenant_id, i.id.in_(ids[n:n + 5000]))).all()
    chart = chart_of(conn, tenant_id)
    c = Customer.__table__.c  # type: ignore[attr-defined]
    customers = {r.id: r for r in conn.execute(select(c.id, c.number, c.name, c.company_name).where(
        c.tenant_id == tenant_id, c.id.in_(sorted({it.customer_id for it in items}))))} if items else {}
    if chart.debtors == "personal":
        d = accounting_debtor.c
        accounts = dict(conn.execute(select(d.customer_id, d.account).where(
            d.tenant_id == tenant_id, d.customer_id.in_(sorted(customers)))).all()) if customers else {}
    else:
        control = chart.resolve("invoice", "debtor", country=tenant_country(conn, tenant_id)).account
        accounts = dict.fromkeys(customers, control)
    debtors: dict[tuple[str, str, str], dict[str, Any]] = {}
    totals: dict[str, Decimal] = {}
    for it in sorted(items, key=lambda r: (r.due_date, r.id)):
        cus = customers.get(it.customer_id)
        account = accounts.get(it.customer_id, "")
        k = (account, it.customer_id, it.currency)
        deb = debtors.setdefault(k, {
            "account": account, "customer_id": it.customer_id, "customer_number": (cus.number or "") if cus else "",
            "name": ((cus.company_name or cus.name) if cus else ""), "currency": it.currency, "open": ZERO,
            "overdue": ZERO, "items": []})
        amount = open_[it.id]
        overdue = max((as_of - it.due_date).days, 0) if amount > 0 else 0
        deb["items"].append({"item_id": it.id, "kind": it.kind, "number": it.number, "issue_date": it.issue_date,
                             "due_date": it.due_date, "amount": Decimal(it.amount), "open": amount,
                             "days_overdue": overdue})
        deb["open"] += amount
        if overdue:
            deb["overdue"] += amount
        totals[it.currency] = totals.get(it.currency, ZERO) + amount
    je, jl = journal_entry.c, journal_line.c
    journal: dict[str, Decimal] = {}
    for side, amount, currency in conn.execute(
            select(jl.side, jl.amount, jl.currency).join(journal_entry, je.id == jl.entry_id).where(
                jl.tenant_id == tenant_id, jl.role.in_(("debtor", "customer_credit")), je.document_date <= as_of)):
        journal[currency] = journal.get(currency, ZERO) + (Decimal(amount) if side == "debit" else -Decimal(amount))
    currencies = {cur: {"open_items": totals.get(cur, ZERO), "receivable_balance": journal.get(cur, ZERO)}
                  for cur in sorted(set(totals) | set(journal))}
    return {"as_of": as_of, "debtors": sorted(debtors.values(), key=lambda x: (x["account"], x["customer_number"],
                                                                             x["customer_id"], x["currency"])),
            "currencies": currencies,
            "reconciled": all(v["open_items"] == v["receivable_balance"] for v in currencies.values())}


OPOS_COLUMNS = ("debtor_account", "customer_number", "customer_name", "item_id", "kind", "number", "issue_date",
                "due_date", "currency", "amount", "open", "days_overdue")


def open_items_csv(listing: Mapping[str, Any]) -> bytes:
    """The open items list as CSV, one row per item with every field named (UTF-8, comma, decimal
    point, ISO dates), debtor by debtor."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(OPOS_COLUMNS)
    for deb in listing["debtors"]:
        for it in deb["items"]:
            w.writerow([deb["account"], deb["customer_number"], deb["name"], it["item_id"], it["kind"], it["number"],
                        it["issue_date"].isoformat(), it["due_date"].isoformat(), deb["currency"],
                        format(it["amount"], "f"), format(it["open"], "f"), it["days_overdue"]])
    return buf.getvalue().encode("utf-8")


# ---------------------------------------------------------------- batches on a schedule
CADENCES = ("off", "daily", "monthly")


def batch_cadence(conn: Connection, tenant_id: str) -> str:
    """How often the schedule cuts the tenant's posting batches: ``off`` (by hand only), ``daily``
    (each past day's entries) or ``monthly`` (each past month's)."""
    t = accounting_batch_schedule.c
    row = conn.execute(select(t.cadence).where(t.tenant_id == tenant_id)).first()
    return str(row.cadence) if row is not None else "off"


def set_batch_cadence(conn: Connection, tenant_id: str, cadence: str, by: str) -> None:
    if cadence not in CADENCES:
        raise AccountingError("bad_cadence", f"a batch cadence is {', '.join(CADENCES)}, not {cadence!r}")
    t = accounting_batch_schedule
    values = {"cadence": cadence, "updated_by": by, "updated_at": utcnow()}
    if conn.execute(select(t.c.tenant_id).where(t.c.tenant_id == tenant_id)).first() is None:
        conn.execute(insert(t).values(tenant_id=tenant_id, **values))
    else:
        conn.execute(t.update().where(t.c.tenant_id == tenant_id).values(**values))


def _due_periods(conn: Connection, tenant_id: str, cadence: str, today: date) -> list[str]:
    """The periods before ``today`` (its day, or its month) with entries no batch took yet."""
    je = journal_entry.c
    cutoff = today if cadence == "daily" else today.replace(day=1)
    days = conn.execute(select(je.posting_date).distinct().where(
        je.tenant_id == tenant_id, je.posting_date < cutoff,
        ~je.id.in_(select(posting_batch_entry.c.entry_id).where(posting_batch_entry.c.tenant_id == tenant_id)))
    ).scalars().all()
    periods = {d.isoformat() if cadence == "daily" else period_of(d) for d in days}
    return sorted(periods)


def cut_due_batches(conn: Connection, at: datetime) -> list[tuple[str, str]]:
    """One round of the batch schedule at ``at``: for every tenant with a cadence, a batch per
    past period (day or month, in the tenant's time zone) with entries not exported yet; then the
    (tenant, batch) pairs to deliver: every batch of a scheduled tenant with an SFTP target that
    has no delivery recorded (just cut, or cut before its delivery started). The caller commits
    per call; cutting again finds nothing left (each entry is exported once)."""
    from zoneinfo import ZoneInfo

    from store.models import Tenant

    t = Tenant.__table__  # type: ignore[attr-defined]
    s = accounting_batch_schedule.c
    tenants = conn.execute(select(s.tenant_id, s.cadence, t.c.timezone).join(t, t.c.id == s.tenant_id)
                           .where(s.cadence != "off").order_by(s.tenant_id)).all()
    deliver: list[tuple[str, str]] = []
    for tenant_id, cadence, tz in tenants:
        try:
            today = at.astimezone(ZoneInfo(tz or "UTC")).date()
        except (KeyError, ValueError):
            today = at.date()
        for period in _due_periods(conn, tenant_id, cadence, today):
            create_batch(conn, tenant_id, period, "schedule", at)
        if sftp_target(conn, tenant_id) is None:
            continue
        b, d = posting_batch.c, posting_batch_delivery.c
        deliver += [(tenant_id, r.id) for r in conn.execute(
            select(b.id).where(b.tenant_id == tenant_id, ~b.id.in_(select(d.batch_id).where(d.tenant_id == tenant_id)))
            .order_by(b.number))]
    return deliver


def open_delivery_task(conn: Connection, tenant_id: str, batch_id: str, workflow_id: str, error: str) -> str:
    """A finance task (kind ``batch_delivery``, listed with the held invoices) for a batch whose
    delivery finally failed; one open task per batch (a later failure updates its reason). It
    closes itself when the batch is delivered (``record_delivery``)."""
    from store.billing import finance_task as ft

    number = conn.execute(select(posting_batch.c.number).where(posting_batch.c.id == batch_id)).scalar()
    reasons = [{"kind": "batch_delivery_failed", "batch_id": batch_id, "batch_number": str(number or ""),
                "message": f"posting batch {number} was not delivered to the ERP: {error}"[:1000]}]
    row = conn.execute(select(ft.c.id).where(ft.c.tenant_id == tenant_id, ft.c.kind == "batch_delivery",
                                             ft.c.subject_id == batch_id, ft.c.status == "open")).first()
    if row is not None:
        conn.execute(ft.update().where(ft.c.id == row.id).values(reasons=reasons, workflow_id=workflow_id))
        return str(row.id)
    tid = new_id("task")
    conn.execute(insert(ft).values(
        id=tid, tenant_id=tenant_id, invoice_id=None, subject_id=batch_id, account_id="", workflow_id=workflow_id,
        kind="batch_delivery", status="open", reasons=reasons, comparison={}, escalation_level=0, decided_by="",
        decision_reason="", created_at=utcnow()))
    return tid
