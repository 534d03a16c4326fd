"""The billing run's batch activity alone, in one thread, without Temporal or worker processes:
where month-end's per-account CPU goes (``benchmarks/month_end.py`` measures the whole thing).

Seeds N accounts with M rated sessions each on SQLite once (kept in ``--cache``, default the
system's temp directory), copies that database, and runs ``billing.assemble_batch`` over every
account in batches of ``--batch`` through temporalio's ``ActivityEnvironment`` (documents off, as
in month_end.py). Prints CPU milliseconds per account (``time.process_time``), SQL statements per
account, the sum of the invoices' gross totals (the same on every code version for the same seed),
and checks the numbers are gapless. ``--profile FILE`` writes a cProfile of the batches.

Usage: python benchmarks/month_end_batch.py [--accounts 1000] [--per-account 100] [--batch 100] [--profile out.prof]
       [--db sqlite|postgresql] [--gc worker|default] [--keep billed.db]

``--gc worker`` (the default since h17w) settles the garbage collector as the billing worker's
process does (``workflows.heap.settle_gc(workflows.billing.worker.GC_YOUNG)``) before the batches;
``--gc default`` leaves Python's settings (as this benchmark ran before).

``--db postgresql`` (``EVBILL_BENCH_POSTGRES_URL`` or ``EVBILL_TEST_POSTGRES_URL``) seeds a schema of
its own each time (ANALYZEd after seeding, as ``month_end.py`` does) and prints beside this process's
CPU the CPU of the PostgreSQL backends serving its connections (from ``/proc``: the server must run
on this machine).

Measured 2026-12-06 by session h17d (1,000 accounts / 100,000 sessions, load 6-15, so +-15 %):
  before issue 17 part 3's set-based writing (main @ beeb529): 11.1 ms CPU per account, 37.5 statements
  the group's drafts written set-based:                        9.6 ms, 17.6 statements
  + rated lines without column processors, ruleset once:       7.2-9.4 ms, 16.7 statements
  + GroupReads (the group's per-account reads at once):        8.3-9.1 ms, 9.5 statements (run back to
    back with the previous step: 8.0/9.4 ms before, 8.3/8.7 ms after: within the noise on SQLite, whose
    statements are cheap; PostgreSQL's round trips are not)
"""

from __future__ import annotations

import argparse
import cProfile
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import event, text
from temporalio.testing import ActivityEnvironment

from benchmarks.month_end import BENCH_RULESET, CUT_OFF, _pid_cpu, sessions_for
from store.db import make_engine, migrate
from tests.workflows.seed import insert_sessions, seed_tenant
from workflows.billing.activities import BillingActivities
from workflows.billing.types import AssembleBatchInput


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=1000)
    ap.add_argument("--per-account", type=int, default=100)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--cache", default=tempfile.gettempdir())
    ap.add_argument("--profile", default="")
    ap.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--gc", choices=["worker", "default"], default="worker")
    ap.add_argument("--keep", default="", help="SQLite: copy the billed database to this file (for "
                    "benchmarks/month_end_outputs.py)")
    args = ap.parse_args()
    os.environ["EVBILL_RENDER_DOCUMENTS"] = "0"
    n, per = args.accounts, args.per_account
    work = Path(tempfile.mkdtemp(prefix="evbill-batch-")) / "work.db"
    backends: set[int] = set()
    if args.db == "postgresql":
        engine, cleanup = _postgresql(n, per)

        @event.listens_for(engine, "connect")
        def backend(dbapi_conn: Any, _record: Any) -> None:
            with dbapi_conn.cursor() as cur:
                cur.execute("select pg_backend_pid()")
                backends.add(cur.fetchone()[0])

        engine.dispose()  # the seeding's connections: the batches' are counted from here
    else:
        base = Path(args.cache) / f"evbill-month-end-batch-{n}-{per}.db"
        if not base.exists():
            seeding = base.with_suffix(".seeding")
            eng = make_engine(f"sqlite:///{seeding}")
            migrate(eng)
            seeded = seed_tenant(eng, "bench", n, ruleset=BENCH_RULESET)
            insert_sessions(eng, seeded, sessions_for(seeded, per))
            eng.dispose()
            seeding.rename(base)
        shutil.copy(base, work)
        engine, cleanup = make_engine(f"sqlite:///{work}"), None
    acts = BillingActivities(engine)
    count = [0]

    def counted(*_: Any) -> None:
        count[0] += 1

    event.listen(engine, "after_cursor_execute", counted)
    with engine.connect() as conn:
        ids = [r[0] for r in conn.execute(text("select id from billing_account order by id"))]
    env = ActivityEnvironment()
    if args.gc == "worker":
        from workflows.billing.worker import GC_YOUNG
        from workflows.heap import settle_gc

        settle_gc(GC_YOUNG)
    now = CUT_OFF.astimezone(UTC).isoformat()
    prof = cProfile.Profile() if args.profile else None
    c0, t0 = time.process_time(), time.perf_counter()
    if prof:
        prof.enable()
    finalized = 0
    for i in range(0, len(ids), args.batch):
        out = env.run(acts.assemble_batch, AssembleBatchInput("bench", ids[i:i + args.batch], CUT_OFF.isoformat(), now))
        finalized += out.finalized
    if prof:
        prof.disable()
        prof.dump_stats(args.profile)
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    server = sum(_pid_cpu(pid) for pid in backends)
    with engine.connect() as conn:
        nums = [r[0] for r in conn.execute(text(
            "select number_seq from billing_invoice where status = 'finalized' order by number_seq"))]
        gross = [r[0] for r in conn.execute(text("select gross_total from billing_invoice"))]
    engine.dispose()
    if args.keep and args.db == "sqlite":
        shutil.copy(work, args.keep)
    shutil.rmtree(work.parent)
    if cleanup is not None:
        cleanup()
    assert nums == list(range(1, n + 1)), "numbers are not gapless"
    total = sum((Decimal(g) for g in gross), Decimal(0))
    print(f"{n} accounts x {per} sessions, batches of {args.batch}: {finalized} finalized; CPU "
          f"{1000 * cpu / n:.2f} ms per account"
          + (f" + PostgreSQL backends {1000 * server / n:.2f} ms" if backends else "")
          + f", wall {wall:.1f} s, {count[0] / n:.1f} statements per account, "
          f"gross total {total}, GC {args.gc}, load average {os.getloadavg()[0]:.1f} ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)")
    return 0


def _postgresql(n: int, per: int) -> tuple[Any, Any]:
    """A fresh schema seeded with ``n`` accounts of ``per`` sessions, and how to drop it."""
    from benchmarks.month_end import SEEDED_TABLES, postgresql_schema

    engine, _url, _schema, cleanup = postgresql_schema()
    migrate(engine)
    seeded = seed_tenant(engine, "bench", n, ruleset=BENCH_RULESET)
    insert_sessions(engine, seeded, sessions_for(seeded, per))
    with engine.begin() as conn:
        conn.execute(text(f"ANALYZE {', '.join(SEEDED_TABLES)}"))
    return engine, cleanup


if __name__ == "__main__":
    raise SystemExit(main())
