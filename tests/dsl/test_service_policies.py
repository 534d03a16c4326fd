"""``service`` blocks: what reads (prices, periods, VAT, descriptions) and the diagnostics the
checker gives for what does not."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from dsl.compiler import compile_ruleset
from dsl.policies import interpret_policies
from runtime.invoicing import ServicePrice

HEAD = 'ruleset t currency EUR timezone Europe/Berlin\ntariff a "A" { energy 0.40 per kWh vat 19% }\n'
ROOT = Path(__file__).resolve().parents[2]


def services(body: str, head: str = HEAD) -> dict[str, ServicePrice]:
    res = compile_ruleset(head + body, "s.evb")
    assert res.ruleset is not None, res.render()
    pol, diags = interpret_policies(res.ruleset.ast, "s.evb")
    assert [d for d in diags if d.is_error] == []
    return dict(pol.services)


def test_every_form() -> None:
    got = services('''
service supervision "Charger supervision" {
  vat 7%
  ac_charger 9.00 per month
  dc_charger 57 per quarter "DC charger supervision"
  rfid_card 5.00 each
  item app_support 120.00 per year, vat 19%
  sim 2.50 per month "SIM card" vat 0%
}
''')
    assert {k: (v.price, v.per, v.tax_rate, v.description) for k, v in got.items()} == {
        "supervision.ac_charger": (D("9.00"), "month", D(7), "Charger supervision: ac charger"),
        "supervision.dc_charger": (D(57), "quarter", D(7), "DC charger supervision"),
        "supervision.rfid_card": (D("5.00"), "each", D(7), "Charger supervision: rfid card"),
        "supervision.app_support": (D("120.00"), "year", D(19), "Charger supervision: app support"),
        "supervision.sim": (D("2.50"), "month", D(0), "SIM card"),
    }
    assert got["supervision.dc_charger"].rule == "service supervision.dc_charger, line 7"


def test_prorate_per_block_and_per_item() -> None:
    got = services('''
service supervision {
  vat 19%
  ac_charger 9.00 per month
  item hotline 3.00 per month, prorate none
  prorate none
  sim 2.50 per month "SIM card"
  item app 1.00 per month prorate daily vat 7%
}
''')
    assert {k: (v.prorate, v.tax_rate) for k, v in got.items()} == {
        "supervision.ac_charger": ("daily", D(19)), "supervision.hotline": ("none", D(19)),
        "supervision.sim": ("none", D(19)), "supervision.app": ("daily", D(7))}


def test_vat_from_the_tariffs_and_the_shipped_ruleset() -> None:
    head = 'ruleset t currency EUR timezone Europe/Berlin\ntariff a "A" {\n  vat 19%\n  energy 0.40 per kWh\n}\n'
    assert services("service s {\n  sim 2 per month\n}\n", head)["s.sim"].tax_rate == D(19)
    src = (ROOT / "rulesets/fleet_employer/fleet_employer.evb").read_text()
    res = compile_ruleset(src, "fleet_employer.evb")
    assert res.ruleset is not None and not [d for d in res.diagnostics if d.code == "W003"]
    pol, _ = interpret_policies(res.ruleset.ast)
    assert {k: (v.price, v.per, v.tax_rate) for k, v in pol.services.items()} == {
        "supervision.ac_charger": (D("9.00"), "month", D(19)), "supervision.rfid_card": (D("5.00"), "each", D(19))}


def test_without_any_vat_rate_a_warning() -> None:
    head = 'ruleset t currency EUR timezone Europe/Berlin\ntariff a "A" {\n  vat 19%\n  energy 0.40 per kWh\n}\n' \
           'tariff b "B" {\n  vat 7%\n  energy 0.40 per kWh\n}\n'
    res = compile_ruleset(head + "service s {\n  sim 2 per month\n}\n", "s.evb")
    assert res.ruleset is not None
    [w] = [d for d in res.diagnostics if d.code == "W003"]
    assert "service 's' has no VAT rate" in w.message and w.severity == "warning"


@pytest.mark.parametrize("body, code, fragment", [
    ("service s {\n  sim 2 per moth\n}\n", "E310", "unknown price period 'moth'"),
    ("service s {\n  sim 2\n}\n", "E101", "unexpected end of line, expected 'each', 'per'"),
    ("service s {\n  sim two per month\n}\n", "E101", "unexpected 'two', expected"),
    ("service s {\n  sim -2 per month\n}\n", "E310", "cannot be negative"),
    ("service s {\n  sim 2 per month vat 19\n}\n", "E101", "expected a percentage"),
    ("service s {\n  sim 2 per month extra\n}\n", "E101", "unexpected 'extra'"),
    ("service s {\n  sim 2 per month\n  sim 3 per month\n}\n", "E204", "service item 'sim' is defined twice"),
    ("service s {\n  item\n}\n", "E101", "unexpected end of line, expected a name"),
    ("service s {\n  simm 2 per month\n}\n", "E212", "unknown service statement 'simm'"),
    ("service s {\n  sim 2 per month vat 120%\n}\n", "E303", ""),
    ("service s {\n  sim 2 per month, prorate weekly\n}\n", "E310", "unknown proration 'weekly'"),
    ("service s {\n  prorate dayly\n  sim 2 per month\n}\n", "E310", "unknown proration 'dayly'"),
    ("service s {\n  prorate\n}\n", "E101", "unexpected end of line, expected a name"),
    ("service s {\n  sim 2 per month prorate\n}\n", "E101", "unexpected end of line, expected a name"),
    ("service s {\n  sim 2 per month prorate none prorate none\n}\n", "E212", "states 'prorate' twice"),
])
def test_checker_reports_malformed_blocks(body: str, code: str, fragment: str) -> None:
    res = compile_ruleset(HEAD + body, "s.evb")
    assert res.ruleset is None, "an error was expected"
    errors = [d for d in res.diagnostics if d.is_error]
    assert errors[0].code == code and fragment in errors[0].message, errors
    assert errors[0].span.line >= 3 and errors[0].file == "s.evb"
    assert f"s.evb:{errors[0].span.line}:" in res.render()


def test_a_bad_proration_points_at_the_word_with_a_suggestion() -> None:
    res = compile_ruleset(HEAD + "service s {\n  vat 19%\n  prorate dayly\n  sim 2 per month\n}\n", "s.evb")
    assert res.ruleset is None
    text = res.render()
    assert "s.evb:5:11: error[E310]: unknown proration 'dayly'" in text and "did you mean 'daily'?" in text
