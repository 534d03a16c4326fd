"""Employer/fleet: the same charger, four kinds of driver."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from dsl import CompiledRuleset
from runtime.sessions import SessionFacts

RS = CompiledRuleset.from_source((Path(__file__).parent / "fleet_employer.evb").read_text(), "fleet.evb")

WORKDAY = dict(start="2026-11-18T08:00:00+01:00", end="2026-11-18T18:00:00+01:00", energy_kwh="20",
               charging_end="2026-11-18T11:00:00+01:00")  # Wednesday, 10 h plugged, 3 h charging


@pytest.mark.parametrize("groups,expected", [
    (["pool_cars"], "0"),                 # free energy; parking grace 600 min covers the day
    (["management"], "0"),
    (["employees"], "5.40"),              # 20 x 0.27
    ([], "19.80"),                        # visitor: 20 x 0.49 = 9.80 + parking 360 min x 0.10 capped at 10.00
])
def test_workday(groups: list[str], expected: str) -> None:
    res = RS.rate(SessionFacts.from_dict({"id": "w", **WORKDAY, "customer_groups": groups}))
    assert res.net_unrounded == D(expected)


def test_employee_weekend_and_holiday_rate() -> None:
    sat: dict[str, Any] = dict(WORKDAY, start="2026-11-21T08:00:00+01:00", end="2026-11-21T09:00:00+01:00",
                               charging_end=None)
    assert RS.rate(SessionFacts.from_dict({"id": "a", **sat, "customer_groups": ["employees"]})).net_unrounded \
        == D("4.40")
    # All Saints' Day (1 Nov) is a public holiday in North Rhine-Westphalia; 2027-11-01 is a Monday
    hol: dict[str, Any] = dict(sat, start="2027-11-01T08:00:00+01:00", end="2027-11-01T09:00:00+01:00")
    assert RS.rate(SessionFacts.from_dict({"id": "b", **hol, "customer_groups": ["employees"]})).net_unrounded \
        == D("4.40")


def test_employee_overnight_parking_after_ten_hours() -> None:
    s = SessionFacts.from_dict({"id": "n", "start": "2026-11-18T08:00:00+01:00", "end": "2026-11-18T20:00:00+01:00",
                                "energy_kwh": "10", "charging_end": "2026-11-18T10:00:00+01:00",
                                "customer_groups": ["employees"]})
    # 10 x 0.27 = 2.70; 12 h plugged, parking billable after 600 min: 120 min x 0.05 = 6.00 -> capped 5.00
    assert RS.rate(s).net_unrounded == D("7.70")
