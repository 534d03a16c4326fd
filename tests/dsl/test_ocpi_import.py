"""The OCPI tariff importer: what each OCPI construct becomes in the DSL, and what it refuses."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from api.cli import main as cli_main
from dsl.compiler import compile_ruleset
from dsl.ocpi import OcpiError, cdr_to_session, import_tariff, load_json
from dsl.parser import parse
from dsl.printer import print_ruleset


def tariff(*elements: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"country_code": "DE", "party_id": "ALL", "id": "1", "currency": "EUR", "elements": list(elements),
            **extra}


def el(*components: dict[str, Any], **restrictions: Any) -> dict[str, Any]:
    e: dict[str, Any] = {"price_components": list(components)}
    if restrictions:
        e["restrictions"] = restrictions
    return e


def pc(typ: str, price: str | int, step: int = 1, vat: str | None = "20") -> dict[str, Any]:
    d: dict[str, Any] = {"type": typ, "price": Decimal(str(price)), "step_size": step}
    if vat is not None:
        d["vat"] = Decimal(vat)
    return d


def body(text: str) -> list[str]:
    """The lines inside the tariff block."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("tariff "))
    return [ln.strip() for ln in lines[start + 1:-1]]


def compiles(text: str) -> None:
    res = compile_ruleset(text, "imported.evb")
    assert res.errors == [], res.render()


# ---------------------------------------------------------------- components
def test_components_units_steps_and_vat() -> None:
    text = import_tariff(tariff(el(pc("FLAT", "0.50", 1), pc("ENERGY", "0.25", 100, "10"),
                                   pc("TIME", "1.90", 300, "5.2"), pc("PARKING_TIME", 5, 0, None))))
    assert body(text) == [
        "flat 0.5 vat 20%",  # FLAT takes no step
        "energy 0.25 per kWh step 100 Wh vat 10%",
        "time 1.9 per h step 300 s vat 5.2%",
        "parking 5 per h vat 0%",  # step 0 = no rounding; a missing vat is 0%
    ]
    compiles(text)


def test_header_names_and_currency() -> None:
    text = import_tariff(tariff(el(pc("ENERGY", "0.3")), id="NL*ABC 42", currency="CHF"))
    assert text.splitlines()[0] == "ruleset ocpi_DE_ALL_NL_ABC_42 currency CHF timezone UTC"
    assert 'tariff t_NL_ABC_42 "DE ALL NL*ABC 42" {' in text
    compiles(text)


def test_min_and_max_price_keep_excl_and_incl() -> None:
    text = import_tariff(tariff(el(pc("ENERGY", "0.25")), min_price={"excl_vat": Decimal("0.50"), "incl_vat": Decimal("0.55")},
                                max_price={"excl_vat": 10}))
    assert body(text)[-2:] == ["min_price 0.5 incl 0.55", "max_price 10"]
    compiles(text)


def test_float_input_gives_the_same_text() -> None:
    # api.commands parses with plain json.loads; floats must not leak binary noise into prices
    raw = '{"currency":"EUR","elements":[{"price_components":[{"type":"ENERGY","price":0.1,"vat":19.0,"step_size":1}]}]}'
    assert import_tariff(json.loads(raw)) == import_tariff(load_json(raw))
    assert "energy 0.1 per kWh step 1 Wh vat 19%" in import_tariff(json.loads(raw))


# ---------------------------------------------------------------- restrictions
@pytest.mark.parametrize("restrictions,cond", [
    ({"start_time": "09:00", "end_time": "18:00"}, "time 09:00..18:00"),
    ({"start_time": "22:00", "end_time": "06:00"}, "time 22:00..06:00"),
    ({"start_time": "20:00", "end_time": "24:00"}, "time 20:00..00:00"),
    ({"start_time": "20:00"}, "time 20:00..00:00"),
    ({"end_time": "07:00"}, "time 00:00..07:00"),
    ({"start_date": "2026-01-01", "end_date": "2026-02-01"}, "date 2026-01-01..2026-02-01"),
    ({"start_date": "2026-01-01"}, "date 2026-01-01.."),
    ({"end_date": "2026-02-01"}, "not date 2026-02-01.."),
    ({"min_kwh": 20}, "energy >= 20 kWh"),
    ({"max_kwh": Decimal("1.5")}, "energy < 1.5 kWh"),
    ({"min_current": 32}, "current >= 32 A"),
    ({"max_current": 32}, "current < 32 A"),
    ({"min_power": 11}, "power >= 11 kW"),
    ({"max_power": Decimal("22.5")}, "power < 22.5 kW"),
    ({"min_duration": 1800}, "duration >= 1800 s"),
    ({"max_duration": 3600}, "duration < 3600 s"),
    ({"day_of_week": ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY"]}, "weekdays"),
    ({"day_of_week": ["SATURDAY", "MONDAY"]}, "days mon sat"),
    ({"min_kwh": 0, "max_kwh": 5, "day_of_week": ["SUNDAY"]}, "energy >= 0 kWh and energy < 5 kWh and days sun"),
    ({"min_duration": 0, "max_duration": 1800}, "duration >= 0 s and duration < 1800 s"),
])
def test_each_restriction(restrictions: dict[str, Any], cond: str) -> None:
    text = import_tariff(tariff(el(pc("ENERGY", "0.4"), **restrictions), el(pc("ENERGY", "0.3"))))
    assert body(text) == [f"when {cond} {{ energy 0.4 per kWh step 1 Wh vat 20% }}",
                          "energy 0.3 per kWh step 1 Wh vat 20%"]
    compiles(text)


@pytest.mark.parametrize("restrictions", [
    {"start_time": "10:00", "end_time": "10:00"},  # equal: the whole day
    {"day_of_week": []},
    {"day_of_week": ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]},
    {"min_kwh": None},
    {},
])
def test_restrictions_that_restrict_nothing(restrictions: dict[str, Any]) -> None:
    text = import_tariff(tariff(el(pc("ENERGY", "0.4"), **restrictions) if restrictions else
                                {"price_components": [pc("ENERGY", "0.4")], "restrictions": restrictions}))
    assert body(text) == ["energy 0.4 per kWh step 1 Wh vat 20%"]


def test_reservation_elements() -> None:
    text = import_tariff(tariff(
        el(pc("TIME", 3, 600), reservation="RESERVATION"),
        el(pc("FLAT", 4), pc("TIME", 6, 600), reservation="RESERVATION_EXPIRES"),
        el(pc("FLAT", "0.5"), pc("ENERGY", "0.25", 1, "10")),
    ))
    # RESERVATION_EXPIRES goes first: the spec says an expired reservation's TIME is priced by it
    assert body(text) == [
        "when reservation_expires { reservation_fee 4 vat 20%; reservation 6 per h step 600 s vat 20% }",
        "when reservation { reservation 3 per h step 600 s vat 20% }",
        "flat 0.5 vat 20%",
        "energy 0.25 per kWh step 1 Wh vat 10%",
    ]
    compiles(text)


def test_reservation_combined_with_other_restrictions() -> None:
    text = import_tariff(tariff(el(pc("TIME", 3, 60), reservation="RESERVATION", start_time="08:00", end_time="20:00"),
                                el(pc("ENERGY", "0.3"))))
    assert body(text)[0] == "when time 08:00..20:00 and reservation { reservation 3 per h step 60 s vat 20% }"
    compiles(text)


# ---------------------------------------------------------------- element order and placement
def test_unrestricted_element_before_a_later_same_dimension_stays_a_when_always() -> None:
    # the first element shadows the second for ENERGY: it must stay first, so it cannot become
    # unconditional lines (which the DSL tries last)
    text = import_tariff(tariff(el(pc("ENERGY", "0.2")), el(pc("ENERGY", "0.5"), pc("TIME", 1), max_power=16)))
    assert body(text) == [
        "when always { energy 0.2 per kWh step 1 Wh vat 20% }",
        "when power < 16 kW { energy 0.5 per kWh step 1 Wh vat 20%; time 1 per h step 1 s vat 20% }",
    ]
    compiles(text)


def test_unrestricted_element_with_other_dimensions_becomes_base_lines() -> None:
    text = import_tariff(tariff(el(pc("FLAT", "2.5", 1, "15")), el(pc("TIME", 1, 900), max_current=32)))
    assert body(text) == ["when current < 32 A { time 1 per h step 900 s vat 20% }", "flat 2.5 vat 15%"]


def test_same_dimension_twice_in_one_element_keeps_the_first() -> None:
    text = import_tariff(tariff(el(pc("FLAT", 1), pc("FLAT", 2))))
    assert body(text) == ["flat 1 vat 20%"]


# ---------------------------------------------------------------- the printed text is canonical
@pytest.mark.parametrize("t", [
    tariff(el(pc("ENERGY", "0.25"), start_time="22:00", end_time="06:00", day_of_week=["SATURDAY", "SUNDAY"]),
           el(pc("PARKING_TIME", 3, 60), min_duration=1800), el(pc("FLAT", "0.5"), pc("ENERGY", "0.35")),
           min_price={"excl_vat": 1, "incl_vat": Decimal("1.19")}),
    tariff(el(pc("TIME", 2, 60), end_date="2027-01-01", min_power=Decimal("3.7"))),
])
def test_print_parse_print_is_stable(t: dict[str, Any]) -> None:
    text = import_tariff(t)
    outcome = parse(text, "imported.evb")
    assert outcome.ruleset is not None, outcome.diagnostics
    assert print_ruleset(outcome.ruleset) == text


# ---------------------------------------------------------------- invalid input
@pytest.mark.parametrize("t,message", [
    ([], "tariff: expected an object"),
    (tariff(currency="euro"), "currency: expected an ISO 4217 code"),
    ({"currency": "EUR"}, "elements: expected a list, found null"),
    (tariff(), "elements: a tariff needs at least one element"),
    (tariff({"price_components": []}), "elements[0].price_components: an element needs at least one"),
    (tariff(el({"type": "KWH", "price": 1, "step_size": 1})), "elements[0].price_components[0].type: expected one of"),
    (tariff(el({"type": "ENERGY", "step_size": 1})), "elements[0].price_components[0].price: missing"),
    (tariff(el({"type": "ENERGY", "price": "0.25", "step_size": 1})), "price: expected a number, found str"),
    (tariff(el({"type": "ENERGY", "price": True, "step_size": 1})), "price: expected a number, found true"),
    (tariff(el({"type": "ENERGY", "price": 1})), "step_size: missing"),
    (tariff(el({"type": "ENERGY", "price": 1, "step_size": Decimal("1.5")})), "step_size: expected a whole number"),
    (tariff(el({"type": "ENERGY", "price": 1, "step_size": -1})), "step_size: must be at least 0"),
    (tariff(el({"type": "ENERGY", "price": 1, "vat": -1, "step_size": 1})), "vat: must be at least 0"),
    (tariff(el({"type": "ENERGY", "price": 1, "vat": 120, "step_size": 1})), "vat: a VAT percentage above 100"),
    (tariff(el(pc("ENERGY", 1), start_time="9:00")), "elements[0].restrictions.start_time: expected a time of day"),
    (tariff(el(pc("ENERGY", 1), end_time="25:00")), "end_time: expected a time of day"),
    (tariff(el(pc("ENERGY", 1), start_date="2026-02-30")), "start_date: expected a date YYYY-MM-DD"),
    (tariff(el(pc("ENERGY", 1), start_date="2026-02-01", end_date="2026-02-01")), "is not before end_date"),
    (tariff(el(pc("ENERGY", 1), day_of_week=["MON"])), "day_of_week[0]: expected one of MONDAY"),
    (tariff(el(pc("ENERGY", 1), day_of_week="MONDAY")), "day_of_week: expected a list"),
    (tariff(el(pc("ENERGY", 1), min_kwh=-1)), "min_kwh: must be at least 0"),
    (tariff(el(pc("ENERGY", 1), reservation="YES")), "reservation: expected RESERVATION or RESERVATION_EXPIRES"),
    (tariff(el(pc("ENERGY", 1), reservation="RESERVATION")), "a reservation element can only have FLAT and TIME"),
    (tariff(el(pc("ENERGY", 1), min_soc=20)), "unknown restriction 'min_soc'"),
    (tariff(el(pc("ENERGY", 1)), min_price={"excl_vat": 5}, max_price={"excl_vat": 2}), "min_price 5 is above max_price 2"),
    (tariff(el(pc("ENERGY", 1)), min_price={"incl_vat": 5}), "min_price.excl_vat: missing"),
    ({"tariffs": [], "charging_periods": []}, "this looks like a CDR"),
])
def test_invalid_tariffs_raise_ocpi_error(t: Any, message: str) -> None:
    with pytest.raises(OcpiError) as exc:
        import_tariff(t)
    assert message in str(exc.value)


# ---------------------------------------------------------------- CDRs
def cdr(**over: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": "c1", "start_date_time": "2026-03-02T10:00:00Z", "end_date_time": "2026-03-02T11:00:00Z",
        "cdr_location": {"country": "DEU"},
        "charging_periods": [
            {"start_date_time": "2026-03-02T10:00:00Z", "dimensions": [
                {"type": "ENERGY", "volume": Decimal("10.5")}, {"type": "TIME", "volume": Decimal("0.5")},
                {"type": "MAX_POWER", "volume": 22}, {"type": "STATE_OF_CHARGE", "volume": 80}]},
            {"start_date_time": "2026-03-02T10:30:00Z", "dimensions": [{"type": "PARKING_TIME", "volume": Decimal("0.5")}]},
        ],
    }
    d.update(over)
    return d


def test_cdr_to_session_takes_volumes_from_dimensions() -> None:
    s = cdr_to_session(cdr())
    assert s.id == "c1" and s.country == "DEU" and s.reservation is None
    p0, p1 = s.periods
    assert (p0.energy_kwh, p0.time_h, p0.max_power_kw, p0.end) == (Decimal("10.5"), Decimal("0.5"), 22, p1.start)
    assert (p1.parking_h, p1.end) == (Decimal("0.5"), s.end)


@pytest.mark.parametrize("over,message", [
    ({"start_date_time": "2026-03-02 10:00"}, "start_date_time: timestamp"),
    ({"end_date_time": None}, "end_date_time: expected an ISO 8601 string"),
    ({"end_date_time": "2026-03-02T09:00:00Z"}, "is before start_date_time"),
    ({"charging_periods": []}, "charging_periods: a CDR needs at least one charging period"),
    ({"charging_periods": [{"start_date_time": "2026-03-02T10:00:00Z", "dimensions": [{"type": "ENERGY", "volume": -1}]}]},
     "charging_periods[0].dimensions[0].volume: must be at least 0"),
    ({"charging_periods": [{"start_date_time": "2026-03-02T10:00:00Z", "dimensions": [{"type": "KWH", "volume": 1}]}]},
     "charging_periods[0].dimensions[0].type: unknown CDR dimension"),
    ({"charging_periods": [{"start_date_time": "2026-03-02T10:00:00Z", "dimensions": [
        {"type": "ENERGY", "volume": 1}, {"type": "ENERGY", "volume": 2}]}]}, "ENERGY appears twice in one period"),
    ({"charging_periods": [{"start_date_time": "2026-03-02T10:30:00Z", "dimensions": []},
                           {"start_date_time": "2026-03-02T10:00:00Z", "dimensions": []}]}, "chronological order"),
    ({"charging_periods": [{"start_date_time": "2026-03-02T12:00:00Z", "dimensions": []}]}, "is after end_date_time"),
])
def test_bad_cdrs_raise_ocpi_error(over: dict[str, Any], message: str) -> None:
    with pytest.raises(OcpiError) as exc:
        cdr_to_session(cdr(**over))
    assert message in str(exc.value)


# ---------------------------------------------------------------- the command
TARIFF = tariff(el(pc("ENERGY", "0.25", 1, "10")), el(pc("PARKING_TIME", 2, 60), start_time="00:00", end_time="12:00"))


def _dumps(doc: Any) -> str:
    # JSON numbers from Decimals: the short float repr is exactly the decimal text written here
    return json.dumps(doc, default=lambda d: float(d) if isinstance(d, Decimal) else str(d))


def _write(tmp_path: Path, name: str, doc: Any) -> Path:
    p = tmp_path / name
    p.write_text(doc if isinstance(doc, str) else _dumps(doc))
    return p


def test_bad_cdr_lines_get_an_error_and_the_rest_are_priced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = _write(tmp_path, "t.json", TARIFF)
    good = _dumps(cdr())
    lines = [good, "{not json", _dumps(cdr(end_date_time="2026-03-02T09:00:00Z")), "", "[1, 2]", good]
    f = _write(tmp_path, "c.jsonl", "\n".join(lines) + "\n")
    rc = cli_main(["ocpi", "price", "--tariff", str(t), "--cdrs", str(f)])
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert rc == 1
    assert len(out) == 5  # the blank line is skipped
    assert out[0]["total_cost"] == out[4]["total_cost"] == {"excl_vat": "3.6250", "incl_vat": "4.0875"}
    assert out[1]["cdr"].endswith("c.jsonl:2") and out[1]["error"].startswith("not valid JSON")
    assert out[2]["id"] == "c1" and "is before start_date_time" in out[2]["error"]
    assert out[3]["error"] == "cdr: expected an object, found a list"


def test_a_cdr_file_may_hold_a_list_of_cdrs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = _write(tmp_path, "t.json", TARIFF)
    f = _write(tmp_path, "c.json", [cdr(id="a"), cdr(id="b")])
    assert cli_main(["ocpi", "price", "--tariff", str(t), "--cdr", str(f)]) == 0
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [o["id"] for o in out] == ["a", "b"]
    # 10.5 kWh x 0.25 = 2.625 (+10% = 2.8875); parking 0.5 h x 2.00 = 1.00 (+20% = 1.20)
    assert out[0]["total_energy_cost"] == {"excl_vat": "2.6250", "incl_vat": "2.8875"}
    assert out[0]["total_parking_cost"] == {"excl_vat": "1.0000", "incl_vat": "1.2000"}
    assert (out[0]["total_energy"], out[0]["total_time"], out[0]["total_parking_time"]) == ("10.5000", "1.0000", "0.5000")


def test_tz_moves_restriction_times(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # parking from 10:30Z: inside 00:00..12:00 in UTC, but 23:30 in Pacific/Auckland (UTC+13 in March)
    t = _write(tmp_path, "t.json", TARIFF)
    f = _write(tmp_path, "c.json", cdr())
    assert cli_main(["ocpi", "price", "--tariff", str(t), "--cdr", str(f), "--tz", "Pacific/Auckland"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["total_parking_cost"] == {"excl_vat": "0.0000", "incl_vat": "0.0000"}


@pytest.mark.parametrize("tariff_doc,args,message", [
    ("{nope", (), "not valid JSON"),
    ({"currency": "EUR", "elements": []}, (), "elements: a tariff needs at least one element"),
    ({"tariffs": []}, (), "a CDR without an embedded tariff"),
    (TARIFF, ("--tz", "Mars/Olympus"), "--tz: unknown time zone 'Mars/Olympus'"),
])
def test_unusable_tariff_or_options_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str], tariff_doc: Any,
                                           args: tuple[str, ...], message: str) -> None:
    t = _write(tmp_path, "t.json", tariff_doc)
    f = _write(tmp_path, "c.json", cdr())
    assert cli_main(["ocpi", "price", "--tariff", str(t), "--cdr", str(f), *args]) == 1
    cap = capsys.readouterr()
    assert cap.out == ""
    assert message in cap.err


def test_missing_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = _write(tmp_path, "t.json", TARIFF)
    assert cli_main(["ocpi", "price", "--tariff", str(tmp_path / "none.json"), "--cdr", str(t)]) == 1
    assert "no such file" in capsys.readouterr().err
    assert cli_main(["ocpi", "price", "--tariff", str(t), "--cdrs", str(tmp_path / "none.jsonl")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_import_tariff_command_reports_ocpi_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = _write(tmp_path, "t.json", {"currency": "EUR", "elements": [{"price_components": [{"type": "X"}]}]})
    assert cli_main(["ocpi", "import-tariff", str(t)]) == 1
    assert "elements[0].price_components[0].type: expected one of" in capsys.readouterr().err


def test_price_bounds_without_incl_vat_use_the_tariffs_one_rate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = tariff(el(pc("ENERGY", "0.25", 1, "20")), min_price={"excl_vat": Decimal("0.50")}, max_price={"excl_vat": 5})
    assert body(import_tariff(t))[0] == "vat 20%"
    tf = _write(tmp_path, "t.json", t)
    for kwh, excl, incl in (("1", "0.5000", "0.6000"), ("40", "5.0000", "6.0000"), ("10", "2.5000", "3.0000")):
        f = _write(tmp_path, "c.json", cdr(charging_periods=[{"start_date_time": "2026-03-02T10:00:00Z",
                                                             "dimensions": [{"type": "ENERGY", "volume": Decimal(kwh)}]}]))
        assert cli_main(["ocpi", "price", "--tariff", str(tf), "--cdr", str(f)]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["total_cost"] == {"excl_vat": excl, "incl_vat": incl}, kwh


def test_mixed_rates_state_no_tariff_vat() -> None:
    t = tariff(el(pc("FLAT", "0.5", 1, "20"), pc("ENERGY", "0.25", 1, "10")), max_price={"excl_vat": 10, "incl_vat": 11})
    assert not any(line.startswith("vat ") for line in body(import_tariff(t)))
