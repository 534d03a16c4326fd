"""Partner statements across agreements and over time: a March with two agreements (one ends on
the 15th, the next starts on the 16th), then re-rated and late sessions of that issued March
settled on later statements by difference, never by editing March; and, as a property, that over
any sequence of re-ratings the shares stated for a session add up to its share under its final
rating. Through the API, on SQLite and PostgreSQL.

Figures by hand (energy only, 19 % VAT; rated lines keep full precision):
  v1 0.4567/kWh, v2 0.5123/kWh
  C-1 03-10, 10 kWh: 4.567 (v1), 5.123 (v2)     C-2 03-20, 20 kWh: 9.134 (v1)
  C-3 03-25, 5 kWh, arrives after March is issued: 2.2835 (v1)
  agreement 1, 01-01 .. 03-15: 10 % of net revenue, 30.00 per month
  agreement 2, from 03-16:    20 % of net revenue, 0.01 per kWh
March: revenue 13.701 -> 13.70, VAT 2.60319 -> 2.60, gross 16.30
  agreement 1 (03-01 .. 03-15): 10 % of 4.567 = 0.4567 -> 0.46; fee 30 × 15/31 = 14.516.. -> 14.52;  14.98
  agreement 2 (03-16 .. 03-31): 20 % of 9.134 = 1.8268 -> 1.83; 0.01 × 20 = 0.20;                    2.03
  payable 17.01
April (no sessions; C-1 re-rated to v2, C-3 late):
  agreement 2's 0.01 per kWh on no energy: 0.00
  correction C-1 (agreement 1): 10 % of 5.123 - 0.4567 = 0.5123 - 0.4567 = 0.0556 -> 0.06
  late C-3 (agreement 2): 20 % of 2.2835 + 0.01 × 5 = 0.4567 + 0.05 = 0.5067 -> 0.51;  payable 0.57
May (C-1 re-rated back to v1): correction 0.4567 - (0.4567 + 0.0556) = -0.0556 -> -0.06
"""

from __future__ import annotations

import itertools
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import Env, requires_dsl

pytestmark = requires_dsl

SOURCE = """ruleset corr currency EUR timezone Europe/Berlin
tariff std "Standard" {
  vat 19%
  energy PRICE per kWh
}
"""
PRICES = ("0.4567", "0.5123", "0.3333")
SHARE_KINDS = {"share_percent", "share_per_kwh", "share_per_session", "reimbursement", "share_correction",
               "share_late_session"}
_ids = itertools.count(1)


def _ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, (r.status_code, r.text)
    return r.json()


@pytest.fixture(scope="module")
def corr(env: Env) -> dict[str, Any]:
    """A ruleset with a version per price (the first in force from 2026, the others far later, so
    that only an explicit re-rating uses them)."""
    c, a = env.client, env.a
    rs = _ok(c.post("/rulesets", json={"name": "corr"}, headers=a.h()), 201)
    versions = []
    for i, price in enumerate(PRICES):
        draft = _ok(c.post(f"/rulesets/{rs['id']}/drafts", json={"source": SOURCE.replace("PRICE", price)},
                           headers=a.h("analyst")), 201)
        assert draft["ok"], draft
        v = _ok(c.post(f"/rulesets/{rs['id']}/versions", json={
            "draft_id": draft["id"], "effective_from": "2026-01-01T00:00:00Z" if i == 0 else f"{2030 + i}-01-01T00:00:00Z"},
            headers=a.h("approver")), 201)
        versions.append(v["id"])
    return {"ruleset_id": rs["id"], "versions": versions}


def _host(env: Env, corr: dict[str, Any], *agreements: dict[str, Any]) -> tuple[str, str, list[str]]:
    """A new site host with a location rated by the ruleset and the given agreements."""
    c, h = env.client, env.a.h()
    n = next(_ids)
    pid = _ok(c.post("/partners", json={"kind": "site_host", "name": f"Host {n}"}, headers=h), 201)["id"]
    code = f"corr_site_{n}"
    _ok(c.post("/locations", json={"code": code, "name": f"Site {n}", "country": "DE", "timezone": "Europe/Berlin",
                                   "site_host_id": pid, "ruleset_id": corr["ruleset_id"]}, headers=h), 201)
    ags = [_ok(c.post("/agreements", json={"partner_id": pid, "kind": "revenue_share", **ag}, headers=h), 201)["id"]
           for ag in agreements]
    return pid, code, ags


def _import(env: Env, code: str, start: str, kwh: str) -> str:
    ext = f"C-{next(_ids)}"
    res = _ok(env.client.post("/sessions/batch", json={"sessions": [{
        "id": ext, "start": start, "end": start.replace("T10:", "T11:"), "energy_kwh": kwh, "location_id": code,
        "tariff": "std"}]}, headers=env.a.h()))
    assert res["created"] == 1, res
    return str(res["items"][0]["session_id"])


def _rerate(env: Env, session_id: str, version_id: str | None = None) -> None:
    _ok(env.client.post(f"/sessions/{session_id}/rerate", json={"reason": "tariff fix", "ruleset_version_id": version_id},
                        headers=env.a.h("operator")), 201)


def _issue(env: Env, pid: str, month: str, status: int = 201) -> Any:
    return _ok(env.client.post("/partner-statements", json={"partner_id": pid, "month": month},
                               headers=env.a.h("operator")), status)


def _shares(st: dict[str, Any]) -> list[tuple[str, str, str | None, str | None, str | None]]:
    return [(ln["kind"], ln["net"], ln["agreement_id"], ln["session_id"], ln["refers_to"])
            for ln in st["lines"] if ln["kind"] != "revenue"]


def test_agreements_split_the_period_and_later_statements_settle_rerated_and_late_sessions(
        env: Env, corr: dict[str, Any]) -> None:
    c, a = env.client, env.a
    pid, code, (ag1, ag2) = _host(
        env, corr,
        {"valid_from": "2026-01-01", "valid_to": "2026-03-15", "terms": {"share_percent": "10", "monthly_fee": "30"}},
        {"valid_from": "2026-03-16", "terms": {"share_percent": "20", "per_kwh": "0.01"}})
    c1 = _import(env, code, "2026-03-10T10:00:00Z", "10")
    c2 = _import(env, code, "2026-03-20T10:00:00Z", "20")

    march = _issue(env, pid, "2026-03")
    assert (march["agreement_id"], march["ruleset_version_id"]) == (None, None)
    assert march["share_source"] == "agreement terms; agreement terms"
    assert [(ln["kind"], ln["net"], ln["tax"], ln["gross"]) for ln in march["lines"] if ln["kind"] == "revenue"] == [
        ("revenue", "13.70", "2.60", "16.30")]
    assert _shares(march) == [
        ("share_percent", "0.46", ag1, None, None), ("share_monthly_fee", "14.52", ag1, None, None),
        ("share_percent", "1.83", ag2, None, None), ("share_per_kwh", "0.20", ag2, None, None)]
    assert [ln["description"] for ln in march["lines"] if ln["kind"] == "share_monthly_fee"] == [
        "monthly fee 2026-03 (15 of 31 days)"]
    assert march["agreements"] == [
        {"agreement_id": ag1, "source": "agreement terms", "local_start": "2026-03-01", "local_end": "2026-03-16",
         "sessions": 1, "currency": "EUR", "payable": "14.98"},
        {"agreement_id": ag2, "source": "agreement terms", "local_start": "2026-03-16", "local_end": "2026-04-01",
         "sessions": 1, "currency": "EUR", "payable": "2.03"}]
    assert march["totals"][0]["payable"] == "17.01" and march["covered_sessions"] == 2
    assert "share earned from 2026-03-16 to 2026-03-31 (agreement terms)" in march["notes"]
    csv_rows = c.get(f"/partner-statements/{march['id']}/csv", headers=a.h()).text.splitlines()
    assert [r.split(",")[5] for r in csv_rows[-2:]] == ["agreement_subtotal", "agreement_subtotal"]
    assert [r.split(",")[14] for r in csv_rows[-2:]] == ["14.98", "2.03"]

    # after March is issued: C-1 re-rated at a new price, C-3 arrives late
    _rerate(env, c1, corr["versions"][1])
    c3 = _import(env, code, "2026-03-25T10:00:00Z", "5")
    preview = _ok(c.post("/partner-statements/preview", json={"partner_id": pid, "month": "2026-04"},
                         headers=a.h()))
    april = _issue(env, pid, "2026-04")
    assert april["lines"] == preview["lines"] and april["sessions"] == 0
    n = march["number"]
    assert _shares(april) == [("share_per_kwh", "0.00", ag2, None, None),
                              ("share_correction", "0.06", ag1, c1, n), ("share_late_session", "0.51", ag2, c3, n)]
    corr_line = next(ln for ln in april["lines"] if ln["kind"] == "share_correction")
    assert corr_line["net_unrounded"] == "0.0556"
    assert corr_line["description"] == f"correction of {n}, session {c1} (re-rated): share 0.4567 -> 0.5123"
    assert april["totals"][0]["payable"] == "0.57"
    assert [(s["agreement_id"], s["local_start"], s["payable"]) for s in april["agreements"]] == [
        (ag2, "2026-04-01", "0.51"), (ag1, None, "0.06")]
    # March itself is untouched; a preview of March shows its sessions as they are now, each once
    assert _ok(c.get(f"/partner-statements/{march['id']}", headers=a.h())) == march
    again = _ok(c.post("/partner-statements/preview", json={"partner_id": pid, "month": "2026-03"}, headers=a.h()))
    assert [k for k, *_ in _shares(again)] == ["share_percent", "share_monthly_fee", "share_percent", "share_per_kwh"]
    assert _shares(again)[0][1] == "0.51" and again["sessions"] == 3  # 10 % of 5.123 = 0.5123

    # settled once: nothing more until C-1 is re-rated again (back to the version in force)
    may = _ok(c.post("/partner-statements/preview", json={"partner_id": pid, "month": "2026-05"}, headers=a.h()))
    assert _shares(may) == [("share_per_kwh", "0.00", ag2, None, None)]
    _rerate(env, c1)
    may = _issue(env, pid, "2026-05")
    assert _shares(may) == [("share_per_kwh", "0.00", ag2, None, None), ("share_correction", "-0.06", ag1, c1, n)]
    assert may["totals"][0]["payable"] == "-0.06"
    # re-rating C-2 at its own price again changes nothing, and says nothing
    _rerate(env, c2)
    june = _ok(c.post("/partner-statements/preview", json={"partner_id": pid, "month": "2026-06"}, headers=a.h()))
    assert _shares(june) == [("share_per_kwh", "0.00", ag2, None, None)]
    assert any("1 session(s) of issued periods settled here" in x for x in june["notes"])


def test_a_statement_of_corrections_alone(env: Env, corr: dict[str, Any]) -> None:
    # 30 % of 10 × 0.4567 = 1.3701 -> 1.37; re-rated at 0.3333: 30 % of 3.333 = 0.9999 -> 1.00;
    # the correction -0.3702 -> -0.37
    pid, code, (ag,) = _host(env, corr, {"valid_from": "2026-01-01", "terms": {"share_percent": "30"}})
    sid = _import(env, code, "2026-01-05T10:00:00Z", "10")
    jan = _issue(env, pid, "2026-01")
    assert _shares(jan) == [("share_percent", "1.37", ag, None, None)]
    _rerate(env, sid, corr["versions"][2])
    feb = _issue(env, pid, "2026-02")
    assert feb["sessions"] == 0 and [ln["kind"] for ln in feb["lines"]] == ["share_correction"]
    assert _shares(feb) == [("share_correction", "-0.37", ag, sid, jan["number"])]
    assert feb["totals"] == [{"currency": "EUR", "sessions": 0, "energy_kwh": "0", "net": "0", "tax": "0",
                              "gross": "0", "payable": "-0.37"}]


def test_overlapping_agreements_are_still_ambiguous(env: Env, corr: dict[str, Any]) -> None:
    pid, _, _ = _host(env, corr, {"valid_from": "2026-01-01", "valid_to": "2026-03-16", "terms": {"share_percent": "1"}},
                      {"valid_from": "2026-03-16", "terms": {"share_percent": "2"}})
    r = env.client.post("/partner-statements/preview", json={"partner_id": pid, "month": "2026-03"},
                        headers=env.a.h())
    assert r.status_code == 422 and r.json()["code"] == "agreement_ambiguous"
    # April has only the second one
    assert _ok(env.client.post("/partner-statements/preview", json={"partner_id": pid, "month": "2026-04"},
                               headers=env.a.h()))["agreements"] == []  # no sessions, no share lines


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(late=st.booleans(), kwh=st.decimals(min_value=Decimal("0.001"), max_value=Decimal(150), places=3),
       rerates=st.lists(st.sampled_from([0, 1, 2, None]), max_size=4))
def test_stated_shares_add_up_to_the_share_of_the_final_rating(
        env: Env, corr: dict[str, Any], late: bool, kwh: Decimal, rerates: list[int | None]) -> None:
    """Issue January (with the session, or before it arrives), then re-rate it (with a version,
    or with the one in force: None) and issue the next month after each; the exact shares all
    statements stated for it add up to 12.5 % of its final net plus 0.015 per kWh, and each line
    is rounded once."""
    pid, code, _ = _host(env, corr, {"valid_from": "2026-01-01",
                                     "terms": {"share_percent": "12.5", "per_kwh": "0.015"}})
    statements = []
    if late:
        statements.append(_issue(env, pid, "2026-01"))
    sid = _import(env, code, "2026-01-15T10:00:00Z", format(kwh, "f"))
    if not late:
        statements.append(_issue(env, pid, "2026-01"))
    price = Decimal(PRICES[0])
    for month, v in enumerate(rerates, start=2):
        _rerate(env, sid, None if v is None else corr["versions"][v])
        price = Decimal(PRICES[0 if v is None else v])
        statements.append(_issue(env, pid, f"2026-{month:02d}"))
    if late:  # the late session is settled on the first statement after its arrival
        statements.append(_issue(env, pid, f"2026-{len(rerates) + 2:02d}"))
    final = kwh * price * Decimal("0.125") + kwh * Decimal("0.015")
    stated = [ln for s in statements for ln in s["lines"] if ln["kind"] in SHARE_KINDS]
    assert sum((Decimal(ln["net_unrounded"]) for ln in stated), Decimal(0)) == final
    for ln in stated:
        assert Decimal(ln["net"]) == Decimal(ln["net_unrounded"]).quantize(Decimal("0.01"), ROUND_HALF_UP)
    # settled: one more statement states nothing more for it
    nxt = _ok(env.client.post("/partner-statements/preview", json={
        "partner_id": pid, "month": f"2026-{len(statements) + 1:02d}"}, headers=env.a.h()))
    assert sum((Decimal(ln["net_unrounded"]) for ln in nxt["lines"] if ln["kind"] in SHARE_KINDS), Decimal(0)) == 0
