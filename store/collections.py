"""SEPA direct debit in the database: the tenant's creditor accounts, the mandates of billing
accounts, collection runs, the items each run collects and the archived pain.008 files.

Mandates and contracts: the mandate row is what collections use. A contract that carries mandate
fields (``mandate_reference``, ``mandate_signed_on``, ``debtor_iban``) creates its account's
mandate under the creditor account a run collects for, and keeps it in sync: a contract whose IBAN
or reference changed amends the mandate (the next collection carries the amendment fields). A
mandate made through the API needs no contract.

The billing hand-over (``schedule_invoice``) marks a direct-debit invoice's open item as scheduled
(``collection_schedule``): collected on the date and at most at the amount its invoice notified
the customer of (``prenotification``; the documents print the same), which the next run honours.
Which items a run takes (lead time, minimum amount) and what a returned debit costs the customer
come from the ``payments`` block of the tenant's ruleset version in force (``payments_policy``),
else from the creditor account's settings.

A run never puts an item into two files: ``collection_item`` has a unique index on the open item
among rows that are still live (proposed, submitted, collected), so a second run, a retried
activity or a crashed worker that starts over cannot claim an item another run holds. The file is
built again at approval from the items still open at their proposed amount; an item paid, credited
or changed in the meantime is dropped (its pre-notified amount is no longer true).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
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

from runtime.bank.identifiers import iban_and_bic
from runtime.bank.pain008 import (
    ATTENTION_REASONS,
    CollectionTx,
    Creditor,
    build_pain008,
    end_to_end_id,
    mandate_expired,
    sequence_after_return,
    sequence_after_submission,
)
from runtime.bank.payments import PaymentsPolicy, prenotified_date
from runtime.money import ZERO
from store import receivables as R
from store.billing import driver_insert, in_values
from store.gcpause import paused_gc
from store.models import BillingAccount, Contract, Customer, metadata
from store.sepa_runs import run_tables
from store.types import ExactDecimal, UTCDateTime, new_id, utcnow

__all__ = [
    "LIVE_STATUSES",
    "Prenotification",
    "account_mandates",
    "active_mandate",
    "collection_file",
    "collection_for_end_to_end",
    "collection_item",
    "collection_run",
    "collection_schedule",
    "creditor_account",
    "creditor_account_exists",
    "creditor_accounts",
    "file_row",
    "file_sha256",
    "gather",
    "insert_creditor_account",
    "mandate",
    "mandate_reference_taken",
    "mandate_row",
    "payments_policy",
    "prenotification",
    "record_return",
    "reject_run",
    "resolve_attention",
    "revoke_mandate",
    "run_row",
    "runs",
    "schedule_invoice",
    "schedule_invoices",
    "submit_run",
    "submitted_collections",
    "sync_mandates_from_contracts",
]

LIVE_STATUSES = ("proposed", "submitted", "collected")
_live = "status IN ('proposed', 'submitted', 'collected')"

creditor_account = Table(
    "sepa_creditor_account", metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("name", String(70), nullable=False),
    Column("iban", String(34), nullable=False),
    Column("bic", String(11), nullable=False),
    Column("creditor_id", String(35), nullable=False),  # SEPA creditor identifier (AT-02)
    Column("currency", String(3), nullable=False),
    Column("lead_time_days", Integer(), nullable=False),  # collect items due within this many days
    Column("pain_version", String(20), nullable=False),  # pain.008.001.08 | pain.008.001.02
    # the bank's fee on a return passed on to the customer (a ``return_charge`` entry on the item)
    # or absorbed, where the ruleset's ``payments`` block has no ``return charge`` for the reason
    Column("pass_return_charges", Boolean(), nullable=False),  # when the payments policy does not say
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("tenant_id", "iban", name="uq_sepa_creditor_iban"),
)

mandate = Table(
    "sepa_mandate", metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("creditor_account_id", String(40), ForeignKey("sepa_creditor_account.id"), nullable=False),
    Column("account_id", String(40), nullable=False),  # the billing account it debits for
    Column("reference", String(35), nullable=False),
    Column("signed_on", Date(), nullable=False),
    Column("debtor_name", String(70), nullable=False),
    Column("iban", String(34), nullable=False),
    Column("bic", String(11), nullable=False),
    Column("scheme", String(4), nullable=False),  # CORE | B2B
    Column("status", String(20), nullable=False),  # active | revoked | expired | needs_attention
    Column("sequence", String(4), nullable=False),  # the next collection's: FRST | RCUR | OOFF | FNAL
    Column("original_reference", String(35), nullable=False),  # pending amendment ("" when none)
    Column("original_iban", String(34), nullable=False),
    Column("last_collection_on", Date(), nullable=True),
    Column("attention_reason", String(200), nullable=False),
    Column("source", String(20), nullable=False),  # api | contract
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("tenant_id", "creditor_account_id", "reference", name="uq_sepa_mandate_reference"),
    Index("ix_sepa_mandate_account", "tenant_id", "account_id"),
)

_runs = run_tables(metadata, "collection", Column("skipped", JSON(), nullable=False),  # accounts left out, with why
                   "cfl")
collection_run = _runs.run

collection_item = Table(
    "collection_item", metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("run_id", String(40), ForeignKey("collection_run.id"), nullable=False),
    Column("item_id", String(40), ForeignKey("receivable_item.id"), nullable=False),
    Column("account_id", String(40), nullable=False),
    Column("mandate_id", String(40), ForeignKey("sepa_mandate.id"), nullable=False),
    Column("number", String(40), nullable=False),
    Column("end_to_end_id", String(35), nullable=False),
    Column("amount", ExactDecimal(), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("sequence", String(4), nullable=False),
    Column("collection_date", Date(), nullable=False),
    Column("original_reference", String(35), nullable=False),
    Column("original_iban", String(34), nullable=False),
    # proposed | submitted | collected | returned | dropped | rejected
    Column("status", String(20), nullable=False),
    Column("return_reason", String(10), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("tenant_id", "end_to_end_id", name="uq_collection_item_e2e"),
    Index("uq_collection_item_live", "tenant_id", "item_id", unique=True,
          sqlite_where=text(_live), postgresql_where=text(_live)),
    Index("ix_collection_item_run", "run_id"),
    Index("ix_collection_item_item", "tenant_id", "item_id"),
)

collection_file = _runs.file

# the billing hand-over's mark on a direct-debit invoice's open item: collect it on the date the
# invoice notified, never more than it notified (one row per item, written once)
collection_schedule = Table(
    "collection_schedule", metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("item_id", String(40), ForeignKey("receivable_item.id"), nullable=False),
    Column("invoice_id", String(40), nullable=False),
    Column("account_id", String(40), nullable=False),
    Column("mandate_id", String(40), ForeignKey("sepa_mandate.id"), nullable=False),
    Column("collection_date", Date(), nullable=False),
    Column("amount", ExactDecimal(), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("tenant_id", "item_id", name="uq_collection_schedule_item"),
)

_account = BillingAccount.__table__  # type: ignore[attr-defined]
_contract = Contract.__table__  # type: ignore[attr-defined]
_customer = Customer.__table__  # type: ignore[attr-defined]


def _now() -> datetime:
    return utcnow()


# ------------------------------------------------------------------ mandates
def sync_mandates_from_contracts(conn: Connection, tenant_id: str, creditor_account_id: str,
                                 account_id: str | None = None, *, account_ids: Sequence[str] | None = None) -> int:
    """Create or amend the mandates the tenant's active direct-debit contracts describe (see the
    module docstring), of one billing account if given (or of ``account_ids``); returns how many
    rows it created or changed."""
    stmt = (select(_contract.c.account_id, _contract.c.mandate_reference, _contract.c.mandate_signed_on,
                   _contract.c.mandate_sequence, _contract.c.debtor_iban, _customer.c.name, _contract.c.created_at,
                   _contract.c.id)
            .join(_customer, _customer.c.id == _contract.c.customer_id)
            .where(_contract.c.tenant_id == tenant_id, _contract.c.status == "active",
                   _contract.c.payment_method == "sepa_direct_debit", _contract.c.mandate_reference != "",
                   _contract.c.debtor_iban != "", _contract.c.mandate_signed_on.is_not(None)))
    if account_id is not None:
        stmt = stmt.where(_contract.c.account_id == account_id)
    if account_ids is not None:
        rows = []
        for cond in in_values(conn, _contract.c.account_id, account_ids):
            rows += conn.execute(stmt.where(cond)).all()
        rows.sort(key=lambda r: (r.created_at, r.id))
    else:
        rows = conn.execute(stmt.order_by(_contract.c.created_at, _contract.c.id)).all()
    if not rows:
        return 0
    # what the loop below asks of each contract, read once: the newest contract mandate of each
    # account and the references in use under this creditor account
    newest: dict[str, Any] = {}
    references: set[str] = set()
    for m in conn.execute(select(mandate).where(mandate.c.tenant_id == tenant_id,
                                                mandate.c.creditor_account_id == creditor_account_id)
                          .order_by(mandate.c.created_at.desc())):
        references.add(m.reference)
        if m.source == "contract":
            newest.setdefault(m.account_id, m)
    changed = 0
    for r in rows:
        existing = newest.get(r.account_id)
        if existing is not None and existing.reference == r.mandate_reference and existing.iban == "".join(
                r.debtor_iban.split()).upper():
            continue  # in sync (the mandate's IBAN was checked when it was written)
        try:
            iban, bic = iban_and_bic(r.debtor_iban)
        except ValueError:
            continue  # the contract API validates IBANs; an old row with a bad one is not collected
        if existing is None:
            if r.mandate_reference in references:
                continue  # made through the API already
            seq = r.mandate_sequence if r.mandate_sequence in ("RCUR", "OOFF") else "FRST"
            mid = insert_mandate(conn, tenant_id, creditor_account_id, r.account_id, r.mandate_reference,
                                 r.mandate_signed_on, r.name, iban, bic, "CORE", seq, source="contract")
            changed += 1
        elif existing.reference != r.mandate_reference or existing.iban != iban:
            amend_mandate(conn, existing, reference=r.mandate_reference, iban=iban, bic=bic)
            references.discard(existing.reference)  # unique per creditor account: no other mandate has it
            mid = existing.id
            changed += 1
        else:
            continue
        # another contract of the same account sees this row as it is now (rare: read it back)
        newest[r.account_id] = conn.execute(select(mandate).where(mandate.c.id == mid)).one()
        references.add(r.mandate_reference)
    return changed


def insert_mandate(conn: Connection, tenant_id: str, creditor_account_id: str, account_id: str, reference: str,
                   signed_on: date, debtor_name: str, iban: str, bic: str, scheme: str, sequence: str = "FRST",
                   source: str = "api") -> str:
    mid = new_id("mdt")
    now = _now()
    conn.execute(insert(mandate).values(
        id=mid, tenant_id=tenant_id, creditor_account_id=creditor_account_id, account_id=account_id,
        reference=reference, signed_on=signed_on, debtor_name=debtor_name[:70], iban=iban, bic=bic, scheme=scheme,
        status="active", sequence=sequence, original_reference="", original_iban="", last_collection_on=None,
        attention_reason="", source=source, created_at=now, updated_at=now))
    return mid


def amend_mandate(conn: Connection, row: Any, *, reference: str | None = None, iban: str | None = None,
                  bic: str | None = None, debtor_name: str | None = None, scheme: str | None = None) -> None:
    """Change a mandate; a new reference or IBAN is an amendment the next collection reports
    (the first values since the last submitted collection are kept as the originals)."""
    values: dict[str, Any] = {"updated_at": _now()}
    if reference is not None and reference != row.reference:
        values["reference"] = reference
        if not row.original_reference:
            values["original_reference"] = row.reference
    if iban is not None and iban != row.iban:
        values["iban"] = iban
        if not row.original_iban:
            values["original_iban"] = row.iban
        values["bic"] = bic or ""
        if row.status == "needs_attention" and row.attention_reason.startswith("AC04"):
            values.update(status="active", attention_reason="")  # a new account fixes "account closed"
    elif bic is not None:
        values["bic"] = bic
    if debtor_name is not None:
        values["debtor_name"] = debtor_name[:70]
    if scheme is not None:
        values["scheme"] = scheme
    conn.execute(update(mandate).where(mandate.c.id == row.id).values(**values))


# ------------------------------------------------------------------ the payments policy
def payments_policy(conn: Connection, tenant_id: str, at: datetime | date | None = None, *,
                    version_id: str | None = None) -> PaymentsPolicy | None:
    """The ``payments`` block of the ruleset version ``version_id``, else of the tenant's version
    in force at ``at`` (a day: its end); None when there is none (callers fall back to the
    creditor account's settings). Compiled through the one compile cache."""
    from dsl.compiler import compile_ruleset
    from store.cycle import ruleset_in_force

    rv = metadata.tables["ruleset_version"]
    if version_id:
        row = conn.execute(select(rv.c.id, rv.c.source, rv.c.dsl_name).where(rv.c.id == version_id)).first()
    else:
        when = at if isinstance(at, datetime) else (
            datetime.combine(at, time.max, UTC) if at is not None else _now())
        row = ruleset_in_force(conn, tenant_id, when)
    if row is None:
        return None
    compiled = compile_ruleset(row.source, f"{row.dsl_name or row.id}.evb").ruleset
    return compiled.policies.payments_named() if compiled is not None else None


def active_mandate(conn: Connection, tenant_id: str, account_id: str, currency: str, *, sync: bool = True) -> Any:
    """The account's newest active mandate under a creditor account in ``currency`` (a contract
    that describes one is synced first unless ``sync`` is False), or None."""
    creds = conn.execute(select(creditor_account.c.id).where(
        creditor_account.c.tenant_id == tenant_id, creditor_account.c.currency == currency)
        .order_by(creditor_account.c.created_at, creditor_account.c.id)).all()
    for c in creds if sync else ():
        sync_mandates_from_contracts(conn, tenant_id, c.id, account_id)
    if not creds:
        return None
    newest: dict[str, Any] = {}
    for m in conn.execute(select(mandate).where(
            mandate.c.tenant_id == tenant_id, mandate.c.account_id == account_id,
            mandate.c.creditor_account_id.in_([c.id for c in creds]))
            .order_by(mandate.c.created_at.desc(), mandate.c.id)).all():
        newest.setdefault(m.creditor_account_id, m)  # what a run of that creditor account would use
    for c in creds:
        m = newest.get(c.id)
        if m is not None and m.status == "active":
            return m
    return None


@dataclass(frozen=True, slots=True)
class Prenotification:
    """What a direct-debit invoice tells the customer: the debit's day and amount."""

    collection_date: date
    amount: Decimal
    currency: str


def prenotification(conn: Connection, tenant_id: str, inv: Any) -> Prenotification:
    """The debit notice of invoice ``inv`` (its row): its gross amount, on its due date but no
    sooner after its issue than the payments policy of its ruleset version allows. The invoice
    document prints this; the hand-over schedules the collection by it."""
    policy = payments_policy(conn, tenant_id, version_id=inv.ruleset_version_id) if inv.ruleset_version_id else None
    days = policy.pre_notification_days if policy is not None else None
    return Prenotification(prenotified_date(inv.due_date, inv.issue_date, days), Decimal(inv.gross_total),
                           inv.currency)


def schedule_invoice(conn: Connection, tenant_id: str, invoice_id: str) -> tuple[str, str]:
    """The billing hand-over of a finalized invoice to collection: (status, detail).

    ``scheduled``: the account pays by direct debit with an active mandate; its open item is
    marked for the run that collects on the pre-notified date (written once: a retry reads it
    back). ``awaiting_transfer``: it pays by bank transfer or on invoice (or has no usable
    mandate); ``awaiting_payment``: by card; ``nothing_due``: a credit note, or nothing open."""
    from store.billing import invoice

    inv = conn.execute(select(invoice).where(invoice.c.tenant_id == tenant_id, invoice.c.id == invoice_id)).first()
    if inv is None or inv.status != "finalized":
        return "failed", f"invoice {invoice_id} is not finalized"
    if inv.kind != "invoice":
        return "nothing_due", f"{inv.number} is a {inv.kind.replace('_', ' ')}: nothing to collect"
    item = conn.execute(select(R.receivable_item.c.id).where(
        R.receivable_item.c.tenant_id == tenant_id, R.receivable_item.c.invoice_id == invoice_id)).first()
    done = conn.execute(select(collection_schedule).where(
        collection_schedule.c.tenant_id == tenant_id, collection_schedule.c.invoice_id == invoice_id)).first()
    if done is not None:
        return "scheduled", _scheduled_text(inv.number, done.amount, done.currency, done.collection_date)
    [state] = R.item_states(conn, tenant_id, item_ids=[item.id]) if item is not None else [None]
    if state is None or state.open <= 0:
        return "nothing_due", f"{inv.number}: nothing open"
    method = _payment_method(conn, tenant_id, inv)
    m = active_mandate(conn, tenant_id, inv.account_id, inv.currency) if method == "sepa_direct_debit" else None
    if m is None:
        owed = f"{format(state.open, 'f')} {inv.currency}, due {inv.due_date.isoformat()}"
        if method == "card":  # a payment provider takes it (the console issue adds one)
            return "awaiting_payment", f"{inv.number}: awaiting card payment of {owed}"
        why = "" if method != "sepa_direct_debit" else " (direct debit without an active mandate)"
        return "awaiting_transfer", f"{inv.number}: awaiting transfer of {owed}{why}"
    pre = prenotification(conn, tenant_id, inv)
    amount = min(pre.amount, state.open)  # a credit used against it lowers what is debited, never raises it
    conn.execute(insert(collection_schedule).values(
        id=new_id("csc"), tenant_id=tenant_id, item_id=item.id, invoice_id=invoice_id, account_id=inv.account_id,
        mandate_id=m.id, collection_date=pre.collection_date, amount=amount, currency=inv.currency,
        created_at=_now()))
    return "scheduled", _scheduled_text(inv.number, amount, inv.currency, pre.collection_date)


def schedule_invoices(conn: Connection, tenant_id: str, invs: Sequence[Any]) -> None:
    """``schedule_invoice`` for many finalized invoices (their rows) in one transaction, set-based:
    their items, schedules written before, open amounts, contracts' payment methods and the
    direct-debit accounts' mandates are each read once for all of them, and the schedules written
    in one insert. The same outcome per invoice as ``schedule_invoice`` (a billing run's batch)."""
    invs = [i for i in invs if i.status == "finalized" and i.kind == "invoice"]
    if not invs:
        return
    ri, cs = R.receivable_item, collection_schedule
    ids = [i.id for i in invs]
    items: dict[str, str] = {}
    done: set[str] = set()
    for cond in in_values(conn, ri.c.invoice_id, ids):
        items.update((r.invoice_id, r.id) for r in conn.execute(select(ri.c.invoice_id, ri.c.id).where(
            ri.c.tenant_id == tenant_id, cond)))
    for cond in in_values(conn, cs.c.invoice_id, ids):
        done.update(conn.execute(select(cs.c.invoice_id).where(cs.c.tenant_id == tenant_id, cond)).scalars())
    todo = [i for i in invs if i.id not in done and i.id in items]
    states = {s.id: s for s in R.item_states(conn, tenant_id, item_ids=[items[i.id] for i in todo])} if todo else {}
    todo = [i for i in todo if items[i.id] in states and states[items[i.id]].open > 0]
    if not todo:
        return
    accounts = sorted({i.account_id for i in todo})
    methods: dict[str, str] = {}
    for cond in in_values(conn, _contract.c.account_id, accounts):
        for r in conn.execute(select(_contract.c.account_id, _contract.c.payment_method).where(
                _contract.c.tenant_id == tenant_id, cond)
                .order_by((_contract.c.status == "active").desc(), _contract.c.start_date.desc())):
            methods.setdefault(r.account_id, str(r.payment_method))
    policies: dict[str, PaymentsPolicy | None] = {}

    def policy(inv: Any) -> PaymentsPolicy | None:
        v = inv.ruleset_version_id or ""
        if v not in policies:
            policies[v] = payments_policy(conn, tenant_id, version_id=v) if v else None
        return policies[v]

    debit = []
    for inv in todo:
        method = methods.get(inv.account_id)
        if method is None:
            pol = policy(inv)
            method = (pol.method if pol is not None else None) or "bank_transfer"
        if method == "sepa_direct_debit":
            debit.append(inv)
    rows = []
    for currency in sorted({i.currency for i in debit}):
        mine = [i for i in debit if i.currency == currency]
        mandates = _active_mandates(conn, tenant_id, sorted({i.account_id for i in mine}), currency)
        for inv in mine:
            m = mandates.get(inv.account_id)
            if m is None:
                continue
            pol = policy(inv)
            on = prenotified_date(inv.due_date, inv.issue_date, pol.pre_notification_days if pol is not None else None)
            amount = min(Decimal(inv.gross_total), states[items[inv.id]].open)
            rows.append((new_id("csc"), tenant_id, items[inv.id], inv.id, inv.account_id, m.id, on, amount,
                         inv.currency, _now()))
    driver_insert(conn, cs, ("id", "tenant_id", "item_id", "invoice_id", "account_id", "mandate_id",
                             "collection_date", "amount", "currency", "created_at"), rows)


def _active_mandates(conn: Connection, tenant_id: str, account_ids: Sequence[str], currency: str) -> dict[str, Any]:
    """``active_mandate`` of many accounts in ``currency`` (contracts' mandates synced first)."""
    creds = [c.id for c in conn.execute(select(creditor_account.c.id).where(
        creditor_account.c.tenant_id == tenant_id, creditor_account.c.currency == currency)
        .order_by(creditor_account.c.created_at, creditor_account.c.id))]
    if not creds:
        return {}
    for c in creds:
        sync_mandates_from_contracts(conn, tenant_id, c, account_ids=account_ids)
    newest: dict[tuple[str, str], Any] = {}
    for cond in in_values(conn, mandate.c.account_id, account_ids):
        for m in conn.execute(select(mandate).where(mandate.c.tenant_id == tenant_id, cond,
                                                    mandate.c.creditor_account_id.in_(creds))
                              .order_by(mandate.c.created_at.desc(), mandate.c.id)):
            newest.setdefault((m.account_id, m.creditor_account_id), m)
    out = {}
    for a in account_ids:
        for c in creds:
            m = newest.get((a, c))
            if m is not None and m.status == "active":
                out[a] = m
                break
    return out


def _scheduled_text(number: str, amount: Decimal, currency: str, on: date) -> str:
    return f"{number}: direct debit of {format(amount, 'f')} {currency} scheduled for {on.isoformat()}"


def _payment_method(conn: Connection, tenant_id: str, inv: Any) -> str:
    """The account's contract says how it pays (the one the invoice document reads); without a
    contract the payments policy's ``method``, else bank transfer."""
    ct = conn.execute(select(_contract.c.payment_method).where(
        _contract.c.account_id == inv.account_id, _contract.c.tenant_id == tenant_id)
        .order_by((_contract.c.status == "active").desc(), _contract.c.start_date.desc()).limit(1)).first()
    if ct is not None:
        return str(ct.payment_method)
    policy = payments_policy(conn, tenant_id, version_id=inv.ruleset_version_id) if inv.ruleset_version_id else None
    return (policy.method if policy is not None else None) or "bank_transfer"


# ------------------------------------------------------------------ runs
@dataclass(frozen=True, slots=True)
class Gathered:
    run_id: str
    status: str
    items: int
    total: Decimal
    currency: str
    skipped: list[dict[str, str]]


def _gathered(run: Any) -> Gathered:
    return Gathered(run.id, run.status, run.items, run.total, run.currency, list(run.skipped or []))


def _history(conn: Connection, tenant_id: str, item_ids: Sequence[str]) -> tuple[set[str], dict[str, int]]:
    """For ``item_ids``: which are live in a collection, and how many collection rows each has (its
    attempts so far), asked in one statement (PostgreSQL) or chunks of ids (SQLite)."""
    live: set[str] = set()
    attempts: dict[str, int] = {}
    ci = collection_item.c
    for among in in_values(conn, ci.item_id, item_ids):
        for item_id, status in conn.execute(select(ci.item_id, ci.status).where(ci.tenant_id == tenant_id,
                                                                                among)).all():
            attempts[item_id] = attempts.get(item_id, 0) + 1
            if status in LIVE_STATUSES:
                live.add(item_id)
    return live, attempts


_ITEM_COLUMNS = ("id", "tenant_id", "run_id", "item_id", "account_id", "mandate_id", "number", "end_to_end_id",
                 "amount", "currency", "sequence", "collection_date", "original_reference", "original_iban", "status",
                 "return_reason", "created_at")


def gather(conn: Connection, tenant_id: str, creditor_account_id: str, workflow_id: str, as_of: date,
           started_by: str, check_at: datetime | None = None) -> Gathered:
    """The run of ``workflow_id`` (created once): its proposed items are the direct-debit items
    of accounts with a usable mandate, open, due within the lead time (the payments policy's, else
    the creditor account's), at least the policy's minimum amount, and not live in another
    collection. Each is proposed at what is open on it, collected on the later of its pre-notified
    date (the hand-over's schedule, else its due date) and ``as_of`` + 1 day; a scheduled item
    whose open amount grew beyond what was notified waits (it needs a new notice). A retried call
    returns the first answer.

    With ``check_at``, the file as it would go out (created then) is built and checked against
    the XSD before anything is written: a value the XSD refuses raises ``Pain008Error``.

    Set-based: one read of the mandates, one of the due items with their entries, one of the
    items' collection history (``in_values``: chunks of ids on SQLite), one bulk insert."""
    with paused_gc():  # a big run builds millions of short-lived objects: see store.gcpause
        return _gather(conn, tenant_id, creditor_account_id, workflow_id, as_of, started_by, check_at)


def _gather(conn: Connection, tenant_id: str, creditor_account_id: str, workflow_id: str, as_of: date,
            started_by: str, check_at: datetime | None) -> Gathered:
    run = _runs.by_workflow(conn, tenant_id, workflow_id)
    if run is not None:
        if check_at is not None and run.status == "awaiting_approval":
            preview(conn, tenant_id, run.id, check_at)
        return _gathered(run)
    cred = conn.execute(select(creditor_account).where(creditor_account.c.tenant_id == tenant_id,
                                                       creditor_account.c.id == creditor_account_id)).one()
    sync_mandates_from_contracts(conn, tenant_id, creditor_account_id)
    run_id = new_id("col")
    now = _now()
    conn.execute(insert(collection_run).values(
        id=run_id, tenant_id=tenant_id, creditor_account_id=creditor_account_id, workflow_id=workflow_id,
        status="building", as_of=as_of, pain_version=cred.pain_version, message_id=run_id[:35], items=0,
        total=ZERO, currency=cred.currency, skipped=[], file_id=None, started_by=started_by, decided_by="",
        decision_reason="", created_at=now, decided_at=None))
    policy = payments_policy(conn, tenant_id, as_of)
    lead = policy.lead_time_days if policy is not None and policy.lead_time_days is not None else cred.lead_time_days
    minimum = policy.minimum if policy is not None and policy.minimum is not None else ZERO
    horizon = as_of + timedelta(days=lead)
    skipped: list[dict[str, str]] = []
    schedules = {r.item_id: r for r in conn.execute(select(collection_schedule).where(
        collection_schedule.c.tenant_id == tenant_id, collection_schedule.c.currency == cred.currency)).all()}
    mandates = conn.execute(select(mandate).where(mandate.c.tenant_id == tenant_id,
                                                  mandate.c.creditor_account_id == creditor_account_id)
                            .order_by(mandate.c.account_id, mandate.c.created_at.desc())).all()
    by_account: dict[str, Any] = {}
    for m in mandates:
        by_account.setdefault(m.account_id, m)  # the newest mandate of each account
    usable: dict[str, Any] = {}
    expired: list[str] = []
    for account_id, m in sorted(by_account.items()):
        if m.status == "active" and mandate_expired(m.signed_on, m.last_collection_on, as_of):
            expired.append(m.id)
            skipped.append({"account_id": account_id, "mandate_id": m.id, "reason": "mandate expired (36 months "
                            "without a collection)"})
        elif m.status != "active":
            skipped.append({"account_id": account_id, "mandate_id": m.id, "reason": f"mandate {m.status}"
                            + (f": {m.attention_reason}" if m.attention_reason else "")})
        else:
            usable[account_id] = m
    for among in in_values(conn, mandate.c.id, expired):
        conn.execute(update(mandate).where(among).values(status="expired", updated_at=now))
    # a scheduled item's pre-notified date is never before its due date: the items due within the
    # horizon are all the candidates
    due: dict[str, list[R.ItemState]] = {}
    for st in R.open_invoice_items_due(conn, tenant_id, cred.currency, horizon):
        if st.account_id in usable:
            due.setdefault(st.account_id, []).append(st)  # by due date, then id
    live, attempts = _history(conn, tenant_id, [st.id for states in due.values() for st in states])
    rows: list[tuple[Any, ...]] = []
    total = ZERO
    first_day = as_of + timedelta(days=1)
    for account_id in sorted(due):
        m = usable[account_id]
        for st in due[account_id]:
            tried = attempts.get(st.id, 0)
            # the notice was for the first debit; a later one goes by the due date
            sched = schedules.get(st.id) if not tried else None
            on = sched.collection_date if sched is not None else st.due_date
            if on > horizon or st.id in live:
                continue  # not yet due for collection, or in another collection: never in two files
            if st.open < minimum:
                skipped.append({"account_id": account_id, "mandate_id": m.id, "reason": f"{st.number}: "
                                f"{format(st.open, 'f')} open, below the payments policy's minimum {minimum}"})
                continue
            if sched is not None and st.open > sched.amount:
                skipped.append({"account_id": account_id, "mandate_id": m.id, "reason": f"{st.number}: "
                                f"{format(st.open, 'f')} open, more than the {format(sched.amount, 'f')} notified"})
                continue
            rows.append((new_id("cli"), tenant_id, run_id, st.id, account_id, m.id, st.number,
                         end_to_end_id(st.number or st.id, tried + 1), st.open, st.currency,
                         m.sequence, max(on, first_day), m.original_reference, m.original_iban, "proposed",
                         "", now))
            total += st.open
            if m.sequence in ("OOFF", "FNAL"):
                break  # a one-off or final mandate collects one item
    if check_at is not None and rows:
        # the preview from what is about to be written (the same transactions ``preview`` reads back)
        ordered = sorted(rows, key=lambda r: (r[11], r[6], r[0]))
        build_pain008(message_id=run_id[:35], created=check_at, creditor=_creditor(cred), version=cred.pain_version,
                      txs=[_tx(r, usable[r[4]]) for r in ordered])
    driver_insert(conn, collection_item, _ITEM_COLUMNS, rows)
    status = "awaiting_approval" if rows else "empty"
    conn.execute(update(collection_run).where(collection_run.c.id == run_id).values(
        status=status, items=len(rows), total=total, skipped=skipped))
    return Gathered(run_id, status, len(rows), total, cred.currency, skipped)


def _creditor(cred: Any) -> Creditor:
    return Creditor(cred.name, cred.iban, cred.bic, cred.creditor_id)


def _tx(row: tuple[Any, ...], m: Any) -> CollectionTx:
    """The transaction of a ``collection_item`` row (in ``_ITEM_COLUMNS`` order) under mandate ``m``."""
    return CollectionTx(row[7], row[8], row[9], row[11], row[10], m.scheme, m.reference, m.signed_on, m.debtor_name,
                        m.iban, m.bic, row[6], row[12], row[13])


_ORDER = (collection_item.c.collection_date, collection_item.c.number, collection_item.c.id)


def _proposed_txs(conn: Connection, run_id: str) -> list[tuple[str, str, str, CollectionTx]]:
    """The run's proposed items in file order: (row id, item id, mandate id, its transaction), in
    one read with their mandates."""
    ci, m = collection_item.c, mandate.c
    rows = conn.execute(select(ci.id, ci.item_id, ci.mandate_id, ci.end_to_end_id, ci.amount, ci.currency,
                               ci.collection_date, ci.sequence, m.scheme, m.reference, m.signed_on, m.debtor_name,
                               m.iban, m.bic, ci.number, ci.original_reference, ci.original_iban)
                        .join(mandate, m.id == ci.mandate_id)
                        .where(ci.run_id == run_id, ci.status == "proposed").order_by(*_ORDER)).all()
    # by position: a row's attributes by name cost more than building the file
    return [(rid, item_id, mid, CollectionTx(*tx)) for rid, item_id, mid, *tx in rows]


def run_items(conn: Connection, run_id: str, statuses: Sequence[str] | None = None) -> list[Any]:
    stmt = select(collection_item).where(collection_item.c.run_id == run_id)
    if statuses is not None:
        stmt = stmt.where(collection_item.c.status.in_(list(statuses)))
    return list(conn.execute(stmt.order_by(*_ORDER)).all())


def preview(conn: Connection, tenant_id: str, run_id: str, created: datetime) -> bytes:
    """The file as it would be submitted now (built and XSD-checked; nothing stored)."""
    run = _runs.one(conn, tenant_id, run_id)
    cred = conn.execute(select(creditor_account).where(creditor_account.c.id == run.creditor_account_id)).one()
    return build_pain008(message_id=run.message_id, created=created, creditor=_creditor(cred),
                         txs=[tx for *_ids, tx in _proposed_txs(conn, run_id)], version=run.pain_version)


def submit_run(conn: Connection, tenant_id: str, run_id: str, decided_by: str, created: datetime,
               reason: str = "") -> Any:
    """Approve: drop the items no longer open at their proposed amount, build the file from the
    rest, archive it and mark the items submitted, move each mandate's sequence on. Once: a
    retried call returns the run as the first call left it. Set-based: one read of the proposed
    items with their mandates, one of their entries, an update per status and mandate change."""
    with paused_gc():  # see gather
        return _submit_run(conn, tenant_id, run_id, decided_by, created, reason)


def _submit_run(conn: Connection, tenant_id: str, run_id: str, decided_by: str, created: datetime,
                reason: str) -> Any:
    run = _runs.one(conn, tenant_id, run_id)
    if run.status != "awaiting_approval":
        return run
    proposed = _proposed_txs(conn, run_id)
    ci, e, i = collection_item.c, R.receivable_entry.c, R.receivable_item.c
    # what is open on each proposed item now: its entries, read with the item's currency (one read)
    open_now = R.open_of(conn, select(e.item_id, e.kind, e.amount, e.currency, i.currency)
                         .join(collection_item, ci.item_id == e.item_id).join(R.receivable_item, i.id == e.item_id)
                         .where(ci.run_id == run_id, ci.status == "proposed"))
    keep = [p for p in proposed if open_now.get(p[1], ZERO) == p[3].amount]
    kept = {p[0] for p in keep}
    for among in in_values(conn, ci.id, [p[0] for p in proposed if p[0] not in kept]):
        conn.execute(update(collection_item).where(among).values(status="dropped"))
    values: dict[str, Any] = {"decided_by": decided_by, "decision_reason": reason, "decided_at": _now(),
                              "items": len(keep), "total": sum((p[3].amount for p in keep), ZERO)}
    if not keep:
        return _runs.decide(conn, tenant_id, run_id, "empty", **values)
    cred = conn.execute(select(creditor_account).where(creditor_account.c.id == run.creditor_account_id)).one()
    data = build_pain008(message_id=run.message_id, created=created, creditor=_creditor(cred),
                         txs=[tx for *_ids, tx in keep], version=run.pain_version)
    now = _now()
    fid = _runs.archive(conn, tenant_id, run, data, now)
    # what was not dropped above is what the file holds
    conn.execute(update(collection_item).where(ci.run_id == run_id, ci.status == "proposed")
                 .values(status="submitted"))
    # each mandate moves on from its first collection in the file (file order), to the last date;
    # mandates with the same outcome change in one statement
    used: dict[str, tuple[str, date]] = {}
    for _rid, _item, mid, tx in keep:
        seq, last = used.get(mid, (tx.sequence, tx.collection_date))
        used[mid] = (seq, max(last, tx.collection_date))
    outcome: dict[tuple[str, bool, date], list[str]] = {}
    for mid, (seq, last) in used.items():
        nxt, done = sequence_after_submission(seq)
        outcome.setdefault((nxt, done, last), []).append(mid)
    for (nxt, done, last), mids in outcome.items():
        changes: dict[str, Any] = {"sequence": nxt, "original_reference": "", "original_iban": "",
                                   "last_collection_on": last, "updated_at": now}
        if done:
            changes["status"] = "revoked"
        for among in in_values(conn, mandate.c.id, mids):
            conn.execute(update(mandate).where(among).values(**changes))
    return _runs.decide(conn, tenant_id, run_id, "submitted", file_id=fid, **values)


def reject_run(conn: Connection, tenant_id: str, run_id: str, decided_by: str, reason: str) -> Any:
    run = _runs.one(conn, tenant_id, run_id)
    if run.status != "awaiting_approval":
        return run
    conn.execute(update(collection_item).where(collection_item.c.run_id == run_id,
                                               collection_item.c.status == "proposed").values(status="rejected"))
    return _runs.decide(conn, tenant_id, run_id, "rejected", decided_by=decided_by, decision_reason=reason,
                        decided_at=_now())


# ------------------------------------------------------------------ the bank's answer
def submitted_collections(conn: Connection, tenant_id: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """EndToEndId -> (billing account, (item id,)) of our submitted collections, for matching."""
    rows = conn.execute(select(collection_item.c.end_to_end_id, collection_item.c.account_id,
                               collection_item.c.item_id)
                        .where(collection_item.c.tenant_id == tenant_id,
                               collection_item.c.status.in_(("submitted", "collected")))).all()
    return {r.end_to_end_id: (r.account_id, (r.item_id,)) for r in rows}


def collection_for_end_to_end(conn: Connection, tenant_id: str, e2e: str) -> Any:
    if not e2e or e2e == "NOTPROVIDED":
        return None
    return conn.execute(select(collection_item).where(collection_item.c.tenant_id == tenant_id,
                                                      collection_item.c.end_to_end_id == e2e)).first()


def mark_collected(conn: Connection, tenant_id: str, e2e: str) -> None:
    conn.execute(update(collection_item).where(collection_item.c.tenant_id == tenant_id,
                                               collection_item.c.end_to_end_id == e2e,
                                               collection_item.c.status == "submitted").values(status="collected"))


def record_return(conn: Connection, tenant_id: str, ci: Any, *, key: str, booked: Decimal, charges: Decimal | None,
                  reason: str, on: date, created_by: str = "system") -> tuple[str, Decimal]:
    """A return of our collection ``ci``: the item owes the collected amount again (when its credit
    was booked; a return of a collection whose credit never arrived only records the return), plus
    the return charge: what the ``payments`` policy of the ruleset version in force on ``on`` says
    for the reason (a flat amount, the bank's fee or none), else the bank's fee when the creditor
    account passes fees on. The bank's fee is what the bank reports, else what was debited beyond
    the original amount. The mandate's sequence and status follow the rulebook. Returns (the
    receivable event id, the charge)."""
    if ci.status == "returned":
        return "", ZERO  # returned before (a second report of the same return): nothing owed twice
    cred = conn.execute(select(creditor_account).join(mandate, mandate.c.creditor_account_id == creditor_account.c.id)
                        .where(mandate.c.id == ci.mandate_id)).one()
    fee = charges if charges is not None else max(booked - ci.amount, ZERO)
    policy = payments_policy(conn, tenant_id, on)
    rule = policy.return_charge_rule(reason) if policy is not None else None
    if rule is not None:
        charge, source = rule.charge(fee), rule.source
    else:
        charge, source = (fee if cred.pass_return_charges else ZERO), f"creditor account {cred.id}"
    returned = ci.amount if ci.status == "collected" else ZERO
    done = R.book_return(conn, tenant_id, key=key, item_id=ci.item_id, amount=returned, charge=charge,
                         booked_on=on, reference=f"{ci.end_to_end_id} {reason}".strip(),
                         detail={"end_to_end_id": ci.end_to_end_id, "reason": reason, "fee": format(fee, "f"),
                                 "charge": format(charge, "f"), "charge_by": source},
                         created_by=created_by)
    conn.execute(update(collection_item).where(collection_item.c.id == ci.id).values(
        status="returned", return_reason=reason[:10]))
    m = conn.execute(select(mandate).where(mandate.c.id == ci.mandate_id)).one()
    values: dict[str, Any] = {"sequence": sequence_after_return(ci.sequence, m.sequence), "updated_at": _now()}
    if ci.sequence in ("OOFF", "FNAL") and m.status == "revoked":
        values["status"] = "active"  # the one-off or final collection did not happen
    if reason in ATTENTION_REASONS:
        values.update(status="needs_attention", attention_reason=f"{reason}: return of {ci.end_to_end_id}")
    conn.execute(update(mandate).where(mandate.c.id == m.id).values(**values))
    return done.event_id, charge


# ------------------------------------------------------------------ what the API reads and writes
def creditor_accounts(conn: Connection, tenant_id: str) -> list[Any]:
    return list(conn.execute(select(creditor_account).where(creditor_account.c.tenant_id == tenant_id)
                             .order_by(creditor_account.c.created_at, creditor_account.c.id)).all())


def insert_creditor_account(conn: Connection, tenant_id: str, values: dict[str, Any]) -> Any:
    """A new creditor account (``values``: its checked fields), or None when the tenant has one
    with that IBAN already."""
    if conn.execute(select(creditor_account.c.id).where(creditor_account.c.tenant_id == tenant_id,
                                                        creditor_account.c.iban == values["iban"])).first():
        return None
    cid = new_id("cra")
    conn.execute(insert(creditor_account).values(id=cid, tenant_id=tenant_id, created_at=_now(), **values))
    return conn.execute(select(creditor_account).where(creditor_account.c.id == cid)).one()


def mandate_row(conn: Connection, tenant_id: str, mandate_id: str) -> Any:
    return conn.execute(select(mandate).where(mandate.c.tenant_id == tenant_id, mandate.c.id == mandate_id)).first()


def account_mandates(conn: Connection, tenant_id: str, account_id: str) -> list[Any]:
    """A billing account's mandates, newest first."""
    return list(conn.execute(select(mandate).where(mandate.c.tenant_id == tenant_id, mandate.c.account_id == account_id)
                             .order_by(mandate.c.created_at.desc(), mandate.c.id)).all())


def mandate_reference_taken(conn: Connection, tenant_id: str, creditor_account_id: str, reference: str) -> bool:
    """A mandate reference is unique per creditor account."""
    return conn.execute(select(mandate.c.id).where(
        mandate.c.tenant_id == tenant_id, mandate.c.creditor_account_id == creditor_account_id,
        mandate.c.reference == reference)).first() is not None


def resolve_attention(conn: Connection, mandate_id: str) -> None:
    """A mandate flagged by a return (MD01, MD06, AC04) is collected again."""
    conn.execute(update(mandate).where(mandate.c.id == mandate_id, mandate.c.status == "needs_attention")
                 .values(status="active", attention_reason="", updated_at=_now()))


def revoke_mandate(conn: Connection, row: Any, final_collection: bool) -> None:
    """Revoke now, or after one last collection (FNAL) when the mandate collects recurrently."""
    if final_collection and row.sequence == "RCUR" and row.status == "active":
        values: dict[str, Any] = {"sequence": "FNAL"}
    else:
        values = {"status": "revoked"}
    conn.execute(update(mandate).where(mandate.c.id == row.id).values(updated_at=_now(), **values))


def runs(conn: Connection, tenant_id: str, *, status: str | None = None, workflow_id: str | None = None,
         limit: int = 200) -> list[Any]:
    """Collection runs, newest first."""
    return _runs.page(conn, tenant_id, status=status, workflow_id=workflow_id, limit=limit)


run_row = _runs.row
file_row = _runs.file_row
file_sha256 = _runs.file_sha256


def creditor_account_exists(conn: Connection, tenant_id: str, creditor_account_id: str) -> bool:
    return conn.execute(select(creditor_account.c.id).where(
        creditor_account.c.tenant_id == tenant_id, creditor_account.c.id == creditor_account_id)).first() is not None

