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


SELF_ASSESSED = {"plain": ("1510", "2210", ""), "skr03": ("1577", "1787", "46"), "skr04": ("1407", "3837", "46")}


@pytest.mark.parametrize("chart", sorted(SELF_ASSESSED))
def test_reverse_charge_note_self_assesses_the_vat(chart: str) -> None:
    """A host in another EU member state on reverse charge bills 100.00 without VAT: the tenant
    owes 19 % (§ 13b UStG) and deducts it, input VAT against output VAT, the payable stays the net."""
    expense, _input, payable, _clearing = ACCOUNTS[chart]
    rc_input, rc_output, bu = SELF_ASSESSED[chart]
    note = EventFacts("host_credit_note", "EUR", expense=D("100.00"), partner_payable=D("-100.00"),
                      self_assessed=((D(19), D("19.00")),))
    assert _book(chart, note) == {(expense, "debit", D("100.00")), (rc_input, "debit", D("19.00")),
                                  (rc_output, "credit", D("19.00")), (payable, "credit", D("100.00"))}
    entry = book(template(chart), note, source_id="hcn_rc", document="GU-000009", document_date=date(2026, 12, 22),
                 posting_date=date(2026, 12, 22), text="Host credit note GU-000009", country="DE", debtor_account="")
    assert entry is not None
    assert {ln.account: ln.bu_key for ln in entry.lines if ln.role in ("input_vat_13b", "vat_13b")} == {
        rc_input: bu, rc_output: bu}


@pytest.mark.parametrize("chart", ("skr03", "skr04"))
def test_datev_gets_the_net_with_the_tax_key(chart: str) -> None:
    """DATEV computes VAT itself on SKR's automatic batches: the self-assessed lines are not sent,
    the record of the net (payable against expense) carries BU key 46 and DATEV posts both VAT
    amounts from it. With VAT lines sent separately, the lines go as they are, without a key."""
    from dataclasses import replace as _replace

    from runtime.accounting.formats import NumberedEntry, datev_rows

    expense, _input, payable, _clearing = ACCOUNTS[chart]
    rc_input, rc_output, _bu = SELF_ASSESSED[chart]
    note = EventFacts("host_credit_note", "EUR", expense=D("100.00"), partner_payable=D("-100.00"),
                      self_assessed=((D(19), D("19.00")),))
    entry = book(template(chart), note, source_id="hcn_rc", document="GU-000009", document_date=date(2026, 12, 22),
                 posting_date=date(2026, 12, 22), text="Host credit note GU-000009", country="DE", debtor_account="")
    assert entry is not None
    cols = ("Umsatz (ohne Soll/Haben-Kz)", "Soll/Haben-Kennzeichen", "Konto", "Gegenkonto (ohne BU-Schlüssel)",
            "BU-Schlüssel")
    rows = [tuple(r[c] for c in cols) for r in datev_rows([NumberedEntry(1, entry)], template(chart))]
    assert rows == [("100,00", "S", expense, payable, "46")]
    separate = _replace(template(chart), datev_vat="separate")
    rows = [tuple(r[c] for c in cols) for r in datev_rows([NumberedEntry(1, entry)], separate)]
    assert sorted(rows) == sorted([("19,00", "H", expense, rc_input, ""), ("19,00", "S", expense, rc_output, ""),
                                   ("100,00", "S", expense, payable, "")])
