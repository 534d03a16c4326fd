"""Gapless invoice numbers under concurrency: many threads (and processes) finalizing at once, each
invoice finalized twice (a retried activity), on SQLite and on PostgreSQL when configured."""

from __future__ import annotations

import multiprocessing as mp
import random
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select

from store import billing as B
from store.db import make_engine
from tests.store.conftest import BACKENDS, fresh_engine
from tests.workflows.seed import seed_tenant

N = 300


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Engine, str]]:
    eng, cleanup = fresh_engine(str(request.param), tmp_path)
    url = eng.url.render_as_string(hide_password=False)
    yield eng, url
    cleanup()  # type: ignore[operator]


def _drafts(engine: Engine, tenant: str, n: int) -> list[str]:
    s = seed_tenant(engine, tenant, n)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    ids = [f"inv_{tenant}_{i:05d}" for i in range(n)]
    with engine.begin() as conn:
        conn.execute(insert(B.invoice), [dict(
            id=iid, tenant_id=tenant, account_id=acc, customer_id=s.customer_of[acc], cycle_key="k", kind="invoice",
            status="draft", currency="EUR", period_start=now, period_end=now, local_start=date(2026, 11, 1),
            local_end=date(2026, 12, 1), timezone="Europe/Berlin", issue_date=date(2026, 12, 1),
            due_date=date(2026, 12, 15), payment_terms="net 14", net_total=Decimal(1), tax_total=Decimal(0),
            gross_total=Decimal(1), tax_groups=[{"rate": "0", "net": "1", "tax": "0"}], sessions=0, energy_kwh=Decimal(0), hold_reasons=[], comparison={},
            corrects=[], workflow_id="w", rejected_reason="", decided_by="", created_at=now)
            for iid, acc in zip(ids, s.account_ids)])
        B.ensure_series(conn, tenant, "INV", "INV-")
    return ids


def _finalize_all(engine: Engine, tenant: str, ids: list[str], out: list[tuple[str, str]]) -> None:
    for iid in ids:
        for attempt in range(50):
            try:
                with engine.begin() as conn:
                    res = B.finalize_invoice(conn, tenant, iid)
                out.append((iid, res.number))
                break
            except Exception as exc:
                if attempt == 49:
                    raise
                _ = exc


def _check(engine: Engine, tenant: str, results: list[tuple[str, str]]) -> None:
    by_invoice: dict[str, set[str]] = {}
    for iid, num in results:
        by_invoice.setdefault(iid, set()).add(num)
    assert all(len(v) == 1 for v in by_invoice.values()), "an invoice got two numbers"
    with engine.connect() as conn:
        rows = conn.execute(select(B.invoice.c.id, B.invoice.c.number_seq, B.invoice.c.status)
                            .where(B.invoice.c.tenant_id == tenant)).all()
    assert all(r.status == "finalized" for r in rows)
    assert sorted(r.number_seq for r in rows) == list(range(1, len(rows) + 1))  # gapless, no duplicate
    assert {r.id: f"INV-{r.number_seq:06d}" for r in rows} == {k: next(iter(v)) for k, v in by_invoice.items()}


def test_threads_finalizing_at_once(db: tuple[Engine, str]) -> None:
    engine, _ = db
    ids = _drafts(engine, "num1", N)
    results: list[tuple[str, str]] = []
    threads = []
    for k in range(12):
        mine = ids[:]  # every invoice twice or more: retried activities racing the first attempt
        random.Random(k).shuffle(mine)
        threads.append(threading.Thread(target=_finalize_all, args=(engine, "num1", mine[: N // 2], results)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    leftover = sorted(set(ids) - {i for i, _ in results})
    _finalize_all(engine, "num1", leftover, results)
    _check(engine, "num1", results)


def _proc(url: str, schema: str | None, tenant: str, ids: list[str], q: mp.Queue[list[tuple[str, str]]]) -> None:
    eng = make_engine(url, schema=schema) if schema else make_engine(url)
    out: list[tuple[str, str]] = []
    _finalize_all(eng, tenant, ids, out)
    eng.dispose()
    q.put(out)


def test_processes_finalizing_at_once(db: tuple[Engine, str]) -> None:
    engine, url = db
    ids = _drafts(engine, "num2", N)
    schema = None
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            schema = conn.exec_driver_sql("select current_schema()").scalar()
    ctx = mp.get_context("spawn")
    q: mp.Queue[list[tuple[str, str]]] = ctx.Queue()
    procs = []
    for k in range(4):
        mine = ids[:]
        random.Random(100 + k).shuffle(mine)
        procs.append(ctx.Process(target=_proc, args=(url, schema, "num2", mine, q)))
    for p in procs:
        p.start()
    results: list[tuple[str, str]] = []
    for _ in procs:
        results.extend(q.get(timeout=300))
    for p in procs:
        p.join(timeout=60)
    _check(engine, "num2", results)
