"""The journal's pure rules: legs per event balance or are refused, the chart resolves the most
specific rule and names every gap, and DATEV rows book each line against the entry's main
account (with automatic accounts, VAT folded into the revenue rows of its rate, to the cent)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from runtime.accounting.chart import ANY, Chart, ChartError, MappingMissing, Rule, template
from runtime.accounting.formats import NumberedEntry, datev_rows
from runtime.accounting.journal import EventFacts, JournalEntry, JournalLine, Unbalanced, legs, reversal
from runtime.accounting.posting import book

DAY = date(2026, 12, 1)


def _inv() -> EventFacts:
    # 100.00 charging and -10.00 discount at 19 % (VAT 17.10), 20.00 service at 7 % (VAT 1.40)
    return EventFacts("invoice", "EUR", (("invoice", D("128.50")),),
                      (("charging", D(19), D("100.00")), ("discount", D(19), D("-10.00")), ("service", D(7), D("20.00"))),
                      ((D(19), D("17.10")), (D(7), D("1.40"))))


def test_legs_balance_or_are_refused() -> None:
    got = {(lg.role, lg.revenue_kind, lg.vat): lg.amount for lg in legs(_inv())}
    assert got == {("debtor", "", ""): D("128.50"), ("revenue", "charging", "19"): D("-100.00"),
                   ("revenue", "discount", "19"): D("10.00"), ("revenue", "service", "7"): D("-20.00"),
                   ("vat", "", "19"): D("-17.10"), ("vat", "", "7"): D("-1.40")}
    with pytest.raises(Unbalanced):
        legs(EventFacts("invoice", "EUR", (("invoice", D("128.51")),), _inv().revenue, _inv().vat))
    with pytest.raises(ValueError):
        legs(EventFacts("payment", "EUR", (("invoice", D(-5)),), return_charge=D(5)))
    refund = legs(EventFacts("refund", "EUR", (("credit_balance", D("7.00")),), payout=D("-7.00")))
    assert {(lg.role, lg.amount) for lg in refund} == {("customer_credit", D("7.00")), ("payout", D("-7.00"))}


def test_entries_check_their_lines() -> None:
    with pytest.raises(Unbalanced):
        JournalEntry("payment", "e1", "B1", DAY, DAY, "t", (JournalLine("1200", "debit", D(1), "EUR"),
                                                             JournalLine("1400", "credit", D(1), "CHF")))
    with pytest.raises(ValueError):
        JournalLine("1200", "debit", D(0), "EUR")
    e = JournalEntry("payment", "e1", "B1", DAY, DAY, "t", (JournalLine("1200", "debit", D(1), "EUR"),
                                                            JournalLine("1400", "credit", D(1), "EUR")))
    r = reversal(e, "e1", date(2027, 1, 1), "storno")
    assert r.corrects == "e1" and [ln.side for ln in r.lines] == ["credit", "debit"]


def test_the_most_specific_rule_wins_and_gaps_are_named() -> None:
    chart = Chart("c", (Rule(ANY, "revenue", "4000"), Rule("invoice", "revenue", "4001", "charging", "19"),
                        Rule(ANY, "revenue", "4002", ANY, "19")), debtors="personal")
    assert chart.resolve("invoice", "revenue", "charging", "19").account == "4001"
    assert chart.resolve("credit_note", "revenue", "charging", "19").account == "4002"
    assert chart.resolve("invoice", "revenue", "service", "7").account == "4000"
    with pytest.raises(MappingMissing, match="role 'bank'"):
        chart.resolve("payment", "bank")
    gaps = chart.missing(["19"])
    assert "event 'payment', role 'bank'" in gaps and not any("revenue" in g for g in gaps)
    with pytest.raises(ChartError):
        Chart("bad", (Rule(ANY, "revenue", "84x0"),))
    with pytest.raises(ChartError):
        Chart.from_dict({"rules": [{"event": "invoice", "role": "revenue", "account": "8400", "colour": "red"}]})
    assert template("skr03").missing(["19", "7", "16"]) == [] and template("skr03").missing(["0"])
    assert template("plain").missing(["19", "0", "5.5"], "FR") == []
    assert Chart.from_dict(template("skr04").to_dict()) == template("skr04")


def test_datev_rows_fold_vat_into_automatic_revenue_accounts() -> None:
    e = book(template("skr03"), _inv(), source_id="rcv_1", document="INV-000001", document_date=DAY,
             posting_date=DAY, text="Invoice INV-000001", country="DE", debtor_account="10001")
    assert e is not None
    rows = [(r["Umsatz (ohne Soll/Haben-Kz)"], r["Soll/Haben-Kennzeichen"], r["Konto"],
             r["Gegenkonto (ohne BU-Schlüssel)"]) for r in datev_rows([NumberedEntry(1, e)], template("skr03"))]
    # 17.10 VAT over 100.00 and -10.00 at 19 %: 19.00 and -1.90, gross 119.00 on 8400, -11.90 on 8720
    assert rows == [("119,00", "S", "10001", "8400"), ("11,90", "H", "10001", "8720"), ("21,40", "S", "10001", "8300")]
    separate = Chart.from_dict({**template("skr03").to_dict(), "datev_vat": "separate"})
    rows = [(r["Umsatz (ohne Soll/Haben-Kz)"], r["Gegenkonto (ohne BU-Schlüssel)"])
            for r in datev_rows([NumberedEntry(1, e)], separate)]
    assert ("17,10", "1776") in rows and ("100,00", "8400") in rows and len(rows) == 5


def test_generic_csv_writes_every_field_in_the_header_order() -> None:
    import csv
    import io
    from datetime import date
    from decimal import Decimal

    from runtime.accounting.formats import GENERIC_FIELDS, NumberedEntry, generic_csv
    from runtime.accounting.journal import JournalEntry, JournalLine

    e = JournalEntry("payment", "rcv_1", "BANK-1", date(2026, 12, 1), date(2026, 12, 1), "Payment BANK-1", (
        JournalLine("1200", "debit", Decimal("119.00"), "CHF", "bank", functional=Decimal("127.96")),
        JournalLine("10000", "credit", Decimal("119.00"), "CHF", "debtor", functional=Decimal("125.26")),
        JournalLine("2660", "credit", Decimal(0), "CHF", "fx_gain", functional=Decimal("2.70"))),
        functional_currency="EUR", rate=Decimal("0.93"), rate_date=date(2026, 12, 1))
    rows = list(csv.DictReader(io.StringIO(generic_csv([NumberedEntry(7, e)]).decode())))
    assert tuple(rows[0]) == GENERIC_FIELDS
    assert [(r["entry"], r["account"], r["amount"], r["functional_amount"], r["rate"]) for r in rows] == [
        ("7", "1200", "119.00", "127.96", "0.93"), ("7", "10000", "119.00", "125.26", "0.93"),
        ("7", "2660", "0", "2.70", "0.93")]
