"""Rulesets through the API: drafts with diagnostics, four-eyes publication, versions, diffs and
simulation. Needs the DSL compiler (``dsl.compile_ruleset``)."""

from __future__ import annotations

from tests.api.conftest import DEMO_RULESET, DEMO_RULESET_V2, Env, requires_dsl

pytestmark = requires_dsl

SESSION = {"id": "sim-1", "start": "2026-03-01T10:00:00Z", "end": "2026-03-01T11:00:00Z", "energy_kwh": "10"}


def test_draft_diagnostics_are_structured(env: Env) -> None:
    c, a = env.client, env.a
    rs = c.post("/rulesets", json={"name": "broken"}, headers=a.h("analyst")).json()
    bad = DEMO_RULESET.replace("energy 0.49 per kWh", "energy 0.49 per kWh\n  when group employes { energy 0.25 per kWh }")
    bad = bad.replace("tariff standard", "tarif standard").replace("ruleset demo", "ruleset broken")
    r = c.post(f"/rulesets/{rs['id']}/drafts", json={"source": bad}, headers=a.h("analyst"))
    assert r.status_code == 201, r.text
    d = r.json()
    assert d["ok"] is False and d["diagnostics"]
    first = d["diagnostics"][0]
    assert set(first) >= {"code", "severity", "message", "line", "col", "hint"}
    assert first["severity"] == "error" and first["line"] == 2 and first["code"].startswith("E")
    # a draft with errors cannot be published
    r = c.post(f"/rulesets/{rs['id']}/versions", json={"draft_id": d["id"], "effective_from": "2026-01-01T00:00:00Z"},
               headers=a.h("approver"))
    assert r.status_code == 422 and r.json()["code"] == "draft_has_errors"


def test_a_draft_is_named_as_its_ruleset(env: Env) -> None:
    """A draft whose ``ruleset NAME`` header names another ruleset was stored (and publishable)
    under a name not its own: 422 naming the field and both names (issue 11, defect 4)."""
    c, a = env.client, env.a
    rs = c.post("/rulesets", json={"name": "named_right"}, headers=a.h()).json()
    for source in (DEMO_RULESET, DEMO_RULESET.replace("tariff standard", "tarif standard")):  # clean, and broken
        r = c.post(f"/rulesets/{rs['id']}/drafts", json={"source": source}, headers=a.h("analyst"))
        assert r.status_code == 422, r.text
        body = r.json()
        assert body["code"] == "ruleset_name_mismatch" and body["errors"][0]["key"] == "source", body
        assert "'demo'" in body["detail"] and "'named_right'" in body["detail"], body
    assert c.get(f"/rulesets/{rs['id']}/drafts", headers=a.h()).json()["items"] == []
    named_right = DEMO_RULESET.replace("ruleset demo", "ruleset named_right")
    r = c.post(f"/rulesets/{rs['id']}/drafts", json={"source": named_right},
               headers=a.h("analyst"))
    assert r.status_code == 201 and r.json()["ok"], r.text
    # not even a header: stored with its diagnostics, as before
    r = c.post(f"/rulesets/{rs['id']}/drafts", json={"source": "rulset x"}, headers=a.h("analyst"))
    assert r.status_code == 201 and r.json()["ok"] is False, r.text


def test_publication_needs_a_second_person_with_the_right_role(env: Env) -> None:
    c, a = env.client, env.a
    rs = c.post("/rulesets", json={"name": "four_eyes"}, headers=a.h()).json()
    # a draft is named as its ruleset
    src, src_v2 = (s.replace("ruleset demo", "ruleset four_eyes") for s in (DEMO_RULESET, DEMO_RULESET_V2))
    own = c.post(f"/rulesets/{rs['id']}/drafts", json={"source": src}, headers=a.h()).json()
    body = {"draft_id": own["id"], "effective_from": "2026-01-01T00:00:00Z"}
    r = c.post(f"/rulesets/{rs['id']}/versions", json=body, headers=a.h())
    assert r.status_code == 403 and r.json()["code"] == "publisher_is_author"
    # the analyst who wrote a draft may not publish at all (role), the approver may
    d = c.post(f"/rulesets/{rs['id']}/drafts", json={"source": src}, headers=a.h("analyst")).json()
    body["draft_id"] = d["id"]
    assert c.post(f"/rulesets/{rs['id']}/versions", json=body, headers=a.h("analyst")).status_code == 403
    assert c.post(f"/rulesets/{rs['id']}/versions", json=body, headers=a.h("operator")).status_code == 403
    v1 = c.post(f"/rulesets/{rs['id']}/versions", json=body, headers=a.h("approver"))
    assert v1.status_code == 201, v1.text
    v1 = v1.json()
    assert (v1["version"], v1["author_id"], v1["publisher_id"]) == (1, a.users["analyst"], a.users["approver"])
    assert v1["tariff_names"] == ["standard"] and v1["currency"] == "EUR"
    r = c.post(f"/rulesets/{rs['id']}/versions", json=body, headers=a.h("approver"))
    assert r.status_code == 409 and r.json()["code"] == "version_already_published"
    d2 = c.post(f"/rulesets/{rs['id']}/drafts", json={"source": src_v2}, headers=a.h("analyst")).json()
    v2 = c.post(f"/rulesets/{rs['id']}/versions", json={"draft_id": d2["id"], "effective_from": "2026-07-01T00:00:00Z",
                                                        "note": "energy price up"}, headers=a.h()).json()
    assert v2["version"] == 2
    listed = c.get(f"/rulesets/{rs['id']}/versions", headers=a.h("auditor")).json()["items"]
    assert [v["version"] for v in listed] == [1, 2]
    detail = c.get(f"/ruleset-versions/{v2['id']}", headers=a.h("auditor")).json()
    assert detail["source"] == src_v2
    diff = c.get(f"/rulesets/{rs['id']}/diff", params={"from_version": 1, "to_version": 2}, headers=a.h()).json()["diff"]
    assert "-  energy 0.49 per kWh" in diff and "+  energy 0.59 per kWh" in diff and "four_eyes@v1" in diff
    r = c.get(f"/rulesets/{rs['id']}/diff", params={"from_version": 1, "to_version": 9}, headers=a.h())
    assert r.status_code == 404 and r.json()["code"] == "ruleset_version_not_found"
    # versions are immutable: the API has no route that changes or deletes one
    spec = c.get("/schema/openapi.json").json()
    assert set(spec["paths"]["/ruleset-versions/{version_id}"]) == {"get"}


def test_simulate_against_source_draft_and_version(env: Env) -> None:
    c, a = env.client, env.a
    h = a.h("analyst")
    by_source = c.post("/rulesets/simulate", json={"source": DEMO_RULESET_V2, "sessions": [SESSION]}, headers=h).json()
    s = by_source["sessions"][0]
    assert by_source["ok"] and s["ok"], by_source
    assert s["result"]["totals"]["net"] == "6.25" and s["result"]["lines"] and "trace" in s["result"]
    assert all(isinstance(ln["net"], str) for ln in s["result"]["lines"])
    by_version = c.post("/rulesets/simulate", json={"version_id": a.ids["version_id"], "sessions": [
        SESSION, dict(SESSION, id="sim-bad", end="2026-03-01T09:00:00Z")]}, headers=h).json()
    good, bad = by_version["sessions"]
    assert good["result"]["totals"]["net"] == "5.25"
    assert bad["ok"] is False and bad["code"] == "invalid_session"
    by_draft = c.post("/rulesets/simulate", json={"draft_id": a.ids["draft_id"], "sessions": [SESSION],
                                                  "tariff": "nope"}, headers=h).json()
    assert by_draft["sessions"][0]["code"] == "rating_failed"
    broken = c.post("/rulesets/simulate", json={"source": "ruleset x", "sessions": [SESSION]}, headers=h).json()
    assert broken["ok"] is False and broken["diagnostics"]
    r = c.post("/rulesets/simulate", json={"sessions": [SESSION]}, headers=h)
    assert r.status_code == 422 and r.json()["code"] == "simulate_needs_one_source"


def test_a_version_in_another_currency_than_the_accounts_is_refused(env: Env) -> None:
    """Billing prices every active account with the tenant's version in force: a CHF version for
    EUR accounts would bill them in the wrong currency (issue 11, defect 3/4: refused at creation)."""
    c, a = env.client, env.a
    rs = c.post("/rulesets", json={"name": "swiss"}, headers=a.h()).json()
    src = DEMO_RULESET.replace("ruleset demo currency EUR", "ruleset swiss currency CHF")
    d = c.post(f"/rulesets/{rs['id']}/drafts", json={"source": src}, headers=a.h("analyst")).json()
    assert d["ok"], d
    r = c.post(f"/rulesets/{rs['id']}/versions", json={"draft_id": d["id"], "effective_from": "2030-01-01T00:00:00Z"},
               headers=a.h("approver"))
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "currency_mismatch" and body["errors"][0]["key"] == "draft_id", body
    assert "'CHF'" in body["detail"] and a.ids["billing_account_id"] in body["detail"], body
