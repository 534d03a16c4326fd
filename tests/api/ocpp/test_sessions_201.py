"""A full OCPP 2.0.1 session (TransactionEvent Started/Updated/Ended with seqNo) over a real
WebSocket across the 18:00 local window, signed meter values kept untouched, CostUpdated pushed."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from ocpp.v201 import call

from tests.api.ocpp.conftest import OcppEnv, connect, run

OCMF = 'OCMF|{"FV":"1.0","GI":"ACME","RD":[{"TM":"2026-03-10T17:30:00,000+0000 S","RV":13.0}]}|{"SD":"3045"}'


def sv(wh: float, context: str = "Sample.Periodic", power_w: float | None = None,
       signed: str | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"value": wh, "measurand": "Energy.Active.Import.Register", "context": context,
                                  "unitOfMeasure": {"unit": "Wh"}}]
    if signed:
        out[0]["signedMeterValue"] = {"signedMeterData": signed, "signingMethod": "ECDSA-secp256r1-SHA256",
                                      "encodingMethod": "OCMF", "publicKey": "3059301306"}
    if power_w is not None:
        out.append({"value": power_w, "measurand": "Power.Active.Import", "context": context})
    return out


def event(kind: str, at: str, seq: int, tx: str, values: list[dict[str, Any]] | None = None, **kw: Any) -> Any:
    return call.TransactionEvent(
        event_type=kind, timestamp=at, trigger_reason=kw.pop("trigger", "MeterValuePeriodic"), seq_no=seq,
        transaction_info={"transactionId": tx, **kw.pop("info", {})},
        meter_value=[{"timestamp": at, "sampledValue": values}] if values else None, **kw)


def full_session(tx: str, *, offline: bool = False) -> list[Any]:
    tok = {"idToken": "TOK-alpha", "type": "ISO14443"}
    return [
        event("Started", "2026-03-10T16:30:00Z", 0, tx, sv(1000, "Transaction.Begin"), trigger="Authorized",
              id_token=tok, evse={"id": 1, "connectorId": 1}, offline=offline),
        event("Updated", "2026-03-10T16:45:00Z", 1, tx, sv(4000, power_w=11000), offline=offline),
        event("Updated", "2026-03-10T17:00:00Z", 2, tx, sv(7000, power_w=11000), offline=offline),
        event("Updated", "2026-03-10T17:15:00Z", 3, tx, sv(10000, power_w=11000), offline=offline),
        event("Ended", "2026-03-10T17:30:00Z", 4, tx, sv(13000, "Transaction.End", signed=OCMF),
              trigger="EVCommunicationLost", info={"stoppedReason": "EVDisconnected"}, offline=offline),
    ]


def test_full_session_201_across_a_window(ocpp_env: OcppEnv) -> None:
    oe = ocpp_env
    ident = "CP201-FULL"
    oe.add_charger(ident)
    oe.gw.settings.cost_update_interval_s = 0.001  # push a live price on every Updated
    answers: list[Any] = []

    async def scenario() -> list[float]:
        async with connect(oe, ident, "2.0.1") as cp:
            boot = await cp.call(call.BootNotification(
                charging_station={"model": "W2", "vendorName": "ACME"}, reason="PowerUp"))
            assert boot.status == "Accepted"
            await cp.call(call.Heartbeat())
            await cp.call(call.StatusNotification(timestamp="2026-03-10T16:29:00Z", connector_status="Occupied",
                                                  evse_id=1, connector_id=1))
            auth = await cp.call(call.Authorize(id_token={"idToken": "TOK-alpha", "type": "ISO14443"}))
            assert auth.id_token_info["status"] == "Accepted"
            for ev in full_session("TX-201-A"):
                answers.append(await cp.call(ev))
            await cp.call(call.MeterValues(evse_id=1, meter_value=[
                {"timestamp": "2026-03-10T17:31:00Z", "sampledValue": [{"value": 13000}]}]))
            for _ in range(50):
                if len(cp.costs) >= 3:
                    break
                await asyncio.sleep(0.05)
            return list(cp.costs)

    try:
        costs = run(scenario())
    finally:
        oe.gw.settings.cost_update_interval_s = 0
    oe.idle()
    assert answers[0].id_token_info["status"] == "Accepted"
    # live prices pushed after each Updated, as of that event: 3 kWh, 6 kWh, then 6 kWh + 3 kWh in the
    # window (gross, 19 % VAT; the pushes may overtake each other)
    assert sorted(costs) == [2.02, 3.45, 5.59], costs
    [ses] = oe.sessions(ident)
    assert ses.status == "rated", ses.rating_error
    assert ses.energy_kwh == Decimal(12)
    assert (ses.net_total, ses.gross_total) == (Decimal("6.50"), Decimal("7.74"))
    [tx] = oe.transactions(ident)
    assert (tx.status, tx.last_seq_no, tx.stop_reason, tx.evse_uid) == ("completed", 4, "EVDisconnected",
                                                                         f"DE*EVB*{ident}*1")
    detail = oe.client.get(f"/ocpp/transactions/{tx.id}", headers=oe.h()).json()
    [signed] = detail["signed_data"]
    assert (signed["format"], signed["raw"], signed["public_key"]) == ("OCMF", OCMF, "3059301306")
