"""Depot with partner-specific prices: the token's issuing partner picks the price."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from dsl import CompiledRuleset
from runtime.sessions import SessionFacts

RS = CompiledRuleset.from_source((Path(__file__).parent / "partner_depot.evb").read_text(), "depot.evb")


def truck(partner: str, start: str, end: str, kwh: str, charging_end: str | None = None,
          dc: bool = True) -> SessionFacts:
    return SessionFacts.from_dict({"id": partner or "adhoc", "start": start, "end": end, "energy_kwh": kwh,
                                   "charging_end": charging_end, "partner": partner, "roaming": bool(partner),
                                   "power_type": "DC" if dc else "AC", "location_id": "hamburg_sued"})


@pytest.mark.parametrize("partner,expected", [
    ("DE-FLX", "102.00"),   # 300 x 0.34
    ("NL-TRK", "110.00"),   # 2.00 + 300 x 0.36
    ("DE-BUS", "93.00"),    # 300 x 0.31 (DC)
    ("", "165.00"),         # 300 x 0.55
])
def test_daytime_prices(partner: str, expected: str) -> None:
    s = truck(partner, "2026-11-18T10:00:00+01:00", "2026-11-18T13:00:00+01:00", "300")
    assert RS.rate(s).net_unrounded == D(expected)


def test_flx_night_slot_split_at_window() -> None:
    # 19:00-21:00 local, 200 kWh evenly: 100 kWh at 0.34 + 100 kWh at 0.28
    s = truck("DE-FLX", "2026-11-18T19:00:00+01:00", "2026-11-18T21:00:00+01:00", "200")
    assert RS.rate(s).net_unrounded == D("62.00")


def test_idle_truck_pays_after_45_minutes() -> None:
    # charged 10:00-12:00, left until 13:30: 90 min idle, 45 free, 45 x 0.50 = 22.50
    s = truck("DE-BUS", "2026-11-18T10:00:00+01:00", "2026-11-18T13:30:00+01:00", "200",
              charging_end="2026-11-18T12:00:00+01:00")
    assert RS.rate(s).net_unrounded == D("62.00") + D("22.50")


def test_partners_pay_by_transfer() -> None:
    payments = RS.policies.payments_named()
    assert payments is not None and payments.method == "bank_transfer" and payments.return_charges == ()
