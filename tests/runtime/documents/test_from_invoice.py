"""From billing's finalized invoice to documents: the mapping keeps every billed cent (proved by
property), the XML validates, the statement lists each session, credit notes reference invoices."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.documents import render
from runtime.documents.demo import DEMO_CUSTOMERS, demo_documents, demo_invoice_input, write_demo_documents
from runtime.documents.from_invoice import (
    BilledLine,
    CustomerProfile,
    default_formats,
    document_from_invoice,
    partial_credit,
    reversal_of,
)
from runtime.documents.model import DocumentError, DocumentKind, VatCategory
from runtime.invoicing import PaymentTerms, assemble_invoice, period_ending
from runtime.rated import RatedLine

from .conftest import explain
from .helpers import pdf_text, pdf_totals, xml_totals


@pytest.mark.parametrize("case", sorted(DEMO_CUSTOMERS))
def test_billed_invoice_maps_to_a_valid_document_with_the_same_totals(validate: Any, case: str) -> None:
    inp = demo_invoice_input(case, sessions=6)
    doc = document_from_invoice(inp)
    assert doc.totals.net == inp.net_total and doc.totals.tax == inp.tax_total
    assert doc.totals.gross == inp.net_total + inp.tax_total
    fmt = "xrechnung-cii"
    report = validate(render(doc, fmt))
    assert report.valid and not report.errors, explain(report)
    assert not report.warnings, [(m.id, m.text) for m in report.warnings]
    # the statement: one row per session, its amounts are exactly the billed session lines
    assert len(doc.statement) == 6
    billed = sum((ln.net for ln in inp.lines if ln.session_id), D(0))
    assert sum((r.net for r in doc.statement), D(0)) == billed
    if DEMO_CUSTOMERS[case].reverse_charge:
        assert {g.category for g in doc.totals.vat_groups} == {VatCategory.REVERSE_CHARGE}


def test_statement_in_local_time_and_language() -> None:
    en = document_from_invoice(demo_invoice_input("b2c_en", sessions=2))
    first = en.statement[0]
    # 05:30 UTC on 1 October is 07:30 in Berlin (summer time)
    assert first.started_at == datetime(2026, 10, 1, 7, 30)
    assert [c.label for c in first.components] == ["Start fee", "Energy", "Parking fee"]
    text = pdf_text(render(en, "statement-pdf"))
    assert "Itemized session statement" in text and "1 Oct 2026 07:30" in text.replace("\n", " ")
    de = document_from_invoice(demo_invoice_input("b2c", sessions=2))
    assert [c.label for c in de.statement[0].components] == ["Startgebühr", "Energie", "Blockiergebühr"]


def test_direct_debit_and_leitweg_id() -> None:
    doc = document_from_invoice(demo_invoice_input("b2c", sessions=1))
    assert doc.payment.is_direct_debit and doc.payment.mandate_reference == "MANDATE-100234"
    assert doc.payment.creditor_id == "DE98ZZZ09999999999"
    public = document_from_invoice(demo_invoice_input("public", sessions=1))
    assert public.buyer.buyer_reference == "04011000-12345-03"
    assert public.buyer.electronic_address.scheme == "0204"
    assert b"04011000-12345-03" in render(public, "xrechnung-ubl")


def test_totals_mismatch_is_refused_not_issued() -> None:
    inp = demo_invoice_input("b2b", sessions=2)
    with pytest.raises(DocumentError) as err:
        document_from_invoice(dataclasses.replace(inp, tax_total=inp.tax_total + D("0.01")))
    assert err.value.code == "totals_mismatch"


def test_billing_credit_note_needs_the_corrected_invoice(validate: Any) -> None:
    inp = demo_invoice_input("b2b", sessions=2)
    negated = tuple(dataclasses.replace(ln, quantity=-ln.quantity, net=-ln.net) for ln in inp.lines)
    credit = dataclasses.replace(inp, kind="credit_note", number="CN-000001", lines=negated,
                                 net_total=-inp.net_total, tax_total=-inp.tax_total)
    with pytest.raises(DocumentError) as err:
        document_from_invoice(credit)
    assert err.value.code == "credit_note_without_invoice"
    doc = document_from_invoice(dataclasses.replace(credit, corrects=("INV-000007",),
                                                    corrects_issue_date=date(2026, 10, 2)))
    assert doc.kind is DocumentKind.CREDIT_NOTE and doc.totals.payable == inp.net_total + inp.tax_total
    for fmt in ("xrechnung-ubl", "xrechnung-cii"):
        xml = render(doc, fmt)
        report = validate(xml)
        assert report.valid, explain(report)
        assert b"INV-000007" in xml


def test_reversal_and_partial_credit(validate: Any) -> None:
    invoice = document_from_invoice(demo_invoice_input("b2b", sessions=4))
    storno = reversal_of(invoice, "GS-1", date(2026, 11, 20))
    assert storno.kind is DocumentKind.CREDIT_NOTE and storno.preceding is not None
    assert storno.preceding.number == invoice.number
    assert storno.totals.gross == invoice.totals.gross and storno.totals.tax == invoice.totals.tax
    part = partial_credit(invoice, "GS-2", date(2026, 11, 20), [("1", D(2))], reason="Kulanz")
    assert part.totals.net == D("0.70") and part.totals.tax == D("0.13")
    for doc in (storno, part):
        for fmt in ("xrechnung-ubl", "xrechnung-cii"):
            report = validate(render(doc, fmt))
            assert report.valid, explain(report)
    with pytest.raises(DocumentError) as err:
        partial_credit(invoice, "GS-3", date(2026, 11, 20), [("1", D(999))])
    assert err.value.code == "credit_quantity_invalid"
    with pytest.raises(DocumentError):
        reversal_of(storno, "GS-4", date(2026, 11, 20))
    pdf = render(storno, "pdf")
    on_page = pdf_totals(pdf, storno.language, credit_note=True)
    assert on_page["payable"] == storno.totals.payable


def test_default_formats_follow_the_customer() -> None:
    base = CustomerProfile("X", DEMO_CUSTOMERS["b2c"].address)
    assert default_formats(base) == ("pdf",)
    assert default_formats(dataclasses.replace(base, is_business=True)) == ("facturx-pdf",)
    assert default_formats(dataclasses.replace(base, leitweg_id="991-1-2")) == ("xrechnung-ubl", "pdf")
    assert default_formats(dataclasses.replace(base, formats=("peppol-ubl",))) == ("peppol-ubl",)
    with pytest.raises(DocumentError):
        default_formats(dataclasses.replace(base, formats=("docx",)))


def test_demo_set_is_complete_and_valid(validate: Any, tmp_path: Any) -> None:
    paths = write_demo_documents(tmp_path / "documents")
    names = {p.name for p in paths}
    kinds = {doc.kind for _, doc, _ in demo_documents()}
    assert kinds == set(DocumentKind)
    for marker in ("statement.pdf", "facturx.pdf", "peppol.xml", "xrechnung-ubl.xml", "xrechnung-cii.xml",
                   "self-billing", "credit-note-reversal", "credit-note-partial", "reverse-charge"):
        assert any(marker in n for n in names), marker
    for p in paths:
        if p.suffix == ".xml":
            report = validate(p.read_bytes())
            assert report.valid and not report.errors, (p.name, explain(report))
        else:
            assert p.read_bytes().startswith(b"%PDF")


# ---------------------------------------------------------------------------------- property

PRICES = st.integers(1, 9999).map(lambda n: D(n).scaleb(-4))
QUANTITIES = st.integers(1, 99999).map(lambda n: D(n).scaleb(-3))


@st.composite
def rated_sessions(draw: Any) -> list[RatedLine]:
    out: list[RatedLine] = []
    rate = draw(st.sampled_from([D(19), D(7)]))
    for i in range(draw(st.integers(1, 12))):
        sid = f"S{i}"
        q, p = draw(QUANTITIES), draw(PRICES)
        out.append(RatedLine("energy", "energy", q, "kWh", p, q * p, rate, "EUR", "r", sid))
        if draw(st.booleans()):
            out.append(RatedLine("start_fee", "start", D(1), "session", D("0.35"), D("0.35"), rate, "EUR", "r", sid))
        if draw(st.booleans()):
            # a capped component: net is not quantity x price
            minutes = D(draw(st.integers(1, 600)))
            cap = D(draw(st.integers(0, 1200))).scaleb(-2)
            out.append(RatedLine("parking", "parking", minutes, "min", D("0.10"), min(minutes * D("0.10"), cap),
                                 rate, "EUR", "r", sid))
        if draw(st.booleans()):
            amount = D(draw(st.integers(1, 300))).scaleb(-2)
            out.append(RatedLine("discount", "promo", D(1), "each", -amount, -amount, rate, "EUR", "r", sid))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=rated_sessions(), rc=st.booleans())
def test_property_any_billed_invoice_keeps_its_totals(lines: list[RatedLine], rc: bool) -> None:
    period = period_ending("monthly", 1, "Europe/Berlin", datetime(2026, 11, 1, 12, tzinfo=UTC))
    draft = assemble_invoice(account_id="a", currency="EUR", period=period, issue_date=date(2026, 11, 2),
                             terms=PaymentTerms(), period_lines=lines)
    base = demo_invoice_input("b2b", sessions=1)
    billed = tuple(BilledLine(ln.seq, ln.kind, ln.component, ln.description, ln.quantity, ln.unit, ln.unit_price,
                              ln.net, ln.tax_rate, ln.session_id) for ln in draft.lines)
    sign = D(-1) if draft.kind == "credit_note" else D(1)
    inp = dataclasses.replace(base, kind=draft.kind, lines=billed, net_total=draft.net_total,
                              tax_total=draft.tax_total, sessions=(), corrects=("INV-1",))
    doc = document_from_invoice(inp)  # raises totals_mismatch if a cent moved
    t = doc.totals
    assert t.net == draft.net_total * sign and t.tax == draft.tax_total * sign
    assert t.gross == t.net + t.tax
    assert sum((ln.net("EUR") for ln in doc.lines), D(0)) == t.line_total
    assert len(t.vat_groups) == len(draft.tax_groups)
    xml = xml_totals(render(doc, "xrechnung-cii"))
    assert (xml["net"], xml["tax"], xml["gross"]) == (t.net, t.tax, t.gross)
