"""What finance reads on an issued invoice and credit note (issue 11, defects 7 and 8), on the
real billing tables, SQLite and PostgreSQL: the document is dated the day it was finalized and
falls due after the payment terms; the service period is the billing period (a re-rating credit
note: the period it corrects); the customer is named by its number, never an internal id; a
credit note's lines say which charging session they correct in the document's language, and the
customer's IBAN is masked as on invoices. The e-invoices pass the official rules."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import Engine, select, update

from runtime.documents.from_invoice import document_from_invoice
from runtime.documents.model import Period
from store import billing as B
from store import documents as A
from store.models import ChargingSession, Contract, Customer, Tenant

from .conftest import explain
from .helpers import pdf_text

pytest.importorskip("temporalio")

IBAN = "DE89370400440532013000"
UBL = {"cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
       "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"}


def _seed(engine: Engine, product: str = "flex") -> tuple[Any, str]:
    from tests.workflows.seed import insert_sessions, seed_tenant

    s = seed_tenant(engine, "tfacts", 1, product=product)
    acc = s.account_ids[0]
    with engine.begin() as conn:
        conn.execute(update(Tenant.__table__).where(Tenant.__table__.c.id == "tfacts").values(  # type: ignore[attr-defined]
            legal_name="Stadtwerke Musterstadt GmbH", street="Energieweg 12", postal_code="12345",
            city="Musterstadt", vat_id="DE136695976", iban="DE02120300000000202051", bic="BYLADEM1001",
            creditor_id="DE98ZZZ09999999999", email="rechnung@stadtwerke.example",
            branding={"phone": "+49 30 1234567"}))
        conn.execute(update(Customer.__table__).where(Customer.__table__.c.id == s.customer_of[acc]).values(  # type: ignore[attr-defined]
            street="Lindenstraße 5", postal_code="10969", city="Berlin", email="jonas@example.org"))
        conn.execute(update(Contract.__table__).where(Contract.__table__.c.id == s.contract_of[acc]).values(  # type: ignore[attr-defined]
            mandate_reference="MANDATE-77", mandate_signed_on=date(2025, 1, 2), debtor_iban=IBAN,
            document_formats="pdf,xrechnung-ubl,xrechnung-cii"))
    insert_sessions(engine, s, [(acc, "ses_01nov18", datetime(2026, 11, 18, 13, 2, tzinfo=UTC), D(200))])
    with engine.begin() as conn:
        conn.execute(update(ChargingSession.__table__).where(  # type: ignore[attr-defined]
            ChargingSession.__table__.c.id == "ses_01nov18").values(location_ref="Berlin Mitte"))  # type: ignore[attr-defined]
    return s, acc


def _issue(engine: Engine, invoice_id: str) -> tuple[Any, dict[str, bytes]]:
    A.issue_for_invoice(engine, "tfacts", invoice_id)
    with engine.connect() as conn:
        inp = A.load_invoice_input(conn, "tfacts", invoice_id)
        docs = {m.format: b for m, b in A.documents_by_number(conn, "tfacts", inp.number)}
    return document_from_invoice(inp), docs


def test_invoice_and_credit_note_as_finance_reads_them(engine: Engine, validate: Any) -> None:
    from tests.workflows.seed import rerate_session
    from workflows.billing.activities import BillingActivities
    from workflows.billing.types import AssembleInput

    s, acc = _seed(engine, product="none")  # no monthly fee: the credit note holds the correction only
    acts = BillingActivities(engine)
    # November's cycle runs at the cut-off and is finalized at once, on Dec 2 (Berlin)
    fin = acts.assemble_draft(AssembleInput("tfacts", acc, "2026-12-01T00:05:00+01:00", "wf-nov",
                                            finalize_if_clean=True, now="2026-12-02T08:00:00+01:00"))
    assert fin.status == "finalized" and fin.number == "INV-000001"
    doc, docs = _issue(engine, fin.invoice_id)
    assert (doc.issue_date, doc.due_date) == (date(2026, 12, 2), date(2026, 12, 16))
    assert doc.period == Period(date(2026, 11, 1), date(2026, 11, 30))
    assert doc.buyer.customer_number == "K-10001" and doc.buyer.buyer_reference == "K-10001"
    text = pdf_text(docs["pdf"])
    assert "K-10001" in text and "cus_" not in text and "ses_" not in text
    assert "02.12.2026" in text and "16.12.2026" in text and "01.12.2026" not in text
    ubl = etree.fromstring(docs["xrechnung-ubl"])
    assert ubl.findtext("cbc:IssueDate", namespaces=UBL) == "2026-12-02"
    assert ubl.findtext("cbc:DueDate", namespaces=UBL) == "2026-12-16"
    assert [ubl.findtext(f"cac:InvoicePeriod/cbc:{e}", namespaces=UBL) for e in ("StartDate", "EndDate")] \
        == ["2026-11-01", "2026-11-30"]
    assert ubl.findtext("cac:AccountingCustomerParty/cac:Party/cac:PartyIdentification/cbc:ID",
                        namespaces=UBL) == "K-10001"
    for fmt in ("xrechnung-ubl", "xrechnung-cii"):
        report = validate(docs[fmt])
        assert report.valid, explain(report)
        assert b"cus_" not in docs[fmt]

    # a corrected ruleset lowers the session's price; on Dec 3 an ad-hoc run for "today" (what
    # the API starts: the period's end as cut-off) issues the credit note
    rerate_session(engine, s, acc, "ses_01nov18", datetime(2026, 11, 18, 13, 2, tzinfo=UTC), D(200), D("0.30"))
    from runtime.invoicing import ad_hoc_period

    period = ad_hoc_period(date(2026, 12, 3), date(2026, 12, 4), "Europe/Berlin")
    cn = acts.assemble_draft(AssembleInput("tfacts", acc, period.end.isoformat(), "wf-fix", period.to_dict(),
                                           period.key, finalize_if_clean=True, now="2026-12-03T10:00:00+01:00"))
    assert (cn.status, cn.kind, cn.number) == ("finalized", "credit_note", "CN-000001")
    with engine.connect() as conn:
        row = conn.execute(select(B.invoice).where(B.invoice.c.id == cn.invoice_id)).one()
    assert (row.issue_date, row.due_date) == (date(2026, 12, 3), date(2026, 12, 3))  # not the 4th
    doc, docs = _issue(engine, cn.invoice_id)
    assert doc.issue_date == date(2026, 12, 3) and doc.due_date is None
    # the service period is the one corrected, not the day of the credit note
    assert doc.period == Period(date(2026, 11, 1), date(2026, 11, 30))
    [line] = doc.lines
    assert line.name == "Korrektur Ladevorgang" and line.period == Period(date(2026, 11, 18), date(2026, 11, 18))
    assert line.description == "18.11.2026 14:02, Standort Berlin Mitte, zu Rechnung INV-000001"
    text = " ".join(pdf_text(docs["pdf"]).split())  # lines wrap where the column ends
    assert "Korrektur Ladevorgang" in text and "zu Rechnung INV-000001" in text
    assert "ses_" not in text and "cus_" not in text and "re-rating" not in text and "billed on" not in text
    assert "K-10001" in text and "01.11.2026" in text and "30.11.2026" in text
    # the customer's IBAN masked, as on invoices; the e-invoice keeps it for the refund
    assert IBAN not in text.replace(" ", "") and "DE89 **** **** 3000" in text
    ubl = etree.fromstring(docs["xrechnung-ubl"])
    assert ubl.findtext("cbc:IssueDate", namespaces=UBL) == "2026-12-03"
    assert ubl.find("cbc:DueDate", namespaces=UBL) is None
    assert ubl.findtext("cac:InvoicePeriod/cbc:StartDate", namespaces=UBL) == "2026-11-01"
    assert b"ses_" not in docs["xrechnung-ubl"] and b"ses_" not in docs["xrechnung-cii"]
    for fmt in ("xrechnung-ubl", "xrechnung-cii"):
        report = validate(docs[fmt])
        assert report.valid, explain(report)


def test_english_credit_note_line(engine: Engine) -> None:
    from tests.workflows.seed import rerate_session
    from workflows.billing.activities import BillingActivities
    from workflows.billing.types import AssembleInput

    s, acc = _seed(engine)
    with engine.begin() as conn:
        conn.execute(update(Customer.__table__).where(Customer.__table__.c.id == s.customer_of[acc])  # type: ignore[attr-defined]
                     .values(language="en"))
    acts = BillingActivities(engine)
    nov = acts.assemble_draft(AssembleInput("tfacts", acc, "2026-12-01T00:05:00+01:00", "wf-nov",
                                            finalize_if_clean=True, now="2026-12-02T08:00:00+01:00"))
    _issue(engine, nov.invoice_id)
    rerate_session(engine, s, acc, "ses_01nov18", datetime(2026, 11, 18, 13, 2, tzinfo=UTC), D(200), D("0.30"))
    from tests.workflows.seed import insert_sessions

    insert_sessions(engine, s, [(acc, "ses_late", datetime(2026, 11, 20, 8, 30, tzinfo=UTC), D(10))])
    cn = acts.assemble_draft(AssembleInput("tfacts", acc, "2027-01-01T00:05:00+01:00", "wf-dec",
                                           finalize_if_clean=True, now="2027-01-01T00:05:00+01:00"))
    assert cn.kind == "credit_note"
    doc, docs = _issue(engine, cn.invoice_id)
    corrections = [ln for ln in doc.lines if ln.name == "Correction of charging session"]
    assert [ln.description for ln in corrections] == ["Nov 18, 2026 2:02\u00a0PM, site Berlin Mitte, invoice INV-000001"]
    # December's fee and November's correction: the service period covers both
    assert doc.period == Period(date(2026, 11, 1), date(2026, 12, 31))
    # a November session that arrived after November's invoice: named by its start, not billing's text
    late = [ln for ln in doc.lines if ln.name.endswith("(late)")]
    assert {ln.description for ln in late} == {"Nov 20, 2026 9:30\u00a0AM"}
    assert {ln.period for ln in late} == {Period(date(2026, 11, 20), date(2026, 11, 20))}
    text = pdf_text(docs["pdf"])
    assert "ses_" not in text and "Korrektur" not in text and "DE89 **** **** 3000" in text
    assert "late session" not in text
