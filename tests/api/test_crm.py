"""CRM resources through the API: CRUD, cursor pages, search and filters, problem+json errors,
audit entries with before/after."""

from __future__ import annotations

from tests.api.conftest import Env

PROBLEM = "application/problem+json"


def _problem(r, status: int, code: str) -> None:  # type: ignore[no-untyped-def]
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["code"] == code, body
    assert body["status"] == status and "Traceback" not in r.text


def test_customer_crud_pages_search_and_filters(env: Env) -> None:
    c, h = env.client, env.a.h("operator")
    made = [c.post("/customers", json={"name": f"Paging {i}", "city": "Köln" if i % 2 else "Bonn",
                                       "groups": ["fleet_x"] if i == 3 else []}, headers=h).json()["id"]
            for i in range(5)]
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, "q": "paging"} | ({"cursor": cursor} if cursor else {})
        page = c.get("/customers", params=params, headers=h).json()
        seen += [x["id"] for x in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == made and pages == 3
    assert [x["id"] for x in c.get("/customers", params={"group": "fleet_x"}, headers=h).json()["items"]] == [made[3]]
    assert len(c.get("/customers", params={"q": "KÖLN".lower()}, headers=h).json()["items"]) >= 2
    r = c.patch(f"/customers/{made[0]}", json={"email": "p0@example.test", "kind": "business",
                                                "company_name": "P0 GmbH"}, headers=h)
    assert r.status_code == 200 and r.json()["company_name"] == "P0 GmbH"
    assert c.delete(f"/customers/{made[4]}", headers=h).status_code == 204
    _problem(c.get(f"/customers/{made[4]}", headers=h), 404, "customer_not_found")
    audit = c.get("/audit", params={"entity_id": made[0]}, headers=env.a.h("auditor")).json()["items"]
    upd = next(e for e in audit if e["action"] == "customer.update")
    assert upd["before"] == {"email": "", "kind": "private", "company_name": "", "updated_at": upd["before"]["updated_at"]}
    assert upd["after"]["company_name"] == "P0 GmbH" and upd["actor_role"] == "operator"


def test_bad_input_is_a_problem_never_a_500(env: Env) -> None:
    c, h = env.client, env.a.h()
    _problem(c.post("/customers", content=b"{not json", headers={**h, "Content-Type": "application/json"}),
             400, "malformed_body")
    _problem(c.post("/customers", json={"name": 123}, headers=h), 400, "validation_failed")
    _problem(c.post("/customers", json={"name": "x", "nmae": "typo"}, headers=h), 400, "validation_failed")
    _problem(c.post("/customers", json=[1, 2], headers=h), 400, "validation_failed")
    _problem(c.get("/customers", params={"limit": 0}, headers=h), 400, "validation_failed")
    _problem(c.get("/customers", params={"cursor": "!!!"}, headers=h), 422, "invalid_cursor")
    _problem(c.get("/customers/cus_nope", headers=h), 404, "customer_not_found")
    _problem(c.post("/customers", json={"name": "B", "kind": "business"}, headers=h), 422, "company_name_required")
    # money and power are decimal strings: a JSON number is refused
    _problem(c.post("/evses", json={"location_id": env.a.ids["location_id"], "evse_uid": "F1", "max_power_kw": 22.5},
                    headers=h), 400, "validation_failed")
    _problem(c.post("/tokens", json={"uid": f"TOK-{env.a.name}"}, headers=h), 409, "already_exists")
    _problem(c.post("/contracts", json={"account_id": env.a.ids["billing_account_id"],
                                        "customer_id": env.a.ids["customer_id"], "product": "p",
                                        "start_date": "2026-02-01", "end_date": "2026-01-01"}, headers=h),
             422, "contract_end_before_start")
    # a zone of the right shape that does not exist is bad master data (422) on create and update alike
    _problem(c.post("/locations", json={"name": "x", "country": "DE", "timezone": "Mars/Olympus"}, headers=h),
             422, "unknown_timezone")
    _problem(c.patch(f"/locations/{env.a.ids['location_id']}", json={"timezone": "Mars/Olympus"}, headers=h),
             422, "unknown_timezone")
    _problem(c.get("/nowhere", headers=h), 404, "not_found")
    _problem(c.put("/customers", json={}, headers=h), 405, "method_not_allowed")


def test_decimal_fields_come_back_as_strings(env: Env) -> None:
    c, h = env.client, env.a.h()
    evse = c.get(f"/evses/{env.a.ids['evse_id']}", headers=h).json()
    assert evse["max_power_kw"] == "22"
    loc = c.post("/locations", json={"name": "Geo", "country": "DE", "timezone": "Europe/Berlin",
                                     "latitude": "52.520008", "longitude": "13.404954"}, headers=h).json()
    assert (loc["latitude"], loc["longitude"]) == ("52.520008", "13.404954")
    pts = c.get(f"/price-series/{env.a.ids['price_series_id']}/points", headers=h).json()["items"]
    assert [p["value"] for p in pts] == ["0.1012", "0.0950"]


def test_tenant_profile_and_branding(env: Env) -> None:
    c, h = env.client, env.a.h()
    r = c.patch("/tenant", json={"legal_name": "Alpha Charging GmbH", "vat_id": "DE136695976",
                                 "creditor_id": "DE98ZZZ09999999999", "iban": "DE89370400440532013000",
                                 "branding": {"primary_color": "#004488"}}, headers=h)
    assert r.status_code == 200, r.text
    t = c.get("/tenant", headers=env.a.h("auditor")).json()
    assert t["branding"] == {"primary_color": "#004488"} and t["id"] == env.a.tenant_id
    assert c.get("/audit/verify", headers=h).json()["ok"]


def test_charge_point_credentials_are_shown_once_and_stored_hashed(env: Env) -> None:
    from sqlalchemy.orm import Session

    from store.tenants import verify_charge_point

    c, a = env.client, env.a
    r = c.post(f"/charge-points/{a.ids['charge_point_id']}/password", headers=a.h("operator"))
    assert r.status_code == 201, r.text
    cred = r.json()
    assert 16 <= len(cred["password"]) <= 40
    assert "password" not in c.get(f"/charge-points/{a.ids['charge_point_id']}", headers=a.h()).text
    with Session(env.engine) as db:
        assert verify_charge_point(db, cred["identity"], cred["password"]) == a.tenant_id
        assert verify_charge_point(db, cred["identity"], "wrong") is None


def test_item_reads_match_list_entries(env: Env) -> None:
    """The generated GET-by-id routes answer with pre-encoded JSON (``api.crud.JsonBody``): the same
    fields, value for value, as the list route's entry that goes through Litestar's encoder."""
    c, h = env.client, env.a.h("admin")
    paths = c.get("/schema/openapi.json").json()["paths"]
    compared = 0
    for path, ops in paths.items():
        get = ops.get("get", {})
        if not get.get("operationId", "").startswith("list_") or f"{path}/{{" not in "".join(paths):
            continue
        item_path = next((p for p in paths if p.startswith(f"{path}/{{") and p.count("/") == path.count("/") + 1
                          and paths[p].get("get", {}).get("operationId", "").startswith("get_")), None)
        listed = c.get(path, headers=h)
        if item_path is None or listed.status_code != 200 or not listed.json().get("items"):
            continue
        for entry in listed.json()["items"][:3]:
            r = c.get(item_path.split("{")[0] + str(entry["id"]), headers=h)
            assert r.status_code == 200, (item_path, r.text)
            assert r.headers["content-type"] == "application/json"
            body = r.json()  # a detail route may show more than its list entry (sessions)
            assert {k: body.get(k) for k in entry} == entry, item_path
            compared += 1
    assert compared >= 10
