"""OCPI 2.2.1 conformance: every priced case in ``../shared/conformance/ocpi`` through the real CLI.

``evbill ocpi price`` imports the tariff into the DSL, compiles it and rates each CDR through
``CompiledRuleset.rate`` — the one pricing path. Every case compares all six cost groups (excl. and
incl. VAT; a Price the fixture omits is zero) and the volumes ``total_energy``, ``total_time``,
``total_parking_time`` at 4 decimal places, unless the case says otherwise and why.

Where a fixture and the specification's prose disagree, the case says which one we follow:

* ``reference-v0.6.1/025kwh_min_price/cdr2_less_than_2kWh`` expects 0.30/0.33: v0.6.1 did not
  apply ``min_price``. The newer upstream fixture (``reference-newer/...``) and the spec ("if less
  than 2 kWh is charged, EUR 0.50 (excl. VAT) or EUR 0.55 (incl. VAT) will be billed") say
  0.50/0.55. We follow the newer fixture and the spec.
* ``step_size/cdr1``: the periods carry TIME volumes of 0.0834 h (300.24 s) although the second
  period lasts 2 minutes by its timestamps, and parking 0.0334 h. We follow the volumes, as the
  reference does ("volumes come from the CDR dimensions"), and match its 0.5502; the spec's own
  worked example of this tariff says 0.55 because it starts from exact minutes.
* ``reference-newer/step_size/cdr1`` writes its timestamps at +01:00 and expects the 17:00..20:00
  element to price the period that starts at 17:00+01:00, i.e. restriction times evaluated in the
  CDR's local time. Our contract evaluates in UTC unless ``--tz`` is given, so the case passes
  ``--tz Europe/Amsterdam`` (the location is in the Netherlands, at +01:00 in January); a second
  test shows the UTC reading gives 0.4502 instead.
* ``real-world/codeberg_issue_228``: the CDR embeds its tariff (``cdr.tariffs[0]``), its periods
  begin 20 min 6 s before ``start_date_time``, and its own ``total_cost`` (1.83/2.21) is the CPO's
  figure that the upstream issue disputes. We follow ``output_price__cdr.json`` (1.84/2.22,
  total_time 1.0919 counted from the first period). Those figures need the hourly elements
  evaluated in Amsterdam time (CEST, +02:00): 7.293 kWh x 0.22 + 0.969 kWh x 0.24 = 1.83702 excl.,
  x 1.21 = 2.22279 incl.; in UTC the same periods would cost 1.88088. The expected file gives
  money at 2 places, so money is compared after rounding ours half-up to 2 places.
* ``spec-2.2.1/examples/cdr_example.json`` (tariff embedded) says ``total_energy`` 15.342 but its
  only period carries just a TIME dimension; volumes come from the dimensions, so we report 0 kWh
  and do not compare total_energy there. Its money (TIME 1.973 h at 2.00 per h, step 300 s ->
  2 h = 4.00 / 4.40) is compared.
* The spec's own worked examples (``test_spec_worked_example``, CDRs written by hand from its prose)
  agree with us except where the prose contradicts its tariff: the complex tariff's Saturday session
  (printed 12.28; 114 min at 1.25 per hour is 2.375, not 2.28 -> 12.375) and "switching to a
  free-of-charge element" (printed 0.80 from rates the tariff does not have -> 0.73). We follow
  the tariffs' prices; each case says why.
* Periods that cross a restriction boundary are split there pro rata (DESIGN.md; the spec's
  step-size example #2 bills it so); the v0.6.1 reference judges a period only at its start. No
  reference fixture has such a period.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

from api.cli import main as cli_main
from dsl.compiler import compile_ruleset
from dsl.ocpi import COST_FIELDS, import_tariff, load_json

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT.parent / "shared" / "conformance" / "ocpi"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ocpi"
V061 = CONF / "reference-v0.6.1"
NEWER = CONF / "reference-newer"
REAL = CONF / "real-world" / "codeberg_issue_228"
SPEC = CONF / "spec-2.2.1" / "examples"

if not CONF.is_dir():  # say why, visibly, when the shared data is not there
    print(f"OCPI conformance data not found at {CONF}: conformance cases are skipped", file=sys.stderr)
needs_conf = pytest.mark.skipif(not CONF.is_dir(), reason=f"OCPI conformance data absent: {CONF} does not exist")

VOLUMES = ("total_energy", "total_time", "total_parking_time")


@dataclass(frozen=True)
class Case:
    id: str
    tariff: Path
    cdr: Path
    expected: Path
    args: tuple[str, ...] = ()
    places: int = 4
    skip_fields: frozenset[str] = field(default_factory=frozenset)
    why: str = ""
    volume_places: int = 4
    also_expected: tuple[tuple[str, str], ...] = ()  # values the expected file leaves out, and their source


# v0.6.1 fixtures whose expected values were superseded upstream (see the module docstring)
SUPERSEDED = {
    "025kwh_min_price/cdr2_less_than_2kWh.json": NEWER / "025kwh_min_price" / "cdr2_less_than_2kWh.json",
}


def conformance_cases() -> list[Case]:
    if not CONF.is_dir():
        return []
    cases = []
    for cdr in sorted(V061.glob("*/cdr*.json")):
        rel = f"{cdr.parent.name}/{cdr.name}"
        expected = SUPERSEDED.get(rel, cdr)
        cases.append(Case(f"v0.6.1/{rel}", cdr.parent / "tariff.json", cdr, expected,
                          why="superseded by reference-newer (min_price applied)" if expected != cdr else ""))
    cases += [
        Case("newer/025kwh_min_price/cdr2_less_than_2kWh", V061 / "025kwh_min_price" / "tariff.json",
             NEWER / "025kwh_min_price" / "cdr2_less_than_2kWh.json",
             NEWER / "025kwh_min_price" / "cdr2_less_than_2kWh.json", why="min_price 0.50/0.55 applied"),
        Case("newer/grace_period_parking_time", NEWER / "grace_period_parking_time" / "tariff.json",
             V061 / "grace_period_parking_time" / "cdr.json", V061 / "grace_period_parking_time" / "cdr.json"),
        Case("newer/step_size/cdr1", V061 / "step_size" / "tariff.json", NEWER / "step_size" / "cdr1.json",
             NEWER / "step_size" / "cdr1.json", args=("--tz", "Europe/Amsterdam"),
             why="+01:00 timestamps, restriction times in local time"),
        Case("newer/step_size_energy/cdr1", V061 / "step_size_energy" / "tariff.json",
             NEWER / "step_size_energy" / "cdr1.json", NEWER / "step_size_energy" / "cdr1.json"),
        Case("real-world/codeberg_issue_228", REAL / "cdr.json", REAL / "cdr.json", REAL / "output_price__cdr.json",
             args=("--tz", "Europe/Amsterdam"), places=2,
             # the expected file gives no energy or parking volume; the CDR states 8.262 kWh (the
             # sum of its ENERGY dimensions) and has no PARKING_TIME
             also_expected=(("total_energy", "8.262"), ("total_parking_time", "0")),
             why="tariff embedded in the CDR; local (CEST) hours; expected money given at 2 places"),
        Case("spec/cdr_example", SPEC / "cdr_example.json", SPEC / "cdr_example.json", SPEC / "cdr_example.json",
             skip_fields=frozenset({"total_energy"}), volume_places=3,  # the CDR writes total_time 1.973
             why="tariff embedded; no ENERGY dimension in the periods"),
    ]
    return cases


CASES = conformance_cases()


def _relaxed_json(text: str) -> Any:
    """``output_price__cdr.json`` is JSON with ``#`` comment lines and trailing commas."""
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    text = re.sub(r",(\s*[}\]])", r"\1", text)
    return json.loads(text, parse_float=Decimal)


def expected_of(path: Path) -> dict[str, Any]:
    doc = _relaxed_json(path.read_text(encoding="utf-8"))
    return doc.get("cdr_price", doc)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, Any]]]:
    rc = cli_main(["ocpi", "price", *argv])
    out = capsys.readouterr().out
    return rc, [json.loads(line, parse_float=Decimal) for line in out.splitlines() if line.strip()]


def q(value: Any, places: int) -> Decimal:
    return Decimal(str(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def assert_matches(got: dict[str, Any], expected: dict[str, Any], places: int, skip: frozenset[str] = frozenset(),
                   label: str = "", volume_places: int = 4) -> None:
    problems = []
    for key, _group in COST_FIELDS:
        want = expected.get(key) or {"excl_vat": 0, "incl_vat": 0}  # a missing Price means zero
        for part in ("excl_vat", "incl_vat"):
            if want.get(part) is None:
                continue
            if q(got[key][part], places) != q(want[part], places):
                problems.append(f"{key}.{part}: got {got[key][part]}, expected {want[part]}")
    for key in VOLUMES:
        if key in skip:
            continue
        want_v = expected.get(key, 0)  # the fixtures leave out a zero parking time
        if q(got[key], volume_places) != q(want_v, volume_places):
            problems.append(f"{key}: got {got[key]}, expected {want_v}")
    assert not problems, f"{label}: " + "; ".join(problems)


@needs_conf
def test_the_case_list_covers_every_priced_fixture() -> None:
    # every cdr*.json under the conformance folder is priced by some case (new fixtures are not ignored)
    priced = {c.cdr.resolve() for c in CASES}
    on_disk = {p.resolve() for p in CONF.rglob("cdr*.json")}
    assert on_disk <= priced, f"unpriced CDR fixtures: {sorted(str(p) for p in on_disk - priced)}"
    assert len(CASES) == 15


@needs_conf
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_conformance_case(case: Case, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = run_cli(capsys, "--tariff", str(case.tariff), "--cdr", str(case.cdr), *case.args)
    assert rc == 0, out
    assert len(out) == 1
    assert "error" not in out[0], out[0]
    expected = {**expected_of(case.expected), **dict(case.also_expected)}
    assert_matches(out[0], expected, case.places, case.skip_fields, case.id, case.volume_places)
    # the contract's format: decimal strings with 4 places
    for key, _group in COST_FIELDS:
        for part in ("excl_vat", "incl_vat"):
            assert re.fullmatch(r"-?\d+\.\d{4}", str(out[0][key][part])), out[0][key]


@needs_conf
def test_v061_min_price_value_is_superseded_not_reproduced(capsys: pytest.CaptureFixture[str]) -> None:
    """The v0.6.1 file says 0.30/0.33 (min_price ignored); we bill the spec's 0.50/0.55."""
    d = V061 / "025kwh_min_price"
    old = expected_of(d / "cdr2_less_than_2kWh.json")
    assert (q(old["total_cost"]["excl_vat"], 2), q(old["total_cost"]["incl_vat"], 2)) == (Decimal("0.30"), Decimal("0.33"))
    rc, out = run_cli(capsys, "--tariff", str(d / "tariff.json"), "--cdr", str(d / "cdr2_less_than_2kWh.json"))
    assert rc == 0
    assert out[0]["total_cost"] == {"excl_vat": "0.5000", "incl_vat": "0.5500"}
    # the clamp is not an energy cost: the energy group keeps what the energy cost
    assert out[0]["total_energy_cost"] == {"excl_vat": "0.3000", "incl_vat": "0.3300"}


@needs_conf
def test_newer_step_size_read_in_utc_differs(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --tz the +01:00 periods fall in the 00:00..17:00 element (UTC 15:55..16:07): the
    0.1668 h of charging at 1.20 = 0.20016 plus parking 900 s at 1.00 = 0.25 -> 0.4502."""
    rc, out = run_cli(capsys, "--tariff", str(V061 / "step_size" / "tariff.json"),
                      "--cdr", str(NEWER / "step_size" / "cdr1.json"))
    assert rc == 0
    assert out[0]["total_cost"]["excl_vat"] == "0.4502"


@needs_conf
def test_all_cases_in_one_jsonl_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--cdrs: one output line per input line, in order (the v0.6.1 cases share UTC)."""
    utc = [c for c in CASES if c.id.startswith("v0.6.1/") and c.tariff.parent.name == "step_size_energy"]
    lines = [json.dumps(load_json(c.cdr.read_text()), default=str) for c in utc] * 3
    f = tmp_path / "cdrs.jsonl"
    f.write_text("\n".join(lines) + "\n")
    rc, out = run_cli(capsys, "--tariff", str(utc[0].tariff), "--cdrs", str(f))
    assert rc == 0 and len(out) == 3
    for got in out:
        assert_matches(got, expected_of(utc[0].expected), 4)


@needs_conf
def test_console_script_prices_a_case() -> None:
    """The installed ``evbill`` entry point, in a subprocess, as a user runs it."""
    exe = ROOT / ".venv" / "bin" / "evbill"
    if not exe.exists():
        pytest.skip(f"{exe} not installed")
    d = V061 / "simple_3hour_5parking"
    proc = subprocess.run([str(exe), "ocpi", "price", "--tariff", str(d / "tariff.json"), "--cdr", str(d / "cdr1.json")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert_matches(json.loads(proc.stdout), expected_of(d / "cdr1.json"), 4)


# ---------------------------------------------------------------- every example tariff imports
def example_tariffs() -> list[Path]:
    if not CONF.is_dir():
        return []
    return sorted(SPEC.glob("tariff*.json")) + sorted(V061.glob("*/tariff.json")) + sorted(NEWER.glob("*/tariff.json"))


@needs_conf
def test_example_tariff_list_is_complete() -> None:
    paths = example_tariffs()
    assert len([p for p in paths if p.parent == SPEC]) == 20
    assert len([p for p in paths if p.parent.parent == V061]) == 24


@needs_conf
@pytest.mark.parametrize("path", example_tariffs(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_example_tariff_imports_and_compiles(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tariff = load_json(path.read_text(encoding="utf-8"))
    source = import_tariff(tariff)
    res = compile_ruleset(source, f"{path.name} (imported)")
    assert res.errors == [], res.render()
    assert res.ok
    # the CLI door prints exactly the same ruleset
    assert cli_main(["ocpi", "import-tariff", str(path)]) == 0
    assert capsys.readouterr().out == source


# ---------------------------------------------------------------- reservations (hand-written CDRs)
# Each CDR in tests/dsl/fixtures/ocpi embeds its tariff (the numbers of the spec examples 15..18)
# and states the totals computed by hand from the spec text (see its "_hand_computation").
RESERVATIONS = [
    ("tariff15_reserved_15min.json", (), "tariff_15_reservation_5_euro_per_hour.json"),
    ("tariff16_reserved_13min.json", (), "tariff_16_reservation_2_euro_fee_5_euro_per_hour.json"),
    ("tariff17_reserved_22min.json", (), "tariff_17_reservation_with_expire_fee.json"),
    ("tariff17_expired_1h.json", ("--reservation-expired",), "tariff_17_reservation_with_expire_fee.json"),
    ("tariff18_reserved_22min.json", (), "tariff_18_reservation_with_expire_time.json"),
    ("tariff18_expired_90min.json", ("--reservation-expired",), "tariff_18_reservation_with_expire_time.json"),
]


@pytest.mark.parametrize("name,args,spec", RESERVATIONS, ids=[r[0] for r in RESERVATIONS])
def test_reservation_pricing(name: str, args: tuple[str, ...], spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = FIXTURES / name
    rc, out = run_cli(capsys, "--tariff", str(path), "--cdr", str(path), *args)
    assert rc == 0, out
    assert_matches(out[0], expected_of(path), 4, label=name)


@needs_conf
@pytest.mark.parametrize("name,spec", [(r[0], r[2]) for r in RESERVATIONS], ids=[r[0] for r in RESERVATIONS])
def test_reservation_fixture_embeds_the_spec_example_tariff(name: str, spec: str) -> None:
    mine = load_json((FIXTURES / name).read_text())["tariffs"][0]
    theirs = load_json((SPEC / spec).read_text())
    assert mine["elements"] == theirs["elements"]  # Decimal == int compares by value


def test_expiry_fee_is_not_charged_for_a_used_reservation(capsys: pytest.CaptureFixture[str]) -> None:
    """The same used reservation, priced as expired, adds the 4.00 expiry fee and nothing else
    (there was a session, so the 0.50 start fee and the energy stay)."""
    path = FIXTURES / "tariff17_reserved_22min.json"
    rc, out = run_cli(capsys, "--tariff", str(path), "--cdr", str(path), "--reservation-expired")
    assert rc == 0
    assert out[0]["total_reservation_cost"] == {"excl_vat": "5.0000", "incl_vat": "6.0000"}
    assert out[0]["total_cost"]["excl_vat"] == "10.5000"


# ---------------------------------------------------------------- the spec's worked examples
# mod_tariffs works most of its example tariffs through a session in prose ("for a charging session
# of 2.5 hours, this tariff will result in costs of EUR 5.00 (excl. VAT) or EUR 5.50 (incl. VAT)").
# Each case below is that session written as a CDR by hand, priced against the spec's example file.
# The spec prints money at 2 places (sometimes 3); ``places`` says at how many we compare.
def _cdr(start: str, periods: list[tuple[str, dict[str, str]]], end: str) -> dict[str, Any]:
    return {"id": "hand", "start_date_time": start, "end_date_time": end, "cdr_location": {"country": "DEU"},
            "charging_periods": [{"start_date_time": at, "dimensions": [{"type": k, "volume": Decimal(v)}
                                                                        for k, v in dims.items()]}
                                 for at, dims in periods]}


@dataclass(frozen=True)
class Worked:
    id: str
    tariff: str
    cdr: dict[str, Any]
    total: tuple[str, str]
    places: int = 2
    groups: tuple[tuple[str, str, str], ...] = ()  # (field, excl, incl) checked at 4 places
    why: str = ""


WORKED = [
    Worked("tariff_1 2.5 h charging", "tariff_1_simple_2hour.json",
           _cdr("2026-03-02T10:00:00Z", [("2026-03-02T10:00:00Z", {"TIME": "2.5"})], "2026-03-02T12:30:00Z"),
           ("5.00", "5.50")),
    Worked("tariff_2 2.5 h at 1.90 + 5.2% VAT", "tariff_2_alt_text.json",
           _cdr("2026-03-02T10:00:00Z", [("2026-03-02T10:00:00Z", {"TIME": "2.5"})], "2026-03-02T12:30:00Z"),
           ("4.75", "5.00"), groups=(("total_time_cost", "4.7500", "4.9970"),),
           why="the spec's 5.00 incl. VAT is 4.75 x 1.052 = 4.997 at 2 places"),
    Worked("tariff_3 20.45 kWh in 100 Wh steps", "tariff_3_alt_url.json",
           _cdr("2026-03-02T10:00:00Z", [("2026-03-02T10:00:00Z", {"ENERGY": "20.45", "TIME": "1"})],
                "2026-03-02T11:00:00Z"),
           ("5.63", "6.24"), groups=(("total_energy_cost", "5.1250", "5.6375"), ("total_fixed_cost", "0.5000", "0.6000")),
           why="20.5 kWh billed; the spec rounds 5.125 and 5.6375 to 5.13 and 5.64"),
    Worked("tariff_4 Monday 09:30, 16 A, 165 min + 42 min parking", "tariff_4_complex.json",
           _cdr("2026-03-02T09:30:00Z", [("2026-03-02T09:30:00Z", {"TIME": "2.75", "MAX_CURRENT": "16"}),
                                         ("2026-03-02T12:15:00Z", {"PARKING_TIME": "0.7"})], "2026-03-02T12:57:00Z"),
           ("9.00", "10.30"), groups=(("total_fixed_cost", "2.5000", "2.8750"), ("total_time_cost", "2.7500", "3.3000"),
                                      ("total_parking_cost", "3.7500", "4.1250"))),
    Worked("tariff_4 Saturday 13:30, 43 A, 114 min + 71 min parking", "tariff_4_complex.json",
           _cdr("2026-03-07T13:30:00Z", [("2026-03-07T13:30:00Z", {"TIME": "1.9", "MIN_CURRENT": "43"}),
                                         ("2026-03-07T15:24:00Z", {"PARKING_TIME": "1.1833"})], "2026-03-07T16:35:00Z"),
           ("12.38", "13.98"), groups=(("total_time_cost", "2.3750", "2.8500"), ("total_parking_cost", "7.5000", "8.2500")),
           why="the spec prints 12.28 / 13.861: its charging line says 114 minutes at 1.25 per hour is 2.28, but "
               "1.9 h x 1.25 = 2.375 (2.28 is 1.9 h x 1.20). We follow the tariff's prices, not the misprint"),
    Worked("tariff_6 50 kWh hits max_price", "tariff_6_025kwh_start_max_price.json",
           _cdr("2026-03-02T10:00:00Z", [("2026-03-02T10:00:00Z", {"ENERGY": "50", "TIME": "2"})], "2026-03-02T12:00:00Z"),
           ("10.00", "11.00")),
    Worked("tariff_6 30 kWh stays below max_price", "tariff_6_025kwh_start_max_price.json",
           _cdr("2026-03-02T10:00:00Z", [("2026-03-02T10:00:00Z", {"ENERGY": "30", "TIME": "2"})], "2026-03-02T12:00:00Z"),
           ("8.00", "8.85")),
    Worked("tariff_10 20 kWh + 40 min parking", "tariff_10_025kwh_parking_start.json",
           _cdr("2026-03-02T10:00:00Z", [("2026-03-02T10:00:00Z", {"ENERGY": "20", "TIME": "1"}),
                                         ("2026-03-02T11:00:00Z", {"PARKING_TIME": "0.6667"})], "2026-03-02T11:40:00Z"),
           ("7.00", "7.90"), groups=(("total_parking_cost", "1.5000", "1.8000"),),
           why="40 min of parking billed as 45 (step 900 s)"),
    Worked("tariff_14 switching #2: 16:35 + 35 min, two periods", "tariff_14_step_size.json",
           _cdr("2026-03-02T16:35:00Z", [("2026-03-02T16:35:00Z", {"TIME": "0.4167"}),
                                         ("2026-03-02T17:00:00Z", {"TIME": "0.1667"})], "2026-03-02T17:10:00Z"),
           ("1.30", "1.30"), places=4,
           why="35 min rounded to 45 at the last element's 900 s step; 25 min at 1.20 + 20 min at 2.40 "
               "(0.4167 h and 0.1667 h are the CPO's 4-place volumes: 0.50004 + 0.79992 = 1.29996 -> 1.3000)"),
    Worked("tariff_14 switching #2: one period across 17:00", "tariff_14_step_size.json",
           _cdr("2026-03-02T16:35:00Z", [("2026-03-02T16:35:00Z", {"TIME": "0.5833"})], "2026-03-02T17:10:00Z"),
           ("1.30", "1.30"), places=4,
           why="a period that crosses 17:00 is split there pro rata (DESIGN.md, and the spec's own breakdown); "
               "the v0.6.1 reference would price the whole period at its start, 1.20 per hour"),
    Worked("tariff_14 switching to free: 19:40, 12 min + 20 min parking", "tariff_14_step_size.json",
           _cdr("2026-03-02T19:40:00Z", [("2026-03-02T19:40:00Z", {"TIME": "0.2"}),
                                         ("2026-03-02T19:52:00Z", {"PARKING_TIME": "0.1333"}),
                                         ("2026-03-02T20:00:00Z", {"PARKING_TIME": "0.2"})], "2026-03-02T20:12:00Z"),
           ("0.73", "0.73"), groups=(("total_time_cost", "0.4800", "0.4800"), ("total_parking_cost", "0.2500", "0.2500")),
           why="the spec says 0.80, but its breakdown contradicts its tariff: it bills 12 min of charging at "
               "1.20 per hour as 0.20 (the 17:00..20:00 element charges 2.40: 0.48) and 15 min of parking at "
               "2.40 as 0.60 (that element's parking is 1.00: 0.25). We follow the tariff: 8 min of priced "
               "parking rounded to 15 (free after 20:00), and no TIME step since parking was priced"),
    Worked("max_power: 1 kWh at 6 kW, 40 kWh at 48 kW, 0.5 kWh at 4 kW", "tariffrestriction_example_max_power.json",
           _cdr("2026-03-02T10:00:00Z", [("2026-03-02T10:00:00Z", {"ENERGY": "1", "TIME": "0.1667", "MAX_POWER": "6"}),
                                         ("2026-03-02T10:10:00Z", {"ENERGY": "40", "TIME": "0.8333", "MAX_POWER": "48"}),
                                         ("2026-03-02T11:00:00Z", {"ENERGY": "0.5", "TIME": "0.125", "MAX_POWER": "4"})],
                "2026-03-02T11:07:30Z"),
           ("20.30", "24.36")),
    Worked("max_duration: 5 kWh in 30 min, 1.2 kWh in the next 10", "tariffrestriction_example_max_duration.json",
           _cdr("2026-03-02T10:00:00Z", [("2026-03-02T10:00:00Z", {"ENERGY": "5", "TIME": "0.5"}),
                                         ("2026-03-02T10:30:00Z", {"ENERGY": "1.2", "TIME": "0.1667"})],
                "2026-03-02T10:40:00Z"),
           ("0.30", "0.36")),
]


@needs_conf
@pytest.mark.parametrize("w", WORKED, ids=[w.id for w in WORKED])
def test_spec_worked_example(w: Worked, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "cdr.json"
    f.write_text(json.dumps(w.cdr, default=float))  # short reprs: exactly the decimals above
    rc, out = run_cli(capsys, "--tariff", str(SPEC / w.tariff), "--cdr", str(f))
    assert rc == 0, out
    got = out[0]
    assert (q(got["total_cost"]["excl_vat"], w.places), q(got["total_cost"]["incl_vat"], w.places)) == \
        (q(w.total[0], w.places), q(w.total[1], w.places)), (got["total_cost"], w.why)
    for key, excl, incl in w.groups:
        assert got[key] == {"excl_vat": excl, "incl_vat": incl}, (key, w.why)
