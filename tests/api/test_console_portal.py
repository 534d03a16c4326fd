"""The partner portal over HTTP: a partner user sees its own sites' sessions, statements and
payouts and downloads them, never another partner's (of its tenant) nor another tenant's; the
back office gets no portal pages (the role walk in test_console.py covers every route)."""

from __future__ import annotations

import csv
import html
import io
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.orm import Session

from store.console import set_password
from store.tenants import create_user
from tests.api.conftest import Env, Tenantry
from tests.api.test_console import PASSWORD, Person, _email, console  # noqa: F401  (the module's fixture)


def _payable(env: Env, t: Tenantry, partner_id: str, amount: str, status: str, remittance: str) -> str:
    """A payable to a partner, as issue 15's host credits will leave them (rows only)."""
    from store import payables as P
    from store.types import new_id

    pid, now = new_id("pay"), datetime(2026, 4, 3, tzinfo=UTC)
    with env.engine.begin() as conn:
        conn.execute(P.payable.insert().values(
            id=pid, tenant_id=t.tenant_id, key=f"portal-{pid}", kind="refund", payee_kind="partner",
            payee_id=partner_id, account_id=None, payee_name="Hotel", iban="DE02120300000000202051", bic="",
            amount=Decimal(amount), currency="EUR", remittance=remittance, source_kind="partner_statement",
            source_id=t.ids["partner_statement_id"], receivable_key="", status=status, end_to_end_id="",
            paid_on=None, return_reason="", requested_by=t.users["operator"], created_at=now, updated_at=now))
    return pid


@pytest.fixture(scope="module")
def portal(console: Env) -> dict[str, Any]:  # noqa: F811
    """Tenant A gets a second site host with its own site, session, user and payable."""
    a, c = console.a, console.client
    second = c.post("/partners", json={"kind": "site_host", "name": "Gasthof Zwei"}, headers=a.h()).json()["id"]
    r = c.post("/locations", json={"code": "hamburg_1", "name": "Hamburg Hafen", "country": "DE",
                                   "timezone": "Europe/Berlin", "site_host_id": second}, headers=a.h())
    assert r.status_code == 201, r.text
    r = c.post("/sessions/batch", json={"sessions": [
        {"id": "S-HH-1", "start": "2026-03-05T10:00:00Z", "end": "2026-03-05T11:00:00Z", "energy_kwh": "7.5",
         "location_id": "hamburg_1"}]}, headers=a.h())
    assert r.json()["created"] == 1, r.text
    with Session(console.engine) as db:
        user = create_user(db, a.tenant_id, "host2@alpha.test", "partner", partner_id=second)
        db.flush()
        set_password(db, a.tenant_id, user.id, PASSWORD)
        db.commit()
    return {"second": second,
            "mine": _payable(console, a, a.ids["partner_id"], "12.34", "paid", "Gutschrift PS-1 Hotel alpha"),
            "theirs": _payable(console, a, second, "98.76", "requested", "Gutschrift Gasthof Zwei"),
            "other_tenant": _payable(console, console.b, console.b.ids["partner_id"], "55.55", "requested",
                                     "Gutschrift Hotel beta")}


def test_a_partner_sees_its_own_sites_sessions(console: Env, portal: dict[str, Any]) -> None:  # noqa: F811
    host = Person(console, _email(console.a, "partner"))
    page = html.unescape(host.get("/console/portal/sessions", params={"month": "2026-03"}).text)
    assert "S-1" in page and "Berlin Mitte" in page and "10,0 kWh" in page
    # not the session at another host's site, nor one at a site without a host, nor another tenant's
    assert "S-HH-1" not in page and "S-2" not in page and "Hamburg" not in page
    # nor who charged
    assert "TOK-alpha" not in page and "Erika" not in page
    rows = list(csv.reader(io.StringIO(host.get("/console/portal/sessions.csv", params={"month": "2026-03"}).text)))
    assert rows[0][:3] == ["session", "start", "end"] and [r[0] for r in rows[1:]] == ["S-1"]
    two = Person(console, "host2@alpha.test")
    page = html.unescape(two.get("/console/portal/sessions", params={"month": "2026-03"}).text)
    assert "S-HH-1" in page and "Hamburg Hafen" in page and "S-1<" not in page
    rows = list(csv.reader(io.StringIO(two.get("/console/portal/sessions.csv", params={"month": "2026-03"}).text)))
    assert [r[0] for r in rows[1:]] == ["S-HH-1"]
    overview = html.unescape(two.get("/console/portal", params={"month": "2026-03"}).text)
    assert "Partnerportal · Gasthof Zwei" in overview and "Hotel alpha" not in overview
    # odd months are answered, never with a 5xx
    for month in ("9999-99", "x", ""):
        assert two.get("/console/portal/sessions", params={"month": month}).status_code == 200


def test_a_partner_sees_and_downloads_only_its_own_statements(console: Env, portal: dict[str, Any]) -> None:  # noqa: F811
    a, b = console.a, console.b
    sid = a.ids["partner_statement_id"]
    host = Person(console, _email(a, "partner"))
    page = html.unescape(host.get("/console/portal/statements").text)
    assert f'href="/console/portal/statements/{sid}"' in page and "01.02.2026 – 28.02.2026" in page
    assert host.get(f"/console/portal/statements/{sid}").status_code == 200
    r = host.get(f"/console/portal/statements/{sid}/csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.text.splitlines()[0].startswith("number,partner_id,local_start")
    assert 'attachment; filename="PS-' in r.headers["content-disposition"]
    # the other host of the same tenant: not its statement
    two = Person(console, "host2@alpha.test")
    assert sid not in two.get("/console/portal/statements").text
    assert two.get(f"/console/portal/statements/{sid}").status_code == 404
    assert two.get(f"/console/portal/statements/{sid}/csv").status_code == 404
    # another tenant's statement
    assert host.get(f"/console/portal/statements/{b.ids['partner_statement_id']}").status_code == 404
    assert host.get(f"/console/portal/statements/{b.ids['partner_statement_id']}/csv").status_code == 404


def test_a_partner_sees_only_its_own_payouts(console: Env, portal: dict[str, Any]) -> None:  # noqa: F811
    host = Person(console, _email(console.a, "partner"))
    page = html.unescape(host.get("/console/portal/payouts").text)
    assert "Gutschrift PS-1 Hotel alpha" in page and "12,34\xa0€" in page and "bezahlt" in page
    assert "Gasthof Zwei" not in page and "Hotel beta" not in page
    rows = list(csv.reader(io.StringIO(host.get("/console/portal/payouts.csv").text)))
    assert [r[0] for r in rows[1:]] == [portal["mine"]] and rows[1][2] == "12.34"
    two = Person(console, "host2@alpha.test")
    page = html.unescape(two.get("/console/portal/payouts").text)
    assert "98,76\xa0€" in page and "vorgemerkt" in page and "12,34" not in page
    rows = list(csv.reader(io.StringIO(two.get("/console/portal/payouts.csv").text)))
    assert [r[0] for r in rows[1:]] == [portal["theirs"]]


def test_the_portal_speaks_english_too(console: Env) -> None:  # noqa: F811
    host = Person(console, _email(console.a, "partner"))
    host.post("/console/language", {"language": "en", "next": "/console/portal"})
    page = html.unescape(host.get("/console/portal/statements").text)
    assert "Statements (credit notes)" in page and "Partner portal" in page and "Abrechnungen" not in page
    assert "1 Feb 2026 – 28 Feb 2026" in page, page[page.find("<main"):][:1500]


def test_the_back_office_has_no_portal_and_the_partner_no_back_office(console: Env) -> None:  # noqa: F811
    a = console.a
    admin = Person(console, _email(a, "admin"))
    assert admin.get("/console/portal").status_code == 403
    host = Person(console, _email(a, "partner"))
    for path in ("/console/dashboard", "/console/customers", "/console/invoices", "/console/rulesets",
                 f"/console/invoices/{a.ids['invoice_id']}"):
        assert host.get(path).status_code == 403, path
