"""eMSP clearing: statements (one per eMSP partner and month), the CDRs each states (a session is
stated once: a unique index on it), the disputes raised in the D-7 window and their resolutions,
and the OCPI credentials partners pull CDRs and tariffs with.

A roaming session is one whose token was issued by an eMSP partner (``token.issuing_partner_id``
names a partner of kind ``emsp``; OCPI's country code and party id are on the partner). Building a
statement takes the partner's roaming sessions that started before the month's end and are in no
statement yet: those of the month, and late ones of earlier months (corrections). The archived
files (XLSX, CDR JSON) are written once with their sha256 and never rebuilt.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
    and_,
    func,
    insert,
    select,
    update,
)

from store.models import ChargingSession, Partner, Token, metadata
from store.types import ExactDecimal, UTCDateTime, new_id, utcnow

__all__ = [
    "STATUSES",
    "book_invoice",
    "clearing_cdr",
    "clearing_dispute",
    "clearing_statement",
    "disputes_to_resolve",
    "ocpi_credentials",
    "partner_account",
]

# draft (built, not sent) | in_review (sent: the window is open) | resolving (window closed,
# disputes open) | invoiced
STATUSES = ("draft", "in_review", "resolving", "invoiced")

clearing_statement = Table(
    "clearing_statement", metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("partner_id", String(40), ForeignKey("partner.id"), nullable=False),
    Column("month", String(7), nullable=False),  # YYYY-MM
    Column("period_start", UTCDateTime(), nullable=False),
    Column("period_end", UTCDateTime(), nullable=False),
    Column("workflow_id", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("cdrs", Integer(), nullable=False),
    Column("late", Integer(), nullable=False),
    Column("net_total", ExactDecimal(), nullable=False),
    Column("tax_total", ExactDecimal(), nullable=False),
    Column("gross_total", ExactDecimal(), nullable=False),
    Column("xlsx", LargeBinary(), nullable=True),
    Column("xlsx_sha256", String(64), nullable=False),
    Column("cdr_json", LargeBinary(), nullable=True),
    Column("cdr_json_sha256", String(64), nullable=False),
    Column("sent_at", UTCDateTime(), nullable=True),
    Column("window_ends_at", UTCDateTime(), nullable=True),
    Column("invoice_number", String(40), nullable=False),
    Column("invoice_net", ExactDecimal(), nullable=True),
    Column("invoice_gross", ExactDecimal(), nullable=True),
    Column("reverse_charge", Boolean(), nullable=False),
    # the commission lines of the 'charge emsp' blocks the agreement names (in the totals; migration 0038)
    Column("commissions", JSON(), nullable=True),
    Column("started_by", String(40), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("tenant_id", "partner_id", "month", name="uq_clearing_statement_month"),
    Index("ix_clearing_statement_status", "tenant_id", "status"),
)

clearing_cdr = Table(
    "clearing_cdr", metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("statement_id", String(40), ForeignKey("clearing_statement.id"), nullable=False),
    Column("partner_id", String(40), nullable=False),
    Column("session_id", String(40), nullable=False),
    Column("cdr_id", String(100), nullable=False),
    Column("start", UTCDateTime(), nullable=False),
    Column("late", Boolean(), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("net", ExactDecimal(), nullable=False),
    Column("tax", ExactDecimal(), nullable=False),
    Column("tax_rate", ExactDecimal(), nullable=False),
    Column("energy_kwh", ExactDecimal(), nullable=False),
    Column("ocpi", JSON(), nullable=False),  # the OCPI 2.2.1 CDR object (numbers as decimal strings)
    Column("last_updated", UTCDateTime(), nullable=False),
    UniqueConstraint("tenant_id", "session_id", name="uq_clearing_cdr_session"),
    Index("ix_clearing_cdr_statement", "statement_id", "cdr_id"),
    Index("ix_clearing_cdr_partner", "tenant_id", "partner_id", "last_updated"),
)

clearing_dispute = Table(
    "clearing_dispute", metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("statement_id", String(40), ForeignKey("clearing_statement.id"), nullable=False),
    Column("cdr_id", String(100), nullable=False),
    Column("reason", String(1000), nullable=False),
    Column("ours", ExactDecimal(), nullable=False),
    Column("proposed", ExactDecimal(), nullable=False),
    Column("raised_by", String(40), nullable=False),
    Column("raised_role", String(20), nullable=False),
    Column("raised_at", UTCDateTime(), nullable=False),
    Column("resolution", String(10), nullable=False),  # "" | accept | keep | adjust
    Column("resolved_net", ExactDecimal(), nullable=True),
    Column("resolved_by", String(40), nullable=False),
    Column("resolved_at", UTCDateTime(), nullable=True),
    Column("note", String(1000), nullable=False),
    UniqueConstraint("statement_id", "cdr_id", name="uq_clearing_dispute_cdr"),
)

ocpi_credentials = Table(
    "ocpi_credentials", metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("partner_id", String(40), ForeignKey("partner.id"), nullable=False),
    # sha256 of the token the partner presents (token A until the handshake, then token C)
    Column("token_sha256", String(64), nullable=False),
    Column("status", String(20), nullable=False),  # registration (token A) | registered (token C)
    Column("their_token", String(200), nullable=False),  # token B: what we present to them
    Column("their_url", String(500), nullable=False),
    Column("their_roles", JSON(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("token_sha256", name="uq_ocpi_credentials_token"),
    Index("ix_ocpi_credentials_partner", "tenant_id", "partner_id"),
)


# ----------------------------------------------------------------------------- statements
def emsp_partner(conn: Connection, tenant_id: str, partner_id: str) -> Any:
    p = Partner.__table__  # type: ignore[attr-defined]
    return conn.execute(select(p).where(p.c.tenant_id == tenant_id, p.c.id == partner_id,
                                        p.c.kind == "emsp")).first()


def roaming_sessions(conn: Connection, tenant_id: str, partner_id: str, before: datetime) -> list[Any]:
    """The partner's rated roaming sessions that started before ``before`` and are in no statement
    yet, by start (the month's and late ones of earlier months)."""
    s = ChargingSession.__table__  # type: ignore[attr-defined]
    t = Token.__table__  # type: ignore[attr-defined]
    stated = select(clearing_cdr.c.session_id).where(clearing_cdr.c.tenant_id == tenant_id,
                                                     clearing_cdr.c.session_id == s.c.id)
    return list(conn.execute(
        select(s.c.id, s.c.external_id, s.c.start, s.c.facts, s.c.tariff, t.c.uid, t.c.emaid, t.c.kind)
        .join(t, t.c.id == s.c.token_id)
        .where(s.c.tenant_id == tenant_id, t.c.issuing_partner_id == partner_id, s.c.start < before,
               ~stated.exists())
        .order_by(s.c.start, s.c.id)))


def get_statement(conn: Connection, tenant_id: str, statement_id: str, *, only_partner: str | None = None,
                  content: bool = False) -> Any:
    cols = [c for c in clearing_statement.c if content or c.name not in ("xlsx", "cdr_json")]
    q = select(*cols).where(clearing_statement.c.tenant_id == tenant_id, clearing_statement.c.id == statement_id)
    if only_partner is not None:
        q = q.where(clearing_statement.c.partner_id == only_partner)
    return conn.execute(q).first()


def statement_by_workflow(conn: Connection, tenant_id: str, workflow_id: str) -> Any:
    cols = [c for c in clearing_statement.c if c.name not in ("xlsx", "cdr_json")]
    return conn.execute(select(*cols).where(clearing_statement.c.tenant_id == tenant_id,
                                            clearing_statement.c.workflow_id == workflow_id)).first()


def list_statements(conn: Connection, tenant_id: str, *, only_partner: str | None, partner_id: str | None = None,
                    status: str | None = None, limit: int = 100) -> list[Any]:
    cols = [c for c in clearing_statement.c if c.name not in ("xlsx", "cdr_json")]
    q = select(*cols).where(clearing_statement.c.tenant_id == tenant_id)
    for col, val in ((clearing_statement.c.partner_id, only_partner), (clearing_statement.c.partner_id, partner_id),
                     (clearing_statement.c.status, status)):
        if val is not None:
            q = q.where(col == val)
    return list(conn.execute(q.order_by(clearing_statement.c.month.desc(), clearing_statement.c.id).limit(limit)))


def create_statement(conn: Connection, tenant_id: str, *, partner_id: str, month: str, period_start: datetime,
                     period_end: datetime, workflow_id: str, currency: str, totals: Any, xlsx: bytes,
                     cdr_json: bytes, cdr_rows: Sequence[dict[str, Any]], reverse_charge: bool,
                     started_by: str) -> str:
    """Insert the statement, its archived files and its CDRs in the caller's transaction."""
    import hashlib

    sid = new_id("clr")
    now = utcnow()
    conn.execute(insert(clearing_statement).values(
        id=sid, tenant_id=tenant_id, partner_id=partner_id, month=month, period_start=period_start,
        period_end=period_end, workflow_id=workflow_id, status="draft", currency=currency, cdrs=totals.cdrs,
        late=totals.late, net_total=totals.net, tax_total=totals.tax, gross_total=totals.gross, xlsx=xlsx,
        xlsx_sha256=hashlib.sha256(xlsx).hexdigest(), cdr_json=cdr_json,
        cdr_json_sha256=hashlib.sha256(cdr_json).hexdigest(), sent_at=None, window_ends_at=None,
        invoice_number="", invoice_net=None, invoice_gross=None, reverse_charge=reverse_charge,
        commissions=[c.to_dict() for c in getattr(totals, "commissions", ())], started_by=started_by,
        created_at=now))
    if cdr_rows:
        conn.execute(insert(clearing_cdr), [{**r, "tenant_id": tenant_id, "statement_id": sid,
                                             "partner_id": partner_id, "last_updated": now} for r in cdr_rows])
    return sid


def mark_sent(conn: Connection, tenant_id: str, statement_id: str, sent_at: datetime, window_ends_at: datetime) -> None:
    conn.execute(update(clearing_statement).where(
        clearing_statement.c.tenant_id == tenant_id, clearing_statement.c.id == statement_id,
        clearing_statement.c.status == "draft").values(status="in_review", sent_at=sent_at,
                                                       window_ends_at=window_ends_at))


def set_status(conn: Connection, tenant_id: str, statement_id: str, status: str, **values: Any) -> None:
    conn.execute(update(clearing_statement).where(
        clearing_statement.c.tenant_id == tenant_id, clearing_statement.c.id == statement_id)
        .values(status=status, **values))


def set_commissions(conn: Connection, tenant_id: str, statement_id: str, lines: list[dict[str, Any]]) -> None:
    """The commission lines as invoiced (a percentage re-taken after the disputes; each keeps the
    net the statement stated in ``stated``)."""
    conn.execute(update(clearing_statement).where(
        clearing_statement.c.tenant_id == tenant_id, clearing_statement.c.id == statement_id)
        .values(commissions=lines))


def statement_cdrs(conn: Connection, statement_id: str) -> list[Any]:
    return list(conn.execute(select(clearing_cdr.c.cdr_id, clearing_cdr.c.session_id, clearing_cdr.c.net,
                                    clearing_cdr.c.tax, clearing_cdr.c.tax_rate, clearing_cdr.c.late,
                                    clearing_cdr.c.currency)
                             .where(clearing_cdr.c.statement_id == statement_id).order_by(clearing_cdr.c.id)))


def statement_cdr(conn: Connection, statement_id: str, cdr_id: str) -> Any:
    return conn.execute(select(clearing_cdr.c.cdr_id, clearing_cdr.c.net, clearing_cdr.c.currency).where(
        clearing_cdr.c.statement_id == statement_id, clearing_cdr.c.cdr_id == cdr_id)).first()


# ------------------------------------------------------------------------------- disputes
def add_dispute(conn: Connection, tenant_id: str, statement_id: str, *, cdr_id: str, reason: str, ours: Decimal,
                proposed: Decimal, raised_by: str, raised_role: str, raised_at: datetime) -> tuple[Any, bool]:
    """The dispute on a CDR; the same CDR disputed again answers the first (created False)."""
    q = select(clearing_dispute).where(clearing_dispute.c.statement_id == statement_id,
                                       clearing_dispute.c.cdr_id == cdr_id)
    row = conn.execute(q).first()
    if row is not None:
        return row, False
    conn.execute(insert(clearing_dispute).values(
        id=new_id("dsp"), tenant_id=tenant_id, statement_id=statement_id, cdr_id=cdr_id, reason=reason, ours=ours,
        proposed=proposed, raised_by=raised_by, raised_role=raised_role, raised_at=raised_at, resolution="",
        resolved_net=None, resolved_by="", resolved_at=None, note=""))
    return conn.execute(q).one(), True


def disputes_of(conn: Connection, tenant_id: str, statement_id: str) -> list[Any]:
    return list(conn.execute(select(clearing_dispute).where(
        clearing_dispute.c.tenant_id == tenant_id, clearing_dispute.c.statement_id == statement_id)
        .order_by(clearing_dispute.c.raised_at, clearing_dispute.c.id)))


def disputes_to_resolve(conn: Connection, tenant_id: str, limit: int = 200) -> list[Any]:
    """Unresolved disputes of statements whose window has closed (``resolving``), with the
    statement's month, currency and partner name: finance's inbox, oldest first."""
    d, st = clearing_dispute.c, clearing_statement.c
    p = Partner.__table__  # type: ignore[attr-defined]
    return list(conn.execute(
        select(clearing_dispute, st.month, st.currency, st.window_ends_at, p.c.name.label("partner_name"))
        .join(clearing_statement, st.id == d.statement_id).join(p, p.c.id == st.partner_id)
        .where(d.tenant_id == tenant_id, st.status == "resolving", d.resolution == "")
        .order_by(d.raised_at, d.id).limit(limit)))


def get_dispute(conn: Connection, tenant_id: str, dispute_id: str) -> Any:
    return conn.execute(select(clearing_dispute).where(clearing_dispute.c.tenant_id == tenant_id,
                                                       clearing_dispute.c.id == dispute_id)).first()


def resolve_dispute(conn: Connection, tenant_id: str, dispute_id: str, *, resolution: str, net: Decimal,
                    by: str, at: datetime, note: str) -> bool:
    """Record a resolution once (an open dispute only); False when it was already resolved."""
    return bool(conn.execute(update(clearing_dispute).where(
        clearing_dispute.c.tenant_id == tenant_id, clearing_dispute.c.id == dispute_id,
        clearing_dispute.c.resolution == "").values(
        resolution=resolution, resolved_net=net, resolved_by=by, resolved_at=at, note=note)).rowcount)


# ------------------------------------------------------------------------------------ OCPI
def cdr_page(conn: Connection, tenant_id: str, partner_id: str, *, date_from: datetime | None,
             date_to: datetime | None, offset: int, limit: int) -> tuple[int, list[Any]]:
    """(total, the page) of the partner's CDRs by last_updated (OCPI: date_from inclusive,
    date_to exclusive)."""
    cond = [clearing_cdr.c.tenant_id == tenant_id, clearing_cdr.c.partner_id == partner_id]
    if date_from is not None:
        cond.append(clearing_cdr.c.last_updated >= date_from)
    if date_to is not None:
        cond.append(clearing_cdr.c.last_updated < date_to)
    where = and_(*cond)
    total = int(conn.execute(select(func.count()).select_from(clearing_cdr).where(where)).scalar_one())
    rows = list(conn.execute(select(clearing_cdr.c.ocpi).where(where)
                             .order_by(clearing_cdr.c.last_updated, clearing_cdr.c.id).offset(offset).limit(limit)))
    return total, rows


def add_credentials(conn: Connection, tenant_id: str, partner_id: str, token_sha256: str) -> str:
    cid = new_id("ocr")
    now = utcnow()
    conn.execute(insert(ocpi_credentials).values(
        id=cid, tenant_id=tenant_id, partner_id=partner_id, token_sha256=token_sha256, status="registration",
        their_token="", their_url="", their_roles=[], created_at=now, updated_at=now))
    return cid


def credentials_by_token(conn: Connection, token_sha256: str) -> Any:
    return conn.execute(select(ocpi_credentials).where(ocpi_credentials.c.token_sha256 == token_sha256)).first()


def register_credentials(conn: Connection, cred_id: str, *, new_token_sha256: str, their_token: str, their_url: str,
                         their_roles: list[Any]) -> None:
    """The handshake: the partner's token B and URL stored, our token A replaced by token C."""
    conn.execute(update(ocpi_credentials).where(ocpi_credentials.c.id == cred_id).values(
        token_sha256=new_token_sha256, status="registered", their_token=their_token, their_url=their_url,
        their_roles=their_roles, updated_at=utcnow()))


def delete_credentials(conn: Connection, cred_id: str) -> None:
    from sqlalchemy import delete

    conn.execute(delete(ocpi_credentials).where(ocpi_credentials.c.id == cred_id))


# ------------------------------------------------------------------ what clearing prices with
def tenant_row(conn: Connection, tenant_id: str) -> Any:
    from store.models import Tenant

    t = Tenant.__table__  # type: ignore[attr-defined]
    return conn.execute(select(t).where(t.c.id == tenant_id)).one()


def partner_row(conn: Connection, tenant_id: str, partner_id: str) -> Any:
    p = Partner.__table__  # type: ignore[attr-defined]
    return conn.execute(select(p).where(p.c.tenant_id == tenant_id, p.c.id == partner_id)).one()


def roaming_agreement(conn: Connection, tenant_id: str, partner_id: str, before: Any = None) -> Any:
    """The partner's latest ``roaming`` agreement (valid from a day before ``before``, if given):
    it names the ruleset and tariff that price its sessions."""
    from store.models import Agreement

    a = Agreement.__table__  # type: ignore[attr-defined]
    q = select(a).where(a.c.tenant_id == tenant_id, a.c.partner_id == partner_id, a.c.kind == "roaming")
    if before is not None:
        q = q.where(a.c.valid_from < before)
    return conn.execute(q.order_by(a.c.valid_from.desc()).limit(1)).first()


def ruleset_versions(conn: Connection, tenant_id: str, ruleset_name: str) -> list[Any]:
    """The published versions of the tenant's ruleset ``ruleset_name`` (empty: of all its
    rulesets), by effective time."""
    from store.models import Ruleset, RulesetVersion

    v = RulesetVersion.__table__  # type: ignore[attr-defined]
    r = Ruleset.__table__  # type: ignore[attr-defined]
    q = select(v.c.id, v.c.source, v.c.dsl_name, v.c.effective_from).where(v.c.tenant_id == tenant_id)
    if ruleset_name:
        q = q.join(r, r.c.id == v.c.ruleset_id).where(r.c.name == ruleset_name)
    return list(conn.execute(q.order_by(v.c.effective_from, v.c.version)))


# --- the clearing invoice as money ---------------------------------------------------------------

PARTNER_CUSTOMER_REF = "evbill:partner:"


def partner_account(conn: Connection, tenant_id: str, partner: Any, currency: str) -> tuple[str, str]:
    """(customer id, billing account id) the eMSP partner owes its clearing invoices on: a
    business customer (``external_ref`` ``evbill:partner:<partner id>``, the partner's name,
    address and VAT id) with one account per currency, made on first use. The account is never
    invoiced by the billing cycle: each clearing invoice opens its own item."""
    from store.customers import ref_account

    return ref_account(conn, tenant_id, PARTNER_CUSTOMER_REF + partner.id, currency, customer={
        "kind": "business", "name": partner.name[:200], "company_name": partner.name[:200],
        "email": partner.email or "", "vat_id": partner.vat_id or "", "street": partner.street or "",
        "postal_code": partner.postal_code or "", "city": partner.city or "",
        "country": (partner.country_code or "")[:2], "language": partner.language or "de"},
        account_name=f"Clearing {partner.name}"[:150], payment_terms="net 30")


def book_invoice(conn: Connection, tenant_id: str, statement_id: str, partner: Any, *, number: str, currency: str,
                 gross: Decimal, vat_groups: Sequence[tuple[Decimal, Decimal, Decimal]], issue_date: Any,
                 due_date: Any, treatment: str = "") -> str:
    """The clearing invoice as the partner's debt: an item of its own (``clearing_invoice``, its
    number the reference a transfer names, so the camt import matches it) whose event carries the
    invoice's net and VAT per rate (``vat_groups``: (rate, net, tax); reverse charge: tax 0) for the
    journal; ``treatment`` (``AE`` for a reverse-charge invoice) maps its 0 % revenue as an
    invoice's, on the chart's account for that treatment. Once per statement. -> the item's id."""
    from store.receivables import open_charge_item

    customer_id, account_id = partner_account(conn, tenant_id, partner, currency)
    groups = [{"rate": format(r, "f"), "net": format(n, "f"), "tax": format(t, "f")} for r, n, t in vat_groups]
    return open_charge_item(conn, tenant_id, key=f"clearing:{statement_id}", kind="clearing_invoice",
                            customer_id=customer_id, account_id=account_id, currency=currency, amount=gross,
                            issue_date=issue_date, due_date=due_date, number=number,
                            detail={"clearing_statement_id": statement_id, "tax_groups": groups,
                                    **({"treatment": treatment} if treatment else {})})
