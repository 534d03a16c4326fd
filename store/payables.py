"""Money the tenant owes and pays out by SEPA credit transfer: payables, payout runs, the items each
run pays and the archived pain.001 files.

A payable is one amount owed to one payee (a customer now, a partner with issue 15's host credits)
in one currency, with the account it is paid to and where it comes from. Its ``kind`` says what it
is (``refund`` now; ``host_credit`` and the like later) and its source says what it consumed
(``credit_balance`` of a billing account, or one ``credit_note``'s credit). Its status moves
``requested`` -> ``in_run`` (proposed in a payout run awaiting approval; a rejected run gives it
back) -> ``submitted`` (in an approved, archived file) -> ``paid`` (the statement shows the debit)
or ``returned`` (the payee's bank sent it back).

A refund is booked on the receivables subledger when it is requested, in the same transaction:
the credit it pays out is consumed at once (``refund`` entries on the credit balance items), so
the next invoice cannot use it as well and a second request cannot refund it twice; it is never
more than the credit there is, in the account's currency, and once per idempotency key. A returned
transfer puts the credit back (``refund_return`` entries).

A run never puts a payable into two files: ``payout_item`` has a unique index on the payable among
rows that are still live (proposed, submitted, paid), and a payable is claimed by a conditional
update from ``requested``; gathering, submitting and rejecting are each one transaction found
again by the run's workflow id, so a retried activity or a crashed worker that starts over
answers what the first call did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
    String,
    Table,
    UniqueConstraint,
    insert,
    select,
    text,
    update,
)

from runtime.bank.pain001 import PAIN001_VERSION, Debtor, Transfer, build_pain001, transfer_end_to_end_id
from runtime.money import ZERO, CurrencyMismatch
from runtime.receivables import InsufficientCredit, available_credit
from store import receivables as R
from store.billing import invoice
from store.collections import creditor_account, creditor_account_exists, mandate
from store.models import BillingAccount, Customer, metadata
from store.sepa_runs import run_tables
from store.types import ExactDecimal, UTCDateTime, new_id, utcnow

__all__ = [
    "KINDS",
    "LIVE_STATUSES",
    "DueRun",
    "Gathered",
    "InsufficientCredit",
    "PayableNotFound",
    "creditor_account_exists",
    "default_payee_account",
    "due_scheduled_runs",
    "gather",
    "get_file",
    "get_payable",
    "get_run",
    "list_payables",
    "list_runs",
    "payable",
    "payout_day",
    "payout_file",
    "payout_item",
    "payout_run",
    "payout_schedule",
    "record_paid",
    "record_transfer_return",
    "reject_run",
    "request_refund",
    "run_exists",
    "run_items",
    "set_payout_day",
    "submit_run",
    "submitted_transfers",
    "transfer_for_end_to_end",
]

# what a payable can be: a refund of a customer's credit, or a host credit note's amount
# (``store.host_credits``); what a returned transfer puts back is in ``_REOPEN``
KINDS = ("refund", "host_credit")
LIVE_STATUSES = ("proposed", "submitted", "paid")
_live = "status IN ('proposed', 'submitted', 'paid')"

payable = Table(
    "payable", metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("key", String(200), nullable=False),  # the caller's idempotency key
    Column("kind", String(20), nullable=False),  # refund (| host_credit ... with issue 15)
    Column("payee_kind", String(20), nullable=False),  # customer | partner
    Column("payee_id", String(40), nullable=False),
    Column("account_id", String(40), nullable=True),  # the billing account a refund pays out of
    Column("payee_name", String(70), nullable=False),
    Column("iban", String(34), nullable=False),
    Column("bic", String(11), nullable=False),  # empty: IBAN-only
    Column("amount", ExactDecimal(), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("remittance", String(140), nullable=False),  # what the payee reads
    Column("source_kind", String(20), nullable=False),  # credit_balance | credit_note (| partner_statement ...)
    Column("source_id", String(40), nullable=False),  # the billing account, or the credit note's invoice id
    Column("receivable_key", String(200), nullable=False),  # the subledger event it booked ("" when none)
    # requested | in_run | submitted | paid | returned
    Column("status", String(20), nullable=False),
    Column("end_to_end_id", String(35), nullable=False),  # the live transfer's ("" before a run)
    Column("paid_on", Date(), nullable=True),
    Column("return_reason", String(10), nullable=False),
    Column("requested_by", String(40), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("tenant_id", "key", name="uq_payable_key"),
    Index("ix_payable_status", "tenant_id", "status"),
    Index("ix_payable_payee", "tenant_id", "payee_id"),
)

_runs = run_tables(metadata, "payout", Column("requested_by", JSON(), nullable=False),  # who asked (four eyes)
                   "pfl")
payout_run = _runs.run

payout_item = Table(
    "payout_item", metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("run_id", String(40), ForeignKey("payout_run.id"), nullable=False),
    Column("payable_id", String(40), ForeignKey("payable.id"), nullable=False),
    Column("end_to_end_id", String(35), nullable=False),
    Column("amount", ExactDecimal(), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(20), nullable=False),  # proposed | submitted | paid | returned | dropped | rejected
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("tenant_id", "end_to_end_id", name="uq_payout_item_e2e"),
    Index("uq_payout_item_live", "tenant_id", "payable_id", unique=True,
          sqlite_where=text(_live), postgresql_where=text(_live)),
    Index("ix_payout_item_run", "run_id"),
)

payout_file = _runs.file

payout_schedule = Table(
    "payout_schedule", metadata,
    Column("tenant_id", String(40), ForeignKey("tenant.id"), primary_key=True),
    Column("day_of_month", Integer(), nullable=True),  # 1-31 (past a short month's end: its last day); NULL: off
    Column("updated_by", String(40), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

_account = BillingAccount.__table__  # type: ignore[attr-defined]
_customer = Customer.__table__  # type: ignore[attr-defined]


class PayableNotFound(LookupError):
    """What a request names does not exist in the tenant (an account, a credit note)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


# ------------------------------------------------------------------ payables
def get_payable(conn: Connection, tenant_id: str, payable_id: str) -> Any:
    return conn.execute(select(payable).where(payable.c.tenant_id == tenant_id, payable.c.id == payable_id)).first()


def list_payables(conn: Connection, tenant_id: str, *, status: str | None = None, kind: str | None = None,
                  payee_id: str | None = None, account_id: str | None = None, after_id: str | None = None,
                  limit: int = 100) -> list[Any]:
    """Payables by id (creation order), after ``after_id`` (the page cursor)."""
    stmt = select(payable).where(payable.c.tenant_id == tenant_id)
    if status:
        stmt = stmt.where(payable.c.status == status)
    if kind:
        stmt = stmt.where(payable.c.kind == kind)
    if payee_id:
        stmt = stmt.where(payable.c.payee_id == payee_id)
    if account_id:
        stmt = stmt.where(payable.c.account_id == account_id)
    if after_id:
        stmt = stmt.where(payable.c.id > after_id)
    return list(conn.execute(stmt.order_by(payable.c.id).limit(limit)).all())


def default_payee_account(conn: Connection, tenant_id: str, account_id: str) -> tuple[str, str, str] | None:
    """(IBAN, BIC, name) of the account's newest SEPA mandate: where a refund goes when the
    request names no account (the customer's money came from there). None without a mandate."""
    row = conn.execute(select(mandate.c.iban, mandate.c.bic, mandate.c.debtor_name).where(
        mandate.c.tenant_id == tenant_id, mandate.c.account_id == account_id)
        .order_by(mandate.c.created_at.desc(), mandate.c.id.desc())).first()
    return (str(row.iban), str(row.bic), str(row.debtor_name)) if row is not None else None


def _credit_note_item(conn: Connection, tenant_id: str, account_id: str, credit_note: str) -> tuple[str, str | None]:
    """(the credit note's invoice id, the credit balance item its booking left over, if any)."""
    row = conn.execute(select(invoice.c.id).where(
        invoice.c.tenant_id == tenant_id, invoice.c.account_id == account_id, invoice.c.kind == "credit_note",
        (invoice.c.id == credit_note) | (invoice.c.number == credit_note))).first()
    if row is None:
        raise PayableNotFound("credit_note_not_found", f"the account has no credit note {credit_note!r}")
    booked = R.event(conn, tenant_id, f"invoice:{row.id}")
    return str(row.id), booked.credit_item_id if booked is not None else None


def request_refund(conn: Connection, tenant_id: str, *, key: str, account_id: str, currency: str | None,
                   amount: Decimal | None, credit_note: str | None, iban: str, bic: str, payee_name: str,
                   remittance: str, on: date, requested_by: str) -> tuple[Any, bool]:
    """A refund of the account's credit balance (``credit_note`` None) or of what one credit note
    left to the customer's good: books the ``refund`` on the subledger and records the payable,
    once per ``key`` (the same key again answers the first payable, ``True``). ``amount`` None
    refunds all there is. Raises ``PayableNotFound``, ``CurrencyMismatch``, ``InsufficientCredit``."""
    done = conn.execute(select(payable).where(payable.c.tenant_id == tenant_id, payable.c.key == key)).first()
    if done is not None:
        return done, True
    # one refund at a time per account: on PostgreSQL the row lock makes a second request wait and
    # then see the credit the first consumed (SQLite serialises writers anyway)
    acct = conn.execute(select(_account.c.id, _account.c.customer_id, _account.c.currency).where(
        _account.c.tenant_id == tenant_id, _account.c.id == account_id).with_for_update()).first()
    if acct is None:
        raise PayableNotFound("billing_account_not_found", f"billing account {account_id!r} not found")
    if currency is not None and currency != acct.currency:
        raise CurrencyMismatch(f"the billing account is billed in {acct.currency}, not {currency}")
    cur = str(acct.currency)
    if credit_note:
        source_kind, (source_id, credit_item) = "credit_note", _credit_note_item(conn, tenant_id, account_id,
                                                                                 credit_note)
        credits = [s.view() for s in R.item_states(conn, tenant_id, item_ids=[credit_item])] if credit_item else []
    else:
        source_kind, source_id = "credit_balance", account_id
        credits = [s.view() for s in R.item_states(conn, tenant_id, account_id=account_id, currency=cur)
                   if s.kind == "credit_balance" and s.open < 0]
    available = available_credit(credits, cur)
    want = available if amount is None else amount
    if want <= 0 or want > available:
        raise InsufficientCredit(want, available, cur)
    name = payee_name or str(conn.execute(select(_customer.c.name).where(
        _customer.c.id == acct.customer_id)).scalar_one())
    pid = new_id("pbl")
    rkey = f"refund:{pid}"
    R.book_refund(conn, tenant_id, key=rkey, account_id=account_id, currency=cur, amount=want, credits=credits,
                  booked_on=on, reference=remittance[:300],
                  detail={"payable_id": pid, "source": source_kind, "source_id": source_id}, created_by=requested_by)
    now = utcnow()
    conn.execute(insert(payable).values(
        id=pid, tenant_id=tenant_id, key=key, kind="refund", payee_kind="customer", payee_id=acct.customer_id,
        account_id=account_id, payee_name=name[:70], iban=iban, bic=bic, amount=want, currency=cur,
        remittance=remittance[:140], source_kind=source_kind, source_id=source_id, receivable_key=rkey,
        status="requested", end_to_end_id="", paid_on=None, return_reason="", requested_by=requested_by,
        created_at=now, updated_at=now))
    return get_payable(conn, tenant_id, pid), False


# ------------------------------------------------------------------ runs
def _chunks(ids: Sequence[str], size: int = 900) -> list[list[str]]:
    """``ids`` in slices a statement's parameter limit takes (SQLite's, PostgreSQL's)."""
    return [list(ids[i:i + size]) for i in range(0, len(ids), size)]


@dataclass(frozen=True, slots=True)
class Gathered:
    run_id: str
    status: str
    items: int
    total: Decimal
    currency: str
    requested_by: list[str]


def _gathered(run: Any) -> Gathered:
    return Gathered(run.id, run.status, run.items, run.total, run.currency, list(run.requested_by or []))


def gather(conn: Connection, tenant_id: str, creditor_account_id: str, workflow_id: str, as_of: date,
           started_by: str) -> Gathered:
    """The run of ``workflow_id`` (created once): every payable ``requested`` in the account's
    currency, oldest first, claimed for this run. A retried call returns the first answer."""
    run = _runs.by_workflow(conn, tenant_id, workflow_id)
    if run is not None:
        return _gathered(run)
    cred = conn.execute(select(creditor_account).where(creditor_account.c.tenant_id == tenant_id,
                                                       creditor_account.c.id == creditor_account_id)).one()
    run_id = new_id("pyr")
    now = utcnow()
    conn.execute(insert(payout_run).values(
        id=run_id, tenant_id=tenant_id, creditor_account_id=creditor_account_id, workflow_id=workflow_id,
        status="building", as_of=as_of, pain_version=PAIN001_VERSION, message_id=run_id[:35], items=0, total=ZERO,
        currency=cred.currency, requested_by=[], file_id=None, started_by=started_by, decided_by="",
        decision_reason="", created_at=now, decided_at=None))
    rows = conn.execute(select(payable).where(payable.c.tenant_id == tenant_id, payable.c.status == "requested",
                                              payable.c.currency == cred.currency)
                        .order_by(payable.c.created_at, payable.c.id)).all()
    # earlier attempts of each (a rejected run, a returned transfer): the next EndToEndId counts on
    attempts: dict[str, int] = {}
    for chunk in _chunks([p.id for p in rows]):
        for (pid,) in conn.execute(select(payout_item.c.payable_id).where(
                payout_item.c.tenant_id == tenant_id, payout_item.c.payable_id.in_(chunk))):
            attempts[pid] = attempts.get(pid, 0) + 1
    count, total, requesters, items = 0, ZERO, [], []
    for p in rows:
        e2e = transfer_end_to_end_id(p.id, attempts.get(p.id, 0) + 1)
        claimed = conn.execute(update(payable).where(payable.c.id == p.id, payable.c.status == "requested")
                               .values(status="in_run", end_to_end_id=e2e, updated_at=now))
        if claimed.rowcount != 1:
            continue  # another run took it between the read and here
        items.append(dict(id=new_id("poi"), tenant_id=tenant_id, run_id=run_id, payable_id=p.id, end_to_end_id=e2e,
                          amount=p.amount, currency=p.currency, status="proposed", created_at=now))
        count += 1
        total += p.amount
        if p.requested_by not in requesters:
            requesters.append(p.requested_by)
    if items:
        conn.execute(insert(payout_item), items)
    status = "awaiting_approval" if count else "empty"
    conn.execute(update(payout_run).where(payout_run.c.id == run_id).values(
        status=status, items=count, total=total, requested_by=requesters))
    return Gathered(run_id, status, count, total, cred.currency, requesters)


def run_items(conn: Connection, run_id: str, statuses: Sequence[str] | None = None) -> list[Any]:
    """A run's items with their payables' payee, IBAN and reference, in file order."""
    stmt = (select(payout_item, payable.c.kind, payable.c.payee_name, payable.c.iban, payable.c.bic,
                   payable.c.remittance, payable.c.payee_id, payable.c.account_id)
            .join(payable, payable.c.id == payout_item.c.payable_id).where(payout_item.c.run_id == run_id))
    if statuses is not None:
        stmt = stmt.where(payout_item.c.status.in_(list(statuses)))
    return list(conn.execute(stmt.order_by(payout_item.c.created_at, payout_item.c.id)).all())


def _transfers(rows: Sequence[Any], day: date) -> list[Transfer]:
    return [Transfer(r.end_to_end_id, r.amount, r.currency, day, r.payee_name, r.iban, r.bic, r.remittance)
            for r in rows]


def _debtor(conn: Connection, run: Any) -> Debtor:
    cred = conn.execute(select(creditor_account).where(creditor_account.c.id == run.creditor_account_id)).one()
    return Debtor(cred.name, cred.iban, cred.bic)


def preview(conn: Connection, tenant_id: str, run_id: str, created: datetime) -> bytes:
    """The file as it would be submitted now (built and XSD-checked; nothing stored)."""
    run = _runs.one(conn, tenant_id, run_id)
    return build_pain001(message_id=run.message_id, created=created, debtor=_debtor(conn, run),
                         txs=_transfers(run_items(conn, run_id, ("proposed",)), created.date()))


def submit_run(conn: Connection, tenant_id: str, run_id: str, decided_by: str, created: datetime,
               reason: str = "") -> Any:
    """Approve: build the file from the items whose payables are still in this run (executed on
    the approval's day), archive it and mark items and payables submitted. Once: a retried call
    returns the run as the first call left it."""
    run = _runs.one(conn, tenant_id, run_id)
    if run.status != "awaiting_approval":
        return run
    proposed = run_items(conn, run_id, ("proposed",))
    states = {p.id: p for chunk in _chunks([r.payable_id for r in proposed]) for p in conn.execute(
        select(payable.c.id, payable.c.status, payable.c.end_to_end_id).where(payable.c.id.in_(chunk))).all()}
    keep = [r for r in proposed if states[r.payable_id].status == "in_run"
            and states[r.payable_id].end_to_end_id == r.end_to_end_id]
    kept = {r.id for r in keep}
    drop = [r for r in proposed if r.id not in kept]
    now = utcnow()
    for chunk in _chunks([r.id for r in drop]):
        conn.execute(update(payout_item).where(payout_item.c.id.in_(chunk)).values(status="dropped"))
    values: dict[str, Any] = {"decided_by": decided_by, "decision_reason": reason, "decided_at": now,
                              "items": len(keep), "total": sum((r.amount for r in keep), ZERO)}
    if not keep:
        return _runs.decide(conn, tenant_id, run_id, "empty", **values)
    data = build_pain001(message_id=run.message_id, created=created, debtor=_debtor(conn, run),
                         txs=_transfers(keep, created.date()))
    fid = _runs.archive(conn, tenant_id, run, data, now)
    for chunk in _chunks([r.id for r in keep]):
        conn.execute(update(payout_item).where(payout_item.c.id.in_(chunk)).values(status="submitted"))
    for chunk in _chunks([r.payable_id for r in keep]):
        conn.execute(update(payable).where(payable.c.id.in_(chunk)).values(status="submitted", updated_at=now))
    _post_host_payouts(conn, tenant_id, [r for r in keep if r.kind == "host_credit"], "host_payout",
                       created.date(), run.message_id)
    return _runs.decide(conn, tenant_id, run_id, "submitted", file_id=fid, **values)


def _post_host_payouts(conn: Connection, tenant_id: str, items: Sequence[Any], kind: str, on: date,
                       reference: str) -> None:
    """The journal of host credits paid out (the approved file) or returned: the partner payable
    against the payout clearing account, one entry per transfer."""
    if not items:
        return
    from store.accounting import post_events

    suffix = "" if kind == "host_payout" else ":return"
    post_events(conn, tenant_id, [
        {"id": f"{r.id}{suffix}", "kind": kind, "currency": r.currency, "reference": f"{reference} {r.end_to_end_id}",
         "booked_on": on, "account_id": None, "detail": {"amount": str(r.amount), "payable_id": r.payable_id}}
        for r in items], [])


def reject_run(conn: Connection, tenant_id: str, run_id: str, decided_by: str, reason: str) -> Any:
    """Reject: the run's payables are ``requested`` again (the next run may take them)."""
    run = _runs.one(conn, tenant_id, run_id)
    if run.status != "awaiting_approval":
        return run
    proposed = run_items(conn, run_id, ("proposed",))
    now = utcnow()
    conn.execute(update(payout_item).where(payout_item.c.run_id == run_id, payout_item.c.status == "proposed")
                 .values(status="rejected"))
    for r in proposed:
        conn.execute(update(payable).where(payable.c.id == r.payable_id, payable.c.status == "in_run",
                                           payable.c.end_to_end_id == r.end_to_end_id)
                     .values(status="requested", end_to_end_id="", updated_at=now))
    return _runs.decide(conn, tenant_id, run_id, "rejected", decided_by=decided_by, decision_reason=reason,
                        decided_at=now)


list_runs = _runs.page
get_run = _runs.row
get_file = _runs.file_row
file_sha256 = _runs.file_sha256


# ------------------------------------------------------------------ the bank's answer
def submitted_transfers(conn: Connection, tenant_id: str) -> dict[str, str]:
    """EndToEndId -> payable id of our transfers in an approved file, for matching debits."""
    rows = conn.execute(select(payout_item.c.end_to_end_id, payout_item.c.payable_id).where(
        payout_item.c.tenant_id == tenant_id, payout_item.c.status.in_(("submitted", "paid")))).all()
    return {r.end_to_end_id: r.payable_id for r in rows}


def transfer_for_end_to_end(conn: Connection, tenant_id: str, e2e: str) -> Any:
    """Our transfer (a submitted, paid or returned payout item with its payable's kind and
    reference) by its EndToEndId, or None."""
    if not e2e or e2e == "NOTPROVIDED":
        return None
    return conn.execute(select(payout_item, payable.c.kind, payable.c.receivable_key, payable.c.remittance)
                        .join(payable, payable.c.id == payout_item.c.payable_id)
                        .where(payout_item.c.tenant_id == tenant_id, payout_item.c.end_to_end_id == e2e,
                               payout_item.c.status.in_(("submitted", "paid", "returned")))).first()


def record_paid(conn: Connection, tenant_id: str, item: Any, on: date) -> bool:
    """The statement shows our transfer's debit: item and payable are paid (once; a transfer
    returned before stays returned). Whether this call changed anything."""
    if item.status != "submitted":
        return False
    conn.execute(update(payout_item).where(payout_item.c.id == item.id).values(status="paid"))
    conn.execute(update(payable).where(payable.c.id == item.payable_id, payable.c.status == "submitted")
                 .values(status="paid", paid_on=on, updated_at=utcnow()))
    return True


def _reopen_refund(conn: Connection, tenant_id: str, item: Any, reason: str, on: date, created_by: str) -> str:
    booked = R.book_refund_return(conn, tenant_id, key=f"refund_return:{item.payable_id}",
                                  refund_key=item.receivable_key, booked_on=on,
                                  reference=f"{item.end_to_end_id} {reason}".strip(),
                                  detail={"payable_id": item.payable_id, "end_to_end_id": item.end_to_end_id,
                                          "reason": reason}, created_by=created_by)
    return booked.event_id


def _reopen_host_credit(conn: Connection, tenant_id: str, item: Any, reason: str, on: date, created_by: str) -> str:
    """The host is owed the amount again: the journal moves it back to the partner payable; an
    operator pays it with a new payable once the partner's account is right."""
    _post_host_payouts(conn, tenant_id, [item], "host_payout_return", on, "Return")
    return f"{item.id}:return"


# what a returned transfer gives back, per kind of payable (a refund: the credit it consumed; a
# host credit: the partner payable)
_REOPEN = {"refund": _reopen_refund, "host_credit": _reopen_host_credit}


def record_transfer_return(conn: Connection, tenant_id: str, item: Any, *, reason: str, on: date,
                           created_by: str = "system") -> str:
    """Our transfer came back: item and payable are returned and what the payable consumed is open
    again (a refund's credit). Once: a second report of the same return books nothing. Returns
    the receivable event id ("" when nothing was booked)."""
    if item.status == "returned":
        return ""
    event_id = _REOPEN[item.kind](conn, tenant_id, item, reason, on, created_by)
    conn.execute(update(payout_item).where(payout_item.c.id == item.id).values(status="returned"))
    conn.execute(update(payable).where(payable.c.id == item.payable_id).values(
        status="returned", return_reason=reason[:10], updated_at=utcnow()))
    return event_id


# ------------------------------------------------------------------ monthly payout schedule
def payout_day(conn: Connection, tenant_id: str) -> int | None:
    """The day of the month the schedule starts the tenant's payout runs (None: on demand only)."""
    t = payout_schedule.c
    row = conn.execute(select(t.day_of_month).where(t.tenant_id == tenant_id)).first()
    return int(row.day_of_month) if row is not None and row.day_of_month is not None else None


def set_payout_day(conn: Connection, tenant_id: str, day_of_month: int | None, by: str) -> None:
    if day_of_month is not None and not 1 <= day_of_month <= 31:
        raise ValueError(f"a payout day is 1-31, not {day_of_month}")
    t = payout_schedule
    values = {"day_of_month": day_of_month, "updated_by": by, "updated_at": utcnow()}
    if conn.execute(select(t.c.tenant_id).where(t.c.tenant_id == tenant_id)).first() is None:
        conn.execute(insert(t).values(tenant_id=tenant_id, **values))
    else:
        conn.execute(t.update().where(t.c.tenant_id == tenant_id).values(**values))


@dataclass(frozen=True)
class DueRun:
    tenant_id: str
    creditor_account_id: str
    as_of: date  # the tenant's local day of the round
    month: str  # YYYY-MM: one scheduled run per account and month


def due_scheduled_runs(conn: Connection, at: datetime) -> list[DueRun]:
    """One round of the payout schedule at ``at``: for every tenant with a payout day that has come
    this month (in the tenant's time zone; a day past the month's end is its last day), per
    currency with ``requested`` payables the tenant's oldest creditor account in it. The caller
    starts one run per account and month (its workflow id names the month), so a later round of
    the same month finds the run there and a round that missed the day catches up."""
    import calendar
    from zoneinfo import ZoneInfo

    from store.models import Tenant

    t = Tenant.__table__  # type: ignore[attr-defined]
    s = payout_schedule.c
    tenants = conn.execute(select(s.tenant_id, s.day_of_month, t.c.timezone).join(t, t.c.id == s.tenant_id)
                           .where(s.day_of_month.is_not(None)).order_by(s.tenant_id)).all()
    due: list[DueRun] = []
    for tenant_id, day, tz in tenants:
        try:
            today = at.astimezone(ZoneInfo(tz or "UTC")).date()
        except (KeyError, ValueError):
            today = at.date()
        if today.day < min(int(day), calendar.monthrange(today.year, today.month)[1]):
            continue
        c, p = creditor_account.c, payable.c
        waiting = select(p.id).where(p.tenant_id == tenant_id, p.status == "requested", p.currency == c.currency)
        seen: set[str] = set()  # several accounts in one currency: the oldest pays (one run claims them all)
        for acct, currency in conn.execute(select(c.id, c.currency).where(c.tenant_id == tenant_id, waiting.exists())
                                           .order_by(c.created_at, c.id)):
            if currency not in seen:
                seen.add(currency)
                due.append(DueRun(tenant_id, str(acct), today, today.strftime("%Y-%m")))
    return due


def run_exists(conn: Connection, tenant_id: str, workflow_id: str) -> bool:
    return _runs.by_workflow(conn, tenant_id, workflow_id) is not None
