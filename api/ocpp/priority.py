"""Which sessions load management serves first at a location (issue 18): one integer per session,
lower first.

Defaults: the depot owner's own fleet ``OWN_FLEET`` (0): tokens of the tenant's own customers (no
issuing partner) and tokens issued by the location's site host; ``PARTNER`` (10): tokens another
partner issued (fleets, eMSPs); ``AD_HOC`` (20): card-paid ad-hoc tags and tokens the tenant does not
know. An access rule of the location with a ``session_priority`` (an allow or limit rule, the first
by the rules' order whose subject matches and whose window holds at ``at``) overrides the default.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.ocpp.access import _contract_active, _Holder, _holders, _in_window, _Rule, _rules, _subject_matches
from store.adhoc import is_adhoc_tag
from store.models import Location

__all__ = ["AD_HOC", "OWN_FLEET", "PARTNER", "session_priorities", "session_priority"]

OWN_FLEET, PARTNER, AD_HOC = 0, 10, 20


def session_priority(db: Session, tenant_id: str, *, location_id: str | None, id_tag: str, at: datetime,
                     evse_uid: str = "") -> int:
    """The load-management priority of a session of ``id_tag`` at the location (its EVSE
    ``evse_uid``) at ``at`` (aware; the rules' windows are read in the location's zone)."""
    return session_priorities(db, tenant_id, location_id=location_id, sessions=[(id_tag, evse_uid)], at=at)[0]


def session_priorities(db: Session, tenant_id: str, *, location_id: str | None,
                       sessions: Sequence[tuple[str, str]], at: datetime) -> list[int]:
    """``session_priority`` of many sessions at one location, ``(id_tag, evse_uid)`` each, in
    order: the location, the tokens (one query per 500) and the rules read once, not per session
    (a recompute at a busy depot takes dozens of new sessions at a time, on the gateway's loop)."""
    if not sessions:
        return []
    holders = _holders(db, tenant_id, (t for t, _ in sessions if not is_adhoc_tag(t)))
    loc = db.execute(select(Location.site_host_id, Location.timezone).where(
        Location.tenant_id == tenant_id, Location.id == location_id)).first() if location_id else None
    local = at.astimezone(ZoneInfo(loc.timezone or "UTC")) if loc is not None else at
    rules = [r for r in _rules(db, tenant_id, location_id or "") if r.session_priority is not None
             and r.effect != "deny" and _in_window(r, local)] if loc is not None else []
    out: list[int] = []
    for id_tag, evse_uid in sessions:
        h = None if is_adhoc_tag(id_tag) else holders.get(id_tag)
        out.append(AD_HOC if h is None else _priority_of(h, loc, rules, local, evse_uid))
    return out


def _priority_of(h: _Holder, loc: Any, rules: list[_Rule], local: datetime, evse_uid: str) -> int:
    if rules:
        active = h.contract_id is not None and _contract_active(h, local.date())
        for rule in rules:
            if rule.evse_uid in ("", evse_uid) and _subject_matches(rule, h, active):
                return rule.session_priority  # type: ignore[return-value]  (filtered: not None)
    if h.partner_id is None or (loc is not None and h.partner_id == loc.site_host_id):
        return OWN_FLEET
    return PARTNER
