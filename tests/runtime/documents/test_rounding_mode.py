"""Issue 11, defect 1: the ruleset's rounding mode reaches the document (VAT is one function)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.documents import render
from runtime.documents.demo import DEMO_CUSTOMERS, DEMO_TENANT
from runtime.documents.from_invoice import BilledLine, InvoiceInput, document_from_invoice
from runtime.invoicing import PaymentTerms, assemble_invoice, period_ending
from runtime.money import ROUNDING_MODES
from runtime.rated import RatedLine, RatingResult

from .helpers import pdf_totals, xml_totals


def _input(nets: list[D], mode: str, case: str = "b2c") -> InvoiceInput:
    period = period_ending("monthly", 1, "Europe/Berlin", datetime(2026, 11, 1, 12, tzinfo=UTC))
    rated = [RatedLine("start_fee", "start fee", D(1), "session", n, n, D(19), "EUR", "r", f"S{i}")
             for i, n in enumerate(nets)]
    draft = assemble_invoice(account_id="a", currency="EUR", period=period, issue_date=date(2026, 11, 2),
                             terms=PaymentTerms("net", 14), period_lines=rated, rounding=mode)
    lines = tuple(BilledLine(ln.seq, ln.kind, ln.component, ln.description, ln.quantity, ln.unit, ln.unit_price,
                             ln.net, ln.tax_rate, ln.session_id) for ln in draft.lines)
    return InvoiceInput(
        invoice_id="inv", kind=draft.kind, number="RE-1", issue_date=draft.issue_date, due_date=draft.due_date,
        currency="EUR", period_start=period.local_start, period_end=period.local_end, payment_terms="net 14",
        lines=lines, net_total=draft.net_total, tax_total=draft.tax_total, tenant=DEMO_TENANT,
        customer=DEMO_CUSTOMERS[case], rounding=mode)


def test_half_even_invoice_gets_a_document_with_the_same_vat() -> None:
    inp = _input([D("1.50")], "half_even")
    assert inp.tax_total == D("0.28")  # 1.50 x 19 % = 0.285, half-even
    doc = document_from_invoice(inp)  # raised totals_mismatch (document 0.29) before the fix
    assert doc.rounding == "half_even"
    assert (doc.totals.net, doc.totals.tax) == (D("1.50"), D("0.28"))


def test_the_default_stays_half_up() -> None:
    inp = dataclasses.replace(_input([D("1.50")], "half_up"))
    assert document_from_invoice(inp).totals.tax == D("0.29")


amounts = st.decimals(min_value=D("0.01"), max_value=D("99.99"), places=4)


@settings(max_examples=40, deadline=None)
@given(mode=st.sampled_from(sorted(ROUNDING_MODES)), nets=st.lists(amounts, min_size=1, max_size=6))
def test_rating_invoice_document_agree_for_every_mode(mode: str, nets: list[D]) -> None:
    inp = _input(nets, mode, "public")
    # rating's own VAT groups agree with the invoice's
    rated = [RatedLine("start_fee", "start fee", D(1), "session", n, n, D(19), "EUR", "r", "S") for n in nets]
    rating = RatingResult("S", "rs", "1", "sha", "t", "EUR", tuple(rated))
    assert rating.tax_groups(mode) == {D(19): (inp.net_total, inp.tax_total)}
    doc = document_from_invoice(inp)
    t = doc.totals
    assert (t.net, t.tax) == (inp.net_total, inp.tax_total)
    for fmt in ("xrechnung-ubl", "xrechnung-cii"):
        got = xml_totals(render(doc, fmt))
        assert (got["net"], got["tax"], got["gross"]) == (t.net, t.tax, t.gross)


@settings(max_examples=15, deadline=None, database=None)
@given(mode=st.sampled_from(sorted(ROUNDING_MODES)), nets=st.lists(amounts, min_size=1, max_size=4))
def test_the_pdf_states_the_invoice_totals_for_every_mode(mode: str, nets: list[D]) -> None:
    inp = _input(nets, mode)
    doc = document_from_invoice(inp)
    on_page = pdf_totals(render(doc, "pdf"), doc.language)
    assert (on_page["net"], on_page["tax"], on_page["gross"]) == (
        inp.net_total, inp.tax_total, inp.net_total + inp.tax_total)
