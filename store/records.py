"""What the console's record pages read: a customer with its billing accounts, contracts, tokens
and SEPA mandates; the tenant's charging sessions by month, site and status; one session with its
charging periods, every rating (lines and trace) and the invoice lines that bill it; and the
adjustments (manual postings) on held invoices.

Every function takes the caller's connection and the tenant and finds nothing of another tenant's.
Money is never summed here (see ``store.console``): rows go back as they are stored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from store.models import (
    BillingAccount,
    ChargingPeriodRow,
    ChargingSession,
    Contract,
    Customer,
    Evse,
    Location,
    RatedLineRow,
    RulesetVersion,
    SessionRating,
    Token,
    User,
)

__all__ = ["CustomerRecord", "SessionRecord", "adjustments", "customer_record", "evse_ids", "session_record",
           "session_sites", "sessions"]

_c = Customer.__table__.c  # type: ignore[attr-defined]
_a = BillingAccount.__table__.c  # type: ignore[attr-defined]
_k = Contract.__table__.c  # type: ignore[attr-defined]
_t = Token.__table__.c  # type: ignore[attr-defined]
_s = ChargingSession.__table__.c  # type: ignore[attr-defined]
_loc = Location.__table__.c  # type: ignore[attr-defined]
_u = User.__table__.c  # type: ignore[attr-defined]

# what a session list shows of a session (no facts: they can be large)
_LIST = (_s.id, _s.external_id, _s.source, _s.start, _s.end, _s.energy_kwh, _s.location_ref, _s.evse_ref,
         _s.token_uid, _s.customer_id, _s.status, _s.rating_error, _s.unassigned_reason, _s.unassigned_message,
         _s.currency, _s.net_total, _s.gross_total)


@dataclass
class CustomerRecord:
    customer: Any
    accounts: list[Any]
    contracts: list[Any]  # with ``account_name``
    tokens: list[Any]  # with ``product`` (the contract's)
    mandates: list[Any]  # with ``creditor_name`` and ``account_name``
    sessions: int  # the customer's sessions, all months
    unassigned: int  # sessions of its tokens that no account takes


def customer_record(conn: Connection, tenant_id: str, customer_id: str) -> CustomerRecord | None:
    """The customer with its accounts, contracts (newest first), tokens and mandates, or None."""
    from sqlalchemy import func

    from store.collections import account_mandates, creditor_account

    cust = conn.execute(select(Customer.__table__).where(_c.tenant_id == tenant_id,  # type: ignore[attr-defined]
                                                         _c.id == customer_id)).first()
    if cust is None:
        return None
    accounts = list(conn.execute(select(BillingAccount.__table__).where(  # type: ignore[attr-defined]
        _a.tenant_id == tenant_id, _a.customer_id == customer_id).order_by(_a.created_at, _a.id)).all())
    names = {a.id: a.name for a in accounts}
    contracts = list(conn.execute(
        select(Contract.__table__, _a.name.label("account_name"))  # type: ignore[attr-defined]
        .join_from(Contract.__table__, BillingAccount.__table__, _a.id == _k.account_id)  # type: ignore[attr-defined]
        .where(_k.tenant_id == tenant_id, _k.customer_id == customer_id)
        .order_by(_k.start_date.desc(), _k.id)).all())
    tokens = list(conn.execute(
        select(Token.__table__, _k.product.label("product"), _k.status.label("contract_status"))  # type: ignore[attr-defined]
        .join_from(Token.__table__, Contract.__table__, _k.id == _t.contract_id)  # type: ignore[attr-defined]
        .where(_t.tenant_id == tenant_id, _k.customer_id == customer_id).order_by(_t.uid)).all())
    creditors = {r.id: r.name for r in conn.execute(select(creditor_account.c.id, creditor_account.c.name)
                                                     .where(creditor_account.c.tenant_id == tenant_id))}
    mandates = [{**dict(m._mapping), "creditor_name": creditors.get(m.creditor_account_id, ""),
                 "account_name": names.get(m.account_id) or ""}
                for a in accounts for m in account_mandates(conn, tenant_id, a.id)]
    count = conn.execute(select(func.count()).select_from(ChargingSession.__table__)  # type: ignore[attr-defined]
                         .where(_s.tenant_id == tenant_id, _s.customer_id == customer_id)).scalar_one()
    uids = [t.uid for t in tokens]
    unassigned = conn.execute(select(func.count()).select_from(ChargingSession.__table__).where(  # type: ignore[attr-defined]
        _s.tenant_id == tenant_id, _s.status == "unassigned", _s.token_uid.in_(uids))).scalar_one() if uids else 0
    return CustomerRecord(cust, accounts, contracts, tokens, mandates, int(count), int(unassigned))


def session_sites(conn: Connection, tenant_id: str) -> dict[str, str]:
    """The site codes the tenant's sessions name, each with its location's name where the site is
    registered (else the code): the session list's site filter."""
    codes = [r[0] for r in conn.execute(select(_s.location_ref).where(_s.tenant_id == tenant_id, _s.location_ref != "")
                                        .distinct().order_by(_s.location_ref).limit(500))]
    names = {r.code: r.name for r in conn.execute(select(_loc.code, _loc.name).where(
        _loc.tenant_id == tenant_id, _loc.code.in_(codes)))} if codes else {}
    return {c: names.get(c) or c for c in codes}


def sessions(conn: Connection, tenant_id: str, *, start: datetime | None = None, end: datetime | None = None,
             site: str | None = None, status: str | None = None, customer_id: str | None = None,
             offset: int = 0, limit: int = 100) -> list[Any]:
    """A page of the tenant's sessions (``limit + 1`` rows at most, so the caller knows there are
    more) in start order, newest first, with the customer's name."""
    stmt = (select(*_LIST, _c.name.label("customer_name"), _loc.name.label("site_name"))
            .select_from(ChargingSession.__table__.outerjoin(  # type: ignore[attr-defined]
                Customer.__table__, _c.id == _s.customer_id)  # type: ignore[attr-defined]
                .outerjoin(Location.__table__, _loc.id == _s.location_id))  # type: ignore[attr-defined]
            .where(_s.tenant_id == tenant_id))
    if start is not None:
        stmt = stmt.where(_s.start >= start)
    if end is not None:
        stmt = stmt.where(_s.start < end)
    if site:
        stmt = stmt.where(_s.location_ref == site)
    if status:
        stmt = stmt.where(_s.status == status)
    if customer_id:
        stmt = stmt.where(_s.customer_id == customer_id)
    return list(conn.execute(stmt.order_by(_s.start.desc(), _s.id.desc()).offset(offset).limit(limit + 1)).all())


@dataclass
class SessionRecord:
    session: Any
    location_name: str
    customer_name: str
    contract_product: str
    periods: list[Any]
    # every rating, newest first: (rating row, the ruleset version's label, its lines)
    ratings: list[tuple[Any, str, list[Any]]] = field(default_factory=list)
    billed_on: list[Any] = field(default_factory=list)  # invoices whose lines bill the session
    # eMSP clearing statements that state the session as a roaming CDR (month, partner, invoice number, status)
    cleared_on: list[Any] = field(default_factory=list)
    signed_data: list[str] = field(default_factory=list)  # the meter's signed records (Eichrecht), as sent


def session_record(conn: Connection, tenant_id: str, session_id: str) -> SessionRecord | None:
    """One session with its periods, ratings (lines and trace) and the invoices that bill it, or None."""
    from store.billing import invoices_of_session

    s = conn.execute(select(ChargingSession.__table__).where(  # type: ignore[attr-defined]
        _s.tenant_id == tenant_id, _s.id == session_id)).first()
    if s is None:
        return None
    loc = conn.execute(select(_loc.name).where(_loc.tenant_id == tenant_id, _loc.id == s.location_id)).scalar() \
        if s.location_id else None
    cust = conn.execute(select(_c.name).where(_c.tenant_id == tenant_id, _c.id == s.customer_id)).scalar() \
        if s.customer_id else None
    product = conn.execute(select(_k.product).where(_k.tenant_id == tenant_id, _k.id == s.contract_id)).scalar() \
        if s.contract_id else None
    p = ChargingPeriodRow.__table__.c  # type: ignore[attr-defined]
    periods = list(conn.execute(select(ChargingPeriodRow.__table__).where(  # type: ignore[attr-defined]
        p.session_id == s.id).order_by(p.seq)).all())
    r, ln, v = (SessionRating.__table__.c, RatedLineRow.__table__.c,  # type: ignore[attr-defined]
                RulesetVersion.__table__.c)  # type: ignore[attr-defined]
    ratings = list(conn.execute(select(SessionRating.__table__).where(  # type: ignore[attr-defined]
        r.tenant_id == tenant_id, r.session_id == s.id).order_by(r.seq.desc())).all())
    labels = {}
    ids = sorted({x.ruleset_version_id for x in ratings})
    if ids:
        from store.models import Ruleset

        rs = Ruleset.__table__.c  # type: ignore[attr-defined]
        for vid, name, version in conn.execute(select(v.id, rs.name, v.version).join_from(
                RulesetVersion.__table__, Ruleset.__table__, rs.id == v.ruleset_id)  # type: ignore[attr-defined]
                .where(v.tenant_id == tenant_id, v.id.in_(ids))):
            labels[vid] = f"{name} v{version}"
    out = SessionRecord(s, loc or "", cust or "", product or "", periods)
    for rating in ratings:
        lines = list(conn.execute(select(RatedLineRow.__table__).where(  # type: ignore[attr-defined]
            ln.rating_id == rating.id).order_by(ln.seq)).all())
        out.ratings.append((rating, labels.get(rating.ruleset_version_id, rating.ruleset_version_id), lines))
    out.billed_on = invoices_of_session(conn, tenant_id, s.id)
    from store.clearing import clearing_cdr, clearing_statement
    from store.models import Partner

    cs, cc, pt = clearing_statement.c, clearing_cdr.c, Partner.__table__.c  # type: ignore[attr-defined]
    out.cleared_on = list(conn.execute(
        select(cs.id, cs.month, cs.status, cs.invoice_number, pt.name.label("partner"), cc.cdr_id)
        .join_from(clearing_cdr, clearing_statement, cs.id == cc.statement_id)
        .join(Partner.__table__, pt.id == cs.partner_id)  # type: ignore[attr-defined]
        .where(cc.tenant_id == tenant_id, cc.session_id == s.id).order_by(cs.month)).all())
    if s.source == "ocpp":
        from store.ocpp import signed_data_of

        out.signed_data = signed_data_of(conn, [s.id]).get(s.id, [])
    return out


def adjustments(conn: Connection, tenant_id: str, invoice_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per held invoice: its manual postings (``store.billing.postings_of``, with the author's
    e-mail) and the tax rate most of its lines carry (what an adjustment form offers first)."""
    from store.billing import invoice, invoice_line, postings_of

    out: dict[str, dict[str, Any]] = {}
    wanted = [x for x in dict.fromkeys(invoice_ids) if x]
    mine = {r[0] for r in conn.execute(select(invoice.c.id).where(invoice.c.tenant_id == tenant_id,
                                                                   invoice.c.id.in_(wanted)))} if wanted else set()
    for inv in wanted:
        if inv not in mine:
            continue
        rates = Counter(Decimal(r[0]) for r in conn.execute(select(invoice_line.c.tax_rate).where(
            invoice_line.c.invoice_id == inv)))
        posts = postings_of(conn, inv)
        out[inv] = {"postings": posts, "rate": rates.most_common(1)[0][0] if rates else None,
                    "authors": {p.author_id for p in posts}}
    emails = {}
    authors = sorted({a for v in out.values() for a in v["authors"]})
    if authors:
        emails = dict(conn.execute(select(_u.id, _u.email).where(_u.tenant_id == tenant_id, _u.id.in_(authors))).all())
    for v in out.values():
        v["emails"] = emails
    return out


def evse_ids(conn: Connection, tenant_id: str, limit: int = 10) -> list[str]:
    """The tenant's EVSEs that belong to a charge point (the ad-hoc page's addresses), oldest first."""
    e = Evse.__table__.c  # type: ignore[attr-defined]
    return [r[0] for r in conn.execute(select(e.id).where(e.tenant_id == tenant_id, e.charge_point_id.is_not(None))
                                       .order_by(e.created_at, e.id).limit(limit))]
