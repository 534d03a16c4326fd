"""The document model: totals computed once, rounding rules, refusals."""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal as D

import pytest

from runtime.documents.model import (
    AllowanceCharge,
    DocumentKind,
    Line,
    VatCategory,
    compute_totals,
)

from .samples import make


def test_lines_rounded_once_then_summed() -> None:
    doc = dataclasses.replace(
        make("b2b_domestic"),
        lines=(
            Line("1", "a", D(3), "KWH", D("0.3333")),  # 0.9999 -> 1.00
            Line("2", "b", D(1), "KWH", D("0.005")),  # half-up -> 0.01
        ),
    )
    t = doc.totals
    assert t.line_total == D("1.01")
    assert t.tax == D("0.19")  # 1.01 * 19 % = 0.1919, once for the group
    assert t.gross == D("1.20") and t.payable == D("1.20")


def test_vat_once_per_group_not_per_line() -> None:
    # three lines of 0.05 at 19 %: per line VAT would be 3 x 0.01 = 0.03, per group 0.15 -> 0.03
    # and four lines of 0.03: per line 4 x 0.01 = 0.04, per group 0.12 * 0.19 = 0.0228 -> 0.02
    lines = tuple(Line(str(i), "x", D(1), "C62", D("0.03")) for i in range(4))
    doc = dataclasses.replace(make("b2b_domestic"), lines=lines)
    assert doc.totals.tax == D("0.02")
    assert len(doc.totals.vat_groups) == 1


def test_mixed_groups_and_allowances() -> None:
    t = make("mixed_vat").totals
    cats = [(g.category, g.rate) for g in t.vat_groups]
    assert cats == [(VatCategory.STANDARD, D(19)), (VatCategory.STANDARD, D(7)),
                    (VatCategory.ZERO_RATED, D(0))]
    assert t.net == sum(g.taxable for g in t.vat_groups)
    assert t.tax == sum(g.tax for g in t.vat_groups)
    a = make("allowance_charge").totals
    assert a.allowance_total == D("5.00") and a.charge_total == D("2.50")
    assert a.net == a.line_total - D("5.00") + D("2.50")


def test_reverse_charge_carries_exemption() -> None:
    (group,) = make("b2b_reverse_charge").totals.vat_groups
    assert group.category is VatCategory.REVERSE_CHARGE and group.tax == 0
    assert group.exemption_code == "VATEX-EU-AE" and group.exemption_reason
    (z,) = [g for g in make("mixed_vat").totals.vat_groups if g.category is VatCategory.ZERO_RATED]
    assert z.exemption_code is None and z.exemption_reason is None  # BR-Z-10


def test_prepaid_reduces_payable() -> None:
    t = make("prepaid").totals
    assert t.payable == t.gross - D("10.00")
    assert t.money("payable").currency == "EUR"


def test_refusals() -> None:
    with pytest.raises(TypeError):
        Line("1", "x", 1.5, "KWH", D(1))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Line("1", "x", D(1), "KWH", D(-1))
    with pytest.raises(ValueError):
        AllowanceCharge(False, D(-1), "x")
    with pytest.raises(ValueError):
        dataclasses.replace(make("b2c"), kind=DocumentKind.CREDIT_NOTE)  # no preceding invoice
    with pytest.raises(ValueError):
        dataclasses.replace(make("b2c"), language="es")


def test_type_codes() -> None:
    assert [make(c).kind.type_code for c in ("b2c", "credit_note", "self_billing")] == [
        "380", "381", "389"]


def test_totals_are_the_single_source() -> None:
    doc = make("mixed_vat")
    assert doc.totals == compute_totals(doc)
    assert doc.issue_date == date(2026, 11, 3)
