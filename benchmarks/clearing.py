"""eMSP clearing benchmark (issue 15): one eMSP's month of N roaming CDRs priced through the DSL
(``runtime.clearing.price_sessions``: ``CompiledRuleset.rate`` with the roaming agreement's tariff,
the one rating path), totalled, written to XLSX (xlsxwriter, rows streamed) and to OCPI 2.2.1 CDR
JSON. Target: 200,000 CDRs priced and written to XLSX in <= 60 s.

Usage: python benchmarks/clearing.py [--cdrs 200000] [--store]
``--store`` also runs the workflow's build activity on SQLite (sessions read from the database,
priced, both files and every CDR row stored in one transaction) after inserting the sessions.
Prints each step's wall and CPU time and CDRs/s.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dsl.compiler import compile_ruleset
from runtime import clearing as C
from runtime.rating import RatingContext
from tests.clearing_seed import RULESET, add_sessions, add_tokens, facts_of, seed_clearing

MONTH_START = datetime(2026, 11, 1, tzinfo=UTC)


def sessions(n: int, seed: int = 15) -> list[tuple[str, datetime, D, str]]:
    rnd = random.Random(seed)
    span = 29 * 86400
    out = []
    for i in range(n):
        start = MONTH_START + timedelta(seconds=rnd.randrange(span))
        kwh = D(rnd.randrange(500, 60000)) / 1000
        out.append((f"CDR{i:07d}", start, kwh, f"T{i % 5000:04d}"))
    return out


def _timed(label: str, n: int, fn: object) -> object:
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()  # type: ignore[operator]
    w, c = time.perf_counter() - w0, time.process_time() - c0
    print(f"{label:<34} {w:8.2f} s wall {c:8.2f} s CPU {n / w:10,.0f} CDRs/s")
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cdrs", type=int, default=200_000)
    ap.add_argument("--store", action="store_true")
    args = ap.parse_args()
    n = args.cdrs
    items = sessions(n)
    rows = [C.Roaming(facts_of(sid, start, kwh, uid), f"NL-ABC-C{uid}") for sid, start, kwh, uid in items]
    res = compile_ruleset(RULESET, "clearing_test.evb")
    assert res.ok and res.ruleset is not None
    rs = res.ruleset

    def pick(_: datetime) -> tuple[object, str]:
        return rs, "roam"

    t0 = time.perf_counter()
    cdrs = _timed("priced (DSL, tariff roam)", n,
                  lambda: C.price_sessions(rows, pick, RatingContext(), party_id="ABC"))
    totals = _timed("totals", n, lambda: C.statement_totals(cdrs, "EUR"))  # type: ignore[arg-type]
    header = C.XlsxHeader("2026-11", "Roam Mobility B.V.", "NL*ABC", "2026-11", date(2026, 12, 1))
    xlsx = _timed("XLSX written", n, lambda: C.write_xlsx(header, cdrs, totals))  # type: ignore[arg-type]
    priced_xlsx = time.perf_counter() - t0
    now = datetime(2026, 12, 1, tzinfo=UTC)
    js = _timed("OCPI CDR JSON written", n, lambda: C.dump_json([C.cdr_json(
        c, cpo_country="DE", cpo_party="EVB", emsp_country="NL", emsp_party="ABC", last_updated=now)
        for c in cdrs]))  # type: ignore[union-attr]
    print(f"{n:,} CDRs priced and written to XLSX in {priced_xlsx:.2f} s ({n / priced_xlsx:,.0f} CDRs/s; "
          f"target <= 60 s: {'met' if priced_xlsx <= 60 else 'NOT met'}); XLSX {len(xlsx):,} bytes, "  # type: ignore[arg-type]
          f"CDR JSON {len(js):,} bytes; net {totals.net} EUR, {totals.energy_kwh} kWh")  # type: ignore[attr-defined,arg-type]
    if args.store:
        from store.db import make_engine, migrate
        from workflows.clearing.activities import ClearingActivities
        from workflows.clearing.types import BuildInput

        with tempfile.TemporaryDirectory() as tmp:
            engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
            migrate(engine)
            seed = seed_clearing(engine, "bench")
            add_tokens(engine, seed, sorted({uid for *_, uid in items}))
            for i in range(0, n, 20000):
                add_sessions(engine, seed, items[i:i + 20000])
            _timed("build activity (SQLite, stored)", n, lambda: ClearingActivities(engine).build(
                BuildInput("bench", seed.partner_id, "2026-11", "wf-bench", "bench")))
            engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
