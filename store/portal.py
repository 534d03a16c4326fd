"""What the partner portal reads: one partner's sessions (those at the sites it hosts, as
``ChargingSession.site_host_id`` records them) and the payouts the tenant owes or paid it.

Every query takes the tenant and the partner and filters by both: a partner never reads another
partner's rows, nor another tenant's (the statements have their own filter in ``store.statements``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from store.models import ChargingSession, Location, Partner
from store.payables import payable, payout_item, payout_run

__all__ = ["SessionSums", "latest_start", "partner_of", "payouts", "session_sums", "sessions"]

_s = ChargingSession.__table__.c  # type: ignore[attr-defined]
_loc = Location.__table__.c  # type: ignore[attr-defined]


def partner_of(conn: Connection, tenant_id: str, partner_id: str | None) -> Any:
    if not partner_id:
        return None
    p = Partner.__table__.c  # type: ignore[attr-defined]
    return conn.execute(select(p.id, p.name, p.kind).where(p.tenant_id == tenant_id, p.id == partner_id)).first()


def latest_start(conn: Connection, tenant_id: str, partner_id: str) -> datetime | None:
    """When the partner's newest session started (the portal opens on its month)."""
    found: datetime | None = conn.execute(
        select(_s.start).where(_s.tenant_id == tenant_id, _s.site_host_id == partner_id)
        .order_by(_s.start.desc()).limit(1)).scalar()
    return found


def _where(tenant_id: str, partner_id: str, start: datetime, end: datetime) -> list[Any]:
    return [_s.tenant_id == tenant_id, _s.site_host_id == partner_id, _s.start >= start, _s.start < end]


def sessions(conn: Connection, tenant_id: str, partner_id: str, start: datetime, end: datetime, *,
             limit: int | None = 200, offset: int = 0) -> Sequence[Any]:
    """The partner's sessions starting in ``start..end``, oldest first; no token, customer or
    contract: a host sees what happened at its chargers, not who charged."""
    stmt = (select(_s.id, _s.external_id, _s.start, _s.end, _s.location_ref, _s.evse_ref, _s.energy_kwh,
                   _s.status, _s.currency, _s.net_total, _s.gross_total, _loc.name.label("location_name"))
            .select_from(ChargingSession.__table__.outerjoin(  # type: ignore[attr-defined]
                Location.__table__, _loc.id == _s.location_id))  # type: ignore[attr-defined]
            .where(*_where(tenant_id, partner_id, start, end)).order_by(_s.start, _s.id).offset(offset))
    if limit is not None:
        stmt = stmt.limit(limit)
    return conn.execute(stmt).all()


@dataclass
class SessionSums:
    sessions: int = 0
    energy_kwh: Decimal = Decimal(0)
    net: dict[str, Decimal] = field(default_factory=dict)


def session_sums(conn: Connection, tenant_id: str, partner_id: str, start: datetime, end: datetime) -> SessionSums:
    """Counted and summed here, not in SQL: SQLite would add the decimals as floats."""
    out = SessionSums()
    rows = conn.execute(select(_s.currency, _s.energy_kwh, _s.net_total)
                        .where(*_where(tenant_id, partner_id, start, end)))
    for cur, kwh, net in rows:
        out.sessions += 1
        out.energy_kwh += Decimal(kwh or 0)
        if cur and net is not None:
            out.net[cur] = out.net.get(cur, Decimal(0)) + Decimal(net)
    return out


def payouts(conn: Connection, tenant_id: str, partner_id: str, limit: int = 500) -> Sequence[Any]:
    """Payables to the partner, newest first, with the run that carries each (its approval state)
    and the day the bank showed it paid."""
    p, i, r = payable.c, payout_item.c, payout_run.c
    # at most one live item per payable (``uq_payout_item_live``)
    live = select(i.payable_id, i.run_id).where(
        i.tenant_id == tenant_id, i.status.in_(("proposed", "submitted", "paid"))).subquery()
    stmt = (select(p.id, p.kind, p.amount, p.currency, p.status, p.remittance, p.paid_on, p.created_at, p.iban,
                   r.status.label("run_status"), r.as_of.label("run_as_of"))
            .select_from(payable.outerjoin(live, live.c.payable_id == p.id).outerjoin(payout_run, r.id == live.c.run_id))
            .where(p.tenant_id == tenant_id, p.payee_kind == "partner", p.payee_id == partner_id)
            .order_by(p.created_at.desc(), p.id.desc()).limit(limit))
    return conn.execute(stmt).all()
