"""The console in a real browser against the real server: ``evbill serve`` as a subprocess
(embedded Temporal, the billing worker, the API and the console on one port) and Debian's headless
Chromium. A person signs in with the keyboard, approves a held invoice (the billing cycle's workflow
finalizes it), finds it among the invoices with its PDF, and matches a bank entry by hand.

A screenshot of each page is saved (``EVBILL_CONSOLE_SCREENSHOTS``, default the test's tmp dir)."""

from __future__ import annotations

import base64
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from store.console import set_password
from store.db import make_engine, migrate
from store.models import ChargingSession
from store.tenants import bootstrap_tenant, create_user, issue_key
from tests.api.routes import camt_sample
from tests.console.browser import chromium, require
from tests.mailbox import free_port
from tests.workflows.seed import insert_sessions, seed_accounts

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "a long console password"


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A plain PNG in one colour: the logo the console and the invoices show."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


LOGO = base64.b64encode(_png(96, 32, (11, 93, 59))).decode()


@dataclass
class Server:
    base: str
    key: str
    tenant_id: str
    account_id: str
    workflow_id: str
    shots: Path
    keys: dict[str, str]
    db_url: str = ""

    def api(self, method: str, path: str, *, as_: str = "", **kw: Any) -> httpx.Response:
        key = self.keys[as_] if as_ else self.key
        return httpx.request(method, self.base + path, headers={"Authorization": f"Bearer {key}",
                                                                **kw.pop("headers", {})}, timeout=30, **kw)


def _wait(what: str, check: Any, seconds: float, log: Path) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {seconds}s\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require()
    tmp = tmp_path_factory.mktemp("console")
    db_url = f"sqlite:///{tmp / 'evbill.db'}"
    engine = make_engine(db_url)
    migrate(engine)
    with Session(engine) as db:
        tenant, cred = bootstrap_tenant(db, "Stadtwerke Musterstadt", legal_name="Stadtwerke Musterstadt GmbH",
                                        branding={"primary_color": "#0b5d3b", "secondary_color": "#e3f1ea",
                                                  "logo": LOGO, "logo_mime": "image/png"})
        keys = {}
        for email, role in (("finance@sw.example", "approver"), ("controller@sw.example", "approver"),
                            ("ops@sw.example", "operator")):
            user = create_user(db, tenant.id, email, role)
            db.flush()
            set_password(db, tenant.id, user.id, PASSWORD)
            keys[email] = issue_key(db, tenant.id, user.id, "browser test")[1]
        tenant_id = tenant.id
        db.commit()
    s = seed_accounts(engine, tenant_id, 2)
    acc = s.account_ids[0]
    start = datetime(2026, 11, 2, 8, tzinfo=UTC)
    rows = [(acc, "big", datetime(2026, 11, 10, 9, tzinfo=UTC), D(5000))]  # over the hold's 1,000.00
    rows += [(s.account_ids[i % 2], f"s{i}", start + timedelta(days=i % 27, hours=i % 9), D(8 + i % 30))
             for i in range(60)]
    insert_sessions(engine, s, rows)
    with engine.begin() as conn:
        for i, site in enumerate(("berlin_mitte", "hotel_adler", "depot_nord")):
            conn.execute(update(ChargingSession).where(ChargingSession.tenant_id == tenant_id,  # type: ignore[arg-type]
                                                       ChargingSession.id.like(f"s%{i}")).values(location_ref=site))  # type: ignore[attr-defined]
    engine.dispose()

    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), EVBILL_DATABASE_URL=db_url, EVBILL_TEMPORAL_PORT=str(free_port()))
    for name in ("TEMPORAL_ADDRESS", "EVBILL_SMTP_HOST", "EVBILL_RATE_LIMIT", "EVBILL_RENDER_DOCUMENTS"):
        env.pop(name, None)
    log = tmp / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--ocpp-port", "0", "--port", str(port)],
                                cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    shots = Path(os.environ.get("EVBILL_CONSOLE_SCREENSHOTS") or tmp / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    try:
        def up() -> bool:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                return httpx.get(f"{base}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        _wait("the server", up, 120, log)
        srv = Server(base, cred.key, tenant_id, acc, "", shots, keys, db_url)
        r = srv.api("POST", f"/billing/accounts/{acc}/cycles", json={"start": "2026-11-01", "end": "2026-12-01"})
        assert r.status_code == 202, r.text
        srv.workflow_id = r.json()["workflow_id"]
        _wait("the held invoice", lambda: srv.api("GET", "/billing/tasks").json()["items"], 90, log)
        r = srv.api("POST", "/bank-statements", content=camt_sample("browser"),
                    headers={"Content-Type": "application/xml"})
        assert r.status_code == 201 and r.json()["unmatched"] == 1, r.text
        yield srv
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def _sign_in(page: Any, srv: Server, email: str) -> None:
    page.goto(f"{srv.base}/console")
    assert urlparse(page.url).path == "/console/sign-in"
    # by keyboard: the e-mail field has the focus (autofocus), Tab to the password, Enter sends the form
    page.wait_for_function("document.activeElement && document.activeElement.id === 'email'")
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    try:
        page.wait_for_url(f"{srv.base}/console/dashboard")
    except Exception as exc:  # say what the page showed instead
        raise AssertionError(f"{page.url}: {page.locator('main').inner_text()[:300]}") from exc


def _operator_page(browser: Any, srv: Server) -> tuple[Any, list[str]]:
    """A German page signed in as the operator, and the list its script errors and 4xx/5xx answers go to."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}, locale="de-DE").new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    _sign_in(page, srv, "ops@sw.example")
    return page, errors


# every form control has a name a screen reader reads out, every image a text, one h1 per page
A11Y = """() => {
  const out = [];
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea, button')) {
    const named = (el.labels && el.labels.length) || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')
      || (el.tagName === 'BUTTON' && el.textContent.trim());
    if (!named) out.push('unnamed ' + el.outerHTML.slice(0, 80));
  }
  for (const img of document.querySelectorAll('img')) if (!img.hasAttribute('alt')) out.push('no alt ' + img.src);
  for (const svg of document.querySelectorAll('svg')) if (!svg.getAttribute('aria-label')) out.push('svg without label');
  if (document.querySelectorAll('h1').length !== 1) out.push('h1 count ' + document.querySelectorAll('h1').length);
  if (!document.documentElement.lang) out.push('no lang');
  return out;
}"""


def _accessible(page: Any) -> None:
    problems = page.evaluate(A11Y)
    assert not problems, (page.url, problems)


def _local_only(page: Any, srv: Server) -> list[str]:
    seen: list[str] = []
    page.on("request", lambda req: seen.append(req.url))
    return seen


def test_sign_in_and_approve_a_held_invoice(server: Server, browser: Any) -> None:
    srv = server
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="de-DE")
    page = ctx.new_page()
    requests = _local_only(page, srv)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(f"{m.text} {m.location}") if m.type == "error" else None)
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)

    # a wrong password first
    page.goto(f"{srv.base}/console/sign-in")
    page.get_by_label("E-Mail-Adresse").fill("finance@sw.example")
    page.get_by_label("Passwort").fill("wrong password, sorry")
    page.get_by_role("button", name="Anmelden").click()
    assert page.get_by_role("alert").inner_text() == "E-Mail-Adresse oder Passwort ist falsch."
    _accessible(page)
    page.screenshot(path=str(srv.shots / "sign-in.png"), full_page=True)
    errors.clear()  # the refused sign-in's 401, which the browser reports

    _sign_in(page, srv, "finance@sw.example")
    # white-label: the tenant's name and logo
    assert page.locator("header .brand-name").inner_text().strip() == "Stadtwerke Musterstadt"
    assert page.locator("header img.logo").evaluate("img => img.naturalWidth") == 96
    page.get_by_label("Monat").fill("2026-11")
    page.get_by_role("button", name="Anzeigen").click()
    page.wait_for_url("**/console/dashboard?month=2026-11")
    assert page.locator(".tile").count() == 4
    assert page.locator("svg.chart rect.bar").count() == 4 * 30  # revenue, energy, sessions, utilisation
    assert "61 Ladevorgänge" in page.locator(".tile").first.inner_text()
    _accessible(page)
    page.screenshot(path=str(srv.shots / "dashboard.png"), full_page=True)
    # one site's days
    page.get_by_role("link", name="hotel_adler").click()
    page.get_by_role("heading", name="Ladevorgänge pro Tag · hotel_adler").wait_for()
    per_day = page.locator("details tbody tr td:nth-child(2)").all_text_contents()
    assert sum(int(x) for x in per_day) == 6 and len(per_day) == 30
    _accessible(page)

    page.get_by_role("navigation", name="Hauptnavigation").get_by_role("link", name="Finanz-Eingang").click()
    page.wait_for_url("**/console/inbox")
    task = page.locator("article.task").first
    # the hold reason in German, from its kind and parameters (the workflow stores it in English too)
    assert "liegt über der Grenze von 1.000,00\xa0€" in task.inner_text(), task.inner_text()
    assert "is above" not in task.inner_text()
    _accessible(page)
    page.screenshot(path=str(srv.shots / "inbox.png"), full_page=True)
    # finance adjusts the draft in the inbox: a credit of 10.00 net through the cycle workflow's Update
    [open_task] = srv.api("GET", "/billing/tasks").json()["items"]
    task.get_by_text("Rechnung anpassen (manuelle Buchung)").click()
    rate = task.get_by_label("USt.-Satz in %")
    assert rate.input_value() == "19"  # the rate the invoice's lines carry, offered first
    task.get_by_label("Text der Position").fill("Kulanz")
    amount = task.get_by_label("Betrag netto (negativ für eine Gutschrift) (EUR)")
    amount.fill("-10,00")
    _accessible(page)
    page.screenshot(path=str(srv.shots / "inbox-adjust.png"), full_page=True)
    amount.press("Enter")  # by keyboard: Enter sends the form
    page.wait_for_url("**/console/inbox?msg=adjusted")
    assert page.get_by_role("status").inner_text().startswith("Die Rechnung ist angepasst")
    task = page.locator("article.task").first
    text = task.inner_text()
    assert "Kulanz: -10,00\xa0€" in text and "von finance@sw.example" in text, text
    assert "2.274,49\xa0€" in text, text  # the net, 10.00 less
    assert "Sie haben diese Rechnung angepasst" in text
    _accessible(page)
    page.screenshot(path=str(srv.shots / "inbox-adjusted.png"), full_page=True)
    after = srv.api("GET", f"/billing/invoices/{open_task['invoice_id']}").json()
    assert D(after["net_total"]) == D(open_task["net_total"]) - 10, (after["net_total"], open_task["net_total"])
    assert any(ln["description"] == "Kulanz" and D(ln["net"]) == -10 for ln in after["lines"]), after["lines"]
    # four eyes, as in the API: finance adjusted the draft, so finance may not approve it
    task.get_by_role("button", name="Freigeben").click()
    alert = page.locator("article.task [role=alert]")
    alert.wait_for()
    assert alert.inner_text().startswith("Vier-Augen-Prinzip"), alert.inner_text()
    assert page.locator("[aria-labelledby=held] article.task").count() == 1  # still held
    assert urlparse(page.url).path == "/console/inbox"
    _accessible(page)
    page.screenshot(path=str(srv.shots / "inbox-four-eyes.png"), full_page=True)

    # someone else approves it
    other = browser.new_context(viewport={"width": 1280, "height": 900}, locale="de-DE")
    second = other.new_page()
    _sign_in(second, srv, "controller@sw.example")
    second.goto(f"{srv.base}/console/inbox")
    task2 = second.locator("article.task").first
    assert "2.274,49\xa0€" in task2.inner_text()  # the adjusted net (10.00 less)
    task2.get_by_label("Notiz (optional)").fill("geprüft, Großkunde")
    task2.get_by_role("button", name="Freigeben").click()
    second.wait_for_url("**/console/inbox?msg=approved")
    assert second.get_by_role("status").inner_text() == "Die Rechnung ist freigegeben."
    other.close()
    errors.clear()  # the refused approval answered 403, which the browser reports

    def finalized() -> Any:
        cyc = srv.api("GET", f"/billing/cycles/{srv.workflow_id}").json()
        return cyc if cyc.get("state") == "finalized" else None

    cyc = _wait("the approved invoice to be finalized", finalized, 60, Path("/dev/null"))
    number = cyc["invoice"]["number"]
    assert number

    page.get_by_role("link", name="Rechnungen").first.click()
    page.wait_for_url("**/console/invoices")
    _accessible(page)
    page.screenshot(path=str(srv.shots / "invoices.png"), full_page=True)
    page.get_by_role("link", name=number).click()
    page.wait_for_url(f"**/console/invoices/{cyc['invoice']['id']}")

    def has_pdf() -> bool:
        page.reload()
        return page.locator(".pdf iframe").count() == 1

    _wait("the invoice's PDF", has_pdf, 60, Path("/dev/null"))
    pdf = page.locator(".pdf iframe").get_attribute("src")
    r = ctx.request.get(srv.base + pdf)
    assert r.status == 200 and r.body().startswith(b"%PDF")
    page.wait_for_timeout(1500)  # the PDF viewer draws the first page
    _accessible(page)
    page.screenshot(path=str(srv.shots / "invoice.png"), full_page=True)

    page.get_by_role("link", name="Kunden").first.click()
    page.wait_for_url("**/console/customers")
    assert page.locator("tbody tr").count() == 2
    _accessible(page)
    page.screenshot(path=str(srv.shots / "customers.png"), full_page=True)

    # the keyboard reaches the skip link first, and it leads to the page's content
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    # English, from the language switch
    page.get_by_label("Sprache").select_option("en")
    page.get_by_role("button", name="Wechseln").click()
    page.get_by_role("heading", level=1, name="Customers").wait_for()
    assert page.locator("html").get_attribute("lang") == "en" and urlparse(page.url).path == "/console/customers"
    origin = urlparse(srv.base).netloc
    foreign = [u for u in requests if urlparse(u).scheme in ("http", "https") and urlparse(u).netloc != origin]
    assert not foreign, foreign
    assert not errors, "\n".join(errors)
    ctx.close()


def test_match_a_bank_entry(server: Server, browser: Any) -> None:
    srv = server
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    page = ctx.new_page()
    _sign_in(page, srv, "ops@sw.example")
    # an operator matches money but does not decide invoices
    page.get_by_role("navigation").get_by_role("link", name="Finance inbox").click()
    page.wait_for_url("**/console/inbox")
    assert page.get_by_role("button", name="Approve").count() == 0
    entry = page.locator("article.task", has_text="walk")
    entry.get_by_label("Billing account this payment belongs to").select_option(index=1)
    entry.get_by_role("button", name="Match").click()
    page.wait_for_url("**/console/inbox?msg=matched")
    assert page.get_by_role("status").inner_text() == "The bank entry is matched and booked as a payment."
    assert "No bank entry to match." in page.content()
    _accessible(page)
    page.screenshot(path=str(srv.shots / "inbox-matched.png"), full_page=True)
    entries = srv.api("GET", "/bank-entries", params={"limit": 10}).json()["items"]
    [e] = [x for x in entries if x["remittance"] == "walk"]
    assert e["status"] != "unmatched" and e["rule"] == "manual" and e["account_id"], e
    ctx.close()


def test_approve_a_payout_run(server: Server, browser: Any) -> None:
    """A refund's payout run, started by operations through the API, waits in the inbox; the
    approver approves it in the browser and the workflow submits it (the pain.001 is archived)."""
    srv = server
    ops = "ops@sw.example"
    other = srv.api("GET", "/billing-accounts", params={"limit": 10}).json()["items"]
    acc = next(a["id"] for a in other if a["id"] != srv.account_id)  # no invoice: a payment stays a credit
    cred = srv.api("POST", "/collections/creditor-accounts", json={
        "name": "Stadtwerke Musterstadt GmbH", "iban": "DE02120300000000202051",
        "creditor_id": "DE98ZZZ09999999999"})
    assert cred.status_code == 201, cred.text
    r = srv.api("POST", "/receivables/payments", json={
        "account_id": acc, "amount": "12.50", "currency": "EUR", "booked_on": "2026-11-20",
        "idempotency_key": "browser-credit"})
    assert r.status_code == 201, r.text
    r = srv.api("POST", "/payouts/refunds", as_=ops, json={
        "account_id": acc, "amount": "12.50", "iban": "DE89370400440532013000", "payee_name": "Erika Mustermann",
        "idempotency_key": "browser-refund"})
    assert r.status_code == 201, r.text
    r = srv.api("POST", "/payouts/runs", as_=ops, json={"creditor_account_id": cred.json()["id"]})
    assert r.status_code == 202, r.text
    wid = r.json()["workflow_id"]

    def waiting() -> Any:
        runs = srv.api("GET", "/payouts/runs", params={"workflow_id": wid}).json()["items"]
        return runs[0] if runs and runs[0]["status"] == "awaiting_approval" else None

    run = _wait("the payout run to await approval", waiting, 60, Path("/dev/null"))
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="de-DE")
    page = ctx.new_page()
    _sign_in(page, srv, "finance@sw.example")
    page.goto(f"{srv.base}/console/inbox")
    article = page.locator(f"#payout_run-{run['id']}")
    text = article.inner_text()
    assert "Auszahlungslauf (SEPA) · 12,50\xa0€" in text and "Erika Mustermann" in text, text
    _accessible(page)
    page.screenshot(path=str(srv.shots / "inbox-runs.png"), full_page=True)
    # rejecting needs a reason: the browser itself asks for it (required), nothing is sent
    article.get_by_role("button", name="Ablehnen").click()
    assert urlparse(page.url).path == "/console/inbox"
    article.get_by_label("Notiz (optional)").fill("Erstattung geprüft")
    article.get_by_role("button", name="Freigeben").click()
    page.wait_for_url("**/console/inbox?msg=run_approved")
    assert page.get_by_role("status").inner_text() == "Der Lauf ist freigegeben."
    assert page.locator(f"#payout_run-{run['id']}").count() == 0
    done = srv.api("GET", f"/payouts/runs/{run['id']}").json()
    assert done["status"] == "submitted" and done["file_id"], done
    assert done["decided_by"] and done["decision_reason"] == "Erstattung geprüft", done
    ctx.close()


def test_customer_sessions_trace_and_unassigned_pages(server: Server, browser: Any) -> None:
    """An operator opens a customer (contract, token, status), the month's sessions of one site, a
    session with its rated lines and the trace of the rules behind them, and the unassigned session
    to review: once its token is in the data, the keyboard sends its assign form and it is rated."""
    srv = server
    r = srv.api("POST", "/customers", json={"name": "Jonas Beispiel", "email": "jonas@example.org", "country": "DE",
                                            "city": "Musterstadt"})
    assert r.status_code == 201, r.text
    cus = r.json()["id"]
    r = srv.api("POST", "/billing-accounts", json={"customer_id": cus, "name": "Privat"})
    assert r.status_code == 201, r.text
    acc = r.json()["id"]
    r = srv.api("POST", "/contracts", json={"account_id": acc, "customer_id": cus, "product": "flex",
                                            "start_date": "2026-10-01", "payment_method": "bank_transfer"})
    assert r.status_code == 201, r.text
    contract = r.json()["id"]
    r = srv.api("POST", "/tokens", json={"uid": "TOK-BROWSER", "contract_id": contract, "visual_number": "SW-0001"})
    assert r.status_code == 201, r.text
    r = srv.api("POST", "/sessions/batch", json={"sessions": [
        {"id": "S-B1", "start": "2026-11-12T09:00:00Z", "end": "2026-11-12T10:30:00Z", "energy_kwh": "22.4",
         "location_id": "berlin_mitte", "token_uid": "TOK-BROWSER"},
        {"id": "S-B2", "start": "2026-11-13T09:00:00Z", "end": "2026-11-13T10:00:00Z", "energy_kwh": "9",
         "location_id": "berlin_mitte", "token_uid": "TOK-LATE"}]})
    assert r.status_code == 200 and r.json()["created"] == 2, r.text
    ids = {i["external_id"]: i["session_id"] for i in r.json()["items"]}
    rated = srv.api("GET", f"/sessions/{ids['S-B1']}").json()
    assert rated["status"] == "rated" and rated["rating"]["trace"], rated

    page, errors = _operator_page(browser, srv)
    nav = page.get_by_role("navigation", name="Hauptnavigation")
    nav.get_by_role("link", name="Kunden").click()
    page.wait_for_url("**/console/customers")
    page.get_by_role("link", name="Jonas Beispiel").click()
    page.wait_for_url("**/console/customers/*")
    contracts = page.locator("section[aria-labelledby=contracts-title]").inner_text()
    assert "Verträge (1)" in contracts and "Überweisung" in contracts and "01.10.2026" in contracts, contracts
    tokens = page.locator("section[aria-labelledby=tokens-title]").inner_text()
    assert "TOK-BROWSER" in tokens and "SW-0001" in tokens and "aktiv" in tokens, tokens
    _accessible(page)
    page.screenshot(path=str(srv.shots / "customer.png"), full_page=True)

    nav.get_by_role("link", name="Ladevorgänge").click()
    page.wait_for_url("**/console/sessions")
    page.get_by_label("Monat").fill("2026-11")
    page.get_by_label("Standort").select_option("berlin_mitte")
    page.get_by_role("button", name="Anzeigen").click()
    page.wait_for_url("**/console/sessions?month=2026-11&site=berlin_mitte*")
    sites = page.locator("#sessions tbody tr td:nth-child(3)").all_text_contents()
    assert sites and all(x.startswith("berlin_mitte") for x in sites), sites
    _accessible(page)
    page.screenshot(path=str(srv.shots / "sessions.png"), full_page=True)
    page.get_by_role("link", name="S-B1").click()
    page.wait_for_url(f"**/console/sessions/{ids['S-B1']}")
    page.get_by_role("heading", name="Bewertete Positionen").wait_for()
    trace = page.locator("table[aria-labelledby=trace-1] tbody tr")
    assert trace.count() == len(rated["rating"]["trace"])
    assert rated["rating"]["trace"][0]["rule"] in trace.first.inner_text()
    lines = page.locator("table[aria-labelledby=lines-1] tbody tr")
    assert lines.count() == len(rated["rating"]["lines"])
    _accessible(page)
    page.screenshot(path=str(srv.shots / "session.png"), full_page=True)

    nav.get_by_role("link", name="Zu prüfen").click()
    page.wait_for_url("**/console/unassigned")
    row = page.locator(f"#u-{ids['S-B2']}")
    assert "unbekanntes Token" in row.inner_text() and "TOK-LATE" in row.inner_text()
    _accessible(page)
    page.screenshot(path=str(srv.shots / "unassigned.png"), full_page=True)
    # the token arrives in the data without the CRM's own resolution (as an import of master data
    # straight into the database would): the operator assigns the session by hand
    from store.models import Token
    from store.types import new_id

    engine = make_engine(srv.db_url)
    with Session(engine) as db:
        db.add(Token(id=new_id("tok"), tenant_id=srv.tenant_id, uid="TOK-LATE", contract_id=contract,
                     created_at=datetime.now(UTC)))
        db.commit()
    engine.dispose()
    button = row.get_by_role("button", name="Ladevorgang S-B2 erneut zuordnen")
    button.focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/unassigned?msg=one")
    assert page.get_by_role("status").inner_text() == "Der Ladevorgang ist zugeordnet und bewertet."
    assert page.locator(f"#u-{ids['S-B2']}").count() == 0
    done = srv.api("GET", f"/sessions/{ids['S-B2']}").json()
    assert done["status"] == "rated" and done["customer_id"] == cus, done
    assert not errors, "\n".join(errors)
    page.context.close()


def test_load_management_page_of_a_depot(server: Server, browser: Any) -> None:
    """An operator opens load management from the navigation, picks the depot and reads its
    capacity, the running sessions with their priority, the limit each was sent (one charger takes
    only amperes) and the charger's answer, the default profiles and the history (issue 18). The
    gateway's rows are written as it writes them: this server's chargers are not connected."""
    from store.load import ChargingLimit
    from store.ocpp import OcppTransaction
    from store.types import new_id

    srv = server
    r = srv.api("POST", "/locations", json={"code": "depot_nord_load", "name": "Betriebshof Nord", "country": "DE",
                                            "timezone": "Europe/Berlin", "capacity_kw": "30"})
    assert r.status_code == 201, r.text
    loc = r.json()["id"]
    cps = []
    for n in (1, 2):
        r = srv.api("POST", "/charge-points", json={"location_id": loc, "identity": f"BHN-AC-{n}"})
        assert r.status_code == 201, r.text
        cps.append(r.json()["id"])
        r = srv.api("POST", "/evses", json={"location_id": loc, "charge_point_id": cps[-1],
                                            "evse_uid": f"DE*SWM*BHN{n}*1", "max_power_kw": "22"})
        assert r.status_code == 201, r.text
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=40)
    engine = make_engine(srv.db_url)
    with Session(engine) as db:
        txs = []
        for n, cp in enumerate(cps, 1):
            tx = OcppTransaction(tenant_id=srv.tenant_id, charge_point_id=cp, identity=f"BHN-AC-{n}",
                                 ocpp_version="1.6", transaction_ref=str(900 + n), location_id=loc, connector_id=1,
                                 evse_uid=f"DE*SWM*BHN{n}*1", id_tag=f"FLOTTE-{n}", start=start + timedelta(minutes=n),
                                 meter_start_wh=D(0))
            db.add(tx)
            db.flush()
            txs.append(tx.id)
        common = {"tenant_id": srv.tenant_id, "location_id": loc, "capacity_w": D(30000)}
        for n, cp in enumerate(cps, 1):
            amps = n == 1  # the first charger takes only amperes
            db.add(ChargingLimit(id=new_id("lim"), charge_point_id=cp, connector_id=0, profile_id=2_000_000_000,
                                 limit_w=D(15000), reason="charger_booted", purpose="TxDefaultProfile",
                                 status="Accepted", rate_unit="A" if amps else "W", limit_a=D("21.7") if amps else None,
                                 phases=3 if amps else None, voltage_v=230 if amps else None,
                                 sent_at=start - timedelta(hours=2), answered_at=start - timedelta(hours=2), **common))
            db.flush()
        for n, (cp, tx_id) in enumerate(zip(cps, txs), 1):
            amps = n == 1
            db.add(ChargingLimit(id=new_id("lim"), charge_point_id=cp, transaction_id=tx_id, evse_uid=f"DE*SWM*BHN{n}*1",
                                 connector_id=1, profile_id=tx_id, priority=20, limit_w=D(15000),
                                 reason="session_started", status="Accepted" if amps else "Rejected",
                                 rate_unit="A" if amps else "W", limit_a=D("21.7") if amps else None,
                                 phases=3 if amps else None, voltage_v=230 if amps else None,
                                 sent_at=start + timedelta(minutes=2), answered_at=start + timedelta(minutes=2), **common))
            db.flush()
        db.commit()
    engine.dispose()

    page, errors = _operator_page(browser, srv)
    page.get_by_role("navigation", name="Hauptnavigation").get_by_role("link", name="Lastmanagement").click()
    page.wait_for_url("**/console/load")
    assert "30,0 kW" in page.locator(f"#site-{loc}").inner_text()
    _accessible(page)
    page.get_by_role("link", name="Betriebshof Nord").click()
    page.wait_for_url(f"**/console/locations/{loc}/load")
    page.get_by_role("heading", name="Lastmanagement: Betriebshof Nord").wait_for()
    summary = page.locator("#load-summary").inner_text()
    assert "30,0 kW" in summary, summary
    first, second = (page.locator(f"#tx-{tx_id}").inner_text() for tx_id in txs)
    assert "BHN-AC-1" in first and "21,7 A je Phase (3 × 230 V)" in first and "angenommen" in first, first
    assert "Ad-hoc" in first and "15,0 kW" in second and "abgelehnt" in second, second
    assert page.locator("#load-defaults tbody tr").count() == 2
    assert page.locator("#load-history tbody tr").count() == 4
    _accessible(page)
    page.screenshot(path=str(srv.shots / "load.png"), full_page=True)
    assert not errors, "\n".join(errors)
    page.context.close()
