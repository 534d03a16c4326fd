"""Session import through the API: rated on write with the version in force at the session start,
idempotent by external id, OCPI CDRs and CSV, re-rating appends. Needs the DSL compiler."""

from __future__ import annotations

from tests.api.conftest import DEMO_RULESET_V2, Env, requires_dsl
from tests.api.routes import CDR

pytestmark = requires_dsl


def _session(ext: str, start: str, end: str, kwh: str, **kw: str) -> dict[str, str]:
    return {"id": ext, "start": start, "end": end, "energy_kwh": kwh, **kw}


def test_rated_with_the_version_in_force_at_session_start(env: Env) -> None:
    c, a = env.client, env.a
    rs = a.ids["ruleset_id"]
    d = c.post(f"/rulesets/{rs}/drafts", json={"source": DEMO_RULESET_V2}, headers=a.h("analyst")).json()
    v2 = c.post(f"/rulesets/{rs}/versions", json={"draft_id": d["id"], "effective_from": "2026-06-01T00:00:00+02:00"},
                headers=a.h("approver")).json()
    res = c.post("/sessions/batch", json={"sessions": [
        _session("V-old", "2026-05-31T21:30:00Z", "2026-05-31T22:30:00Z", "10", location_id="berlin_1",
                 token_uid=f"TOK-{a.name}"),
        _session("V-new", "2026-05-31T22:30:00Z", "2026-05-31T23:30:00Z", "10", location_id="berlin_1"),
        _session("V-none", "2019-05-01T10:00:00Z", "2019-05-01T11:00:00Z", "10"),
        _session("V-bad", "2026-05-01T10:00:00Z", "2026-05-01T09:00:00Z", "10"),
    ]}, headers=a.h("operator")).json()
    assert (res["created"], res["failed"]) == (3, 1), res
    old, new, none, bad = res["items"]
    assert bad["code"] == "invalid_session" and bad["status"] == "failed"
    assert none["rating_status"] == "unrated" and none["code"] == "no_ruleset_in_force"
    old_s = c.get(f"/sessions/{old['session_id']}", headers=a.h()).json()
    new_s = c.get(f"/sessions/{new['session_id']}", headers=a.h()).json()
    assert old_s["rating"]["ruleset_version_id"] == a.ids["version_id"] and old_s["gross_total"] == "6.25"
    assert new_s["rating"]["ruleset_version_id"] == v2["id"] and new_s["net_total"] == "6.25"
    # linked to the tenant's objects on the way in
    assert old_s["customer_id"] == a.ids["customer_id"] and old_s["contract_id"] == a.ids["contract_id"]
    assert old_s["site_host_id"] == a.ids["partner_id"] and old_s["location_id"] == a.ids["location_id"]
    assert old_s["facts"]["customer_groups"] == ["employees"] and old_s["facts"]["timezone"] == "Europe/Berlin"
    lines = {ln["component"]: ln for ln in old_s["rating"]["lines"]}
    assert set(lines) == {"start_fee", "energy"}
    energy = lines["energy"]
    assert (energy["quantity"], energy["unit_price"], energy["net_rounded"]) == ("10", "0.49", "4.90")


def test_import_is_idempotent_by_external_id(env: Env) -> None:
    c, h = env.client, env.a.h("operator")
    batch = {"sessions": [_session("I-1", "2026-03-05T10:00:00Z", "2026-03-05T11:00:00Z", "7.5")]}
    first = c.post("/sessions/batch", json=batch, headers=h).json()
    again = c.post("/sessions/batch", json=batch, headers=h).json()
    assert first["created"] == 1 and again["created"] == 0 and again["unchanged"] == 1
    assert again["items"][0]["session_id"] == first["items"][0]["session_id"]
    ratings = c.get(f"/sessions/{first['items'][0]['session_id']}/ratings", headers=h).json()
    assert len(ratings) == 1
    changed = {"sessions": [_session("I-1", "2026-03-05T10:00:00Z", "2026-03-05T11:00:00Z", "9")]}
    conflict = c.post("/sessions/batch", json=changed, headers=h).json()
    assert conflict["failed"] == 1 and conflict["items"][0]["code"] == "external_id_conflict"
    listed = c.get("/sessions", params={"q": "I-1"}, headers=h).json()["items"]
    assert [s["external_id"] for s in listed] == ["I-1"] and listed[0]["energy_kwh"] == "7.5"


def test_ocpi_cdr_and_csv_imports(env: Env) -> None:
    c, h = env.client, env.a.h("operator")
    r = c.post("/sessions/import/ocpi-cdrs", json={"cdrs": [CDR]}, headers=h).json()
    assert r["created"] == 1, r
    s = c.get(f"/sessions/{r['items'][0]['session_id']}", headers=h).json()
    assert s["source"] == "ocpi_cdr" and s["energy_kwh"] == "12.5" and len(s["periods"]) == 1
    assert s["net_total"] == "6.48"  # 0.35 + 12.5 × 0.49 = 6.475, rounded half-up once per line: 0.35 + 6.13
    assert c.post("/sessions/import/ocpi-cdrs", json={"cdrs": [CDR]}, headers=h).json()["unchanged"] == 1
    csv_text = ("id,start,end,energy_kwh,location_id,customer_groups,extra_column\n"
                "C-1,2026-03-06T10:00:00Z,2026-03-06T11:00:00Z,4,berlin_1,employees|vip,x\n"
                "C-2,2026-03-06T12:00:00+01:00,2026-03-06T13:00:00+01:00,2.25,,,\n"
                "C-3,yesterday,2026-03-06T13:00:00Z,1,,,\n")
    r = c.post("/sessions/import/csv", content=csv_text.encode(), headers={**h, "Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["created"], out["failed"]) == (2, 1) and out["items"][2]["code"] == "invalid_session"
    c1 = c.get(f"/sessions/{out['items'][0]['session_id']}", headers=h).json()
    assert c1["facts"]["customer_groups"] == ["employees", "vip"] and c1["status"] == "rated"
    r = c.post("/sessions/import/csv", content=b"foo,bar\n1,2\n", headers={**h, "Content-Type": "text/csv"})
    assert r.status_code == 422 and r.json()["code"] == "csv_header_missing"


def test_rerate_appends_and_keeps_history(env: Env) -> None:
    c, a = env.client, env.a
    sid = a.ids["session_id"]
    before = c.get(f"/sessions/{sid}/ratings", headers=a.h()).json()
    r = c.post(f"/sessions/{sid}/rerate", json={"reason": "customer complaint"}, headers=a.h("operator"))
    assert r.status_code == 201, r.text
    after = c.get(f"/sessions/{sid}/ratings", headers=a.h()).json()
    assert len(after) == len(before) + 1
    assert after[: len(before)] == before  # history untouched
    assert after[-1]["reason"] == "customer complaint" and after[-1]["seq"] == len(after)
    s = c.get(f"/sessions/{sid}", headers=a.h()).json()
    assert s["current_rating_id"] == after[-1]["id"]
    audit = c.get("/audit", params={"action": "session.rerate"}, headers=a.h("auditor")).json()["items"]
    assert audit and audit[-1]["entity_id"] == sid
    r = c.post(f"/sessions/{sid}/rerate", json={"reason": "x", "ruleset_version_id": "rsv_nope"}, headers=a.h())
    assert r.status_code == 404 and r.json()["code"] == "ruleset_version_not_found"


SPOT_RULESET = """ruleset spot currency EUR timezone Europe/Berlin
series spot_de "day-ahead" per kWh
tariff dynamic "Dynamic" {
  vat 19%
  energy index(spot_de) * 1.10 + 0.12 per kWh
}
"""


def test_indexed_prices_use_the_stored_price_series(env: Env) -> None:
    """The seeded series spot_de has 0.1012 from 00:00 and 0.0950 from 01:00 UTC on 2026-03-01."""
    c, a = env.client, env.a
    out = c.post("/rulesets/simulate", json={"source": SPOT_RULESET, "sessions": [
        {"id": "spot-1", "start": "2026-03-01T00:10:00Z", "end": "2026-03-01T00:40:00Z", "energy_kwh": "10"}]},
        headers=a.h("analyst")).json()
    s = out["sessions"][0]
    assert s["ok"], out
    # 10 kWh × (0.1012 × 1.10 + 0.12) = 10 × 0.23132
    assert s["result"]["totals"]["net_unrounded"] == "2.3132"
    out = c.post("/rulesets/simulate", json={"source": SPOT_RULESET, "sessions": [
        {"id": "spot-2", "start": "2026-02-01T00:10:00Z", "end": "2026-02-01T00:40:00Z", "energy_kwh": "10"}]},
        headers=a.h("analyst")).json()
    assert out["sessions"][0]["code"] == "rating_failed" and "spot_de" in out["sessions"][0]["message"]
