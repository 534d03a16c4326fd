"""Partner quotas (issue 18): what a StartTransaction's access decision costs at a depot with N
running transactions of one partner, without and with a ``limit`` rule on that partner (the
location lock, the running sessions counted per token, the subject's tokens as a semi-join, the
claims of recent Authorizes). Each decision in its own transaction, rolled back.

Measured 2026-12-07 01:25-01:26 UTC by session h18c on the shared 2-core machine (load average
8.7-9.0), N = 1,000 running, 300 decisions each: SQLite no limit p50 1.05 ms, p99 17.4 ms, CPU
1.20 ms per decision; with the limit p50 17.4 ms, p99 51.6 ms, CPU 5.81 ms. PostgreSQL (after
ANALYZE) no limit p50 5.07 ms, p99 14.5 ms, CPU 1.60 ms; with the limit p50 19.6 ms, p99 30.7 ms,
CPU 4.80 ms. Without statistics (tables just filled, no ANALYZE yet) PostgreSQL planned the
semi-join badly: about 1 s per decision.

Usage: PYTHONPATH=. python benchmarks/ocpp_quota.py [--backend sqlite|postgresql] [--running 1000]
(postgresql: EVBILL_TEST_POSTGRES_URL, a fresh schema as the tests use)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.orm import Session

# the repository first: this folder's api.py would shadow the api package
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    from api.ocpp.access import authorize, clear_rules_cache
    from store.models import Token
    from store.ocpp import OcppTransaction
    from store.types import new_id, utcnow
    from tests.api.conftest import _ok, build_env

    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="sqlite", choices=("sqlite", "postgresql"))
    ap.add_argument("--running", type=int, default=1000)
    ap.add_argument("--decisions", type=int, default=300)
    args = ap.parse_args()
    n = args.running
    env, close = build_env(args.backend, Path(tempfile.mkdtemp(prefix="evbill-quota-")))
    c, h, t = env.client, env.a.h(), env.a
    x = _ok(c.post("/partners", json={"kind": "fleet", "name": "X"}, headers=h))["id"]
    loc = _ok(c.post("/locations", json={"code": "bench", "name": "bench", "country": "DE",
                                         "timezone": "Europe/Berlin"}, headers=h))["id"]
    cp = _ok(c.post("/charge-points", json={"location_id": loc, "identity": "BENCH-1"}, headers=h))["id"]
    _ok(c.post("/access-rules", json={"location_id": loc, "subject": "partner", "value": x}, headers=h))
    now = utcnow()
    with Session(env.engine) as db:
        db.execute(insert(Token), [{"id": new_id("tok"), "tenant_id": t.tenant_id, "uid": f"B-{i}", "kind": "rfid",
                                    "emaid": "", "visual_number": "", "status": "active", "contract_id": None,
                                    "issuing_partner_id": x, "cost_centre": "", "created_at": now}
                                   for i in range(n + 1)])
        db.execute(insert(OcppTransaction), [{
            "tenant_id": t.tenant_id, "charge_point_id": cp, "identity": "BENCH-1", "ocpp_version": "1.6",
            "transaction_ref": f"b{i}", "start_key": f"b{i}", "location_id": loc, "evse_uid": "", "connector_id": 1,
            "id_tag": f"B-{i}", "auth_status": "Accepted", "start": now, "meter_start_wh": Decimal(0),
            "status": "open", "created_at": now, "updated_at": now} for i in range(n)])
        db.commit()
    if args.backend == "postgresql":
        with env.engine.connect() as conn:  # what autovacuum does to filled tables soon enough
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))

    def run(label: str) -> None:
        clear_rules_cache()
        times: list[float] = []
        cpu = time.process_time()
        d: Any = None
        for _ in range(args.decisions):
            with Session(env.engine) as db:
                t0 = time.perf_counter()
                d = authorize(db, tenant_id=t.tenant_id, charge_point_id=cp, location_id=loc, evse_uid="",
                              id_tag=f"B-{n}", at=datetime.now(UTC), tz="Europe/Berlin", context="StartTransaction")
                times.append(time.perf_counter() - t0)
                db.rollback()
        times.sort()
        print(f"{args.backend} running={n} {label}: {d.reason} p50 {statistics.median(times) * 1000:.2f} ms "
              f"p99 {times[int(len(times) * 0.99)] * 1000:.2f} ms "
              f"CPU {(time.process_time() - cpu) / args.decisions * 1000:.2f} ms per decision")

    run("no limit")
    _ok(c.post("/access-rules", json={"location_id": loc, "effect": "limit", "subject": "partner", "value": x,
                                      "max_sessions": n + 10}, headers=h))
    run("limit")
    close()


if __name__ == "__main__":
    main()
