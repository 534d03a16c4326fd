"""Host credit notes (issue 15): an issued partner statement as a self-billing credit note
(Gutschrift), numbered per tenant without gaps (``GU-000001``, ...), with the payable that pays it
out and its journal entry, in the caller's transaction.

One note per statement; a correction is a new note that names the one it corrects (its lines take
the corrected note's back and state the statement again with the partner's details as they are
now), never an edit. Numbers are taken under the tenant lock ``store.statements.lock_issuer``
takes, so two issuers never see the same next number.

What the note pays: a positive amount becomes a ``host_credit`` payable (``store.payables``) to the
partner's IBAN, which the next payout run takes; a correction that adds up to less than nothing
(the host was paid too much) leaves no payable and says so (``payable`` negative on the row).
Where the statement's agreement says so (terms ``netting: true``), what the partner owes from such
corrections is deducted from its next note's payout (``netted``; the journal needs nothing more:
the partner payable account nets by itself).
The journal: ``host_credit_note`` (expense and input VAT against the partner payable) through
``store.accounting.post_events``; the payout run posts ``host_payout`` when its file is approved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
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
    func,
    insert,
    select,
    text,
)

from runtime.documents.host_credit import CreditLine, credit_formats, host_credit_document, vat_status_of
from runtime.documents.model import (
    Address,
    Buyer,
    Contact,
    Document,
    DocumentError,
    ElectronicAddress,
    PrecedingInvoice,
    Seller,
    SetOff,
    VatCategory,
)
from runtime.money import ZERO, minor_unit, quantize
from runtime.statements import SHARE_KINDS
from store import payables as P
from store.errors import Conflict, InvalidInput, NotFound
from store.models import Partner, Tenant, metadata
from store.statements import lines_of, lock_issuer, statement
from store.types import ExactDecimal, UTCDateTime, new_id, utcnow

__all__ = ["NUMBER_PREFIX", "IssuedNote", "credit_note", "get_note", "issue_note", "list_notes", "note_document"]

NUMBER_PREFIX = "GU-"

credit_note = Table(
    "host_credit_note", metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("number", String(40), nullable=False),
    Column("number_seq", Integer(), nullable=False),
    Column("statement_id", String(40), ForeignKey("partner_statement.id"), nullable=False),
    Column("partner_id", String(40), ForeignKey("partner.id"), nullable=False),
    Column("corrects_id", String(40), nullable=True),
    Column("corrects_number", String(40), nullable=True),
    Column("issue_date", Date(), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("net", ExactDecimal(), nullable=False),
    Column("tax", ExactDecimal(), nullable=False),
    Column("gross", ExactDecimal(), nullable=False),
    Column("payable", ExactDecimal(), nullable=False),  # what this note adds to what the partner is paid
    # what the partner owed from earlier notes (corrections that took back more than they stated),
    # deducted from this note's payout where its agreement says so (terms ``netting``)
    Column("netted", ExactDecimal(), nullable=False),
    # what the partner owed as a customer (open receivable items), settled from this note's payable
    # where its agreement says so (``store.receivables.book_netting``)
    Column("netted_receivables", ExactDecimal(), nullable=False, server_default="0"),
    Column("vat_status", String(20), nullable=False),
    Column("vat_rate", ExactDecimal(), nullable=False),
    Column("language", String(2), nullable=False),
    Column("formats", JSON(), nullable=False),
    Column("payable_id", String(40), nullable=True),
    Column("reason", String(500), nullable=False),
    Column("issued_by", String(40), nullable=False),
    Column("issued_at", UTCDateTime(), nullable=False),
    UniqueConstraint("tenant_id", "number_seq", name="uq_host_credit_note_number"),
    Index("uq_host_credit_note_statement", "tenant_id", "statement_id", unique=True,
          sqlite_where=text("corrects_id IS NULL"), postgresql_where=text("corrects_id IS NULL")),
    Index("ix_host_credit_note_partner", "tenant_id", "partner_id"),
)

_partner = Partner.__table__  # type: ignore[attr-defined]
_tenant = Tenant.__table__  # type: ignore[attr-defined]
_NEEDED = ("street", "postal_code", "city", "email")


@dataclass(frozen=True, slots=True)
class IssuedNote:
    row: Any
    document: Document
    email: str


def _details_missing(p: Any, formats: Sequence[str]) -> list[str]:
    needed = [*_NEEDED, "phone"] if any(f.startswith("xrechnung") for f in formats) else list(_NEEDED[:3])
    return [k for k in needed if not getattr(p, k)]


def _host(p: Any, tenant_country: str) -> Seller:
    country = p.country_code or (p.vat_id[:2] if p.vat_id[:2].isalpha() else "") or tenant_country
    return Seller(
        legal_name=p.name, address=Address(p.street, p.city, p.postal_code, country.upper()),
        electronic_address=ElectronicAddress(p.vat_id, "9930") if p.vat_id.startswith("DE")
        else ElectronicAddress(p.email or "billing@invalid", "EM"),
        contact=Contact(p.name, p.phone, p.email), vat_id=p.vat_id or None, tax_number=p.tax_number or None,
        iban=p.iban or None, bic=p.bic or None,
        # BT-29: the partner number we know the host by (a host without VAT id or register entry)
        identifier=None if p.vat_id else p.id)


def _tenant_buyer(t: Any, reference: str) -> Buyer:
    return Buyer(
        name=t.legal_name or t.name, address=Address(t.street, t.city, t.postal_code, t.country or "DE"),
        electronic_address=ElectronicAddress(t.vat_id, "9930") if t.vat_id.startswith("DE")
        else ElectronicAddress(t.email or "billing@invalid", "EM"),
        is_business=True, vat_id=t.vat_id or None, buyer_reference=reference)


def _branding(t: Any) -> Any:
    from store.documents import tenant_branding

    return tenant_branding(t.branding)


def _statement_lines(conn: Connection, st: Any) -> tuple[str, list[CreditLine], Decimal]:
    """(currency, the share lines, the VAT rate the sessions were charged with)."""
    rows = lines_of(conn, st.id)  # type: ignore[arg-type]
    shares = [r for r in rows if r.kind in SHARE_KINDS and r.net != 0]
    currencies = sorted({r.currency for r in shares})
    if len(currencies) > 1:
        raise Conflict("statement_multi_currency", f"statement {st.number} credits in {', '.join(currencies)}: "
                                                   "one credit note states one currency")
    if not shares:
        raise Conflict("nothing_to_credit", f"statement {st.number} has no share line to credit")
    rates = [r.tax_rate for r in rows if r.kind == "revenue" and r.tax_rate is not None and r.tax_rate > 0]
    rate = max(rates) if rates else Decimal(19)
    return currencies[0], [CreditLine(r.kind, r.description, r.quantity, r.unit, r.unit_price, r.net)
                           for r in shares], rate


def note_document(conn: Connection, tenant_id: str, row: Any) -> Document:
    """The document of an issued note rebuilt from the immutable statement and the note's own VAT
    status and rate, with the partner's details as they are now: the archive keeps the bytes that
    were issued, this is for comparing with them."""
    doc = _document(conn, tenant_id, row.statement_id, row.number, row.issue_date, row.vat_status, row.vat_rate,
                    row.language, _corrected(conn, tenant_id, row.corrects_id))
    set_off = _set_off(conn, tenant_id, row.partner_id, row.id, row.number_seq, row.netted) \
        if row.netted or row.netted_receivables else ()
    return _with_set_off(doc, set_off)


def _with_set_off(doc: Document, set_off: tuple[SetOff, ...]) -> Document:
    """The note showing its set-off; set off whole, it promises no transfer."""
    if not set_off:
        return doc
    rest = doc.totals.payable - sum((x.amount for x in set_off), ZERO)
    return replace(doc, set_off=set_off, payment_terms=doc.payment_terms if rest > 0 else None)


def _corrected(conn: Connection, tenant_id: str, note_id: str | None) -> Any:
    if note_id is None:
        return None
    return conn.execute(select(credit_note).where(credit_note.c.tenant_id == tenant_id,
                                                  credit_note.c.id == note_id)).one()


def _document(conn: Connection, tenant_id: str, statement_id: str, number: str, issue_date: date, status: str,
              rate: Decimal, language: str, corrected: Any) -> Document:
    st = conn.execute(select(statement).where(statement.c.id == statement_id)).one()
    p = conn.execute(select(_partner).where(_partner.c.id == st.partner_id)).one()
    t = conn.execute(select(_tenant).where(_tenant.c.id == tenant_id)).one()
    currency, lines, _ = _statement_lines(conn, st)
    if corrected is not None:
        # take the corrected note's lines back at its own VAT, then state them as they are now
        lines = [CreditLine(ln.kind, ln.description, -ln.quantity, ln.unit, ln.unit_price, -ln.net, True,
                            corrected.vat_status, corrected.vat_rate) for ln in lines] + lines
    return host_credit_document(
        number=number, issue_date=issue_date, host=_host(p, t.country or "DE"), tenant=_tenant_buyer(t, st.number),
        lines=lines, period_start=st.local_start, period_end=st.local_end, vat_status=status, vat_rate=rate,
        language=language, currency=currency, branding=_branding(t),
        corrects=PrecedingInvoice(corrected.number, corrected.issue_date) if corrected is not None else None)


def issue_note(conn: Connection, tenant_id: str, statement_id: str, *, issued_by: str, issue_date: date,
               corrects_id: str | None = None, reason: str = "") -> IssuedNote:
    """Issue the statement's credit note (or a correction of note ``corrects_id``), its payable and
    journal entry, in the caller's transaction. Raises ``NotFound``, ``Conflict`` (already issued,
    nothing to credit) and ``InvalidInput`` (the partner's details do not make a valid note)."""
    # the statements' issuer lock (one issuer per tenant: the next number is read under it)
    lock_issuer(conn, tenant_id)
    corrected = None
    if corrects_id is not None:
        corrected = _corrected(conn, tenant_id, corrects_id) if get_note(conn, tenant_id, corrects_id) else None
        if corrected is None:
            raise NotFound("host_credit_note_not_found", f"host credit note {corrects_id!r} not found")
        statement_id = corrected.statement_id
    st = conn.execute(select(statement).where(statement.c.tenant_id == tenant_id,
                                              statement.c.id == statement_id)).first()
    if st is None:
        raise NotFound("partner_statement_not_found", f"partner statement {statement_id!r} not found")
    if corrected is None:
        done = conn.execute(select(credit_note.c.number).where(
            credit_note.c.tenant_id == tenant_id, credit_note.c.statement_id == st.id,
            credit_note.c.corrects_id.is_(None))).scalar_one_or_none()
        if done is not None:
            raise Conflict("credit_note_exists", f"statement {st.number} is credited by {done}: correct that note")
    p = conn.execute(select(_partner).where(_partner.c.id == st.partner_id)).one()
    t = conn.execute(select(_tenant).where(_tenant.c.id == tenant_id)).one()
    try:
        status = vat_status_of(p.vat_status, partner_kind=p.kind, country=p.country_code, vat_id=p.vat_id,
                               tax_number=p.tax_number, tenant_country=t.country or "DE")
    except DocumentError as exc:
        raise InvalidInput(exc.code, str(exc)) from None
    formats = credit_formats(status)
    missing = _details_missing(p, formats)
    if missing:
        raise InvalidInput("partner_details_missing", f"the credit note needs the partner's {', '.join(missing)}")
    if status == "reverse_charge" and not t.vat_id:
        raise InvalidInput("tenant_vat_id_missing", "reverse charge needs the tenant's VAT id on the note")
    _, _, rate = _statement_lines(conn, st)
    seq = (conn.execute(select(func.max(credit_note.c.number_seq)).where(credit_note.c.tenant_id == tenant_id))
           .scalar_one_or_none() or 0) + 1
    number = f"{NUMBER_PREFIX}{seq:06d}"
    language = p.language or ("de" if (t.country or "DE") in ("DE", "AT") else "en")
    try:
        doc = _document(conn, tenant_id, st.id, number, issue_date, status, rate, language, corrected)
    except DocumentError as exc:
        raise InvalidInput(exc.code, str(exc)) from None
    totals = doc.totals
    # a correction's document holds the reversal and the restatement: its total is the difference
    payable = totals.payable
    nid = new_id("hcn")
    payable_id = None
    nets = payable > 0 and _nets(conn, st)
    netted = min(_owed(conn, tenant_id, p.id), payable) if nets else ZERO
    # and what the partner owes as a customer (open items of its customer record, the one clearing
    # keeps: ``evbill:partner:<id>``): settled from the rest, the payable less by it
    settled = _net_receivables(conn, tenant_id, p.id, nid, doc.currency, payable - netted, issue_date, number,
                               issued_by) if nets else ZERO
    set_off = _set_off(conn, tenant_id, p.id, nid, seq, netted) if netted or settled else ()
    doc = _with_set_off(doc, set_off)
    if payable - netted - settled > 0:
        if not p.iban:
            raise InvalidInput("partner_details_missing", "the credit note needs the partner's iban")
        remittance = f"{'Gutschrift' if language == 'de' else 'Credit note'} {number} {st.number}"
        if set_off:
            # the payee reads on its statement why less than the note arrives (the note shows the items)
            less = format(netted + settled, "f")
            remittance += (f" abzgl. Verrechnung {less.replace('.', ',')} {doc.currency}" if language == "de"
                           else f" less {less} {doc.currency} set off")
        payable_id = new_id("pbl")
        now = utcnow()
        conn.execute(insert(P.payable).values(
            id=payable_id, tenant_id=tenant_id, key=f"host_credit:{nid}", kind="host_credit", payee_kind="partner",
            payee_id=p.id, account_id=None, payee_name=p.name[:70], iban=p.iban, bic=p.bic, amount=payable - netted - settled,
            currency=doc.currency, remittance=remittance[:140], source_kind="host_credit_note", source_id=nid,
            receivable_key="", status="requested", end_to_end_id="", paid_on=None, return_reason="",
            requested_by=issued_by, created_at=now, updated_at=now))
    row = {"id": nid, "tenant_id": tenant_id, "number": number, "number_seq": seq, "statement_id": st.id,
           "partner_id": p.id, "corrects_id": corrected.id if corrected is not None else None,
           "corrects_number": corrected.number if corrected is not None else None, "issue_date": issue_date,
           "currency": doc.currency, "net": totals.net, "tax": totals.tax, "gross": totals.gross,
           "payable": payable, "netted": netted, "netted_receivables": settled, "vat_status": status, "vat_rate": rate, "language": doc.language,
           "formats": list(formats), "payable_id": payable_id, "reason": reason[:500], "issued_by": issued_by,
           "issued_at": utcnow()}
    conn.execute(insert(credit_note).values(**row))
    _post(conn, tenant_id, row, doc)
    return IssuedNote(get_note(conn, tenant_id, nid), doc, p.email)


def _set_off(conn: Connection, tenant_id: str, partner_id: str, note_id: str, seq: int,
             netted: Decimal) -> tuple[SetOff, ...]:
    """What note ``note_id``'s payout was set off against, as its PDF shows it: the partner's
    corrections that took back more than they stated (oldest first, less what earlier notes netted
    of them), then the receivable items the note settled (``store.receivables.book_netting``'s
    entries under the note's key), each with its document number and the amount taken."""
    from store.receivables import receivable_entry, receivable_event, receivable_item

    out: list[SetOff] = []
    if netted > 0:
        owed: list[tuple[str, Decimal]] = []
        taken = ZERO  # what notes before this one netted, taken from the oldest claim first
        for number, payable, earlier_netted in conn.execute(
                select(credit_note.c.number, credit_note.c.payable, credit_note.c.netted).where(
                    credit_note.c.tenant_id == tenant_id, credit_note.c.partner_id == partner_id,
                    credit_note.c.number_seq < seq).order_by(credit_note.c.number_seq)):
            if payable < 0:
                owed.append((number, -payable))
            taken += earlier_netted
        left = netted
        for number, amount in owed:
            skip = min(taken, amount)
            taken -= skip
            use = min(amount - skip, left)
            if use > 0:
                out.append(SetOff("credit_note", number, use))
                left -= use
    ev, en, it = receivable_event.c, receivable_entry.c, receivable_item.c
    rows = conn.execute(
        select(it.number, en.amount).select_from(receivable_entry)
        .join(receivable_event, ev.id == en.event_id).join(receivable_item, it.id == en.item_id)
        .where(ev.tenant_id == tenant_id, ev.kind == "partner_netting", ev.key.like(f"host_netting:{note_id}:%"),
               en.kind == "netting").order_by(en.id))
    out.extend(SetOff("invoice", number, amount) for number, amount in rows)
    return tuple(out)


def _nets(conn: Connection, st: Any) -> bool:
    """Whether the statement's agreement says to net what the partner owes (terms ``netting``)."""
    from store.models import Agreement

    if not st.agreement_id:
        return False
    ag = Agreement.__table__  # type: ignore[attr-defined]
    terms = conn.execute(select(ag.c.terms).where(ag.c.id == st.agreement_id)).scalar_one_or_none() or {}
    return str(terms.get("netting", "")).lower() == "true"


def _net_receivables(conn: Connection, tenant_id: str, partner_id: str, note_id: str, currency: str,
                     up_to: Decimal, on: date, number: str, by: str) -> Decimal:
    """Settle the partner's open receivable items as a customer with up to ``up_to`` of the note's
    payable (``store.receivables.book_netting``: oldest due first, disputed items left alone)."""
    from store.clearing import PARTNER_CUSTOMER_REF
    from store.models import Customer
    from store.receivables import book_netting

    cu = Customer.__table__  # type: ignore[attr-defined]
    customer_id = conn.execute(select(cu.c.id).where(cu.c.tenant_id == tenant_id,
                                                     cu.c.external_ref == PARTNER_CUSTOMER_REF + partner_id)
                               ).scalar_one_or_none()
    if customer_id is None or up_to <= 0:
        return ZERO
    return book_netting(conn, tenant_id, key=f"host_netting:{note_id}", customer_id=customer_id, currency=currency,
                        up_to=up_to, booked_on=on, reference=number, created_by=by)


def _owed(conn: Connection, tenant_id: str, partner_id: str) -> Decimal:
    """What the partner still owes from its notes: corrections that took back more than they
    stated, less what later notes netted (amounts added up here, never by SQL)."""
    owed = ZERO
    for payable, netted in conn.execute(select(credit_note.c.payable, credit_note.c.netted).where(
            credit_note.c.tenant_id == tenant_id, credit_note.c.partner_id == partner_id)):
        owed += -payable if payable < 0 else ZERO
        owed -= netted
    return max(owed, ZERO)


def _post(conn: Connection, tenant_id: str, row: dict[str, Any], doc: Document) -> None:
    from store.accounting import post_events

    t = doc.totals
    groups = [(g.rate, g.taxable, g.tax) for g in t.vat_groups]  # small business, reverse charge: no tax
    detail: dict[str, Any] = {"expense": str(t.net), "input_vat": [[str(r), str(tax)] for r, _n, tax in groups if tax],
                              "partner_payable": str(-t.payable)}
    # reverse charge: the host bills no VAT, the tenant owes it and deducts it (§ 13b UStG), at the
    # rate the sessions were charged with, on what the note states under reverse charge
    base = sum((g.taxable for g in t.vat_groups if g.category is VatCategory.REVERSE_CHARGE), ZERO)
    if base:
        rate = Decimal(row["vat_rate"])
        detail["self_assessed"] = [[str(rate), str(quantize(base * rate / 100, minor_unit(row["currency"])))]]
    post_events(conn, tenant_id, [{
        "id": row["id"], "kind": "host_credit_note", "currency": row["currency"], "reference": row["number"],
        "booked_on": row["issue_date"], "account_id": None, "detail": detail}], [])


def get_note(conn: Connection, tenant_id: str, note_id: str) -> Any:
    return conn.execute(select(credit_note).where(credit_note.c.tenant_id == tenant_id,
                                                  (credit_note.c.id == note_id) | (credit_note.c.number == note_id))
                        ).first()


def list_notes(conn: Connection, tenant_id: str, *, partner_id: str | None = None, statement_id: str | None = None,
               after_seq: int | None = None, limit: int = 50) -> list[Any]:
    stmt = select(credit_note).where(credit_note.c.tenant_id == tenant_id)
    if partner_id:
        stmt = stmt.where(credit_note.c.partner_id == partner_id)
    if statement_id:
        stmt = stmt.where(credit_note.c.statement_id == statement_id)
    if after_seq is not None:
        stmt = stmt.where(credit_note.c.number_seq > after_seq)
    return list(conn.execute(stmt.order_by(credit_note.c.number_seq).limit(limit)).all())

