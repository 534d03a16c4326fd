"""The console part of ``evbill demo``: the demo's database served over HTTP on 127.0.0.1 for a
moment, an approver signs in with headless Chromium (Debian's ``/usr/bin/chromium``, driven by
Playwright for Python) and a screenshot of each console page lands in ``out/console/``. Without
Chromium or the playwright package (``make system``, ``make install``) the step says so and
leaves the folder out; it stops the server and the browser before it returns either way.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("EVBILL_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

# (file name, path, what the page shows)
PAGES = (("sign-in", "/console/sign-in", "sign-in"),
         ("dashboard", "/console/dashboard?month=2026-11", "dashboard"),
         ("inbox", "/console/inbox", "finance inbox"),
         ("invoices", "/console/invoices", "invoices"),
         ("invoice", None, "an invoice with its PDF"),
         ("documents", "/console/documents", "the document archive"),
         ("customers", "/console/customers", "customers"),
         ("customer", None, "a customer with its accounts, contracts, tokens and SEPA mandates"),
         ("sessions", "/console/sessions", "the month's sessions"),
         ("session", None, "a session with its rated lines and rating trace"),
         ("unassigned", "/console/unassigned", "unassigned sessions to review"),
         ("meter-keys", "/console/meter-keys", "the legal-for-trade meters' keys (Eichrecht)"),
         ("reservations", "/console/reservations", "reservations sent to the chargers, and what became of them"),
         ("rulesets", "/console/rulesets", "rulesets"),
         ("ruleset", None, "a ruleset in the editor, checked as you type"))
# the pages without a fixed address: the first row's link on this list
_FIRST_OF = {"invoice": "/console/invoices", "ruleset": "/console/rulesets", "customer": "/console/customers",
             "session": "/console/sessions"}


def unavailable() -> str | None:
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (make system installs it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (make install)"
    return None


@contextmanager
def _served(engine: Any) -> Iterator[str]:
    import httpx
    import uvicorn

    from api.app import Settings, create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    app = create_app(Settings(engine=engine, migrate=False, rate_limit=None))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, log_level=None,
                                           access_log=False))
    thread = threading.Thread(target=server.run, name="demo-console", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the console's server did not start")
            time.sleep(0.1)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def screenshots(engine: Any, tenant_id: str, out: Path, email: str = "approver@stadtwerke.example",
                charger: tuple[str, dict[str, str]] | None = None, receipts: Path | None = None) -> list[str]:
    """Screenshots of the console's pages as ``email`` sees them, in ``out``; the files' names.
    With ``charger`` (the gateway's ``ws://`` base and the chargers' OCPP passwords) a driver also
    pays one ad-hoc charge at the first EVSE through the card sandbox (the simulated charger of
    ``api.demo_adhoc`` starts and stops it), its receipt PDF lands in ``receipts``, and the
    console's ad-hoc charges page is shot after it."""
    from playwright.sync_api import sync_playwright


    password = _fresh_password(engine, tenant_id, email)
    assert password is not None, email
    out.mkdir(parents=True, exist_ok=True)
    made: list[str] = []
    with _served(engine) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="de-DE")
            page.goto(f"{base}/console/sign-in")
            page.screenshot(path=str(out / "sign-in.png"), full_page=True)
            made.append("sign-in.png")
            _sign_in(page, email, password)
            page.wait_for_url(f"{base}/console/dashboard")
            for name, path, _what in PAGES[1:]:
                if path is None:
                    page.goto(base + _FIRST_OF[name])
                    link = page.locator("tbody a").first
                    if not link.count():
                        continue
                    link.click()
                    page.wait_for_load_state("networkidle")
                    # the PDF viewer draws its first page; the editor's live check answers
                    page.wait_for_timeout(1500)
                else:
                    page.goto(base + path)
                    page.wait_for_load_state("networkidle")
                page.screenshot(path=str(out / f"{name}.png"), full_page=name != "invoice")
                made.append(f"{name}.png")
            # the public ad-hoc page of the first EVSE (a QR code's target): the price before the
            # start and the card form (the demo's card sandbox, or the provider the environment sets)
            made += _adhoc_page(browser, base, engine, tenant_id, out)
            if charger is not None and receipts is not None and made[-1:] == ["charge.png"]:
                made += _adhoc_charge(browser, base, engine, tenant_id, out, charger, receipts)
                page.goto(f"{base}/console/adhoc")
                page.wait_for_load_state("networkidle")
                page.screenshot(path=str(out / "adhoc.png"), full_page=True)
                made.append("adhoc.png")
            page.close()
            made += _portal(browser, base, engine, tenant_id, out)
        finally:
            browser.close()
    return made


def _fresh_password(engine: Any, tenant_id: str, email: str) -> str | None:
    """A new console password for the user ``email`` (this run's only: the demo prints no sign-in);
    None where the tenant has no such user."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from store.console import set_password
    from store.models import User

    password = secrets.token_urlsafe(18)
    with Session(engine) as db:
        uid = db.execute(select(User.id).where(User.tenant_id == tenant_id, User.email == email)).scalar()
        if uid is None:
            return None
        set_password(db, tenant_id, uid, password)
        db.commit()
    return password


def _sign_in(page: Any, email: str, password: str) -> None:
    """Fill the German sign-in form on ``page`` (already at /console/sign-in) and send it."""
    page.get_by_label("E-Mail-Adresse").fill(email)
    page.get_by_label("Passwort").fill(password)
    page.get_by_role("button", name="Anmelden").click()


def _portal(browser: Any, base: str, engine: Any, tenant_id: str, out: Path) -> list[str]:
    """The site host's person signs in (a context of its own) and lands on the partner portal."""
    from api.demo_system import HOST_PORTAL_EMAIL

    password = _fresh_password(engine, tenant_id, HOST_PORTAL_EMAIL)
    if password is None:
        return []
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="de-DE")
    try:
        page.goto(f"{base}/console/sign-in")
        _sign_in(page, HOST_PORTAL_EMAIL, password)
        page.wait_for_url(f"{base}/console/portal**")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(out / "portal.png"), full_page=True)
    finally:
        page.close()
    return ["portal.png"]


def _adhoc_page(browser: Any, base: str, engine: Any, tenant_id: str, out: Path) -> list[str]:
    from store.records import evse_ids

    with engine.connect() as conn:
        evses = evse_ids(conn, tenant_id, limit=1)
    if not evses:
        return []
    page = browser.new_page(viewport={"width": 480, "height": 900}, locale="de-DE")  # a phone's width
    try:
        page.goto(f"{base}/charge/{evses[0]}")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(out / "charge.png"), full_page=True)
    finally:
        page.close()
    return ["charge.png"]


def _until(page: Any, text: str, seconds: float = 60) -> None:
    """Reload the driver's page (it refreshes itself every few seconds) until it says ``text``."""
    deadline = time.monotonic() + seconds
    while text not in page.locator("main").inner_text():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the ad-hoc page never said {text!r}: {page.locator('main').inner_text()[:300]}")
        time.sleep(0.3)
        page.reload()


def _adhoc_charge(browser: Any, base: str, engine: Any, tenant_id: str, out: Path,
                  charger: tuple[str, dict[str, str]], receipts: Path) -> list[str]:
    """A driver at the first EVSE: accepts the price, pays on the card sandbox's Checkout page with
    the test Visa, watches the cost so far, stops, and keeps the receipt PDF."""
    from sqlalchemy import select

    from api import demo_adhoc
    from store import adhoc as store
    from store.models import ChargePoint, Evse
    from store.records import evse_ids

    ws_base, passwords = charger
    with engine.connect() as conn:
        evse = evse_ids(conn, tenant_id, limit=1)[0]
        identity = conn.execute(select(ChargePoint.identity).join(Evse, Evse.charge_point_id == ChargePoint.id)
                                .where(Evse.id == evse)).scalar_one()
    made: list[str] = []
    with demo_adhoc.connected(f"{ws_base}/{identity}", identity, passwords[identity]):
        page = browser.new_page(viewport={"width": 480, "height": 900}, locale="de-DE")
        try:
            page.goto(f"{base}/charge/{evse}")
            page.get_by_label("Ich akzeptiere den angezeigten Preis.").check()
            page.get_by_role("button", name="Weiter zur Zahlung").click()
            page.wait_for_url("**/pay/**")  # the sandbox's Checkout page
            page.screenshot(path=str(out / "checkout.png"), full_page=True)
            made.append("checkout.png")
            page.locator("button[type=submit]").click()
            page.wait_for_url(f"{base}/charge/sessions/**")
            _until(page, "Bisherige Kosten")
            page.get_by_role("button", name="Laden beenden").click()
            _until(page, "Ladevorgang abgeschlossen und bezahlt")
            page.screenshot(path=str(out / "charge-receipt.png"), full_page=True)
            made.append("charge-receipt.png")
            link = page.get_by_role("link", name="Beleg als PDF")
            pdf = page.request.get(f"{base}{link.get_attribute('href')}")
            if not (pdf.ok and pdf.body().startswith(b"%PDF")):
                raise RuntimeError(f"the ad-hoc receipt did not come: {pdf.status}")
            key = page.url.split("/charge/sessions/", 1)[1].split("?", 1)[0]
            with engine.connect() as conn:
                charge = store.by_key(conn, key)
            receipts.mkdir(parents=True, exist_ok=True)
            (receipts / f"{charge.receipt_number if charge else 'receipt'}.pdf").write_bytes(pdf.body())
        finally:
            page.close()
    return made
