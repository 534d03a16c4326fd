"""A full OCPP 1.6J session over a real WebSocket, across the tariff's 18:00 local window, rated
on stop with the version in force and stored with its lines; plus the live cost while it runs."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ocpp.v16 import call

from tests.api.ocpp.conftest import OcppEnv, connect, run

T0 = "2026-03-10T16:30:00Z"  # 17:30 in Berlin: half an hour before the 18:00 window


def mv(at: str, wh: int, power_w: int | None = None, **extra: Any) -> dict[str, Any]:
    sv = [{"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh", **extra}]
    if power_w is not None:
        sv.append({"value": str(power_w), "measurand": "Power.Active.Import", "unit": "W"})
    return {"timestamp": at, "sampledValue": sv}


def test_full_session_16_across_a_window(ocpp_env: OcppEnv) -> None:
    oe = ocpp_env
    ident = "CP16-FULL"
    oe.add_charger(ident)
    costs: list[dict[str, Any]] = []

    async def scenario() -> None:
        async with connect(oe, ident) as cp:
            boot = await cp.call(call.BootNotification(charge_point_vendor="ACME", charge_point_model="W1"))
            assert boot.status == "Accepted"
            assert (await cp.call(call.Heartbeat())).current_time
            await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Preparing"))
            auth = await cp.call(call.Authorize(id_tag="TOK-alpha"))
            assert auth.id_tag_info["status"] == "Accepted"
            start = await cp.call(call.StartTransaction(connector_id=1, id_tag="TOK-alpha", meter_start=1000,
                                                        timestamp=T0))
            assert start.id_tag_info["status"] == "Accepted"
            tx = start.transaction_id
            for at, wh in (("2026-03-10T16:45:00Z", 4000), ("2026-03-10T17:00:00Z", 7000)):
                await cp.call(call.MeterValues(connector_id=1, transaction_id=tx,
                                               meter_value=[mv(at, wh, 11000)]))
            costs.append(oe.client.get(f"/ocpp/transactions/{tx}/cost", headers=oe.h()).json())
            signed = {"value": "OCMF|{\"FV\":\"1.0\"}|{\"SA\":\"ECDSA-secp256r1-SHA256\",\"SD\":\"30440220\"}",
                      "format": "SignedData", "context": "Transaction.End"}
            await cp.call(call.StopTransaction(
                meter_stop=13000, timestamp="2026-03-10T17:30:00Z", transaction_id=tx, reason="Local",
                id_tag="TOK-alpha",
                transaction_data=[mv("2026-03-10T17:15:00Z", 10000, 11000),
                                  {"timestamp": "2026-03-10T17:30:00Z", "sampledValue": [signed]}]))
        oe.idle()

    run(scenario())
    # live cost after 30 min: 6 kWh at 0.40 + start fee 0.50 = 2.90 net, 3.45 gross (19 %)
    assert costs[0]["status"] == "rated" and costs[0]["running"] is True, costs
    assert costs[0]["net_total"] == "2.90" and costs[0]["gross_total"] == "3.45", costs
    [ses] = oe.sessions(ident)
    assert ses.status == "rated", ses.rating_error
    assert ses.energy_kwh == Decimal(12)
    # 6 kWh before 18:00 local at 0.40, 6 kWh after at 0.60, start fee 0.50; VAT 19 % on 6.50
    assert (ses.net_total, ses.tax_total, ses.gross_total) == (Decimal("6.50"), Decimal("1.24"), Decimal("7.74"))
    lines = {(ln.component, ln.unit_price): (ln.quantity, ln.net_rounded) for ln in oe.lines(ses)}
    assert lines == {("energy", Decimal("0.4")): (Decimal(6), Decimal("2.40")),
                     ("energy", Decimal("0.6")): (Decimal(6), Decimal("3.60")),
                     ("start_fee", Decimal("0.5")): (Decimal(1), Decimal("0.50"))}
    assert ses.source == "ocpp" and ses.customer_id == oe.ids["customer_id"]
    [tx] = oe.transactions(ident)
    assert tx.status == "completed" and tx.session_id == ses.id
    detail = oe.client.get(f"/ocpp/transactions/{tx.id}", headers=oe.h()).json()
    assert detail["signed_data"][0]["raw"].startswith("OCMF|{\"FV\":\"1.0\"}")
    assert detail["signed_data"][0]["format"] == "SignedData"
    # the session is visible through the sessions API like any imported one
    api = oe.client.get(f"/sessions/{ses.id}", headers=oe.h()).json()
    assert api["gross_total"] == "7.74" and api["rating"]["lines"]
    # every decision logged with its reason, queryable per location
    log = oe.client.get(f"/locations/{oe.ids['location_id']}/authorizations", headers=oe.h()).json()
    assert {(i["context"], i["status"], i["reason"]) for i in log["items"] if i["charge_point_id"] == oe.ids[ident]} \
        == {("Authorize", "Accepted", "contract_customer"), ("StartTransaction", "Accepted", "contract_customer")}
