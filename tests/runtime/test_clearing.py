"""Clearing, the pure part: CDRs priced through the DSL as roaming sessions, statement totals,
the 7-day window, dispute outcomes, reverse charge, invoice lines, and the XLSX read back by
openpyxl (exact decimal digits in the cells)."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest

from dsl.compiler import compile_ruleset
from runtime import clearing as C
from runtime.rating import RatingContext
from tests.clearing_seed import RULESET, facts_of, roam_net

T0 = datetime(2026, 11, 3, 9, tzinfo=UTC)


def _cdrs() -> list[C.ClearingCdr]:
    res = compile_ruleset(RULESET, "c.evb")
    assert res.ok and res.ruleset is not None
    rs = res.ruleset
    rows = [C.Roaming(facts_of("a", T0, D(10), "T1"), "NL-ABC-C1"),
            C.Roaming(facts_of("b&<x>", T0 + timedelta(days=1), D("33.333"), "T2"), "NL-ABC-C2", late=True)]
    return C.price_sessions(rows, lambda _s: (rs, "roam"), RatingContext(), party_id="ABC")


def test_priced_as_roaming_with_the_agreements_tariff() -> None:
    a, b = _cdrs()
    assert (a.net, b.net) == (roam_net(D(10)), roam_net(D("33.333")))
    assert a.tariff == "roam" and a.tax == (a.net * D("0.19")).quantize(D("0.01")) and a.tax_rate == 19
    t = C.statement_totals([a, b], "EUR")
    assert (t.cdrs, t.late, t.net, t.gross) == (2, 1, a.net + b.net, a.net + b.net + a.tax + b.tax)
    with pytest.raises(C.ClearingError) as exc:
        C.statement_totals([a], "CHF")
    assert exc.value.code == "currency_mismatch"


def test_window_disputes_and_reverse_charge() -> None:
    sent = datetime(2030, 1, 1, tzinfo=UTC)
    assert C.window_open(sent, sent + timedelta(days=6, hours=23))
    assert not C.window_open(sent, sent + timedelta(days=7))
    d = C.Dispute("a", D("5.80"), D("4.00"))
    assert [C.final_net(C.Dispute("a", d.ours, d.proposed, r, D("4.90"))) for r in ("accept", "keep", "adjust")] \
        == [D("4.00"), D("5.80"), D("4.90")]
    with pytest.raises(C.ClearingError):
        C.final_net(d)
    assert C.reverse_charge("DE", "NL", "NL123456789B01") and not C.reverse_charge("DE", "DE", "DE811907980")
    assert not C.reverse_charge("DE", "NL", "")
    lines = C.invoice_lines([C.InvoicedCdr("a", D("5.80"), D(19)), C.InvoicedCdr("b", D("1.00"), D(19), True),
                             C.InvoicedCdr("c", D("4.00"), D(19), resolution="accept")], "2026-11", "en")
    assert lines == [("Roaming charging sessions 2026-11: 1 CDRs", D("5.80"), D(19)),
                     ("Corrections: 1 late CDRs of earlier months", D("1.00"), D(19)),
                     ("CDR c (dispute accepted)", D("4.00"), D(19))]


def test_xlsx_reads_back_with_exact_amounts() -> None:
    import openpyxl

    cdrs = _cdrs()
    totals = C.statement_totals(cdrs, "EUR")
    data = C.write_xlsx(C.XlsxHeader("2026-11", "Roam & Co", "NL*ABC", "2026-11", date(2026, 12, 1)), cdrs, totals)
    assert data == C.write_xlsx(C.XlsxHeader("2026-11", "Roam & Co", "NL*ABC", "2026-11", date(2026, 12, 1)),
                                cdrs, totals)  # the same statement, the same bytes
    sheet = zipfile.ZipFile(io.BytesIO(data)).read("xl/worksheets/sheet1.xml").decode()
    assert f"<v>{cdrs[1].net}</v>" in sheet and "b&amp;&lt;x&gt;" in sheet
    wb = openpyxl.load_workbook(io.BytesIO(data))
    rows = list(wb["CDRs"].iter_rows(values_only=True))
    head = rows[0]
    assert head[:3] == ("cdr_id", "start_date_time", "end_date_time") and len(rows) == 3
    b = dict(zip(head, rows[2], strict=True))
    assert b["cdr_id"] == "b&<x>" and b["correction"] == "late" and D(str(b["net"])) == cdrs[1].net
    assert D(str(b["total_energy"])) == D("33.333") and b["contract_id"] == "NL-ABC-C2"
    assert wb["CDRs"].cell(2, 22).number_format == "0.00" and wb["CDRs"].cell(2, 12).number_format == "0.0000"
    tot = dict(wb["Totals"].iter_rows(values_only=True))
    assert tot["partner"] == "Roam & Co" and tot["cdrs"] == 2 and D(str(tot["net"])) == totals.net


COMMISSIONS = RULESET + """
commission roaming_fee {
  0.25 per session
  0.02 per kWh for location LOC2
  1% of net revenue
  30.00 per month
  charge emsp NL-ABC
  valid 2026-11-16..
}
"""


def test_charge_emsp_commission_on_a_clearing_statement() -> None:
    """A ``charge emsp`` block's rules over the statement's CDRs through runtime.settlements'
    evaluation (the ``for`` condition on each session's facts (its location), the validity from the 16th: the
    month's fee pro rata 15 of 30 days), one line per rule with its rule traced, in the totals,
    the XLSX totals sheet and the invoice."""
    from dsl.revenue_share import emsp_commissions

    res = compile_ruleset(COMMISSIONS, "c.evb")
    assert res.ok and res.ruleset is not None
    rs = res.ruleset
    blocks, errors = emsp_commissions(rs.ast, ["roaming_fee"], "NL*ABC")
    assert errors == []
    assert emsp_commissions(rs.ast, ["roaming_fee"], "DE*XYZ")[1] == [
        "commission 'roaming_fee' charges the eMSP NL-ABC, not DE*XYZ"]
    nov = datetime(2026, 11, 1, 9, tzinfo=UTC)
    rows = [C.Roaming(facts_of(i, nov + timedelta(days=d), kwh, "T1") | {"location_id": loc}) for i, d, kwh, loc in
            (("early", 2, D(30), "LOC2"), ("small", 17, D(10), "LOC1"), ("big", 20, D("25.4"), "LOC2"))]
    facts: dict[str, object] = {}
    cdrs = C.price_sessions(rows, lambda _s: (rs, "roam"), RatingContext(), party_id="ABC",
                            facts_out=facts)  # type: ignore[arg-type]
    lines = C.commission_lines(blocks, cdrs, facts, date(2026, 11, 1), date(2026, 12, 1), "EUR")  # type: ignore[arg-type]
    by = {ln.kind: ln for ln in lines}
    small, big = roam_net(D(10)), roam_net(D("25.4"))
    assert [ln.kind for ln in lines] == ["per_session", "per_kwh", "percent", "monthly"]
    assert (by["per_session"].quantity, by["per_session"].net, by["per_session"].cdrs) == (
        2, D("0.50"), ("small", "big"))  # "early" is before the block's validity
    assert (by["per_kwh"].quantity, by["per_kwh"].net, by["per_kwh"].cdrs) == (D("25.4"), D("0.51"), ("big",))
    assert by["percent"].exact == (small + big) / 100 and by["percent"].net == ((small + big) / 100).quantize(D("0.01"))
    assert (by["monthly"].quantity, by["monthly"].unit, by["monthly"].net, by["monthly"].month) == (
        15, "days of 30", D("15.00"), "2026-11")
    assert all(ln.tax_rate == 19 for ln in lines)
    assert by["per_kwh"].rule == "commission roaming_fee, line 18: 0.02 per kWh for location LOC2"
    assert "[commission roaming_fee, line 18" in by["per_kwh"].text("de")
    assert [C.CommissionLine.from_dict(ln.to_dict()) for ln in lines] == lines

    plain = C.statement_totals(cdrs, "EUR")
    t = C.with_commissions(plain, lines)
    extra = sum((ln.net for ln in lines), D(0))
    assert t.net == plain.net + extra and t.gross == t.net + t.tax
    assert t.tax == plain.tax + sum(((ln.net * D("0.19")).quantize(D("0.01")) for ln in lines), D(0))
    assert [c["rule"] for c in t.to_dict()["commissions"]] == [ln.rule for ln in lines]

    import openpyxl

    hdr = C.XlsxHeader("S1", "Roam", "NL*ABC", "2026-11", date(2026, 12, 1))
    wb = openpyxl.load_workbook(io.BytesIO(C.write_xlsx(hdr, cdrs, t)), read_only=True)
    sheet = dict(wb["Totals"].iter_rows(values_only=True))
    assert D(str(sheet["net"])) == t.net
    assert D(str(sheet["commission roaming_fee 2026-11 [commission roaming_fee, line 20: 30.00 per month]"])) == 15

    invoiced = [C.InvoicedCdr(c.cdr_id, c.net, c.tax_rate) for c in cdrs]
    doc = C.clearing_document(number="CLR-1", issue_date=date(2026, 12, 9), due_date=date(2027, 1, 8),
                              seller=None, buyer=None, cdrs=invoiced, month="2026-11",
                              period=(date(2026, 11, 1), date(2026, 11, 30)), currency="EUR", reverse=False,
                              commissions=lines)
    assert doc.totals.net == t.net and doc.totals.tax == t.tax
    assert [ln.name for ln in doc.lines][1:] == [ln.text("de") for ln in lines]
    # a partner abroad: the commission lines are reverse charge as the CDRs
    rc = C.clearing_document(number="CLR-2", issue_date=date(2026, 12, 9), due_date=date(2027, 1, 8),
                             seller=None, buyer=None, cdrs=invoiced, month="2026-11",
                             period=(date(2026, 11, 1), date(2026, 11, 30)), currency="EUR", reverse=True,
                             language="en", commissions=lines)
    assert rc.totals.net == t.net and rc.totals.tax == 0
    assert {ln.vat_category.value for ln in rc.lines} == {"AE"}
    assert rc.lines[3].name.startswith("Commission roaming_fee: of ")
