"""Ad-hoc charging end to end: the QR page shows the price, the card is reserved through Stripe's
SDK (answered by a local server in Stripe's wire format), the charger is started by RemoteStart
over a real WebSocket, the cost so far is shown, the stop captures the final amount and releases
the rest, the receipt comes as PDF and e-mail, the money lands on the open items and the journal,
and a refund goes back through the provider (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from ocpp.v16 import call
from sqlalchemy import select

from api.adhoc import service
from api.payments.sandbox import API_KEY, WEBHOOK_SECRET, StripeWire, signature, stripe_wire
from api.payments.stripe_provider import StripeProvider
from store import adhoc as store
from store.accounting import journal_entry, journal_line
from store.receivables import entries_of, item_states, receivable_item
from tests.api.conftest import _ok
from tests.api.ocpp.conftest import OcppEnv, connect, run
from tests.api.ocpp.test_sessions_16 import mv
from tests.mailbox import attachments, smtp_server

T0, T1 = "2026-03-10T09:00:00Z", "2026-03-10T09:40:00Z"  # 10:00-10:40 in Berlin: 0.40 per kWh


@pytest.fixture(autouse=True)
def daytime_prices(monkeypatch: pytest.MonkeyPatch) -> None:
    """The QR page shows the price of a reference session starting now; the tariff's evening window
    (18:00..22:00 Berlin) would change the figures these tests read, so the preview is asked for
    11:00 Berlin time (the page's own clock, not the charge's)."""
    from datetime import UTC, datetime

    from api.adhoc import service as adhoc_service

    real = adhoc_service.price_preview

    def at_daytime(db: Any, place: Any, at: Any = None, **kw: Any) -> Any:
        return real(db, place, at or datetime(2026, 3, 10, 10, 0, tzinfo=UTC), **kw)

    monkeypatch.setattr(adhoc_service, "price_preview", at_daytime)


@contextmanager
def _wire_provider(oe: OcppEnv, hosted_page: bool = False) -> Iterator[StripeWire]:
    """The app's payment provider: Stripe's SDK against the local wire-format server."""
    with stripe_wire() as w:
        app = oe.client.app
        app.state.payment_provider = StripeProvider(API_KEY, webhook_secret=WEBHOOK_SECRET, api_base=w.base,
                                                    max_network_retries=0, hosted_page=hosted_page)
        try:
            yield w
        finally:
            del app.state["payment_provider"]


@pytest.fixture()
def wire(ocpp_env: OcppEnv) -> Iterator[StripeWire]:
    with _wire_provider(ocpp_env) as w:
        yield w


def _evse_id(oe: OcppEnv, identity: str) -> str:
    evses = _ok(oe.client.get("/evses", params={"location_id": oe.ids["location_id"], "limit": 200},
                              headers=oe.h()))["items"]
    return next(e["id"] for e in evses if e["charge_point_id"] == oe.ids[identity])


def _key(location: str) -> str:
    m = re.fullmatch(r"/charge/sessions/([A-Za-z0-9_-]+)\?lang=(de|en)", location)
    assert m, location
    return m.group(1)


def test_qr_page_to_receipt(ocpp_env: OcppEnv, wire: StripeWire, monkeypatch: pytest.MonkeyPatch,
                            tmp_path: Any) -> None:
    oe, c = ocpp_env, ocpp_env.client
    ident = "CP-ADHOC"
    oe.add_charger(ident, evse_uid="DE*EVB*EADHOC*1")
    oe.add_charger("CP-ADHOC-NEXT", evse_uid="DE*EVB*EADHOCNEXT*1")
    evse_id = _evse_id(oe, ident)

    # the QR page: the price of the ruleset in force, through the rating path, in German and English
    page = c.get(f"/charge/{evse_id}", headers={"Accept-Language": "de-DE,de;q=0.9"})
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    html = page.text
    assert '<html lang="de">' in html and "DE*EVB*EADHOC*1" in html
    assert "0,48\xa0€ / kWh" in html and "0,60\xa0€ / Ladevorgang" in html, html  # 0.40 and 0.50 net + 19 % VAT
    # the components named as the invoice names them, in German, never the ruleset's English
    assert "<td>Energie" in html and "<td>Startgebühr" in html and "Energy" not in html, html
    assert "Vor dem Start reservieren wir 50,00\xa0€" in html
    assert "<script" not in html and "style=" not in html
    en = c.get(f"/charge/{evse_id}?lang=en").text
    assert '<html lang="en">' in en and "€0.48 / kWh" in en and "Pay and start charging" in en
    assert "€0.60 / session" in en and "<td>Energy" in en
    svg = c.get(f"/charge/{evse_id}/qr.svg")
    assert svg.status_code == 200 and svg.content.startswith(b"<svg") and svg.headers["content-type"].startswith("image/svg")

    # bad requests: 4xx, never 500
    assert c.get("/charge/evse_nothing", headers={"Accept": "application/json"}).json()["code"] == "evse_not_found"
    assert c.get("/charge/evse_nothing").status_code == 404
    r = c.post(f"/charge/{evse_id}", data={"email": "x@example.com", "payment_method": "pm_card_visa"},
               headers={"Accept": "application/json"}, follow_redirects=False)
    assert (r.status_code, r.json()["code"]) == (422, "price_not_accepted")
    r = c.post(f"/charge/{evse_id}", data={"email": "not an address", "payment_method": "pm_card_visa", "accept": "yes"},
               headers={"Accept": "application/json"}, follow_redirects=False)
    assert (r.status_code, r.json()["code"]) == (422, "invalid_email")
    r = c.post(f"/charge/{evse_id}", data={"accept": "yes"}, headers={"Origin": "https://evil.example"},
               follow_redirects=False)
    assert r.status_code == 403
    assert c.get("/charge/sessions/nope").status_code == 404

    with smtp_server() as (box, port):
        monkeypatch.setenv("EVBILL_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("EVBILL_SMTP_PORT", str(port))
        monkeypatch.setenv("EVBILL_SMTP_SENDER", "billing@alpha.test")
        seen: dict[str, Any] = {}

        async def scenario() -> None:
            async with connect(oe, ident) as cp:
                # pay: the card is reserved, then the charger gets RemoteStartTransaction
                r = await asyncio.to_thread(c.post, f"/charge/{evse_id}", data={
                    "email": "driver@example.com", "payment_method": "pm_card_visa", "accept": "yes", "lang": "en"},
                    follow_redirects=False)
                assert r.status_code == 303, r.text
                key = _key(r.headers["location"])
                seen["key"] = key
                [(action, args)] = cp.remote
                assert action == "RemoteStartTransaction" and args["connector_id"] == 1
                tag = args["id_tag"]
                assert tag.startswith("AH") and len(tag) == 20
                status = await asyncio.to_thread(c.get, f"/charge/sessions/{key}")
                assert "Please plug in the cable" in status.text and 'http-equiv="refresh"' in status.text
                # the charger starts with the one-time tag: accepted for this EVSE only
                other = await cp.call(call.Authorize(id_tag="AH" + "0" * 18))
                assert other.id_tag_info["status"] == "Invalid"
                assert (await cp.call(call.Authorize(id_tag=tag))).id_tag_info["status"] == "Accepted"
                async with connect(oe, "CP-ADHOC-NEXT") as elsewhere:  # the charger next to it: not paid for
                    assert (await elsewhere.call(call.Authorize(id_tag=tag))).id_tag_info["status"] == "Invalid"
                    refused = await elsewhere.call(call.StartTransaction(connector_id=1, id_tag=tag, meter_start=0,
                                                                         timestamp=T0))
                    assert refused.id_tag_info["status"] == "Invalid"
                    await elsewhere.call(call.StopTransaction(meter_stop=0, timestamp=T0,
                                                              transaction_id=refused.transaction_id))
                start = await cp.call(call.StartTransaction(connector_id=1, id_tag=tag, meter_start=1000, timestamp=T0))
                assert start.id_tag_info["status"] == "Accepted"
                await cp.call(call.MeterValues(connector_id=1, transaction_id=start.transaction_id,
                                               meter_value=[mv("2026-03-10T09:20:00Z", 6000)]))
                running = await asyncio.to_thread(c.get, f"/charge/sessions/{key}")
                # cost so far: 5 kWh x 0.40 + 0.50 = 2.50 net, 2.98 gross
                assert "Charging" in running.text and "€2.98" in running.text, running.text
                await cp.call(call.StopTransaction(meter_stop=11000, timestamp=T1,
                                                   transaction_id=start.transaction_id, reason="EVDisconnected"))
                seen["tx"] = start.transaction_id
            oe.idle()

        run(scenario())
        key = seen["key"]
        # the driver walked away: the sweep (a thread of `evbill serve`) captures all the same
        app = c.app
        assert service.sweep(app.state.sessions, app.state.payment_provider) == {"captured": 1}
        assert service.sweep(app.state.sessions, app.state.payment_provider) == {}
        done = c.get(f"/charge/sessions/{key}")
        assert done.status_code == 200
        # 10 kWh x 0.40 + 0.50 = 4.50 net, 0.86 VAT, 5.36 gross: captured; 44.64 of the 50.00 released
        assert "Charging finished and paid" in done.text and "€5.36" in done.text and "€44.64" in done.text, done.text
        assert 'http-equiv="refresh"' not in done.text
        with oe.db() as db:
            charge = store.by_key(db.connection(), key)
        assert charge is not None
        assert (charge.status, charge.gross, charge.net, charge.captured, charge.released) == (
            "captured", Decimal("5.36"), Decimal("4.50"), Decimal("5.36"), Decimal("44.64"))
        assert charge.transaction_id == seen["tx"] and charge.session_id is not None
        # the session is rated as `token adhoc` and billed by its receipt: no account, not unassigned
        [ses] = oe.sessions(ident)
        assert (ses.id, ses.status, ses.unassigned_reason, ses.customer_id) == (charge.session_id, "rated", "", None)
        assert ses.facts["token_type"] == "adhoc" and ses.gross_total == charge.gross
        assert charge.receipt_number.startswith("AH-")
        pi = wire.intents[charge.payment_ref]
        assert (pi["status"], pi["amount"], pi["amount_received"], pi["capture_method"]) == (
            "succeeded", 5000, 536, "manual")
        assert wire.calls("POST", f"/v1/payment_intents/{charge.payment_ref}/capture")[0][2] == {"amount_to_capture": "536"}
        # a second look captures nothing more
        c.get(f"/charge/sessions/{key}")
        assert len(wire.calls("POST", f"/v1/payment_intents/{charge.payment_ref}/capture")) == 1

        # the receipt: PDF on the page and by e-mail, in the driver's language
        pdf = c.get(f"/charge/sessions/{key}/receipt.pdf")
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        path = tmp_path / "receipt.pdf"
        path.write_bytes(pdf.content)
        text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                              check=True).stdout
        assert f"Receipt {charge.receipt_number}" in text and "DE*EVB*EADHOC*1" in text
        assert "€5.36" in text and "€4.50" in text and "VAT 19%" in text and charge.payment_ref in text, text
        assert "Start fee" in text and "pcs" in text, text  # the lines named as the invoice names them
        subprocess.run(["pdftoppm", "-png", "-r", "60", "-singlefile", str(path), str(tmp_path / "receipt")],
                       check=True)
        assert (tmp_path / "receipt.png").stat().st_size > 2000
        [mail] = box.messages
        assert mail["To"] == "driver@example.com" and charge.receipt_number in mail["Subject"]
        assert attachments(mail)[f"{charge.receipt_number}.pdf"][1].startswith(b"%PDF")

    # the money: an item of its own on the tenant's ad-hoc account, paid by the card payment
    with oe.db() as db:
        conn = db.connection()
        item = conn.execute(select(receivable_item).where(receivable_item.c.id == charge.item_id)).one()
        assert (item.kind, item.amount, item.number) == ("card_charge", Decimal("5.36"), charge.receipt_number)
        kinds = [(e.kind, e.amount) for e in entries_of(conn, [item.id])[item.id]]
        assert kinds == [("card_charge", Decimal("5.36")), ("payment", Decimal("5.36"))]

    # a refund through the provider, by an operator; too much is refused before the provider is asked
    too_much = c.post(f"/adhoc-charges/{charge.id}/refund", json={"amount": "5.37"}, headers=oe.h())
    assert (too_much.status_code, too_much.json()["code"]) == (422, "refund_too_large")
    assert not wire.refunds
    other_tenant = c.post(f"/adhoc-charges/{charge.id}/refund", json={"amount": "1.00"}, headers=oe.env.b.h())
    assert other_tenant.status_code == 404
    assert c.post(f"/adhoc-charges/{charge.id}/refund", json={"amount": "1.00"}, headers=oe.h("auditor")).status_code == 403
    out = _ok(c.post(f"/adhoc-charges/{charge.id}/refund", json={"amount": "2.00", "reason": "slow"}, headers=oe.h()))
    assert out["refunded"] == "2.00" and out["status"] == "captured"
    [refund] = wire.refunds.values()
    assert (refund["amount"], refund["payment_intent"]) == (200, charge.payment_ref)
    with oe.db() as db:
        conn = db.connection()
        kinds = [(e.kind, e.amount) for e in entries_of(conn, [item.id])[item.id]]
        assert kinds[2:] == [("card_refund", Decimal("2.00")), ("return", Decimal("2.00"))]
        # the journal: the receipt's revenue and VAT, the card payment, the refund taking both back
        lines: dict[str, list[tuple[str, str, Decimal]]] = {}
        for kind, role, side, amount in conn.execute(
                select(journal_entry.c.source_kind, journal_line.c.role, journal_line.c.side, journal_line.c.amount)
                .join(journal_line, journal_line.c.entry_id == journal_entry.c.id)
                .where(journal_entry.c.tenant_id == oe.env.a.tenant_id,
                       journal_entry.c.source_kind.in_(("card_charge", "payment", "card_refund")),
                       journal_entry.c.document.in_((charge.receipt_number, charge.payment_ref, refund["id"])))):
            lines.setdefault(kind, []).append((role, side, amount))
        assert sorted(lines["card_charge"]) == [("debtor", "debit", Decimal("5.36")), ("revenue", "credit", Decimal("4.50")),
                                                ("vat", "credit", Decimal("0.86"))]
        assert sorted(lines["payment"]) == [("bank", "debit", Decimal("5.36")), ("debtor", "credit", Decimal("5.36"))]
        # 2.00 gross at 19 %: 1.68 net, 0.32 VAT
        assert sorted(lines["card_refund"]) == [("bank", "credit", Decimal("2.00")), ("revenue", "debit", Decimal("1.68")),
                                                ("vat", "debit", Decimal("0.32"))]
    assert _ok(c.get(f"/adhoc-charges/{charge.id}", headers=oe.h("auditor")))["gross"] == "5.36"

    # the provider tells of refunds: ours is counted already; one made in its dashboard is booked, once
    def refunded_event(total: int) -> Any:
        payload = wire.event("charge.refunded", {"id": pi["latest_charge"], "object": "charge", "amount_refunded": total,
                                                 "currency": "eur", "payment_intent": charge.payment_ref})
        return c.post("/payments/webhooks/stripe", content=payload, headers={"Stripe-Signature": signature(payload)})

    assert refunded_event(200).json()["matched"] is True
    assert _ok(c.get(f"/adhoc-charges/{charge.id}", headers=oe.h()))["refunded"] == "2.00"
    for _ in range(2):  # a dashboard refund of 1.00, delivered twice
        assert refunded_event(300).status_code == 200
    assert _ok(c.get(f"/adhoc-charges/{charge.id}", headers=oe.h()))["refunded"] == "3.00"
    with oe.db() as db:
        kinds = [(e.kind, e.amount) for e in entries_of(db.connection(), [item.id])[item.id]]
    assert kinds[4:] == [("card_refund", Decimal("1.00")), ("return", Decimal("1.00"))]
    too_much = c.post(f"/adhoc-charges/{charge.id}/refund", json={"amount": "2.37"}, headers=oe.h())
    assert too_much.json()["code"] == "refund_too_large" and "2.36" in too_much.json()["detail"]

    # the printable QR sheet of the site (API key; another tenant sees no such site)
    sheet = c.get(f"/locations/{oe.ids['location_id']}/adhoc-qr-sheet", params={"lang": "en"}, headers=oe.h())
    assert sheet.status_code == 200 and sheet.content.startswith(b"%PDF")
    path = tmp_path / "sheet.pdf"
    path.write_bytes(sheet.content)
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout
    assert "DE*EVB*EADHOC*1" in text and f"/charge/{evse_id}" in text
    assert c.get(f"/locations/{oe.ids['location_id']}/adhoc-qr-sheet", headers=oe.env.b.h()).status_code == 404


ADHOC_PRICED = """ruleset adhocpriced currency EUR timezone Europe/Berlin
tariff standard "Standard" {
  vat 19%
  energy 0.40 per kWh
  when token adhoc { energy 0.59 per kWh }
}
"""


def test_a_ruleset_prices_adhoc_charging_apart(ocpp_env: OcppEnv, wire: StripeWire) -> None:
    """``when token adhoc``: the page shows the ad-hoc price; a session that delivered nothing
    costs nothing: the reservation is released whole, no item is opened."""
    oe, c = ocpp_env, ocpp_env.client
    rs = _ok(c.post("/rulesets", json={"name": "adhocpriced"}, headers=oe.h()))["id"]
    draft = _ok(c.post(f"/rulesets/{rs}/drafts", json={"source": ADHOC_PRICED}, headers=oe.h("analyst")))
    _ok(c.post(f"/rulesets/{rs}/versions", json={"draft_id": draft["id"], "effective_from": "2021-01-01T00:00:00Z"},
               headers=oe.h("approver")))
    loc = _ok(c.post("/locations", json={"code": "adhoc_site", "name": "Ad-hoc site", "country": "DE",
                                         "timezone": "Europe/Berlin", "ruleset_id": rs}, headers=oe.h()))["id"]
    oe.add_charger("CP-ADHOC-PRICED", location_id=loc, evse_uid="DE*EVB*EPRICED*1")
    evses = _ok(c.get("/evses", params={"location_id": loc}, headers=oe.h()))["items"]
    page = c.get(f"/charge/{evses[0]['id']}?lang=en").text
    assert "€0.70 / kWh" in page and "€0.48" not in page, page  # 0.59 + 19 %
    seen: dict[str, str] = {}

    async def scenario() -> None:
        async with connect(oe, "CP-ADHOC-PRICED") as cp:
            r = await asyncio.to_thread(c.post, f"/charge/{evses[0]['id']}", data={
                "payment_method": "pm_card_visa", "accept": "yes", "lang": "en"}, follow_redirects=False)
            seen["key"] = _key(r.headers["location"])
            tag = cp.remote[0][1]["id_tag"]
            start = await cp.call(call.StartTransaction(connector_id=1, id_tag=tag, meter_start=500, timestamp=T0))
            await cp.call(call.StopTransaction(meter_stop=500, timestamp=T1, transaction_id=start.transaction_id,
                                               reason="EVDisconnected"))

    run(scenario())
    page = c.get(f"/charge/sessions/{seen['key']}").text
    assert "Charging ended at no cost; the reservation is released." in page, page
    with oe.db() as db:
        charge = store.by_key(db.connection(), seen["key"])
    assert charge is not None and (charge.status, charge.gross, charge.captured, charge.released, charge.item_id) == (
        "released", Decimal("0.00"), Decimal("0.00"), Decimal("50.00"), None)
    assert wire.intents[charge.payment_ref]["status"] == "canceled"


def test_declined_3ds_webhook_and_offline_charger(ocpp_env: OcppEnv, wire: StripeWire) -> None:
    oe, c = ocpp_env, ocpp_env.client
    ident = "CP-ADHOC-OFF"
    oe.add_charger(ident, evse_uid="DE*EVB*EADHOCOFF*1")
    evse_id = _evse_id(oe, ident)
    form = {"payment_method": "pm_card_chargeDeclined", "accept": "yes", "lang": "en"}
    r = c.post(f"/charge/{evse_id}", data=form, follow_redirects=False)
    declined = c.get(r.headers["location"])
    assert "The card was declined. Nothing was charged." in declined.text

    # 3-D Secure: the page links to the bank; the provider's webhook says the money is reserved;
    # the charger is offline, so the reservation is released at once
    r = c.post(f"/charge/{evse_id}", data={**form, "payment_method": "pm_card_authenticationRequired"},
               follow_redirects=False)
    key = _key(r.headers["location"])
    page = c.get(f"/charge/sessions/{key}")
    assert "Confirm the payment with your bank" in page.text and "/3ds/pi_" in page.text
    with oe.db() as db:
        charge = store.by_key(db.connection(), key)
    assert charge is not None and charge.status == "action_required"
    pi = wire.intents[charge.payment_ref]
    pi.update(status="requires_capture", amount_capturable=pi["amount"], next_action=None)
    payload = wire.event("payment_intent.amount_capturable_updated", pi)
    bad = c.post("/payments/webhooks/stripe", content=payload,
                 headers={"Stripe-Signature": signature(payload, secret="whsec_wrong"), "Content-Type": "application/json"})
    assert (bad.status_code, bad.json()["code"]) == (400, "webhook_rejected")
    with oe.db() as db:
        assert store.by_key(db.connection(), key).status == "action_required"  # type: ignore[union-attr]
    good = c.post("/payments/webhooks/stripe", content=payload,
                  headers={"Stripe-Signature": signature(payload), "Content-Type": "application/json"})
    assert good.status_code == 200 and good.json() == {"received": True, "matched": True, "charge_status": "failed"}
    assert wire.intents[charge.payment_ref]["status"] == "canceled"
    assert "Charging could not be started; the reservation is released." in c.get(f"/charge/sessions/{key}").text
    assert c.post("/payments/webhooks/adyen", content=payload).status_code == 404


def test_adhoc_charge_on_a_201_station(ocpp_env: OcppEnv, wire: StripeWire, monkeypatch: pytest.MonkeyPatch) -> None:
    """OCPP 2.0.1: RequestStartTransaction with the one-time tag (type Central), TransactionEvents
    Started/Updated/Ended naming it, the capture at the end; the session costs more than the
    reservation, so the card pays the reservation and the rest stays open on the charge's item."""
    monkeypatch.setenv("EVBILL_ADHOC_PREAUTH", "4.00")
    from ocpp.v201 import call as c201

    from tests.api.ocpp.test_sessions_201 import event, sv

    oe, c = ocpp_env, ocpp_env.client
    ident = "CP-ADHOC-201"
    oe.add_charger(ident, evse_uid="DE*EVB*E201*1")
    evse_id = _evse_id(oe, ident)
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        async with connect(oe, ident, "2.0.1") as cp:
            r = await asyncio.to_thread(c.post, f"/charge/{evse_id}", data={
                "payment_method": "pm_card_visa", "accept": "yes", "lang": "de"}, follow_redirects=False)
            assert r.status_code == 303, r.text
            seen["key"] = _key(r.headers["location"])
            [(action, args)] = cp.remote
            assert action == "RequestStartTransaction" and args["evse_id"] == 1
            token = args["id_token"]
            assert token["type"] == "Central" and token["id_token"].startswith("AH")
            tok = {"idToken": token["id_token"], "type": "Central"}
            auth = await cp.call(c201.Authorize(id_token=tok))
            assert auth.id_token_info["status"] == "Accepted"
            started = await cp.call(event("Started", T0, 0, "TX-AH-1", sv(0, "Transaction.Begin"), trigger="RemoteStart",
                                          id_token=tok, evse={"id": 1, "connectorId": 1}))
            assert started.id_token_info["status"] == "Accepted"
            await cp.call(event("Updated", "2026-03-10T09:20:00Z", 1, "TX-AH-1", sv(4000)))
            page = await asyncio.to_thread(c.get, f"/charge/sessions/{seen['key']}")
            # 4 kWh x 0.40 + 0.50 = 2.10 net, 2.50 gross (German page)
            assert "Ladevorgang läuft" in page.text and "2,50\xa0€" in page.text, page.text
            await cp.call(event("Ended", T1, 2, "TX-AH-1", sv(8000, "Transaction.End"), trigger="StopAuthorized",
                                info={"stoppedReason": "Local"}))
        oe.idle()

    run(scenario())
    done = c.get(f"/charge/sessions/{seen['key']}")
    # 8 kWh x 0.40 + 0.50 = 3.70 net, 4.40 gross
    assert "Ladevorgang abgeschlossen und bezahlt" in done.text and "4,40\xa0€" in done.text, done.text
    assert re.search(r"Offen</td><td class=\"num\">0,40\xa0€", done.text), done.text
    with oe.db() as db:
        charge = store.by_key(db.connection(), seen["key"])
    assert charge is not None and (charge.status, charge.gross, charge.captured, charge.released) == (
        "captured", Decimal("4.40"), Decimal("4.00"), Decimal("0.00"))
    assert wire.intents[charge.payment_ref]["amount_received"] == 400
    with oe.db() as db:
        [state] = [s for s in item_states(db.connection(), oe.env.a.tenant_id, account_id=_account_of(db, charge))
                   if s.id == charge.item_id]
    assert (state.kind, state.open) == ("card_charge", Decimal("0.40"))
    german = subprocess.run(["pdftotext", "-", "-"], input=c.get(f"/charge/sessions/{seen['key']}/receipt.pdf").content,
                            capture_output=True, check=True).stdout.decode()
    assert "Offen" in german and "Energie" in german and "Energy" not in german, german


def _account_of(db: Any, charge: store.AdhocCharge) -> str:
    return str(db.execute(select(receivable_item.c.account_id).where(receivable_item.c.id == charge.item_id)).scalar())


@pytest.fixture()
def checkout_wire(ocpp_env: OcppEnv) -> Iterator[StripeWire]:
    """The provider as with a live key: Stripe Checkout (``hosted_page=True`` on a test key, as
    ``EVBILL_PAYMENT_HOSTED_PAGE=1`` sets it), its page served by the local wire-format server."""
    with _wire_provider(ocpp_env, hosted_page=True) as w:
        yield w


def _on_checkout(url: str, action: str = "pay") -> str:
    """The driver on Checkout's page: pay with the test Visa card or cancel; -> where it sends them."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=10)
    if action == "pay":
        conn.request("POST", parts.path, body="card=visa", headers={"Content-Type": "application/x-www-form-urlencoded"})
    else:
        conn.request("GET", parts.path + "/cancel")
    res = conn.getresponse()
    res.read()
    assert res.status == 303, res.status
    back = urlsplit(res.getheader("Location") or "")
    return back.path + "?" + back.query


def test_hosted_checkout_page(ocpp_env: OcppEnv, checkout_wire: StripeWire) -> None:
    """With the hosted page the card never touches our page: the form sends the driver (303) to
    Stripe Checkout (a session reserving the pre-authorization, manual capture); the way back or the
    signed ``checkout.session.completed`` webhook, whichever comes first and only once, takes the
    PaymentIntent as the reservation and starts the charger; the stop captures and releases the
    rest. Cancelling on the page returns to the charging point's page and charges nothing."""
    oe, c, wire = ocpp_env, ocpp_env.client, checkout_wire
    ident = "CP-CHECKOUT"
    oe.add_charger(ident, evse_uid="DE*EVB*ECHECKOUT*1")
    evse_id = _evse_id(oe, ident)

    page = c.get(f"/charge/{evse_id}?lang=en")
    assert page.status_code == 200 and "Continue to payment" in page.text and "secure payment page" in page.text
    assert 'name="payment_method"' not in page.text and "pm_card_visa" not in page.text
    # the form's post leads to Checkout: the page's policy lets it (and nothing else) go there
    assert f"form-action 'self' {wire.base}" in page.headers["content-security-policy"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    de = c.get(f"/charge/{evse_id}", headers={"Accept-Language": "de"}).text
    assert "Weiter zur Zahlung" in de and "sicheren Zahlungsseite" in de
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        async with connect(oe, ident) as cp:
            # 1. back from the page first, the webhook after
            r = await asyncio.to_thread(c.post, f"/charge/{evse_id}", data={
                "email": "driver@example.com", "accept": "yes", "lang": "en", "payment_method": "pm_card_visa"},
                follow_redirects=False)
            assert r.status_code == 303, r.text
            [sid] = list(wire.sessions)
            assert r.headers["location"] == f"{wire.base}/pay/{sid}"
            assert not cp.remote and not wire.intents  # nothing reserved, nothing started yet
            with oe.db() as db:
                [charge] = [ch for ch in _charges(db) if ch.payment_ref == sid]
            assert (charge.status, charge.provider) == ("action_required", "stripe")
            [(_m, _p, body, headers)] = [q for q in wire.requests if q[:2] == ("POST", "/v1/checkout/sessions")]
            assert headers["idempotency-key"] == f"{charge.id}:hosted_page"
            assert body["payment_intent_data"]["capture_method"] == "manual" and body["mode"] == "payment"
            assert body["line_items"][0]["price_data"]["unit_amount"] == "5000"
            assert body["line_items"][0]["price_data"]["currency"] == "eur"
            assert body["metadata"]["evbill_reference"] == charge.id and body["customer_email"] == "driver@example.com"
            assert body["success_url"].endswith(f"/charge/sessions/{charge.key}?lang=en&session_id={{CHECKOUT_SESSION_ID}}")
            assert body["cancel_url"].endswith(f"/charge/sessions/{charge.key}?lang=en&checkout=canceled")
            # the status page before paying links back to the payment page
            waiting = await asyncio.to_thread(c.get, f"/charge/sessions/{charge.key}")
            assert "The payment is not complete yet." in waiting.text and f"/pay/{sid}" in waiting.text
            back = await asyncio.to_thread(_on_checkout, f"{wire.base}/pay/{sid}")
            assert back == f"/charge/sessions/{charge.key}?lang=en&session_id={sid}"
            status = await asyncio.to_thread(c.get, back)
            assert "Please plug in the cable" in status.text, status.text
            [(action, args)] = cp.remote
            assert action == "RemoteStartTransaction" and args["id_tag"] == charge.id_tag
            with oe.db() as db:
                now = store.by_key(db.connection(), charge.key)
            assert now is not None and now.status == "starting" and now.payment_ref.startswith("pi_")
            pid = now.payment_ref
            assert wire.intents[pid]["status"] == "requires_capture" and wire.intents[pid]["amount"] == 5000
            # Stripe's webhook arrives after the driver: nothing happens twice
            payload = wire.event("checkout.session.completed", wire.sessions[sid])
            hook = await asyncio.to_thread(c.post, "/payments/webhooks/stripe", content=payload,
                                           headers={"Stripe-Signature": signature(payload)})
            assert hook.status_code == 200 and hook.json()["matched"] is False
            await asyncio.to_thread(c.get, back)  # the driver reloads the page they came back to
            assert len(cp.remote) == 1
            start = await cp.call(call.StartTransaction(connector_id=1, id_tag=charge.id_tag, meter_start=0,
                                                        timestamp=T0))
            assert start.id_tag_info["status"] == "Accepted"
            await cp.call(call.StopTransaction(meter_stop=10000, timestamp=T1, transaction_id=start.transaction_id,
                                               reason="EVDisconnected"))
            seen["first"] = charge.key

            # 2. the webhook first (the driver's phone lost its connection), then the way back
            r = await asyncio.to_thread(c.post, f"/charge/{evse_id}", data={"accept": "yes", "lang": "de"},
                                        follow_redirects=False)
            sid2 = r.headers["location"].rsplit("/", 1)[1]
            back2 = await asyncio.to_thread(_on_checkout, r.headers["location"])
            payload = wire.event("checkout.session.completed", wire.sessions[sid2])
            bad = await asyncio.to_thread(c.post, "/payments/webhooks/stripe", content=payload,
                                          headers={"Stripe-Signature": signature(payload, secret="whsec_wrong")})
            assert bad.status_code == 400 and len(cp.remote) == 1
            hook = await asyncio.to_thread(c.post, "/payments/webhooks/stripe", content=payload,
                                           headers={"Stripe-Signature": signature(payload)})
            assert hook.json() == {"received": True, "matched": True, "charge_status": "starting"}
            assert len(cp.remote) == 2
            status = await asyncio.to_thread(c.get, back2)
            assert "Bitte stecken Sie das Ladekabel ein" in status.text and len(cp.remote) == 2
            seen["second"] = back2.split("?")[0].rsplit("/", 1)[1]
        oe.idle()

    run(scenario())
    done = c.get(f"/charge/sessions/{seen['first']}")
    # 10 kWh x 0.40 + 0.50 = 4.50 net, 5.36 gross captured from the Checkout's PaymentIntent
    assert "Charging finished and paid" in done.text and "€5.36" in done.text and "€44.64" in done.text, done.text
    with oe.db() as db:
        first = store.by_key(db.connection(), seen["first"])
        second = store.by_key(db.connection(), seen["second"])
    assert first is not None and (first.status, first.captured, first.released) == (
        "captured", Decimal("5.36"), Decimal("44.64"))
    assert wire.intents[first.payment_ref]["amount_received"] == 536
    assert second is not None and second.status == "starting" and second.payment_ref.startswith("pi_")

    # 3. cancelled on the page: back on the charging point's page, nothing reserved or started
    intents = len(wire.intents)
    r = c.post(f"/charge/{evse_id}", data={"accept": "yes", "lang": "en"}, follow_redirects=False)
    sid3 = r.headers["location"].rsplit("/", 1)[1]
    back3 = _on_checkout(r.headers["location"], "cancel")
    assert back3.endswith("?lang=en&checkout=canceled")
    returned = c.get(back3, follow_redirects=False)
    assert (returned.status_code, returned.headers["location"]) == (303, f"/charge/{evse_id}?lang=en&checkout=canceled")
    again = c.get(returned.headers["location"])
    assert "The payment was cancelled. Nothing was charged." in again.text and "Continue to payment" in again.text
    with oe.db() as db:
        [third] = [ch for ch in _charges(db) if ch.payment_ref == sid3]
    assert third.status == "canceled" and wire.sessions[sid3]["status"] == "expired"
    assert len(wire.intents) == intents
    # a late look at the cancelled charge, or Stripe's expiry webhook, changes nothing
    payload = wire.event("checkout.session.expired", wire.sessions[sid3])
    assert c.post("/payments/webhooks/stripe", content=payload,
                  headers={"Stripe-Signature": signature(payload)}).json()["charge_status"] == "canceled"
    assert "The payment was cancelled." in c.get(f"/charge/sessions/{third.key}?lang=en").text


def _charges(db: Any) -> list[store.AdhocCharge]:
    return [c for c in (store.by_key(db.connection(), k) for k in
                        db.execute(select(store.adhoc_charge.c.key)).scalars()) if c is not None]
