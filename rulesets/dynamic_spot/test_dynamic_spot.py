"""Dynamic tariff: each hour's energy at that hour's spot price plus margin."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

from api.commands import load_series_csv
from dsl import CompiledRuleset, RatingContext
from runtime.sessions import SessionFacts

HERE = Path(__file__).parent
RS = CompiledRuleset.from_source((HERE / "dynamic_spot.evb").read_text(), "dynamic_spot.evb")
SPOT = load_series_csv("spot_de", (HERE / "spot_de_2026-11-18.csv").read_text())
CTX = RatingContext(series={"spot_de": SPOT})


def test_session_across_three_hours() -> None:
    # 12:30-14:30 UTC, 20 kWh evenly: 5 kWh at 12h (0.032), 10 kWh at 13h (-0.005), 5 kWh at 14h (0.018)
    s = SessionFacts.from_dict({"id": "d", "start": "2026-11-18T12:30:00Z", "end": "2026-11-18T14:30:00Z",
                                "energy_kwh": "20"})
    res = RS.rate(s, CTX)
    energy = [ln for ln in res.lines if ln.component == "energy"]
    assert [(ln.quantity, ln.unit_price) for ln in energy] == [
        (D(5), D("0.1552")), (D(10), D("0.1145")), (D(5), D("0.1398"))]
    # 0.776 + 1.145 + 0.699 = 2.62, plus start fee 0.25
    assert res.net_unrounded == D("2.8700")


def test_dc_margin_and_minimum_price() -> None:
    s = SessionFacts.from_dict({"id": "e", "start": "2026-11-18T18:00:00Z", "end": "2026-11-18T18:20:00Z",
                                "energy_kwh": "30", "power_type": "DC"})
    # 30 x (0.188 x 1.10 + 0.22) = 30 x 0.4268 = 12.804, + 0.25
    assert RS.rate(s, CTX).net_unrounded == D("13.0540")
    tiny = SessionFacts.from_dict({"id": "f", "start": "2026-11-18T13:00:00Z", "end": "2026-11-18T13:10:00Z",
                                   "energy_kwh": "1"})
    assert RS.rate(tiny, CTX).net_unrounded == D("1.00")


def test_hotel_statement_reimburses_each_hour_at_its_spot_price() -> None:
    from datetime import date

    from dsl.revenue_share import revenue_share_terms
    from runtime.statements import SessionRevenue, build_statement, statement_period

    terms, diags = revenue_share_terms((HERE / "dynamic_spot.evb").read_text(), "hotel_spot")
    assert diags == [] and terms is not None
    s = SessionFacts.from_dict({"id": "d", "start": "2026-11-18T12:30:00Z", "end": "2026-11-18T14:30:00Z",
                                "energy_kwh": "20", "site_id": "hotel_adler"})
    rated = RS.rate(s, CTX)
    rev = SessionRevenue("d", date(2026, 11, 18), "EUR", D(20), tuple((ln.tax_rate, ln.net) for ln in rated.lines),
                         "hotel_adler", "r1", s)
    st = build_statement(period=statement_period("Europe/Berlin", month="2026-11"), sessions=[rev], terms=terms,
                         series={"spot_de": SPOT})
    # 5 kWh × (0.032 + 0.02) + 10 × (-0.005 + 0.02) + 5 × (0.018 + 0.02) = 0.26 + 0.15 + 0.19 = 0.60;
    # 10% of 2.87 = 0.287 -> 0.29; booking fee -0.15; payable 0.74
    assert [(ln.kind, ln.net) for ln in st.lines if ln.kind != "revenue"] == [
        ("share_percent", D("0.29")), ("reimbursement", D("0.60")), ("commission", D("-0.15"))]
    assert [x["unit_price"] for x in st.lines[2].trace[1:]] == ["0.052", "0.015", "0.038"]
    assert st.totals[0].payable == D("0.74")
