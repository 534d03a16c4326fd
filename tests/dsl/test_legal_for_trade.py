"""``legal_for_trade`` in a tariff: parsed, printed back, and billed from the signed readings only."""

from __future__ import annotations

from decimal import Decimal

from dsl import compile_ruleset
from dsl.printer import print_ruleset
from runtime.sessions import SessionFacts

SOURCE = """ruleset eich currency EUR timezone Europe/Berlin
tariff ac_eich "AC, legal for trade" {
  vat 19%
  legal_for_trade
  start_fee 0.50
  energy 0.40 per kWh
  when time 22:00..06:00 { energy 0.30 per kWh }
}
tariff plain "AC" { vat 19%; energy 0.40 per kWh }
"""

FACTS = {"id": "S1", "start": "2026-12-01T08:00:00Z", "end": "2026-12-01T09:00:00Z", "energy_kwh": "10.000",
         "meter_values": [{"at": "2026-12-01T08:00:00Z", "energy_wh": "1000"},
                          {"at": "2026-12-01T09:00:00Z", "energy_wh": "11000"}]}


def _energy(res: object) -> Decimal:
    return sum((ln.quantity for ln in res.lines if ln.component == "energy"), Decimal(0))  # type: ignore[attr-defined]


def test_parsed_printed_and_compiled() -> None:
    res = compile_ruleset(SOURCE)
    assert res.ok, res.render()
    assert res.ruleset is not None
    tariffs = {t.name: t for t in res.ruleset.ast.tariffs}
    assert tariffs["ac_eich"].legal_for_trade and not tariffs["plain"].legal_for_trade
    printed = print_ruleset(res.ruleset.ast)
    assert "  legal_for_trade\n" in printed
    again = compile_ruleset(printed)
    assert again.ok and again.ruleset is not None
    assert [t.legal_for_trade for t in again.ruleset.ast.tariffs] == [True, False]


def test_billed_from_the_signed_readings() -> None:
    rs = compile_ruleset(SOURCE).ruleset
    assert rs is not None
    signed = dict(FACTS, signed_meter={"check": "verified", "start_kwh": "1234.567", "end_kwh": "1244.467",
                                       "signed_kwh": "9.900"})
    res = rs.rate(SessionFacts.from_dict(signed), tariff="ac_eich")
    assert res.legal_for_trade and res.to_dict()["legal_for_trade"] is True
    assert _energy(res) == Decimal("9.900")  # the signed difference, not the 10 kWh of the unsigned readings
    assert res.net_total == Decimal("0.50") + Decimal("3.96")
    # the same facts under a tariff that is not legal for trade: the session's own energy
    plain = rs.rate(SessionFacts.from_dict(signed), tariff="plain")
    assert not plain.legal_for_trade and _energy(plain) == Decimal("10.000")
    # a failed check gives no signed energy: the session is rated as it came (and held, see the cycle)
    bad = dict(FACTS, signed_meter={"check": "meter_signature_invalid", "reason": "bad_signature",
                                    "signed_kwh": "1"})
    res_bad = rs.rate(SessionFacts.from_dict(bad), tariff="ac_eich")
    assert res_bad.legal_for_trade and _energy(res_bad) == Decimal("10.000")
