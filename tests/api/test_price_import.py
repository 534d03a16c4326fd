"""Day-ahead price files imported through POST /price-series/{id or name}/prices: stored as
intervals, idempotent, refused with the line named, and priced per kWh when a ruleset reads them."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Env

CSV = {"Content-Type": "text/csv"}
HOURLY = ("timestamp,price (EUR/MWh)\n"
          "2026-04-01T00:00:00Z,85.20\n"
          "2026-04-01T01:00:00Z,80.00\n"
          "2026-04-01T02:00:00Z,-3.10\n")


def _series(env: Env, name: str, **kw: Any) -> str:
    r = env.client.post("/price-series", json={"name": name, "unit": "per MWh", **kw}, headers=env.a.h())
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _post(env: Env, key: str, text: str, role: str = "operator") -> Any:
    return env.client.post(f"/price-series/{key}/prices", content=text, headers={**env.a.h(role), **CSV})


def test_import_is_idempotent_and_stores_intervals(env: Env) -> None:
    sid = _series(env, "day_ahead_de")
    r = _post(env, "day_ahead_de", HOURLY)
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["series_id"], body["lines"], body["imported"], body["unchanged"]) == (sid, 3, 3, 0)
    assert body["end"].startswith("2026-04-01T03:00:00")
    again = _post(env, sid, HOURLY)  # by id this time
    assert again.status_code == 200 and (again.json()["imported"], again.json()["unchanged"]) == (0, 3)
    # the next day, overlapping one stored hour with the same price: only the new hours are stored
    more = _post(env, "day_ahead_de", "timestamp,price\n2026-04-01T02:00:00Z,-3.10\n2026-04-01T03:00:00Z,70\n")
    assert more.status_code == 201 and (more.json()["imported"], more.json()["unchanged"]) == (1, 1)
    pts = env.client.get(f"/price-series/{sid}/points", params={"limit": 10}, headers=env.a.h()).json()["items"]
    assert [p["value"] for p in pts] == ["85.20", "80.00", "-3.10", "70"]


def test_conflicts_and_bad_files_are_422_naming_the_line(env: Env) -> None:
    _series(env, "day_ahead_at")
    assert _post(env, "day_ahead_at", HOURLY).status_code == 201
    r = _post(env, "day_ahead_at", "timestamp,price\n2026-04-01T01:00:00Z,80.00\n2026-04-01T02:00:00Z,-3.00\n")
    assert r.status_code == 422 and r.json()["code"] == "price_conflict", r.text
    assert "line 3" in r.json()["detail"] and "-3.10" in r.json()["detail"]
    # a 15-minute file over stored hours: another resolution, refused
    r = _post(env, "day_ahead_at", "timestamp,price\n2026-04-01T00:00:00Z,85.20\n2026-04-01T00:15:00Z,85.20\n")
    assert r.status_code == 422 and r.json()["code"] == "price_interval_conflict", r.text
    r = _post(env, "day_ahead_at", "timestamp,price\n2026-04-02T00:00:00Z,1\n2026-04-02T02:00:00Z,1\n"
                                   "2026-04-02T03:00:00Z,1\n")
    assert r.status_code == 422 and r.json()["code"] == "price_file_invalid"
    assert r.json()["errors"][0]["line"] == 2 and "nothing priced from 2026-04-02T01:00Z" in r.json()["detail"]
    r = _post(env, "day_ahead_at", "timestamp,price (EUR/kWh)\n2026-04-03T00:00:00Z,0.1\n")
    assert r.status_code == 422 and r.json()["code"] == "price_unit_mismatch"
    assert _post(env, "nothing_here", HOURLY).status_code == 404
    # nothing of the refused files was stored
    pts = env.client.get("/price-series", params={"q": "day_ahead_at"}, headers=env.a.h()).json()["items"]
    sid = pts[0]["id"]
    stored = env.client.get(f"/price-series/{sid}/points", params={"limit": 50}, headers=env.a.h()).json()["items"]
    assert len(stored) == 3


def test_analysts_import_partners_do_not(env: Env) -> None:
    _series(env, "day_ahead_nl")
    assert _post(env, "day_ahead_nl", HOURLY, "analyst").status_code == 201
    assert _post(env, "day_ahead_nl", HOURLY, "partner").status_code == 403
    assert _post(env, "day_ahead_nl", HOURLY, "auditor").status_code == 403


SPOT = """ruleset spot currency EUR timezone Europe/Berlin
series day_ahead_fr
tariff dynamic "Dynamic" {
  vat 19%
  energy index(day_ahead_fr) + 0.10 per kWh
}
"""


def test_a_ruleset_reads_eur_per_mwh_as_eur_per_kwh_and_a_gap_fails(env: Env) -> None:
    _series(env, "day_ahead_fr")
    assert _post(env, "day_ahead_fr", HOURLY).status_code == 201
    assert _post(env, "day_ahead_fr", "timestamp,price\n2026-04-01T05:00:00Z,50\n2026-04-01T06:00:00Z,50\n"
                 ).status_code == 201

    def rate(start: str, end: str) -> Any:
        return env.client.post("/rulesets/simulate", json={"source": SPOT, "sessions": [
            {"id": "fr-1", "start": start, "end": end, "energy_kwh": "10"}]}, headers=env.a.h("analyst")).json()
    out = rate("2026-04-01T00:30:00Z", "2026-04-01T01:30:00Z")
    s = out["sessions"][0]
    # 5 kWh at 0.0852 + 0.10 and 5 kWh at 0.0800 + 0.10 (85.20 and 80.00 EUR/MWh)
    assert s["ok"] and s["result"]["totals"]["net_unrounded"] == "1.826", out
    gap = rate("2026-04-01T03:30:00Z", "2026-04-01T04:30:00Z")["sessions"][0]
    assert gap["code"] == "rating_failed" and "2026-04-01T03:00Z..2026-04-01T05:00Z" in gap["message"], gap
