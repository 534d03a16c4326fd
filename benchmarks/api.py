"""API benchmark: session import throughput (batch endpoint, rated on write) and customer lookup
latency (p50/p99) under concurrent clients, on SQLite and PostgreSQL.

    .venv/bin/python benchmarks/api.py                       # SQLite, and PostgreSQL if configured
    EVBILL_BENCH_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test .venv/bin/python benchmarks/api.py

The server is the real ``evbill serve --workers N`` (API only: ``--no-temporal --ocpp-port 0``;
real API-key auth, tenant scoping, every lookup read from the database, no response cache;
on PostgreSQL the lookups that arrive together share one query) on a fresh
database: a temp SQLite file, or a fresh PostgreSQL schema that is dropped afterwards (ANALYZEd
after seeding, as autovacuum would). Seeding and the import use httpx; the lookups use
``RawClient``, a raw asyncio HTTP/1.1 keep-alive client, one connection per client, closed loop
(each client sends its next request when the previous answer is in; it checks each answer's
status and that it is the customer asked for), so the load generator costs 14-24 us of CPU per
request instead of httpx's several hundred on the same two cores. Each run reports the server's
CPU per request (from /proc) and the client's, which the machine's other load disturbs far less
than latency.

Measured 2026-11-21 (20:45-21:06 UTC) on the 2-core development machine, shared with other
engineers' benchmarks and test suites; "before" is the same benchmark at the commit before this
work (d00b114), run alternately with "after" in the same spells so both met the same load.
Default settings: 2 server processes, 50 closed-loop clients, 1,000 customers, 10,000 lookups per
round, 3 rounds, 20,000 sessions imported first (rows marked 2k: 2,000). Neighbouring before/after
rows ran back to back.

| database   | code   | lookup p50 ms | lookup p99 ms | lookups/s     | server CPU us/req | client CPU us/req | load avg |
|------------|--------|---------------|---------------|---------------|-------------------|-------------------|----------|
| PostgreSQL | after  | 1.8-2.2       | 3.7-4.3       | 19,509-21,242 | 64-70             | 15-16             | 2.2      |
| PostgreSQL | after  | 4.4-4.8       | 8.7-13.7      | 10,309-10,952 | 77-80             | 18                | 5.1-5.3  |
| PostgreSQL | before | 7.4-10.4      | 79-120        | 3,165-3,829   | 187-215           | -                 | 5.4-5.6  |
| PostgreSQL | before | 4.4-9.4       | 19.2-30.8     | 4,818-9,307   | 135-177           | -                 | 3.0      |
| PostgreSQL | after  | 1.9-5.0       | 3.9-11.4      | 9,450-21,151  | 69-85             | 16-19             | 2.5      |
| PostgreSQL | after  | 2.5-3.8       | 10.7-24.4     | 10,759-13,233 | 66-72             | 15-17             | 2.1      |
| PostgreSQL | before | 4.5-5.2 (2k)  | 25.7-37.0     | 7,140-7,364   | 149-153           | -                 | 3.8      |
| PostgreSQL | after  | 1.6-2.1 (2k)  | 3.4-26.5      | 15,195-24,900 | 58-65             | 14-15             | 3.5-4.2  |
| SQLite     | after  | 1.9-2.0       | 4.3-5.4       | 19,424-21,638 | 67-73             | 16-17             | 1.7      |
| SQLite     | before | 3.5-5.0       | 19.2-47.3     | 7,060-8,372   | 106-122           | -                 | 1.7-1.8  |
| SQLite     | before | 5.9-6.7       | 16.1-19.6     | 6,197-6,940   | 127-135           | -                 | 2.2      |
| SQLite     | after  | 5.0-5.2       | 11.6-13.9     | 8,295-8,581   | 92-99             | 23-24             | 2.4      |
| SQLite     | before | 2.3-3.1 (2k)  | 5.4-6.0       | 15,901-19,037 | 85-94             | -                 | 3.3      |
| SQLite     | after  | 1.9 (2k)      | 3.9-12.9      | 20,239-24,718 | 61-66             | 16                | 2.8      |

Import on PostgreSQL: 5,066-8,324 sessions/s (20,000 in batches of 1,000 by 2 importers, load
1.5-2.5); on SQLite 4,850-5,705. Where the lookup CPU went (per request, measured in-process):
psycopg rebuilt
``cursor.description`` (16 Column objects) on every read (-12 us); Litestar's Response object,
header bookkeeping and second encoding pass, replaced by pydantic's JSON bytes sent as they are
(-15 us); reading the API key from the raw ASGI headers (-2 us); and, the largest, one round trip
to PostgreSQL per batch of concurrent lookups instead of one each (``store.db.ReadBatcher``: the
server process no longer sleeps and wakes per request, nor does the PostgreSQL backend). p99
stays a measure of the machine's other load: with 50 closed-loop clients on two shared cores it is
the time a server process waits for a core, so one spell gives 3.9 ms and the next 24 ms with the
same CPU per request; the server CPU per request is the steadier figure.

Earlier figures (before this round; the same client): PostgreSQL p99 28-50 ms at 262-286 us of
server CPU per lookup (load 3-5); SQLite p99 11.4-11.9 ms in a quiet spell at 169-183 us. Before
RowReader and the key cache (one uvicorn process, ORM reads; load 1.7): p50 51 ms, p99 143 ms,
837 req/s on SQLite, ~750 us of server CPU per lookup.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from store.db import make_engine, migrate
from store.tenants import bootstrap_tenant, create_user, issue_key

RULESET = """ruleset bench currency EUR timezone Europe/Berlin
groups employees
tariff standard "Standard" {
  vat 19%
  start_fee 0.35
  energy 0.49 per kWh
  when time 22:00..06:00 { energy 0.39 per kWh }
  when group employees { energy 0.25 per kWh }
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


class Backend:
    def __init__(self, kind: str, pg_url: str = "") -> None:
        self.kind = kind
        self.pg_url = pg_url
        self.schema = ""
        self.tmp = Path(tempfile.mkdtemp(prefix="evbill-bench-"))

    def url(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.tmp / 'bench.db'}"
        return f"{self.pg_url}?options=-csearch_path%3D{self.schema}"

    def setup(self) -> Any:
        if self.kind == "postgresql":
            self.schema = f"evbill_bench_{uuid.uuid4().hex[:10]}"
            admin = make_engine(self.pg_url, pool_size=1, max_overflow=0)
            with admin.begin() as c:
                c.execute(text(f'CREATE SCHEMA "{self.schema}"'))
            admin.dispose()
        engine = make_engine(self.url())
        migrate(engine)
        return engine

    def teardown(self) -> None:
        if self.kind == "postgresql":
            admin = make_engine(self.pg_url, pool_size=1, max_overflow=0)
            with admin.begin() as c:
                c.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
            admin.dispose()


def seed(engine: Any, base: str, customers: int) -> tuple[dict[str, str], list[str]]:
    with Session(engine) as db:
        tenant, cred = bootstrap_tenant(db, "bench")
        analyst = create_user(db, tenant.id, "analyst@bench", "analyst")
        db.flush()
        _, analyst_key = issue_key(db, tenant.id, analyst.id)
        db.commit()
    h = {"Authorization": f"Bearer {cred.key}"}
    with httpx.Client(base_url=base, headers=h, timeout=60) as c:
        c.post("/customer-groups", json={"name": "employees"}).raise_for_status()
        c.post("/locations", json={"code": "site_1", "name": "Site 1", "country": "DE",
                                         "timezone": "Europe/Berlin"}).json()
        ids = []
        for i in range(customers):
            cus = c.post("/customers", json={"name": f"Customer {i}", "email": f"c{i}@bench.test",
                                             "groups": ["employees"] if i % 10 == 0 else []}).json()
            ids.append(cus["id"])
        acc = c.post("/billing-accounts", json={"customer_id": ids[0]}).json()
        con = c.post("/contracts", json={"account_id": acc["id"], "customer_id": ids[0],
                                         "start_date": "2026-01-01", "payment_method": "invoice"}).json()
        for i in range(50):
            c.post("/tokens", json={"uid": f"TOK{i:04d}", "contract_id": con["id"]}).raise_for_status()
        rs = c.post("/rulesets", json={"name": "bench"}).json()
        d = c.post(f"/rulesets/{rs['id']}/drafts", json={"source": RULESET},
                   headers={"Authorization": f"Bearer {analyst_key}"}).json()
        assert d["ok"], d
        c.post(f"/rulesets/{rs['id']}/versions", json={"draft_id": d["id"],
                                                       "effective_from": "2020-01-01T00:00:00Z"}).raise_for_status()
    return h, ids


def make_sessions(n: int, offset: int) -> list[dict[str, Any]]:
    rnd = random.Random(offset)
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    out = []
    for i in range(offset, offset + n):
        start = t0 + timedelta(minutes=rnd.randrange(0, 60 * 24 * 28))
        dur = timedelta(minutes=rnd.randrange(10, 300))
        out.append({"id": f"B-{i:08d}", "start": start.isoformat(), "end": (start + dur).isoformat(),
                    "energy_kwh": f"{rnd.randrange(1000, 60000) / 1000:.3f}", "location_id": "site_1",
                    "token_uid": f"TOK{rnd.randrange(0, 60):04d}"})
    return out


async def import_bench(base: str, h: dict[str, str], total: int, batch: int, parallel: int) -> dict[str, Any]:
    batches = [make_sessions(batch, i) for i in range(0, total, batch)]
    created = 0
    async with httpx.AsyncClient(base_url=base, headers=h, timeout=300) as c:
        queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
        for b in batches:
            queue.put_nowait(b)

        async def worker() -> None:
            nonlocal created
            while not queue.empty():
                b = queue.get_nowait()
                r = await c.post("/sessions/batch", json={"sessions": b})
                r.raise_for_status()
                body = r.json()
                assert body["failed"] == 0, body["items"][:3]
                created += body["created"]

        t = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(parallel)))
        dt = time.perf_counter() - t
    return {"sessions": created, "seconds": round(dt, 2), "sessions_per_s": round(created / dt)}


class RawClient:
    """One keep-alive HTTP/1.1 connection with next to no client overhead: httpx's async pool
    costs more CPU per request than the server on a small machine, which would measure the
    load generator instead of the API."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def get(self, path: str) -> tuple[int, bytes]:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.extra}\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for ln in lines[1:]:
            if ln.lower().startswith("content-length:"):
                length = int(ln.split(":", 1)[1])
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    def close(self) -> None:
        self.writer.close()


async def paced_lookup_bench(base: str, h: dict[str, str], ids: list[str], seconds: float, clients: int,
                             rate: float) -> dict[str, Any]:
    """Open loop: ``clients`` connections together offer ``rate`` requests/s on a fixed schedule;
    latency counts from the scheduled send time, so a stalled server cannot hide its queue
    (no coordinated omission)."""
    lat: list[float] = []
    host, port = base.rsplit("//", 1)[1].split(":")
    conns = [RawClient(host, int(port), h) for _ in range(clients)]
    for c in conns:
        await c.open()
    interval = clients / rate
    rnd = random.Random(11)
    t0 = time.perf_counter() + 0.1

    async def client(i: int, c: RawClient) -> None:
        n = 0
        while True:
            due = t0 + i * interval / clients + n * interval
            if due - t0 > seconds:
                return
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            status, body = await c.get(f"/customers/{rnd.choice(ids)}")
            lat.append((time.perf_counter() - due) * 1000)
            assert status == 200, body[:200]
            n += 1

    await asyncio.gather(*(client(i, c) for i, c in enumerate(conns)))
    for c in conns:
        c.close()
    return {"requests": len(lat), "clients": clients, "offered_rps": rate,
            "p50_ms": round(_pct(lat, 50), 2), "p99_ms": round(_pct(lat, 99), 2)}


async def lookup_bench(base: str, h: dict[str, str], ids: list[str], requests: int, clients: int) -> dict[str, Any]:
    lat: list[float] = []
    host, port = base.rsplit("//", 1)[1].split(":")
    conns = [RawClient(host, int(port), h) for _ in range(clients)]
    for c in conns:
        await c.open()
    for cid in ids[:20]:  # warm up (key cache, pools)
        assert (await conns[0].get(f"/customers/{cid}"))[0] == 200
    per = requests // clients
    rnd = random.Random(7)

    async def client(c: RawClient) -> None:
        for _ in range(per):
            cid = rnd.choice(ids)
            t = time.perf_counter()
            status, body = await c.get(f"/customers/{cid}")
            lat.append((time.perf_counter() - t) * 1000)
            assert status == 200 and f'"id":"{cid}"'.encode() in body, body[:200]  # this customer's answer

    t = time.perf_counter()
    await asyncio.gather(*(client(c) for c in conns))
    dt = time.perf_counter() - t
    for c in conns:
        c.close()
    return {"requests": len(lat), "clients": clients, "rps": round(len(lat) / dt),
            "p50_ms": round(_pct(lat, 50), 2), "p99_ms": round(_pct(lat, 99), 2),
            "mean_ms": round(statistics.fmean(lat), 2)}


def _tree_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) of ``pid`` and all its descendants, from /proc (Linux only):
    the server's own cost per request, which other load on the machine disturbs far less than
    latency."""
    try:
        tick = os.sysconf("SC_CLK_TCK")
        total, todo = 0.0, [pid]
        while todo:
            p = todo.pop()
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        return total
    except (OSError, ValueError):
        return None


def run(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    be = Backend(kind, args.postgres_url)
    engine = be.setup()
    port = _free_port()
    # without the per-request access line (api/logs.py): figures stay comparable with earlier
    # runs, and the server's standard error does not carry one line per benchmark request
    env = dict(os.environ, EVBILL_DATABASE_URL=be.url(), PYTHONPATH=str(ROOT), EVBILL_ACCESS_LOG="0")
    workers = args.workers
    # the real `evbill serve` (API only: no OCPP gateway, no Temporal), run in the temp directory
    # so its var/ (first tenant's admin key) stays out of the checkout
    proc = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--no-temporal", "--ocpp-port", "0",
                             "--port", str(port), "--workers", str(workers)], env=env, cwd=str(be.tmp),
                            stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        h, ids = seed(engine, base, args.customers)
        if kind == "postgresql":
            # as autovacuum would soon: without statistics on the just-filled tables the planner
            # takes the tenant index for `tenant_id = ? AND id = ?` and filters the whole tenant
            # (~1,000 rows per lookup) instead of reading one row by primary key
            with engine.begin() as c:
                c.execute(text("ANALYZE"))
        imp = asyncio.run(import_bench(base, h, args.sessions, args.batch, args.parallel))
        looks = []
        for _ in range(args.rounds):
            cpu0, own0 = _tree_cpu_s(proc.pid), time.process_time()
            look = asyncio.run(lookup_bench(base, h, ids, args.lookups, args.clients))
            cpu1, own1 = _tree_cpu_s(proc.pid), time.process_time()
            look["server_cpu_us"] = round(1e6 * (cpu1 - cpu0) / look["requests"]) if cpu0 and cpu1 else None
            look["client_cpu_us"] = round(1e6 * (own1 - own0) / look["requests"])
            look["load"] = round(os.getloadavg()[0], 1)
            looks.append(look)
        paced = asyncio.run(paced_lookup_bench(base, h, ids, args.paced_seconds, args.clients, args.paced_rps))
        return {"backend": kind, "server_workers": workers, "import": imp, "lookups": looks, "paced": paced}
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        engine.dispose()
        be.teardown()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    p.add_argument("--postgres-url", default=os.environ.get("EVBILL_BENCH_POSTGRES_URL",
                                                            os.environ.get("EVBILL_TEST_POSTGRES_URL", "")))
    p.add_argument("--sessions", type=int, default=20000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--parallel", type=int, default=2, help="concurrent batch importers")
    p.add_argument("--workers", type=int, default=2, help="API processes (evbill serve --workers)")
    p.add_argument("--customers", type=int, default=1000)
    p.add_argument("--lookups", type=int, default=10000)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--rounds", type=int, default=3, help="closed-loop lookup runs (the machine's load varies)")
    p.add_argument("--paced-rps", type=float, default=500, help="offered load of the open-loop lookup run")
    p.add_argument("--paced-seconds", type=float, default=10)
    args = p.parse_args()
    kinds = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    if "postgresql" in kinds and not args.postgres_url:
        print("skipping PostgreSQL: set EVBILL_BENCH_POSTGRES_URL or --postgres-url", file=sys.stderr)
        kinds.remove("postgresql")
    print(f"machine: {os.cpu_count()} CPUs, python {sys.version.split()[0]}, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for kind in kinds:
        r = run(kind, args)
        i, pc = r["import"], r["paced"]
        print(f"{kind:10s} import: {i['sessions']} sessions in {i['seconds']} s = {i['sessions_per_s']} sessions/s "
              f"(batches of {args.batch}, {args.parallel} importers, {r['server_workers']} server processes)", flush=True)
        for lk in r["lookups"]:
            print(f"{kind:10s} customer lookup, {lk['clients']} closed-loop clients, {lk['requests']} requests: "
                  f"p50 {lk['p50_ms']} ms, p99 {lk['p99_ms']} ms, {lk['rps']} req/s, "
                  f"server CPU {lk['server_cpu_us']} us/request, client CPU {lk['client_cpu_us']} us/request, "
                  f"load average {lk['load']}", flush=True)
        print(f"{kind:10s} paced {pc['offered_rps']:.0f} req/s offered (open loop): p50 {pc['p50_ms']} ms, "
              f"p99 {pc['p99_ms']} ms", flush=True)


if __name__ == "__main__":
    main()
