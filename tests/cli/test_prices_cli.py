"""``evbill prices import NAME FILE``: a day-ahead file into the database (series created on first
import), the same file again stores nothing, a refused file prints the line and exits 1."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.db import make_engine
from store.models import PricePoint, PriceSeries
from tests.cli.test_admin_cli import run

QUARTERS = ('"MTU (UTC)";"Day-ahead Price [EUR/MWh]"\n'
            '"01.04.2026 00:00 - 01.04.2026 00:15";"85,20"\n'
            '"01.04.2026 00:15 - 01.04.2026 00:30";"84,00"\n')


def test_prices_import(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'evbill.db'}"
    assert run(url, "tenants", "create", "Stadtwerke Test", "--admin-email", "a@sw.example").returncode == 0
    f = tmp_path / "da.csv"
    f.write_text(QUARTERS, encoding="utf-8")
    first = run(url, "prices", "import", "spot_de", str(f))
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    assert (out["name"], out["unit"], out["imported"], out["unchanged"]) == ("spot_de", "per MWh", 2, 0)
    again = run(url, "prices", "import", "spot_de", str(f))
    assert again.returncode == 0 and json.loads(again.stdout)["imported"] == 0
    f.write_text(QUARTERS.replace('"84,00"', '"84,50"'), encoding="utf-8")
    bad = run(url, "prices", "import", "spot_de", str(f))
    assert bad.returncode == 1
    err = json.loads(bad.stdout)
    assert err["line"] == 3 and "84.00" in err["error"] and "84.50" in err["error"], err
    gap = tmp_path / "gap.csv"
    gap.write_text("timestamp,price\n2026-04-02T00:00:00Z,1\n2026-04-02T00:30:00Z,1\n2026-04-02T00:45:00Z,1\n",
                   encoding="utf-8")
    refused = run(url, "prices", "import", "spot_de", str(gap))
    assert refused.returncode == 1 and json.loads(refused.stdout)["line"] == 2
    engine = make_engine(url)
    try:
        with Session(engine) as db:
            series = db.execute(select(PriceSeries)).scalars().one()
            assert (series.unit, series.resolution_minutes) == ("per MWh", 15)
            pts = db.execute(select(PricePoint.value, PricePoint.ends_at).order_by(PricePoint.start)).all()
            assert [str(v) for v, _ in pts] == ["85.20", "84.00"] and all(e is not None for _, e in pts)
    finally:
        engine.dispose()
