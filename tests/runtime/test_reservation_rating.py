"""Reservations in rating (issue 18), guarded by hypothesis: a session started with a reservation
(``SessionFacts.reserved_from``) is priced as without it plus the reserved time and the reservation
fee; a reservation that expired unused is reservation time over its whole window and its fee,
never a start fee or energy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsl import CompiledRuleset
from runtime.sessions import MeterValue, SessionFacts, SessionInputError

RULESET = CompiledRuleset.from_source('''ruleset r currency EUR timezone Europe/Berlin
tariff t "T" {
  vat 19%
  start_fee 0.50
  energy 0.40 per kWh
  time 0.02 per min
  when reservation_expires {
    reservation 3.00 per h
    reservation_fee 2.00
  }
  reservation 1.20 per h
  reservation_fee 1.00
}
''', "resv.evb")

T0 = datetime(2026, 11, 2, 6, tzinfo=UTC)
RESERVATION = ("reservation", "reservation_fee")


def _lines(s: SessionFacts) -> dict[str, tuple[D, D]]:
    return {ln.component: (ln.quantity, ln.net) for ln in RULESET.rate(s).lines}


@settings(max_examples=150, deadline=None)
@given(start_s=st.integers(0, 86_400 * 7), dur_s=st.integers(1, 36_000), kwh=st.decimals("0", "120", places=3),
       reserved_s=st.integers(1, 86_400), metered=st.booleans())
def test_reserved_time_is_added_and_nothing_else_changes(start_s: int, dur_s: int, kwh: D, reserved_s: int,
                                                         metered: bool) -> None:
    start = T0 + timedelta(seconds=start_s)
    end = start + timedelta(seconds=dur_s)
    mvs = (MeterValue(start, D(0)), MeterValue(end, kwh * 1000)) if metered else None
    plain = SessionFacts(id="p", start=start, end=end, energy_kwh=kwh, meter_values=mvs)
    reserved = SessionFacts(id="p", start=start, end=end, energy_kwh=kwh, meter_values=mvs,
                            reserved_from=start - timedelta(seconds=reserved_s), reservation="RESERVATION")
    without, with_ = _lines(plain), _lines(reserved)
    assert {k: v for k, v in with_.items() if k not in RESERVATION} == without
    qty, net = with_["reservation"]
    assert qty == D(reserved_s) / 3600 and net == qty * D("1.20")
    assert with_["reservation_fee"] == (D(1), D("1.00"))


@settings(max_examples=100, deadline=None)
@given(start_s=st.integers(0, 86_400 * 7), window_s=st.integers(1, 86_400 * 7))
def test_an_expired_reservation_is_its_window_and_its_fee(start_s: int, window_s: int) -> None:
    start = T0 + timedelta(seconds=start_s)
    s = SessionFacts(id="x", start=start, end=start + timedelta(seconds=window_s), reserved_from=start,
                     reservation="RESERVATION_EXPIRES")
    lines = _lines(s)
    assert set(lines) == set(RESERVATION)
    assert lines["reservation"] == (D(window_s) / 3600, D(window_s) / 3600 * 3)
    assert lines["reservation_fee"] == (D(1), D("2.00"))


def test_a_reservation_after_the_start_is_refused() -> None:
    with pytest.raises(SessionInputError, match="reserved_from"):
        SessionFacts.from_dict({"id": "r", "start": "2026-11-02T10:00:00Z", "end": "2026-11-02T11:00:00Z",
                                "reserved_from": "2026-11-02T10:00:01Z"})
    s = SessionFacts.from_dict({"id": "r", "start": "2026-11-02T10:00:00Z", "end": "2026-11-02T11:00:00Z",
                                "energy_kwh": "5", "reserved_from": "2026-11-02T09:45:00Z",
                                "reservation": "RESERVATION"})
    assert _lines(s)["reservation"] == (D("0.25"), D("0.300"))
    assert s.reserved_from == datetime(2026, 11, 2, 9, 45, tzinfo=UTC)
