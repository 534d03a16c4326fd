"""Property: for any generated invoice, lines sum to the net total, VAT is computed once per
group, gross = net + tax, and the XML (UBL and CII) and the PDF state the model's totals."""

from __future__ import annotations

import dataclasses
from decimal import Decimal as D
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.documents import render
from runtime.documents.model import AllowanceCharge, Document, Line, VatCategory
from runtime.money import quantize

from .conftest import explain
from .helpers import pdf_totals, xml_totals
from .samples import make

TAXES = st.sampled_from([
    (VatCategory.STANDARD, D(19)), (VatCategory.STANDARD, D(7)),
    (VatCategory.ZERO_RATED, D(0)), (VatCategory.EXEMPT, D(0)),
])
UNITS = st.sampled_from(["KWH", "MIN", "HUR", "C62", "MON"])


@st.composite
def lines(draw: Any) -> tuple[Line, ...]:
    out = []
    for i in range(draw(st.integers(1, 8))):
        category, rate = draw(TAXES)
        quantity = D(draw(st.integers(1, 500_000))).scaleb(-3)
        price = D(draw(st.integers(0, 200_000))).scaleb(-4)
        out.append(Line(str(i + 1), f"Position {i + 1}", quantity, draw(UNITS), price,
                        category, rate))
    return tuple(out)


@st.composite
def invoices(draw: Any) -> Document:
    doc_lines = draw(lines())
    used = sorted({(line.vat_category, line.vat_rate) for line in doc_lines},
                  key=lambda k: (k[0].value, k[1]))
    acs = []
    for _ in range(draw(st.integers(0, 2))):
        category, rate = draw(st.sampled_from(used))
        acs.append(AllowanceCharge(draw(st.booleans()), D(draw(st.integers(1, 500))).scaleb(-2),
                                   "Anpassung", category, rate))
    doc = dataclasses.replace(make("b2b_domestic", sessions=0), lines=doc_lines,
                              allowances_charges=tuple(acs))
    # keep every VAT group non-negative: allowances larger than a group are not a real invoice
    if any(g.taxable < 0 for g in doc.totals.vat_groups):
        doc = dataclasses.replace(doc, allowances_charges=())
    prepaid = D(draw(st.integers(0, 100))) * doc.totals.gross / 100
    return dataclasses.replace(doc, prepaid=quantize(prepaid, 2))


def check_invariants(doc: Document) -> None:
    t = doc.totals
    assert t.line_total == sum(line.net("EUR") for line in doc.lines)
    assert all(line.net("EUR") == quantize(line.net("EUR"), 2) for line in doc.lines)
    assert t.net == t.line_total - t.allowance_total + t.charge_total
    keys = [(g.category, g.rate) for g in t.vat_groups]
    assert len(keys) == len(set(keys))  # one breakdown per (category, rate)
    for g in t.vat_groups:
        assert g.tax == quantize(g.taxable * g.rate / 100, 2)  # once, on the group's basis
    assert t.tax == sum(g.tax for g in t.vat_groups)
    assert t.net == sum(g.taxable for g in t.vat_groups)
    assert t.gross == t.net + t.tax
    assert t.payable == t.gross - t.prepaid


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=invoices())
def test_totals_invariants_and_xml_agree(validate: Any, doc: Document) -> None:
    check_invariants(doc)
    t = doc.totals
    for fmt in ("xrechnung-ubl", "xrechnung-cii"):
        xml = render(doc, fmt)
        got = xml_totals(xml)
        assert (got["line_total"], got["net"], got["tax"], got["gross"], got["prepaid"],
                got["payable"]) == (t.line_total, t.net, t.tax, t.gross, t.prepaid, t.payable)
        assert got["vat_groups"] == len(t.vat_groups)
        report = validate(xml)
        assert report.valid, explain(report)


@settings(max_examples=12, deadline=None, database=None)
@given(doc=invoices())
def test_pdf_agrees_with_model(doc: Document) -> None:
    on_page = pdf_totals(render(doc, "pdf"), doc.language)
    t = doc.totals
    assert (on_page["line_total"], on_page["net"], on_page["tax"], on_page["gross"],
            on_page["prepaid"], on_page["payable"]) == (
        t.line_total, t.net, t.tax, t.gross, t.prepaid, t.payable)
    assert on_page["vat_groups"] == len(t.vat_groups)
