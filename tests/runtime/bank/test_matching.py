"""The matching rules, in order, each saying why it matched."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

from stdnum import iso11649

from runtime.bank.camt import BankEntry, BankTransaction
from runtime.bank.matching import (
    MatchIndex,
    OpenItemRef,
    creditor_reference,
    match_transaction,
    normalise_name,
)

ITEMS = [OpenItemRef("i1", "acc1", "cus1", "INV-000001", D("12.83"), "EUR"),
         OpenItemRef("i2", "acc2", "cus2", "INV-000002", D("40.00"), "EUR"),
         OpenItemRef("i3", "acc2", "cus2", "INV-000017", D("40.00"), "EUR"),
         OpenItemRef("i4", "acc3", "cus3", "INV-000103", D("7.77"), "EUR")]


def entry(tx: BankTransaction, amount: str = "12.83") -> BankEntry:
    return BankEntry(D(amount), "EUR", True, "BOOK", date(2026, 12, 10), date(2026, 12, 10), "", "A1", False,
                     "PMNT/RCDT/ESCT", "", (tx,))


def tx(**kw: object) -> BankTransaction:
    return BankTransaction(amount=None, currency="EUR", **kw)  # type: ignore[arg-type]


def test_creditor_reference_is_valid_iso11649() -> None:
    rf = creditor_reference("INV-000001")
    assert iso11649.is_valid(rf) and rf.endswith("INV000001")


def test_rules_in_order() -> None:
    ix = MatchIndex(ITEMS, collections={"E2E-1": ("acc9", ("i9",))}, payer_iban={"DE02120300000000202051": "acc3"},
                    payer_name={normalise_name("Müller, Hans"): "acc2"})
    # our direct debit first, whatever the text says
    t = tx(end_to_end_id="E2E-1", remittance=("INV-000001",))
    m = match_transaction(entry(t), t, D(1), ix)
    assert (m.rule, m.account_id) == ("end_to_end_id", "acc9")
    # invoice numbers with spaces, lower case and OCR slips (O for 0, l for 1)
    for text in ("Rechnung INV-000001", "inv 0000 01 danke", "INV-OOOOO1", "INV000001/2026", "INV-00000l"):
        t = tx(remittance=(text,))
        m = match_transaction(entry(t), t, D("12.83"), ix)
        assert (m.rule, m.item_ids) == ("reference", ("i1",)), text
    # the RF reference, structured or in the text with spaces
    rf = creditor_reference("INV-000103")
    for t in (tx(creditor_refs=(rf,)), tx(remittance=(iso11649.format(rf),))):
        m = match_transaction(entry(t, "7.77"), t, D("7.77"), ix)
        assert (m.rule, m.item_ids, m.account_id) == ("reference", ("i4",), "acc3")
    # two invoices of one account named: both, in order; of two accounts: no reference match
    t = tx(remittance=("INV-000017 und INV-000002",))
    assert match_transaction(entry(t, "80"), t, D(80), ix).item_ids == ("i3", "i2")
    t = tx(remittance=("INV-000001 INV-000002",))
    assert match_transaction(entry(t, "9"), t, D(9), ix).rule == "none"
    # a learned payer by IBAN, then by name without accents and punctuation
    t = tx(debtor_iban="DE02 1203 0000 0000 2020 51")
    assert match_transaction(entry(t), t, D(5), ix).account_id == "acc3"
    assert normalise_name("Müller, Hans") == "MULLER HANS"
    t = tx(debtor_name="Müller Hans")
    assert match_transaction(entry(t), t, D(5), ix).rule == "known_payer"
    # the one open item of exactly that amount; two of the same amount match nothing
    t = tx(remittance=("Ladekarte",))
    m = match_transaction(entry(t, "7.77"), t, D("7.77"), ix)
    assert (m.rule, m.item_ids) == ("amount", ("i4",))
    assert match_transaction(entry(t, "40.00"), t, D("40.00"), ix).rule == "none"
