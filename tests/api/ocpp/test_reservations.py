"""Reservations (issue 18) over real WebSockets, OCPP 1.6J and 2.0.1, SQLite and PostgreSQL: the API
reserves an EVSE, the charger gets ReserveNow and its answer is stored; refused ones are never
billed, cancelled ones get CancelReservation, a used one's session prices the reserved time, an
expired one becomes a session of its own priced with ``reservation_expires``; bad requests are
4xx problems.

Reservation windows are checked against the wall clock (a reservation is made for now or later),
so the tests make them relative to ``utcnow``; the tariff has no time-of-day conditions, so no
price depends on the hour the tests run at."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from ocpp.routing import on
from ocpp.v16 import call
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201
from sqlalchemy import select

from api.ocpp.reservations import expire_due, sweep
from store.models import ChargingSession, RatedLineRow
from store.reservations import Reservation
from store.types import utcnow
from tests.api.conftest import _ok, publish_ruleset
from tests.api.ocpp.conftest import Charger16, Charger201, OcppEnv, connect, run

RESV_TARIFF = """ruleset resvtest currency EUR timezone Europe/Berlin
tariff standard "Standard" {
  vat 19%
  start_fee 0.50
  energy 0.40 per kWh
  when reservation_expires {
    reservation 3.00 per h
    reservation_fee 2.00
  }
  reservation 1.20 per h
  reservation_fee 1.00
}
"""


class ResCharger16(Charger16):
    reserve_answer = "Accepted"
    cancel_answer = "Accepted"

    @on(Action16.reserve_now)
    def on_reserve_now(self, connector_id: int, expiry_date: str, id_tag: str, reservation_id: int,
                       **kw: Any) -> Any:
        self.remote.append(("ReserveNow", {"connector_id": connector_id, "expiry_date": expiry_date,
                                           "id_tag": id_tag, "reservation_id": reservation_id, **kw}))
        return result16.ReserveNow(status=self.reserve_answer)

    @on(Action16.cancel_reservation)
    def on_cancel_reservation(self, reservation_id: int) -> Any:
        self.remote.append(("CancelReservation", {"reservation_id": reservation_id}))
        return result16.CancelReservation(status=self.cancel_answer)


class ResCharger201(Charger201):
    reserve_answer = "Accepted"

    @on(Action201.reserve_now)
    def on_reserve_now(self, id: int, expiry_date_time: str, id_token: dict[str, Any], **kw: Any) -> Any:
        self.remote.append(("ReserveNow", {"id": id, "expiry_date_time": expiry_date_time, "id_token": id_token,
                                           **kw}))
        return result201.ReserveNow(status=self.reserve_answer)

    @on(Action201.cancel_reservation)
    def on_cancel_reservation(self, reservation_id: int, **kw: Any) -> Any:
        self.remote.append(("CancelReservation", {"reservation_id": reservation_id}))
        return result201.CancelReservation(status="Accepted")


@pytest.fixture(scope="module")
def site(ocpp_env: OcppEnv) -> dict[str, str]:
    """A location of its own, priced by a ruleset with reservation components, two chargers of
    one EVSE each (1.6J and 2.0.1) and a second 1.6J EVSE for 'any free EVSE of the location'."""
    oe = ocpp_env
    c, a = oe.client, oe.env.a
    rs = publish_ruleset(c, a, "resvtest", RESV_TARIFF, "2021-01-01T00:00:00Z")["id"]
    loc = _ok(c.post("/locations", json={"code": "resv_site", "name": "Depot", "country": "DE",
                                         "timezone": "Europe/Berlin", "ruleset_id": rs}, headers=a.h()))["id"]
    oe.add_charger("RSV16", location_id=loc, evse_uid="DE*EVB*RSV16*1")
    oe.add_charger("RSV16B", location_id=loc, evse_uid="DE*EVB*RSV16B*1")
    oe.add_charger("RSV201", location_id=loc, evse_uid="DE*EVB*RSV201*1")
    return {"location_id": loc, "ruleset_id": rs}


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def _post(oe: OcppEnv, path: str, body: Any = None) -> Any:
    return asyncio.to_thread(oe.client.post, path, json=body, headers=oe.h("operator"))


def _reservation(oe: OcppEnv, rid: str) -> Reservation:
    with oe.db() as db:
        r = db.get(Reservation, rid)
        assert r is not None
        db.expunge(r)
        return r


def _lines(oe: OcppEnv, session_id: str) -> dict[str, RatedLineRow]:
    with oe.db() as db:
        s = db.get(ChargingSession, session_id)
        assert s is not None
        rows = db.execute(select(RatedLineRow).where(RatedLineRow.rating_id == s.current_rating_id)).scalars()
        return {r.component: r for r in rows}


def _sessions_of(oe: OcppEnv, rid: str) -> list[ChargingSession]:
    with oe.db() as db:
        return list(db.execute(select(ChargingSession).where(
            ChargingSession.external_id == f"reservation:{rid}")).scalars())


def test_reservations_16_accepted_refused_cancelled_used_expired(ocpp_env: OcppEnv, site: dict[str, str]) -> None:
    oe = ocpp_env
    now = utcnow().replace(microsecond=0)
    evse = "DE*EVB*RSV16*1"

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with connect(oe, "RSV16", charger=ResCharger16) as cp:
            # accepted, then cancelled: CancelReservation with the same reservationId
            r = await _post(oe, "/reservations", {"evse_uid": evse, "id_tag": "TOK-alpha",
                                                  "expiry": _iso(now + timedelta(hours=1))})
            out["accepted"] = (r.status_code, r.json())
            # the same EVSE in an overlapping window: refused before anything is sent
            r = await _post(oe, "/reservations", {"evse_uid": evse, "id_tag": "TOK-alpha",
                                                  "start": _iso(now + timedelta(minutes=30)),
                                                  "expiry": _iso(now + timedelta(hours=2))})
            out["overlap"] = (r.status_code, r.json())
            rid = out["accepted"][1]["id"]
            r = await _post(oe, f"/reservations/{rid}/cancel")
            out["cancel"] = (r.status_code, r.json())
            r = await _post(oe, f"/reservations/{rid}/cancel")
            out["cancel_again"] = (r.status_code, r.json())
            # refused by the charger: stored with its answer, never billed
            cp.reserve_answer = "Occupied"
            r = await _post(oe, "/reservations", {"evse_uid": evse, "id_tag": "TOK-alpha",
                                                  "expiry": _iso(now + timedelta(hours=1))})
            out["refused"] = (r.status_code, r.json())
            cp.reserve_answer = "Accepted"
            # used: the transaction names the reservation, 30 minutes after the reservation's start
            r = await _post(oe, "/reservations", {"evse_uid": evse, "id_tag": "TOK-alpha",
                                                  "expiry": _iso(now + timedelta(hours=1))})
            out["used"] = (r.status_code, r.json())
            used = out["used"][1]
            t0 = datetime.fromisoformat(used["start"]) + timedelta(minutes=30)
            start = await cp.call(call.StartTransaction(connector_id=1, id_tag="TOK-alpha", meter_start=0,
                                                        timestamp=_iso(t0), reservation_id=used["ocpp_id"]))
            out["start"] = start
            await cp.call(call.StopTransaction(meter_stop=10000, timestamp=_iso(t0 + timedelta(hours=1)),
                                               transaction_id=start.transaction_id, id_tag="TOK-alpha"))
            out["remote"] = list(cp.remote)
        return out

    out = run(scenario())
    oe.idle()
    s, acc = out["accepted"]
    assert s == 201 and acc["status"] == "accepted" and acc["charger_status"] == "Accepted", acc
    assert acc["evse_uid"] == evse and acc["ocpp_version"] == "1.6" and acc["connector_id"] == 1
    assert out["overlap"][0] == 409 and out["overlap"][1]["code"] == "evse_reserved", out["overlap"]
    reserve = [a for a in out["remote"] if a[0] == "ReserveNow"]
    assert reserve[0][1]["connector_id"] == 1 and reserve[0][1]["id_tag"] == "TOK-alpha"
    assert reserve[0][1]["reservation_id"] == acc["ocpp_id"]
    assert datetime.fromisoformat(reserve[0][1]["expiry_date"]) == now + timedelta(hours=1)
    assert ("CancelReservation", {"reservation_id": acc["ocpp_id"]}) in out["remote"]
    assert out["cancel"][0] == 200 and out["cancel"][1]["status"] == "cancelled", out["cancel"]
    assert out["cancel"][1]["cancel_status"] == "Accepted"
    assert out["cancel_again"][0] == 409 and out["cancel_again"][1]["code"] == "reservation_not_active"
    s, ref = out["refused"]
    assert s == 201 and (ref["status"], ref["charger_status"]) == ("refused", "Occupied"), ref
    # used: the session carries the reserved half hour, priced by the reservation components
    used = _reservation(oe, out["used"][1]["id"])
    assert used.status == "used" and used.transaction_id == out["start"].transaction_id
    [ses] = oe.sessions("RSV16")
    lines = _lines(oe, ses.id)
    assert lines["reservation"].quantity == Decimal("0.5") and lines["reservation"].net == Decimal("0.600")
    assert lines["reservation_fee"].net == Decimal("1.00")
    assert lines["energy"].quantity == Decimal(10) and lines["start_fee"].net == Decimal("0.50")
    assert ses.facts["reservation"] == "RESERVATION"
    # none of the refused, cancelled or used ones is billed on its own, even after their expiry
    expire_due_at(oe, now + timedelta(hours=3))
    for rid in (acc["id"], ref["id"], used.id):
        assert _sessions_of(oe, rid) == []
    assert [(_reservation(oe, r).status) for r in (acc["id"], ref["id"], used.id)] == ["cancelled", "refused", "used"]


async def sweep_at(oe: OcppEnv, at: datetime) -> None:
    assert oe.gw.loop is not None
    await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(sweep(oe.gw, at), oe.gw.loop))


def expire_due_at(oe: OcppEnv, at: datetime) -> list[str]:
    with oe.db() as db:
        return expire_due(db, at)


def test_expired_16_reservation_is_billed_with_reservation_expires(ocpp_env: OcppEnv, site: dict[str, str]) -> None:
    oe = ocpp_env
    now = utcnow().replace(microsecond=0)

    async def scenario() -> Any:
        async with connect(oe, "RSV16", charger=ResCharger16):
            r = await _post(oe, "/reservations", {"evse_uid": "DE*EVB*RSV16*1", "id_tag": "TOK-alpha",
                                                  "start": _iso(now + timedelta(hours=10)),
                                                  "expiry": _iso(now + timedelta(hours=12))})
            return r.status_code, r.json()

    s, body = run(scenario())
    # a later window is scheduled: the gateway sends it when it starts
    assert s == 201 and body["status"] == "scheduled" and body["sent_at"] is None, body
    with oe.db() as db:
        db.execute(Reservation.__table__.update().where(Reservation.id == body["id"]).values(  # type: ignore[attr-defined]
            status="accepted", charger_status="Accepted", ocpp_version="1.6"))
        db.commit()
    assert expire_due_at(oe, now + timedelta(hours=11)) == []  # not yet
    assert expire_due_at(oe, now + timedelta(hours=12)) == [body["id"]]
    r = _reservation(oe, body["id"])
    assert r.status == "expired" and r.session_id is not None
    [ses] = _sessions_of(oe, body["id"])
    assert ses.id == r.session_id and ses.source == "reservation" and ses.status == "rated"
    assert ses.customer_id == oe.ids["customer_id"] and ses.contract_id == oe.ids["contract_id"]
    lines = _lines(oe, ses.id)
    assert set(lines) == {"reservation", "reservation_fee"}
    assert lines["reservation"].quantity == Decimal(2) and lines["reservation"].net == Decimal("6.00")
    assert lines["reservation_fee"].net == Decimal("2.00")
    assert ses.net_total == Decimal("8.00") and ses.gross_total == Decimal("9.52")
    # billed once: a second sweep finds nothing
    assert expire_due_at(oe, now + timedelta(hours=13)) == []
    assert len(_sessions_of(oe, body["id"])) == 1
    # the API reads it as the sweep left it
    got = _ok(oe.client.get(f"/reservations/{body['id']}", headers=oe.h("auditor")))
    assert got["status"] == "expired" and got["session_id"] == ses.id


def test_reservations_201_accepted_used_expired_removed(ocpp_env: OcppEnv, site: dict[str, str]) -> None:
    oe = ocpp_env
    now = utcnow().replace(microsecond=0)
    evse = "DE*EVB*RSV201*1"
    tok = {"idToken": "TOK-alpha", "type": "ISO14443"}

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with connect(oe, "RSV201", "2.0.1", charger=ResCharger201) as cp:
            ids = []
            for minutes in (20, 40, 60):
                r = await _post(oe, "/reservations", {"evse_uid": evse, "id_tag": "TOK-alpha",
                                                      "start": _iso(now + timedelta(minutes=minutes - 20)),
                                                      "expiry": _iso(now + timedelta(minutes=minutes))})
                assert r.status_code == 201, r.text
                ids.append(r.json())
            out["created"] = ids
            # the first is used by a transaction that names it
            first = ids[0]
            t0 = datetime.fromisoformat(first["start"]) + timedelta(minutes=15)
            evs = [call201.TransactionEvent(
                event_type="Started", timestamp=_iso(t0), trigger_reason="Authorized", seq_no=0,
                transaction_info={"transactionId": "TX-RSV-1"}, id_token=tok, evse={"id": 1, "connectorId": 1},
                reservation_id=first["ocpp_id"],
                meter_value=[{"timestamp": _iso(t0), "sampledValue": [{"value": 0, "context": "Transaction.Begin"}]}]),
                call201.TransactionEvent(
                event_type="Ended", timestamp=_iso(t0 + timedelta(minutes=30)), trigger_reason="EVDeparted",
                seq_no=1, transaction_info={"transactionId": "TX-RSV-1", "stoppedReason": "EVDisconnected"},
                meter_value=[{"timestamp": _iso(t0 + timedelta(minutes=30)),
                              "sampledValue": [{"value": 5000, "context": "Transaction.End"}]}])]
            for ev in evs:
                await cp.call(ev)
            out["before_sweep"] = [a[1]["id"] for a in cp.remote if a[0] == "ReserveNow"]
            # the gateway's sweep sends each scheduled one when its window starts; the charger
            # reports the second expired and removes the third
            await sweep_at(oe, now + timedelta(minutes=25))
            await cp.call(call201.ReservationStatusUpdate(reservation_id=ids[1]["ocpp_id"],
                                                          reservation_update_status="Expired"))
            await sweep_at(oe, now + timedelta(minutes=45))
            await cp.call(call201.ReservationStatusUpdate(reservation_id=ids[2]["ocpp_id"],
                                                          reservation_update_status="Removed"))
            out["remote"] = list(cp.remote)
        return out

    out = run(scenario())
    oe.idle()
    created = out["created"]
    reserve = [a for a in out["remote"] if a[0] == "ReserveNow"]
    assert out["before_sweep"] == [created[0]["ocpp_id"]]
    assert [c["status"] for c in created] == ["accepted", "scheduled", "scheduled"]
    assert [a[1]["id"] for a in reserve] == [c["ocpp_id"] for c in created]
    assert reserve[0][1]["evse_id"] == 1 and reserve[0][1]["id_token"] == {"id_token": "TOK-alpha",
                                                                             "type": "ISO14443"}
    used, expired, removed = (_reservation(oe, c["id"]) for c in created)
    assert {r.ocpp_version for r in (used, expired, removed)} == {"2.0.1"}
    assert all(r.charger_status == "Accepted" and r.sent_at is not None for r in (used, expired, removed))
    assert used.status == "used" and used.transaction_id is not None
    [ses] = oe.sessions("RSV201")
    lines = _lines(oe, ses.id)
    assert lines["reservation"].quantity == Decimal("0.25") and lines["reservation"].net == Decimal("0.300")
    assert lines["energy"].quantity == Decimal(5)
    assert expired.status == "expired" and expired.end_reason == "the charger reported it expired"
    assert expired.session_id is not None
    exp_lines = _lines(oe, expired.session_id)
    # 20 minutes at 3.00 per h: the engine keeps 1200 s / 3600 exact to 28 places, the line rounds it
    assert exp_lines["reservation"].net_rounded == Decimal("1.00") and exp_lines["reservation_fee"].net == Decimal("2.00")
    assert removed.status == "cancelled" and "Removed" in removed.end_reason and removed.session_id is None


def test_any_free_evse_of_a_location_and_a_partner(ocpp_env: OcppEnv, site: dict[str, str]) -> None:
    oe = ocpp_env
    now = utcnow().replace(microsecond=0)

    async def scenario() -> list[Any]:
        async with connect(oe, "RSV16", charger=ResCharger16) as a, connect(oe, "RSV16B", charger=ResCharger16) as b:
            replies = []
            for _ in range(2):
                r = await _post(oe, "/reservations", {"location_id": site["location_id"],
                                                      "partner_id": oe.ids["emsp_partner_id"],
                                                      "start": _iso(now + timedelta(days=2)),
                                                      "expiry": _iso(now + timedelta(days=2, hours=1))})
                replies.append((r.status_code, r.json()))
            # the location's EVSEs: RSV16, RSV16B, RSV201 (not connected now, but the window is later)
            r = await _post(oe, "/reservations", {"location_id": site["location_id"], "id_tag": "TOK-alpha",
                                                  "start": _iso(now + timedelta(days=2)),
                                                  "expiry": _iso(now + timedelta(days=2, hours=1))})
            replies.append((r.status_code, r.json()))
            r = await _post(oe, "/reservations", {"location_id": site["location_id"], "id_tag": "TOK-alpha",
                                                  "start": _iso(now + timedelta(days=2)),
                                                  "expiry": _iso(now + timedelta(days=2, hours=1))})
            replies.append((r.status_code, r.json()))
            # sent now, to a partner: idTag and parentIdTag are the partner's group tag
            r = await _post(oe, "/reservations", {"evse_uid": "DE*EVB*RSV16B*1", "partner_id": oe.ids["emsp_partner_id"],
                                                  "expiry": _iso(now + timedelta(minutes=30))})
            replies.append((r.status_code, r.json()))
            # the charger does not hold it any more: its Rejected is a 409, the reservation stays
            b.cancel_answer = "Rejected"
            r = await _post(oe, f"/reservations/{replies[-1][1]['id']}/cancel")
            replies.append((r.status_code, r.json()))
            b.cancel_answer = "Accepted"
            r = await _post(oe, f"/reservations/{replies[-2][1]['id']}/cancel")
            replies.append((r.status_code, r.json()))
            replies.append(list(a.remote) + list(b.remote))
            return replies

    first, second, third, fourth, sent, rejected, cancelled_now, remote = run(scenario())
    assert rejected[0] == 409 and rejected[1]["code"] == "cancel_rejected", rejected
    assert cancelled_now[0] == 200 and cancelled_now[1]["status"] == "cancelled", cancelled_now
    assert cancelled_now[1]["cancel_status"] == "Accepted"
    evses = [x[1]["evse_uid"] for x in (first, second, third)]
    assert [x[0] for x in (first, second, third)] == [201, 201, 201], (first, second, third)
    assert sorted(evses) == ["DE*EVB*RSV16*1", "DE*EVB*RSV16B*1", "DE*EVB*RSV201*1"]
    assert all(x[1]["status"] == "scheduled" for x in (first, second, third))
    assert first[1]["partner_id"] == oe.ids["emsp_partner_id"] and first[1]["id_tag"].startswith("GRP-")
    assert fourth[0] == 409 and fourth[1]["code"] == "no_free_evse", fourth
    assert sent[0] == 201 and sent[1]["status"] == "accepted", sent
    [(_, args)] = [x for x in remote if x[0] == "ReserveNow"]
    assert args["id_tag"] == sent[1]["id_tag"] and args["parent_id_tag"] == sent[1]["id_tag"]
    listed = _ok(oe.client.get("/reservations", params={"location_id": site["location_id"], "status": "scheduled"},
                               headers=oe.h("auditor")))["items"]
    assert {x["id"] for x in (first[1], second[1], third[1])} <= {x["id"] for x in listed}
    assert all(x["status"] == "scheduled" for x in listed)
    by_partner = _ok(oe.client.get("/reservations", params={"partner_id": oe.ids["emsp_partner_id"]},
                                   headers=oe.h()))["items"]
    assert {x["partner_id"] for x in by_partner} == {oe.ids["emsp_partner_id"]} and len(by_partner) == 3
    # cancelling a scheduled one sends nothing
    cancelled = _ok(oe.client.post(f"/reservations/{third[1]['id']}/cancel", headers=oe.h()))
    assert cancelled["status"] == "cancelled" and cancelled["cancel_status"] == ""


def test_bad_reservation_requests(ocpp_env: OcppEnv, site: dict[str, str]) -> None:
    oe = ocpp_env
    c, h = oe.client, oe.h("operator")
    now = utcnow().replace(microsecond=0)
    later = _iso(now + timedelta(hours=1))

    def post(body: dict[str, Any]) -> tuple[int, str]:
        r = c.post("/reservations", json=body, headers=h)
        assert r.headers["content-type"].startswith("application/problem+json"), r.text
        return r.status_code, r.json().get("code", "")

    assert post({"evse_uid": "DE*NOPE*1", "id_tag": "TOK-alpha", "expiry": later}) == (404, "evse_not_found")
    assert post({"location_id": "loc_nope", "id_tag": "TOK-alpha", "expiry": later}) == (404, "location_not_found")
    assert post({"evse_uid": "DE*EVB*RSV16*1", "id_tag": "NOBODY", "expiry": later}) == (404, "token_not_found")
    assert post({"evse_uid": "DE*EVB*RSV16*1", "partner_id": "par_nope", "expiry": later}) == (404, "partner_not_found")
    assert post({"evse_uid": "DE*EVB*RSV16*1", "location_id": site["location_id"], "id_tag": "TOK-alpha",
                 "expiry": later}) == (422, "evse_or_location")
    assert post({"evse_uid": "DE*EVB*RSV16*1", "expiry": later}) == (422, "token_or_partner")
    assert post({"evse_uid": "DE*EVB*RSV16*1", "id_tag": "TOK-alpha", "start": later,
                 "expiry": _iso(now + timedelta(minutes=30))}) == (422, "reservation_window_inverted")
    assert post({"evse_uid": "DE*EVB*RSV16*1", "id_tag": "TOK-alpha", "start": _iso(now - timedelta(hours=3)),
                 "expiry": _iso(now - timedelta(hours=1))}) == (422, "reservation_window_past")
    assert post({"evse_uid": "DE*EVB*RSV16*1", "id_tag": "TOK-alpha",
                 "expiry": _iso(now + timedelta(days=9))}) == (422, "reservation_window_too_long")
    assert post({"evse_uid": "DE*EVB*RSV16*1", "id_tag": "TOK-alpha", "expiry": "tomorrow"})[0] == 400
    # now, to a charger that is not connected: 409, nothing stored
    with oe.db() as db:
        before = len(list(db.execute(select(Reservation.id)).scalars()))
    assert post({"evse_uid": "DE*EVB*RSV16*1", "id_tag": "TOK-alpha", "expiry": later}) == (
        409, "charge_point_not_connected")
    with oe.db() as db:
        assert len(list(db.execute(select(Reservation.id)).scalars())) == before
    r = c.get("/reservations", params={"status": "bogus"}, headers=h)
    assert r.status_code == 400
    assert c.get("/reservations/rsv_nope", headers=h).status_code == 404
    assert c.post("/reservations/rsv_nope/cancel", headers=h).json()["code"] == "reservation_not_found"
    # the other tenant sees none of them
    assert _ok(c.get("/reservations", headers=oe.env.b.h()))["items"] == []


def test_an_answer_stored_after_the_start_that_used_it_keeps_it_used(ocpp_env: OcppEnv,
                                                                    site: dict[str, str]) -> None:
    """The charger's StartTransaction naming the reservation can be stored before its ReserveNow
    answer is: the reservation stays used, the answer is kept."""
    from api.ocpp.reservations import apply_answer, insert, link_start
    from api.ocpp.service import load_charge_point

    oe = ocpp_env
    now = utcnow()
    with oe.db() as db:
        cp = load_charge_point(db, "RSV16B")
        assert cp is not None
        base = {"tenant_id": cp.tenant_id, "location_id": site["location_id"], "charge_point_id": cp.id,
                "evse_uid": "DE*EVB*RSV16B*1", "connector_id": 1, "id_tag": "TOK-alpha",
                "start": now + timedelta(days=20), "expiry": now + timedelta(days=20, hours=1)}
        r = insert(db, {**base, "id": "rsv_race_1", "status": "requested"})
        db.commit()
        assert link_start(db, cp, 4242, r.ocpp_id, now + timedelta(days=20, minutes=5)) == r.id
        apply_answer(db, r.id, "Accepted")
        db.commit()
        # a transaction naming a reservation of another charger, or one not accepted, uses nothing
        assert link_start(db, cp, 4243, r.ocpp_id, now) is None
        assert link_start(db, cp, 4244, 1, now) is None
    r = _reservation(oe, "rsv_race_1")
    assert (r.status, r.charger_status, r.transaction_id) == ("used", "Accepted", 4242)


def test_a_16_start_without_reservation_id_is_matched_to_its_reservation(ocpp_env: OcppEnv,
                                                                       site: dict[str, str]) -> None:
    """Many 1.6J chargers leave ``reservationId`` out of StartTransaction. A start at the reserved
    connector inside the window by the reserved id tag, or for a partner's reservation by one of the
    partner's tokens, used it: its reserved time is priced. Another tag leaves it accepted."""
    oe = ocpp_env
    now = utcnow().replace(microsecond=0)
    evse, partner_tok = "DE*EVB*RSV16B*1", f"TOK-{oe.env.a.name}"  # the eMSP partner's token
    # a card of the customer's own, issued by no partner
    _ok(oe.client.post("/tokens", json={"uid": "TOK-own", "contract_id": oe.ids["contract_id"]}, headers=oe.h()))

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with connect(oe, "RSV16B", charger=ResCharger16) as cp:
            r = await _post(oe, "/reservations", {"evse_uid": evse, "id_tag": "TOK-own",
                                                  "expiry": _iso(now + timedelta(hours=1))})
            out["tag"] = tag = r.json()
            t0 = datetime.fromisoformat(tag["start"]) + timedelta(minutes=20)
            out["tag_start"] = s = await cp.call(call.StartTransaction(connector_id=1, id_tag="TOK-own",
                                                                       meter_start=0, timestamp=_iso(t0)))
            await cp.call(call.StopTransaction(meter_stop=5000, timestamp=_iso(t0 + timedelta(minutes=60)),
                                               transaction_id=s.transaction_id, id_tag="TOK-own"))
            # for the partner, from 90 minutes on: the gateway's sweep sends it when it starts
            r = await _post(oe, "/reservations", {"evse_uid": evse, "partner_id": oe.ids["emsp_partner_id"],
                                                  "start": _iso(now + timedelta(minutes=90)),
                                                  "expiry": _iso(now + timedelta(minutes=150))})
            out["partner"] = par = r.json()
            await sweep_at(oe, now + timedelta(minutes=90))
            out["reserved_cps"] = set(oe.gw.reserved_cps or ())
            t1 = now + timedelta(minutes=100)
            # another tag, not the partner's: the reservation is not its
            s = await cp.call(call.StartTransaction(connector_id=1, id_tag="TOK-own", meter_start=5000,
                                                    timestamp=_iso(t1)))
            out["other_start"] = s
            await cp.call(call.StopTransaction(meter_stop=6000, timestamp=_iso(t1 + timedelta(minutes=5)),
                                               transaction_id=s.transaction_id, id_tag="TOK-own"))
            out["after_other"] = _reservation(oe, par["id"]).status
            t2 = now + timedelta(minutes=120)
            s = await cp.call(call.StartTransaction(connector_id=1, id_tag=partner_tok, meter_start=6000,
                                                    timestamp=_iso(t2)))
            out["partner_start"] = s
            await cp.call(call.StopTransaction(meter_stop=8000, timestamp=_iso(t2 + timedelta(minutes=30)),
                                               transaction_id=s.transaction_id, id_tag=partner_tok))
        return out

    out = run(scenario())
    oe.idle()
    assert out["tag"]["status"] == "accepted" and out["partner"]["status"] == "scheduled", out
    assert out["tag_start"].id_tag_info["status"] == "Accepted"
    tag = _reservation(oe, out["tag"]["id"])
    assert (tag.status, tag.transaction_id) == ("used", out["tag_start"].transaction_id)
    assert out["after_other"] == "accepted" and out["other_start"].id_tag_info["status"] == "Accepted"
    par = _reservation(oe, out["partner"]["id"])
    assert (par.status, par.transaction_id) == ("used", out["partner_start"].transaction_id)
    assert par.charge_point_id in out["reserved_cps"]
    by_tx = {tx.id: tx.session_id for tx in oe.transactions("RSV16B")}
    with oe.db() as db:
        sessions = {tx_id: db.get(ChargingSession, sid) for tx_id, sid in by_tx.items() if sid}
    # 20 minutes reserved before the tag's start, 30 before the partner's; none before the other
    tag_lines = _lines(oe, sessions[out["tag_start"].transaction_id].id)
    assert tag_lines["reservation"].quantity == Decimal(20) / Decimal(60)
    assert tag_lines["reservation"].net_rounded == Decimal("0.40") and tag_lines["reservation_fee"].net == Decimal("1.00")
    par_lines = _lines(oe, sessions[out["partner_start"].transaction_id].id)
    assert par_lines["reservation"].quantity == Decimal("0.5") and par_lines["reservation"].net == Decimal("0.600")
    assert "reservation" not in _lines(oe, sessions[out["other_start"].transaction_id].id)
    assert sessions[out["other_start"].transaction_id].facts.get("reservation") is None


def test_a_201_transaction_without_reservation_id_is_matched_by_its_token(ocpp_env: OcppEnv,
                                                                          site: dict[str, str]) -> None:
    """A 2.0.1 charger that leaves ``reservationId`` out: a transaction at the reserved EVSE inside
    the window by the reserved id token used the reservation -- whether the Started event carries
    the token, or (cable first) the Updated event after the driver's Authorize does. Another token
    leaves it accepted."""
    oe = ocpp_env
    now = utcnow().replace(microsecond=0)
    oe.add_charger("RSV201B", location_id=site["location_id"], evse_uid="DE*EVB*RSV201B*1")
    evse = "DE*EVB*RSV201B*1"
    _ok(oe.client.post("/tokens", json={"uid": "TOK-own201", "contract_id": oe.ids["contract_id"]}, headers=oe.h()))
    alpha = {"idToken": "TOK-alpha", "type": "ISO14443"}

    def ev(kind: str, ref: str, at: datetime, seq: int, wh: int, token: dict[str, str] | None = None,
           trigger: str = "Authorized") -> Any:
        info: dict[str, Any] = {"transactionId": ref}
        if kind == "Ended":
            info["stoppedReason"] = "EVDisconnected"
        ctx = {"Started": "Transaction.Begin", "Ended": "Transaction.End"}.get(kind, "Sample.Periodic")
        return call201.TransactionEvent(
            event_type=kind, timestamp=_iso(at), trigger_reason=trigger, seq_no=seq, transaction_info=info,
            id_token=token, evse={"id": 1, "connectorId": 1} if kind == "Started" else None,
            meter_value=[{"timestamp": _iso(at), "sampledValue": [{"value": wh, "context": ctx}]}])

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with connect(oe, "RSV201B", "2.0.1", charger=ResCharger201) as cp:
            # the Started event carries the token, 15 minutes into the window
            r = await _post(oe, "/reservations", {"evse_uid": evse, "id_tag": "TOK-alpha",
                                                  "expiry": _iso(now + timedelta(hours=1))})
            out["first"] = first = _ok(r, 201)
            t0 = datetime.fromisoformat(first["start"]) + timedelta(minutes=15)
            for e in (ev("Started", "TX-M-1", t0, 0, 0, alpha),
                      ev("Ended", "TX-M-1", t0 + timedelta(minutes=30), 1, 5000, trigger="EVDeparted")):
                await cp.call(e)
            # a later window: another token's transaction leaves it; then the cable first, the
            # reserved token in the Updated event after its Authorize
            r = await _post(oe, "/reservations", {"evse_uid": evse, "id_tag": "TOK-alpha",
                                                  "start": _iso(now + timedelta(minutes=90)),
                                                  "expiry": _iso(now + timedelta(minutes=150))})
            out["second"] = second = _ok(r, 201)
            await sweep_at(oe, now + timedelta(minutes=90))
            t1 = now + timedelta(minutes=95)
            for e in (ev("Started", "TX-M-2", t1, 0, 5000, {"idToken": "TOK-own201", "type": "ISO14443"}),
                      ev("Ended", "TX-M-2", t1 + timedelta(minutes=5), 1, 6000, trigger="EVDeparted")):
                await cp.call(e)
            out["after_other"] = _reservation(oe, second["id"]).status
            t2 = now + timedelta(minutes=100)
            await cp.call(call201.Authorize(id_token=alpha))
            for e in (ev("Started", "TX-M-3", t2, 0, 6000, trigger="CablePluggedIn"),
                      ev("Updated", "TX-M-3", t2 + timedelta(minutes=1), 1, 6000, alpha),
                      ev("Ended", "TX-M-3", t2 + timedelta(minutes=31), 2, 8000, trigger="EVDeparted")):
                await cp.call(e)
        return out

    out = run(scenario())
    oe.idle()
    assert out["first"]["status"] == "accepted" and out["second"]["status"] == "scheduled", out
    assert out["after_other"] == "accepted"
    by_ref = {tx.transaction_ref: tx for tx in oe.transactions("RSV201B")}
    first, second = _reservation(oe, out["first"]["id"]), _reservation(oe, out["second"]["id"])
    assert (first.status, first.transaction_id) == ("used", by_ref["TX-M-1"].id)
    assert (second.status, second.transaction_id) == ("used", by_ref["TX-M-3"].id)
    # 15 minutes reserved before the first, 10 before the third, none before the other token's
    lines = _lines(oe, by_ref["TX-M-1"].session_id or "")
    assert lines["reservation"].quantity == Decimal("0.25") and lines["reservation"].net == Decimal("0.300")
    assert lines["reservation_fee"].net == Decimal("1.00") and lines["energy"].quantity == Decimal(5)
    lines = _lines(oe, by_ref["TX-M-3"].session_id or "")
    assert lines["reservation"].quantity == Decimal(10) / Decimal(60) and lines["reservation_fee"].net == Decimal("1.00")
    assert "reservation" not in _lines(oe, by_ref["TX-M-2"].session_id or "")
