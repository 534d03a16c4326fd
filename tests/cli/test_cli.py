"""The public CLI contract (DESIGN.md): check, rate and demo, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EVBILL = [sys.executable, "-m", "api.cli"]


def run(*args: str, stdin: str | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EVBILL, *args], input=stdin, capture_output=True, text=True, cwd=cwd, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_check_clean_rulesets_exit_zero() -> None:
    files = sorted(str(p) for p in (ROOT / "rulesets").glob("*/*.evb"))
    assert len(files) >= 5
    r = run("check", *files)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count(": ok: ruleset") == len(files)


def test_check_reports_file_line_col_and_exits_one(tmp_path: Path) -> None:
    bad = tmp_path / "bad.evb"
    bad.write_text("ruleset x currency EUR timezone Europe/Berlin\ngroups employees\n"
                   "tariff t { vat 19%; energy 0.3 per kWh\n  when group employes { energy 0.2 per kWh } }\n")
    r = run("check", str(bad))
    assert r.returncode == 1
    assert f"{bad}:4:14: error[E201]: unknown customer group 'employes'" in r.stderr
    assert "did you mean 'employees'?" in r.stderr
    js = run("check", "--json", str(bad))
    diags = [json.loads(x) for x in js.stdout.splitlines()]
    assert {k: diags[-1][k] for k in ("code", "line", "col")} == {"code": "E201", "line": 4, "col": 14}


def test_check_missing_file() -> None:
    r = run("check", "/nonexistent.evb")
    assert r.returncode == 1 and "no such file" in r.stderr


def test_rate_rates_good_lines_and_reports_bad_ones(tmp_path: Path) -> None:
    sessions = tmp_path / "s.jsonl"
    sessions.write_text("\n".join([
        json.dumps({"id": "a", "start": "2026-11-18T10:00:00+01:00", "end": "2026-11-18T12:00:00+01:00",
                    "energy_kwh": "11", "charging_end": "2026-11-18T11:30:00+01:00"}),
        "{not json",
        json.dumps({"id": "b", "start": "yesterday", "end": "2026-11-18T12:00:00Z"}),
        json.dumps({"id": "c", "start": "2026-11-18T10:00:00Z", "end": "2026-11-18T10:30:00Z", "energy_kwh": "-1"}),
        json.dumps({"id": "d", "start": "2026-11-18T23:00:00+01:00", "end": "2026-11-18T23:20:00+01:00",
                    "energy_kwh": "10", "power_type": "DC", "max_power_kw": "50"}),
    ]) + "\n")
    r = run("rate", "--ruleset", str(ROOT / "rulesets/public_cpo/public_cpo.evb"), "--sessions", str(sessions))
    assert r.returncode == 1  # some lines failed
    out = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(out) == 5
    assert out[0]["totals"]["net"] == "5.39" and out[0]["trace"]
    assert out[1]["line"] == 2 and "not valid JSON" in out[1]["error"]
    assert out[2]["line"] == 3 and "start" in out[2]["error"]
    assert out[3]["line"] == 4 and "negative energy" in out[3]["error"]
    assert out[4]["totals"]["net"] == "5.90"
    assert {"component", "quantity", "unit", "unit_price", "net", "tax_rate", "rule"} <= set(out[0]["lines"][0])


def test_rate_from_stdin_with_series(tmp_path: Path) -> None:
    line = json.dumps({"id": "x", "start": "2026-11-18T12:30:00Z", "end": "2026-11-18T14:30:00Z", "energy_kwh": "20"})
    r = run("rate", "--ruleset", str(ROOT / "rulesets/dynamic_spot/dynamic_spot.evb"), "--sessions", "-",
            "--series", f"spot_de={ROOT / 'rulesets/dynamic_spot/spot_de_2026-11-18.csv'}", stdin=line + "\n")
    assert r.returncode == 0, r.stderr
    totals = json.loads(r.stdout)["totals"]
    # three hourly energy lines 0.776 + 1.145 + 0.699 and the 0.25 start fee: each line is rounded
    # once (0.78 + 1.15 + 0.70 + 0.25), the unrounded sum is kept alongside
    assert (totals["net"], totals["net_unrounded"]) == ("2.88", "2.87")


def test_rate_unknown_tariff() -> None:
    r = run("rate", "--ruleset", str(ROOT / "rulesets/public_cpo/public_cpo.evb"), "--tariff", "nope",
            "--sessions", "-", stdin="")
    assert r.returncode == 1 and "has no tariff 'nope'" in r.stderr


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("demo") / "out"
    return run("demo", "--out", str(out), "--sessions", "500"), out


def test_demo_runs_and_writes_artefacts(demo: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    r, out = demo
    assert r.returncode == 0, r.stdout + r.stderr
    assert "sessions rated through the DSL" in r.stdout
    assert (out / "summary.csv").read_text().count("\n") == 6
    # the system month: OCPP transactions all rated, a held invoice approved, documents exported
    assert "sessions stored and rated" in r.stdout and "held for finance" in r.stdout
    assert "invoices finalized" in r.stdout
    docs = list((out / "documents").glob("*.pdf"))
    assert docs and all(d.read_bytes().startswith(b"%PDF") for d in docs)


KIT = ROOT.parent / "shared" / "conformance" / "einvoice"


def test_demo_einvoices_pass_the_official_rules(demo: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    if not KIT.is_dir():
        pytest.skip(f"e-invoice validation kit not found at {KIT}")
    sys.path.insert(0, str(KIT))
    from validate import Validator  # type: ignore[import-not-found]

    _r, out = demo
    xmls = sorted((out / "documents").rglob("*.xml"))
    assert any("INV-" in x.name for x in xmls), "the public buyer's invoice is issued as XRechnung"
    v = Validator()
    for x in xmls:
        report = v.validate(str(x))
        assert report.valid, (x.name, [(m.id, m.text) for m in report.errors])
