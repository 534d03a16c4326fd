"""The hand-over from billing to documents, on the real billing tables: a cycle assembled and
finalized by the billing activities, then ``issue_for_invoice`` renders it in the customer's
formats, archives it and queues the e-mail; the documents carry exactly the billed totals and a
statement of the billed sessions. SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

import pytest
from sqlalchemy import Engine, update

from runtime.documents import render
from runtime.documents.from_invoice import document_from_invoice
from store import documents as A
from store.models import BillingAccount, Customer, Tenant

from .conftest import explain
from .helpers import pdf_text, pdf_totals, xml_totals

pytest.importorskip("temporalio")



def _finalized_invoice(engine: Engine, kind: str = "private", abroad: tuple[str, str, str, str] | None = None,
                       ruleset: str = "") -> tuple[str, str]:
    """``abroad``: the business customer's (country, city, VAT ID, language) instead of Berlin's."""
    from tests.workflows.seed import RULESET, insert_sessions, seed_tenant
    from workflows.billing.activities import BillingActivities
    from workflows.billing.types import AssembleInput, FinalizeInput

    seeded = seed_tenant(engine, "tdoc", 1, ruleset=ruleset or RULESET)
    account = seeded.account_ids[0]
    with engine.begin() as conn:
        conn.execute(update(Tenant.__table__).where(Tenant.__table__.c.id == "tdoc").values(  # type: ignore[attr-defined]
            legal_name="Stadtwerke Musterstadt GmbH", street="Energieweg 12", postal_code="12345",
            city="Musterstadt", vat_id="DE136695976", iban="DE02120300000000202051", bic="BYLADEM1001",
            email="rechnung@stadtwerke.example", branding={"primary_color": "#0b5d3b", "phone": "+49 30 1234567",
                                                           "legal_lines": ["Sitz Musterstadt, HRB 12345"]}))
        conn.execute(update(Customer.__table__).where(  # type: ignore[attr-defined]
            Customer.__table__.c.id == seeded.customer_of[account]).values(  # type: ignore[attr-defined]
            kind=kind, company_name="Flotten Logistik AG" if kind == "business" else "",
            vat_id="DE811569869" if kind == "business" else "", street="Lindenstraße 5", postal_code="10969",
            city="Berlin", email="jonas@example.org"))
        if abroad is not None:
            country, city, vat_id, language = abroad
            conn.execute(update(Customer.__table__).where(  # type: ignore[attr-defined]
                Customer.__table__.c.id == seeded.customer_of[account]).values(  # type: ignore[attr-defined]
                country=country, city=city, postal_code="8001", vat_id=vat_id, language=language))
            conn.execute(update(Tenant.__table__).where(Tenant.__table__.c.id == "tdoc").values(  # type: ignore[attr-defined]
                tax_number="12/345/67890"))
        conn.execute(update(BillingAccount.__table__).where(  # type: ignore[attr-defined]
            BillingAccount.__table__.c.id == account).values(invoice_email="rechnung@kunde.example"))  # type: ignore[attr-defined]
    insert_sessions(engine, seeded, [
        (account, f"S-{i}", datetime(2026, 10, 3 + i, 8, 15, tzinfo=UTC), D("12.345") + i) for i in range(3)])
    acts = BillingActivities(engine)
    draft = acts.assemble_draft(AssembleInput("tdoc", account, "2026-11-01T12:00:00+00:00", "wf-doc"))
    fin = acts.finalize_invoice(FinalizeInput("tdoc", draft.invoice_id))
    return draft.invoice_id, fin.number


def test_finalized_invoice_is_issued_archived_and_queued(engine: Engine, validate: Any) -> None:
    invoice_id, number = _finalized_invoice(engine)
    stored = A.issue_for_invoice(engine, "tdoc", invoice_id)
    assert [(s.number, s.format, s.created) for s in stored] == [(number, "pdf", True)]
    with engine.connect() as conn:
        inp = A.load_invoice_input(conn, "tdoc", invoice_id)
        (meta, content), = A.documents_by_number(conn, "tdoc", number)
        deliveries = A.deliveries_of(conn, "tdoc", number)
    assert hashlib.sha256(content).hexdigest() == meta.sha256 and meta.source_invoice_id == invoice_id
    assert [(d.recipient, d.formats, d.status) for d in deliveries] == [("rechnung@kunde.example", ("pdf",), "pending")]
    doc = document_from_invoice(inp)
    assert len(doc.statement) == 3 and inp.net_total == doc.totals.net
    text = pdf_text(content)
    assert number in text and "Einzelnachweis der Ladevorgänge" in text and "03.10.2026 10:15" in text
    assert pdf_totals(content, "de")["gross"] == meta.gross_total == inp.net_total + inp.tax_total
    # the same invoice as an e-invoice is valid with what the tables hold
    xml = render(doc, "xrechnung-cii")
    report = validate(xml)
    assert report.valid, explain(report)
    assert xml_totals(xml)["payable"] == meta.gross_total
    # a retried hand-over archives nothing new and queues no second e-mail
    again = A.issue_for_invoice(engine, "tdoc", invoice_id)
    assert [s.created for s in again] == [False]
    with engine.connect() as conn:
        assert len(A.deliveries_of(conn, "tdoc", number)) == 1


def test_business_customer_gets_facturx_and_drafts_are_refused(engine: Engine) -> None:
    invoice_id, _ = _finalized_invoice(engine, kind="business")
    stored = A.issue_for_invoice(engine, "tdoc", invoice_id)
    assert [s.format for s in stored] == ["facturx-pdf"]
    from store.errors import Conflict, NotFound

    with engine.connect() as conn, pytest.raises(NotFound):
        A.load_invoice_input(conn, "tdoc", "inv_missing")
    from store import billing as B

    with engine.begin() as conn:
        conn.execute(update(B.invoice).where(B.invoice.c.id == invoice_id).values(status="held"))
    with engine.connect() as conn, pytest.raises(Conflict):
        A.load_invoice_input(conn, "tdoc", invoice_id)


def test_contract_choice_of_formats_leitweg_and_debtor_iban(engine: Engine, validate: Any) -> None:
    """A public buyer's contract asks for XRechnung UBL plus a PDF, names its Leitweg-ID and the IBAN
    its mandate debits: the issued e-invoice carries all three and passes the official rules."""
    from store.models import Contract

    invoice_id, number = _finalized_invoice(engine, kind="business")
    with engine.begin() as conn:
        # a direct debit names the creditor (BR-DE-30): the tenant's SEPA creditor identifier
        conn.execute(update(Tenant.__table__).where(Tenant.__table__.c.id == "tdoc").values(  # type: ignore[attr-defined]
            creditor_id="DE98ZZZ09999999999"))
        conn.execute(update(Contract.__table__).where(Contract.__table__.c.tenant_id == "tdoc").values(  # type: ignore[attr-defined]
            document_formats="xrechnung-ubl,pdf", leitweg_id="04011000-1234512345-06",
            debtor_iban="DE89370400440532013000", payment_method="sepa_direct_debit",
            mandate_reference="MANDATE-77", mandate_signed_on=datetime(2025, 1, 2, tzinfo=UTC).date()))
    stored = A.issue_for_invoice(engine, "tdoc", invoice_id)
    assert sorted(s.format for s in stored) == ["pdf", "xrechnung-ubl"]
    with engine.connect() as conn:
        docs = {meta.format: content for meta, content in A.documents_by_number(conn, "tdoc", number)}
    xml = docs["xrechnung-ubl"]
    report = validate(xml)
    assert report.valid, explain(report)
    text = xml.decode()
    assert "<cbc:BuyerReference>04011000-1234512345-06</cbc:BuyerReference>" in text
    assert "DE89370400440532013000" in text and "MANDATE-77" in text and "DE98ZZZ09999999999" in text
    assert "<cbc:PaymentMeansCode>59</cbc:PaymentMeansCode>" in text


def test_the_document_takes_the_rounding_mode_of_the_invoice_s_ruleset(engine: Engine) -> None:
    # the invoice row keeps its ruleset version, not the mode: the loader reads the version's header
    from sqlalchemy import select

    from store import billing as B
    from store.models import metadata

    invoice_id, _ = _finalized_invoice(engine)
    rv = metadata.tables["ruleset_version"]
    with engine.begin() as conn:
        version_id = conn.execute(select(B.invoice.c.ruleset_version_id).where(B.invoice.c.id == invoice_id)).scalar()
        source = conn.execute(select(rv.c.source).where(rv.c.id == version_id)).scalar()
        assert source is not None
        conn.execute(update(rv).where(rv.c.id == version_id).values(source=source.replace(
            "ruleset billing_test currency EUR timezone Europe/Berlin",
            "ruleset billing_test currency EUR timezone Europe/Berlin rounding half_even", 1)))
    with engine.connect() as conn:
        assert A.load_invoice_input(conn, "tdoc", invoice_id).rounding == "half_even"


@pytest.mark.parametrize(("abroad", "reason"), [
    (("CH", "Zürich", "CHE-116.281.710 MWST", "de"),
     "Nicht im Inland steuerbare Leistung: der Leistungsempfänger ist außerhalb der EU ansässig"),
    (("GB", "London", "GB980780684", "en"), "Not subject to VAT in the EU: the customer is established outside the EU"),
])
def test_month_end_bills_a_business_outside_the_eu_without_vat(engine: Engine, validate: Any,
                                                               abroad: tuple[str, str, str, str], reason: str) -> None:
    """The whole path on the real tables: a ruleset whose tax policy says ``reverse_charge``, a
    business customer in Switzerland / the United Kingdom; month-end assembles every line at 0 % with
    the treatment on the invoice's tax group, finalization books the revenue under O without VAT,
    and the Factur-X the customer gets states O with the reason in its language, valid."""
    from store import accounting as J
    from tests.workflows.seed import RULESET

    invoice_id, number = _finalized_invoice(engine, "business", abroad,
                                            RULESET + '\ntax b2b "B2B" {\n  reverse_charge\n}\n')
    with engine.connect() as conn:
        inp = A.load_invoice_input(conn, "tdoc", invoice_id)
        entries = [e for _i, e in J.entries(conn, "tdoc")]
    assert inp.tax_total == 0 and inp.customer.vat_category == "O"
    assert {ln.tax_rate for ln in inp.lines} == {D(0)}
    (entry,) = [e for e in entries if e.document == number]
    assert {ln.vat for ln in entry.lines if ln.role == "revenue"} == {"O"}
    assert not any(ln.role == "vat" for ln in entry.lines)
    (stored,) = A.issue_for_invoice(engine, "tdoc", invoice_id)
    assert stored.format == "facturx-pdf"
    with engine.connect() as conn:
        ((_meta, content),) = A.documents_by_number(conn, "tdoc", number)
    assert reason in " ".join(pdf_text(content).split())
    from facturx import get_facturx_xml_from_pdf

    xml = get_facturx_xml_from_pdf(content)[1]
    assert b"<ram:CategoryCode>O</ram:CategoryCode>" in xml and b"VATEX-EU-O" in xml
    report = validate(xml)
    assert report.valid, explain(report)
