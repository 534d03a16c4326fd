"""Price series import benchmark: a year of quarter-hour day-ahead prices (35,040 intervals) read
from CSV and stored, then the same file again (every interval compared, nothing stored); and a
partner statement of 10,000 sessions (two hours each, 12 meter-value intervals) whose energy is
reimbursed at a 15-minute spot price (``rulesets/dynamic_spot``'s ``hotel_spot``), priced per
stretch with its trace (pure: ``runtime.statements.build_statement``).

    .venv/bin/python benchmarks/prices.py

Measured 2026-12-06 on the 2-core development machine (shared with other sessions), SQLite in a
temp directory, two runs: parse 0.96 / 0.23 s, import 2.06 / 0.68 s, re-import 2.89 / 1.04 s (the
machine's other load makes the spread; with one ORM object per point the import took 14.6 s, the
points are now inserted with Core in batches of 5,000). The statement: 13.0 and 20.0 s wall at a load
average of 8.5 on the 2 cores, 4.9 s of CPU (192,000 stretches traced, 19 per session; a third of
the CPU goes into the trace's timestamps and decimals).
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


def statement() -> None:
    from decimal import Decimal as D
    from pathlib import Path
    from zoneinfo import ZoneInfo

    from dsl.revenue_share import revenue_share_terms
    from runtime.series import BoundedSeries
    from runtime.sessions import MeterValue, SessionFacts
    from runtime.statements import SessionRevenue, build_statement, statement_period

    src = (Path(__file__).parents[1] / "rulesets/dynamic_spot/dynamic_spot.evb").read_text()
    terms, _ = revenue_share_terms(src, "hotel_spot")
    assert terms is not None
    t0 = datetime(2026, 10, 31, 23, tzinfo=UTC)
    q = timedelta(minutes=15)
    series = BoundedSeries.of("spot_de", [(t0 + q * i, t0 + q * (i + 1), D("0.0812") + D(i % 50) / 1000)
                                          for i in range(4 * 24 * 31)])
    tz = ZoneInfo("Europe/Berlin")
    sessions = []
    for k in range(10000):
        start = t0 + timedelta(minutes=(k * 37) % (60 * 24 * 29))
        mvs = tuple(MeterValue(start + timedelta(minutes=10 * j), D(j * 1500)) for j in range(13))
        facts = SessionFacts(f"s{k}", start, start + timedelta(minutes=120), D(18), meter_values=mvs,
                             site_id="hotel_a")
        sessions.append(SessionRevenue(f"s{k}", start.astimezone(tz).date(), "EUR", D(18), ((D(19), D("9.5")),),
                                       "hotel_a", f"r{k}", facts))
    a, ca = time.perf_counter(), time.process_time()
    draft = build_statement(period=statement_period("Europe/Berlin", month="2026-11"), sessions=sessions,
                            terms=terms, series={"spot_de": series})
    b, cb = time.perf_counter(), time.process_time()
    rb = next(ln for ln in draft.lines if ln.kind == "reimbursement")
    print(f"statement of {len(sessions)} sessions, indexed reimbursement: {b - a:.2f} s wall, {cb - ca:.2f} s CPU; "
          f"reimbursement {rb.net} EUR, {len(rb.trace) - 1} stretches traced")


if __name__ == "__main__":
    main()
    statement()
