"""Partner statements through the API: a month of a site host's sessions (two VAT rates, a session
that is March only in Berlin time, one that is April there, one that failed rating), the share its
ruleset's revenue_share block grants, issuing, numbering, CSV, and what a partner key may see.

Figures by hand (ruleset below; rated lines keep full precision):
  H-0 2026-02-28 23:30Z = 03-01 00:30 CET, std, 2 kWh:    0.35 + 2 × 0.4567   = 1.2634   (19 %)
  H-1 03-01, std, 10 kWh:                                  0.35 + 10 × 0.4567  = 4.917    (19 %)
  H-2 03-15, std, 7.5 kWh:                                 0.35 + 7.5 × 0.4567 = 3.77525  (19 %)
  H-3 03-20, reduced, 12 kWh:                              12 × 0.333          = 3.996    (7 %)
  H-4 03-31 22:30Z = 04-01 00:30 CEST: April, not in March
  H-5 03-21, unknown tariff: not rated, counted apart
  19 %: net 9.95565 -> 9.96, VAT 1.8915735 -> 1.89, gross 11.85, 3 sessions, 19.5 kWh
   7 %: net 3.996 -> 4.00,   VAT 0.27972 -> 0.28,   gross 4.28,  1 session,  12 kWh
  share 12.5 % of 13.95165 = 1.74395625 -> 1.74 (not 12.5 % of the rounded 13.96 = 1.745 -> 1.75)
  0.015 × 31.5 kWh = 0.4725 -> 0.47; monthly fee 50.00; payable 52.21
"""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.tenants import create_user, issue_key
from tests.api.conftest import Env, requires_dsl
from tests.store.append_only import triggers_dropped

pytestmark = requires_dsl

RULESET = """ruleset hostshare currency EUR timezone Europe/Berlin
tariff std "Standard" {
  vat 19%
  start_fee 0.35
  energy 0.4567 per kWh
}
tariff reduced "Reduced" {
  vat 7%
  energy 0.333 per kWh
}
revenue_share hotel {
  sites hotel_berlin
  host gets 12.5% of net revenue
  host gets 0.015 per kWh
  host gets 50.00 per month
}
"""


def _ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, (r.status_code, r.text)
    return r.json()


@pytest.fixture(scope="module")
def host(env: Env) -> dict[str, str]:
    """A site host with a location rated by the ruleset above, its sessions and a partner key."""
    c, a = env.client, env.a
    h = a.h()
    rs = _ok(c.post("/rulesets", json={"name": "hostshare"}, headers=h), 201)
    draft = _ok(c.post(f"/rulesets/{rs['id']}/drafts", json={"source": RULESET}, headers=a.h("analyst")), 201)
    assert draft["ok"], draft
    _ok(c.post(f"/rulesets/{rs['id']}/versions", json={"draft_id": draft["id"],
                                                     "effective_from": "2026-01-01T00:00:00Z"},
               headers=a.h("approver")), 201)
    pid = _ok(c.post("/partners", json={"kind": "site_host", "name": "Hotel Adler"}, headers=h), 201)["id"]
    _ok(c.post("/locations", json={"code": "hotel_berlin", "name": "Hotel Adler", "country": "DE",
                                   "timezone": "Europe/Berlin", "site_host_id": pid, "ruleset_id": rs["id"]},
               headers=h), 201)
    ag = _ok(c.post("/agreements", json={"partner_id": pid, "kind": "revenue_share", "valid_from": "2026-01-01",
                                         "ruleset_name": "hostshare", "rule_name": "hotel"}, headers=h), 201)

    def s(ext: str, start: str, end: str, kwh: str, tariff: str = "std") -> dict[str, Any]:
        return {"id": ext, "start": start, "end": end, "energy_kwh": kwh, "location_id": "hotel_berlin",
                "tariff": tariff}

    res = _ok(c.post("/sessions/batch", json={"sessions": [
        s("H-0", "2026-02-28T23:30:00Z", "2026-03-01T00:30:00Z", "2"),
        s("H-1", "2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z", "10"),
        s("H-2", "2026-03-15T08:00:00Z", "2026-03-15T09:00:00Z", "7.5"),
        s("H-3", "2026-03-20T08:00:00Z", "2026-03-20T09:00:00Z", "12", "reduced"),
        s("H-4", "2026-03-31T22:30:00Z", "2026-03-31T23:30:00Z", "5"),
        s("H-5", "2026-03-21T08:00:00Z", "2026-03-21T09:00:00Z", "3", "nope"),
    ]}, headers=h))
    assert res["created"] == 6, res
    with Session(env.engine) as db:
        user = create_user(db, a.tenant_id, "host@adler.test", "partner", partner_id=pid)
        db.flush()
        _, key = issue_key(db, a.tenant_id, user.id, "host")
        db.commit()
    return {"partner_id": pid, "agreement_id": ag["id"], "key": key}


def _line(stmt: dict[str, Any], kind: str, rate: str | None = None) -> dict[str, Any]:
    found = [ln for ln in stmt["lines"] if ln["kind"] == kind and (rate is None or ln["tax_rate"] == rate)]
    assert len(found) == 1, stmt["lines"]
    return found[0]


def test_preview_of_a_month_matches_the_hand_computed_figures(env: Env, host: dict[str, str]) -> None:
    st = _ok(env.client.post("/partner-statements/preview", json={"partner_id": host["partner_id"],
                                                                  "month": "2026-03"}, headers=env.a.h()))
    assert st["id"] is None and st["number"] is None
    assert (st["local_start"], st["local_end"], st["timezone"]) == ("2026-03-01", "2026-04-01", "Europe/Berlin")
    assert st["period_start"].startswith("2026-02-28T23:00:00") and st["period_end"].startswith("2026-03-31T22:00:00")
    assert (st["sessions"], st["covered_sessions"], st["unrated_sessions"]) == (4, 4, 1)
    assert st["agreement_id"] == host["agreement_id"] and st["ruleset_version_id"]
    assert st["share_source"] == "ruleset hostshare v1, revenue_share hotel"
    r19, r7 = _line(st, "revenue", "19"), _line(st, "revenue", "7")
    assert (r19["sessions"], r19["energy_kwh"], r19["net"], r19["tax"], r19["gross"]) == (3, "19.5", "9.96", "1.89", "11.85")
    assert r19["net_unrounded"] == "9.95565"
    assert (r7["sessions"], r7["energy_kwh"], r7["net"], r7["tax"], r7["gross"]) == (1, "12", "4.00", "0.28", "4.28")
    pct = _line(st, "share_percent")
    assert (pct["quantity"], pct["unit_price"], pct["net"]) == ("13.95165", "0.125", "1.74")
    kwh = _line(st, "share_per_kwh")
    assert (kwh["quantity"], kwh["unit_price"], kwh["net"]) == ("31.5", "0.015", "0.47")
    assert _line(st, "share_monthly_fee")["net"] == "50.00"
    assert [ln["seq"] for ln in st["lines"]] == list(range(1, 6))
    assert st["totals"] == [{"currency": "EUR", "sessions": 4, "energy_kwh": "31.5", "net": "13.96", "tax": "2.17",
                             "gross": "16.13", "payable": "52.21"}]
    assert any("not rated" in n for n in st["notes"])


def test_explicit_period_in_the_tenants_zone(env: Env, host: dict[str, str]) -> None:
    # 2026-03-15 .. 2026-04-02 (exclusive): H-2, H-3 and H-4 (April 1st in Berlin); fee pro rata:
    # 50.00 × 17/31 = 27.419... -> 27.42 and 50.00 × 1/30 = 1.666... -> 1.67
    st = _ok(env.client.post("/partner-statements/preview", json={
        "partner_id": host["partner_id"], "start": "2026-03-15", "end": "2026-04-02"}, headers=env.a.h()))
    assert st["sessions"] == 3
    assert _line(st, "revenue", "19")["energy_kwh"] == "12.5"
    fees = [ln for ln in st["lines"] if ln["kind"] == "share_monthly_fee"]
    assert [(f["description"], f["net"]) for f in fees] == [
        ("monthly fee 2026-03 (17 of 31 days)", "27.42"), ("monthly fee 2026-04 (1 of 30 days)", "1.67")]


@pytest.mark.parametrize("body, code", [
    ({"month": "2026-13"}, "validation_failed"),
    ({}, "invalid_period"),
    ({"start": "2026-03-01"}, "invalid_period"),
    ({"start": "2026-03-05", "end": "2026-03-05"}, "invalid_period"),
    ({"month": "2026-03", "start": "2026-03-01", "end": "2026-04-01"}, "invalid_period"),
    ({"start": "2026-01-01", "end": "2027-06-01"}, "invalid_period"),
    ({"start": "0001-01-01", "end": "0001-02-01"}, "invalid_period"),
    ({"month": "2026-03", "agreement_id": "agr_nobody"}, "agreement_not_found"),
])
def test_bad_requests_are_4xx_problems(env: Env, host: dict[str, str], body: dict[str, Any], code: str) -> None:
    r = env.client.post("/partner-statements/preview", json={"partner_id": host["partner_id"], **body},
                        headers=env.a.h())
    assert 400 <= r.status_code < 500 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code, r.text


def test_issue_numbers_stores_audits_and_refuses_overlaps(env: Env, host: dict[str, str]) -> None:
    c, a = env.client, env.a
    body = {"partner_id": host["partner_id"], "month": "2026-03"}
    preview = _ok(c.post("/partner-statements/preview", json=body, headers=a.h()))
    # H-5 failed rating: leaving it out for good must be said explicitly
    r = c.post("/partner-statements", json=body, headers=a.h("operator"))
    assert r.status_code == 409 and r.json()["code"] == "statement_has_unrated_sessions"
    body["accept_unrated"] = True
    issued = _ok(c.post("/partner-statements", json=body, headers=a.h("operator")), 201)
    assert issued["unrated_sessions"] == 1
    assert issued["number"].startswith("PS-") and issued["issued_by"] == a.users["operator"]
    assert issued["lines"] == preview["lines"] and issued["totals"] == preview["totals"]
    got = _ok(c.get(f"/partner-statements/{issued['id']}", headers=a.h("auditor")))
    assert got == issued
    # a period that overlaps the issued one is refused; the next month is not
    r = c.post("/partner-statements", json={"partner_id": host["partner_id"], "start": "2026-03-31",
                                            "end": "2026-04-05"}, headers=a.h())
    assert r.status_code == 409 and r.json()["code"] == "statement_period_overlaps"
    april = _ok(c.post("/partner-statements", json={"partner_id": host["partner_id"], "month": "2026-04"},
                       headers=a.h()), 201)
    assert int(april["number"][3:]) == int(issued["number"][3:]) + 1
    assert april["sessions"] == 1 and _line(april, "revenue", "19")["net"] == "2.63"  # 0.35 + 5 × 0.4567
    listed = _ok(c.get("/partner-statements", params={"partner_id": host["partner_id"], "limit": 1},
                       headers=a.h()))
    assert [s["id"] for s in listed["items"]] == [issued["id"]] and listed["next_cursor"]
    page2 = _ok(c.get("/partner-statements", params={"partner_id": host["partner_id"], "limit": 1,
                                                      "cursor": listed["next_cursor"]}, headers=a.h()))
    assert [s["id"] for s in page2["items"]] == [april["id"]]
    audit = _ok(c.get("/audit", params={"entity_id": issued["id"]}, headers=a.h("auditor")))["items"]
    assert [e["action"] for e in audit] == ["partner_statement.issue"]
    assert audit[0]["after"]["number"] == issued["number"]
    assert _ok(c.get("/audit/verify", headers=a.h("auditor")))["ok"]
    host["statement_id"] = issued["id"]


def test_csv_export_has_one_row_per_line_and_the_agreement_subtotals(env: Env, host: dict[str, str]) -> None:
    r = env.client.get(f"/partner-statements/{host['statement_id']}/csv", headers=env.a.h())
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [(x["kind"], x["tax_rate"], x["net"], x["tax"], x["gross"]) for x in rows] == [
        ("revenue", "7", "4.00", "0.28", "4.28"), ("revenue", "19", "9.96", "1.89", "11.85"),
        ("share_percent", "", "1.74", "0.00", "1.74"), ("share_per_kwh", "", "0.47", "0.00", "0.47"),
        ("share_monthly_fee", "", "50.00", "0.00", "50.00"), ("agreement_subtotal", "", "52.21", "", "52.21")]
    assert {x["agreement_id"] for x in rows if x["kind"] != "revenue"} == {host["agreement_id"]}
    assert rows[-1]["description"] == "ruleset hostshare v1, revenue_share hotel (2026-03-01 to before 2026-04-01)"
    assert {x["number"] for x in rows} == {r.headers["content-disposition"].split('"')[1].removesuffix(".csv")}


def test_a_partner_key_sees_only_its_own_statements(env: Env, host: dict[str, str]) -> None:
    c, a = env.client, env.a
    mine = {"Authorization": f"Bearer {host['key']}"}
    other = a.h("partner")  # the seeded site host's key
    listed = _ok(c.get("/partner-statements", headers=mine))["items"]
    assert listed and {s["partner_id"] for s in listed} == {host["partner_id"]}
    assert _ok(c.get(f"/partner-statements/{host['statement_id']}", headers=mine))["id"] == host["statement_id"]
    assert _ok(c.post("/partner-statements/preview", json={"partner_id": host["partner_id"], "month": "2026-03"},
                      headers=mine))["totals"][0]["payable"] == "52.21"
    assert c.post("/partner-statements", json={"partner_id": host["partner_id"], "month": "2026-05"},
                  headers=mine).status_code == 403
    r = c.post("/partner-statements/preview", json={"partner_id": host["partner_id"], "month": "2026-03",
                                                    "agreement_id": a.ids["agreement_id"]}, headers=mine)
    assert r.status_code == 404 and r.json()["code"] == "agreement_not_found"
    r = c.post("/partner-statements/preview", json={"partner_id": host["partner_id"], "month": "2026-03",
                                                    "agreement_id": a.ids["agreement_id"]}, headers=a.h())
    assert r.status_code == 422 and r.json()["code"] == "agreement_of_another_partner"
    assert _ok(c.get("/partner-statements", headers=other))["items"] == []
    assert _ok(c.get("/partner-statements", params={"partner_id": host["partner_id"]}, headers=other))["items"] == []
    for path in (f"/partner-statements/{host['statement_id']}", f"/partner-statements/{host['statement_id']}/csv"):
        r = c.get(path, headers=other)
        assert r.status_code == 404 and r.json()["code"] == "partner_statement_not_found"
    r = c.post("/partner-statements/preview", json={"partner_id": host["partner_id"], "month": "2026-03"},
               headers=other)
    assert r.status_code == 404 and r.json()["code"] == "partner_not_found"
    # the sessions of the host's sites are the host's alone
    sessions = _ok(c.get("/sessions", params={"limit": 200}, headers=mine))["items"]
    assert {s["external_id"] for s in sessions} == {"H-0", "H-1", "H-2", "H-3", "H-4", "H-5"}


def test_a_partner_user_without_a_partner_sees_nothing(env: Env, host: dict[str, str]) -> None:
    # the API refuses such a user, the database does not: the scoping must not fall back to
    # "sessions without a site host" (S-2 of the seed has none)
    with Session(env.engine) as db:
        user = create_user(db, env.a.tenant_id, "orphan@x.test", "partner", partner_id=None)
        db.flush()
        _, key = issue_key(db, env.a.tenant_id, user.id, "orphan")
        db.commit()
    h = {"Authorization": f"Bearer {key}"}
    assert _ok(env.client.get("/sessions", headers=h))["items"] == []
    r = env.client.get(f"/sessions/{env.a.ids['other_session_id']}", headers=h)
    assert r.status_code == 404
    assert _ok(env.client.get("/partner-statements", headers=h))["items"] == []


def test_agreement_terms_without_a_ruleset(env: Env) -> None:
    # 30 % of 5.25 (S-1: 0.35 + 10 × 0.49) = 1.575 -> 1.58 and 0.10 per session: payable 1.68
    c, a = env.client, env.a
    r = c.post("/agreements", json={"partner_id": a.ids["partner_id"], "kind": "revenue_share",
                                    "valid_from": "2026-03-01", "terms": {"share_pct": "30"}}, headers=a.h())
    assert r.status_code == 422 and r.json()["code"] == "agreement_terms_invalid"
    r = c.post("/agreements", json={"partner_id": a.ids["partner_id"], "kind": "revenue_share",
                                    "valid_from": "2026-03-01", "terms": {"share_percent": "130"}}, headers=a.h())
    assert r.status_code == 422 and r.json()["code"] == "agreement_terms_invalid"
    ag = _ok(c.post("/agreements", json={"partner_id": a.ids["partner_id"], "kind": "revenue_share",
                                         "valid_from": "2026-03-01", "valid_to": "2026-03-31",
                                         "terms": {"share_percent": "30", "per_session": "0.10"}}, headers=a.h()), 201)
    body = {"partner_id": a.ids["partner_id"], "month": "2026-03"}
    # the seeded agreement (no end) and this one both cover March
    r = c.post("/partner-statements/preview", json=body, headers=a.h())
    assert r.status_code == 422 and r.json()["code"] == "agreement_ambiguous"
    st = _ok(c.post("/partner-statements/preview", json={**body, "agreement_id": ag["id"]}, headers=a.h()))
    assert st["sessions"] == 1 and st["share_source"] == "agreement terms"
    assert (_line(st, "share_percent")["net"], _line(st, "share_per_session")["net"]) == ("1.58", "0.10")
    assert st["totals"][0]["payable"] == "1.68"
    # limited to sites the partner does not run: S-1 (at berlin_1) earns nothing, and the notes say why
    elsewhere = _ok(c.post("/agreements", json={"partner_id": a.ids["partner_id"], "kind": "revenue_share",
                                                "valid_from": "2026-03-01", "valid_to": "2026-03-31",
                                                "terms": {"share_percent": "30", "sites": "hamburg_*"}},
                           headers=a.h()), 201)
    st = _ok(c.post("/partner-statements/preview", json={**body, "agreement_id": elsewhere["id"]}, headers=a.h()))
    assert [ln["kind"] for ln in st["lines"]] == ["revenue"] and st["covered_sessions"] == 0
    assert any("do not name" in n or "does not name" in n for n in st["notes"]), st["notes"]
    # the seeded agreement names a rule but no ruleset, and has no terms: revenue only, said so
    seeded = _ok(c.post("/partner-statements/preview", json={**body, "agreement_id": a.ids["agreement_id"]},
                        headers=a.h()))
    assert [ln["kind"] for ln in seeded["lines"]] == ["revenue"] and seeded["totals"][0]["payable"] == "0"
    assert any("no ruleset" in n for n in seeded["notes"])


def test_issued_statements_are_immutable_in_the_database(env: Env, host: dict[str, str]) -> None:
    for sql in ("UPDATE partner_statement SET number = 'PS-X'", "DELETE FROM partner_statement_line",
                "UPDATE partner_statement_line SET net = '0'", "UPDATE partner_statement_session SET share = '0'",
                "DELETE FROM partner_statement_session"):
        with pytest.raises(IntegrityError, match="append-only"), env.engine.begin() as conn:
            conn.execute(text(sql))
    assert _ok(env.client.get(f"/partner-statements/{host['statement_id']}", headers=env.a.h()))["lines"]


def test_audit_verify_reports_tampering(env: Env, host: dict[str, str]) -> None:
    # last in this module: it breaks tenant A's chain on purpose
    h = env.a.h("auditor")
    assert _ok(env.client.get("/audit/verify", headers=h))["ok"]
    with env.engine.begin() as conn, triggers_dropped(conn):
        conn.execute(text("UPDATE audit_entry SET entity_id = 'forged' WHERE tenant_id = :t AND seq = 2"),
                     {"t": env.a.tenant_id})
    v = _ok(env.client.get("/audit/verify", headers=h))
    assert not v["ok"] and v["breaks"] == [{"seq": 2, "reason": "content does not match its hash"}]
    assert _ok(env.client.get("/audit/verify", headers=env.b.h("auditor")))["ok"]
