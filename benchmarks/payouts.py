"""Payouts benchmark (issue 12 refunds, the base of issue 15's payouts): N refund requests (each a
credit balance consumed on the subledger and a payable), one payout run gathering them all, and its
approval building, XSD-checking and archiving the pain.001.001.09, on SQLite in the store functions
the workflow's activities call (one transaction each, as there).

Usage: python benchmarks/payouts.py [--refunds 2000]
Prints the time of each step and payables/s. No target in the issues yet (issue 15 sets none for
payouts; the collection run's is 100,000 items in <= 30 s).

Measured 2026-12-06 on the shared 2-core machine under load 9.5-10 (other sessions' work), 2,000
refunds: requested 16.87 s (119/s: one account's items read per request), gathered 1.21 s
(1,659/s), file built, XSD-checked and archived 0.44 s. Before the gather read the earlier attempts
at once and the approval compared rows by id (not by equality in a list): gathered 6.93 s,
archived 8.40 s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from decimal import Decimal as D
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from store import collections as C
from store import payables as P
from store import receivables as R
from store.db import make_engine, migrate
from tests.workflows.seed import seed_tenant


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--refunds", type=int, default=2000)
    n = ap.parse_args().refunds
    on = date(2026, 12, 2)
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        migrate(engine)
        s = seed_tenant(engine, "bench", n)
        with engine.begin() as conn:
            conn.execute(C.creditor_account.insert().values(
                id="cra_bench", tenant_id="bench", name="Ladestrom GmbH", iban="DE02120300000000202051", bic="",
                creditor_id="DE98ZZZ09999999999", currency="EUR", lead_time_days=5, pain_version="pain.008.001.08",
                pass_return_charges=True, created_at=datetime(2026, 12, 1, tzinfo=UTC)))
            for i, acc in enumerate(s.account_ids):
                R.book_payment(conn, "bench", key=f"pay-{i}", customer_id=s.customer_of[acc], account_id=acc,
                               amount=D(i % 90) + D("1.25"), currency="EUR", booked_on=on, reference="overpaid")
        t0 = time.perf_counter()
        with engine.begin() as conn:
            for i, acc in enumerate(s.account_ids):
                P.request_refund(conn, "bench", key=f"refund-{i}", account_id=acc, currency="EUR", amount=None,
                                 credit_note=None, iban="DE89370400440532013000", bic="", payee_name=f"Kunde {i}",
                                 remittance=f"Refund {i}", on=on, requested_by="usr_req")
        t1 = time.perf_counter()
        with engine.begin() as conn:
            g = P.gather(conn, "bench", "cra_bench", "wf-bench", on, "usr_start")
        t2 = time.perf_counter()
        with engine.begin() as conn:
            run = P.submit_run(conn, "bench", g.run_id, "usr_appr", datetime(2026, 12, 2, 9, tzinfo=UTC))
        t3 = time.perf_counter()
        assert (g.items, run.items, run.status) == (n, n, "submitted")
        print(f"{n} refunds: requested {t1 - t0:.2f} s ({n / (t1 - t0):,.0f}/s), gathered {t2 - t1:.2f} s "
              f"({n / (t2 - t1):,.0f}/s), file built, XSD-checked and archived {t3 - t2:.2f} s; total "
              f"{run.total} EUR")
        engine.dispose()


if __name__ == "__main__":
    main()
