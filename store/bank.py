"""Bank statements in the database: the tenant's bank accounts, imported statements and their
entries (one row per transaction: a batch booking is split), and the payers learned from manual
matches. Importing books each matched credit as a payment in ``store.receivables`` under the
entry's identity, so a statement imported twice, or re-delivered under a new message id, or an
entry that a camt.054 reported before the camt.053, is booked once.

An entry's identity is its account's IBAN with the bank's own reference (AcctSvcrRef, else
NtryRef) and the transaction's EndToEndId or position; an entry without any reference is known by
its booking date, amount, direction and text. A statement's identity is its account with its
statement id and sequence number.

An import reads the open items once, keeps them and the match index up to date in memory as it
books (``store.receivables.PaymentBatch``), and writes the bookings and entries in bulk at the end
(``benchmarks/payments.py``: 50,000 entries against 100,000 open items).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
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
    update,
)

from runtime.bank.camt import BankEntry, BankStatement, BankTransaction
from runtime.bank.matching import (
    Match,
    MatchIndex,
    OpenItemRef,
    match_debit,
    match_transaction,
    normalise_name,
)
from store import collections as C
from store import payables as P
from store import receivables as R
from store.billing import driver_insert, in_values
from store.gcpause import paused_gc
from store.models import BillingAccount, metadata
from store.types import ExactDecimal, UTCDateTime, new_id, utcnow

__all__ = [
    "ImportResult",
    "accounts",
    "bank_account",
    "bank_entry",
    "bank_statement",
    "dismiss_entry",
    "entry",
    "import_file",
    "import_statement",
    "list_entries",
    "match_entry_by_hand",
    "payer_link",
    "register_account",
]

bank_account = Table(
    "bank_account", metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("iban", String(34), nullable=False),  # or the bank's other account id
    Column("currency", String(3), nullable=False),
    Column("name", String(200), nullable=False),
    Column("confirmed", Boolean(), nullable=False),  # registered by an operator, or only seen in a statement
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("tenant_id", "iban", name="uq_bank_account_iban"),
)

bank_statement = Table(
    "bank_statement", metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("bank_account_id", String(40), ForeignKey("bank_account.id"), nullable=False),
    Column("identity", String(64), nullable=False),
    Column("format", String(20), nullable=False),
    Column("message_id", String(100), nullable=False),
    Column("statement_id", String(100), nullable=False),
    Column("sequence", String(40), nullable=False),
    Column("file_sha256", String(64), nullable=False),
    Column("opening", ExactDecimal(), nullable=True),
    Column("closing", ExactDecimal(), nullable=True),
    Column("entries", Integer(), nullable=False),
    Column("counts", JSON(), nullable=False),
    Column("warnings", JSON(), nullable=False),
    Column("review", String(200), nullable=False),  # why finance must look at it ("" when nothing)
    Column("created_by", String(40), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("tenant_id", "identity", name="uq_bank_statement_identity"),
)

bank_entry = Table(
    "bank_entry", metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("statement_id", String(40), ForeignKey("bank_statement.id"), nullable=False),
    Column("key", String(64), nullable=False),
    Column("seq", Integer(), nullable=False),
    Column("credit", Boolean(), nullable=False),
    Column("amount", ExactDecimal(), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("booking_date", Date(), nullable=True),
    Column("value_date", Date(), nullable=True),
    Column("bank_ref", String(100), nullable=False),
    Column("end_to_end_id", String(100), nullable=False),
    Column("bank_tx_code", String(40), nullable=False),
    Column("debtor_name", String(200), nullable=False),
    Column("debtor_iban", String(34), nullable=False),
    Column("remittance", String(1000), nullable=False),
    Column("return_reason", String(10), nullable=False),
    Column("status", String(20), nullable=False),  # matched | partially_matched | unmatched | return | other | not_ours
    Column("rule", String(20), nullable=False),
    Column("reason", String(300), nullable=False),
    Column("account_id", String(40), nullable=True),
    Column("event_id", String(40), nullable=True),  # the receivable event it booked
    Column("decided_by", String(40), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("tenant_id", "key", name="uq_bank_entry_key"),
    Index("ix_bank_entry_status", "tenant_id", "status"),
    Index("ix_bank_entry_statement", "statement_id"),
)

payer_link = Table(
    "bank_payer_link", metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("kind", String(10), nullable=False),  # iban | name
    Column("value", String(200), nullable=False),
    Column("account_id", String(40), nullable=False),
    Column("learned_from", String(40), nullable=False),  # the bank entry matched by hand
    Column("created_by", String(40), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("tenant_id", "kind", "value", name="uq_bank_payer_link"),
)

_account = BillingAccount.__table__  # type: ignore[attr-defined]
# the open items a credit can match by reference, amount or payer: invoices and eMSP partners'
# clearing invoices (store.clearing.book_invoice); fees and card charges are paid otherwise
MATCHED_KINDS = ("invoice", "clearing_invoice")

_ENTRY_COLUMNS = ("id", "tenant_id", "statement_id", "key", "seq", "credit", "amount", "currency", "booking_date",
                  "value_date", "bank_ref", "end_to_end_id", "bank_tx_code", "debtor_name", "debtor_iban", "remittance",
                  "return_reason", "status", "rule", "reason", "account_id", "event_id", "decided_by", "created_at")


@dataclass
class ImportResult:
    statement_id: str
    format: str
    entries: int = 0
    matched: int = 0
    partially_matched: int = 0
    unmatched: int = 0
    returns: int = 0
    duplicates: int = 0
    payouts_paid: int = 0  # our credit transfers whose debit this statement shows
    payouts_returned: int = 0  # ... and those sent back
    rules: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, Any]:
        return {"entries": self.entries, "matched": self.matched, "partially_matched": self.partially_matched,
                "unmatched": self.unmatched, "returns": self.returns, "duplicates": self.duplicates,
                "rules": dict(self.rules)}


def _sha(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()


def _account_key(st: BankStatement) -> str:
    return (st.account_iban or st.account_other_id).replace(" ", "").upper()


def entry_key(st: BankStatement, e: BankEntry, tx: BankTransaction, pos: int) -> str:
    """The identity of one transaction of one entry (see the module docstring)."""
    bank_ref = e.account_servicer_ref or e.entry_ref or tx.account_servicer_ref
    if bank_ref:
        return _sha(_account_key(st), bank_ref, tx.end_to_end_id or pos, e.credit)
    return _sha(_account_key(st), e.booking_date, e.amount, e.credit, tx.end_to_end_id, tx.amount,
                "|".join(tx.remittance), tx.debtor_iban, pos)


def _links(conn: Connection, tenant_id: str) -> tuple[dict[str, str], dict[str, str]]:
    """The payers learned from manual matches: (IBAN -> account, normalised name -> account)."""
    ibans: dict[str, str] = {}
    names: dict[str, str] = {}
    for r in conn.execute(select(payer_link.c.kind, payer_link.c.value, payer_link.c.account_id)
                          .where(payer_link.c.tenant_id == tenant_id)).all():
        (ibans if r.kind == "iban" else names)[r.value] = r.account_id
    return ibans, names


@dataclass
class _Books:
    """One currency's open items as a statement import sees them: the payments booked so far (in
    memory until the import flushes them) and the match index, kept up to date after each booking
    instead of being built again."""

    batch: R.PaymentBatch
    index: MatchIndex

    @classmethod
    def load(cls, conn: Connection, tenant_id: str, currency: str,
             links: tuple[dict[str, str], dict[str, str]]) -> _Books:
        batch = R.PaymentBatch(conn, tenant_id, currency)
        items = [OpenItemRef(s.id, s.account_id, s.customer_id, s.number, s.open, s.currency)
                 for s in batch.states.values() if s.open > 0 and s.kind in MATCHED_KINDS]
        # our submitted direct debits: their credit (usually one batch entry with a TxDtls per
        # collection) matches each item by its EndToEndId before any other rule is tried
        return cls(batch, MatchIndex(items, collections=C.submitted_collections(conn, tenant_id),
                                     payer_iban=links[0], payer_name=links[1]))

    def book(self, key: str, m: Match, account: Any, amount: Decimal, on: date, reference: str,
             created_by: str) -> tuple[str, str]:
        """Book a matched credit as ``_book_credit`` does; returns (status, event id)."""
        if account is None or account.currency != self.batch.currency:
            return "unmatched", ""
        booked, before = self.batch.book(key=f"bank:{key}", customer_id=account.customer_id,
                                         account_id=account.id, amount=amount, booked_on=on,
                                         reference=reference[:300], targets=m.item_ids, detail={"rule": m.rule},
                                         created_by=created_by)
        for item, _kind, _amt in booked.entries:
            self.index.update_open(item, self.batch.open[item])
        exact = booked.left == 0 and all(amt == before.get(item) for item, _kind, amt in booked.entries)
        return ("matched" if exact else "partially_matched"), booked.event_id


def _existing(conn: Connection, column: Any, tenant_column: Any, tenant_id: str, keys: Sequence[str]) -> set[str]:
    """Which of ``keys`` are in ``column`` already (one statement on PostgreSQL, chunks on SQLite:
    ``in_values``)."""
    out: set[str] = set()
    for among in in_values(conn, column, keys):
        out.update(r[0] for r in conn.execute(select(column).where(tenant_column == tenant_id, among)).all())
    return out


def _book_credit(conn: Connection, tenant_id: str, key: str, m: Match, amount: Decimal, currency: str,
                 on: date, reference: str, created_by: str) -> tuple[str, str]:
    """Book a matched credit as a payment; returns (status, event id)."""
    acct = conn.execute(select(_account.c.id, _account.c.customer_id, _account.c.currency)
                        .where(_account.c.tenant_id == tenant_id, _account.c.id == m.account_id)).first()
    if acct is None or acct.currency != currency:
        return "unmatched", ""
    open_before = {s.id: s.open for s in R.item_states(conn, tenant_id, account_id=acct.id, currency=currency)}
    booked = R.book_payment(conn, tenant_id, key=f"bank:{key}", customer_id=acct.customer_id, account_id=acct.id,
                            amount=amount, currency=currency, booked_on=on, reference=reference[:300],
                            targets=[i for i in m.item_ids if i in open_before], detail={"rule": m.rule},
                            created_by=created_by)
    # matched: nothing left over and every item it touched is settled; else a partial or an over payment
    exact = booked.left == 0 and all(amt == open_before.get(item) for item, _kind, amt in booked.entries)
    return ("matched" if exact else "partially_matched"), booked.event_id


def import_statement(conn: Connection, tenant_id: str, st: BankStatement, file_sha256: str,
                     created_by: str = "system") -> ImportResult:
    """Import one statement (in the caller's transaction): register its account if unknown, store
    each transaction once, book matched credits. A statement already imported answers with every
    entry counted as a duplicate and changes nothing."""
    identity = _sha(_account_key(st), st.statement_id, st.sequence, st.message_type)
    res = ImportResult("", st.format)
    seen = conn.execute(select(bank_statement.c.id, bank_statement.c.entries).where(
        bank_statement.c.tenant_id == tenant_id, bank_statement.c.identity == identity)).first()
    if seen is not None:
        res.statement_id, res.entries, res.duplicates = seen.id, seen.entries, seen.entries
        return res
    acct_key = _account_key(st)
    acct = conn.execute(select(bank_account).where(bank_account.c.tenant_id == tenant_id,
                                                   bank_account.c.iban == acct_key)).first()
    if acct is None:
        acct_id = new_id("bka")
        conn.execute(insert(bank_account).values(id=acct_id, tenant_id=tenant_id, iban=acct_key,
                                                 currency=st.currency or "EUR", name="", confirmed=False,
                                                 created_at=utcnow()))
        res.warnings.append(f"bank account {acct_key} is not registered: imported, and listed for an operator to "
                            "confirm (GET /bank-accounts)")
    else:
        acct_id = acct.id
        if not acct.confirmed:
            res.warnings.append(f"bank account {acct_key} is still waiting for an operator to confirm it")
    diff = st.balance_difference()
    review = ""
    if diff is not None and diff != 0:
        review = f"balances do not add up: opening {st.opening} + entries != closing {st.closing} (off by {diff})"
        res.warnings.append(review)
    sid = new_id("bst")
    res.statement_id = sid
    conn.execute(insert(bank_statement).values(
        id=sid, tenant_id=tenant_id, bank_account_id=acct_id, identity=identity, format=st.format,
        message_id=st.message_id[:100], statement_id=st.statement_id[:100], sequence=st.sequence[:40],
        file_sha256=file_sha256, opening=st.opening, closing=st.closing, entries=0, counts={}, warnings=[],
        review=review, created_by=created_by, created_at=utcnow()))
    # the statement's transactions with their identities; which of them are known already is
    # asked once for all of them, not once each
    txs = [(e, pos, tx, entry_key(st, e, tx, pos)) for e in st.entries if e.status in ("BOOK", "")
           for pos, tx in enumerate(e.transactions)]  # pending or information only: the booked statement brings them
    keys = [k for *_, k in txs]
    known = _existing(conn, bank_entry.c.key, bank_entry.c.tenant_id, tenant_id, keys)
    booked_before = {k.removeprefix("bank:") for k in _existing(
        conn, R.receivable_event.c.key, R.receivable_event.c.tenant_id, tenant_id, [f"bank:{k}" for k in keys])}
    books: dict[str, _Books] = {}
    links: tuple[dict[str, str], dict[str, str]] | None = None
    accounts: dict[str, Any] | None = None
    transfers: dict[str, str] | None = None
    rows: list[tuple[Any, ...]] = []
    for seq, (e, _pos, tx, key) in enumerate(txs, start=1):
        res.entries += 1
        if key in known:
            res.duplicates += 1
            continue
        known.add(key)
        amount = tx.amount if tx.amount is not None and len(e.transactions) > 1 else e.amount
        currency = tx.currency if len(e.transactions) > 1 else e.currency
        status, rule, reason, account_id, event_id = "other", "", "", None, None
        if e.is_return:
            res.returns += 1
            status, reason = "return", (f"returned: {tx.return_reason} {tx.return_reason_text}".strip()
                                        if tx.return_reason else "returned")
            # one of our collections coming back: found by its EndToEndId whatever the amount
            # (a bank that charges a fee debits the original plus the fee)
            ci = C.collection_for_end_to_end(conn, tenant_id, tx.end_to_end_id)
            if ci is not None:
                for b in books.values():  # what was booked so far goes first: the return reopens it
                    b.batch.flush(conn)
                books.clear()  # open amounts change: read again when next needed
                event_id, fee = C.record_return(
                    conn, tenant_id, ci, key=f"bank:{key}", booked=amount, charges=tx.charges,
                    reason=tx.return_reason, on=e.booking_date or e.value_date or date.today(),
                    created_by=created_by)
                account_id, rule = ci.account_id, "end_to_end_id"
                reason = (f"{reason}; our direct debit {ci.end_to_end_id} ({ci.number}) reopened" + (
                    f", fee {fee} charged" if fee else "")) if event_id else (
                    f"{reason}; our direct debit {ci.end_to_end_id} was returned before: nothing booked")
            elif (tr := P.transfer_for_end_to_end(conn, tenant_id, tx.end_to_end_id)) is not None:
                # one of our credit transfers sent back by the payee's bank: what it paid out is
                # open again (a refund's credit)
                for b in books.values():
                    b.batch.flush(conn)
                books.clear()
                event_id = P.record_transfer_return(conn, tenant_id, tr, reason=tx.return_reason,
                                                    on=e.booking_date or e.value_date or date.today(),
                                                    created_by=created_by) or None
                rule = "end_to_end_id"
                res.payouts_returned += bool(event_id)
                reason = (f"{reason}; our credit transfer {tr.end_to_end_id} ({tr.remittance}) came back, "
                          "its credit is open again") if event_id else (
                    f"{reason}; our credit transfer {tr.end_to_end_id} was returned before: nothing booked")
        elif e.credit:
            if currency not in books:
                links = links or _links(conn, tenant_id)
                books[currency] = _Books.load(conn, tenant_id, currency, links)
            m = match_transaction(e, tx, amount, books[currency].index)
            rule, reason = m.rule, m.reason
            if m.account_id is not None:
                on = e.booking_date or e.value_date or date.today()
                text = " ".join(tx.remittance) or e.additional_info
                if key in booked_before:
                    # booked under this entry's identity before (not through an import): that booking stands
                    books[currency].batch.flush(conn)
                    status, event_id = _book_credit(conn, tenant_id, key, m, amount, currency, on, text, created_by)
                else:
                    if accounts is None:
                        accounts = {a.id: a for a in conn.execute(
                            select(_account.c.id, _account.c.customer_id, _account.c.currency)
                            .where(_account.c.tenant_id == tenant_id)).all()}
                    status, event_id = books[currency].book(key, m, accounts.get(m.account_id), amount, on, text,
                                                            created_by)
                account_id = m.account_id if status != "unmatched" else None
                if m.rule == "end_to_end_id" and event_id:
                    C.mark_collected(conn, tenant_id, tx.end_to_end_id)
            else:
                status = "unmatched"
            if status == "matched":
                res.matched += 1
            elif status == "partially_matched":
                res.partially_matched += 1
            else:
                res.unmatched += 1
            res.rules[rule] = res.rules.get(rule, 0) + (status != "unmatched")
        else:
            # outgoing: one of our credit transfers (refunds, payouts) is paid when its debit shows
            if transfers is None:
                transfers = P.submitted_transfers(conn, tenant_id)
            m = match_debit(e, tx, amount, transfers)
            if m.rule != "none":
                tr = P.transfer_for_end_to_end(conn, tenant_id, tx.end_to_end_id)
                if tr is not None:
                    changed = P.record_paid(conn, tenant_id, tr, e.booking_date or e.value_date or date.today())
                    status, rule = "matched", m.rule
                    reason = m.reason + (f" ({tr.remittance}) paid" if changed else " was marked paid before")
                    res.matched += 1
                    res.payouts_paid += changed
                    res.rules[rule] = res.rules.get(rule, 0) + 1
        rows.append((
            new_id("bke"), tenant_id, sid, key, seq, e.credit, amount, currency, e.booking_date, e.value_date,
            (e.account_servicer_ref or e.entry_ref)[:100], tx.end_to_end_id[:100], e.bank_tx_code[:40],
            tx.debtor_name[:200], tx.debtor_iban.replace(" ", "")[:34],
            " ".join([*tx.creditor_refs, *tx.remittance])[:1000], tx.return_reason[:10], status,
            rule if status != "unmatched" else "", reason[:300], account_id, event_id or None, "", utcnow()))
    for b in books.values():
        b.batch.flush(conn)
    driver_insert(conn, bank_entry, _ENTRY_COLUMNS, rows)
    res.rules = {k: v for k, v in res.rules.items() if v}
    conn.execute(update(bank_statement).where(bank_statement.c.id == sid).values(
        entries=res.entries, counts=res.counts(), warnings=res.warnings))
    return res


def list_entries(conn: Connection, tenant_id: str, *, status: str | None = None, statement_id: str | None = None,
                 after_id: str | None = None, limit: int = 100) -> list[Any]:
    stmt = select(bank_entry).where(bank_entry.c.tenant_id == tenant_id)
    if status:
        stmt = stmt.where(bank_entry.c.status == status)
    if statement_id:
        stmt = stmt.where(bank_entry.c.statement_id == statement_id)
    if after_id:
        stmt = stmt.where(bank_entry.c.id > after_id)
    return list(conn.execute(stmt.order_by(bank_entry.c.id).limit(limit)).all())


def match_entry_by_hand(conn: Connection, tenant_id: str, entry_id: str, account_id: str,
                        item_ids: Sequence[str], user_id: str, learn: bool = True) -> tuple[Any, Any]:
    """Book an unmatched credit entry to the account (paying ``item_ids`` first) and, with
    ``learn``, remember its payer's IBAN (else name) for that account, so the payer's next
    transfer matches by itself. Returns (the entry before, its booking)."""
    row = conn.execute(select(bank_entry).where(bank_entry.c.tenant_id == tenant_id,
                                                bank_entry.c.id == entry_id)).first()
    if row is None:
        raise LookupError(entry_id)
    m = Match("manual", account_id, tuple(item_ids), "matched by hand")
    status, event_id = _book_credit(conn, tenant_id, row.key, m, row.amount, row.currency,
                                    row.booking_date or row.value_date or date.today(), row.remittance, user_id)
    if not event_id:
        raise ValueError("the account is billed in another currency than the entry")
    conn.execute(update(bank_entry).where(bank_entry.c.id == entry_id).values(
        status=status, rule="manual", reason="matched by hand", account_id=account_id, event_id=event_id,
        decided_by=user_id))
    if learn:
        kind, value = ("iban", row.debtor_iban) if row.debtor_iban else ("name", normalise_name(row.debtor_name))
        if value and conn.execute(select(payer_link.c.id).where(
                payer_link.c.tenant_id == tenant_id, payer_link.c.kind == kind,
                payer_link.c.value == value)).first() is None:
            conn.execute(insert(payer_link).values(id=new_id("pyl"), tenant_id=tenant_id, kind=kind, value=value,
                                                   account_id=account_id, learned_from=entry_id, created_by=user_id,
                                                   created_at=utcnow()))
    return row, R.event(conn, tenant_id, f"bank:{row.key}")


def import_file(conn: Connection, tenant_id: str, data: bytes, created_by: str = "system") -> dict[str, Any]:
    """Read and import one camt file (every statement in it) in the caller's transaction; the answer
    of DESIGN.md's contract (``statement_id`` is the first statement's; ``statements`` lists all).
    Raises ``runtime.bank.camt.CamtError`` for a file that cannot be imported, before anything is."""
    from runtime.bank.camt import parse_camt

    with paused_gc():  # millions of short-lived objects: see store.gcpause
        statements = parse_camt(data)
        digest = hashlib.sha256(data).hexdigest()
        results = [import_statement(conn, tenant_id, st, digest, created_by) for st in statements]
    out: dict[str, Any] = {"statement_id": results[0].statement_id if results else None,
                           "format": results[0].format if results else statements[0].format if statements else "",
                           "statements": [r.statement_id for r in results]}
    for k in ("entries", "matched", "partially_matched", "unmatched", "returns", "duplicates"):
        out[k] = sum(getattr(r, k) for r in results)
    rules: dict[str, int] = {}
    for r in results:
        for k, v in r.rules.items():
            rules[k] = rules.get(k, 0) + v
    out["rules"] = rules
    payouts = {k: sum(getattr(r, f"payouts_{k}") for r in results) for k in ("paid", "returned")}
    if any(payouts.values()):
        out["payouts"] = payouts  # only when the statement touched our transfers
    out["warnings"] = [w for r in results for w in r.warnings]
    return out


def entry(conn: Connection, tenant_id: str, entry_id: str) -> list[Any]:
    """The tenant's entry ``entry_id`` as a one-element list (empty when there is none)."""
    return list(conn.execute(select(bank_entry).where(bank_entry.c.tenant_id == tenant_id,
                                                      bank_entry.c.id == entry_id)).all())


def dismiss_entry(conn: Connection, tenant_id: str, entry_id: str, reason: str, user_id: str) -> None:
    conn.execute(update(bank_entry).where(bank_entry.c.tenant_id == tenant_id, bank_entry.c.id == entry_id)
                 .values(status="not_ours", reason=reason[:300], decided_by=user_id))


def accounts(conn: Connection, tenant_id: str) -> list[Any]:
    return list(conn.execute(select(bank_account).where(bank_account.c.tenant_id == tenant_id)
                             .order_by(bank_account.c.created_at, bank_account.c.id)).all())


def register_account(conn: Connection, tenant_id: str, iban: str, currency: str, name: str) -> Any:
    """Register the account, or confirm one first seen in a statement."""
    row = conn.execute(select(bank_account).where(bank_account.c.tenant_id == tenant_id,
                                                  bank_account.c.iban == iban)).first()
    if row is None:
        conn.execute(insert(bank_account).values(id=new_id("bka"), tenant_id=tenant_id, iban=iban, currency=currency,
                                                 name=name, confirmed=True, created_at=utcnow()))
    else:
        conn.execute(update(bank_account).where(bank_account.c.id == row.id).values(
            confirmed=True, currency=currency, name=name or row.name))
    return conn.execute(select(bank_account).where(bank_account.c.tenant_id == tenant_id,
                                                   bank_account.c.iban == iban)).one()
