"""Write-offs (SQLite and PostgreSQL): an entry appended to the open item, and a journal entry
crediting the debtor with what was given up, correcting the VAT share per rate (§ 17 (2) UStG) and
booking the net as a bad debt; partial and full, once per key, never more than is open; on SKR03
to 2400 Forderungsverluste and the VAT accounts of the rates; the reconciliation stays equal."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import Engine

from runtime.accounting.chart import template
from runtime.accounting.journal import balances
from runtime.receivables import written_off_vat
from store import accounting as A
from store import receivables as R
from tests.store.test_journal_store import _entries, _invoice, _line
from tests.workflows.seed import seed_tenant

D = Decimal


def test_vat_share_is_proportional_and_adds_up() -> None:
    vat = ((D("19"), D("2.66")), (D("7"), D("0.14")))
    # all of an 18.80 invoice: all its VAT
    assert written_off_vat(D("18.80"), D("18.80"), vat, "EUR") == ((D("19"), D("2.66")), (D("7"), D("0.14")))
    # half of it: half of each rate's VAT, rounded per rate
    assert written_off_vat(D("9.40"), D("18.80"), vat, "EUR") == ((D("19"), D("1.33")), (D("7"), D("0.07")))
    assert written_off_vat(D("4.70"), D("18.80"), vat, "EUR") == ((D("19"), D("0.67")), (D("7"), D("0.04")))
    # a cent: its VAT share rounds to nothing
    assert written_off_vat(D("0.01"), D("18.80"), vat, "EUR") == ()
    assert written_off_vat(D("5"), D("10"), (), "EUR") == ()
    with pytest.raises(ValueError):
        written_off_vat(D("20"), D("18.80"), vat, "EUR")
    # a second write-off of the same document counts the first in: 4.70 + 4.70 = half, 1.33 + 0.07
    first = written_off_vat(D("4.70"), D("18.80"), vat, "EUR")
    second = written_off_vat(D("4.70"), D("18.80"), vat, "EUR", D("4.70"), dict(first))
    assert second == ((D(19), D("0.66")), (D(7), D("0.03")))
    with pytest.raises(ValueError):
        written_off_vat(D("15"), D("18.80"), vat, "EUR", D("4.70"), dict(first))


def _open(engine: Engine, tenant: str, item: str) -> Decimal:
    with engine.connect() as conn:
        return R.item_states(conn, tenant, item_ids=[item])[0].open


def test_write_offs_correct_vat_and_book_bad_debts(engine: Engine) -> None:
    s = seed_tenant(engine, "wo1", 1)
    acc = s.account_ids[0]
    cus = s.customer_of[acc]
    with engine.begin() as conn:
        A.set_chart(conn, "wo1", template("skr03"), ["19", "7"], "fin")
    _invoice(engine, "wo1", acc, cus, 1, [_line(1, "session", "10.00", "19"), _line(2, "service", "2.00", "7")])
    with engine.connect() as conn:
        [item] = R.item_states(conn, "wo1")
    assert item.open == D("14.04")  # 10.00 + 1.90 + 2.00 + 0.14
    with engine.begin() as conn:
        R.book_payment(conn, "wo1", key="p1", customer_id=cus, account_id=acc, amount=D("7.02"), currency="EUR",
                       booked_on=date(2026, 12, 10), reference="half")
    # a partial write-off: 3.51 of the 7.02 left, a quarter of the gross: a quarter of each rate's
    # VAT, rounded per rate: 1.90 / 4 = 0.475 -> 0.48, 0.14 / 4 = 0.035 -> 0.04
    with engine.begin() as conn:
        got = R.book_write_off(conn, "wo1", key="wo-a", item_id=item.id, amount=D("3.51"),
                               booked_on=date(2026, 12, 20), reason="partly uncollectable", created_by="fin")
    assert got.amount == D("3.51") and not got.duplicate and _open(engine, "wo1", item.id) == D("3.51")
    wo = _entries(engine, "wo1")[-1]
    assert wo.source_kind == "write_off" and wo.document == item.number and wo.document_date == date(2026, 12, 20)
    debtor = next(ln.account for ln in wo.lines if ln.role == "debtor")
    assert {(ln.role, ln.account, ln.vat): ln.signed for ln in wo.lines} == {
        ("debtor", debtor, ""): D("-3.51"), ("vat", "1776", "19"): D("0.48"), ("vat", "1771", "7"): D("0.04"),
        ("bad_debt", "2400", ""): D("2.99")}
    # the same key again: the first booking, nothing new
    with engine.begin() as conn:
        again = R.book_write_off(conn, "wo1", key="wo-a", item_id=item.id, amount=D("3.51"),
                                 booked_on=date(2026, 12, 20), reason="partly uncollectable")
    assert again.duplicate and len(_entries(engine, "wo1")) == 3
    # more than is open: refused, nothing written
    with engine.begin() as conn, pytest.raises(R.WriteOffRefused) as err:
        R.book_write_off(conn, "wo1", key="wo-b", item_id=item.id, amount=D("3.52"), booked_on=date(2026, 12, 21),
                         reason="x")
    assert err.value.code == "amount_too_high"
    # the rest, in full (no amount): the item is settled; the VAT shares add up to what was open
    with engine.begin() as conn:
        R.book_write_off(conn, "wo1", key="wo-c", item_id=item.id, amount=None, booked_on=date(2026, 12, 21),
                         reason="insolvent")
    assert _open(engine, "wo1", item.id) == 0
    with engine.begin() as conn, pytest.raises(R.WriteOffRefused) as err:
        R.book_write_off(conn, "wo1", key="wo-d", item_id=item.id, amount=None, booked_on=date(2026, 12, 22),
                         reason="x")
    assert err.value.code == "not_open"
    entries = _entries(engine, "wo1")
    assert len(entries) == 4
    totals = balances(ln for e in entries for ln in e.lines)
    # receivables = open items = 0; VAT payable = invoice VAT - written-off VAT share; revenue untouched
    with engine.connect() as conn:
        roles = A.role_balances(conn, "wo1")
        debtor = sum((v for (role, _v, _c), v in roles.items() if role == "debtor"), D(0))
        assert debtor == sum((s_.open for s_ in R.item_states(conn, "wo1")), D(0)) == 0
    # the second write-off corrects what half the gross owes (0.95, 0.07) less what the first did:
    # the two add up to one write-off of 7.02, no cent drifts
    assert totals[("2400", "EUR")] == D("2.99") + D("3.01")
    assert (totals[("1776", "EUR")], totals[("1771", "EUR")]) == (D("-1.90") + D("0.95"), D("-0.14") + D("0.07"))
    assert totals[("8400", "EUR")] == D("-10.00") and totals[("8300", "EUR")] == D("-2.00")


def test_charges_and_credit_balances(engine: Engine) -> None:
    s = seed_tenant(engine, "wo2", 1)
    acc = s.account_ids[0]
    cus = s.customer_of[acc]
    with engine.begin() as conn:
        fee = R.open_charge_item(conn, "wo2", key="fee1", kind="dunning_fee", customer_id=cus, account_id=acc,
                                 currency="EUR", amount=D("5.95"), issue_date=date(2026, 12, 1),
                                 due_date=date(2026, 12, 15), number="DUN-1", detail={"vat_rate": "19", "vat": "0.95"})
        interest = R.open_charge_item(conn, "wo2", key="int1", kind="interest", customer_id=cus, account_id=acc,
                                      currency="EUR", amount=D("1.20"), issue_date=date(2026, 12, 1),
                                      due_date=date(2026, 12, 15), number="DUN-1")
    # the fee given up: its VAT (19 %) corrected; interest carries none
    with engine.begin() as conn:
        R.book_write_off(conn, "wo2", key="f", item_id=fee, amount=None, booked_on=date(2026, 12, 3), reason="x")
        R.book_write_off(conn, "wo2", key="i", item_id=interest, amount=None, booked_on=date(2026, 12, 3),
                         reason="x")
    f, i = _entries(engine, "wo2")[-2:]
    assert {(ln.role, ln.vat): ln.signed for ln in f.lines} == {
        ("debtor", ""): D("-5.95"), ("vat", "19"): D("0.95"), ("bad_debt", ""): D("5.00")}
    assert {(ln.role, ln.vat): ln.signed for ln in i.lines} == {("debtor", ""): D("-1.20"), ("bad_debt", ""): D("1.20")}
    with engine.begin() as conn:
        R.book_payment(conn, "wo2", key="over", customer_id=cus, account_id=acc, amount=D("10.00"), currency="EUR",
                       booked_on=date(2026, 12, 4), reference="over")
        credit = next(x for x in R.item_states(conn, "wo2") if x.kind == "credit_balance")
    with engine.begin() as conn, pytest.raises(R.WriteOffRefused) as err:
        R.book_write_off(conn, "wo2", key="c", item_id=credit.id, amount=None, booked_on=date(2026, 12, 5),
                         reason="x")
    assert err.value.code == "not_receivable"
    with engine.begin() as conn, pytest.raises(LookupError):
        R.book_write_off(conn, "wo2", key="n", item_id="itm_nope", amount=None, booked_on=date(2026, 12, 5),
                         reason="x")
