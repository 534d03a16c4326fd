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
