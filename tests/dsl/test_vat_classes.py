"""VAT by country and date: a tariff's ``vat`` may name a rate class (``vat standard``, ``vat
reduced``) that rating resolves from the session's location country and local day through the
EU-27 table (``runtime.tax``) or the ruleset's own ``tax`` policy rows, which win; the checker
reports a VAT stated twice and an ``incl`` price with a class at file:line:col."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest

from dsl import compile_ruleset
from dsl.printer import print_ruleset
from runtime.rating import RatingError
from runtime.sessions import SessionFacts
from runtime.tax import RateUnknown, customer_treatment, valid_vat_id, vat_rate

SRC = """ruleset classes currency EUR timezone Europe/Berlin

tariff public {
  vat standard
  energy 0.50 per kWh
  start_fee 1.00 vat reduced
}

tax future "a rate the table does not know yet" {
  country DE standard 21% valid 2031-01-01..
}
"""


def _session(country: str, start: datetime) -> SessionFacts:
    return SessionFacts("s1", start, start.replace(hour=start.hour + 1), energy_kwh=D(10), country=country,
                        timezone="Europe/Berlin")


@pytest.mark.parametrize(("country", "start", "standard", "reduced"), [
    ("DE", datetime(2020, 6, 30, 21, 59, tzinfo=UTC), D(19), D(7)),   # 23:59 local, the last day at 19 %
    ("DE", datetime(2020, 6, 30, 22, 0, tzinfo=UTC), D(16), D(5)),    # midnight local: the 16 % half-year
    ("DE", datetime(2020, 12, 31, 12, tzinfo=UTC), D(16), D(5)),
    ("DE", datetime(2021, 1, 1, 12, tzinfo=UTC), D(19), D(7)),
    ("DE", datetime(2031, 1, 2, 12, tzinfo=UTC), D(21), D(7)),        # the ruleset's own row wins
    ("FR", datetime(2026, 5, 4, 12, tzinfo=UTC), D(20), D("5.5")),
    ("SK", datetime(2024, 12, 31, 12, tzinfo=UTC), D(20), D(10)),
    ("SK", datetime(2025, 1, 1, 12, tzinfo=UTC), D(23), D(19)),
])
def test_rate_classes_follow_country_and_day(country: str, start: datetime, standard: D, reduced: D) -> None:
    res = compile_ruleset(SRC, "classes.evb")
    assert res.ok, res.render()
    rated = res.ruleset.rate(_session(country, start))
    assert {ln.component: ln.tax_rate for ln in rated.lines} == {"energy": standard, "start_fee": reduced}
    groups = {g["rate"]: g for g in rated.to_dict()["totals"]["tax_groups"]}
    assert set(groups) == {format(standard.normalize(), "f"), format(reduced.normalize(), "f")}


def test_a_country_without_the_class_cannot_be_rated() -> None:
    res = compile_ruleset(SRC, "classes.evb")
    with pytest.raises(RatingError, match="no reduced VAT rate for DK on 2026-05-04"):
        res.ruleset.rate(_session("DK", datetime(2026, 5, 4, 12, tzinfo=UTC)))
    with pytest.raises(RatingError, match="no standard VAT rate for a session without a country"):
        res.ruleset.rate(_session("", datetime(2026, 5, 4, 12, tzinfo=UTC)))


def test_classes_print_back() -> None:
    res = compile_ruleset(SRC, "classes.evb")
    again = compile_ruleset(print_ruleset(res.ruleset.ast), "printed.evb")
    assert again.ok and again.ruleset.rate(_session("FR", datetime(2026, 5, 4, 12, tzinfo=UTC))).lines == \
        res.ruleset.rate(_session("FR", datetime(2026, 5, 4, 12, tzinfo=UTC))).lines


def test_checker_reports_vat_stated_twice_and_incl_with_a_class() -> None:
    src = """ruleset bad currency EUR timezone Europe/Berlin
tariff t {
  vat 19%
  vat standard
  energy 0.50 per kWh vat 7% vat reduced
  min_price 1.00 incl 1.19
}
"""
    res = compile_ruleset(src, "bad.evb")
    assert not res.ok
    text = res.render()
    assert "bad.evb:4:3: error[E310]: tariff 't' states its VAT twice" in text
    assert "bad.evb:5:" in text and "'energy' states its VAT twice" in text
    assert "bad.evb:6:3: error[E310]: 'min_price ... incl' needs a fixed VAT rate, not a rate class" in text
    # a class alone is not "no VAT rate" (W003)
    ok = compile_ruleset("ruleset ok currency EUR timezone Europe/Berlin\ntariff t { vat reduced\n"
                         "  energy 0.50 per kWh }\n", "ok.evb")
    assert ok.ok and not ok.diagnostics, ok.render()
    unknown = compile_ruleset("ruleset u currency EUR timezone Europe/Berlin\ntariff t { vat super\n"
                              "  energy 0.50 per kWh }\n", "u.evb")
    assert not unknown.ok and "u.evb:2:16" in unknown.render(), unknown.render()


def test_rate_table_and_customer_treatment() -> None:
    assert vat_rate("de", "standard", date(2020, 7, 1)) == D(16)
    assert vat_rate("DE", "standard", date(2021, 1, 1)) == D(19)
    assert vat_rate("FI", "standard", date(2024, 9, 1)) == D("25.5")
    with pytest.raises(RateUnknown):
        vat_rate("CH", "standard", date(2026, 1, 1))
    with pytest.raises(RateUnknown):
        vat_rate("DE", "super", date(2026, 1, 1))
    # python-stdnum: format and checksum; the country must match; an online check may refuse
    assert valid_vat_id("ATU13585627", "AT") and not valid_vat_id("ATU13585628", "AT")
    assert not valid_vat_id("ATU13585627", "DE")
    assert valid_vat_id("EL094259216", "GR")
    assert not valid_vat_id("ATU13585627", "AT", online=lambda _v: False)
    assert valid_vat_id("ATU13585627", "AT", online=lambda _v: None)  # VIES unreachable: the format decides
    rc = customer_treatment("DE", "AT", True, "ATU13585627")
    assert (rc.category, rc.vatex) == ("AE", "VATEX-EU-AE")
    assert customer_treatment("DE", "AT", True, "ATU13585628").category == "S"  # bad checksum: taxed
    assert customer_treatment("DE", "AT", False, "ATU13585627").category == "S"  # consumers: taxed
    assert customer_treatment("DE", "DE", True, "DE136695976").category == "S"   # domestic
    export = customer_treatment("DE", "CH", True, "CHE-116.281.710")
    assert (export.category, export.vatex) == ("O", "VATEX-EU-O")
    assert customer_treatment("DE", "CH", False, None).category == "S"
    # a business outside the EU proves it with a tax ID: none, or one with a bad check digit, is taxed
    assert customer_treatment("DE", "CH", True, "").category == "S"
    assert customer_treatment("DE", "GB", True, "GB980780685").category == "S"


EXEMPT = """ruleset exempt currency EUR timezone Europe/Berlin
groups clinics, schools
tariff t { vat 19%
  energy 0.50 per kWh
  when group clinics { energy 0.40 per kWh }
  when group schools { energy 0.45 per kWh }
}
tax untaxed "who pays no VAT" {
  exempt for group clinics VATEX-EU-132-1B "Steuerfrei nach § 4 Nr. 14 UStG"
  exempt for group schools
  reverse_charge
}
"""


def test_exempt_states_its_vatex_code_and_reason_and_prints_back() -> None:
    from dsl import ast as A
    from runtime.tax import exemption

    res = compile_ruleset(EXEMPT, "exempt.evb")
    assert res.ok and not res.diagnostics, res.render()
    (pol,) = [p for p in res.ruleset.ast.policies if p.kind == "tax"]
    clinics, schools = pol.of(A.TaxExempt)
    assert (clinics.code, clinics.note, [g.value for g in clinics.groups]) == (
        "VATEX-EU-132-1B", "Steuerfrei nach § 4 Nr. 14 UStG", ["clinics"])
    assert (schools.code, schools.note) == ("", "")
    assert exemption(schools.code, schools.note).vatex == "VATEX-EU-132"  # the default code
    printed = print_ruleset(res.ruleset.ast)
    assert 'exempt for groups clinics VATEX-EU-132-1B "Steuerfrei nach § 4 Nr. 14 UStG"' in printed
    again = compile_ruleset(printed, "printed.evb")
    assert again.ok and [(s.code, s.note) for p in again.ruleset.ast.policies if p.kind == "tax"
                         for s in p.of(A.TaxExempt)] == [(clinics.code, clinics.note), ("", "")]


@pytest.mark.parametrize("code", ["VATEX-EU-AE", "VATEX-EU-O", "VATEX-EU-IC", "VATEX-EU-999"])
def test_exempt_with_a_code_that_is_not_an_exemptions_is_refused(code: str) -> None:
    res = compile_ruleset(EXEMPT.replace("VATEX-EU-132-1B", code), "bad.evb")
    assert not res.ok
    assert f"bad.evb:9:3: error[E310]: '{code}' is not the VATEX code of an exemption" in res.render()


@pytest.mark.parametrize(("country", "rate_class", "day", "rate"), [
    # rows corrected against published data (see eu_rates.csv's header)
    ("IE", "standard", date(2020, 12, 31), D(21)), ("IE", "standard", date(2021, 3, 1), D(23)),
    ("GR", "standard", date(2016, 5, 31), D(23)), ("GR", "standard", date(2016, 6, 1), D(24)),
    ("RO", "standard", date(2016, 12, 31), D(20)), ("RO", "standard", date(2017, 1, 1), D(19)),
    ("FI", "reduced", date(2025, 12, 31), D(14)), ("FI", "reduced", date(2026, 1, 1), D("13.5")),
    ("LT", "reduced", date(2025, 12, 31), D(9)), ("LT", "reduced", date(2026, 1, 1), D(12)),
])
def test_corrected_rate_rows(country: str, rate_class: str, day: date, rate: D) -> None:
    assert vat_rate(country, rate_class, day) == rate
