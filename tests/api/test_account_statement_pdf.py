"""GET /customers/{id}/account-statement as PDF: the customer's language (numbers, dates, words),
the same closing balance as the JSON statement, the open items with days overdue; chosen by
format=pdf or by the Accept header."""

from __future__ import annotations

import io
import re
from datetime import date
from decimal import Decimal as D
from types import SimpleNamespace

import pypdf
from sqlalchemy import update

from runtime.documents.i18n import money_text
from store import receivables as R
from store.models import Customer
from tests.api.conftest import Env

AS_OF = "2026-12-10"


def _setup(env: Env, language: str) -> str:
    a = env.a
    cus, acc = a.ids["customer_id"], a.ids["billing_account_id"]
    with env.engine.begin() as conn:
        conn.execute(update(Customer.__table__).where(Customer.__table__.c.id == cus)  # type: ignore[attr-defined]
                     .values(language=language, street="Hauptstraße 1", postal_code="10115", city="Berlin"))
        for n, gross, due in ((1, "1234.56", date(2026, 11, 1)), (2, "40.00", date(2026, 12, 15))):
            R.open_invoice_item(conn, a.tenant_id, SimpleNamespace(
                id=f"inv_st_{n}", kind="invoice", number=f"INV-{n:06d}", customer_id=cus, account_id=acc,
                currency="EUR", gross_total=D(gross), issue_date=date(2026, 10, 20), due_date=due, corrects=[]))
        R.book_payment(conn, a.tenant_id, key="pay-1", customer_id=cus, account_id=acc, amount=D("1000.00"),
                       currency="EUR", booked_on=date(2026, 11, 20), reference="Abschlag", targets=[])
    return cus


def _text(pdf: bytes) -> str:
    text = "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    return re.sub(r"[\u00a0\u202f\u2007]", " ", text)


def _norm(s: str) -> str:
    return re.sub(r"[\u00a0\u202f\u2007]", " ", s)


def test_account_statement_pdf_in_the_customers_language(env: Env) -> None:
    c, a = env.client, env.a
    cus = _setup(env, "de")
    op = a.h("operator")
    js = c.get(f"/customers/{cus}/account-statement", headers=op).json()
    closing = D(js["closing_balance"])
    assert closing == D("274.56")
    for lang in ("de", "en", "fr", "nl"):
        with env.engine.begin() as conn:
            conn.execute(update(Customer.__table__).where(Customer.__table__.c.id == cus)  # type: ignore[attr-defined]
                         .values(language=lang))
        r = c.get(f"/customers/{cus}/account-statement", params={"format": "pdf", "as_of": AS_OF}, headers=op)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/pdf") and r.content.startswith(b"%PDF")
        text = _text(r.content)
        # every amount in the language's format, the closing balance the JSON's
        for amount in ("1234.56", "40.00", "1000.00", "1274.56", closing):
            assert _norm(money_text(D(amount), "EUR", lang)) in text, (lang, amount, text)
        assert "INV-000001" in text and "INV-000002" in text
        assert re.search(r"\b39\b", text), text  # INV-000001 was due 2026-11-01: 39 days overdue on Dec 10
        if lang == "de":
            assert "1.234,56 €" in text and "274,56 €" in text and "10.12.2026" in text
            assert "Kontoauszug" in text and "Endsaldo" in text and "Offene Posten" in text
            english = {"Balance", "Invoice", "Payment", "Opening", "Closing", "Due", "Amount", "Open items", "Page",
                       "Date", "Customer"}
            assert not [w for w in english if re.search(rf"\b{w}\b", text)], text
        if lang == "en":
            assert "€1,234.56" in text and "Account statement" in text and "Closing balance" in text
        if lang == "fr":
            assert "Relevé de compte" in text and "1 234,56 €" in text
        if lang == "nl":
            assert "Rekeningoverzicht" in text and "€ 1.234,56" in text
    # the Accept header chooses too; JSON stays the default
    r = c.get(f"/customers/{cus}/account-statement", headers={**op, "accept": "application/pdf"})
    assert r.status_code == 200 and r.content.startswith(b"%PDF")
    r = c.get(f"/customers/{cus}/account-statement", headers={**op, "accept": "application/json"})
    assert r.status_code == 200 and D(r.json()["closing_balance"]) == closing
    # a bad format and an unknown customer are problems, not 500s
    bad = c.get(f"/customers/{cus}/account-statement", params={"format": "xls"}, headers=op)
    assert bad.status_code == 400 and bad.headers["content-type"].startswith("application/problem+json")
    missing = c.get("/customers/cus_nope/account-statement", params={"format": "pdf"}, headers=op)
    assert missing.status_code == 404


def test_account_statement_pdf_period(env: Env) -> None:
    """A period: the opening balance carries what was booked before it, the closing balance is the
    JSON's for the same period."""
    c, a = env.client, env.a
    cus = _setup(env, "de")
    op = a.h("operator")
    params = {"start": "2026-11-01", "end": "2026-12-01"}
    js = c.get(f"/customers/{cus}/account-statement", params=params, headers=op).json()
    assert (D(js["opening_balance"]), D(js["closing_balance"])) == (D("1274.56"), D("274.56"))
    r = c.get(f"/customers/{cus}/account-statement", params={**params, "format": "pdf", "as_of": AS_OF}, headers=op)
    text = _text(r.content)
    assert "Anfangssaldo" in text and "1.274,56 €" in text and "274,56 €" in text
    assert "01.11.2026 – 30.11.2026" in text
