"""Which sessions load management serves first at a location (issue 18): one integer per session,
lower first.

Defaults: the depot owner's own fleet ``OWN_FLEET`` (0): tokens of the tenant's own customers (no
issuing partner) and tokens issued by the location's site host; ``PARTNER`` (10): tokens another
partner issued (fleets, eMSPs); ``AD_HOC`` (20): card-paid ad-hoc tags and tokens the tenant does not
know. An access rule of the location with a ``session_priority`` (an allow or limit rule, the first
by the rules' order whose subject matches and whose window holds at ``at``) overrides the default.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.ocpp.access import _contract_active, _holder, _in_window, _rules, _subject_matches
from store.adhoc import is_adhoc_tag
from store.models import Location

__all__ = ["AD_HOC", "OWN_FLEET", "PARTNER", "session_priority"]

OWN_FLEET, PARTNER, AD_HOC = 0, 10, 20


def session_priority(db: Session, tenant_id: str, *, location_id: str | None, id_tag: str, at: datetime,
                     evse_uid: str = "") -> int:
    """The load-management priority of a session of ``id_tag`` at the location (its EVSE
    ``evse_uid``) at ``at`` (aware; the rules' windows are read in the location's zone)."""
    if is_adhoc_tag(id_tag):
        return AD_HOC
    h = _holder(db, tenant_id, id_tag)
    if h is None:
        return AD_HOC
    loc = db.execute(select(Location.site_host_id, Location.timezone).where(
        Location.tenant_id == tenant_id, Location.id == location_id)).first() if location_id else None
    if loc is not None:
        local = at.astimezone(ZoneInfo(loc.timezone or "UTC"))
        active = h.contract_id is not None and _contract_active(h, local.date())
        for rule in _rules(db, tenant_id, location_id or ""):
            if (rule.session_priority is not None and rule.effect != "deny" and rule.evse_uid in ("", evse_uid)
                    and _subject_matches(rule, h, active) and _in_window(rule, local)):
                return rule.session_priority
    if h.partner_id is None or (loc is not None and h.partner_id == loc.site_host_id):
        return OWN_FLEET
    return PARTNER
