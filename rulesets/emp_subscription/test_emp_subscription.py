"""EMP with subscriptions: sessions rated per session, then the month rated as a period."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

from dsl import CompiledRuleset
from runtime.sessions import SessionFacts

RS = CompiledRuleset.from_source((Path(__file__).parent / "emp_subscription.evb").read_text(), "emp.evb")


def s(i: int, kwh: str, product: str = "", dc: bool = False) -> SessionFacts:
    return SessionFacts.from_dict({"id": f"s{i}", "customer_id": "c1", "product": product, "energy_kwh": kwh,
                                   "start": f"2026-11-{i + 2:02d}T18:00:00+01:00",
                                   "end": f"2026-11-{i + 2:02d}T19:00:00+01:00",
                                   "power_type": "DC" if dc else "AC"})


def test_pay_as_you_go() -> None:
    assert RS.rate(s(0, "10")).net_unrounded == D("6.40")  # 0.50 + 10 x 0.59
    assert RS.rate(s(0, "10", dc=True)).net_unrounded == D("7.40")  # 0.50 + 10 x 0.69


def test_flex_month_with_included_energy_and_welcome_discount() -> None:
    sessions = [s(0, "10", "flex"), s(1, "15", "flex"), s(2, "12", "flex")]
    results = RS.rate_many(sessions)
    # first session: 10 x 0.39 = 3.90, welcome 5.00 off is capped at the session's 3.90
    assert [r.net_unrounded for r in results] == [D(0), D("5.85"), D("4.68")]
    period = RS.rate_period(results, "flex")
    # sessions 0 + 5.85 + 4.68 = 10.53; fee 5.99; 20 included kWh credited at 0.39 = -7.80
    assert period.net_total == D("8.72")


def test_pro_month_graduated() -> None:
    sessions = [s(i, "50", "pro") for i in range(5)]  # 250 kWh
    results = RS.rate_many(sessions)
    period = RS.rate_period(results, "pro")
    # 200 x 0.35 + 50 x 0.29 = 84.50; fee 11.99; the welcome discount (-5.00 on the first session)
    # stays: it is a session discount, not an energy line
    assert period.net_total == D("91.49")


def test_members_pay_by_direct_debit_notified_two_days_ahead() -> None:
    from datetime import date

    from runtime.bank.payments import prenotified_date

    payments = RS.policies.payments_named()
    assert payments is not None and (payments.method, payments.pre_notification_days, payments.minimum) == (
        "sepa_direct_debit", 2, D("0.50"))
    assert payments.return_charge("AC04", D("4.10")) == D("4.10")
    # invoiced on the 2nd, due the next day: the debit waits for the agreed two days
    assert prenotified_date(date(2026, 12, 3), date(2026, 12, 2), payments.pre_notification_days) == date(2026, 12, 4)
