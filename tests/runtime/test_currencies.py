"""Issue 11, defect 3: currencies are enforced where amounts meet.

An invoice is in one currency. ``assemble_invoice`` added EUR and JPY lines into one total; now
every amount put on a draft is checked against the draft's currency (``CurrencyMismatch``), what a
period holds in another currency is set aside (``split_currencies``) and holds the draft
(``currency_mismatch``), and rounding follows the ISO 4217 minor unit of the currency (JPY 0
places, KWD 3) from rating through invoice, document, XML and PDF."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from iso4217 import Currency

from runtime import money
from runtime.invoicing import (
    APPROVAL_REQUIRED,
    Comparison,
    Correction,
    ForeignAmount,
    HoldPolicy,
    LateSession,
    PaymentTerms,
    ServiceItem,
    ServicePrice,
    ServiceSubscription,
    assemble_invoice,
    bill_services,
    evaluate_holds,
    period_ending,
    split_currencies,
)
from runtime.money import MINOR_UNITS, CurrencyMismatch, Money, minor_unit, tax_groups
from runtime.rated import RatedLine, RatingResult
from runtime.rating import rate_period

P = period_ending("monthly", 1, "Europe/Berlin", datetime(2026, 12, 1, 12, tzinfo=UTC))
TERMS = PaymentTerms("net", 14)


def line(net: str, currency: str = "EUR", session: str = "S1", rate: str = "19") -> RatedLine:
    return RatedLine("energy", "energy", D(1), "kWh", D(net), D(net), D(rate), currency, "tariff t", session)


def draft(currency: str = "EUR", **kw: object):  # type: ignore[no-untyped-def]
    kw.setdefault("period_lines", ())
    return assemble_invoice(account_id="a", currency=currency, period=P, issue_date=date(2026, 12, 1),
                            terms=TERMS, **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------- ISO 4217 minor units
def test_minor_units_are_iso_4217() -> None:
    assert (minor_unit("EUR"), minor_unit("JPY"), minor_unit("KWD"), minor_unit("CLF")) == (2, 0, 3, 4)
    # where CLDR's display digits (babel) differ from ISO 4217, ISO wins: invoices are ISO amounts
    assert (minor_unit("HUF"), minor_unit("IQD"), minor_unit("ISK")) == (2, 3, 0)
    # every ISO currency with a minor unit is known; metals and "no currency" are not money to bill in
    assert {c.code: c.exponent for c in Currency if c.exponent is not None} == MINOR_UNITS
    assert "XXX" not in MINOR_UNITS and "XAU" not in MINOR_UNITS and len(MINOR_UNITS) > 150
    # the codes answered without reading the package's table answer as the table does
    table = {c.code: c.exponent for c in Currency if c.exponent is not None}
    assert all(table[code] == places for code, places in money._COMMON_MINOR_UNITS.items())
    fresh = money._MinorUnits()
    assert fresh["EUR"] == 2 and fresh._table is None and "EUR" in fresh and fresh._table is None
    assert fresh["CLF"] == 4 and fresh._table == table and fresh.get("XXX") is None and dict(fresh) == table


def test_money_total_and_tax_groups_refuse_another_currency() -> None:
    assert Money.total([Money.of("1.10", "EUR"), Money.of("2", "EUR")], "EUR") == Money(D("3.10"), "EUR")
    assert Money.total([], "JPY") == Money(D(0), "JPY")
    with pytest.raises(CurrencyMismatch) as err:
        Money.total([Money.of("1", "EUR"), Money.of("100", "JPY")], "EUR", "invoice x")
    assert (err.value.expected, err.value.got, err.value.where) == ("EUR", "JPY", "invoice x")
    with pytest.raises(CurrencyMismatch):
        Money.of("1", "EUR") + Money.of("1", "JPY")
    assert tax_groups([(D(10), Money.of("568", "JPY"))], "JPY") == ((D(10), D(568), D(57)),)
    with pytest.raises(CurrencyMismatch):
        tax_groups([(D(19), Money.of("1.00", "EUR")), (D(19), Money.of("100", "JPY"))], "EUR")


def test_a_rating_result_and_period_rating_refuse_foreign_lines() -> None:
    with pytest.raises(CurrencyMismatch, match="JPY"):
        RatingResult("S1", "rs", "1", "sha", "t", "EUR", (line("1.00"), line("100", "JPY")))
    jpy = RatingResult("S2", "rs", "1", "sha", "t", "JPY", (line("100", "JPY", "S2"),))
    with pytest.raises(CurrencyMismatch, match="session S2"):
        rate_period([jpy], None, "EUR")


# ---------------------------------------------------------------- assemble_invoice
def test_assemble_invoice_refuses_eur_and_jpy_lines() -> None:
    # the old code made this a draft with net 101.00 "EUR"
    with pytest.raises(CurrencyMismatch) as err:
        draft(period_lines=[line("1.00"), line("100", "JPY", "S2")])
    assert (err.value.expected, err.value.got) == ("EUR", "JPY")
    assert "session S2" in str(err.value)


eur = st.decimals(min_value=D(-50), max_value=D(500), places=4).filter(lambda d: d != 0)
others = st.sampled_from(sorted(set(MINOR_UNITS) - {"EUR"}))


@settings(max_examples=60, deadline=None)
@given(nets=st.lists(eur, min_size=0, max_size=6), foreign=others, amount=eur,
       where=st.sampled_from(["period", "service", "late", "correction"]), at=st.integers(0, 6))
def test_any_amount_in_another_currency_is_refused_never_added(nets: list[D], foreign: str, amount: D, where: str,
                                                                at: int) -> None:
    lines = [line(format(n, "f"), session=f"S{i}") for i, n in enumerate(nets)]
    kw: dict[str, object] = {}
    if where == "period":
        lines.insert(min(at, len(lines)), line(format(amount, "f"), foreign, "SX"))
    elif where == "service":
        kw["services"] = [ServiceItem("SIM", D(1), amount, D(19), "month", "s.sim", foreign, "svc1")]
    elif where == "late":
        kw["late"] = [LateSession("SX", "rat1", "earlier period", (line(format(amount, "f"), foreign, "SX"),))]
    else:
        kw["corrections"] = [Correction("SX", "rat2", "rat1", "inv0", "INV-1", {D(19): D("1.00")},
                                        (line(format(amount, "f"), foreign, "SX"),))]
    with pytest.raises(CurrencyMismatch):
        draft(period_lines=lines, **kw)
    # set aside first, the draft bills exactly the EUR amounts and carries the foreign one
    results = [RatingResult(ln.session_id, "", "", "", "", ln.currency, (ln,)) for ln in lines]
    split = split_currencies("EUR", results=results, services=kw.get("services", ()),  # type: ignore[arg-type]
                             late=kw.get("late", ()), corrections=kw.get("corrections", ()))  # type: ignore[arg-type]
    [f] = split.foreign
    assert (f.currency, f.ref in ("SX", "svc1")) == (foreign, True)
    d = draft(period_lines=[ln for r in split.results for ln in r.lines], foreign=split.foreign)
    assert d.net_total == sum((ln.net_rounded() for ln in lines if ln.currency == "EUR"), D(0))
    assert d.foreign == (f,) and not d.empty


def test_a_correction_of_an_invoice_in_another_currency_is_set_aside() -> None:
    c = Correction("S1", "rat2", "rat1", "inv0", "INV-1", {D(19): D(100)}, (line("1.10"),), billed_currency="CHF")
    with pytest.raises(CurrencyMismatch, match="INV-1"):
        draft(corrections=[c])
    split = split_currencies("EUR", corrections=[c])
    assert split.corrections == () and split.foreign == (ForeignAmount("correction", "S1", "CHF", D("1.10"),
                                                                       "billed on INV-1"),)


def test_ruleset_services_carry_the_ruleset_currency() -> None:
    from datetime import date as d

    cat = {"s.sim": ServicePrice("s.sim", "SIM", D("2.50"), "month", D(19), currency="CHF")}
    subs = [ServiceSubscription("svc1", "s.sim", "", D(1), None, None, "", d(2026, 1, 1)),
            ServiceSubscription("svc2", "", "Maintenance", D(1), D("10.00"), D(19), "month", d(2026, 1, 1))]
    items = bill_services(subs, P, cat).items
    assert [(i.item_id, i.currency) for i in items] == [("svc1", "CHF"), ("svc2", "")]
    split = split_currencies("EUR", services=items)
    assert [i.item_id for i in split.services] == ["svc2"]
    assert split.foreign == (ForeignAmount("service_item", "svc1", "CHF", D("2.50"), "SIM"),)


def test_the_hold_reason_names_both_currencies_and_the_source() -> None:
    foreign = (ForeignAmount("session", "S7", "CHF", D("12.3456")), ForeignAmount("session", "S8", "CHF", D(1)),
               ForeignAmount("ruleset_version", "rv_2", "CHF", None, "flex"))
    d = draft(period_lines=[line("5.00")], foreign=foreign)
    reasons = evaluate_holds(d, HoldPolicy(approval_required=False), Comparison(d.net_total, None, None, None))
    assert [r.kind for r in reasons] == ["currency_mismatch", "currency_mismatch"]
    sessions, version = (r.to_dict() for r in reasons)
    assert sessions == {
        "kind": "currency_mismatch", "source": "session", "currency": "CHF", "account_currency": "EUR",
        "refs": "S7,S8", "net": "13.3456",
        "message": "sessions S7, S8 rated in CHF (net 13.3456 CHF), but the account bills in EUR: left off this "
                   "draft, not converted (re-rate them in EUR or correct the account's currency, then re-assemble; "
                   "approving bills the period without them, and they come back as late sessions on the next "
                   "invoice until billable in EUR)"}
    assert version["ruleset_version"] == "rv_2" and "product 'flex'" in version["message"]
    assert "currency_mismatch" in APPROVAL_REQUIRED
    # a draft with nothing but foreign amounts is not empty: finance must see it
    assert not draft(foreign=foreign[:1]).empty and draft().empty


# ---------------------------------------------------------------- JPY end to end
def _jpy_lines() -> list[RatedLine]:
    # 12.5 kWh at 35.5 = 443.75 -> 444; start 100; 7.3 min parking at 3.3 = 24.09 -> 24
    return [RatedLine("energy", "energy", D("12.5"), "kWh", D("35.5"), D("443.75"), D(10), "JPY", "r", "S1"),
            RatedLine("start_fee", "start fee", D(1), "session", D(100), D(100), D(10), "JPY", "r", "S1"),
            RatedLine("parking", "parking", D("7.3"), "min", D("3.3"), D("24.09"), D(10), "JPY", "r", "S1")]


def test_jpy_rounds_to_whole_yen_through_rating_and_invoice() -> None:
    rating = RatingResult("S1", "rs", "1", "sha", "t", "JPY", tuple(_jpy_lines()))
    assert (rating.net_total, rating.tax_total, rating.gross_total) == (D(568), D(57), D(625))
    d = draft("JPY", period_lines=_jpy_lines())
    assert [ln.net for ln in d.lines] == [D(444), D(100), D(24)]
    assert all(ln.net.as_tuple().exponent == 0 for ln in d.lines)
    assert (d.net_total, d.tax_total, d.gross_total) == (D(568), D(57), D(625))  # 56.8 -> 57


def test_jpy_document_xml_and_pdf_state_whole_yen() -> None:
    from runtime.documents import render
    from runtime.documents.demo import DEMO_CUSTOMERS, DEMO_TENANT
    from runtime.documents.from_invoice import BilledLine, InvoiceInput, document_from_invoice
    from runtime.documents.pdf import money_text
    from tests.runtime.documents.helpers import pdf_text, xml_totals

    d = draft("JPY", period_lines=_jpy_lines())
    inp = InvoiceInput(
        invoice_id="inv", kind=d.kind, number="RE-1", issue_date=d.issue_date, due_date=d.due_date,
        currency="JPY", period_start=P.local_start, period_end=P.local_end, payment_terms="net 14",
        lines=tuple(BilledLine(ln.seq, ln.kind, ln.component, ln.description, ln.quantity, ln.unit, ln.unit_price,
                               ln.net, ln.tax_rate, ln.session_id) for ln in d.lines),
        net_total=d.net_total, tax_total=d.tax_total, tenant=DEMO_TENANT, customer=DEMO_CUSTOMERS["b2c"])
    doc = document_from_invoice(inp)
    t = doc.totals
    assert (t.currency, t.net, t.tax, t.gross) == ("JPY", D(568), D(57), D(625))
    for fmt in ("xrechnung-ubl", "xrechnung-cii"):
        xml = render(doc, fmt)
        got = xml_totals(xml)
        assert (got["net"], got["tax"], got["gross"]) == (D(568), D(57), D(625))
        # amounts are written with the currency's minor unit: whole yen, no ".00"
        assert b">625<" in xml and b"625.00" not in xml and b"JPY" in xml
    text = pdf_text(render(doc, "pdf"))
    gross = money_text(D(625), "JPY", doc.language).replace("\u00a0", " ")
    assert gross in text and "625,00" not in text and "625.00" not in text
