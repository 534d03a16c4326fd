"""The console's load management (issue 18): the locations whose capacity is shared among their
running sessions, and per location its capacity, each running session with its priority, the
limit it was sent and the charger's answer, the chargers' default profiles and the recent
history of every profile sent. Reading only: the capacity is set through the API
(``PATCH /locations/{id}``), the gateway sends the profiles."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from litestar import Request, get
from litestar.response import Template
from sqlalchemy import select

from api.console.i18n import add_texts
from api.console.pages import _NotFound, _page
from api.console.records import _zone
from api.console.session import console_allow
from api.ocpp.priority import AD_HOC, OWN_FLEET, PARTNER, session_priorities
from store.load import allocation_of, limit_history, running_sessions
from store.models import ChargePoint, Location

__all__ = ["HTML_ROUTES", "handlers"]

HTML_ROUTES = {"GET /console/load": "read", "GET /console/locations/{location_id:str}/load": "read"}

HISTORY = 50

add_texts({
    "load": ("Lastmanagement", "Load management"),
    "load_title": ("Lastmanagement der Standorte", "Load management of the sites"),
    "load_help": ("Die Anschlussleistung eines Standorts wird unter seinen laufenden Ladevorgängen nach Priorität "
                  "geteilt (eigene Flotte, Partner, Ad-hoc) und mit Ladeprofilen an den Ladepunkten durchgesetzt. "
                  "Die Leistung wird über die API am Standort gesetzt.",
                  "A site's capacity is shared among its running sessions by priority (own fleet, partners, "
                  "ad hoc) and enforced with charging profiles at the chargers. The capacity is set on the "
                  "location through the API."),
    "load_none": ("Kein Standort hat eine begrenzte Anschlussleistung.", "No site has a limited capacity."),
    "load_site": ("Standort", "Site"),
    "load_capacity": ("Anschlussleistung", "Capacity"),
    "load_no_capacity": ("nicht begrenzt", "not limited"),
    "load_running": ("Laufende Ladevorgänge", "Running sessions"),
    "load_allocated": ("Zugeteilt", "Allocated"),
    "load_site_title": ("Lastmanagement: {name}", "Load management: {name}"),
    "load_back": ("Alle Standorte", "All sites"),
    "load_none_running": ("Keine laufenden Ladevorgänge.", "No running sessions."),
    "load_charger": ("Ladestation", "Charger"),
    "load_evse": ("Ladepunkt", "EVSE"),
    "load_since": ("Seit", "Since"),
    "load_priority": ("Priorität", "Priority"),
    "load_limit": ("Gesendete Grenze", "Limit sent"),
    "load_answer": ("Antwort der Ladestation", "Charger's answer"),
    "load_sent_at": ("Gesendet", "Sent"),
    "load_max": ("Maximum des Ladepunkts ({kw}), kein Profil nötig", "EVSE maximum ({kw}), no profile needed"),
    "load_prio_0": ("eigene Flotte", "own fleet"),
    "load_prio_10": ("Partner", "partner"),
    "load_prio_20": ("Ad-hoc", "ad hoc"),
    "load_prio_n": ("Regel: {n}", "rule: {n}"),
    "load_defaults": ("Standardprofile der Ladestationen", "The chargers' default profiles"),
    "load_defaults_help": ("Bevor das Profil eines neuen Ladevorgangs ankommt, begrenzt das Standardprofil "
                           "(TxDefaultProfile) jeden Ladepunkt auf die Anschlussleistung geteilt durch die "
                           "Ladepunkte des Standorts.",
                           "Before a new session's own profile arrives, the default profile (TxDefaultProfile) "
                           "limits each EVSE to the capacity divided by the site's EVSEs."),
    "load_history": ("Verlauf der Ladeprofile", "History of charging profiles"),
    "load_history_help": ("Die letzten {n} gesendeten Profile, neueste zuerst.",
                          "The last {n} profiles sent, newest first."),
    "load_none_sent": ("Noch keine Profile gesendet.", "No profiles sent yet."),
    "load_transaction": ("Vorgang", "Transaction"),
    "load_purpose": ("Art", "Kind"),
    "load_reason": ("Anlass", "Occasion"),
    "load_purpose_TxProfile": ("Ladevorgang", "session"),
    "load_purpose_TxDefaultProfile": ("Standard", "default"),
    "load_reason_session_started": ("Start", "start"),
    "load_reason_session_stopped": ("Ende", "stop"),
    "load_reason_capacity_changed": ("Leistung geändert", "capacity changed"),
    "load_reason_charger_booted": ("Neustart der Station", "charger booted"),
    "load_ans_sent": ("gesendet, ohne Antwort", "sent, no answer yet"),
    "load_ans_Accepted": ("angenommen", "accepted"),
    "load_ans_Rejected": ("abgelehnt", "rejected"),
    "load_ans_NotSupported": ("nicht unterstützt", "not supported"),
    "load_ans_not_connected": ("nicht verbunden", "not connected"),
    "load_ans_failed": ("keine Antwort", "no answer"),
    "load_amperes": ("{a} A je Phase ({phases} × {volts} V)", "{a} A per phase ({phases} × {volts} V)"),
    "load_lifted": ("aufgehoben", "lifted"),
})

_STATUS_CLASS = {"Accepted": "rated", "sent": "starting", "Rejected": "rejected", "NotSupported": "rejected",
                 "not_connected": "failed", "failed": "failed"}


def _kw(w: Decimal | None) -> Decimal | None:
    return None if w is None else w / 1000


@get("/console/load", guards=[console_allow("read")], include_in_schema=False)
async def load_sites(request: Request[Any, Any, Any]) -> Template:
    actor = request.user
    with request.app.state.read_sessions() as db:
        locs = list(db.execute(select(Location).where(Location.tenant_id == actor.tenant_id,
                                                      Location.capacity_kw.is_not(None))  # type: ignore[union-attr]
                               .order_by(Location.name, Location.id)).scalars())
        rows = []
        for loc in locs:
            running = [r for r in running_sessions(db, loc.id) if r.tenant_id == actor.tenant_id]
            rows.append((loc, len(running)))
    return _page(request, "load.html", rows=rows)


@get("/console/locations/{location_id:str}/load", guards=[console_allow("read")], include_in_schema=False)
async def location_load(request: Request[Any, Any, Any], location_id: str) -> Template:
    actor = request.user
    with request.app.state.read_sessions() as db:
        loc = db.execute(select(Location).where(Location.tenant_id == actor.tenant_id,
                                                Location.id == location_id)).scalar()
        if loc is None:
            raise _NotFound
        tz = _zone(db, actor.tenant_id)
        alloc = allocation_of(db, actor.tenant_id, loc.id)
        # the priority load management gives each session now (a limit row keeps the one it was sent at)
        prios = session_priorities(db, actor.tenant_id, location_id=loc.id,
                                   sessions=[(s.id_tag, s.evse_uid) for s, _ in alloc], at=datetime.now(UTC))
        history = limit_history(db, actor.tenant_id, loc.id, HISTORY)
        cps = {s.charge_point_id for s, _ in alloc} | {h.charge_point_id for h in history}
        names: dict[str, str] = {}
        for cp_id, identity in db.execute(select(ChargePoint.id, ChargePoint.identity).where(
                ChargePoint.id.in_(sorted(cps)))):  # type: ignore[attr-defined]
            names[cp_id] = identity
    sessions, allocated = [], Decimal(0)
    for (s, lim), prio in zip(alloc, prios):
        limit_kw = _kw(lim.limit_w) if lim is not None else None
        allocated += limit_kw if limit_kw is not None else (s.max_power_kw or Decimal(0))
        sessions.append({"s": s, "lim": lim, "priority": lim.priority if lim is not None and lim.priority is not None
                         else prio, "limit_kw": limit_kw})
    defaults: dict[str, Any] = {}
    for h in history:  # newest first: the newest default of each charger
        if h.purpose == "TxDefaultProfile":
            defaults.setdefault(h.charge_point_id, h)
    return _page(request, "location_load.html", loc=loc, tz=tz, sessions=sessions, allocated=allocated,
                 defaults=sorted(defaults.values(), key=lambda h: names.get(h.charge_point_id, "")),
                 history=history, names=names, kw=_kw, status_class=_STATUS_CLASS, history_n=HISTORY,
                 named_priorities=(OWN_FLEET, PARTNER, AD_HOC))


handlers = [load_sites, location_load]
