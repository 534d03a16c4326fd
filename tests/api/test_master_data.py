"""Master data is checked where it enters (issue 11, defect 4): time zones, currencies, countries,
IBANs, BICs, VAT IDs and creditor ids by the libraries that know them; a value of the right shape
that they refuse is a 422 problem naming the field and the library's reason, on create and on
update alike. Before, each of these answered 201 and failed later (the cycle with a 500)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Env


def _problem(r: Any, status: int, code: str, *keys: str) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body = r.json()
    assert body["code"] == code, body
    if keys:
        assert sorted(e["key"] for e in body["errors"]) == sorted(keys), body
        for e in body["errors"]:
            assert e["message"] and e["key"] in body["detail"], body
    return dict(body)


def _customer(env: Env) -> str:
    r = env.client.post("/customers", json={"name": "Data Check"}, headers=env.a.h())
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_billing_account_zone_and_currency(env: Env) -> None:
    c, h = env.client, env.a.h()
    cus = _customer(env)
    body = _problem(c.post("/billing-accounts", json={"customer_id": cus, "timezone": "Mars/Olympus",
                                                      "currency": "XYZ"}, headers=h),
                    422, "invalid_master_data", "timezone", "currency")
    assert {e["code"] for e in body["errors"]} == {"unknown_timezone", "unknown_currency"}
    assert "'Mars/Olympus'" in body["detail"] and "ISO 4217" in body["detail"]
    _problem(c.post("/billing-accounts", json={"customer_id": cus, "timezone": "Mars/Olympus"}, headers=h),
             422, "unknown_timezone", "timezone")
    # ISO 4217's test and "no currency" codes are not money an invoice can be in
    for code in ("XYZ", "XTS", "XXX", "XAU"):
        _problem(c.post("/billing-accounts", json={"customer_id": cus, "currency": code}, headers=h),
                 422, "unknown_currency", "currency")
    hint = _problem(c.post("/billing-accounts", json={"customer_id": cus, "timezone": "europe/berlin"}, headers=h),
                    422, "unknown_timezone", "timezone")
    assert "did you mean 'Europe/Berlin'" in hint["detail"]
    # the wrong shape stays a 400 (not a currency code at all)
    _problem(c.post("/billing-accounts", json={"customer_id": cus, "currency": "euro"}, headers=h),
             400, "validation_failed")
    r = c.post("/billing-accounts", json={"customer_id": cus, "timezone": "Europe/Vienna", "currency": "EUR",
                                          "country": "AT", "invoice_email": "ap@example.at"}, headers=h)
    assert r.status_code == 201, r.text
    acc = r.json()["id"]
    _problem(c.patch(f"/billing-accounts/{acc}", json={"timezone": "Mars/Olympus"}, headers=h),
             422, "unknown_timezone", "timezone")
    _problem(c.patch(f"/billing-accounts/{acc}", json={"currency": "XYZ"}, headers=h),
             422, "unknown_currency", "currency")
    _problem(c.patch(f"/billing-accounts/{acc}", json={"country": "ZZ"}, headers=h), 422, "unknown_country", "country")
    _problem(c.patch(f"/billing-accounts/{acc}", json={"invoice_email": "not an address"}, headers=h),
             422, "invalid_email", "invoice_email")
    assert c.get(f"/billing-accounts/{acc}", headers=h).json()["timezone"] == "Europe/Vienna"
    r = c.patch(f"/billing-accounts/{acc}", json={"timezone": "Europe/Berlin"}, headers=h)
    assert r.status_code == 200 and r.json()["timezone"] == "Europe/Berlin", r.text


def test_customer_vat_id_and_country(env: Env) -> None:
    c, h = env.client, env.a.h()
    base = {"name": "Krause GmbH", "kind": "business", "company_name": "Krause GmbH"}
    body = _problem(c.post("/customers", json={**base, "vat_id": "DE000000000"}, headers=h),
                    422, "invalid_vat_id", "vat_id")
    assert "invalid format" in body["detail"]
    body = _problem(c.post("/customers", json={**base, "vat_id": "DE123456789"}, headers=h),
                    422, "invalid_vat_id", "vat_id")
    assert "checksum" in body["detail"]  # python-stdnum's reason, passed on
    _problem(c.post("/customers", json={**base, "country": "ZZ"}, headers=h), 422, "unknown_country", "country")
    r = c.post("/customers", json={**base, "vat_id": "de 136 695 976", "country": "DE"}, headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["vat_id"] == "DE136695976"  # stored compact
    cus = r.json()["id"]
    # outside the EU: the country's own python-stdnum module
    for vat, stored in (("CHE-116.281.710 MWST", "CHE116281710MWST"), ("GB980780684", "GB980780684"),
                        ("NO 995 525 828 MVA", "NO995525828MVA"), ("EL094259216", "EL094259216")):
        r = c.patch(f"/customers/{cus}", json={"vat_id": vat}, headers=h)
        assert r.status_code == 200 and r.json()["vat_id"] == stored, r.text
    _problem(c.patch(f"/customers/{cus}", json={"vat_id": "CHE-116.281.711 MWST"}, headers=h),
             422, "invalid_vat_id", "vat_id")
    _problem(c.patch(f"/customers/{cus}", json={"vat_id": "DE000000000"}, headers=h), 422, "invalid_vat_id", "vat_id")
    _problem(c.patch(f"/customers/{cus}", json={"email": "a@b@"}, headers=h), 422, "invalid_email", "email")


def test_partner_bank_details(env: Env) -> None:
    c, h = env.client, env.a.h()
    base = {"kind": "site_host", "name": "Hotel Check"}
    body = _problem(c.post("/partners", json={**base, "iban": "DE00123456780000000000"}, headers=h),
                    422, "invalid_iban", "iban")
    assert "checksum" in body["detail"]
    _problem(c.post("/partners", json={**base, "vat_id": "DE000000000", "iban": "DE00123456780000000000"},
                    headers=h), 422, "invalid_master_data", "iban", "vat_id")
    r = c.post("/partners", json={**base, "iban": "de89 3704 0044 0532 0130 00", "vat_id": "DE136695976"},
               headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["iban"] == "DE89370400440532013000"
    _problem(c.patch(f"/partners/{r.json()['id']}", json={"iban": "XX89370400440532013000"}, headers=h),
             422, "invalid_iban", "iban")


def test_agreement_terms_currency(env: Env) -> None:
    """The revenue-share terms' currency was checked for three capital letters only."""
    c, a = env.client, env.a
    r = c.post("/agreements", json={"partner_id": a.ids["partner_id"], "kind": "revenue_share",
                                    "valid_from": "2026-03-01", "terms": {"share_percent": "30", "currency": "XYZ"}},
               headers=a.h())
    body = _problem(r, 422, "agreement_terms_invalid")
    assert "'XYZ' is not an ISO 4217 currency" in body["detail"]


def test_tenant_profile(env: Env) -> None:
    c, h = env.client, env.b.h()
    for field, value, code in (("iban", "DE00123456780000000000", "invalid_iban"),
                               ("bic", "COBAZZFF", "invalid_bic"),
                               ("vat_id", "DE000000000", "invalid_vat_id"),
                               ("creditor_id", "DE00ZZZ09999999999", "invalid_creditor_id"),
                               ("timezone", "Mars/Olympus", "unknown_timezone"),
                               ("currency", "XYZ", "unknown_currency"),
                               ("country", "ZZ", "unknown_country")):
        _problem(c.patch("/tenant", json={field: value}, headers=h), 422, code, field)
    r = c.patch("/tenant", json={"iban": "DE89370400440532013000", "creditor_id": "DE98ZZZ09999999999",
                                 "vat_id": "DE136695976", "timezone": "Europe/Berlin"}, headers=h)
    assert r.status_code == 200, r.text
    # the BIC of the new bank account's bank, where schwifty's registry knows it
    assert r.json()["bic"] == "COBADEFFXXX"
    r = c.patch("/tenant", json={"iban": "NL91ABNA0417164300", "bic": "ABNANL2A"}, headers=h)
    assert r.status_code == 200 and r.json()["bic"] == "ABNANL2A", r.text


@pytest.mark.parametrize("tz", ["Mars/Olympus", "Factory", "localtime", "", "../etc/passwd"])
def test_location_zone(env: Env, tz: str) -> None:
    c, h = env.client, env.a.h()
    r = c.post("/locations", json={"name": "x", "country": "DE", "timezone": tz}, headers=h)
    assert r.status_code in (400, 422) and r.status_code != 201, r.text
    r = c.patch(f"/locations/{env.a.ids['location_id']}", json={"timezone": tz}, headers=h)
    assert r.status_code in (400, 422), r.text


def _account(env: Env, **extra: Any) -> tuple[str, str]:
    cus = _customer(env)
    r = env.client.post("/billing-accounts", json={"customer_id": cus, **extra}, headers=env.a.h())
    assert r.status_code == 201, r.text
    return cus, str(r.json()["id"])


MANDATE = {"mandate_reference": "M-77", "mandate_signed_on": "2026-01-10", "debtor_iban": "DE89370400440532013000"}


def test_direct_debit_needs_a_mandate(env: Env) -> None:
    c, h = env.client, env.a.h()
    cus, acc = _account(env)
    base = {"account_id": acc, "customer_id": cus, "start_date": "2026-02-01"}
    # the default payment method is direct debit: without a mandate it cannot be collected
    body = _problem(c.post("/contracts", json=base, headers=h), 422, "sepa_mandate_missing",
                    "mandate_reference", "mandate_signed_on", "debtor_iban")
    assert "sepa_direct_debit" in body["detail"]
    _problem(c.post("/contracts", json={**base, "payment_method": "sepa_direct_debit", "mandate_reference": "M-1",
                                        "mandate_signed_on": "2026-01-10"}, headers=h),
             422, "sepa_mandate_missing", "debtor_iban")
    _problem(c.post("/contracts", json={**base, **MANDATE, "debtor_iban": "DE00123456780000000000"}, headers=h),
             422, "invalid_iban", "debtor_iban")
    _problem(c.post("/contracts", json={**base, **MANDATE, "debtor_iban": "BR1800360305000010009795493C1"},
                    headers=h), 422, "iban_outside_sepa", "debtor_iban")
    _problem(c.post("/contracts", json={**base, **MANDATE, "mandate_signed_on": "2099-01-01"}, headers=h),
             422, "mandate_signed_in_future", "mandate_signed_on")
    r = c.post("/contracts", json={**base, "payment_method": "invoice"}, headers=h)
    assert r.status_code == 201, r.text
    by_invoice = r.json()["id"]
    # switching to direct debit by PATCH: checked as the merged contract
    _problem(c.patch(f"/contracts/{by_invoice}", json={"payment_method": "sepa_direct_debit"}, headers=h),
             422, "sepa_mandate_missing", "mandate_reference", "mandate_signed_on", "debtor_iban")
    r = c.patch(f"/contracts/{by_invoice}", json={"payment_method": "sepa_direct_debit", **MANDATE}, headers=h)
    assert r.status_code == 200, r.text
    _problem(c.patch(f"/contracts/{by_invoice}", json={"mandate_signed_on": None}, headers=h),
             422, "sepa_mandate_missing", "mandate_signed_on")
    r = c.post("/contracts", json={**base, **MANDATE, "debtor_iban": "DE89 3704 0044 0532 0130 00"}, headers=h)
    assert r.status_code == 201 and r.json()["debtor_iban"] == "DE89370400440532013000", r.text
    # an ended contract is not debited: terminating one needs no mandate
    r = c.patch(f"/contracts/{r.json()['id']}", json={"status": "terminated", "terminated_on": "2026-03-01",
                                                      "payment_method": "invoice"}, headers=h)
    assert r.status_code == 200, r.text


SUBSCRIPTIONS = """ruleset subs currency EUR timezone Europe/Berlin
default tariff ad_hoc
tariff ad_hoc "Pay as you go" {
  vat 19%
  energy 0.59 per kWh
}
tariff members "Members" {
  vat 19%
  energy 0.39 per kWh
}
product flex "Flex" {
  tariff members
  fee 5.99 per month
}
"""


def _publish(env: Env, source: str, name: str, effective_from: str = "2020-01-01T00:00:00Z",
             tenant: Any = None) -> dict[str, Any]:
    t = tenant or env.b
    c = env.client
    r = c.post("/rulesets", json={"name": name}, headers=t.h())
    assert r.status_code == 201, r.text
    rs = r.json()["id"]
    d = c.post(f"/rulesets/{rs}/drafts", json={"source": source}, headers=t.h("analyst")).json()
    assert d["ok"], d
    r = c.post(f"/rulesets/{rs}/versions", json={"draft_id": d["id"], "effective_from": effective_from},
               headers=t.h("approver"))
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_contract_product_must_be_sold_by_a_ruleset(env: Env) -> None:
    """Tenant B: before any product is published an unknown product is refused with that reason;
    once ``subs`` sells ``flex``, a typo is refused with a suggestion, ``flex`` and no product pass."""
    c, b = env.client, env.b
    h = b.h()
    cus = c.post("/customers", json={"name": "Sub"}, headers=h).json()["id"]
    acc = c.post("/billing-accounts", json={"customer_id": cus}, headers=h).json()["id"]
    base = {"account_id": acc, "customer_id": cus, "start_date": "2026-02-01", "payment_method": "invoice"}
    body = _problem(c.post("/contracts", json={**base, "product": "flex"}, headers=h), 422, "unknown_product",
                    "product")
    assert "no published ruleset defines products" in body["detail"]
    _publish(env, SUBSCRIPTIONS, "subs")
    body = _problem(c.post("/contracts", json={**base, "product": "flexx"}, headers=h), 422, "unknown_product",
                    "product")
    assert "did you mean 'flex'" in body["detail"] and "'flex'" in body["errors"][0]["message"]
    r = c.post("/contracts", json={**base, "product": "flex"}, headers=h)
    assert r.status_code == 201, r.text
    con = r.json()["id"]
    _problem(c.patch(f"/contracts/{con}", json={"product": "pro"}, headers=h), 422, "unknown_product", "product")
    # no product: the sessions are priced by the tariffs alone
    r = c.post("/contracts", json=base, headers=h)
    assert r.status_code == 201 and r.json()["product"] == "", r.text
    # an unchanged product is not re-checked: a discontinued product's contract can still end
    r = c.patch(f"/contracts/{con}", json={"status": "terminated", "terminated_on": "2026-03-01"}, headers=h)
    assert r.status_code == 200, r.text


def test_account_currency_is_its_rulesets(env: Env) -> None:
    """Tenant A bills with ``demo`` (EUR): a CHF account would be priced in EUR."""
    c, h = env.client, env.a.h()
    cus = _customer(env)
    body = _problem(c.post("/billing-accounts", json={"customer_id": cus, "currency": "CHF"}, headers=h),
                    422, "currency_mismatch", "currency")
    assert "'CHF'" in body["detail"] and "'EUR'" in body["detail"] and "'demo'" in body["detail"]
    _, acc = _account(env, currency="EUR")
    _problem(c.patch(f"/billing-accounts/{acc}", json={"currency": "CHF"}, headers=h),
             422, "currency_mismatch", "currency")
    r = c.patch(f"/billing-accounts/{acc}", json={"name": "main"}, headers=h)
    assert r.status_code == 200, r.text


def test_a_zone_stored_before_the_checks_is_a_422_never_a_500(env: Env) -> None:
    """Accounts and tenants written before zones were checked may hold ``Mars/Olympus``: the cycle
    start answered 500 (``ZoneInfoNotFoundError``); now a 422 that says which field to correct."""
    from sqlalchemy import update

    from store.models import BillingAccount, Tenant

    c, a = env.client, env.a
    _, acc = _account(env)
    with env.engine.begin() as conn:
        conn.execute(update(BillingAccount).where(BillingAccount.id == acc).values(timezone="Mars/Olympus"))
    body = _problem(c.post(f"/billing/accounts/{acc}/cycles", json={"start": "2026-03-01", "end": "2026-04-01"},
                           headers=a.h()), 422, "account_timezone_invalid", "timezone")
    assert "'Mars/Olympus'" in body["detail"] and f"/billing-accounts/{acc}" in body["detail"]
    # correcting it is a PATCH like any other
    r = c.patch(f"/billing-accounts/{acc}", json={"timezone": "Europe/Berlin"}, headers=a.h())
    assert r.status_code == 200, r.text
    # wherever else a stored zone reaches zoneinfo: the one error mapping answers 422
    with env.engine.begin() as conn:
        conn.execute(update(Tenant).where(Tenant.id == a.tenant_id).values(timezone="Mars/Olympus"))
    try:
        r = c.post("/partner-statements", json={"partner_id": a.ids["partner_id"], "month": "2025-11"},
                   headers=a.h())
        _problem(r, 422, "unknown_timezone")
    finally:
        with env.engine.begin() as conn:
            conn.execute(update(Tenant).where(Tenant.id == a.tenant_id).values(timezone="Europe/Berlin"))
