"""Cost centres on partner statements (issue 18): a host's statement over two cost centres (one
from the token, one from the contract) and two sites reports sessions, kWh, net, VAT and gross per
cost centre and per site; each table adds up to the statement's revenue totals exactly (Decimal),
as issued, in the PDF (German: "Kostenstelle", "Standort") and in the partner portal."""

from __future__ import annotations

import html
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Env, _ok
from tests.api.test_console import Person, _email, console  # noqa: F401  (the module's fixture)

OUT = Path("/tmp/h18c")  # where a person looks at the PDF and the page (common.md); harmless elsewhere


@pytest.fixture(scope="module")
def april(console: Env) -> dict[str, Any]:  # noqa: F811
    """Hotel alpha hosts a second site; two tokens of the demo contract, one with a cost centre of
    its own; four sessions in April 2026 at the two sites; the statement of April issued."""
    a, c, h = console.a, console.client, console.a.h()
    _ok(c.post("/locations", json={"code": "berlin_2", "name": "Berlin Ost", "country": "DE",
                                   "timezone": "Europe/Berlin", "site_host_id": a.ids["partner_id"]}, headers=h))
    _ok(c.patch(f"/contracts/{a.ids['contract_id']}", json={"cost_centre": "KST-200 Fuhrpark"}, headers=h))
    _ok(c.post("/tokens", json={"uid": "TOK-KA", "contract_id": a.ids["contract_id"], "cost_centre": "KST-100"},
               headers=h))
    _ok(c.post("/tokens", json={"uid": "TOK-KB", "contract_id": a.ids["contract_id"]}, headers=h))
    sessions = [("CC-1", "berlin_1", "TOK-KA", "12.345"), ("CC-2", "berlin_2", "TOK-KA", "7.5"),
                ("CC-3", "berlin_1", "TOK-KB", "3.333"), ("CC-4", "berlin_2", "TOK-KB", "20.01"),
                ("CC-5", "berlin_2", "TOK-KB", "0.777")]
    res = _ok(c.post("/sessions/batch", json={"sessions": [
        {"id": sid, "start": f"2026-04-0{n + 1}T10:00:00Z", "end": f"2026-04-0{n + 1}T11:07:00Z", "energy_kwh": kwh,
         "location_id": loc, "token_uid": tok} for n, (sid, loc, tok, kwh) in enumerate(sessions)]}, headers=h))
    assert res["created"] == 5 and {i["rating_status"] for i in res["items"]} == {"rated"}, res
    preview = _ok(c.post("/partner-statements/preview", json={"partner_id": a.ids["partner_id"], "month": "2026-04"},
                         headers=h))
    issued = _ok(c.post("/partner-statements", json={"partner_id": a.ids["partner_id"], "month": "2026-04"},
                        headers=h), 201)
    return {"preview": preview, "issued": issued, "sessions": res["items"]}


def _sum(rows: list[dict[str, Any]], key: str) -> Decimal:
    return sum((Decimal(r[key]) for r in rows), Decimal(0))


def test_statement_reports_each_cost_centre_and_site_and_they_add_up(console: Env, april: dict[str, Any]) -> None:  # noqa: F811
    a, c = console.a, console.client
    st = _ok(c.get(f"/partner-statements/{april['issued']['id']}", headers=a.h()))
    for got in (april["preview"], april["issued"], st):
        assert [(r["key"], r["sessions"], r["energy_kwh"]) for r in got["cost_centres"]] == [
            ("KST-100", 2, "19.845"), ("KST-200 Fuhrpark", 3, "24.120")]
        assert [(r["key"], r["label"], r["sessions"]) for r in got["sites"]] == [
            ("berlin_1", "Berlin Mitte", 2), ("berlin_2", "Berlin Ost", 3)]
        total = got["totals"][0]
        for table in (got["cost_centres"], got["sites"]):
            for key in ("net", "tax", "gross"):
                assert _sum(table, key) == Decimal(total[key]), (key, table, total)
            assert _sum(table, "energy_kwh") == Decimal(total["energy_kwh"]) == Decimal("43.965")
            assert sum(r["sessions"] for r in table) == total["sessions"] == 5
            for r in table:
                assert Decimal(r["net"]) + Decimal(r["tax"]) == Decimal(r["gross"])
    assert april["issued"]["cost_centres"] == st["cost_centres"] and april["issued"]["sites"] == st["sites"]
    # each cost centre's net is its sessions' revenue (rounded per session there, apportioned here)
    by_session = {s["session_id"]: s for s in april["sessions"]}
    nets = {}
    for sid in by_session:
        ses = _ok(c.get(f"/sessions/{sid}", headers=a.h()))
        nets.setdefault(ses["cost_centre"], []).append(Decimal(ses["net_total"]))
    for r in st["cost_centres"]:
        assert abs(Decimal(r["net"]) - sum(nets[r["key"]])) <= Decimal("0.02"), (r, nets)
    listed = _ok(c.get("/partner-statements", params={"partner_id": a.ids["partner_id"]}, headers=a.h()))["items"]
    assert [x["cost_centres"] for x in listed if x["id"] == st["id"]] == [st["cost_centres"]]


def test_statement_pdf_in_german(console: Env, april: dict[str, Any]) -> None:  # noqa: F811
    a, c = console.a, console.client
    r = c.get(f"/partner-statements/{april['issued']['id']}/pdf", headers=a.h())
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf" and r.content[:5] == b"%PDF-"
    OUT.mkdir(parents=True, exist_ok=True)
    pdf = OUT / "partner-statement.pdf"
    pdf.write_bytes(r.content)
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    for word in ("Partnerabrechnung", "Kostenstelle", "Standort", "Energie und Umsatz je Kostenstelle",
                 "Energie und Umsatz je Standort", "KST-100", "KST-200 Fuhrpark", "Berlin Ost (berlin_2)",
                 "Ladeumsatz", "Summe"):
        assert word in text, word
    for english in ("Cost centre", "Site", "revenue", "Total", "sessions"):
        assert english not in text, english
    total = april["issued"]["totals"][0]
    gross = format(Decimal(total["gross"]), ",.2f").replace(",", "X").replace(".", ",").replace("X", ".")
    assert text.count(f"{gross} €") >= 3  # the revenue's gross in the lines' sum and both tables' totals
    # a partner reads its own statement's PDF; another tenant's key does not
    assert c.get(f"/partner-statements/{april['issued']['id']}/pdf", headers=a.h("partner")).status_code == 200
    assert c.get(f"/partner-statements/{april['issued']['id']}/pdf", headers=console.b.h()).status_code == 404


def test_portal_shows_cost_centres_and_sites(console: Env, april: dict[str, Any]) -> None:  # noqa: F811
    host = Person(console, _email(console.a, "partner"))
    r = host.get(f"/console/portal/statements/{april['issued']['id']}")
    assert r.status_code == 200
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "portal-statement.html").write_text(r.text)
    page = html.unescape(r.text)
    for word in ("Energie und Umsatz je Kostenstelle", "Energie und Umsatz je Standort", "Kostenstelle", "Standort",
                 "KST-100", "KST-200 Fuhrpark", "Berlin Ost (berlin_2)", "Summe", "PDF herunterladen",
                 "Ladeumsatz, USt 19 %"):
        assert word in page, word
    pdf = host.get(f"/console/portal/statements/{april['issued']['id']}/pdf")
    assert pdf.status_code == 200 and pdf.content[:5] == b"%PDF-"
    # another tenant's statement is not there for this partner
    assert host.get(f"/console/portal/statements/{console.b.ids['partner_statement_id']}/pdf").status_code == 404
