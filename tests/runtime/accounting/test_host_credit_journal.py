"""The journal of host credit notes and their payouts (issue 15) on each chart template: expense
and input VAT against the partner payable, the payout against the clearing account; every
template stays complete."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from runtime.accounting.chart import TEMPLATES, template
from runtime.accounting.journal import EventFacts, Unbalanced, legs
from runtime.accounting.posting import book

ACCOUNTS = {"plain": ("5100", "1500", "2500", "2400"), "skr03": ("3100", "1576", "1600", "1360"),
            "skr04": ("5900", "1406", "3300", "1460")}


def _book(chart: str, facts: EventFacts) -> set[tuple[str, str, D]]:
    entry = book(template(chart), facts, source_id="hcn_1", document="GU-000001", document_date=date(2026, 12, 22),
                 posting_date=date(2026, 12, 22), text="Host credit note GU-000001", country="DE", debtor_account="")
    assert entry is not None
    return {(ln.account, ln.side, ln.amount) for ln in entry.lines}


@pytest.mark.parametrize("chart", sorted(ACCOUNTS))
def test_note_and_payout_on_every_template(chart: str) -> None:
    expense, input_vat, payable, clearing = ACCOUNTS[chart]
    note = EventFacts("host_credit_note", "EUR", expense=D("300.60"), input_vat=((D(19), D("57.11")),),
                      partner_payable=D("-357.71"))
    assert _book(chart, note) == {(expense, "debit", D("300.60")), (input_vat, "debit", D("57.11")),
                                  (payable, "credit", D("357.71"))}
    paid = EventFacts("host_payout", "EUR", partner_payable=D("357.71"), payout=D("-357.71"))
    assert _book(chart, paid) == {(payable, "debit", D("357.71")), (clearing, "credit", D("357.71"))}
    back = EventFacts("host_payout_return", "EUR", partner_payable=D("-357.71"), payout=D("357.71"))
    assert _book(chart, back) == {(payable, "credit", D("357.71")), (clearing, "debit", D("357.71"))}


def test_small_business_note_has_no_input_vat() -> None:
    note = EventFacts("host_credit_note", "EUR", expense=D("1.52"), partner_payable=D("-1.52"))
    assert _book("skr03", note) == {("3100", "debit", D("1.52")), ("1600", "credit", D("1.52"))}


def test_a_note_that_does_not_add_up_is_refused() -> None:
    with pytest.raises(Unbalanced):
        legs(EventFacts("host_credit_note", "EUR", expense=D("1.52"), partner_payable=D("-1.50")))


@pytest.mark.parametrize("chart", sorted(TEMPLATES))
def test_templates_stay_complete(chart: str) -> None:
    template(chart).check_complete(["19", "7"], "DE")
