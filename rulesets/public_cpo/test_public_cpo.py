"""Public CPO: hand-checked sessions (amounts net of VAT unless stated)."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from dsl import CompiledRuleset
from runtime.sessions import SessionFacts

RS = CompiledRuleset.from_source((Path(__file__).parent / "public_cpo.evb").read_text(), "public_cpo.evb")

CASES: list[tuple[str, dict[str, Any], str]] = [
    # AC daytime: 11 kWh x 0.49; 30 min parked, inside the 240-minute grace
    ("ac day", dict(start="2026-11-18T10:00:00+01:00", end="2026-11-18T12:00:00+01:00", energy_kwh="11",
                    charging_end="2026-11-18T11:30:00+01:00"), "5.39"),
    # AC overnight 20:00-07:00, 22 kWh charged until 00:00: 11 kWh day (5.39) + 11 kWh night (4.29);
    # parked 00:00-07:00, billable after minute 240 (00:00): 420 min x 0.10 = 42.00, capped at 12.00
    ("ac overnight", dict(start="2026-11-18T20:00:00+01:00", end="2026-11-19T07:00:00+01:00",
                          energy_kwh="22", charging_end="2026-11-19T00:00:00+01:00"), "21.68"),
    # DC HPC at 300 kW: 40 kWh x 0.69; 5 min parked inside the 90-minute grace
    ("dc hpc", dict(start="2026-11-18T12:00:00+01:00", end="2026-11-18T12:30:00+01:00", energy_kwh="40",
                    charging_end="2026-11-18T12:25:00+01:00", power_type="DC", max_power_kw="300"), "27.60"),
    # DC 50 kW: 20 kWh x 0.59 = 11.80; plugged 130 min, billable parking 40 min x 0.20 = 8.00
    ("dc blocking", dict(start="2026-11-18T12:00:00+01:00", end="2026-11-18T14:10:00+01:00", energy_kwh="20",
                         charging_end="2026-11-18T12:30:00+01:00", power_type="DC", max_power_kw="50"), "19.80"),
    # DC at night keeps the DC price: 10 kWh x 0.59
    ("dc night", dict(start="2026-11-18T23:00:00+01:00", end="2026-11-18T23:20:00+01:00", energy_kwh="10",
                      power_type="DC", max_power_kw="50"), "5.90"),
    # a tiny AC session: 0.5 kWh x 0.49 = 0.245 -> minimum price 0.50
    ("minimum", dict(start="2026-11-18T10:00:00+01:00", end="2026-11-18T10:10:00+01:00", energy_kwh="0.5"),
     "0.50"),
    # step 1 Wh: 10.0004 kWh is billed as 10.001 kWh
    ("step", dict(start="2026-11-18T10:00:00+01:00", end="2026-11-18T11:00:00+01:00", energy_kwh="10.0004"),
     "4.90049"),
]


@pytest.mark.parametrize("name,facts,expected", CASES, ids=[c[0] for c in CASES])
def test_session(name: str, facts: dict[str, Any], expected: str) -> None:
    res = RS.rate(SessionFacts.from_dict({"id": name, **facts}))
    assert res.net_unrounded == D(expected)


def test_invoice_rounding_and_vat() -> None:
    res = RS.rate(SessionFacts.from_dict({"id": "x", **CASES[1][1]}))
    assert res.net_total == D("21.68")
    assert res.tax_total == D("4.12")  # 21.68 x 19% = 4.1192
    assert res.gross_total == D("25.80")


def test_policies_parse_for_later_issues() -> None:
    kinds = [p.kind for p in RS.ast.policies]
    assert kinds == ["billing", "hold", "dunning", "payments", "commission"]
    assert RS.ast.policies[2].statements[2].text() == "stage 3 after 14 days fee 10.00 approval required then block_tokens"


def test_the_payments_policy() -> None:
    payments = RS.policies.payments_named()
    assert payments is not None
    assert (payments.method, payments.pre_notification_days, payments.lead_time_days, payments.minimum) == (
        "sepa_direct_debit", 5, 5, D("1.00"))
    assert payments.return_charge("MD06", D("3.00")) == D("3.00")  # the bank's fee, passed on
    assert payments.return_charge("AM04", D("7.50")) == D("3.00")  # a flat 3.00 for lack of funds
