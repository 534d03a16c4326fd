"""Reading revenue_share blocks for partner statements."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

from dsl.revenue_share import revenue_share_terms

HEAD = "ruleset t currency CHF timezone Europe/Zurich\nseries spot \"x\" per kWh\n"


def test_the_shipped_depot_block() -> None:
    src = (Path(__file__).parents[2] / "rulesets/partner_depot/partner_depot.evb").read_text()
    terms, diags = revenue_share_terms(src, "landlord", source="depot v1")
    assert diags == [] and terms is not None
    assert (terms.currency, terms.percent, terms.per_kwh, terms.monthly_fee, terms.source, terms.sites) == (
        "EUR", D(8), None, None, "depot v1", ("hamburg_sued",))


def test_every_form() -> None:
    terms, diags = revenue_share_terms(HEAD + """revenue_share h {
      sites a b; host gets 12.5% of net revenue
      host gets 0.015 per kWh; host gets 0.50 per session; host gets 99.90 per month
      reimburse energy at 0.25 per kWh
    }""", "h")
    assert diags == [] and terms is not None
    assert (terms.currency, terms.percent, terms.per_kwh, terms.per_session, terms.monthly_fee,
            terms.reimburse_per_kwh) == ("CHF", D("12.5"), D("0.015"), D("0.50"), D("99.90"), D("0.25"))
    assert terms.sites == ("a", "b")


def test_what_does_not_read_is_a_diagnostic() -> None:
    # the grammar and the checker report these now (one each, the block's other statements checked)
    terms, diags = revenue_share_terms(HEAD + """revenue_share h {
      host gets 8% of gross revenue
      host gets 120% of net revenue
      host gets 0.01 per kWh
      host gets 0.02 per kWh
      reimburse energy at index(spot) + 0.02 per kWh
      commission 5%
    }""", "h")
    assert [(d.code, d.span.line) for d in diags] == [("E101", 4), ("E310", 5), ("E212", 7), ("E101", 9)]
    assert "expected 'net', 'revenue'" in diags[0].message
    # 'commission' names commission blocks: a percentage there is out of place
    assert "commission" in diags[3].message or "name" in diags[3].message, diags[3].message
    assert terms is None


def test_an_indexed_reimbursement_is_read_per_session() -> None:
    terms, diags = revenue_share_terms(HEAD + """revenue_share h {
      host gets 8% of net revenue
      reimburse energy at index(spot) + 0.02 per kWh
    }""", "h")
    assert diags == [] and terms is not None and terms.percent == D(8) and terms.reimburse_per_kwh is None
    rb = terms.reimburse
    assert rb is not None and rb.series == ("spot",) and rb.cuts.series == ("spot",)
    assert [(r.label, r.text, r.constant) for r in rb.rules] == [
        ("revenue_share h, line 5", "energy at index(spot) + 0.02 per kWh", None)]


def test_time_of_use_prices_match_conditions_first_and_convert_units() -> None:
    terms, diags = revenue_share_terms(HEAD + """revenue_share h {
      reimburse energy at 250 per MWh
      reimburse energy at 0.00015 per Wh when time 22:00..06:00
    }""", "h")
    assert diags == [] and terms is not None and terms.reimburse is not None
    rules = terms.reimburse.rules
    assert [(r.constant, r.predicate is None) for r in rules] == [(D("0.15"), False), (D("0.250"), True)]
    assert terms.reimburse.cuts.day_seconds == (21600, 79200)


def test_commission_references_are_checked_and_read() -> None:
    text = HEAD + """groups fleet
revenue_share h {
  host gets 10% of net revenue
  commission booking, bonus
}
commission booking {
  0.30 per transaction
  0.01 per kWh for group fleet
  2% of net revenue
  25.00 per month
  charge host
  valid 2026-01-01..2027-01-01
}
commission bonus { 0.05 per session; pay host }
"""
    terms, diags = revenue_share_terms(text, "h")
    assert diags == [] and terms is not None
    booking, bonus = terms.commissions
    assert (booking.direction, booking.party, str(booking.valid_from), str(booking.valid_until)) == (
        "charge", "host", "2026-01-01", "2027-01-01")
    assert [(r.kind, r.amount, r.predicate is None) for r in booking.rules] == [
        ("per_session", D("0.30"), True), ("per_kwh", D("0.01"), False), ("percent", D(2), True),
        ("monthly", D("25.00"), True)]
    assert (bonus.direction, bonus.rules[0].kind) == ("pay", "per_session")
    _, diags = revenue_share_terms(text.replace("commission booking, bonus", "commission bookng"), "h")
    assert [(d.code, d.message, d.hint) for d in diags] == [
        ("E202", "unknown commission 'bookng'", "did you mean 'booking'?")]
    _, diags = revenue_share_terms(text.replace("charge host", "charge emsp"), "h")
    assert [d.code for d in diags] == ["E212"] and "eMSP clearing" in diags[0].message
    _, diags = revenue_share_terms(text.replace("charge host", "pay partner acme"), "h")
    assert [d.code for d in diags] == ["E212"] and "sales partner's statement" in diags[0].message
    sales, diags = revenue_share_terms(text.replace("charge host", "pay partner acme"), "booking")
    assert diags == [] and sales is not None and sales.commissions[0].party == "partner"


def test_missing_block_and_broken_source() -> None:
    assert revenue_share_terms(HEAD, "h") == (None, [])
    terms, diags = revenue_share_terms("ruleset {", "h")
    assert terms is None and diags and diags[0].code.startswith("E1")


def test_commission_references_print_and_parse_back() -> None:
    from dsl.parser import parse
    from dsl.printer import print_ruleset

    text = HEAD + ("revenue_share h {\n  commission a, b\n  reimburse energy at 0.2 per kWh when time 22:00..06:00\n}\n"
                   "commission a { 0.30 per session; charge host }\ncommission b { 0.01 per kWh; pay host }\n")
    first = parse(text).ruleset
    assert first is not None
    again = parse(print_ruleset(first)).ruleset
    assert again is not None
    texts = [[s.text() for s in p.statements] for p in again.policies]
    assert texts == [[s.text() for s in p.statements] for p in first.policies]
    assert texts[0] == ["commission a, b", "energy at 0.2 per kWh when time 22:00..06:00"]
