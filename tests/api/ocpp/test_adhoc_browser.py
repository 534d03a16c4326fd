"""Ad-hoc charging in Debian's headless Chromium: the driver opens the QR page, reads the price,
pays with a test card (the card reserved through Stripe's SDK against the local Stripe-wire
server), a simulated OCPP 1.6J charger on a real WebSocket starts on RemoteStartTransaction and
reports its meter, the driver sees the cost so far, stops from the page (RemoteStopTransaction), and
gets the receipt. Every request stays on our origin, the page breaks no CSP rule, and the pages
meet the console's accessibility checks."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlparse

import pytest
import websockets
from ocpp.routing import after
from ocpp.v16 import call
from ocpp.v16.enums import Action

from api.payments.sandbox import API_KEY, WEBHOOK_SECRET, stripe_wire
from api.payments.stripe_provider import StripeProvider
from tests.api.ocpp.conftest import Charger16, OcppEnv
from tests.api.ocpp.test_adhoc_charging import (
    _evse_id,
    daytime_prices,  # noqa: F401  (autouse: the QR page priced at 11:00 Berlin)
)
from tests.console.browser import chromium, require
from tests.console.server import served
from tests.console.test_console_browser import A11Y


class AutoCharger(Charger16):
    """Starts a transaction when told to remotely (with the tag it was given), meters 3 kWh, and
    stops when told to."""

    tx: int | None = None
    t0: datetime | None = None

    def _iso(self, minutes: int) -> str:
        assert self.t0 is not None
        return (self.t0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")

    @after(Action.remote_start_transaction)
    async def started(self, id_tag: str, **kw: Any) -> None:
        # The session runs in the tariff's daytime window whatever the hour of the test: it starts at
        # 09:00 UTC (10:00 or 11:00 in Berlin) of today, or of yesterday before that hour has passed.
        now = datetime.now(UTC).replace(microsecond=0)
        day = now.replace(hour=9, minute=0, second=0)
        self.t0 = day if day + timedelta(minutes=30) <= now else day - timedelta(days=1)
        res = await self.call(call.StartTransaction(connector_id=1, id_tag=id_tag, meter_start=0,
                                                    timestamp=self._iso(0)))
        self.tx = res.transaction_id
        await self.call(call.MeterValues(connector_id=1, transaction_id=self.tx, meter_value=[
            {"timestamp": self._iso(15), "sampledValue": [{"value": "3000", "measurand": "Energy.Active.Import.Register",
                                                           "unit": "Wh"}]}]))

    @after(Action.remote_stop_transaction)
    async def stopped(self, transaction_id: int, **kw: Any) -> None:
        await self.call(call.StopTransaction(meter_stop=6000, timestamp=self._iso(29), transaction_id=transaction_id,
                                             reason="Remote"))


@contextlib.contextmanager
def charger(oe: OcppEnv, identity: str) -> Iterator[AutoCharger]:
    """The charger on an event loop of its own thread, connected until the block ends."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: list[AutoCharger] = []
    stop = asyncio.Event()

    async def main() -> None:
        async with websockets.connect(oe.url(identity), subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                                      additional_headers=oe.auth(identity)) as ws:
            cp = AutoCharger(identity, ws, response_timeout=10)
            holder.append(cp)
            task = asyncio.create_task(cp.start())
            ready.set()
            await stop.wait()
            task.cancel()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(15), "the charger did not connect"
    try:
        yield holder[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


def _until(page: Any, text: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while text not in page.locator("main").inner_text():
        assert time.monotonic() < deadline, (text, page.locator("main").inner_text()[:500])
        time.sleep(0.3)
        page.reload()


# one backend is enough for the browser (the HTTP tests in test_adhoc_charging cover both): the
# module's ocpp_env is built on SQLite only, so nothing is skipped
_SQLITE_ONLY = pytest.mark.parametrize("ocpp_env", ["sqlite"], indirect=True)


@contextlib.contextmanager
def _driver(oe: OcppEnv, ident: str, evse_uid: str, hosted_page: bool = False) -> Iterator[Any]:
    """The app served with Stripe's SDK against the local wire server (its Checkout page too with
    ``hosted_page``), a charger on a real WebSocket, and a Chromium page that records every request
    and every console error; checked on leaving: no CSP refusal."""
    require()
    oe.add_charger(ident, evse_uid=evse_uid)
    app = oe.client.app
    with stripe_wire() as wire, served(app) as base, charger(oe, ident) as cp, chromium() as browser:
        app.state.payment_provider = StripeProvider(API_KEY, webhook_secret=WEBHOOK_SECRET, api_base=wire.base,
                                                    max_network_retries=0, hosted_page=hosted_page)
        try:
            page = browser.new_page(locale="en-GB")
            seen: list[str] = []
            errors: list[str] = []
            page.on("request", lambda r: seen.append(r.url))
            page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            yield SimpleNamespace(wire=wire, base=base, cp=cp, page=page, seen=seen, evse_id=_evse_id(oe, ident))
        finally:
            del app.state["payment_provider"]
    assert not [e for e in errors if "Content Security Policy" in e or "Refused" in e], errors


@_SQLITE_ONLY
def test_adhoc_charge_in_a_browser(ocpp_env: OcppEnv, tmp_path: Any) -> None:
    shots = tmp_path
    with _driver(ocpp_env, "CP-ADHOC-WEB", "DE*EVB*EWEB*1") as d:
        base, cp, page, wire, evse_id = d.base, d.cp, d.page, d.wire, d.evse_id
        page.goto(f"{base}/charge/{evse_id}")
        assert page.locator("html").get_attribute("lang") == "en"
        assert page.get_by_role("heading", level=1).inner_text() == "Charge without a contract"
        price = page.locator("table").inner_text()
        assert "€0.48 / kWh" in price and "€0.60 / session" in price, price
        assert not page.evaluate(A11Y)
        page.screenshot(path=str(shots / "adhoc-price.png"), full_page=True)
        # German on the switch
        page.get_by_role("link", name="Deutsch").click()
        page.get_by_role("heading", name="Laden ohne Vertrag").wait_for()
        page.get_by_role("link", name="English").click()

        # the form by keyboard: the e-mail, the test card, the price accepted, pay
        page.get_by_label("E-mail address for the receipt").fill("driver@example.com")
        page.get_by_label("Visa (approved)").check()
        page.get_by_label("I accept the price shown.").focus()
        page.keyboard.press("Space")
        page.get_by_role("button", name="Pay and start charging").press("Enter")
        page.wait_for_url(f"{base}/charge/sessions/**")
        _until(page, "Cost so far")
        assert [a for a, _ in cp.remote] == ["RemoteStartTransaction"]
        assert "€" in page.locator("dd.big").inner_text()
        assert not page.evaluate(A11Y)
        page.screenshot(path=str(shots / "adhoc-charging.png"), full_page=True)

        page.get_by_role("button", name="Stop charging").click()
        _until(page, "Charging finished and paid")
        assert [a for a, _ in cp.remote] == ["RemoteStartTransaction", "RemoteStopTransaction"]
        receipt = page.get_by_role("link", name="Receipt (PDF)")
        pdf = page.request.get(f"{base}{receipt.get_attribute('href')}")
        assert pdf.ok and pdf.body().startswith(b"%PDF")
        # 6 kWh x 0.40 + 0.50 = 2.90 net, 3.45 gross: what the card gave
        assert "€3.45" in page.locator("main").inner_text()
        [pi] = wire.intents.values()
        assert (pi["status"], pi["amount_received"]) == ("succeeded", 345)
        assert not page.evaluate(A11Y)
        page.screenshot(path=str(shots / "adhoc-receipt.png"), full_page=True)
    assert {urlparse(u).netloc for u in d.seen} == {urlparse(base).netloc}, d.seen
    for name in ("adhoc-price", "adhoc-charging", "adhoc-receipt"):
        assert (shots / f"{name}.png").stat().st_size > 5000


@_SQLITE_ONLY
def test_adhoc_charge_through_checkout_in_a_browser(ocpp_env: OcppEnv, tmp_path: Any) -> None:
    """With the hosted page (a live key's default): our page takes no card, its form leads to
    Stripe Checkout (here the local server's page; the page's CSP lets the form's redirect go
    there and nowhere else), paying there comes back and starts the charger; cancelling there
    comes back to the charging point's page with nothing charged."""
    shots = tmp_path
    with _driver(ocpp_env, "CP-CHECKOUT-WEB", "DE*EVB*ECHKWEB*1", hosted_page=True) as d:
        base, cp, page, wire, evse_id = d.base, d.cp, d.page, d.wire, d.evse_id
        # cancelled on Checkout first
        page.goto(f"{base}/charge/{evse_id}")
        assert not page.get_by_label("Visa (approved)").count() and not page.locator("#payment_method").count()
        page.get_by_label("I accept the price shown.").check()
        page.get_by_role("button", name="Continue to payment").click()
        page.wait_for_url(f"{wire.base}/pay/**")
        page.get_by_role("link", name="Cancel and go back").click()
        page.wait_for_url(f"{base}/charge/{evse_id}?lang=en&checkout=canceled")
        assert "The payment was cancelled. Nothing was charged." in page.locator("main").inner_text()
        assert not cp.remote and not wire.intents
        assert not page.evaluate(A11Y)
        page.screenshot(path=str(shots / "checkout-canceled.png"), full_page=True)

        # then paid on Checkout: back on our page, the charger starts, the stop captures
        page.get_by_label("E-mail address for the receipt").fill("driver@example.com")
        page.get_by_label("I accept the price shown.").focus()
        page.keyboard.press("Space")
        page.get_by_role("button", name="Continue to payment").press("Enter")
        page.wait_for_url(f"{wire.base}/pay/**")
        page.screenshot(path=str(shots / "checkout-page.png"), full_page=True)
        page.get_by_role("button", name="Reserve 50.00 EUR").click()
        page.wait_for_url(f"{base}/charge/sessions/**")
        assert "session_id=cs_test_" in page.url
        _until(page, "Cost so far")
        assert [a for a, _ in cp.remote] == ["RemoteStartTransaction"]
        page.screenshot(path=str(shots / "checkout-charging.png"), full_page=True)
        page.get_by_role("button", name="Stop charging").click()
        _until(page, "Charging finished and paid")
        [pi] = wire.intents.values()
        assert (pi["capture_method"], pi["status"], pi["amount_received"]) == ("manual", "succeeded", 345)
        assert not page.evaluate(A11Y)
        page.screenshot(path=str(shots / "checkout-receipt.png"), full_page=True)
        console_refund(ocpp_env, d, shots)
    # our origin and the provider's page, nothing else
    assert {urlparse(u).netloc for u in d.seen} == {urlparse(base).netloc, urlparse(wire.base).netloc}, d.seen
    for name in ("checkout-canceled", "checkout-charging", "checkout-receipt", "console-adhoc", "console-adhoc-charge"):
        assert (shots / f"{name}.png").stat().st_size > 5000


def console_refund(oe: OcppEnv, d: Any, shots: Any) -> None:
    """The operator signs in to the console (by keyboard), finds the paid charge among the ad-hoc
    charges and refunds part of it through the provider from the charge's page."""
    import re

    from sqlalchemy.orm import Session

    from store.console import set_password

    a = oe.env.a
    with Session(oe.env.engine) as db:
        set_password(db, a.tenant_id, a.users["operator"], "a long console password")
        db.commit()
    page = d.page.context.browser.new_page(locale="de-DE")
    page.goto(f"{d.base}/console")
    page.wait_for_function("document.activeElement && document.activeElement.id === 'email'")
    page.keyboard.type(f"operator@{a.name}.test")
    page.keyboard.press("Tab")
    page.keyboard.type("a long console password")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{d.base}/console/dashboard")
    page.get_by_role("link", name="Ad-hoc-Laden").click()
    page.wait_for_url(f"{d.base}/console/adhoc")
    assert page.get_by_role("heading", level=1).inner_text() == "Ad-hoc-Ladevorgänge mit Kartenzahlung"
    paid = page.locator("#adhoc tbody tr", has_text="bezahlt").filter(has_text="ECHKWEB")
    assert "3,45\xa0€" in paid.inner_text() and "50,00\xa0€" in paid.inner_text(), paid.inner_text()
    # the cancelled Checkout: nothing was ever reserved on a card
    canceled = page.locator("#adhoc tbody tr", has_text="abgebrochen").filter(has_text="ECHKWEB")
    assert "50,00" not in canceled.inner_text() and "–" in canceled.inner_text(), canceled.inner_text()
    assert not page.evaluate(A11Y)
    page.screenshot(path=str(shots / "console-adhoc.png"), full_page=True)
    paid.get_by_role("link", name="DE*EVB*ECHKWEB*1").click()
    page.get_by_role("heading", name=re.compile("Ad-hoc-Ladevorgang DE\\*EVB\\*ECHKWEB\\*1")).wait_for()
    assert not page.evaluate(A11Y)
    page.get_by_label(re.compile("^Betrag")).fill("1,00")
    page.get_by_label("Grund").fill("Ladepunkt langsam")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/console/adhoc/adh_[^/?]+\?refunded=1\.00$"))
    main = page.locator("main").inner_text()
    assert "Erstattet über den Zahlungsdienst: 1,00\xa0€." in main and "Ladepunkt langsam" in main, main
    assert f"operator@{a.name}.test" in page.locator("#refunds").inner_text()
    assert [r["amount"] for r in d.wire.refunds.values()] == [100]
    page.screenshot(path=str(shots / "console-adhoc-charge.png"), full_page=True)
    page.get_by_role("link", name=re.compile("^ses_")).click()  # the session the transaction became
    page.get_by_role("heading", name=re.compile("^Ladevorgang ")).wait_for()
    page.close()
