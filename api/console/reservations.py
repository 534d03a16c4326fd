"""The console's reservations (issue 18): EVSEs held for a token or a partner, newest first, by
status, with the charger's answer and what became of each (the session that used it, or the one
that bills its expiry). Reading only: reservations are made and cancelled through the API
(``/reservations``), which talks to the chargers."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import Template
from sqlalchemy import select

from api.console.i18n import add_texts
from api.console.pages import _page
from api.console.records import _zone
from api.console.session import console_allow
from store.models import Location, Partner
from store.reservations import RESERVATION_STATUSES, Reservation

__all__ = ["HTML_ROUTES", "handlers"]

HTML_ROUTES = {"GET /console/reservations": "read"}

PAGE = 100

add_texts({
    "reservations": ("Reservierungen", "Reservations"),
    "rsv_title": ("Reservierungen von Ladepunkten", "Reservations of EVSEs"),
    "rsv_help": ("Ladepunkte, die für eine Karte oder einen Partner freigehalten werden. Eine genutzte Reservierung "
                 "berechnet die reservierte Zeit mit dem Ladevorgang, eine abgelaufene als eigenen Posten; "
                 "abgelehnte und stornierte werden nicht berechnet.",
                 "EVSEs held for a card or a partner. A used reservation bills the reserved time with its "
                 "session, an expired one as an item of its own; refused and cancelled ones are not billed."),
    "rsv_evse": ("Ladepunkt", "EVSE"),
    "rsv_site": ("Standort", "Site"),
    "rsv_for": ("Für", "For"),
    "rsv_window": ("Zeitraum", "Window"),
    "rsv_answer": ("Antwort des Ladepunkts", "Charger's answer"),
    "rsv_outcome": ("Ergebnis", "Outcome"),
    "rsv_session": ("Ladevorgang", "Session"),
    "rsv_billed_expiry": ("Ablauf berechnet", "Expiry billed"),
    "rsv_partner": ("Partner {name}", "Partner {name}"),
    "rsv_none": ("Keine Reservierungen für diese Auswahl.", "No reservations for this choice."),
    "rsv_scheduled": ("geplant", "scheduled"), "rsv_requested": ("angefragt", "requested"),
    "rsv_accepted": ("angenommen", "accepted"), "rsv_refused": ("abgelehnt", "refused"),
    "rsv_failed": ("nicht zugestellt", "not delivered"), "rsv_cancelled": ("storniert", "cancelled"),
    "rsv_used": ("genutzt", "used"), "rsv_expired": ("abgelaufen", "expired"),
    # the charger's words (OCPP ReserveNow answers)
    "rsv_ans_Accepted": ("angenommen", "accepted"), "rsv_ans_Faulted": ("gestört", "faulted"),
    "rsv_ans_Occupied": ("belegt", "occupied"), "rsv_ans_Rejected": ("abgelehnt", "rejected"),
    "rsv_ans_Unavailable": ("nicht verfügbar", "unavailable"),
})


@get("/console/reservations", guards=[console_allow("read")], include_in_schema=False)
async def reservation_list(request: Request[Any, Any, Any], status: str | None = None, page: int = 1) -> Template:
    actor = request.user
    status = status if status in RESERVATION_STATUSES else None
    page = min(max(page, 1), 10_000)
    with request.app.state.read_sessions() as db:
        tz = _zone(db, actor.tenant_id)
        q = (select(Reservation, Location.name, Partner.name)
             .join(Location, Location.id == Reservation.location_id)
             .outerjoin(Partner, Partner.id == Reservation.partner_id)
             .where(Reservation.tenant_id == actor.tenant_id))
        if status:
            q = q.where(Reservation.status == status)
        rows = db.execute(q.order_by(Reservation.id.desc()).offset((page - 1) * PAGE)  # type: ignore[attr-defined]
                          .limit(PAGE + 1)).all()
    query = f"&amp;status={status}" if status else ""
    return _page(request, "reservations.html", rows=rows[:PAGE], more=len(rows) > PAGE, page=page, tz=tz,
                 statuses=RESERVATION_STATUSES, status=status or "", query=query)


handlers = [reservation_list]
