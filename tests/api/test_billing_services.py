"""Service items and period discounts of a billing account through the API: ruleset services by
name or explicit prices, validation with stable problem codes, cursor pages, ending, audit entries,
roles and tenants."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import DEMO_RULESET, Env, Tenantry, _ok, requires_dsl

pytestmark = requires_dsl

SERVICES = DEMO_RULESET + """
service supervision "Charger supervision" {
  ac_charger 9.00 per month
  dc_charger 19.00 per month "DC charger supervision"
  rfid_card 5.00 each
}
"""


def _publish(env: Env, t: Tenantry, source: str, effective_from: str) -> None:
    c = env.client
    draft = _ok(c.post(f"/rulesets/{t.ids['ruleset_id']}/drafts", json={"source": source}, headers=t.h("analyst")))
    assert draft["ok"], draft
    _ok(c.post(f"/rulesets/{t.ids['ruleset_id']}/versions",
               json={"draft_id": draft["id"], "effective_from": effective_from}, headers=t.h("approver")))


@pytest.fixture(scope="module")
def svc_env(sqlite_env: Env) -> Env:
    _publish(sqlite_env, sqlite_env.a, SERVICES, "2026-02-01T00:00:00Z")
    return sqlite_env


def _items(env: Env, t: Tenantry, kind: str = "service-items", **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        q = {**params, **({"cursor": cursor} if cursor else {})}
        page = _ok(env.client.get(f"/billing/accounts/{t.ids['billing_account_id']}/{kind}", params=q,
                                  headers=t.h("auditor")))
        out += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return out


def test_service_items_by_name_and_by_price(svc_env: Env) -> None:
    env, a = svc_env, svc_env.a
    url = f"/billing/accounts/{a.ids['billing_account_id']}/service-items"
    named = _ok(env.client.post(url, json={"service": "supervision.ac_charger", "quantity": "3",
                                           "valid_from": "2026-03-01"}, headers=a.h("operator")), 201)
    assert named["service"] == "supervision.ac_charger" and named["unit_price"] is None and named["per"] is None
    assert named["quantity"] == "3" and named["currency"] == "EUR" and named["valid_to"] is None
    sim = _ok(env.client.post(url, json={"description": "SIM card", "unit_price": "2.50", "per": "month",
                                         "tax_rate": "19", "valid_from": "2026-03-01", "currency": "EUR"},
                              headers=a.h()), 201)
    assert (sim["service"], sim["unit_price"], sim["per"], sim["tax_rate"]) == (None, "2.50", "month", "19")
    # two per page: the cursor walks both, oldest first
    page = _ok(env.client.get(url, params={"limit": 1}, headers=a.h("approver")))
    assert [i["id"] for i in page["items"]] == [named["id"]] and page["next_cursor"]
    assert [i["id"] for i in _items(env, a)][:2] == [named["id"], sim["id"]]
    # update: quantity, then switch the SIM to a price per year
    upd = _ok(env.client.patch(f"/billing/service-items/{sim['id']}", json={"unit_price": "30", "per": "year"},
                               headers=a.h("operator")))
    assert (upd["unit_price"], upd["per"], upd["description"]) == ("30", "year", "SIM card")
    upd = _ok(env.client.patch(f"/billing/service-items/{named['id']}", json={"quantity": "4"}, headers=a.h()))
    assert upd["quantity"] == "4" and upd["service"] == "supervision.ac_charger"
    # end it: not billed from April on; ending twice is a conflict
    ended = _ok(env.client.post(f"/billing/service-items/{sim['id']}/end", json={"valid_to": "2026-04-01"},
                                headers=a.h("operator")))
    assert ended["valid_to"] == "2026-04-01"
    r = env.client.post(f"/billing/service-items/{sim['id']}/end", json={}, headers=a.h())
    assert r.status_code == 409 and r.json()["code"] == "already_ended"
    active = {i["id"] for i in _items(env, a, active_on="2026-04-15")}
    assert named["id"] in active and sim["id"] not in active
    # every write is in the audit log
    audit = _ok(env.client.get("/audit", params={"entity_id": sim["id"]}, headers=a.h("auditor")))
    assert [e["action"] for e in audit["items"]] == ["service_item.create", "service_item.update",
                                                     "service_item.end"]
    assert audit["items"][1]["after"]["per"] == "year" and audit["items"][1]["before"]["per"] == "month"


@pytest.mark.parametrize("body, status, code", [
    ({"service": "supervision.ac_chargr", "valid_from": "2026-03-01"}, 422, "unknown_service"),
    ({"service": "supervision.ac_charger", "unit_price": "1", "valid_from": "2026-03-01"}, 422,
     "service_item_priced_twice"),
    ({"description": "SIM", "unit_price": "2.50", "valid_from": "2026-03-01"}, 422, "service_item_price_missing"),
    ({"unit_price": "2.50", "per": "month", "tax_rate": "19", "valid_from": "2026-03-01"}, 422,
     "service_item_description_missing"),
    ({"service": "supervision.ac_charger", "quantity": "0", "valid_from": "2026-03-01"}, 422, "invalid_quantity"),
    ({"service": "supervision.ac_charger", "valid_from": "2026-03-01", "valid_to": "2026-03-01"}, 422,
     "end_before_start"),
    ({"service": "supervision.ac_charger", "valid_from": "2026-03-01", "currency": "CHF"}, 422,
     "currency_mismatch"),
    ({"description": "x", "unit_price": "1", "per": "week", "tax_rate": "19", "valid_from": "2026-03-01"}, 400,
     None),
    ({"description": "x", "unit_price": "-1", "per": "month", "tax_rate": "19", "valid_from": "2026-03-01"}, 400,
     None),
    ({"description": "x", "unit_price": "1", "per": "month", "tax_rate": "190", "valid_from": "2026-03-01"}, 422,
     "invalid_tax_rate"),
    # the first version (2020) has no service block, the one from February 2026 has
    ({"service": "supervision.ac_charger", "valid_from": "2019-01-01"}, 201, None),
])
def test_service_item_refusals(svc_env: Env, body: dict[str, Any], status: int, code: str | None) -> None:
    a = svc_env.a
    r = svc_env.client.post(f"/billing/accounts/{a.ids['billing_account_id']}/service-items", json=body,
                            headers=a.h())
    assert r.status_code in ((status, 422) if status == 400 else (status,)), r.text
    if status >= 400:
        assert r.headers["content-type"].startswith("application/problem+json")
    if code:
        assert r.json()["code"] == code, r.text


def test_discounts(svc_env: Env) -> None:
    env, a = svc_env, svc_env.a
    url = f"/billing/accounts/{a.ids['billing_account_id']}/discounts"
    pct = _ok(env.client.post(url, json={"description": "10% framework agreement", "percent": "10",
                                         "valid_from": "2026-03-01"}, headers=a.h("operator")), 201)
    assert (pct["percent"], pct["amount"], pct["currency"]) == ("10", None, "EUR")
    fixed = _ok(env.client.post(url, json={"description": "Goodwill", "amount": "25.00", "tax_rate": "19",
                                           "valid_from": "2026-03-01", "valid_to": "2026-04-01"}, headers=a.h()), 201)
    assert (fixed["amount"], fixed["tax_rate"], fixed["valid_to"]) == ("25.00", "19", "2026-04-01")
    ids = [d["id"] for d in _items(env, a, "discounts")]
    assert ids.index(pct["id"]) < ids.index(fixed["id"])
    assert fixed["id"] not in {d["id"] for d in _items(env, a, "discounts", active_on="2026-04-01")}
    ended = _ok(env.client.post(f"/billing/discounts/{pct['id']}/end", json={"valid_to": "2026-06-01"},
                                headers=a.h("operator")))
    assert ended["valid_to"] == "2026-06-01"
    for body, code in [({"description": "x", "valid_from": "2026-03-01"}, "discount_kind"),
                       ({"description": "x", "percent": "5", "amount": "1", "valid_from": "2026-03-01"},
                        "discount_kind"),
                       ({"description": "x", "percent": "0", "valid_from": "2026-03-01"}, "invalid_percent"),
                       ({"description": "x", "percent": "101", "valid_from": "2026-03-01"}, "invalid_percent"),
                       ({"description": "x", "percent": "5", "tax_rate": "19", "valid_from": "2026-03-01"},
                        "discount_tax_rate_with_percent"),
                       ({"description": "x", "amount": "0", "valid_from": "2026-03-01"}, "invalid_amount"),
                       ({"description": "x", "amount": "5", "currency": "USD", "valid_from": "2026-03-01"},
                        "currency_mismatch")]:
        r = env.client.post(url, json=body, headers=a.h())
        assert r.status_code == 422 and r.json()["code"] == code, (body, r.text)
    r = env.client.post(f"/billing/discounts/{fixed['id']}/end", json={"valid_to": "2026-02-01"}, headers=a.h())
    assert r.status_code == 409  # already ends on 2026-04-01


def test_roles_and_tenants(svc_env: Env) -> None:
    env, a, b = svc_env, svc_env.a, svc_env.b
    url = f"/billing/accounts/{a.ids['billing_account_id']}/discounts"
    body = {"description": "x", "percent": "5", "valid_from": "2026-03-01"}
    for role in ("approver", "auditor", "analyst", "partner"):
        assert env.client.post(url, json=body, headers=a.h(role)).status_code == 403
    assert env.client.get(url, headers=a.h("partner")).status_code == 403
    # B cannot see or touch A's account, items or discounts
    assert env.client.get(url, headers=b.h()).status_code == 404
    assert env.client.post(url, json=body, headers=b.h()).status_code == 404
    d = _ok(env.client.post(url, json=body, headers=a.h()), 201)
    assert env.client.post(f"/billing/discounts/{d['id']}/end", json={}, headers=b.h()).status_code == 404
    item = _ok(env.client.post(url.replace("discounts", "service-items"),
                               json={"service": "supervision.rfid_card", "valid_from": "2026-03-01"}, headers=a.h()),
               201)
    assert env.client.patch(f"/billing/service-items/{item['id']}", json={"quantity": "2"},
                            headers=b.h()).status_code == 404
    # B's own ruleset has no service block: naming A's service is refused for B's account
    r = env.client.post(f"/billing/accounts/{b.ids['billing_account_id']}/service-items",
                        json={"service": "supervision.rfid_card", "valid_from": "2026-03-01"}, headers=b.h())
    assert r.status_code == 422 and r.json()["code"] == "unknown_service"
    # ending today by default (the account's zone)
    ended = _ok(env.client.post(f"/billing/discounts/{d['id']}/end", json={}, headers=a.h("operator")))
    assert ended["valid_to"] is not None
