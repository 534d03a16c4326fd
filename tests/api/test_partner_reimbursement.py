"""Partner statements with indexed and time-of-use energy reimbursement and commissions, through
the API: each session's energy priced per interval at the day-ahead price imported as a file, the
lines' traces, a missing interval refused by name, and an employee's home charging reimbursed.

Figures by hand (prices EUR/MWh, series day_ahead_hotel: 00:00Z 85.20, 01:00Z 80.00, 02:00Z -3.10,
03:00Z 70.00, 04:00Z 60.00 on 2026-04-01; Berlin is UTC+2):
  R-1 00:30Z..01:30Z, 10 kWh, meter values 0 / 4000 Wh at 01:00 / 10000 Wh, group fleet:
      4 kWh × (0.0852 + 0.02) + 6 kWh × (0.0800 + 0.02) = 0.4208 + 0.6 = 1.0208; revenue 5.00
  R-2 02:00Z..03:00Z, 5 kWh (pro rata): 5 × (-0.0031 + 0.02) = 0.0845; revenue 2.50
  reimbursement 15 kWh, 1.1053 -> 1.11; host 10% of 7.50 = 0.75
  commission booking (charge host): 0.30 × 2 = -0.60; 0.01/kWh for group fleet: -0.10; 20.00 per month: -20.00
  commission bonus (pay host): 1% of 7.50 = 0.075 -> 0.08
  payable 1.11 + 0.75 - 0.60 - 0.10 - 20.00 + 0.08 = -18.76
  sales partner (commission sales_acme, fleet only): R-1: 0.10 + 1% of 5.00 = 0.15
  home charger E-1 03:30Z..04:30Z (05:30..06:30 local), 4 kWh: 2 kWh at night 0.40 = 0.80,
      2 kWh at 0.0600 + 0.05 = 0.22: 1.02
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Env, publish_ruleset, requires_dsl

pytestmark = requires_dsl

RULESET = """ruleset spotshare currency EUR timezone Europe/Berlin
series day_ahead_hotel
groups fleet
tariff std "Standard" { vat 19%; energy 0.50 per kWh }
revenue_share hotel {
  sites spot_hotel
  host gets 10% of net revenue
  reimburse energy at index(day_ahead_hotel) + 0.02 per kWh
  commission booking, bonus
}
commission booking {
  0.30 per session
  0.01 per kWh for group fleet
  20.00 per month
  charge host
}
commission bonus { 1% of net revenue; pay host }
commission sales_acme {
  0.10 per session for group fleet
  1% of net revenue for group fleet
  pay partner acme
}
reimbursement company_car "Company car charged at home" {
  energy at 0.40 per kWh when time 22:00..06:00
  energy at index(day_ahead_hotel) + 0.05 per kWh
}
"""
PRICES = ("timestamp,price (EUR/MWh)\n2026-04-01T00:00:00Z,85.20\n2026-04-01T01:00:00Z,80.00\n"
          "2026-04-01T02:00:00Z,-3.10\n2026-04-01T03:00:00Z,70.00\n2026-04-01T04:00:00Z,60.00\n")


def _ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, (r.status_code, r.text)
    return r.json()


@pytest.fixture(scope="module")
def setup(env: Env) -> dict[str, str]:
    c, a = env.client, env.a
    h = a.h()
    rs = publish_ruleset(c, a, "spotshare", RULESET)
    _ok(c.post("/price-series", json={"name": "day_ahead_hotel", "unit": "per MWh"}, headers=h), 201)
    _ok(c.post("/price-series/day_ahead_hotel/prices", content=PRICES, headers={**h, "Content-Type": "text/csv"}),
        201)
    host = _ok(c.post("/partners", json={"kind": "site_host", "name": "Hotel Spot"}, headers=h), 201)["id"]
    _ok(c.post("/locations", json={"code": "spot_hotel", "name": "Hotel Spot", "country": "DE",
                                   "timezone": "Europe/Berlin", "site_host_id": host, "ruleset_id": rs["id"]},
               headers=h), 201)
    _ok(c.post("/agreements", json={"partner_id": host, "kind": "revenue_share", "valid_from": "2026-01-01",
                                    "ruleset_name": "spotshare", "rule_name": "hotel"}, headers=h), 201)
    employee = _ok(c.post("/partners", json={"kind": "employee", "name": "Erika (company car)"}, headers=h), 201)["id"]
    _ok(c.post("/locations", json={"code": "home_erika", "name": "Erika at home", "country": "DE",
                                   "timezone": "Europe/Berlin", "site_host_id": employee, "ruleset_id": rs["id"]},
               headers=h), 201)
    r = c.post("/agreements", json={"partner_id": employee, "kind": "reimbursement", "valid_from": "2026-01-01"},
               headers=h)
    assert r.status_code == 422 and r.json()["code"] == "agreement_rule_required"
    _ok(c.post("/agreements", json={"partner_id": employee, "kind": "reimbursement", "valid_from": "2026-01-01",
                                    "ruleset_name": "spotshare", "rule_name": "company_car"}, headers=h), 201)
    sales = _ok(c.post("/partners", json={"kind": "sales_partner", "name": "Acme Sales"}, headers=h), 201)["id"]
    _ok(c.post("/agreements", json={"partner_id": sales, "kind": "commission", "valid_from": "2026-01-01",
                                    "ruleset_name": "spotshare", "rule_name": "sales_acme"}, headers=h), 201)

    def s(ext: str, start: str, end: str, kwh: str, site: str = "spot_hotel", **kw: Any) -> dict[str, Any]:
        return {"id": ext, "start": start, "end": end, "energy_kwh": kwh, "location_id": site, "tariff": "std", **kw}

    res = _ok(c.post("/sessions/batch", json={"sessions": [
        s("R-1", "2026-04-01T00:30:00Z", "2026-04-01T01:30:00Z", "10", customer_groups=["fleet"], meter_values=[
            {"at": "2026-04-01T00:30:00Z", "energy_wh": "0"}, {"at": "2026-04-01T01:00:00Z", "energy_wh": "4000"},
            {"at": "2026-04-01T01:30:00Z", "energy_wh": "10000"}]),
        s("R-2", "2026-04-01T02:00:00Z", "2026-04-01T03:00:00Z", "5"),
        s("R-9", "2026-05-02T10:00:00Z", "2026-05-02T11:00:00Z", "3"),
        s("E-1", "2026-04-01T03:30:00Z", "2026-04-01T04:30:00Z", "4", site="home_erika"),
    ]}, headers=h))
    assert res["created"] == 4, res
    return {"host": host, "employee": employee, "sales": sales}


def _external(env: Env) -> dict[str, str]:
    items = _ok(env.client.get("/sessions", params={"limit": 200}, headers=env.a.h()))["items"]
    return {x["id"]: x["external_id"] for x in items}


def _lines(st: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [ln for ln in st["lines"] if ln["kind"] == kind]


def test_indexed_reimbursement_and_commissions_on_the_hosts_statement(env: Env, setup: dict[str, str]) -> None:
    st = _ok(env.client.post("/partner-statements/preview", json={"partner_id": setup["host"], "month": "2026-04"},
                             headers=env.a.h()))
    (rb,) = _lines(st, "reimbursement")
    assert (rb["sessions"], rb["quantity"], rb["net_unrounded"], rb["net"]) == (2, "15", "1.1053", "1.11")
    rule, *stretches = rb["trace"]
    assert rule["rule"] == ("revenue_share hotel, line 8: reimburse energy at index(day_ahead_hotel) + 0.02 per kWh")
    ext = _external(env)
    assert [(ext[x["session_id"]], x["from"], x["to"], x["kwh"], x["unit_price"], x["series"]) for x in stretches] == [
        ("R-1", "2026-04-01T00:30:00Z", "2026-04-01T01:00:00Z", "4", "0.1052", {"day_ahead_hotel": "0.0852"}),
        ("R-1", "2026-04-01T01:00:00Z", "2026-04-01T01:30:00Z", "6", "0.10", {"day_ahead_hotel": "0.08"}),
        ("R-2", "2026-04-01T02:00:00Z", "2026-04-01T03:00:00Z", "5", "0.0169", {"day_ahead_hotel": "-0.0031"})]
    (pct,) = _lines(st, "share_percent")
    assert pct["net"] == "0.75"
    comms = {(ln["description"].split(":")[1].split(",")[0].strip()): ln for ln in _lines(st, "commission")}
    assert {k: v["net"] for k, v in comms.items()} == {
        "0.30 per session": "-0.60", "0.01 per kWh for group fleet": "-0.10",
        "20.00 per month 2026-04": "-20.00", "1% of net revenue": "0.08"}
    fleet = comms["0.01 per kWh for group fleet"]
    assert fleet["trace"][0]["rule"].startswith("commission booking, line 13") and [ext[x] for x in fleet["trace"][0]["sessions"]] == ["R-1"]
    assert fleet["trace"][0]["direction"] == "charge"
    assert st["totals"][0]["payable"] == "-18.76"
    issued = _ok(env.client.post("/partner-statements", json={"partner_id": setup["host"], "month": "2026-04"},
                                 headers=env.a.h()), 201)
    again = _ok(env.client.get(f"/partner-statements/{issued['id']}", headers=env.a.h()))
    (stored,) = _lines(again, "reimbursement")
    assert stored["trace"] == rb["trace"] and again["totals"][0]["payable"] == "-18.76"
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(env.client.get(f"/partner-statements/{issued['id']}/csv",
                                                          headers=env.a.h()).text)))
    assert {r["kind"]: r["rule"] for r in rows if r["kind"] in ("reimbursement", "revenue")} == {
        "revenue": "", "reimbursement": rule["rule"]}


def test_a_missing_interval_is_an_error_naming_it_never_a_zero(env: Env, setup: dict[str, str]) -> None:
    for path in ("/partner-statements/preview", "/partner-statements"):
        r = env.client.post(path, json={"partner_id": setup["host"], "month": "2026-05"}, headers=env.a.h())
        assert r.status_code == 422 and r.json()["code"] == "reimbursement_price_missing", r.text
        detail = r.json()["detail"]
        assert {v: k for k, v in _external(env).items()}["R-9"] == r.json()["errors"][0]["source"]
        assert "2026-05-02T10:00:00Z..2026-05-02T11:00:00Z" in detail, detail
        assert "no value at 2026-05-02T10:00Z: nothing is imported" in detail, detail
    listed = _ok(env.client.get("/partner-statements", params={"partner_id": setup["host"]}, headers=env.a.h()))
    assert all(s["local_start"] != "2026-05-01" for s in listed["items"])


def test_company_car_charged_at_home_is_reimbursed_to_the_employee(env: Env, setup: dict[str, str]) -> None:
    st = _ok(env.client.post("/partner-statements/preview",
                             json={"partner_id": setup["employee"], "month": "2026-04"}, headers=env.a.h()))
    rbs = _lines(st, "reimbursement")
    assert [(ln["quantity"], ln["net_unrounded"], ln["net"]) for ln in rbs] == [("2", "0.80", "0.80"),
                                                                                ("2", "0.22", "0.22")]
    assert rbs[0]["trace"][0]["rule"] == ("reimbursement company_car, line 24: reimburse energy at 0.4 per kWh when time 22:00..06:00")
    assert st["share_source"] == "ruleset spotshare v1, reimbursement company_car"
    assert st["totals"][0]["payable"] == "1.02"


def test_a_sales_partner_is_paid_its_commission_on_the_sessions_its_rules_select(env: Env,
                                                                                setup: dict[str, str]) -> None:
    st = _ok(env.client.post("/partner-statements/preview", json={"partner_id": setup["sales"], "month": "2026-04"},
                             headers=env.a.h()))
    # only R-1 is a fleet customer's session: its revenue is the basis, shown alone
    (rev,) = _lines(st, "revenue")
    assert (rev["sessions"], rev["net"]) == (1, "5.00")
    comms = [(ln["description"], ln["net"]) for ln in _lines(st, "commission")]
    assert comms == [("commission sales_acme: 0.10 per session for group fleet, paid to the partner", "0.10"),
                     ("commission sales_acme: 1% of net revenue for group fleet, paid to the partner", "0.05")]
    assert st["totals"][0]["payable"] == "0.15"
    assert st["share_source"] == "ruleset spotshare v1, commission sales_acme"


def test_host_and_sales_partner_each_settle_only_what_they_stated(env: Env, setup: dict[str, str]) -> None:
    """R-1 is stated on the host's April statement and on the sales partner's: re-rated with the same
    prices, neither owes a correction (the host's is not mixed with the sales partner's 0.15)."""
    c, h = env.client, env.a.h()
    issued = c.get("/partner-statements", params={"partner_id": setup["host"]}, headers=h).json()["items"]
    if not any(s["local_start"] == "2026-04-01" for s in issued):
        _ok(c.post("/partner-statements", json={"partner_id": setup["host"], "month": "2026-04"}, headers=h), 201)
    sales = _ok(c.post("/partner-statements", json={"partner_id": setup["sales"], "month": "2026-04",
                                                    "accept_unrated": True}, headers=h), 201)
    assert sales["totals"][0]["payable"] == "0.15"
    r1 = {v: k for k, v in _external(env).items()}["R-1"]
    _ok(c.post(f"/sessions/{r1}/rerate", json={"reason": "meter check"}, headers=h), 201)
    june = _ok(c.post("/partner-statements/preview", json={"partner_id": setup["host"], "month": "2026-06"},
                      headers=h))
    assert [ln for ln in june["lines"] if ln["kind"] == "share_correction"] == [], june["lines"]


def test_a_late_session_its_rules_select_reaches_the_sales_partner(env: Env, setup: dict[str, str]) -> None:
    """After April was issued to the sales partner, two April sessions arrive: the fleet one is
    settled on its next statement as late (0.10 + 1% of 2.00), the other is none of its business."""
    c, h = env.client, env.a.h()
    _ok(c.post("/sessions/batch", json={"sessions": [
        {"id": "R-10", "start": "2026-04-02T10:00:00Z", "end": "2026-04-02T11:00:00Z", "energy_kwh": "4",
         "location_id": "spot_hotel", "tariff": "std", "customer_groups": ["fleet"]},
        {"id": "R-11", "start": "2026-04-02T12:00:00Z", "end": "2026-04-02T13:00:00Z", "energy_kwh": "4",
         "location_id": "spot_hotel", "tariff": "std"}]}, headers=h))
    june = _ok(c.post("/partner-statements/preview", json={"partner_id": setup["sales"], "month": "2026-06"},
                      headers=h))
    late = [ln for ln in june["lines"] if ln["kind"] == "share_late_session"]
    ext = _external(env)
    assert [(ext[ln["session_id"]], ln["net_unrounded"], ln["refers_to"]) for ln in late] == [
        ("R-10", "0.12", june_ref(env, setup["sales"]))], june["lines"]


def june_ref(env: Env, partner_id: str) -> str:
    items = _ok(env.client.get("/partner-statements", params={"partner_id": partner_id}, headers=env.a.h()))["items"]
    return str(next(s["number"] for s in items if s["local_start"] == "2026-04-01"))
