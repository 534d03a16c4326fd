"""The document archive through the API: tenant-scoped listing with filters and cursor pages,
downloads with the right media type and ETag = sha256 (304 on If-None-Match), re-send as a new
queued delivery, problem+json errors. SQLite and, when configured, PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import date
from decimal import Decimal as D
from typing import Any

import pytest

from runtime.documents.demo import demo_invoice_input
from runtime.documents.from_invoice import document_from_invoice, partial_credit
from store import documents as A
from tests.api.conftest import Env

PROBLEM = "application/problem+json"


def _problem(r: Any, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["code"] == code, r.json()


@pytest.fixture(scope="module")
def docs(env: Env) -> dict[str, Any]:
    """Tenant A: two invoices (one e-mailed) and a credit note; tenant B: one invoice."""
    out: dict[str, Any] = {}
    inv1 = document_from_invoice(demo_invoice_input("b2b", sessions=2, number="API-RE-1"))
    inv2 = document_from_invoice(demo_invoice_input("b2c", sessions=2, number="API-RE-2"))
    credit = partial_credit(inv1, "API-GS-1", date(2026, 11, 9), [("1", D(1))])
    out["inv1"] = A.issue_documents(env.engine, env.a.tenant_id, inv1, ("facturx-pdf", "xrechnung-cii"),
                                    source_invoice_id="inv_api_1", customer_id=env.a.ids["customer_id"],
                                    email="rechnung@flotten.example")
    out["inv2"] = A.issue_documents(env.engine, env.a.tenant_id, inv2, ("pdf",))
    out["credit"] = A.issue_documents(env.engine, env.a.tenant_id, credit, ("xrechnung-ubl",))
    out["b"] = A.issue_documents(env.engine, env.b.tenant_id, inv1, ("pdf",))
    return out


def test_listing_is_tenant_scoped_filtered_and_paged(env: Env, docs: dict[str, Any]) -> None:
    c, h = env.client, env.a.h("auditor")
    seen, cursor = [], None
    while True:
        r = c.get("/documents", params={"limit": 2} | ({"cursor": cursor} if cursor else {}), headers=h)
        assert r.status_code == 200, r.text
        page = r.json()
        seen += [d["id"] for d in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    mine = [d.id for key in ("inv1", "inv2", "credit") for d in docs[key]]
    assert seen == sorted(mine)
    assert docs["b"][0].id not in seen
    only = c.get("/documents", params={"format": "xrechnung-cii"}, headers=h).json()["items"]
    assert [d["number"] for d in only] == ["API-RE-1"]
    notes = c.get("/documents", params={"kind": "credit_note"}, headers=h).json()["items"]
    assert [(d["number"], d["corrects_number"]) for d in notes] == [("API-GS-1", "API-RE-1")]
    by_invoice = c.get("/documents", params={"invoice_id": "inv_api_1"}, headers=h).json()["items"]
    assert {d["format"] for d in by_invoice} == {"facturx-pdf", "xrechnung-cii"}
    assert all(d["delivery_status"] == "pending" for d in by_invoice)
    assert by_invoice[0]["gross_total"] == str(docs["inv1"][0].gross_total)
    _problem(c.get("/documents", params={"cursor": "!!!"}, headers=h), 422, "invalid_cursor")
    _problem(c.get("/documents", params={"format": "docx"}, headers=h), 400, "validation_failed")


def test_download_media_type_etag_and_304(env: Env, docs: dict[str, Any]) -> None:
    c, h = env.client, env.a.h("operator")
    for stored in docs["inv1"]:
        r = c.get(f"/documents/{stored.id}/content", headers=h)
        assert r.status_code == 200, r.text
        expected = "application/pdf" if stored.format == "facturx-pdf" else "application/xml"
        assert r.headers["content-type"].startswith(expected)
        assert r.headers["etag"] == f'"{stored.sha256}"'
        assert hashlib.sha256(r.content).hexdigest() == stored.sha256
        assert stored.filename in r.headers["content-disposition"]
        again = c.get(f"/documents/{stored.id}/content", headers={**h, "If-None-Match": r.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
    # B's document does not exist for A
    _problem(c.get(f"/documents/{docs['b'][0].id}/content", headers=h), 404, "document_not_found")
    _problem(c.get(f"/documents/{docs['b'][0].id}", headers=h), 404, "document_not_found")


def test_detail_and_resend(env: Env, docs: dict[str, Any]) -> None:
    c = env.client
    pdf = docs["inv1"][0]
    detail = c.get(f"/documents/{pdf.id}", headers=env.a.h("auditor")).json()
    assert detail["sha256"] == pdf.sha256 and [d["seq"] for d in detail["deliveries"]] == [0]
    # auditors read, they do not send
    assert c.post(f"/documents/{pdf.id}/deliveries", json={}, headers=env.a.h("auditor")).status_code == 403
    r = c.post(f"/documents/{pdf.id}/deliveries", json={"formats": ["facturx-pdf", "xrechnung-cii"]},
               headers=env.a.h("operator"))
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["seq"] == 1 and body["status"] == "pending" and body["recipient"] == "rechnung@flotten.example"
    assert body["requested_by"] == env.a.users["operator"]
    r = c.post(f"/documents/{pdf.id}/deliveries", json={"recipient": "fibu@flotten.example"},
               headers=env.a.h("admin"))
    assert r.status_code == 202 and r.json()["formats"] == ["facturx-pdf"] and r.json()["seq"] == 2
    never_sent = docs["inv2"][0]
    _problem(c.post(f"/documents/{never_sent.id}/deliveries", json={}, headers=env.a.h()), 422,
             "recipient_required")
    _problem(c.post(f"/documents/{never_sent.id}/deliveries", json={"formats": ["xrechnung-ubl"],
                                                                  "recipient": "x@example.org"},
                    headers=env.a.h()), 422, "format_not_archived")
    _problem(c.post(f"/documents/{pdf.id}/deliveries", json={"recipient": "not an address"}, headers=env.a.h()),
             400, "validation_failed")
    _problem(c.post(f"/documents/{docs['b'][0].id}/deliveries", json={"recipient": "x@example.org"},
                    headers=env.a.h()), 404, "document_not_found")
    audit = c.get("/audit", params={"action": "document.resend"}, headers=env.a.h("auditor")).json()["items"]
    assert len(audit) == 2 and audit[0]["entity_id"] == pdf.id


def test_documents_in_the_openapi_document(env: Env, docs: dict[str, Any]) -> None:
    spec = env.client.get("/schema/openapi.json").json()
    ops = {op["operationId"] for item in spec["paths"].values() for op in item.values() if isinstance(op, dict)
           and "operationId" in op}
    assert {"list_documents", "get_document", "download_document", "create_document_delivery"} <= ops
    download = spec["paths"]["/documents/{document_id}/content"]["get"]["responses"]
    assert {"200", "304", "404"} <= set(download)
