"""Refund requests through the API (SQLite and PostgreSQL): a credit balance refunded once per
idempotency key (200 and the first payable the second time), never more than the credit (409),
in the account's currency (422), to a checked IBAN (422 naming the field) or the mandate's; lists
paged by cursor; each request in the audit chain; the payout routes answer problems, never 5xx,
without Temporal."""

from __future__ import annotations

from tests.api.conftest import Env

PAYEE = "DE89370400440532013000"


def test_refund_requests(env: Env) -> None:
    c, a = env.client, env.a
    h = a.h("operator")
    acc = a.ids["billing_account_id"]
    r = c.post("/receivables/payments", json={"account_id": acc, "amount": "9.00", "currency": "EUR",
                                              "booked_on": "2026-03-05", "idempotency_key": "refund-api-credit"},
               headers=h)
    assert r.status_code in (200, 201), r.text
    credit = sum(-float(i["open"]) for i in c.get("/receivables/items", params={"account_id": acc, "status": "credit"},
                                                    headers=h).json()["items"])
    assert credit >= 9.0

    bad = c.post("/payouts/refunds", json={"account_id": acc, "amount": "1.00", "iban": "DE89370400440532013001",
                                           "idempotency_key": "k-bad-iban"}, headers=h)
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    assert "iban" in bad.text
    r = c.post("/payouts/refunds", json={"account_id": acc, "amount": "1.00", "currency": "CHF", "iban": PAYEE,
                                         "idempotency_key": "k-chf"}, headers=h)
    assert r.status_code == 422 and r.json()["code"] == "currency_mismatch", r.text
    for amount in ("0", "-1.00", "1.005"):
        r = c.post("/payouts/refunds", json={"account_id": acc, "amount": amount, "iban": PAYEE,
                                             "idempotency_key": "k-amount"}, headers=h)
        assert r.status_code in (400, 422) and r.json()["code"] in ("validation_failed", "invalid_amount"), r.text
    r = c.post("/payouts/refunds", json={"account_id": acc, "amount": "100000.00", "iban": PAYEE,
                                         "idempotency_key": "k-much"}, headers=h)
    assert r.status_code == 409 and r.json()["code"] == "insufficient_credit", r.text
    r = c.post("/payouts/refunds", json={"account_id": acc, "credit_note": "CN-NOPE", "iban": PAYEE,
                                         "idempotency_key": "k-cn"}, headers=h)
    assert r.status_code == 404 and r.json()["code"] == "credit_note_not_found", r.text
    r = c.post("/payouts/refunds", json={"account_id": "acc_nobody", "iban": PAYEE, "idempotency_key": "k-acc"},
               headers=h)
    assert r.status_code == 404, r.text

    first = c.post("/payouts/refunds", json={"account_id": acc, "amount": "2.50", "iban": PAYEE,
                                             "idempotency_key": "k-ok", "remittance": "Erstattung Guthaben"},
                   headers=h)
    assert first.status_code == 201, first.text
    p = first.json()
    assert (p["amount"], p["currency"], p["status"], p["kind"], p["iban"]) == ("2.50", "EUR", "requested", "refund",
                                                                              PAYEE)
    second = c.post("/payouts/refunds", json={"account_id": acc, "amount": "2.50", "iban": PAYEE,
                                              "idempotency_key": "k-ok", "remittance": "Erstattung Guthaben"},
                    headers=h)
    assert second.status_code == 200 and second.json()["id"] == p["id"]
    # without an IBAN: the account's mandate's (the seeded one), if it has one
    r = c.post("/payouts/refunds", json={"account_id": acc, "amount": "0.50", "idempotency_key": "k-mandate"},
               headers=h)
    if "mandate_id" in a.ids:
        assert r.status_code == 201 and r.json()["iban"] == PAYEE, r.text
    else:
        assert r.status_code == 422 and r.json()["code"] == "payee_iban_required", r.text

    assert c.get(f"/payouts/payables/{p['id']}", headers=a.h("auditor")).json()["id"] == p["id"]
    assert c.get(f"/payouts/payables/{p['id']}", headers=env.b.h("admin")).status_code == 404
    assert c.post("/payouts/refunds", json={"account_id": acc, "amount": "1.00", "iban": PAYEE,
                                            "idempotency_key": "k-ok2"}, headers=h).status_code == 201
    page = c.get("/payouts/payables", params={"limit": 1}, headers=h).json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    seen = [page["items"][0]["id"]]
    while page["next_cursor"]:
        page = c.get("/payouts/payables", params={"limit": 1, "cursor": page["next_cursor"]}, headers=h).json()
        seen += [i["id"] for i in page["items"]]
    assert p["id"] in seen and len(seen) == len(set(seen)) >= 2
    assert c.get("/payouts/payables", params={"status": "nope"}, headers=h).status_code == 400
    audit = c.get("/audit", params={"entity": "payable", "entity_id": p["id"]}, headers=a.h("auditor")).json()
    assert [e["action"] for e in audit["items"]] == ["payable.request_refund"]  # once, not again for the duplicate
    assert c.get("/audit/verify", headers=a.h("auditor")).json()["ok"]

    # without Temporal: problems, never a 5xx
    r = c.post("/payouts/runs", json={"creditor_account_id": "cra_nobody"}, headers=h)
    assert r.status_code == 404, r.text
    assert c.post("/payouts/runs/pyr_nobody/approve", json={}, headers=a.h("approver")).status_code == 404
    assert c.get("/payouts/files/pfl_nobody", headers=h).status_code == 404
    assert c.get("/payouts/runs", headers=h).json() == {"items": [], "next_cursor": None}


def test_payout_schedule(env: Env) -> None:
    c, a = env.client, env.a
    assert c.get("/payouts/schedule", headers=a.h("auditor")).json() == {"day_of_month": None}
    for role in ("operator", "approver"):
        assert c.put("/payouts/schedule", json={"day_of_month": 5}, headers=a.h(role)).status_code == 403
    for bad in (0, 32, "soon"):
        r = c.put("/payouts/schedule", json={"day_of_month": bad}, headers=a.h())
        assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json"), r.text
    r = c.put("/payouts/schedule", json={"day_of_month": 31}, headers=a.h())
    assert r.status_code == 200 and r.json() == {"day_of_month": 31}, r.text
    assert c.get("/payouts/schedule", headers=a.h("operator")).json() == {"day_of_month": 31}
    # another tenant's schedule is its own
    assert c.get("/payouts/schedule", headers=env.b.h()).json() == {"day_of_month": None}
    assert c.put("/payouts/schedule", json={"day_of_month": None}, headers=a.h()).json() == {"day_of_month": None}
    assert c.get("/payouts/schedule", headers=a.h()).json() == {"day_of_month": None}
