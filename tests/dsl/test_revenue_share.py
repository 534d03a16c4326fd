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
    assert [(d.code, d.span.line) for d in diags] == [("E101", 4), ("E310", 5), ("E212", 7), ("E212", 9)]
    assert "expected 'net', 'revenue'" in diags[0].message
    assert "unknown revenue_share statement 'commission'" in diags[3].message
    assert terms is None


def test_an_indexed_reimbursement_is_valid_but_not_read_by_statements_yet() -> None:
    terms, diags = revenue_share_terms(HEAD + """revenue_share h {
      host gets 8% of net revenue
      reimburse energy at index(spot) + 0.02 per kWh
    }""", "h")
    assert [(d.code, d.span.line) for d in diags] == [("E212", 5)] and "indexed price" in diags[0].message
    assert terms is not None and terms.percent == D(8) and terms.reimburse_per_kwh is None


def test_missing_block_and_broken_source() -> None:
    assert revenue_share_terms(HEAD, "h") == (None, [])
    terms, diags = revenue_share_terms("ruleset {", "h")
    assert terms is None and diags and diags[0].code.startswith("E1")
