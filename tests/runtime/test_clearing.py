"""Clearing, the pure part: CDRs priced through the DSL as roaming sessions, statement totals,
the 7-day window, dispute outcomes, reverse charge, invoice lines, and the XLSX read back by
openpyxl (exact decimal digits in the cells)."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


_RULES = ("0.25 per session", "0.02 per kWh", "1% of net revenue", "2.5% of net revenue", "30.00 per month",
          "0.10 per session for location LOC2")


@settings(max_examples=40, deadline=None)
@given(rules=st.lists(st.sampled_from(_RULES), min_size=1, max_size=4, unique=True),
       direction=st.sampled_from(["charge", "pay"]),
       sessions=st.lists(st.tuples(st.decimals(min_value=D("0.001"), max_value=D(80), places=3),
                                   st.sampled_from(["LOC1", "LOC2"]), st.sampled_from(["", "keep", "accept", "adjust"]),
                                   st.decimals(min_value=D(0), max_value=D(50), places=2)), min_size=1, max_size=8))
def test_clearing_commissions_add_up_before_and_after_the_disputes(
        rules: list[str], direction: str, sessions: list[tuple[D, str, str, D]]) -> None:
    """The settlement invariant for eMSP clearing: what the eMSP owes = its CDRs' nets + the
    commission lines, each line exactly its rule over the CDRs it selects before rounding (a
    percentage of their nets) and within half a cent after; once the disputes are resolved the
    percentage is taken of the resolved nets (the others stay) and the invoice's net is the sum
    of the resolved CDRs and the lines. ``pay emsp``: the lines are what the CPO pays the eMSP
    (negative)."""
    from dsl.revenue_share import emsp_commissions

    res = compile_ruleset(RULESET + "commission fee {\n" + "\n".join(rules) + f"\n{direction} emsp NL-ABC\n}}\n", "c.evb")
    assert res.ok and res.ruleset is not None
    rs = res.ruleset
    blocks, errors = emsp_commissions(rs.ast, ["fee"], "NL*ABC")
    assert errors == []
    nov = datetime(2026, 11, 3, 9, tzinfo=UTC)
    rows = [C.Roaming(facts_of(f"c{i}", nov + timedelta(hours=i), kwh, "T1") | {"location_id": loc})
            for i, (kwh, loc, _r, _p) in enumerate(sessions)]
    facts: dict[str, object] = {}
    cdrs = C.price_sessions(rows, lambda _s: (rs, "roam"), RatingContext(), party_id="ABC",
                            facts_out=facts)  # type: ignore[arg-type]
    lines = C.commission_lines(blocks, cdrs, facts, date(2026, 11, 1), date(2026, 12, 1), "EUR")  # type: ignore[arg-type]
    by_id = {c.cdr_id: c for c in cdrs}
    sign = D(1) if direction == "charge" else D(-1)  # charged: the eMSP owes the lines; paid: it is owed them
    assert [ln.rule.split(": ", 1)[1] for ln in lines] == [r for r in rules if r != "0.10 per session for location LOC2"
                                                          or any(loc == "LOC2" for _k, loc, _r, _p in sessions)]

    def exact(ln: C.CommissionLine, nets: dict[str, D]) -> D:
        price = D(ln.rule.split(": ", 1)[1].split()[0].rstrip("%"))
        picked = [by_id[i] for i in ln.cdrs]
        if ln.kind == "monthly":
            return sign * price
        if ln.kind == "per_session":
            return sign * price * len(picked)
        if ln.kind == "per_kwh":
            return sign * price * sum((c.energy_kwh for c in picked), D(0))
        return sign * price / 100 * sum((nets[c.cdr_id] for c in picked), D(0))

    stated = {c.cdr_id: c.net for c in cdrs}
    for ln in lines:
        assert ln.exact == exact(ln, stated), ln
        assert abs(ln.net - ln.exact) <= D("0.005")
    totals = C.with_commissions(C.statement_totals(cdrs, "EUR"), lines)
    assert totals.net == sum(stated.values(), D(0)) + sum((ln.net for ln in lines), D(0))

    # the disputes resolved: keep ours, accept theirs, adjust to a third amount
    resolved = dict(stated)
    invoiced = []
    for c, (_k, _l, how, proposed) in zip(cdrs, sessions, strict=True):
        amount = {"": c.net, "keep": c.net, "accept": proposed, "adjust": proposed + D("0.01")}[how]
        resolved[c.cdr_id] = amount
        invoiced.append(C.InvoicedCdr(c.cdr_id, amount, c.tax_rate, False,
                                      how if how in ("accept", "adjust") and amount != c.net else ""))
    revised = C.revise_commissions(lines, resolved, "EUR")
    assert [(r.name, r.rule, r.kind, r.cdrs) for r in revised] == [(ln.name, ln.rule, ln.kind, ln.cdrs) for ln in lines]
    for ln, r in zip(lines, revised, strict=True):
        assert r.exact == exact(r, resolved)
        assert abs(r.net - r.exact) <= D("0.005")
        if ln.kind != "percent" or r.exact == ln.exact:
            assert r.net == ln.net
        # a line the resolutions changed keeps what the statement stated
        assert (r.stated is not None) == (r.kind == "percent" and r.quantity != ln.quantity)
        assert r.stated in (None, ln.net)
    doc = C.clearing_document(number="CLR-1", issue_date=date(2026, 12, 9), due_date=date(2027, 1, 8),
                              seller=None, buyer=None, cdrs=invoiced, month="2026-11",
                              period=(date(2026, 11, 1), date(2026, 11, 30)), currency="EUR", reverse=False,
                              commissions=revised)
    assert doc.totals.net == sum(resolved.values(), D(0)) + sum((r.net for r in revised), D(0))
