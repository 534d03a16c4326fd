"""Month-end's group read of the billed sessions probes the unique index by (tenant, session) for
each id it asks for, whatever the size of the table and also while it has no statistics: month-end
fills it from nothing, and autovacuum analyzes it late (never, on a server without it, as the
benchmark machine's). Without statistics PostgreSQL took each of 2,500 ids in ``= ANY(:ids)`` for
a 0.5 % match and scanned every billed session of the tenant once per group (the run quadratic in
accounts); with the array behind a scalar subquery it scanned small tables in ``id`` order testing
each row against every id. The plan is checked on PostgreSQL, the rows on both databases."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection
from sqlalchemy.sql import Select

from store import billing as B
from store import cycle as C
from tests.store.conftest import fresh_engine

COLUMNS = ("tenant_id", "session_id", "rating_id", "invoice_id")


def _explain(conn: Connection, stmt: Select, params: dict[str, object]) -> str:  # type: ignore[type-arg]
    compiled = stmt.compile(dialect=conn.dialect)
    return "\n".join(r[0] for r in conn.exec_driver_sql(
        "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + str(compiled), dict(compiled.params) | params))


def test_billed_sessions_read_probes_the_index_without_statistics(backend: str, tmp_path: Path) -> None:
    engine, cleanup = fresh_engine(backend, tmp_path)
    # 2,500 ids as a group asks: 1,001 of them billed (one twice), 1,500 not
    asked = [f"s{g}" for g in range(29_001, 30_001)] + [f"s{g}" for g in range(200_001, 201_501)] + ["s1", "s1"]
    try:
        done = 0
        for size in (2_500, 30_000, 100_000):  # billed sessions of the tenant, never analyzed
            with engine.begin() as conn:
                B.driver_insert(conn, B.billed_session, COLUMNS,
                                [("plans", f"s{g}", f"r{g}", f"inv_{g // 100}") for g in range(done + 1, size + 1)])
            done = size
            if backend == "postgresql":
                with engine.connect() as conn:
                    plan = _explain(conn, C._Q_BILLED_ANY, {"t": "plans", "ids": asked})
                assert "Rows Removed by Filter" not in plan, plan
                assert any("Index Cond" in ln and "session_id" in ln for ln in plan.splitlines()), plan
        with engine.begin() as conn:  # s1 billed again later; another tenant's
            B.driver_insert(conn, B.billed_session, COLUMNS, [("plans", "s1", "r1b", "inv_late"),
                                                               ("other", "s29001", "r9", "inv_other")])
        with engine.connect() as conn:
            got = C.billed_of(conn, "plans", asked)
        assert sorted(b.session_id for b in got) == sorted([f"s{g}" for g in range(29_001, 30_001)] + ["s1", "s1"])
        assert [(b.rating_id, b.invoice_id) for b in got if b.session_id == "s1"] == [("r1", "inv_0"),
                                                                                  ("r1b", "inv_late")]
        assert "inv_other" not in {b.invoice_id for b in got}
    finally:
        cleanup()  # type: ignore[operator]
