"""Eichrecht over real WebSockets: meters' public keys taken from chargers (1.6J DataTransfer
``setMeterConfiguration`` after a BootNotification naming the meter; 2.0.1 ``signedMeterValue.publicKey``)
and registered through the API, OCMF records as chargers send them (1.6J ``SignedData`` in MeterValues
and StopTransaction ``transactionData``; 2.0.1 ``signedMeterData`` in base64), verified when the
session is stored; tampered readings, wrong, unknown and revoked keys and a billed energy that is not
the signed one leave the session marked for a hold; a legal-for-trade tariff bills the signed energy."""

from __future__ import annotations

import asyncio
import base64
import html
import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from ocpp.routing import on
from ocpp.v16 import call
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import call as call201
from sqlalchemy import select

from store.models import ChargingSession
from store.ocpp import MeterKey
from tests.api.conftest import _ok
from tests.api.ocpp.conftest import Charger16, OcppEnv, connect, run
from tests.ocmf_signer import Meter, tamper

LEGAL = """ruleset eich currency EUR timezone Europe/Berlin
tariff ac_eich "AC, legal for trade" {
  vat 19%
  legal_for_trade
  start_fee 0.50
  energy 0.40 per kWh
}
"""
T_BEGIN, T_END = "2026-03-10T16:30:00Z", "2026-03-10T17:30:00Z"
TM_BEGIN, TM_END = "2026-03-10T17:30:00,000+0100 S", "2026-03-10T18:30:00,000+0100 S"


def signed16(record: str, context: str) -> dict[str, Any]:
    return {"timestamp": T_BEGIN if context == "Transaction.Begin" else T_END,
            "sampledValue": [{"value": record, "format": "SignedData", "context": context}]}


def session_16(oe: OcppEnv, ident: str, meter: Meter, *, start_wh: int, stop_wh: int, begin: str | None,
               end: str | None, send_key: bool = True, tag: str = "TOK-alpha", charger: Any = None) -> None:
    """One 1.6J session: boot (with the meter's serial), the key by DataTransfer, start, the signed
    begin record in MeterValues, stop with the signed end record in transactionData."""
    async def scenario() -> None:
        async with connect(oe, ident, charger=charger) as cp:
            await cp.call(call.BootNotification(charge_point_vendor="ABL", charge_point_model="eMH3",
                                                meter_serial_number=meter.serial))
            if charger is not None:
                for _ in range(100):  # the gateway asks for the key after its answer to the boot
                    if cp.asked:
                        break
                    await asyncio.sleep(0.05)
                oe.idle()
            if send_key:
                # the OCA note's message; this charger leaves the serial out (BootNotification gave it)
                dt = await cp.call(call.DataTransfer(vendor_id="generalConfiguration",
                                                     message_id="setMeterConfiguration", data=json.dumps({
                                                         "meters": [{"connectorId": 1, "type": "SIGNATURE",
                                                                     "publicKey": meter.public_key_hex}]})))
                assert dt.status == "Accepted"
            start = await cp.call(call.StartTransaction(connector_id=1, id_tag=tag, meter_start=start_wh,
                                                        timestamp=T_BEGIN))
            tx = start.transaction_id
            if begin:
                await cp.call(call.MeterValues(connector_id=1, transaction_id=tx,
                                               meter_value=[signed16(begin, "Transaction.Begin")]))
            await cp.call(call.StopTransaction(meter_stop=stop_wh, timestamp=T_END, transaction_id=tx,
                                               reason="Local", id_tag=tag,
                                               transaction_data=[signed16(end, "Transaction.End")] if end else None))
        oe.idle()

    run(scenario())


def console_page(oe: OcppEnv, path: str) -> str:
    """``path`` of the console as tenant alpha's admin (German, the console's default)."""
    from sqlalchemy.orm import Session

    from store.console import set_password
    from tests.api.test_console import PASSWORD, Person

    a = oe.env.a
    with Session(oe.env.engine) as db:
        set_password(db, a.tenant_id, a.users["admin"], PASSWORD)
        db.commit()
    r = Person(oe.env, f"admin@{a.name}.test").get(path)
    assert r.status_code == 200, r.text[:300]
    if os.environ.get("EVBILL_KEEP_PAGES"):  # to look at it in a browser
        Path(os.environ["EVBILL_KEEP_PAGES"]).write_text(r.text, encoding="utf-8")
    return str(r.text)


def one_session(oe: OcppEnv, ident: str) -> ChargingSession:
    [ses] = oe.sessions(ident)
    return ses


def test_16_signed_session_verifies_with_the_key_the_charger_sent(ocpp_env: OcppEnv) -> None:
    oe, m = ocpp_env, Meter(serial="EMH-16-OK")
    oe.add_charger("CP16-EICH")
    begin, end = m.record([(TM_BEGIN, "B", "1234.567")]), m.record([(TM_END, "E", "1256.012")])
    session_16(oe, "CP16-EICH", m, start_wh=1234567, stop_wh=1256012, begin=begin, end=end)
    ses = one_session(oe, "CP16-EICH")
    assert ses.status == "rated" and ses.energy_kwh == Decimal("21.445")
    assert ses.meter_check == "verified"
    sm = ses.facts["signed_meter"]
    assert (sm["check"], sm["meter_serial"], sm["start_kwh"], sm["end_kwh"], sm["signed_kwh"]) == (
        "verified", "EMH-16-OK", "1234.567", "1256.012", "21.445")
    keys = _ok(oe.client.get("/meter-keys", params={"meter_serial": "EMH-16-OK"}, headers=oe.h()))["items"]
    [k] = keys
    assert (k["public_key"], k["curve"], k["source"], k["status"], k["charge_point_id"]) == (
        m.public_key_hex, "secp256r1", "ocpp16_datatransfer", "active", oe.ids["CP16-EICH"])
    state = _ok(oe.client.get(f"/charge-points/{oe.ids['CP16-EICH']}/ocpp", headers=oe.h()))
    assert state["meter_serial"] == "EMH-16-OK"
    # the records themselves are kept byte for byte
    [tx] = oe.transactions("CP16-EICH")
    raws = [s["raw"] for s in _ok(oe.client.get(f"/ocpp/transactions/{tx.id}", headers=oe.h()))["signed_data"]]
    assert raws == [begin, end]
    # what the invoice's session statement prints (store.documents reads them for the PDF)
    from store.ocpp import signed_data_of

    with oe.env.engine.connect() as conn:
        assert signed_data_of(conn, [ses.id]) == {ses.id: [begin, end]}
    # the file a customer opens in the S.A.F.E. Transparenzsoftware: both records, each with the key
    r = oe.client.get(f"/sessions/{ses.id}/signed-data", headers=oe.h())
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    assert "attachment" in r.headers["content-disposition"]
    from lxml import etree

    from runtime.ocmf import parse, verify
    values = etree.fromstring(r.content).findall("value")
    assert [(v.get("context"), v.findtext("signedData"), v.findtext("publicKey")) for v in values] == [
        ("Transaction.Begin", begin, m.public_key_hex), ("Transaction.End", end, m.public_key_hex)]
    assert all(verify(parse(v.findtext("signedData") or ""), m.public_key_hex) == "" for v in values)


def test_signed_data_of_a_session_without_any_is_404(ocpp_env: OcppEnv) -> None:
    oe = ocpp_env
    oe.add_charger("CP16-PLAIN")
    session_16(oe, "CP16-PLAIN", Meter(serial="EMH-PLAIN"), start_wh=1000, stop_wh=2000, begin=None, end=None)
    ses = one_session(oe, "CP16-PLAIN")
    r = oe.client.get(f"/sessions/{ses.id}/signed-data", headers=oe.h())
    assert r.status_code == 404 and r.json()["code"] == "signed_data_not_found"
    assert oe.client.get("/sessions/nope/signed-data", headers=oe.h()).status_code == 404


def test_16_tampered_reading_and_billed_energy_that_differs(ocpp_env: OcppEnv) -> None:
    oe, m = ocpp_env, Meter(serial="EMH-16-BAD")
    oe.add_charger("CP16-TAMPER")
    begin, end = m.record([(TM_BEGIN, "B", "100.000")]), m.record([(TM_END, "E", "110.000")])
    # the end reading raised after signing, and the charger bills the raised value
    session_16(oe, "CP16-TAMPER", m, start_wh=100000, stop_wh=120000, begin=begin,
               end=tamper(end, "110.0", "120.0"))
    ses = one_session(oe, "CP16-TAMPER")
    assert (ses.meter_check, ses.facts["signed_meter"]["reason"]) == ("meter_signature_invalid", "bad_signature")
    # the console's session page says so, and shows the records as the charger sent them
    page = console_page(oe, f"/console/sessions/{ses.id}")
    assert "Signierte Messdaten (Eichrecht)" in page and "Signatur nicht prüfbar" in page
    assert "Signatur ungültig" in page and "EMH-16-BAD" in page and m.public_key_hex in page
    assert html.escape(begin, quote=True) in page or begin.replace('"', "&#34;") in page
    # correctly signed, but the charger's StopTransaction says more than the meter signed
    oe.add_charger("CP16-MISMATCH")
    m2 = Meter(serial="EMH-16-MIS")
    session_16(oe, "CP16-MISMATCH", m2, start_wh=100000, stop_wh=111000,
               begin=m2.record([(TM_BEGIN, "B", "100.000")]), end=m2.record([(TM_END, "E", "110.000")]))
    ses = one_session(oe, "CP16-MISMATCH")
    sm = ses.facts["signed_meter"]
    assert (ses.meter_check, sm["reason"], sm["signed_kwh"], ses.energy_kwh) == (
        "meter_mismatch", "energy_differs", "10.0", Decimal(11))


def test_16_unknown_and_revoked_keys(ocpp_env: OcppEnv) -> None:
    oe, m = ocpp_env, Meter(serial="EMH-16-NOKEY")
    oe.add_charger("CP16-NOKEY")
    session_16(oe, "CP16-NOKEY", m, start_wh=0, stop_wh=5000, send_key=False,
               begin=m.record([(TM_BEGIN, "B", "0")]), end=m.record([(TM_END, "E", "5.000")]))
    ses = one_session(oe, "CP16-NOKEY")
    assert (ses.meter_check, ses.facts["signed_meter"]["reason"]) == ("meter_signature_invalid", "unknown_key")
    # registered through the API, then revoked: a later session signed with it is held
    m2 = Meter(serial="EMH-16-REV")
    key = _ok(oe.client.post("/meter-keys", json={"meter_serial": m2.serial, "public_key": m2.public_key_b64},
                             headers=oe.h()))
    assert key["public_key"] == m2.public_key_hex and key["source"] == "api"
    again = oe.client.post("/meter-keys", json={"meter_serial": m2.serial, "public_key": m2.public_key_hex},
                           headers=oe.h())
    assert again.status_code == 409 and again.json()["code"] == "meter_key_exists"
    bad = oe.client.post("/meter-keys", json={"meter_serial": "X", "public_key": "00" * 40}, headers=oe.h())
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_public_key"
    revoked = _ok(oe.client.post(f"/meter-keys/{key['id']}/revoke", json={"reason": "meter replaced"},
                                 headers=oe.h()))
    assert revoked["status"] == "revoked" and revoked["revoked_at"]
    oe.add_charger("CP16-REVOKED")
    session_16(oe, "CP16-REVOKED", m2, start_wh=0, stop_wh=5000, send_key=False,
               begin=m2.record([(TM_BEGIN, "B", "0")]), end=m2.record([(TM_END, "E", "5.000")]))
    ses = one_session(oe, "CP16-REVOKED")
    assert (ses.meter_check, ses.facts["signed_meter"]["reason"]) == ("meter_signature_invalid", "revoked_key")


def _events_201(tx: str, meter: Meter, begin_kwh: str, end_kwh: str, *, end_wh: float, public_key: str,
                signed_end: str | None = None) -> list[Any]:
    def value(wh: float, context: str, record: str) -> list[dict[str, Any]]:
        # signedMeterData in base64, as OCPP 2.0.1 defines it; the key in base64 DER
        return [{"value": wh, "measurand": "Energy.Active.Import.Register", "context": context,
                 "unitOfMeasure": {"unit": "Wh"},
                 "signedMeterValue": {"signedMeterData": base64.b64encode(record.encode()).decode(),
                                      "signingMethod": "ECDSA-secp256r1-SHA256", "encodingMethod": "OCMF",
                                      "publicKey": public_key}}]

    begin = meter.record([(TM_BEGIN, "B", begin_kwh)])
    end = signed_end or meter.record([(TM_END, "E", end_kwh)])
    tok = {"idToken": "TOK-alpha", "type": "ISO14443"}
    return [
        call201.TransactionEvent(event_type="Started", timestamp=T_BEGIN, trigger_reason="Authorized", seq_no=0,
                                 transaction_info={"transactionId": tx}, id_token=tok, evse={"id": 1, "connectorId": 1},
                                 meter_value=[{"timestamp": T_BEGIN, "sampledValue": value(
                                     float(Decimal(begin_kwh) * 1000), "Transaction.Begin", begin)}]),
        call201.TransactionEvent(event_type="Ended", timestamp=T_END, trigger_reason="EVCommunicationLost", seq_no=1,
                                 transaction_info={"transactionId": tx, "stoppedReason": "EVDisconnected"},
                                 meter_value=[{"timestamp": T_END, "sampledValue": value(
                                     end_wh, "Transaction.End", end)}]),
    ]


def session_201(oe: OcppEnv, ident: str, events: list[Any]) -> None:
    async def scenario() -> None:
        async with connect(oe, ident, "2.0.1") as cp:
            await cp.call(call201.BootNotification(charging_station={"model": "W2", "vendorName": "ACME"},
                                                   reason="PowerUp"))
            for ev in events:
                await cp.call(ev)
        oe.idle()

    run(scenario())


def test_201_key_from_the_signed_meter_value_and_a_wrong_key(ocpp_env: OcppEnv) -> None:
    oe, m = ocpp_env, Meter(serial="EMH-201-OK")
    oe.add_charger("CP201-EICH")
    session_201(oe, "CP201-EICH", _events_201("TX-E1", m, "50.000", "62.500", end_wh=62500.0,
                                              public_key=m.public_key_b64))
    ses = one_session(oe, "CP201-EICH")
    assert ses.energy_kwh == Decimal("12.5") and ses.meter_check == "verified", ses.facts.get("signed_meter")
    [k] = _ok(oe.client.get("/meter-keys", params={"meter_serial": m.serial}, headers=oe.h()))["items"]
    assert (k["source"], k["public_key"]) == ("ocpp201_signed_meter_value", m.public_key_hex)
    # an operator registered the meter's key from its label; this charger signs with another one
    # and sends that: the registered key decides
    label, impostor = Meter(serial="EMH-201-LABEL"), Meter(serial="EMH-201-LABEL")
    _ok(oe.client.post("/meter-keys", json={"meter_serial": label.serial, "public_key": label.public_key_hex},
                       headers=oe.h()))
    oe.add_charger("CP201-WRONGKEY")
    session_201(oe, "CP201-WRONGKEY", _events_201("TX-E2", impostor, "1.000", "2.000", end_wh=2000.0,
                                                  public_key=impostor.public_key_b64))
    ses = one_session(oe, "CP201-WRONGKEY")
    assert (ses.meter_check, ses.facts["signed_meter"]["reason"]) == ("meter_signature_invalid", "bad_signature")


def test_legal_for_trade_tariff_bills_signed_energy_and_holds_unsigned(ocpp_env: OcppEnv) -> None:
    oe = ocpp_env
    c, a = oe.client, oe.env.a
    rs = _ok(c.post("/rulesets", json={"name": "eich"}, headers=a.h()))["id"]
    draft = _ok(c.post(f"/rulesets/{rs}/drafts", json={"source": LEGAL}, headers=a.h("analyst")))
    assert draft["ok"], draft
    _ok(c.post(f"/rulesets/{rs}/versions", json={"draft_id": draft["id"], "effective_from": "2021-01-01T00:00:00Z"},
               headers=a.h("approver")))
    loc = _ok(c.post("/locations", json={"code": "eich_site", "name": "Eichrecht site", "country": "DE",
                                         "timezone": "Europe/Berlin", "ruleset_id": rs}, headers=a.h()))["id"]
    m = Meter(serial="EMH-LEGAL")
    oe.add_charger("CP-LEGAL", location_id=loc)
    session_201(oe, "CP-LEGAL", _events_201("TX-L1", m, "10.000", "20.000", end_wh=20000.0,
                                            public_key=m.public_key_b64))
    ses = one_session(oe, "CP-LEGAL")
    assert ses.meter_check == "verified"
    assert (ses.net_total, ses.gross_total) == (Decimal("4.50"), Decimal("5.36"))  # 0.50 + 10 kWh × 0.40
    # the same tariff, a charger that signs nothing: rated, but marked so its invoice is held
    oe.add_charger("CP-LEGAL-UNSIGNED", location_id=loc)

    async def unsigned() -> None:
        async with connect(oe, "CP-LEGAL-UNSIGNED") as cp:
            start = await cp.call(call.StartTransaction(connector_id=1, id_tag="TOK-alpha", meter_start=0,
                                                        timestamp=T_BEGIN))
            await cp.call(call.StopTransaction(meter_stop=10000, timestamp=T_END,
                                               transaction_id=start.transaction_id, reason="Local"))
        oe.idle()

    run(unsigned())
    ses = one_session(oe, "CP-LEGAL-UNSIGNED")
    assert ses.status == "rated" and ses.meter_check == "meter_signature_invalid"
    assert "signed_meter" not in ses.facts
    with oe.db() as db:
        n = len(list(db.execute(select(MeterKey).where(MeterKey.meter_serial == "EMH-LEGAL")).scalars()))
    assert n == 1
    listed = _ok(c.get("/sessions", params={"meter_check": "meter_signature_invalid"}, headers=a.h()))["items"]
    assert ses.id in {i["id"] for i in listed}


def test_rerating_under_a_legal_for_trade_version_demands_signed_data(ocpp_env: OcppEnv) -> None:
    oe = ocpp_env
    c, a = oe.client, oe.env.a
    oe.add_charger("CP-PLAIN")  # the standard tariff: no signed data needed

    async def unsigned() -> None:
        async with connect(oe, "CP-PLAIN") as cp:
            start = await cp.call(call.StartTransaction(connector_id=1, id_tag="TOK-alpha", meter_start=0,
                                                        timestamp=T_BEGIN))
            await cp.call(call.StopTransaction(meter_stop=10000, timestamp=T_END,
                                               transaction_id=start.transaction_id, reason="Local"))
        oe.idle()

    run(unsigned())
    ses = one_session(oe, "CP-PLAIN")
    assert ses.meter_check == ""
    rs = _ok(c.post("/rulesets", json={"name": "eich_later"}, headers=a.h()))["id"]
    draft = _ok(c.post(f"/rulesets/{rs}/drafts", json={"source": LEGAL.replace("ruleset eich ", "ruleset eich_later ")},
                       headers=a.h("analyst")))
    assert draft["ok"], draft
    version = _ok(c.post(f"/rulesets/{rs}/versions", json={"draft_id": draft["id"],
                                                           "effective_from": "2021-01-01T00:00:00Z"},
                         headers=a.h("approver")))["id"]
    r = c.post(f"/sessions/{ses.id}/rerate", json={"reason": "legal for trade now", "ruleset_version_id": version},
               headers=a.h())
    assert r.status_code in (200, 201), r.text
    assert _ok(c.get(f"/sessions/{ses.id}", headers=a.h()))["meter_check"] == "meter_signature_invalid"


def test_16_key_read_with_get_configuration_after_boot(ocpp_env: OcppEnv) -> None:
    oe, m = ocpp_env, Meter(serial="EMH-16-CONF")

    class ConfiguredCharger(Charger16):
        """A charger exposing its meter's key as configuration key MeterPublicKey[1]."""

        asked: ClassVar[list[list[str]]] = []

        @on(Action16.get_configuration)
        def on_get_configuration(self, key: list[str] | None = None) -> Any:
            self.asked.append(list(key or []))
            return result16.GetConfiguration(
                configuration_key=[{"key": "MeterPublicKey[1]", "readonly": True, "value": m.public_key_hex}],
                unknown_key=[k for k in key or [] if k != "MeterPublicKey[1]"])

    oe.add_charger("CP16-CONF")
    session_16(oe, "CP16-CONF", m, start_wh=0, stop_wh=7250, send_key=False, charger=ConfiguredCharger,
               begin=m.record([(TM_BEGIN, "B", "0")]), end=m.record([(TM_END, "E", "7.250")]))
    assert ConfiguredCharger.asked == [["MeterPublicKeys", "MeterPublicKey[1]"]]
    [k] = _ok(oe.client.get("/meter-keys", params={"meter_serial": m.serial}, headers=oe.h()))["items"]
    assert (k["source"], k["public_key"], k["evse_uid"]) == ("ocpp16_get_configuration", m.public_key_hex,
                                                            "DE*EVB*CP16-CONF*1")
    assert one_session(oe, "CP16-CONF").meter_check == "verified"
