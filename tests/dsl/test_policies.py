"""Billing and hold policy blocks: what reads, and the diagnostics for what does not."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from dsl.compiler import compile_ruleset
from dsl.policies import interpret_policies
from runtime.invoicing import PaymentTerms

HEAD = 'ruleset t currency EUR timezone Europe/Berlin\ntariff a "A" { energy 0.40 per kWh vat 19% }\n'


def read(body: str):  # type: ignore[no-untyped-def]
    res = compile_ruleset(HEAD + body, "p.evb")
    assert res.ruleset is not None, res.render()
    return interpret_policies(res.ruleset.ast, "p.evb")


def test_full_policies() -> None:
    pol, diags = read("""
billing monthly {
  cycle quarterly
  cut_off day 5
  timezone Europe/Lisbon
  payment_terms end_of_month + 60
}
hold standard "Finance review" {
  hold when total > 5000.00
  hold when jump > 50% against previous
  hold when flag manual_review
  approval required
  escalate after 48 hours
}
""")
    assert diags == []
    b = pol.billing[0]
    assert (b.name, b.cycle, b.cut_off_day, b.timezone) == ("monthly", "quarterly", 5, "Europe/Lisbon")
    assert b.payment_terms == PaymentTerms("end_of_month", 60)
    h = pol.hold_named("standard")
    assert h is not None and h.approval_required and h.auto_release_after is None
    assert [r.kind for r in h.rules] == ["total", "jump", "flag"]
    assert h.rules[0].amount == Decimal("5000.00") and h.rules[1].percent == Decimal(50)
    assert h.rules[2].flag == "manual_review"
    assert h.escalate_after == timedelta(hours=48)


def test_auto_release_implies_no_approval() -> None:
    pol, diags = read('hold soft {\n  hold when total > 100\n  auto_release after 3 days\n  escalate after 90 minutes\n}\n')
    assert diags == []
    h = pol.holds[0]
    assert not h.approval_required and h.auto_release_after == timedelta(days=3)
    assert h.escalate_after == timedelta(minutes=90)


def test_defaults() -> None:
    pol, diags = read("billing b {\n  payment_terms net 30\n}\n")
    assert diags == [] and pol.billing[0].cycle == "monthly" and pol.billing[0].cut_off_day == 1
    assert pol.billing[0].payment_terms == PaymentTerms("net", 30)


@pytest.mark.parametrize("body, code, fragment", [
    ("billing b {\n  cycle weekly\n}\n", "E310", "unknown billing cycle 'weekly'"),
    ("billing b {\n  cut_off day 31\n}\n", "E310", "cut-off day 31 is out of range"),
    ("billing b {\n  timezone Europe/Berlinn\n}\n", "E206", "unknown time zone 'Europe/Berlinn'"),
    ("billing b {\n  payment_terms net soon\n}\n", "E101", "unexpected 'soon', expected a number"),
    ("billing b {\n  cycle monthly\n  cycle quarterly\n}\n", "E212", "states its cycle twice"),
    ("hold h {\n  hold when total > lots\n}\n", "E101", "unexpected 'lots', expected a number"),
    ("hold h {\n  hold when jump > 50 against previous\n}\n", "E101", "expected a percentage"),
    ("hold h {\n  hold when colour red\n}\n", "E101", "unexpected 'colour', expected 'flag', 'jump', 'total'"),
    ("hold h {\n  hold when total < 100\n}\n", "E310", "use '>' or '>='"),
    ("hold h {\n  escalate after 3 fortnights\n}\n", "E310", "unknown time unit 'fortnights'"),
    ("hold h {\n  approval required\n  auto_release after 2 days\n}\n", "E212", "cannot both"),
    ("hold h {\n  approvel required\n}\n", "E212", "unknown hold statement 'approvel'"),
])
def test_diagnostics(body: str, code: str, fragment: str) -> None:
    # typed grammar rules: `evbill check` reports these now, not the billing cycle when it runs
    res = compile_ruleset(HEAD + body, "p.evb")
    assert res.ruleset is None, "an error was expected"
    errors = res.errors
    assert errors[0].code == code and fragment in errors[0].message, errors[0]
    assert errors[0].span.line >= 3 and f"p.evb:{errors[0].span.line}:" in res.render()


def test_public_cpo_ruleset_reads() -> None:
    from pathlib import Path

    src = Path("rulesets/public_cpo/public_cpo.evb").read_text()
    res = compile_ruleset(src, "public_cpo.evb")
    assert res.ruleset is not None
    pol, diags = interpret_policies(res.ruleset.ast)
    assert diags == [] and pol.billing[0].payment_terms == PaymentTerms("net", 14)
