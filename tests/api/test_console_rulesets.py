"""The console's rulesets over HTTP: the live check's JSON (the checker's own diagnostics), saving
a draft, simulating the editor's text against stored sessions beside the version in force,
publishing with four eyes, and the diff between versions; by role and tenant (the route walks in
test_console.py cover every route of ``api.console.HTML_ROUTES``)."""

from __future__ import annotations

import html
import re

import pytest

from tests.api.conftest import DEMO_RULESET, Env, requires_dsl
from tests.api.test_console import Person, _email, console  # noqa: F401  (the module's fixture)

pytestmark = requires_dsl


def _check(p: Person, source: str, **kw: object) -> object:
    return p.c.post("/console/rulesets/check", json={"source": source},
                    headers=p._h({"X-CSRF-Token": p.csrf, **kw.pop("headers", {})}), follow_redirects=False)  # type: ignore[arg-type]


def test_live_check_answers_the_checkers_diagnostics(console: Env) -> None:  # noqa: F811
    p = Person(console, _email(console.a, "analyst"))
    broken = DEMO_RULESET.replace("energy 0.49 per kWh", "energy 0.49 per kWhh")
    r = _check(p, broken)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is False and body["errors"] == 1 and body["warnings"] == 0
    [d] = body["diagnostics"]
    assert (d["code"], d["line"], d["col"], d["end_col"]) == ("E101", 5, 19, 23)
    assert d["message"] == "unexpected 'kWhh', expected a unit" and d["hint"] == "did you mean 'kWh'?"
    # the text `evbill check` prints: file:line:col, the line and the caret under the span
    assert d["text"].splitlines()[0] == "editor.evb:5:19: error[E101]: unexpected 'kWhh', expected a unit"
    assert "                   ^^^^" in d["text"]
    clean = _check(p, DEMO_RULESET).json()
    assert clean == {"ok": True, "errors": 0, "warnings": 0, "diagnostics": []}
    # without the session's token (a cross-site request) nothing is answered
    r = p.c.post("/console/rulesets/check", json={"source": broken}, headers=p._h(), follow_redirects=False)
    assert r.status_code == 403
    # odd bodies are 422 problems, never 500
    for body_text in ("not json", '{"source": 5}', "[]"):
        r = p.c.post("/console/rulesets/check", content=body_text,
                     headers=p._h({"X-CSRF-Token": p.csrf, "Content-Type": "application/json"}))
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json"), body_text
    assert _check(p, "x" * 200_001).status_code == 422
    # a partner has no ruleset pages
    partner = Person(console, _email(console.a, "partner"))
    assert _check(partner, DEMO_RULESET).status_code == 403


def test_ruleset_pages_list_versions_and_show_the_source(console: Env) -> None:  # noqa: F811
    a = console.a
    p = Person(console, _email(a, "auditor"))
    page = html.unescape(p.get("/console/rulesets").text)
    assert f'href="/console/rulesets/{a.ids["ruleset_id"]}">demo</a>' in page
    assert "Version 1 · 01.01.2020" in page
    page = p.get(f"/console/rulesets/{a.ids['ruleset_id']}")
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert "energy 0.49 per kWh" in text and "Keine Fehler, keine Warnungen." in text
    # an auditor reads but gets neither save nor simulate nor publish
    assert "/drafts\"" not in page.text and "/simulate" not in page.text and "/publish" not in page.text
    # the no-script check: the same diagnostics in the page
    r = p.post(f"/console/rulesets/{a.ids['ruleset_id']}/check",
               {"source": DEMO_RULESET.replace("energy 0.49 per kWh", "energy 0.49 per kWhh")})
    text = html.unescape(r.text)
    assert r.status_code == 200 and "Fehler: 1, Warnungen: 0" in text
    assert 'data-line="5" data-col="19"' in r.text and "Hinweis: did you mean 'kWh'?" in text
    # and in English
    p.post("/console/language", {"language": "en", "next": "/console/rulesets"})
    r = p.post(f"/console/rulesets/{a.ids['ruleset_id']}/check", {"source": "ruleset demo currency EUR"})
    text = html.unescape(r.text)
    assert "Ruleset text (DSL)" in text and "Errors: 1, warnings: 0" in text and "error[E206]" in text, text[-3000:]


def test_simulate_the_editors_text_against_sessions(console: Env) -> None:  # noqa: F811
    a = console.a
    p = Person(console, _email(a, "analyst"))
    v2 = DEMO_RULESET.replace("energy 0.49 per kWh", "energy 0.59 per kWh")
    path = f"/console/rulesets/{a.ids['ruleset_id']}/simulate"
    # S-1: 10 kWh, rated 5.25 net by version 1; the draft makes it 6.25
    r = p.post(path, {"source": v2, "session": [a.ids["session_id"], a.ids["other_session_id"]]})  # type: ignore[dict-item]
    assert r.status_code == 200, r.text[-800:]
    text = html.unescape(r.text)
    [row] = re.findall(rf'<tr class="changed" id="sim-{a.ids["session_id"]}">(.*?)</tr>', text, re.DOTALL)
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL)]
    assert cells[0] == "S-1" and cells[2] == "1"
    assert cells[3:] == ["5,25\xa0€", "6,25\xa0€", "+1,00\xa0€"], cells
    assert "2 von 2 Ladevorgängen ändern sich." in text
    # and what the text changes against the version in force
    assert '<span class="d-del">-  energy 0.49 per kWh</span><span class="d-add">+  energy 0.59 per kWh</span>' in text
    # S-2: 20.5 kWh, 10.40 net before, 12.45 with the draft; the totals row adds both
    assert re.search(r"Summe EUR</th><td[^>]*>15,65\xa0€</td>\s*<td[^>]*>18,70\xa0€</td><td[^>]*>\+3,05\xa0€", text), text
    # the same text as the version: nothing changes
    r = p.post(path, {"source": DEMO_RULESET, "session": a.ids["session_id"]})
    assert "0 von 1 Ladevorgängen ändern sich." in html.unescape(r.text) and "unverändert" in r.text
    assert "Der Text ist derselbe wie der von Version 1." in html.unescape(r.text)
    # a text with errors is not simulated; no session chosen neither
    r = p.post(path, {"source": "ruleset demo currency EUR timezone Nowhere/Else\ntariff x {", "session":
                      a.ids["session_id"]})
    assert r.status_code == 422 and "erst beheben" in html.unescape(r.text)
    r = p.post(path, {"source": v2})
    assert r.status_code == 422 and "mindestens einen Ladevorgang" in r.text
    # another tenant's session is not rated (nor shown)
    r = p.post(path, {"source": v2, "session": console.b.ids["session_id"]})
    assert r.status_code == 200 and console.b.ids["session_id"] not in r.text and "0 von 0" in html.unescape(r.text)


def test_save_a_draft_and_publish_it_with_four_eyes(console: Env) -> None:  # noqa: F811
    a = console.a
    rs = a.ids["ruleset_id"]
    analyst = Person(console, _email(a, "analyst"))
    v2 = DEMO_RULESET.replace("start_fee 0.35", "start_fee 0.45")
    r = analyst.post(f"/console/rulesets/{rs}/drafts", {"source": v2})
    assert r.status_code == 303 and "msg=draft_saved" in r.headers["location"], r.text[-500:]
    draft_id = re.search(r"draft=(rsd_[\w]+)", r.headers["location"]).group(1)  # type: ignore[union-attr]
    page = html.unescape(analyst.get(r.headers["location"]).text)
    assert "Entwurf gespeichert." in page and "start_fee 0.45" in page
    # a draft naming another ruleset is refused with the API's problem, shown at the editor
    r = analyst.post(f"/console/rulesets/{rs}/drafts", {"source": v2.replace("ruleset demo", "ruleset other")})
    assert r.status_code == 422 and "the header names ruleset 'other'" in html.unescape(r.text)
    # the admin is no author of it but the analyst is: an analyst may not publish at all (role)
    assert analyst.post(f"/console/rulesets/{rs}/drafts/{draft_id}/publish",
                        {"effective_from": "2030-01-01T00:00"}).status_code == 403
    # an admin who wrote a draft may not publish it either (four eyes, as the API)
    admin = Person(console, _email(a, "admin"))
    r = admin.post(f"/console/rulesets/{rs}/drafts", {"source": v2.replace("0.45", "0.55")})
    own = re.search(r"draft=(rsd_[\w]+)", r.headers["location"]).group(1)  # type: ignore[union-attr]
    page = html.unescape(admin.get(f"/console/rulesets/{rs}").text)
    assert f'action="/console/rulesets/{rs}/drafts/{own}/publish"' not in page and "jemand anderes muss" in page
    r = admin.post(f"/console/rulesets/{rs}/drafts/{own}/publish", {"effective_from": "2030-01-01T00:00"})
    assert r.status_code == 403 and "Vier-Augen-Prinzip" in html.unescape(r.text)
    approver = Person(console, _email(a, "approver"))
    r = approver.post(f"/console/rulesets/{rs}/drafts/{draft_id}/publish", {"effective_from": "not a date"})
    assert r.status_code == 422 and "gültiges Datum" in html.unescape(r.text)
    r = approver.post(f"/console/rulesets/{rs}/drafts/{draft_id}/publish",
                      {"effective_from": "2030-01-01T00:00", "note": "start fee up"})
    assert r.status_code == 303 and r.headers["location"].endswith("msg=published"), r.text[-500:]
    versions = console.client.get(f"/rulesets/{rs}/versions", headers=a.h()).json()["items"]
    last = versions[-1]
    # the form's local time is the tenant's zone (Europe/Berlin: UTC+1 in January)
    assert last["draft_id"] == draft_id and last["publisher_id"] == a.users["approver"]
    assert last["effective_from"].startswith("2029-12-31T23:00") and last["note"] == "start fee up"
    # history and diff
    page = html.unescape(approver.get(f"/console/rulesets/{rs}/diff").text)
    n = last["version"]
    assert f"Version {n - 1} → Version {n}" in page
    assert '<span class="d-del">-  start_fee 0.35</span>' in page and '<span class="d-add">+  start_fee 0.45</span>' in page
    assert approver.get(f"/console/rulesets/{rs}/diff", params={"a": "x"}).status_code == 400


@pytest.mark.parametrize("path", ["/console/rulesets/{rs}", "/console/rulesets/{rs}/diff"])
def test_other_tenants_rulesets_are_not_found(console: Env, path: str) -> None:  # noqa: F811
    p = Person(console, _email(console.a, "admin"))
    assert p.get(path.format(rs=console.b.ids["ruleset_id"])).status_code == 404
    r = p.get(f"/console/rulesets/{console.a.ids['ruleset_id']}", params={"draft": console.b.ids["draft_id"]})
    assert r.status_code == 404
    assert console.b.ids["ruleset_id"] not in p.get("/console/rulesets").text
