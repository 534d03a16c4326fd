"""Rating semantics, one behaviour per test, amounts computed by hand next to each case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from dsl import CompiledRuleset, PriceSeries, RatingContext
from runtime.rating import MissingPrice
from runtime.sessions import SessionFacts

HEAD = "ruleset t currency EUR timezone Europe/Berlin holidays DE-BE\n"


def rs(body: str) -> CompiledRuleset:
    return CompiledRuleset.from_source(HEAD + body, "test.evb")


def sess(start: str = "2026-11-18T10:00:00+01:00", end: str = "2026-11-18T11:00:00+01:00", kwh: str = "10",
         **kw: Any) -> SessionFacts:
    d: dict[str, Any] = {"id": kw.pop("id", "s1"), "start": start, "end": end, "energy_kwh": kwh}
    d.update(kw)
    return SessionFacts.from_dict(d)


def net(ruleset: CompiledRuleset, s: SessionFacts, **ctx: Any) -> D:
    return ruleset.rate(s, RatingContext(**ctx)).net_unrounded


def comp(ruleset: CompiledRuleset, s: SessionFacts, component: str) -> D:
    return sum((ln.net for ln in ruleset.rate(s).lines if ln.component == component), D(0))


# ---------------------------------------------------------------- components
def test_start_fee_and_energy() -> None:
    r = rs('tariff a { vat 19%; start_fee 0.35; energy 0.49 per kWh }')
    res = r.rate(sess())
    assert res.net_unrounded == D("5.25")  # 0.35 + 10 x 0.49
    assert res.net_total == D("5.25")
    assert res.tax_total == D("1.00")  # 5.25 x 19% = 0.9975 -> 1.00, once per rate group
    assert res.gross_total == D("6.25")


def test_energy_per_wh_and_mwh_units() -> None:
    r = rs('tariff a { vat 0%; energy 0.0005 per Wh }')
    line = r.rate(sess(kwh="2")).lines[0]
    assert (line.quantity, line.unit, line.net) == (D(2000), "Wh", D("1.0000"))
    r2 = rs('tariff a { vat 0%; energy 300 per MWh }')
    assert net(r2, sess(kwh="2")) == D("0.6")


def test_charging_time_and_parking_split_at_charging_end() -> None:
    r = rs('tariff a { vat 19%; time 0.02 per min; parking 0.10 per min }')
    s = sess(end="2026-11-18T12:00:00+01:00", charging_end="2026-11-18T11:30:00+01:00")
    res = r.rate(s)
    assert comp(r, s, "time") == D("1.80")  # 90 min x 0.02
    assert comp(r, s, "parking") == D("3.00")  # 30 min x 0.10
    assert res.time_h == D("1.5") and res.parking_h == D("0.5")


def test_flat_fee_is_charged_once() -> None:
    r = rs('tariff a { vat 19%; flat 1.50 "Service fee"; start_fee 0.50 }')
    res = r.rate(sess())
    assert [ln.component for ln in res.lines] == ["start_fee", "flat"]
    assert res.net_unrounded == D("2.00")
    assert res.lines[1].description == "Service fee"


def test_blocking_fee_after_grace_and_capped() -> None:
    r = rs('tariff a { vat 19%; energy 0.49 per kWh; parking 0.10 per min after 240 min, at most 12.00 }')
    # plugged in 10:00-20:00, charging until 12:00: parking 12:00-20:00, billable from 14:00 = 360 min
    s = sess(end="2026-11-18T20:00:00+01:00", charging_end="2026-11-18T12:00:00+01:00")
    res = r.rate(s)
    parking = next(ln for ln in res.lines if ln.component == "parking")
    assert parking.quantity == D(360) and parking.net == D("36.00")
    cap = next(ln for ln in res.lines if ln.component == "cap")
    assert cap.net == D("-24.00")
    assert res.net_unrounded == D("4.90") + D("12.00")


def test_blocking_fee_free_within_grace() -> None:
    r = rs('tariff a { vat 19%; parking 0.10 per min after 240 min }')
    s = sess(end="2026-11-18T13:00:00+01:00", charging_end="2026-11-18T11:00:00+01:00")  # 3 h plugged
    assert net(r, s) == 0


def test_idle_grace_counts_parking_minutes() -> None:
    r = rs('tariff a { vat 19%; parking 0.10 per min after 30 min idle }')
    s = sess(end="2026-11-18T12:00:00+01:00", charging_end="2026-11-18T11:00:00+01:00")  # 60 min parking
    assert net(r, s) == D("3.00")  # 30 billable minutes


def test_step_sizes_round_up_once_per_session() -> None:
    r = rs('tariff a { vat 19%; energy 1.00 per kWh step 1 kWh; time 0.60 per h step 15 min }')
    s = sess(kwh="10.2", end="2026-11-18T11:05:00+01:00")
    r.rate(s)
    assert comp(r, s, "energy") == D("11.00")
    # 65 min -> 75 min = 1.25 h x 0.60
    assert comp(r, s, "time") == D("0.75")


def test_min_and_max_price() -> None:
    r = rs('tariff a { vat 19%; energy 0.49 per kWh; min_price 1.00; max_price 20.00 }')
    assert net(r, sess(kwh="1")) == D("1.00")
    assert net(r, sess(kwh="100")) == D("20.00")
    assert net(r, sess(kwh="10")) == D("4.90")
    low = r.rate(sess(kwh="1"))
    assert [ln.component for ln in low.lines] == ["energy", "min_price"]


# ---------------------------------------------------------------- conditions and splitting
NIGHT = 'tariff a { vat 19%; energy 0.49 per kWh; when time 22:00..06:00 { energy 0.39 per kWh } }'


def test_window_wrapping_midnight_splits_pro_rata() -> None:
    r = rs(NIGHT)
    s = sess(start="2026-11-18T21:00:00+01:00", end="2026-11-18T23:00:00+01:00", kwh="20")
    assert net(r, s) == D("8.80")  # 10 x 0.49 + 10 x 0.39
    s2 = sess(start="2026-11-18T05:00:00+01:00", end="2026-11-18T07:00:00+01:00", kwh="20")
    assert net(r, s2) == D("8.80")  # 10 x 0.39 before 06:00, 10 x 0.49 after


def test_window_split_follows_meter_values() -> None:
    r = rs(NIGHT)
    mv = [{"at": "2026-11-18T21:00:00+01:00", "energy_wh": "0"},
          {"at": "2026-11-18T22:00:00+01:00", "energy_wh": "4000"},
          {"at": "2026-11-18T23:00:00+01:00", "energy_wh": "20000"}]
    s = sess(start="2026-11-18T21:00:00+01:00", end="2026-11-18T23:00:00+01:00", kwh="20", meter_values=mv)
    assert net(r, s) == D("8.20")  # 4 x 0.49 + 16 x 0.39


def test_window_evaluated_in_local_time_across_dst() -> None:
    r = rs(NIGHT)
    # 2026-10-25: clocks go back 03:00 CEST -> 02:00 CET. 20:00 UTC Oct 24 = 22:00 CEST.
    s = sess(start="2026-10-24T19:00:00Z", end="2026-10-24T21:00:00Z", kwh="20")
    assert net(r, s) == D("8.80")  # 21:00-22:00 CEST day, 22:00-23:00 night
    # 04:00-06:00 UTC on Oct 25 = 05:00-07:00 CET
    s2 = sess(start="2026-10-25T04:00:00Z", end="2026-10-25T06:00:00Z", kwh="20")
    assert net(r, s2) == D("8.80")


def test_location_timezone_overrides_ruleset_zone() -> None:
    r = rs(NIGHT)
    # 21:00-23:00 UTC is 22:00-24:00 in Lisbon winter? No: Lisbon is UTC+0 in November.
    s = sess(start="2026-11-18T21:00:00Z", end="2026-11-18T23:00:00Z", kwh="20", timezone="Europe/Lisbon")
    assert net(r, s) == D("8.80")  # 21-22 day, 22-23 night in Lisbon
    s_berlin = sess(start="2026-11-18T21:00:00Z", end="2026-11-18T23:00:00Z", kwh="20")
    assert net(r, s_berlin) == D("7.80")  # 22-24 Berlin: all night


def test_weekdays_and_weekend() -> None:
    r = rs('tariff a { vat 19%; energy 0.49 per kWh; when weekend { energy 0.44 per kWh } }')
    assert net(r, sess()) == D("4.90")  # Wednesday
    sat = sess(start="2026-11-21T10:00:00+01:00", end="2026-11-21T11:00:00+01:00")
    assert net(r, sat) == D("4.40")


def test_date_range_end_exclusive() -> None:
    r = rs('tariff a { vat 19%; energy 0.49 per kWh; when date 2026-12-01..2027-01-01 { energy 0.29 per kWh } }')
    assert net(r, sess(start="2026-12-31T10:00:00+01:00", end="2026-12-31T11:00:00+01:00")) == D("2.90")
    assert net(r, sess(start="2027-01-01T10:00:00+01:00", end="2027-01-01T11:00:00+01:00")) == D("4.90")


def test_public_holiday_of_region() -> None:
    r = rs('tariff a { vat 19%; energy 0.49 per kWh; when holiday { energy 0.39 per kWh } }')
    xmas = sess(start="2026-12-25T10:00:00+01:00", end="2026-12-25T11:00:00+01:00")
    assert net(r, xmas) == D("3.90")
    # International Women's Day is a holiday in Berlin only
    r_by = rs('tariff a { vat 19%; energy 0.49 per kWh; when holiday DE-BY { energy 0.39 per kWh } }')
    march8 = sess(start="2027-03-08T10:00:00+01:00", end="2027-03-08T11:00:00+01:00")
    assert net(r, march8) == D("3.90")
    assert net(r_by, march8) == D("4.90")


def test_ac_dc_and_power() -> None:
    r = rs('tariff a { vat 19%; energy 0.49 per kWh; when dc and power >= 100 kW { energy 0.69 per kWh }'
           ' when dc { energy 0.59 per kWh } }')
    assert net(r, sess(power_type="DC", max_power_kw="150")) == D("6.90")
    assert net(r, sess(power_type="DC", max_power_kw="50")) == D("5.90")
    assert net(r, sess(power_type="AC", max_power_kw="11")) == D("4.90")


def test_energy_threshold_splits_the_session() -> None:
    r = rs('tariff a { vat 19%; energy 0.49 per kWh; when energy >= 20 kWh { energy 0.39 per kWh } }')
    assert net(r, sess(kwh="30")) == D("13.70")  # 20 x 0.49 + 10 x 0.39
    assert net(r, sess(kwh="15")) == D("7.35")


def test_duration_threshold() -> None:
    r = rs('tariff a { vat 19%; time 0.01 per min; when duration >= 60 min { time 0.05 per min } }')
    s = sess(end="2026-11-18T12:00:00+01:00")
    assert net(r, s) == D("3.60")  # 60 x 0.01 + 60 x 0.05


@pytest.mark.parametrize("cond,facts,hit", [
    ("location berlin_*", {"location_id": "berlin_07"}, True),
    ("location berlin_*", {"location_id": "munich_01"}, False),
    ("site adler", {"site_id": "adler"}, True),
    ('evse "DE*ABC*E1*"', {"evse_id": "DE*ABC*E100*1"}, True),
    ("group employees", {"customer_groups": ["employees", "x"]}, True),
    ("group employees", {"customer_groups": ["fleet"]}, False),
    ("product flex", {"product": "flex"}, True),
    ("token rfid", {"token_type": "RFID"}, True),
    ("token app", {"token_type": "rfid"}, False),
    ("partner NL-*", {"partner": "NL-TNM"}, True),
    ("roaming", {"roaming": True}, True),
    ("local", {"roaming": True}, False),
    ("country DE", {"country": "de"}, True),
    ("not group employees", {"customer_groups": ["employees"]}, False),
    ("group employees or roaming", {"roaming": True}, True),
    ("(group employees or roaming) and location b*", {"roaming": True, "location_id": "a1"}, False),
])
def test_conditions(cond: str, facts: dict[str, Any], hit: bool) -> None:
    r = rs(f'groups employees, fleet, x\nproduct flex {{ fee 1 per month }}\n'
           f'tariff a {{ vat 19%; energy 0.49 per kWh; when {cond} {{ energy 0.25 per kWh }} }}')
    assert net(r, sess(**facts)) == (D("2.50") if hit else D("4.90"))


def test_first_matching_rule_wins_per_component() -> None:
    r = rs('groups employees\ntariff a { vat 19%; start_fee 0.35; energy 0.49 per kWh\n'
           ' when group employees { energy 0.25 per kWh; start_fee 0 }\n'
           ' when time 22:00..06:00 { energy 0.39 per kWh } }')
    night_employee = sess(start="2026-11-18T23:00:00+01:00", end="2026-11-19T00:00:00+01:00",
                          customer_groups=["employees"])
    assert net(r, night_employee) == D("2.50")  # employees rule comes first, start fee 0
    night_public = sess(start="2026-11-18T23:00:00+01:00", end="2026-11-19T00:00:00+01:00")
    assert net(r, night_public) == D("4.25")  # 0.35 + 10 x 0.39


def test_indexed_price_follows_hourly_series() -> None:
    r = rs('series spot_de\ntariff dyn { vat 19%; energy index(spot_de) * 1.10 + 0.12 per kWh }')
    t0 = datetime(2026, 11, 18, 9, tzinfo=UTC)
    series = PriceSeries.from_points("spot_de", [(t0 + timedelta(hours=i), D("0.10") + D(i) / 100)
                                                 for i in range(4)])
    s = sess(start="2026-11-18T09:30:00Z", end="2026-11-18T11:30:00Z", kwh="20")
    # 5 kWh at hour 9 (0.10), 10 kWh at hour 10 (0.11), 5 kWh at hour 11 (0.12)
    expected = D(5) * (D("0.10") * D("1.10") + D("0.12")) + D(10) * (D("0.11") * D("1.10") + D("0.12")) \
        + D(5) * (D("0.12") * D("1.10") + D("0.12"))
    assert net(r, s, series={"spot_de": series}) == expected
    with pytest.raises(MissingPrice):
        r.rate(s)


# ---------------------------------------------------------------- discounts
DISC = '''groups new_customers
tariff a { vat 19%; start_fee 1.00; energy 0.50 per kWh; parking 0.10 per min }
discount winter "10% on energy" {
  10% off energy
  for location berlin_* and group new_customers
  valid 2026-12-01..2027-01-01, once per customer, exclusive
}
discount loyal "1.00 off" { 1.00 off session; priority 0 }
discount vip "25% off all" { 25% off session; code VIP25; priority 5; exclusive }
'''


def test_discount_percent_on_energy_with_restrictions() -> None:
    r = rs(DISC)
    s = sess(start="2026-12-10T10:00:00+01:00", end="2026-12-10T11:00:00+01:00", location_id="berlin_1",
             customer_groups=["new_customers"])
    res = r.rate(s)
    disc = [ln for ln in res.lines if ln.component == "discount"]
    # winter is exclusive and the highest-priority match (both priority 0, winter first in source)
    assert [d.net for d in disc] == [D("-0.50")]
    assert res.net_unrounded == D("5.50")
    # outside the validity: only the combinable 1.00 off
    s2 = sess(location_id="berlin_1", customer_groups=["new_customers"])
    assert r.rate(s2).net_unrounded == D("5.00")


def test_discount_code_and_priority() -> None:
    r = rs(DISC)
    s = sess(promo_codes=["VIP25"])
    assert r.rate(s).net_unrounded == D("4.50")  # 6.00 - 25%, exclusive beats the 1.00 off


def test_once_per_customer_across_sessions() -> None:
    r = rs(DISC)
    facts = dict(start="2026-12-10T10:00:00+01:00", end="2026-12-10T11:00:00+01:00", location_id="berlin_1",
                 customer_groups=["new_customers"], customer_id="c1")
    s1 = sess(id="a", **facts)
    s2 = sess(id="b", **{**facts, "start": "2026-12-11T10:00:00+01:00", "end": "2026-12-11T11:00:00+01:00"})
    results = r.rate_many([s1, s2])
    assert [x.net_unrounded for x in results] == [D("5.50"), D("5.00")]


def test_budget_in_money_is_never_exceeded() -> None:
    r = rs('tariff a { vat 19%; energy 1.00 per kWh }\n'
           'discount launch { 50% off energy; budget 12.00 }')
    sessions = [sess(id=str(i), start=f"2026-11-18T1{i}:00:00+01:00", end=f"2026-11-18T1{i}:30:00+01:00")
                for i in range(4)]
    results = r.rate_many(sessions)
    discounts = [sum((ln.net for ln in x.lines if ln.component == "discount"), D(0)) for x in results]
    assert discounts == [D("-5.0"), D("-5.0"), D("-2.00"), D(0)]


def test_discount_split_per_vat_rate() -> None:
    r = rs('tariff a { vat 19%; energy 1.00 per kWh; parking 0.10 per min vat 7% }\n'
           'discount d { 10% off session }')
    s = sess(end="2026-11-18T12:00:00+01:00", charging_end="2026-11-18T11:00:00+01:00")
    res = r.rate(s)
    d = {ln.tax_rate: ln.net for ln in res.lines if ln.component == "discount"}
    assert d == {D(19): D("-1.0"), D(7): D("-0.60")}


# ---------------------------------------------------------------- products and periods
PRODUCT = '''tariff a { vat 19%; start_fee 0.50; energy 0.50 per kWh }
product flex "Flex" { tariff a; fee 4.99 per month; includes 25 kWh }
product tiered "Fleet" {
  tariff a
  fee 10 per month
  energy graduated { 0..100 kWh at 0.45; 100..500 kWh at 0.40; 500.. kWh at 0.35 }
}
product bulk "Bulk" { tariff a; energy volume { 0..100 kWh at 0.45; 100.. kWh at 0.30 } }
product free3 "3 sessions free" { tariff a; includes 3 sessions }
'''


def _month(r: CompiledRuleset, product: str, kwhs: list[str]) -> Any:
    sessions = [sess(id=f"s{i}", start=f"2026-11-{i + 1:02d}T10:00:00+01:00",
                     end=f"2026-11-{i + 1:02d}T11:00:00+01:00", kwh=k, product=product)
                for i, k in enumerate(kwhs)]
    return r.rate_period(r.rate_many(sessions), product)


def test_subscription_fee_and_included_kwh() -> None:
    r = rs(PRODUCT)
    p = _month(r, "flex", ["20", "20"])
    # sessions: 2 x (0.50 + 10.00) = 21.00; fee 4.99; first 25 kWh credited at 0.50 = -12.50
    assert p.net_total == D("13.49")


def test_graduated_tiers_over_the_period() -> None:
    r = rs(PRODUCT)
    p = _month(r, "tiered", ["300", "300"])
    # 600 kWh: 100 x 0.45 + 400 x 0.40 + 100 x 0.35 = 45 + 160 + 35 = 240; fee 10; start fees 1.00
    assert p.net_total == D("251.00")
    assert [ln.quantity for ln in p.lines if ln.component == "tier"] == [D(100), D(400), D(100)]


def test_volume_tier_prices_every_kwh_at_the_reached_tier() -> None:
    r = rs(PRODUCT)
    assert _month(r, "bulk", ["60", "60"]).net_total == D("37.00")  # 120 x 0.30 + 1.00 start fees
    assert _month(r, "bulk", ["40", "40"]).net_total == D("37.00")  # 80 x 0.45 + 1.00


def test_included_sessions() -> None:
    r = rs(PRODUCT)
    p = _month(r, "free3", ["10", "10", "10", "10"])
    assert p.net_total == D("5.50")  # only the 4th session is paid


def test_goodwill_credit_never_goes_below_zero() -> None:
    r = rs(PRODUCT)
    results = r.rate_many([sess(product="flex")])
    p = r.rate_period(results, "flex", goodwill=D(100))
    assert p.net_total == 0


# ---------------------------------------------------------------- audit
def test_trace_names_rule_and_version() -> None:
    r = rs(NIGHT)
    s = sess(start="2026-11-18T21:00:00+01:00", end="2026-11-18T23:00:00+01:00", kwh="20")
    res = r.rate(s, RatingContext(version="2026-11"))
    assert res.version == "2026-11" and res.sha256 == r.sha256
    rules = {t.rule for t in res.trace}
    assert rules == {"tariff a, line 2: base", "tariff a, line 2: when time 22:00..06:00"}
    d = res.to_dict()
    assert d["trace"][0]["start"] == "2026-11-18T20:00:00Z"
    assert all(ln["rule"] for ln in d["lines"])


def test_rating_is_pure_and_repeatable() -> None:
    r = rs(DISC)
    s = sess(location_id="berlin_1")
    assert r.rate(s) == r.rate(s)
