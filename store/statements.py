"""Partner statements: the tables, gathering a period's rated sessions at a partner's sites, and
issuing (numbering and persisting) a statement.

Plain SQLAlchemy Core tables like ``store.billing``. An issued statement is immutable: nothing here
updates or deletes one, and database triggers (migration 0006) refuse it. Numbers run per tenant
(``PS-000001``, ...) without gaps: the tenant row is locked before the next number is taken, in the
transaction that inserts the statement and its audit entry.

``partner_statement_session`` (migration 0009) records, per statement, the sessions it stated:
the rating used and the exact share per currency. ``prior_sessions`` finds what a new statement
has to settle from them: sessions of issued periods re-rated since (no record of their current
rating) and late ones (no record at all).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    and_,
    exists,
    false,
    func,
    insert,
    select,
    true,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from runtime.sessions import SessionFacts, SessionInputError
from runtime.statements import BreakdownRow, SessionRevenue, StatementDraft
from store.audit import Actor, append_audit, lock_tenant
from store.errors import Conflict
from store.models import ChargingSession, Location, RatedLineRow, Tenant, metadata
from store.types import ExactDecimal, UTCDateTime, new_id, utcnow

__all__ = [
    "NUMBER_PREFIX",
    "IssueRequest",
    "PriorRecord",
    "issue_statement",
    "lines_of",
    "list_statements",
    "lock_issuer",
    "overlapping",
    "period_sessions",
    "prior_sessions",
    "revenue_share_agreements",
    "ruleset_version_for",
    "stated_session",
    "statement",
    "statement_line",
    "statement_row",
    "tenant_sessions",
]

NUMBER_PREFIX = "PS-"
# agreements a partner statement settles: a revenue share, or energy reimbursement alone (a
# ``reimbursement`` block: an employee's company car charged at home)
SHARE_AGREEMENT_KINDS = ("revenue_share", "reimbursement", "commission")

_ID = BigInteger().with_variant(Integer(), "sqlite")


def _dec(name: str, nullable: bool = False) -> Column[Any]:
    return Column(name, ExactDecimal(), nullable=nullable)


statement = Table(
    "partner_statement", metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("number", String(40), nullable=False),
    Column("number_seq", Integer(), nullable=False),
    Column("partner_id", String(40), ForeignKey("partner.id"), nullable=False),
    Column("agreement_id", String(40), ForeignKey("agreement.id"), nullable=True),
    Column("ruleset_version_id", String(40), nullable=True),
    Column("share_source", String(300), nullable=False),
    Column("local_start", Date(), nullable=False),
    Column("local_end", Date(), nullable=False),  # exclusive
    Column("timezone", String(64), nullable=False),
    Column("period_start", UTCDateTime(), nullable=False),
    Column("period_end", UTCDateTime(), nullable=False),
    Column("sessions", Integer(), nullable=False),
    Column("covered_sessions", Integer(), nullable=False),
    Column("unrated_sessions", Integer(), nullable=False),
    _dec("energy_kwh"),
    Column("totals", JSON(), nullable=False),
    Column("notes", JSON(), nullable=False),
    Column("issued_by", String(40), nullable=False),
    Column("issued_at", UTCDateTime(), nullable=False),
    Column("agreements", JSON(), nullable=True),  # per-agreement subtotals (null: issued before 0009)
    Column("states_sessions", Boolean(), nullable=False, server_default=false()),  # has session records
    # energy and revenue per cost centre and per site (``runtime.statements.breakdown``; migration
    # 0043; null: issued before)
    Column("breakdown", JSON(), nullable=True),
    UniqueConstraint("tenant_id", "number_seq", name="uq_partner_statement_number"),
    Index("ix_partner_statement_partner", "tenant_id", "partner_id", "local_start"),
)

statement_line = Table(
    "partner_statement_line", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("statement_id", String(40), ForeignKey("partner_statement.id"), nullable=False),
    Column("seq", Integer(), nullable=False),
    Column("kind", String(30), nullable=False),
    Column("description", String(300), nullable=False),
    Column("currency", String(3), nullable=False),
    _dec("tax_rate", nullable=True),
    Column("sessions", Integer(), nullable=False),
    _dec("energy_kwh"), _dec("quantity"),
    Column("unit", String(30), nullable=False),
    _dec("unit_price"), _dec("net"), _dec("tax"), _dec("gross"), _dec("net_unrounded"),
    Column("agreement_id", String(40), nullable=True),
    Column("session_id", String(40), nullable=True),
    Column("refers_to", String(40), nullable=True),
    # reimbursement and commission lines: the rule and the intervals behind the amount (migration 0027)
    Column("trace", JSON(), nullable=True),
    UniqueConstraint("statement_id", "seq", name="uq_partner_statement_line_seq"),
)

stated_session = Table(
    "partner_statement_session", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("tenant_id", String(40), ForeignKey("tenant.id"), nullable=False),
    Column("statement_id", String(40), ForeignKey("partner_statement.id"), nullable=False),
    Column("session_id", String(40), nullable=False),
    Column("rating_id", String(40), nullable=False),
    Column("agreement_id", String(40), nullable=True),
    Column("currency", String(3), nullable=False),
    _dec("share"),
    Column("refers_to", String(40), nullable=True),
    Index("ix_partner_statement_session_session", "tenant_id", "session_id", "rating_id"),
    Index("ix_partner_statement_session_statement", "statement_id"),
)


def _facts(raw: Any) -> SessionFacts | None:
    try:
        return SessionFacts.from_dict(raw) if raw else None
    except (SessionInputError, KeyError, TypeError, ValueError):
        return None


def _revenues(db: Session, where: Any, tzname: str, *extra: Any,
              with_facts: bool = False) -> tuple[list[tuple[SessionRevenue, Any]], int]:
    """The sessions ``where`` selects (hosted sessions joined to their location), each rated one
    with its current rating's lines at full precision and its row (for ``extra`` columns); and how
    many were not rated. ``with_facts``: each with the facts rating saw (per-session reimbursement
    and commissions read them)."""
    cs = ChargingSession
    if with_facts:
        extra = (*extra, cs.facts)
    # the site is the location's code as it is now, else the reference the session came with
    stmt = (select(cs.id, cs.start, cs.currency, cs.energy_kwh, cs.current_rating_id, cs.status,
                   func.coalesce(func.nullif(Location.code, ""), cs.location_ref).label("site"),
                   Location.name.label("site_name"), cs.cost_centre, *extra)  # type: ignore[attr-defined]
            .outerjoin(Location, Location.id == cs.location_id)  # type: ignore[arg-type]
            .where(where).order_by(cs.start, cs.id))
    rows = db.execute(stmt).all()
    rated = {r.current_rating_id: r for r in rows if r.status == "rated" and r.current_rating_id}
    lines: dict[str, list[tuple[Decimal, Decimal]]] = {rid: [] for rid in rated}
    ids = list(rated)
    for i in range(0, len(ids), 500):
        for ln in db.execute(select(RatedLineRow.rating_id, RatedLineRow.tax_rate, RatedLineRow.net)
                             .where(RatedLineRow.rating_id.in_(ids[i:i + 500]))  # type: ignore[attr-defined]
                             .order_by(RatedLineRow.rating_id, RatedLineRow.seq)):
            lines[ln.rating_id].append((ln.tax_rate, ln.net))
    tz = ZoneInfo(tzname)
    out = [(SessionRevenue(r.id, r.start.astimezone(tz).date(), r.currency, r.energy_kwh, tuple(lines[rid]),
                           r.site or "", rid, _facts(r.facts) if with_facts else None, r.cost_centre or "",
                           r.site_name or ""), r) for rid, r in rated.items()]
    return out, len(rows) - len(out)


def period_sessions(db: Session, tenant_id: str, partner_id: str, start: Any, end: Any,
                    tzname: str, with_facts: bool = False) -> tuple[list[SessionRevenue], int]:
    """The rated sessions hosted by ``partner_id`` that started in ``[start, end)`` (UTC), with
    their current rating's lines at full precision; and how many unrated ones there were."""
    cs = ChargingSession
    where = and_(cs.tenant_id == tenant_id, cs.site_host_id == partner_id,  # type: ignore[arg-type]
                 cs.start >= start, cs.start < end)  # type: ignore[arg-type,operator]
    found, unrated = _revenues(db, where, tzname, with_facts=with_facts)
    return [r for r, _ in found], unrated


def tenant_sessions(db: Session, tenant_id: str, start: Any, end: Any, tzname: str) -> tuple[list[SessionRevenue], int]:
    """Every rated session of the tenant that started in ``[start, end)`` (UTC), with its facts: a
    sales partner's commission is earned on sessions it does not host (its rules select them)."""
    cs = ChargingSession
    where = and_(cs.tenant_id == tenant_id, cs.start >= start, cs.start < end)  # type: ignore[arg-type,operator]
    found, unrated = _revenues(db, where, tzname, with_facts=True)
    return [r for r, _ in found], unrated


@dataclass(frozen=True, slots=True)
class PriorRecord:
    """A session of an issued period to settle: as it is now, the statement that covers its day,
    and what statements stated for it so far (nothing: a late session)."""

    session: SessionRevenue
    statement_number: str
    local_start: date  # the covering statement's period
    local_end: date
    statement_agreement_id: str | None  # the covering statement's agreement (when it had one)
    stated_agreement_id: str | None  # the agreement the session was first stated under
    stated: tuple[tuple[str, Decimal], ...]


def prior_sessions(db: Session, tenant_id: str, partner_id: str, tzname: str,
                   hosted: bool = True) -> list[PriorRecord]:
    """Rated sessions hosted by ``partner_id`` in the period of one of its issued statements
    (those that record their sessions) whose current rating no statement of the partner stated:
    re-rated since they were stated, or never stated (late). ``hosted=False`` (a sales partner):
    the tenant's sessions in those periods, wherever they were; the caller keeps those its rules
    select."""
    cs, ps, st = ChargingSession, statement.c, stated_session.c
    covering = and_(ps.tenant_id == cs.tenant_id,
                    ps.partner_id == (cs.site_host_id if hosted else partner_id),  # type: ignore[arg-type]
                    cs.start >= ps.period_start, cs.start < ps.period_end,
                    ps.states_sessions.is_(True))
    # what this partner's statements stated: a session can be stated for its host and for a sales
    # partner's commission as well, and each settles only its own
    mine = select(statement.c.id).where(statement.c.tenant_id == tenant_id, statement.c.partner_id == partner_id)
    where = and_(cs.tenant_id == tenant_id,
                 cs.site_host_id == partner_id if hosted else true(),  # type: ignore[arg-type]
                 cs.status == "rated", cs.current_rating_id.is_not(None),  # type: ignore[union-attr,arg-type]
                 ~exists().where(st.tenant_id == tenant_id, st.session_id == cs.id,
                                 st.rating_id == cs.current_rating_id, st.statement_id.in_(mine)))
    found, _ = _revenues(db, and_(where, exists().where(covering)), tzname, with_facts=True)
    if not found:
        return []
    heads = {r.id: r for r in db.execute(
        select(cs.id, ps.number, ps.local_start, ps.local_end, ps.agreement_id)
        .join(statement, covering).where(cs.id.in_([s.session_id for s, _ in found])))}  # type: ignore[attr-defined]
    # (a session in the periods of several statements of the partner cannot happen: periods do not overlap)
    sums: dict[str, dict[str, Decimal]] = {}
    first_agreement: dict[str, str | None] = {}
    ids = [s.session_id for s, _ in found]
    for i in range(0, len(ids), 500):
        for r in db.execute(select(st.session_id, st.currency, st.share, st.agreement_id)
                            .where(st.tenant_id == tenant_id, st.session_id.in_(ids[i:i + 500]),
                                   st.statement_id.in_(mine))
                            .order_by(st.id)):
            per = sums.setdefault(r.session_id, {})
            per[r.currency] = per.get(r.currency, Decimal(0)) + r.share
            first_agreement.setdefault(r.session_id, r.agreement_id)
    out = []
    for s, _ in found:
        h = heads[s.session_id]
        out.append(PriorRecord(s, h.number, h.local_start, h.local_end, h.agreement_id,
                               first_agreement.get(s.session_id), tuple(sorted(sums.get(s.session_id, {}).items()))))
    return out


def overlapping(db: Session, tenant_id: str, partner_id: str, local_start: date, local_end: date) -> str | None:
    """The number of an issued statement of the partner whose period overlaps ``[start, end)``."""
    s = statement.c
    return db.execute(select(s.number).where(s.tenant_id == tenant_id, s.partner_id == partner_id,
                                             s.local_start < local_end, s.local_end > local_start)
                      .limit(1)).scalar_one_or_none()


@dataclass(frozen=True, slots=True)
class IssueRequest:
    partner_id: str
    agreement_id: str | None
    ruleset_version_id: str | None
    share_source: str


def lock_issuer(db: Session | Connection, tenant_id: str) -> None:
    """One issuer per tenant at a time, before anything is read (the caller's transaction holds it):
    the tenant row, as ``store.audit.lock_tenant`` takes it (a read first would let two issuers see
    the same number, or settle the same re-rated session twice)."""
    lock_tenant(db, tenant_id)


def issue_statement(db: Session, actor: Actor, req: IssueRequest, draft: StatementDraft) -> dict[str, Any]:
    """Persist ``draft`` under the tenant's next number and audit it, in the caller's transaction.
    Returns the statement row as a dict; ``Conflict`` when an issued statement of the partner
    already covers part of the period."""
    lock_issuer(db, actor.tenant_id)
    p = draft.period
    clash = overlapping(db, actor.tenant_id, req.partner_id, p.local_start, p.local_end)
    if clash:
        raise Conflict("statement_period_overlaps", f"statement {clash} of this partner already covers part "
                                                    "of the period")
    seq = (db.execute(select(func.max(statement.c.number_seq)).where(statement.c.tenant_id == actor.tenant_id))
           .scalar_one_or_none() or 0) + 1
    row: dict[str, Any] = {
        "id": new_id("pst"), "tenant_id": actor.tenant_id, "number": f"{NUMBER_PREFIX}{seq:06d}", "number_seq": seq,
        "partner_id": req.partner_id, "agreement_id": req.agreement_id, "ruleset_version_id": req.ruleset_version_id,
        "share_source": req.share_source[:300], "local_start": p.local_start, "local_end": p.local_end,
        "timezone": p.timezone, "period_start": p.start, "period_end": p.end, "sessions": draft.sessions,
        "covered_sessions": draft.covered_sessions, "unrated_sessions": draft.unrated_sessions,
        "energy_kwh": draft.energy_kwh, "totals": [t.to_dict() for t in draft.totals], "notes": list(draft.notes),
        "issued_by": actor.user_id, "issued_at": utcnow(), "agreements": [a.to_dict() for a in draft.agreements],
        "states_sessions": True, "breakdown": [b.to_dict() for b in draft.breakdown],
    }
    db.execute(insert(statement).values(**row))
    if draft.lines:
        db.execute(insert(statement_line), [
            {"tenant_id": actor.tenant_id, "statement_id": row["id"], "seq": ln.seq, "kind": ln.kind,
             "description": ln.description, "currency": ln.currency, "tax_rate": ln.tax_rate,
             "sessions": ln.sessions, "energy_kwh": ln.energy_kwh, "quantity": ln.quantity, "unit": ln.unit,
             "unit_price": ln.unit_price, "net": ln.net, "tax": ln.tax, "gross": ln.gross,
             "net_unrounded": ln.net_unrounded, "agreement_id": ln.agreement_id, "session_id": ln.session_id,
             "refers_to": ln.refers_to, "trace": list(ln.trace) or None} for ln in draft.lines])
    if draft.stated:
        db.execute(insert(stated_session), [
            {"tenant_id": actor.tenant_id, "statement_id": row["id"], **x.to_dict(), "share": x.share}
            for x in draft.stated])
    append_audit(db, actor, "partner_statement.issue", "partner_statement", row["id"], None,
                 {k: v for k, v in row.items() if k != "tenant_id"})
    return row


def lines_of(db: Session, statement_id: str) -> Sequence[Any]:
    return db.execute(select(statement_line).where(statement_line.c.statement_id == statement_id)
                      .order_by(statement_line.c.seq)).all()


def revenue_share_agreements(db: Session, tenant_id: str, partner_id: str, local_start: date,
                             local_end: date) -> list[Any]:
    """The partner's revenue-share (and energy reimbursement) agreements valid on some day of
    [local_start, local_end), by start."""
    from store.models import Agreement

    return list(db.execute(select(Agreement).where(
        Agreement.tenant_id == tenant_id, Agreement.partner_id == partner_id,
        Agreement.kind.in_(SHARE_AGREEMENT_KINDS), Agreement.valid_from < local_end,  # type: ignore[attr-defined]
        (Agreement.valid_to.is_(None)) | (Agreement.valid_to >= local_start))  # type: ignore[union-attr,operator]
        .order_by(Agreement.valid_from, Agreement.id)).scalars())


def ruleset_version_for(db: Session, tenant_id: str, ruleset_name: str, start: datetime,
                        end: datetime) -> tuple[Any, Any]:
    """The tenant's ruleset named ``ruleset_name`` (None if there is none) and its version in force at
    ``start``, else the first that takes effect before ``end`` (None if neither)."""
    from store.models import Ruleset
    from store.models import RulesetVersion as rv

    rs = db.execute(select(Ruleset).where(Ruleset.tenant_id == tenant_id,
                                          Ruleset.name == ruleset_name)).scalar_one_or_none()
    if rs is None:
        return None, None
    base = select(rv).where(rv.tenant_id == tenant_id, rv.ruleset_id == rs.id)
    version = db.execute(base.where(rv.effective_from <= start)  # type: ignore[arg-type]
                         .order_by(rv.effective_from.desc(), rv.version.desc()).limit(1)).scalar_one_or_none()  # type: ignore[attr-defined]
    if version is None:
        version = db.execute(base.where(rv.effective_from < end)  # type: ignore[arg-type]
                             .order_by(rv.effective_from, rv.version).limit(1)).scalar_one_or_none()
    return rs, version


def _visible(tenant_id: str, only_partner: str | None) -> list[Any]:
    """A partner key (``only_partner``: its partner id, or "" for a partner user without one, who
    sees nothing) sees its own partner's statements only."""
    where: list[Any] = [statement.c.tenant_id == tenant_id]
    if only_partner is not None:
        where.append(statement.c.partner_id == only_partner if only_partner else false())
    return where


def list_statements(db: Session, tenant_id: str, *, only_partner: str | None, partner_id: str | None,
                    after_seq: int | None, limit: int) -> list[dict[str, Any]]:
    """A page of issued statements in number order."""
    stmt = select(statement).where(*_visible(tenant_id, only_partner))
    if partner_id:
        stmt = stmt.where(statement.c.partner_id == partner_id)
    if after_seq is not None:
        stmt = stmt.where(statement.c.number_seq > after_seq)
    return [dict(r) for r in db.execute(stmt.order_by(statement.c.number_seq).limit(limit)).mappings().all()]


def statement_row(db: Session, tenant_id: str, statement_id: str, *, only_partner: str | None) -> dict[str, Any] | None:
    row = db.execute(select(statement).where(statement.c.id == statement_id,
                                             *_visible(tenant_id, only_partner))).mappings().first()
    return None if row is None else dict(row)


def statement_document(db: Session, tenant_id: str, row: dict[str, Any]) -> Any:
    """An issued statement (its row, as ``statement_row`` reads it) as
    ``runtime.documents.partner_statement.PartnerStatementDoc``, in the partner's language (German
    unless the partner reads English), with the tenant's letterhead."""
    from runtime.documents.model import Address
    from runtime.documents.partner_statement import (
        PARTNER_STATEMENT_LABELS,
        PartnerStatementDoc,
        StatementRow,
    )
    from store.documents import _branding, tenant_seller
    from store.models import Partner

    t = db.execute(select(Tenant.__table__).where(Tenant.__table__.c.id == tenant_id)).one()  # type: ignore[attr-defined]
    p = db.get(Partner, row["partner_id"])
    language = p.language if p is not None and p.language in PARTNER_STATEMENT_LABELS else "de"
    address = (Address(p.street, p.city, p.postal_code, p.country_code or t.country or "DE")
               if p is not None and (p.street or p.city) else None)
    lines = tuple(StatementRow(ln.kind, ln.currency, ln.tax_rate, ln.sessions, ln.energy_kwh, ln.net, ln.tax, ln.gross)
                  for ln in lines_of(db, row["id"]))
    parts = tuple(BreakdownRow(b["dimension"], b["key"], b["label"], b["currency"], int(b["sessions"]),
                                Decimal(b["energy_kwh"]), Decimal(b["net"]), Decimal(b["tax"]), Decimal(b["gross"]))
                  for b in row.get("breakdown") or [])
    payable = tuple((x["currency"], Decimal(x["payable"])) for x in row["totals"] or [] if Decimal(x["payable"]))
    return PartnerStatementDoc(language=language, number=row["number"], issued_at=row["issued_at"],
                               local_start=row["local_start"], local_end=row["local_end"], seller=tenant_seller(t),
                               partner_name=p.name if p is not None else row["partner_id"], address=address,
                               lines=lines, parts=parts, payable=payable, branding=_branding(t.branding))
