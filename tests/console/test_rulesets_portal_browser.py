"""The ruleset editor and the partner portal in Debian's headless Chromium, against the app served
over real HTTP: an analyst types a mistake and sees the checker's diagnostic marked at its
line:col, simulates a price change against stored sessions, saves the draft; an approver publishes
it (four eyes) and reads the diff; two site hosts each see only their own sessions, statements and
payouts, and download them.

A screenshot of each page is saved (``EVBILL_CONSOLE_SCREENSHOTS``, default the test's tmp dir)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from sqlalchemy.orm import Session

from api.app import Settings, create_app
from store.console import set_password
from store.db import make_engine, migrate
from store.tenants import bootstrap_tenant, create_user, issue_key
from tests.console.browser import chromium, require
from tests.console.server import served
from tests.console.test_console_browser import _accessible

PASSWORD = "a long console password"
RULESET = """ruleset stadtwerke currency EUR timezone Europe/Berlin

tariff standard "Standard" {
  vat 19%
  start_fee 0.35
  energy 0.49 per kWh
}
"""


@dataclass
class Site:
    base: str
    shots: Path
    ruleset_id: str
    engine: Any
    tenant_id: str
    partners: dict[str, str]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    require()
    tmp = tmp_path_factory.mktemp("console-rulesets")
    url = f"sqlite:///{tmp / 'evbill.db'}"
    engine = make_engine(url)
    migrate(engine)
    with Session(engine) as db:
        tenant, cred = bootstrap_tenant(db, "Stadtwerke Musterstadt", legal_name="Stadtwerke Musterstadt GmbH",
                                        branding={"primary_color": "#0b5d3b", "secondary_color": "#e3f1ea"})
        keys = {"admin": cred.key}
        for email, role in (("analyst@sw.example", "analyst"), ("approver@sw.example", "approver")):
            user = create_user(db, tenant.id, email, role)
            db.flush()
            set_password(db, tenant.id, user.id, PASSWORD)
            keys[role] = issue_key(db, tenant.id, user.id, "browser test")[1]
        tenant_id = tenant.id
        db.commit()
    app = create_app(Settings(database_url=url))
    shots = Path(os.environ.get("EVBILL_CONSOLE_SCREENSHOTS") or tmp / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    with served(app) as base:
        def api(method: str, path: str, role: str = "admin", **kw: Any) -> Any:
            r = httpx.request(method, base + path, headers={"Authorization": f"Bearer {keys[role]}"}, timeout=30, **kw)
            assert r.status_code in (200, 201), (path, r.status_code, r.text)
            return r.json()

        rs = api("POST", "/rulesets", json={"name": "stadtwerke", "description": "AC und DC"})["id"]
        draft = api("POST", f"/rulesets/{rs}/drafts", "analyst", json={"source": RULESET})
        api("POST", f"/rulesets/{rs}/versions", "approver",
            json={"draft_id": draft["id"], "effective_from": "2026-01-01T00:00:00Z", "note": "first prices"})
        partners = {}
        sessions = []
        for n, (name, code, city) in enumerate((("Hotel Adler", "hotel_adler", "Adlerstadt"),
                                                ("Autohaus Nord", "autohaus_nord", "Nordhausen")), 1):
            pid = api("POST", "/partners", json={"kind": "site_host", "name": name})["id"]
            partners[code] = pid
            api("POST", "/agreements", json={"partner_id": pid, "kind": "revenue_share", "valid_from": "2026-01-01",
                                             "terms": {"share_percent": "30"}})
            api("POST", "/locations", json={"code": code, "name": f"{name} {city}", "country": "DE",
                                            "timezone": "Europe/Berlin", "site_host_id": pid})
            for i in range(4 * n):
                sessions.append({"id": f"{code.upper()}-{i + 1}", "start": f"2026-11-{3 + i:02d}T{8 + n:02d}:00:00Z",
                                 "end": f"2026-11-{3 + i:02d}T{10 + n}:15:00Z", "energy_kwh": str(10 + 3 * i + n),
                                 "location_id": code, "evse_id": f"DE*SWM*E{n}{i % 2}"})
        assert api("POST", "/sessions/batch", json={"sessions": sessions})["created"] == 12
        for pid in partners.values():
            api("POST", "/partner-statements", json={"partner_id": pid, "month": "2026-11"})
        with Session(engine) as db:
            for code, pid in partners.items():
                user = create_user(db, tenant_id, f"{code}@host.example", "partner", partner_id=pid)
                db.flush()
                set_password(db, tenant_id, user.id, PASSWORD)
            db.commit()
        _payouts(engine, tenant_id, partners)
        yield Site(base, shots, rs, engine, tenant_id, partners)
    engine.dispose()


def _payouts(engine: Any, tenant_id: str, partners: dict[str, str]) -> None:
    """Payables to each host, as issue 15's host credits will leave them (rows only)."""
    from store import payables as P
    from store.types import new_id

    now = datetime(2026, 12, 2, tzinfo=UTC)
    with engine.begin() as conn:
        for (code, pid), (amount, status) in zip(partners.items(), (("41.70", "paid"), ("77.01", "requested"))):
            conn.execute(P.payable.insert().values(
                id=new_id("pay"), tenant_id=tenant_id, key=f"host-{code}", kind="refund", payee_kind="partner",
                payee_id=pid, account_id=None, payee_name=code, iban="DE02120300000000202051", bic="",
                amount=Decimal(amount), currency="EUR", remittance=f"Gutschrift November {code}",
                source_kind="partner_statement", source_id="", receivable_key="", status=status, end_to_end_id="",
                paid_on=now.date() if status == "paid" else None, return_reason="", requested_by="seed",
                created_at=now, updated_at=now))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def _person(browser: Any, site: Site, email: str) -> tuple[Any, Any, list[str]]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="de-DE", accept_downloads=True)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(f"{m.text} {m.location}") if m.type == "error" else None)
    page.goto(f"{site.base}/console/sign-in")
    page.get_by_label("E-Mail-Adresse").fill(email)
    page.get_by_label("Passwort").fill(PASSWORD)
    page.get_by_role("button", name="Anmelden").click()
    page.wait_for_url(lambda u: urlparse(u).path not in ("/console/sign-in", "/console"))
    return ctx, page, errors


def _shot(page: Any, site: Site, name: str) -> None:
    page.screenshot(path=str(site.shots / f"{name}.png"), full_page=True)


def test_type_a_mistake_see_its_marker_simulate_and_publish(site: Site, browser: Any) -> None:
    ctx, page, errors = _person(browser, site, "analyst@sw.example")
    nav = page.get_by_role("navigation", name="Hauptnavigation")
    nav.get_by_role("link", name="Regelwerke").click()
    page.wait_for_url("**/console/rulesets")
    _accessible(page)
    _shot(page, site, "rulesets")
    page.get_by_role("link", name="stadtwerke").click()
    page.wait_for_url(f"**/console/rulesets/{site.ruleset_id}")
    summary = page.locator("#diag-summary")
    assert summary.inner_text() == "Keine Fehler, keine Warnungen."
    source = page.get_by_label("Regelwerk-Text (DSL)")
    assert "energy 0.49 per kWh" in source.input_value()

    # type a mistake: the cursor after "kWh" on line 6, then one more "h"
    source.click()
    at = source.evaluate("t => { const i = t.value.indexOf('per kWh') + 7; t.setSelectionRange(i, i); return i; }")
    page.keyboard.type("h")
    err = page.locator("#diag-list li.diag-error")
    err.wait_for()
    assert summary.inner_text() == "Fehler: 1, Warnungen: 0"
    text = err.inner_text()
    assert text.startswith("6:19 Fehler[E101]: unexpected 'kWhh', expected a unit"), text
    assert "Hinweis: did you mean 'kWh'?" in text and "editor.evb:6:19" in text and "^^^^" in text
    # marked in the text and in the gutter
    assert page.locator(".code .marks mark.m-error").inner_text() == "kWhh"
    assert page.locator(".code .gutter .g-error").all_inner_texts() == ["6"]
    _accessible(page)
    _shot(page, site, "ruleset-editor-error")
    # the line:col link puts the cursor on the mistake
    err.get_by_role("link").click()
    assert page.evaluate("document.activeElement.id") == "source"
    assert source.evaluate("t => [t.selectionStart, t.selectionEnd]") == [at - 3, at + 1]
    page.keyboard.type("kWh")  # replaces the selected "kWhh"
    page.locator("#diag-list li").first.wait_for(state="detached")
    assert summary.inner_text() == "Keine Fehler, keine Warnungen."
    assert page.locator(".code .marks mark").count() == 0

    # a price change, simulated against the first five sessions (pre-selected) beside version 1
    source.evaluate("t => { t.value = t.value.replace('energy 0.49 per kWh', 'energy 0.52 per kWh');"
                    " t.dispatchEvent(new Event('input')); }")
    page.get_by_role("button", name="Simulieren").click()
    try:
        page.locator("#simulation").wait_for()
    except Exception as exc:
        raise AssertionError(f"{page.url}: {page.content()[:3000]}") from exc
    sim = page.locator("#simulation")
    assert "5 von 5 Ladevorgängen ändern sich." in sim.inner_text()
    assert sim.locator("tfoot td").nth(2).inner_text().startswith("+")
    _accessible(page)
    _shot(page, site, "ruleset-simulation")
    page.get_by_role("button", name="Als Entwurf speichern").click()
    page.get_by_text("Entwurf gespeichert.").wait_for()
    # the analyst wrote it: no publish form for the author (and no publish role)
    assert page.locator("form[action$='/publish']").count() == 0
    assert not errors, errors
    ctx.close()

    # the approver publishes it (four eyes) and compares the versions
    ctx, page, errors = _person(browser, site, "approver@sw.example")
    page.goto(f"{site.base}/console/rulesets/{site.ruleset_id}")
    draft = page.locator("article.task").first
    draft.get_by_label("Gültig ab (Europe/Berlin)").fill("2027-01-01T00:00")
    draft.get_by_label("Notiz").fill("Energie 0,52")
    draft.get_by_role("button", name="Veröffentlichen").click()
    page.get_by_text("Version veröffentlicht.").wait_for()
    assert page.locator("#versions-title + table tbody tr").count() == 2
    _accessible(page)
    _shot(page, site, "ruleset-versions")
    page.get_by_role("button", name="Vergleichen").click()
    page.wait_for_url("**/diff?a=1&b=2")
    assert page.locator(".d-del").all_inner_texts() == ["-  energy 0.49 per kWh"]
    assert page.locator(".d-add").all_inner_texts() == ["+  energy 0.52 per kWh"]
    _accessible(page)
    _shot(page, site, "ruleset-diff")
    assert not errors, errors
    ctx.close()


def test_a_host_sees_only_its_own_sessions_statements_and_payouts(site: Site, browser: Any) -> None:
    ctx, page, errors = _person(browser, site, "hotel_adler@host.example")
    assert urlparse(page.url).path == "/console/portal"
    assert page.get_by_role("heading", level=1).inner_text() == "Partnerportal · Hotel Adler"
    assert "4" in page.locator(".tile").first.inner_text()
    _accessible(page)
    _shot(page, site, "portal")
    nav = page.get_by_role("navigation", name="Hauptnavigation")
    assert nav.get_by_role("link").all_inner_texts() == ["Partnerportal", "Ladevorgänge", "Abrechnungen (Gutschriften)",
                                                          "Auszahlungen", "API-Referenz"]
    nav.get_by_role("link", name="Ladevorgänge").click()
    page.wait_for_url("**/console/portal/sessions")
    ids = page.locator("#portal-sessions tbody tr td:first-child").all_inner_texts()
    assert ids == ["HOTEL_ADLER-1", "HOTEL_ADLER-2", "HOTEL_ADLER-3", "HOTEL_ADLER-4"]
    _accessible(page)
    _shot(page, site, "portal-sessions")
    with page.expect_download() as dl:
        page.get_by_role("link", name="Als CSV herunterladen").click()
    lines = Path(dl.value.path()).read_text().splitlines()
    assert len(lines) == 5 and all(x.startswith("HOTEL_ADLER-") for x in lines[1:])

    nav.get_by_role("link", name="Abrechnungen (Gutschriften)").click()
    page.wait_for_url("**/console/portal/statements")
    rows = page.locator("#portal-statements tbody tr")
    assert rows.count() == 1 and "01.11.2026 – 30.11.2026" in rows.inner_text()
    _accessible(page)
    _shot(page, site, "portal-statements")
    rows.get_by_role("link").first.click()
    page.wait_for_url("**/console/portal/statements/*")
    _accessible(page)
    _shot(page, site, "portal-statement")
    with page.expect_download() as dl:
        page.get_by_role("link", name="Als CSV herunterladen").click()
    assert Path(dl.value.path()).read_text().startswith("number,partner_id,")
    nav.get_by_role("link", name="Auszahlungen").click()
    page.wait_for_url("**/console/portal/payouts")
    body = page.locator("#portal-payouts").inner_text()
    assert "Gutschrift November hotel_adler" in body and "41,70\xa0€" in body and "autohaus" not in body
    _accessible(page)
    _shot(page, site, "portal-payouts")
    # the other host's statement is not found, nor the back office's pages
    other = page.context.request.get(f"{site.base}/console/portal/sessions.csv?month=2026-11")
    assert "AUTOHAUS" not in other.text()
    assert page.context.request.get(f"{site.base}/console/rulesets").status == 403
    assert not errors, errors
    ctx.close()

    ctx, page, errors = _person(browser, site, "autohaus_nord@host.example")
    page.goto(f"{site.base}/console/portal/sessions")
    ids = page.locator("#portal-sessions tbody tr td:first-child").all_inner_texts()
    assert len(ids) == 8 and all(x.startswith("AUTOHAUS_NORD-") for x in ids)
    page.goto(f"{site.base}/console/portal/payouts")
    assert "77,01\xa0€" in page.locator("#portal-payouts").inner_text()
    assert "41,70" not in page.content()
    # in English
    page.get_by_label("Sprache").select_option("en")
    page.get_by_role("button", name="Wechseln").click()
    page.get_by_role("heading", name="Payouts").wait_for()
    assert "requested" in page.locator("#portal-payouts").inner_text()
    _accessible(page)
    _shot(page, site, "portal-payouts-en")
    ctx.close()
