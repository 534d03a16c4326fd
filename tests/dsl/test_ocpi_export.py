"""DSL tariffs exported as OCPI 2.2.1 Tariffs (the importer's inverse): every conformance tariff
imported, compiled, exported, read by another implementation's types (ocpi-types) and imported
again prices every CDR of its case exactly as the original; what OCPI cannot say is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dsl.compiler import compile_ruleset
from dsl.ocpi import import_tariff, load_json, price_cdr
from dsl.ocpi_export import OcpiExportError, export_tariff
from runtime.clearing import dump_json

CONF = Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "ocpi" / "reference-v0.6.1"
CASES = sorted(p for p in CONF.glob("*/tariff.json")) if CONF.is_dir() else []


def _compile(text: str) -> object:
    res = compile_ruleset(text, "t.evb")
    assert res.ok and res.ruleset is not None, [str(d) for d in res.diagnostics]
    return res.ruleset


@pytest.mark.skipif(not CASES, reason=f"OCPI conformance data absent: {CONF}")
@pytest.mark.parametrize("tariff_path", CASES, ids=lambda p: p.parent.name)
def test_export_is_the_importers_inverse(tariff_path: Path) -> None:
    from ocpi_types.v2_2_1 import Tariff

    original = load_json(tariff_path.read_text())
    rs = _compile(import_tariff(original))
    name = rs.ast.tariffs[0].name  # type: ignore[attr-defined]
    exported = export_tariff(rs.ast, name, country_code="DE", party_id="EVB",  # type: ignore[attr-defined]
                             last_updated="2026-12-01T00:00:00Z", tariff_id=str(original.get("id", "t")))
    wire = json.loads(dump_json(exported))
    parsed = Tariff.from_dict(wire)
    assert parsed.currency == original["currency"] and len(parsed.elements) >= 1
    again = _compile(import_tariff(load_json(dump_json(exported))))
    cdrs = sorted(tariff_path.parent.glob("cdr*.json"))
    # a case without CDRs is still exported and read back above
    for cdr_path in cdrs:
        cdr = load_json(cdr_path.read_text())
        want = price_cdr(rs, cdr)  # type: ignore[arg-type]
        got = price_cdr(again, cdr)  # type: ignore[arg-type]
        assert got == want, cdr_path.name


def test_what_ocpi_cannot_say_is_refused_and_the_partner_condition_is_decided() -> None:
    rs = _compile("""\
ruleset r currency EUR timezone Europe/Berlin
partners ABC, XYZ
groups employees

tariff roam "Roaming" {
  vat 19%
  start_fee 0.30
  energy 0.55 per kWh step 100 Wh
  when partner XYZ { energy 0.45 per kWh }
  when time 22:00..06:00 and weekdays { energy 0.40 per kWh }
  when power >= 50 kW { time 0.05 per min step 1 min }
  min_price 1.00
}

tariff grouped "Members" {
  vat 19%
  energy 0.30 per kWh
  when group employees { energy 0.20 per kWh }
}
""")
    out = export_tariff(rs.ast, "roam", country_code="DE", party_id="EVB",  # type: ignore[attr-defined]
                        last_updated="2026-12-01T00:00:00Z", partner_party="ABC")
    els = json.loads(dump_json(out))["elements"]
    # XYZ's rule never applies to ABC; the window and power rules first, the base last
    assert [e.get("restrictions") for e in els] == [
        {"start_time": "22:00", "end_time": "06:00", "day_of_week": ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY",
                                                                     "FRIDAY"]},
        {"min_power": 50}, None]
    assert els[1]["price_components"] == [{"type": "TIME", "price": 3, "step_size": 60, "vat": 19}]
    assert els[2]["price_components"][1] == {"type": "ENERGY", "price": 0.55, "step_size": 100,
                                             "vat": 19}
    assert json.loads(dump_json(out))["min_price"] == {"excl_vat": 1}
    with pytest.raises(OcpiExportError, match="group"):
        export_tariff(rs.ast, "grouped", country_code="DE", party_id="EVB",  # type: ignore[attr-defined]
                      last_updated="2026-12-01T00:00:00Z")
