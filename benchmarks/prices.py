"""Price series import benchmark: a year of quarter-hour day-ahead prices (35,040 intervals) read
from CSV and stored, then the same file again (every interval compared, nothing stored).

    .venv/bin/python benchmarks/prices.py

Measured 2026-12-06 on the 2-core development machine (shared with other sessions), SQLite in a
temp directory, two runs: parse 0.96 / 0.23 s, import 2.06 / 0.68 s, re-import 2.89 / 1.04 s (the
machine's other load makes the spread; with one ORM object per point the import took 14.6 s, the
points are now inserted with Core in batches of 5,000).
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from runtime.series import read_prices
from store import prices as P
from store.db import make_engine, migrate
from store.models import PriceSeries
from store.tenants import bootstrap_tenant
from store.types import new_id


def main() -> None:
    engine = make_engine(f"sqlite:///{tempfile.mkdtemp()}/prices.db")
    migrate(engine)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    text = "timestamp,price (EUR/MWh)\n" + "".join(
        f"{(t0 + timedelta(minutes=15 * i)).isoformat()},{50 + i % 97}.25\n" for i in range(35040))
    with Session(engine) as db:
        tenant, _ = bootstrap_tenant(db, "bench", admin_email="bench@example.test")
        series = PriceSeries(id=new_id("ps"), tenant_id=tenant.id, name="spot_de", unit="per MWh",
                             resolution_minutes=15)
        db.add(series)
        db.flush()
        a = time.perf_counter()
        points, _ = read_prices(text)
        b = time.perf_counter()
        first = P.import_points(db, tenant.id, series, points)
        db.commit()
        c = time.perf_counter()
        again = P.import_points(db, tenant.id, series, points)
        d = time.perf_counter()
    engine.dispose()
    print(f"{len(points)} intervals: parse {b - a:.2f} s, import {c - b:.2f} s ({first.imported} stored), "
          f"re-import {d - c:.2f} s ({again.unchanged} unchanged)")


if __name__ == "__main__":
    main()
