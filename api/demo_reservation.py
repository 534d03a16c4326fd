"""The demo's reservation (issue 18): an operator reserves a DC charging point for a customer's card
through the API while the simulated charger is connected; the charger (``ReservingCharger``: the
ad-hoc part's simulated 1.6J charger, answering ReserveNow Accepted) accepts; the customer arrives
a quarter of an hour into the window and starts with that reservation (StartTransaction names its
``reservationId``), charges 12 kWh in 30 minutes and stops; the session is rated with the reserved
quarter of an hour (public_cpo's ``reservation 2.40 per h``: a German ``Reservierung`` line).

The window starts when the demo runs (a reservation is made for now), but the numbers do not
depend on the hour: the start is the window's start plus 15 minutes, the charge 30 minutes, and
the DC tariff has no time-of-day price.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ocpp.routing import on
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action

from api.demo_adhoc import AdhocCharger, connected

if TYPE_CHECKING:
    from api.demo_system import SystemRun

CHARGER = "MARKT-DC-1"  # the market square's 150 kW hub: priced the same day and night
EVSE = "DE*SWM*E3*1"
METER_START_WH = 3_000_000  # beyond what the month and the ad-hoc charger reported
ARRIVES_AFTER = timedelta(minutes=15)
CHARGES_FOR = timedelta(minutes=30)
ENERGY_WH = 12_000


class ReservingCharger(AdhocCharger):
    """The simulated charger, also holding reservations: ReserveNow answered Accepted, kept."""

    reservations: dict[int, dict[str, Any]]

    @on(Action.reserve_now)
    def on_reserve_now(self, connector_id: int, expiry_date: str, id_tag: str, reservation_id: int,
                       **kw: Any) -> Any:
        if not hasattr(self, "reservations"):
            self.reservations = {}
        self.reservations[reservation_id] = {"connector_id": connector_id, "id_tag": id_tag, "expiry": expiry_date}
        return call_result.ReserveNow(status="Accepted")


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def reserve_and_charge(run: SystemRun, not_for: str = "") -> dict[str, Any]:
    """The reservation end to end, for the first customer's card but ``not_for``'s (the dunned
    customer's cards are blocked by then); -> the counts and amounts for summary.json (no dates:
    the window is the day the demo runs)."""
    from sqlalchemy import select

    from api.demo_system import CUSTOMERS
    from runtime.documents.from_invoice import component_label
    from store.models import ChargingSession, RatedLineRow
    from store.ocpp import OcppTransaction
    from store.types import utcnow

    gw = run.ids["gateway"]
    token = next(tok for (name, *_rest), tok in zip(CUSTOMERS, run.ids["tokens"], strict=True) if name != not_for)
    with connected(f"ws://127.0.0.1:{gw.port}/ocpp/{CHARGER}", CHARGER, run.chargers[CHARGER],
                   meter_wh=METER_START_WH, charger_class=ReservingCharger) as cp:
        now = utcnow().replace(microsecond=0)
        r = run.client.post("/reservations", json={"evse_uid": EVSE, "id_tag": token,
                                                   "expiry": _iso(now + timedelta(hours=1)),
                                                   "description": "Kunde kommt in 15 Minuten"},
                            headers=run.h("operator"))
        if r.status_code != 201 or r.json()["status"] != "accepted":
            raise RuntimeError(f"the reservation was not accepted: {r.status_code} {r.text}")
        made = r.json()
        held = getattr(cp, "reservations", {}).get(made["ocpp_id"])
        t0 = datetime.fromisoformat(made["start"]) + ARRIVES_AFTER

        async def drive() -> tuple[int, str]:
            res = await cp.call(call.StartTransaction(connector_id=1, id_tag=token, meter_start=cp.meter,
                                                      timestamp=_iso(t0), reservation_id=made["ocpp_id"]))
            await cp.call(call.StopTransaction(meter_stop=cp.meter + ENERGY_WH, timestamp=_iso(t0 + CHARGES_FOR),
                                               transaction_id=res.transaction_id, id_tag=token, reason="Local"))
            return int(res.transaction_id), str(res.id_tag_info["status"])

        assert cp.loop is not None
        tx_id, auth = asyncio.run_coroutine_threadsafe(drive(), cp.loop).result(60)
    assert gw.loop is not None
    asyncio.run_coroutine_threadsafe(gw.idle(), gw.loop).result(60)  # the session stored and rated
    got = run.client.get(f"/reservations/{made['id']}", headers=run.h("auditor")).json()
    with run.engine.connect() as conn:
        session_id = conn.execute(select(OcppTransaction.session_id).where(OcppTransaction.id == tx_id)).scalar()
        ses = conn.execute(select(ChargingSession.current_rating_id, ChargingSession.net_total,
                                  ChargingSession.gross_total, ChargingSession.status)
                           .where(ChargingSession.id == session_id)).one_or_none()
        lines = {} if ses is None else {
            row.component: row for row in conn.execute(select(RatedLineRow).where(
                RatedLineRow.rating_id == ses.current_rating_id))}
    line = lines.get("reservation")
    return {
        "made": 1, "accepted": int(made["status"] == "accepted" and held is not None),
        "used": int(got.get("status") == "used" and got.get("transaction_id") == tx_id),
        "evse": EVSE, "start_authorized": auth, "session_status": ses.status if ses else "",
        "reserved_minutes": int(ARRIVES_AFTER.total_seconds() // 60),
        "reservation_line": component_label("reservation", "de") if line is not None else "",
        "reservation_net": format(Decimal(line.net_rounded), "f") if line is not None else "0",
        "energy_kwh": format(Decimal(ENERGY_WH) / 1000, "f"),
        "session_net": format(ses.net_total, "f") if ses else "0",
        "session_gross": format(ses.gross_total, "f") if ses else "0",
        "currency": line.currency if line is not None else "",
    }
