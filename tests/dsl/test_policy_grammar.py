"""Typed policy statements: every kind has its own grammar rules, AST nodes with spans, checker
rules, and a canonical printed form (issue 11, "the house in order")."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from dsl import ast as A
from dsl.compiler import compile_ruleset
from dsl.parser import parse
from dsl.printer import print_ruleset

HEAD = ('ruleset t currency EUR timezone Europe/Berlin\ngroups fleet, staff\nseries spot_de per kWh\n'
        'tariff a "A" { vat 19%\n energy index(spot_de) + 0.10 per kWh }\n')

EVERY_KIND = HEAD + """
dunning standard {
  stage 1 after 7 days reminder; stage 2 after 14 days fee 5.00
  stage 3 after 14 days from previous_stage fee 10.00 untaxed, approval required then block_tokens and hand_over
  ignore below 5.00
  grace 3 days
  interest 9 points over base rate for businesses
  flat fee 40 for businesses; base rate -0.88% valid 2016-07-01..2023-01-01
  for group fleet
  pause on dispute
  escalate after 2 days
}
tax eu "EU VAT" {
  country DE vat 16% valid 2020-07-01..2021-01-01
  country DE vat 19% valid 2021-01-01..
  country DE reduced 7%
  reverse_charge "Steuerschuldnerschaft des Leistungsempfängers"
  exempt for group staff
}
commission sales {
  0.30 per session for group fleet
  0.02 per kWh for site adler_*
  5% of net revenue
  pay partner acme
  valid 2026-01-01..2027-01-01
}
reimbursement home {
  energy at index(spot_de) +
    0.02 per kWh
  energy at 0.30 per kWh when time 22:00..06:00
  for group staff
}
payments sepa "Direct debit" {
  method sepa_direct_debit
  pre_notification 5 days; lead_time 3 days
  minimum amount 1.00
  return charge bank_fee
  return charge 3.00 for AM04, MS02
  return charge none for MD06
}
"""


def _policy(rs: A.Ruleset, kind: str) -> A.Policy:
    return next(p for p in rs.policies if p.kind == kind)


def test_every_kind_parses_into_typed_statements_and_compiles() -> None:
    res = compile_ruleset(EVERY_KIND, "k.evb")
    assert res.ruleset is not None, res.render()
    rs = res.ruleset.ast
    dunning = _policy(rs, "dunning")
    s1, s2, s3 = dunning.of(A.Stage)
    assert (s1.number.value, s1.after.amount.value, s1.after.unit.value, s1.reminder) == (1, 7, "days", True)
    assert s2.fee is not None and s2.fee.value == D("5.00") and not s2.fee_untaxed
    assert s3.anchor is not None and s3.anchor.value == "previous_stage" and s3.fee_untaxed and s3.approval
    assert [a.value for a in s3.actions] == ["block_tokens", "hand_over"]
    assert (s3.span.line, s3.span.col) == (9, 3) and (s3.actions[1].span.line, s3.actions[1].span.col) == (9, 104)
    [interest] = dunning.of(A.Interest)
    assert interest.points.value == 9 and interest.debtors is not None and interest.debtors.value == "businesses"
    assert dunning.of(A.MinimumAmount)[0].amount.value == D("5.00") and dunning.of(A.PauseOnDispute)
    assert [g.value for g in dunning.of(A.ForGroups)[0].groups] == ["fleet"]
    [base] = dunning.of(A.BaseRate)
    assert (base.rate.value, base.valid_from, base.valid_until) == (D("-0.88"), "2016-07-01", "2023-01-01")

    rates = _policy(rs, "tax").of(A.VatRate)
    assert [(r.country.value, r.category, r.rate.value, r.valid_from, r.valid_until) for r in rates] == [
        ("DE", "standard", 16, "2020-07-01", "2021-01-01"), ("DE", "standard", 19, "2021-01-01", None),
        ("DE", "reduced", 7, None, None)]
    assert _policy(rs, "tax").of(A.ReverseCharge)[0].note.startswith("Steuerschuldnerschaft")

    c1, _c2, c3 = _policy(rs, "commission").of(A.Commission)
    assert c1.per is not None and c1.per.value == "session" and isinstance(c1.condition, A.Atom)
    assert c3.percent is not None and c3.percent.value == 5
    assert _policy(rs, "commission").of(A.Party)[0].direction == "pay"

    indexed, windowed = _policy(rs, "reimbursement").of(A.EnergyPrice)
    assert isinstance(indexed.price, A.BinOp) and isinstance(indexed.price.left, A.Index)
    assert (indexed.span.line, indexed.span.end_line) == (33, 34)  # a trailing '+' continues the line
    assert isinstance(windowed.condition, A.Atom) and windowed.condition.kind == "time"

    payments = _policy(rs, "payments")
    [method] = payments.of(A.PaymentMethod)
    assert method.method.value == "sepa_direct_debit" and (method.span.line, method.span.col) == (39, 3)
    assert [(w.kind, w.after.amount.value) for w in payments.of(A.PaymentWindow)] == [
        ("pre_notification", 5), ("lead_time", 3)]
    flat = payments.of(A.ReturnCharge)[1]
    assert flat.amount is not None and flat.amount.value == D("3.00") and [r.value for r in flat.reasons] == [
        "AM04", "MS02"] and (flat.reasons[1].span.line, flat.reasons[1].span.col) == (43, 32)
    policy = res.ruleset.policies.payments_named()
    assert policy is not None and (policy.method, policy.pre_notification_days, policy.lead_time_days,
                                   policy.minimum) == ("sepa_direct_debit", 5, 3, D("1.00"))
    # the rule naming the reason wins over the general one written before it
    assert policy.return_charge("AM04", D("7.50")) == D("3.00")
    assert policy.return_charge("MD06", D("7.50")) == 0
    assert policy.return_charge("AC01", D("7.50")) == D("7.50")  # bank_fee: what the bank took


def test_the_design_documents_dunning_block_reads_as_written() -> None:
    src = HEAD + ("dunning standard { stage 1 after 7 days reminder; stage 2 after 14 days fee 5.00; stage 3 after "
                  "14 days fee 10.00 approval required then block_tokens; ignore below 5.00 }\n")
    res = compile_ruleset(src, "d.evb")
    assert res.ruleset is not None, res.render()
    pol = _policy(res.ruleset.ast, "dunning")
    assert [st.text() for st in pol.statements] == [
        "stage 1 after 7 days reminder", "stage 2 after 14 days fee 5.00",
        "stage 3 after 14 days fee 10.00 approval required then block_tokens", "ignore below 5.00"]


def test_printed_policies_parse_back_to_the_same_statements() -> None:
    first = parse(EVERY_KIND).ruleset
    assert first is not None
    again = parse(print_ruleset(first)).ruleset
    assert again is not None
    for a, b in zip(first.policies, again.policies, strict=True):
        assert [s.text() for s in a.statements] == [s.text() for s in b.statements]


@pytest.mark.parametrize("body, code, fragment", [
    ("dunning d {\n  stage 1 after 7 dayz\n}\n", "E310", "unknown time unit 'dayz'"),
    ("dunning d {\n  stage 1 after 7 days then block_token\n}\n", "E310", "unknown dunning action 'block_token'"),
    ("dunning d {\n  stage 1 after 7 days from due\n}\n", "E310", "unknown waiting start 'due'"),
    ("dunning d {\n  stage 1 after 7 days\n  stage 3 after 7 days\n}\n", "E310", "stage 3 should be stage 2"),
    ("dunning d {\n  ignore below 5.00\n}\n", "E212", "dunning 'd' has no stage"),
    ("dunning d {\n  stage 1 after 7 days fee 5 vat 119%\n}\n", "E303", "out of range"),
    ("dunning d {\n  stage 1 after 7 days\n  interest 9 points over base rate for companies\n}\n", "E310",
     "unknown kind of debtor 'companies'"),
    ("dunning d {\n  stage 1 after 7 days\n  for group fleat\n}\n", "E201", "unknown customer group 'fleat'"),
    ("dunning d {\n  stage 1 after 7 days fee five\n}\n", "E101", "unexpected 'five', expected a number"),
    ("dunning d {\n  stgae 1 after 7 days\n}\n", "E212", "unknown dunning statement 'stgae'"),
    ("tax t {\n  country DEU vat 19%\n}\n", "E310", "'DEU' is not a country code"),
    ("tax t {\n  country DE vat 19%\n  country DE vat 16% valid 2020-07-01..2021-01-01\n}\n", "E310",
     "two standard rates for DE apply at the same time"),
    ("tax t {\n  country DE vat 19% valid 2021-01-01..2020-01-01\n}\n", "E306", "is empty"),
    ("tax t {\n  country DE normal 19%\n}\n", "E101", "expected vat, standard, reduced or zero"),
    ("commission c {\n  0.30 per sesion\n}\n", "E310", "unknown commission unit 'sesion'"),
    ("commission c {\n  120% of net revenue\n}\n", "E303", "out of range"),
    ("commission c {\n  charge partner x\n}\n", "E310", "unknown party to charge 'partner'"),
    ("commission c {\n  0.02 per kWh for group stuff\n}\n", "E201", "unknown customer group 'stuff'"),
    ("commission c {\n  charge host\n}\n", "E212", "commission 'c' has no amount"),
    ("commission c {\n  0.30 per session\n}\n", "E212", "commission 'c' does not say who pays whom"),
    ("commission c {\n  25.00 per month for group fleet\n  charge host\n}\n", "E212",
     "is a monthly flat fee, which no session condition can select"),
    ("commission c {\n  0.30 per session\n  charge host\n  pay host\n}\n", "E212",
     "commission 'c' states its party twice"),
    ("revenue_share s {\n  host gets 5% of net revenue\n  commission bookng\n}\ncommission booking {\n"
     "  0.30 per session; charge host\n}\n", "E202", "unknown commission 'bookng'"),
    ("revenue_share s {\n  reimburse energy at 0.20 per kWh\n  reimburse energy at 0.30 per kWh\n}\n", "E212",
     "repeats a term of this block"),
    ("reimbursement r {\n  energy at 0.20 per kWh\n  energy at 0.30 per kWh\n}\n", "E212",
     "states its price without a condition twice"),
    ("reimbursement r {\n  energy at index(spot) per kWh\n}\n", "E203", "unknown price series 'spot'"),
    ("reimbursement r {\n  for group staff\n}\n", "E212", "reimbursement 'r' has no price"),
    ("reimbursement r {\n  energy at 0.30 per kwh\n}\n", "E101", "unexpected 'kwh'"),
    ("revenue_share s {\n  host gets 0.05 per kilowatt\n}\n", "E310", "unknown share unit 'kilowatt'"),
    ("payments p {\n  method direct_debit\n}\n", "E310", "unknown payment method 'direct_debit'"),
    ("payments p {\n  pre_notification 2 weeks\n}\n", "E310", "a pre-notification is counted in days"),
    ("payments p {\n  lead_time 90 days\n}\n", "E310", "a lead time of 90 is out of range"),
    ("payments p {\n  minimum amount 1,00\n}\n", "E101", "unexpected ','"),
    ("payments p {\n  return charge bank_fees\n}\n", "E310", "unknown return charge 'bank_fees'"),
    ("payments p {\n  return charge 3.00 for AM4\n}\n", "E310", "unknown return reason code 'AM4'"),
    ("payments p {\n  return charge 3.00\n  return charge bank_fee\n}\n", "E212",
     "states the return charge for any return twice"),
    ("payments p {\n  return charge 3.00 for MD06\n  return charge none for MD06, MD01\n}\n", "E212",
     "states the return charge for MD06 twice"),
    ("payments p {\n  method bank_transfer\n  method sepa_direct_debit\n}\n", "E212", "states its payment method twice"),
    ("payments p {\n  retrun charge 3.00\n}\n", "E212", "unknown payments statement 'retrun'"),
])
def test_checker_and_grammar_diagnostics(body: str, code: str, fragment: str) -> None:
    res = compile_ruleset(HEAD + body, "k.evb")
    assert res.ruleset is None, "an error was expected"
    first = res.errors[0]
    assert first.code == code and fragment in first.message, res.errors
    assert first.span.line >= 6 and f"k.evb:{first.span.line}:{first.span.col}:" in res.render()


def test_a_statement_split_over_lines_needs_a_trailing_operator_or_comma() -> None:
    res = compile_ruleset(HEAD + "reimbursement r {\n  energy at index(spot_de)\n    + 0.02 per kWh\n}\n", "k.evb")
    assert [(d.code, d.span.line, d.message) for d in res.errors][:1] == [
        ("E101", 7, "unexpected end of line, expected '*', '+', '-', '/', 'per'")]


def test_the_readme_policy_examples_compile() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    start = readme.index("billing monthly { cycle monthly; cut_off")
    end = readme.index("```", start)
    src = HEAD.replace("groups fleet, staff", "groups fleet, staff, x") + readme[start:end]
    res = compile_ruleset(src, "README.md")
    assert res.ruleset is not None, res.render()
    assert sorted({p.kind for p in res.ruleset.ast.policies}) == sorted(
        ["billing", "hold", "service", "revenue_share", "dunning", "tax", "commission", "reimbursement", "payments"])


def test_a_comma_at_the_end_of_a_line_continues_the_statement() -> None:
    res = compile_ruleset(HEAD + "service s {\n  vat 19%\n  item app 1.00 per month,\n    vat 7%\n  prorate none\n"
                                 "  sim 2 per month\n}\n", "k.evb")
    assert res.ruleset is not None, res.render()
    got = res.ruleset.policies.services
    assert (got["s.app"].tax_rate, got["s.app"].prorate) == (D(7), "daily")  # 'vat 7%' belongs to the item
    assert (got["s.sim"].tax_rate, got["s.sim"].prorate) == (D(19), "none")  # 'prorate none' to the block
