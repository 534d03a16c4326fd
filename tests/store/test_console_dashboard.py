"""The console's dashboard shows revenue as the invoices bill it: each session at its rated net
(rounded per session by its rating), never the unrounded sum of the rating lines, which can differ
by cents over a month (a finance person compares the two)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from store.console import dashboard
from tests.workflows.seed import ENERGY, START_FEE, insert_sessions, seed_tenant


def test_dashboard_revenue_is_the_sum_of_the_sessions_rated_nets(engine: Engine) -> None:
    s = seed_tenant(engine, "dash", 1)
    acc = s.account_ids[0]
    kwh = D("1.0124")  # 0.40496 EUR of energy: rated at 0.40
    start = datetime(2026, 11, 10, 9, tzinfo=UTC)
    insert_sessions(engine, s, [(acc, f"dash-{i}", start + timedelta(days=i), kwh) for i in range(3)])
    with Session(engine) as db:
        board = dashboard(db, "dash", "Europe/Berlin", date(2026, 11, 1), date(2026, 12, 1), today=date(2026, 12, 6))
    rated = 3 * (START_FEE + (kwh * ENERGY).quantize(D("0.01")))
    exact = 3 * (START_FEE + kwh * ENERGY)
    assert rated == D("2.70") and exact != rated
    [site] = board.by_site.values()
    assert site.sessions == 3 and site.revenue["EUR"] == rated
    assert sum((d.revenue.get("EUR", D(0)) for d in board.by_day.values()), D(0)) == rated
