"""Nothing lost, nothing counted twice: repeated messages, offline replays out of order and hours
later, a connection dropped mid-session, a stop without a start."""

from __future__ import annotations

import json
from decimal import Decimal

import websockets
from ocpp.v16 import call
from ocpp.v201 import call as call201

from tests.api.ocpp.conftest import OcppEnv, connect, run
from tests.api.ocpp.test_sessions_16 import mv
from tests.api.ocpp.test_sessions_201 import full_session


async def raw(ws: websockets.ClientConnection, frame: list[object]) -> list[object]:
    await ws.send(json.dumps(frame))
    return json.loads(await ws.recv())  # type: ignore[no-any-return]


def test_repeated_messages_change_nothing_16(ocpp_env: OcppEnv) -> None:
    oe = ocpp_env
    ident = "CP16-REPEAT"
    oe.add_charger(ident)

    async def scenario() -> None:
        async with websockets.connect(oe.url(ident), subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                                      additional_headers=oe.auth(ident)) as ws:
            start = [2, "s-1", "StartTransaction", {"connectorId": 1, "idTag": "TOK-alpha", "meterStart": 0,
                                                    "timestamp": "2026-03-10T08:00:00Z"}]
            a = await raw(ws, start)
            b = await raw(ws, start)  # same unique id: the confirmation got lost
            c = await raw(ws, [2, "s-2", *start[2:]])  # same content, new id: a replayed queue
            assert a == b and a[2] == c[2], (a, b, c)
            tx = a[2]["transactionId"]  # type: ignore[index]
            meter = [2, "m-1", "MeterValues", {"connectorId": 1, "transactionId": tx,
                                               "meterValue": [mv("2026-03-10T08:30:00Z", 5000)]}]
            for _ in range(3):
                assert (await raw(ws, meter))[0] == 3
            stop = [2, "x-1", "StopTransaction", {"transactionId": tx, "meterStop": 10000,
                                                  "timestamp": "2026-03-10T09:00:00Z"}]
            for uid in ("x-1", "x-1", "x-2"):
                assert (await raw(ws, [2, uid, *stop[2:]]))[0] == 3
        oe.idle()

    run(scenario())
    [tx] = oe.transactions(ident)
    [ses] = oe.sessions(ident)
    # 10 kWh before the window at 0.40 + start fee 0.50, counted once
    assert (tx.status, ses.energy_kwh, ses.net_total) == ("completed", Decimal(10), Decimal("4.50"))


def test_offline_replay_out_of_order_hours_later_16(ocpp_env: OcppEnv) -> None:
    """A charger offline all morning replays two transactions in the afternoon, the second one's
    start first; each becomes exactly one session with its own times and energy."""
    oe = ocpp_env
    ident = "CP16-OFFLINE"
    oe.add_charger(ident)

    async def scenario() -> None:
        async with connect(oe, ident) as cp:
            b = await cp.call(call.StartTransaction(connector_id=1, id_tag="TOK-alpha", meter_start=20000,
                                                    timestamp="2026-03-11T10:00:00Z"))
            a = await cp.call(call.StartTransaction(connector_id=1, id_tag="TOK-alpha", meter_start=0,
                                                    timestamp="2026-03-11T06:00:00Z"))
            await cp.call(call.StopTransaction(meter_stop=20000, timestamp="2026-03-11T07:00:00Z",
                                               transaction_id=a.transaction_id))
            await cp.call(call.StopTransaction(meter_stop=25000, timestamp="2026-03-11T11:00:00Z",
                                               transaction_id=b.transaction_id))
            # the same queue replayed once more after a reboot
            a2 = await cp.call(call.StartTransaction(connector_id=1, id_tag="TOK-alpha", meter_start=0,
                                                     timestamp="2026-03-11T06:00:00Z"))
            assert a2.transaction_id == a.transaction_id
            await cp.call(call.StopTransaction(meter_stop=20000, timestamp="2026-03-11T07:00:00Z",
                                               transaction_id=a2.transaction_id))
        oe.idle()

    run(scenario())
    sessions = oe.sessions(ident)
    assert [(s.start.hour, s.energy_kwh, s.net_total) for s in sessions] == [
        (6, Decimal(20), Decimal("8.50")), (10, Decimal(5), Decimal("2.50"))]
    assert {t.status for t in oe.transactions(ident)} == {"completed"}


def test_offline_replay_out_of_order_201(ocpp_env: OcppEnv) -> None:
    """2.0.1 events replayed offline in scrambled order (Ended before Started), some twice."""
    oe = ocpp_env
    ident = "CP201-OFFLINE"
    oe.add_charger(ident)
    events = full_session("TX-OFF-1", offline=True)
    scrambled = [events[4], events[2], events[0], events[2], events[1], events[3], events[4]]

    async def scenario() -> None:
        async with connect(oe, ident, "2.0.1") as cp:
            for ev in scrambled:
                await cp.call(ev)
        oe.idle()

    run(scenario())
    [tx] = oe.transactions(ident)
    [ses] = oe.sessions(ident)
    assert (tx.status, tx.offline, ses.energy_kwh, ses.gross_total) == ("completed", True, Decimal(12),
                                                                        Decimal("7.74"))


def test_dropped_connection_completes_when_the_charger_reports_again(ocpp_env: OcppEnv) -> None:
    oe = ocpp_env
    ident = "CP16-DROP"
    oe.add_charger(ident)

    async def first() -> int:
        async with connect(oe, ident) as cp:
            s = await cp.call(call.StartTransaction(connector_id=1, id_tag="TOK-alpha", meter_start=0,
                                                    timestamp="2026-03-12T08:00:00Z"))
            await cp.call(call.MeterValues(connector_id=1, transaction_id=s.transaction_id,
                                           meter_value=[mv("2026-03-12T08:30:00Z", 3000)]))
            return int(s.transaction_id)
        # the socket drops here, mid-session

    tx_id = run(first())
    [tx] = oe.transactions(ident)
    assert tx.status == "open" and oe.sessions(ident) == []

    async def again() -> None:
        async with connect(oe, ident) as cp:
            await cp.call(call.BootNotification(charge_point_vendor="ACME", charge_point_model="W1"))
            await cp.call(call.StopTransaction(meter_stop=6000, timestamp="2026-03-12T09:00:00Z",
                                               transaction_id=tx_id, reason="PowerLoss"))
        oe.idle()

    run(again())
    [tx] = oe.transactions(ident)
    [ses] = oe.sessions(ident)
    assert (tx.status, tx.stop_reason, ses.energy_kwh) == ("completed", "PowerLoss", Decimal(6))


def test_stop_without_start_is_kept_for_review(ocpp_env: OcppEnv) -> None:
    oe = ocpp_env
    ident = "CP16-ORPHAN"
    oe.add_charger(ident)

    async def scenario() -> None:
        async with connect(oe, ident) as cp:
            res = await cp.call(call.StopTransaction(meter_stop=9000, timestamp="2026-03-12T10:00:00Z",
                                                     transaction_id=987654, id_tag="TOK-alpha",
                                                     transaction_data=[mv("2026-03-12T09:30:00Z", 4000)]))
            assert res.id_tag_info["status"] == "Accepted"  # answered, so the charger does not retry forever
            await cp.call(call.StopTransaction(meter_stop=9000, timestamp="2026-03-12T10:00:00Z",
                                               transaction_id=987654))
        async with connect(oe, ident, "2.0.1") as cp2:  # after a firmware update it speaks 2.0.1
            ended = full_session("TX-NO-START")[4]
            await cp2.call(ended)
        oe.idle()

    run(scenario())
    tx, tx201 = oe.transactions(ident)
    assert (tx.status, tx.transaction_ref, tx.meter_stop_wh) == ("stop_without_start", "orphan:987654",
                                                                  Decimal(9000))
    assert (tx201.status, tx201.transaction_ref) == ("stop_without_start", "TX-NO-START")
    assert oe.sessions(ident) == []
    review = oe.client.get("/ocpp/transactions", params={"status": "stop_without_start"}, headers=oe.h()).json()
    refs = {t["transaction_ref"] for t in review["items"]}
    assert {"orphan:987654", "TX-NO-START"} <= refs, refs
    assert all(t["review_reason"] for t in review["items"])


def test_late_started_completes_a_stop_without_start_201(ocpp_env: OcppEnv) -> None:
    oe = ocpp_env
    ident = "CP201-LATE"
    oe.add_charger(ident)
    events = full_session("TX-LATE")

    async def scenario(evs: list[object]) -> None:
        async with connect(oe, ident, "2.0.1") as cp:
            for ev in evs:
                await cp.call(ev)
        oe.idle()

    run(scenario([events[4]]))
    [tx] = oe.transactions(ident)
    assert tx.status == "stop_without_start"
    run(scenario(events[:4]))
    [tx] = oe.transactions(ident)
    [ses] = oe.sessions(ident)
    assert (tx.status, ses.gross_total) == ("completed", Decimal("7.74"))


_ = call201
