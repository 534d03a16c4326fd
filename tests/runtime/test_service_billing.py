"""Service items over billing periods: prices scaled to the period, one-off charges once, validity
windows, ruleset prices by name, and the exact totals an invoice gets from them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest

from runtime.invoicing import (
    PaymentTerms,
    PeriodDiscount,
    ServicePrice,
    ServiceSubscription,
    UnknownService,
    ad_hoc_period,
    assemble_invoice,
    bill_services,
    period_ending,
)

NOV = period_ending("monthly", 1, "Europe/Berlin", datetime(2026, 12, 1, 12, tzinfo=UTC))
Q4 = period_ending("quarterly", 1, "Europe/Berlin", datetime(2027, 1, 1, 12, tzinfo=UTC))
CATALOGUE = {
    "supervision.ac_charger": ServicePrice("supervision.ac_charger", "AC supervision", D("9.00"), "month", D(19)),
    "supervision.sim": ServicePrice("supervision.sim", "SIM", D("24.00"), "year", D(19)),
    "supervision.rfid_card": ServicePrice("supervision.rfid_card", "RFID card", D("5.00"), "each", D(19)),
}


def sub(service: str = "", *, qty: str = "1", price: str | None = None, per: str = "", rate: str | None = None,
        start: date = date(2026, 1, 1), end: date | None = None, desc: str = "") -> ServiceSubscription:
    return ServiceSubscription("svc_1", service, desc, D(qty), None if price is None else D(price),
                               None if rate is None else D(rate), per, start, end)


def test_periods_are_what_the_tests_assume() -> None:
    assert (NOV.local_start, NOV.local_end, NOV.months) == (date(2026, 11, 1), date(2026, 12, 1), 1)
    assert (Q4.local_start, Q4.local_end, Q4.months) == (date(2026, 10, 1), date(2027, 1, 1), 3)


@pytest.mark.parametrize("s, period, unit_price, unit", [
    (sub("supervision.ac_charger"), NOV, D("9.00"), "month"),
    (sub("supervision.ac_charger"), Q4, D("27.00"), "quarter"),
    (sub("supervision.sim"), NOV, D(2), "month"),
    (sub("supervision.sim"), Q4, D(6), "quarter"),
    (sub(price="30.00", per="quarter", rate="19", desc="x"), NOV, D(10), "month"),
    (sub(price="100", per="year", rate="19", desc="x"), NOV, D(100) / 12, "month"),
    (sub("supervision.rfid_card", start=date(2026, 11, 30)), NOV, D("5.00"), "each"),
])
def test_price_per_period(s: ServiceSubscription, period: object, unit_price: D, unit: str) -> None:
    [item] = bill_services([s], period, CATALOGUE)  # type: ignore[arg-type]
    assert (item.unit_price, item.unit) == (unit_price, unit)


@pytest.mark.parametrize("s", [
    sub("supervision.ac_charger", start=date(2026, 12, 1)),  # starts after the period
    sub("supervision.ac_charger", end=date(2026, 11, 1)),  # ended when it began
    sub("supervision.rfid_card", start=date(2026, 10, 31)),  # a one-off of the previous period
])
def test_not_billed(s: ServiceSubscription) -> None:
    assert bill_services([s], NOV, CATALOGUE) == []


def test_any_day_of_the_period_bills_it_in_full() -> None:
    [a, b] = bill_services([sub("supervision.ac_charger", start=date(2026, 11, 30)),
                            sub("supervision.ac_charger", end=date(2026, 11, 2))], NOV, CATALOGUE)
    assert a.unit_price == b.unit_price == D("9.00")


def test_ruleset_price_unknown_and_ad_hoc() -> None:
    with pytest.raises(UnknownService, match="supervision.dc_charger"):
        bill_services([sub("supervision.dc_charger")], NOV, CATALOGUE)
    with pytest.raises(UnknownService):
        bill_services([sub("supervision.ac_charger")], NOV, None)
    # an ad-hoc period counts as one month, as the product fees do
    [item] = bill_services([sub("supervision.ac_charger")], ad_hoc_period(date(2026, 11, 3), date(2026, 11, 20),
                                                                           "Europe/Berlin"), CATALOGUE)
    assert item.unit_price == D("9.00")


def test_invoice_totals_with_services_and_discounts() -> None:
    items = bill_services([sub("supervision.ac_charger", qty="3"), sub("supervision.sim", qty="2"),
                           sub(price="100", per="year", rate="7", desc="Maintenance")], NOV, CATALOGUE)
    draft = assemble_invoice(account_id="a", currency="EUR", period=NOV, issue_date=date(2026, 12, 1),
                             terms=PaymentTerms(), period_lines=(), services=items,
                             discounts=[PeriodDiscount("10% off", percent=D(10))])
    # 19%: 27.00 + 4.00 = 31.00, discount 3.10; 7%: 8.333.. -> 8.33, discount 0.833 -> 0.83
    assert [ln.net for ln in draft.lines] == [D("27.00"), D("4.00"), D("8.33"), D("-0.83"), D("-3.10")]
    assert draft.net_total == D("35.40")
    assert [(g.rate, g.net, g.tax) for g in draft.tax_groups] == [(D(7), D("7.50"), D("0.53")),
                                                                 (D(19), D("27.90"), D("5.30"))]
    assert draft.gross_total == D("41.23")
