"""OCPP gateway load test: N simulated chargers in a second process against the real gateway.

    .venv/bin/python benchmarks/ocpp_load.py --chargers 5000 --duration 60 --meter-interval 2.5

The gateway (this process) runs on a fresh database (SQLite in a temp dir, or
``--database-url``/``EVBILL_BENCH_DATABASE_URL`` for PostgreSQL) with one tenant, one location,
a published ruleset and N registered chargers with passwords. A second process (multiprocessing)
opens N OCPP 1.6J connections with Basic auth and runs, per charger: BootNotification,
StatusNotification, then transactions back to back (StartTransaction, MeterValues every
``--meter-interval`` seconds, StopTransaction) with a Heartbeat every ``--heartbeat`` seconds.
Real chargers send meter values every 10 s or more; the interval is compressed to reach the
message rate of a larger fleet, and the report says by how much.

It prints connections held, messages/s, p50/p99 response latency as the chargers saw it, and the
sessions stored, checked against the transactions the chargers completed: zero lost, zero twice.

Load management (issue 18): ``--capacity-kw`` gives the one location a capacity, so every start
and stop recomputes the site's limits and SetChargingProfile goes to every session whose limit
changed (the simulated chargers answer Accepted at once). A third of the chargers start with a
fleet token (priority 0), a third with a partner's (10), the rest ad hoc (20). The start path
(StartTransaction as the chargers saw it) is reported apart:

    .venv/bin/python benchmarks/ocpp_load.py --chargers 2000 --capacity-kw 10000 --duration 60

Measured 2026-12-07 (h18d) with the machine shared: at load average 6.3-7.8 start path p50 98 ms,
p99 1.43 s with load management (4,303 profiles); without it, right after at 8.5-8.9, p50 1.16 s,
p99 2.02 s; the gateway got a quarter of a core. After h18e (priorities read once per recompute,
profile frames built directly, small increases held back), back to back with the code before at
load average 1-2.8: start path p99 23-39 ms against 102-233 ms before. See docs/plan.md, Issue 18.

Measured 2026-11-21 on the 2-core dev machine, SQLite, when it was quiet (load average < 2.5):
5,000 chargers held; meter values every 2.5 s (x4 compressed): 2,167 msg/s steady, p50 3.2 ms,
p99 16.8 ms; every 10 s (real pace): 648 msg/s, p50 2.7 ms, p99 7.4 ms; both runs 0 errors and
every completed transaction stored once. With the machine loaded by other work (load average
9-15) the same runs reached only ~1,100-1,250 msg/s with p99 of seconds: the gateway got a
fifth of a core. Compare runs only with the load average printed next to them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing as mp
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TARIFF = """ruleset bench currency EUR timezone Europe/Berlin
tariff standard "Standard" {
  vat 19%
  start_fee 0.50
  energy 0.40 per kWh
  when time 18:00..22:00 { energy 0.60 per kWh }
}
"""


def raise_nofile() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1_048_576
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError):
        pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- setup --------------------------------------------------------------------------------------

def setup(url: str, n: int, capacity_kw: str = "") -> tuple[Any, dict[str, str]]:
    from litestar.testing import TestClient
    from sqlalchemy import insert
    from sqlalchemy.orm import Session

    from api.app import Settings, create_app
    from api.ocpp import hash_password
    from store.db import make_engine, migrate
    from store.models import ChargePoint, Evse
    from store.tenants import bootstrap_tenant, create_user, issue_key
    from store.types import new_id, utcnow

    engine = make_engine(url)
    migrate(engine)
    with Session(engine) as db:
        tenant, cred = bootstrap_tenant(db, "bench")
        tenant_id = tenant.id
        approver = create_user(db, tenant_id, "approver@bench", "approver")
        db.flush()
        _, approver_key = issue_key(db, tenant_id, approver.id)
        db.commit()
    h = {"Authorization": f"Bearer {cred.key}"}
    ha = {"Authorization": f"Bearer {approver_key}"}  # four eyes: another user publishes
    with TestClient(create_app(Settings(engine=engine, migrate=False))) as c:
        def ok(r: Any) -> dict[str, Any]:
            assert r.status_code in (200, 201), r.text
            return r.json()  # type: ignore[no-any-return]
        rs = ok(c.post("/rulesets", json={"name": "bench"}, headers=h))["id"]
        draft = ok(c.post(f"/rulesets/{rs}/drafts", json={"source": TARIFF}, headers=h))
        ok(c.post(f"/rulesets/{rs}/versions", json={"draft_id": draft["id"],
                                                    "effective_from": "2020-01-01T00:00:00Z"}, headers=ha))
        loc = ok(c.post("/locations", json={"code": "bench_1", "name": "Bench", "country": "DE",
                                            "timezone": "Europe/Berlin", "ruleset_id": rs,
                                            **({"capacity_kw": capacity_kw} if capacity_kw else {})},
                        headers=h))["id"]
        ok(c.post("/access-rules", json={"location_id": loc, "subject": "anyone"}, headers=h))
        ok(c.post("/tokens", json={"uid": "BENCH-TOKEN"}, headers=h))
        # load management's priorities: the depot owner's fleet (a contract token) and a partner's
        cus = ok(c.post("/customers", json={"name": "Depot fleet", "country": "DE"}, headers=h))["id"]
        acc = ok(c.post("/billing-accounts", json={"customer_id": cus}, headers=h))["id"]
        con = ok(c.post("/contracts", json={"account_id": acc, "customer_id": cus, "start_date": "2020-01-01",
                                            "payment_method": "invoice"}, headers=h))["id"]
        ok(c.post("/tokens", json={"uid": "BENCH-FLEET", "contract_id": con}, headers=h))
        par = ok(c.post("/partners", json={"kind": "fleet", "name": "Partner fleet"}, headers=h))["id"]
        ok(c.post("/tokens", json={"uid": "BENCH-PARTNER", "issuing_partner_id": par}, headers=h))
    passwords: dict[str, str] = {}
    cps, evses = [], []
    now = utcnow()
    for i in range(n):
        ident = f"BENCH-{i:05d}"
        pw = f"pw-{i:05d}-{random.getrandbits(48):012x}"
        passwords[ident] = pw
        cp_id = new_id("cp")
        cps.append({"id": cp_id, "tenant_id": tenant_id, "location_id": loc, "identity": ident, "ocpp_version": "1.6",
                    "vendor": "", "model": "", "serial_number": "", "password_sha256": hash_password(pw),
                    "status": "active", "created_at": now})
        evses.append({"id": new_id("evse"), "tenant_id": tenant_id, "location_id": loc, "charge_point_id": cp_id,
                      "evse_uid": f"DE*BEN*E{i:05d}*1", "connector_id": 1, "power_type": "AC",
                      "max_power_kw": Decimal(22), "status": "available", "created_at": now})
    with Session(engine) as db:
        for k in range(0, n, 1000):
            db.execute(insert(ChargePoint), cps[k:k + 1000])
            db.execute(insert(Evse), evses[k:k + 1000])
        db.commit()
    return engine, passwords


# --- the chargers (second process) --------------------------------------------------------------

class Load:
    def __init__(self) -> None:
        self.lat: list[tuple[float, float]] = []  # (sent at, seconds to the answer)
        self.start_lat: list[float] = []  # StartTransaction only: the start path
        self.profiles = 0  # SetChargingProfile CALLs the gateway sent
        self.sent = 0
        self.errors = 0
        self.connected = 0
        self.peak_connected = 0
        self.failed_connect = 0
        self.started: set[int] = set()
        self.stopped: set[int] = set()
        self.unconfirmed_stops = 0
        # the load window: set once every charger is connected
        self.t_all = 0.0
        self.t_end = float("inf")


async def charger(port: int, ident: str, pw: str, args: argparse.Namespace, load: Load,
                  gate: asyncio.Semaphore, clock: list[datetime]) -> None:
    import websockets

    auth = "Basic " + base64.b64encode(f"{ident}:{pw}".encode()).decode()
    async with gate:
        for attempt in range(5):
            try:
                ws = await websockets.connect(f"ws://127.0.0.1:{port}/ocpp/{ident}", subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                                              additional_headers={"Authorization": auth}, open_timeout=60,
                                              ping_interval=None, compression=None, max_queue=4)
                break
            except Exception:
                await asyncio.sleep(0.5 * (attempt + 1))
        else:
            load.failed_connect += 1
            return
    load.connected += 1
    load.peak_connected = max(load.peak_connected, load.connected)
    seq = 0
    waiting: dict[str, asyncio.Future[Any]] = {}

    async def reader() -> None:
        # answers to our CALLs, and the gateway's own CALLs (SetChargingProfile) answered at once
        async for raw in ws:
            msg = json.loads(raw)
            if msg[0] == 2:
                load.profiles += msg[2] == "SetChargingProfile"
                await ws.send(json.dumps([3, msg[1], {"status": "Accepted"}]))
                continue
            fut = waiting.pop(str(msg[1]), None)
            if fut is not None and not fut.done():
                fut.set_result(msg)

    async def call(action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        nonlocal seq
        seq += 1
        uid = f"{ident}-{seq}"
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        waiting[uid] = fut
        t0 = time.perf_counter()
        await ws.send(json.dumps([2, uid, action, payload]))
        reply = await fut
        lat = time.perf_counter() - t0
        load.lat.append((time.monotonic(), lat))
        if action == "StartTransaction":
            load.start_lat.append(lat)
        load.sent += 1
        if reply[0] != 3 or reply[1] != uid:
            load.errors += 1
            return None
        return reply[2]  # type: ignore[no-any-return]

    read_task = asyncio.get_running_loop().create_task(reader())
    # with load management a third each: fleet (priority 0), partner (10), ad hoc (20)
    tag = ("BENCH-FLEET", "BENCH-PARTNER", "BENCH-TOKEN")[int(ident.rsplit("-", 1)[1]) % 3] \
        if args.capacity_kw else "BENCH-TOKEN"

    def ts() -> str:
        # simulated charger clock: 10 s per meter interval, so sessions look like real ones
        return clock[0].isoformat().replace("+00:00", "Z")

    try:
        await call("BootNotification", {"chargePointVendor": "Bench", "chargePointModel": "Sim"})
        await call("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available"})
        while not load.t_all:
            await asyncio.sleep(0.5)
        # a fleet does not plug in all at once: first starts spread over the first quarter
        await asyncio.sleep(random.random() * args.duration / 4)
        next_hb = time.monotonic() + random.random() * args.heartbeat
        meter = 0
        while time.monotonic() < load.t_end:
            start = await call("StartTransaction", {"connectorId": 1, "idTag": tag, "meterStart": meter,
                                                    "timestamp": ts()})
            if start is None:
                break
            tx = int(start["transactionId"])
            load.started.add(tx)
            # transactions of varying length, so starts and stops are spread over the run
            for _ in range(random.randint(args.meters_per_tx // 2, args.meters_per_tx * 3 // 2)):
                await asyncio.sleep(args.meter_interval * (0.9 + random.random() / 5))
                if time.monotonic() >= load.t_end:
                    break
                meter += random.randint(20, 40)  # ~11 kW for 10 s of simulated time
                await call("MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": [
                    {"timestamp": ts(), "sampledValue": [
                        {"value": str(meter), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                        {"value": "11000", "measurand": "Power.Active.Import", "unit": "W"}]}]})
                if time.monotonic() >= next_hb:
                    await call("Heartbeat", {})
                    next_hb += args.heartbeat
            stop = await call("StopTransaction", {"transactionId": tx, "meterStop": meter, "timestamp": ts(),
                                                  "reason": "EVDisconnected"})
            if stop is None:
                load.unconfirmed_stops += 1
            else:
                load.stopped.add(tx)
    except Exception:
        load.errors += 1
    finally:
        load.connected -= 1
        await ws.close()
        read_task.cancel()


async def run_chargers(port: int, passwords: dict[str, str], args: argparse.Namespace, out: Any) -> None:
    load = Load()
    gate = asyncio.Semaphore(200)  # handshakes in flight
    t_ramp = time.monotonic()
    clock = [datetime(2026, 3, 10, 6, 0, tzinfo=UTC)]
    loop = asyncio.get_running_loop()

    async def tick() -> None:
        while True:
            await asyncio.sleep(args.meter_interval / 10)
            clock[0] += timedelta(seconds=1)

    held: list[tuple[float, int]] = []

    async def sample() -> None:
        while True:
            await asyncio.sleep(1)
            held.append((time.monotonic(), load.connected))

    side = [loop.create_task(tick()), loop.create_task(sample())]
    tasks = [loop.create_task(charger(port, ident, pw, args, load, gate, clock)) for ident, pw in passwords.items()]
    while load.connected + load.failed_connect < len(passwords) and time.monotonic() - t_ramp < 300:
        await asyncio.sleep(0.2)
    load.t_all = time.monotonic()
    load.t_end = load.t_all + args.duration
    # steady state: after the first starts have spread out, until the fleet winds down
    w0, w1 = load.t_all + args.duration / 4, load.t_end
    await asyncio.sleep(args.duration)
    await asyncio.gather(*tasks)
    for t in side:
        t.cancel()
    steady = [lat for at, lat in load.lat if w0 <= at <= w1]
    out.put({
        "client_cpu_s": time.process_time(),
        "ramp_s": load.t_all - t_ramp, "steady_s": w1 - w0, "steady_msgs": len(steady),
        "msgs": load.sent, "errors": load.errors, "peak_connected": load.peak_connected,
        "held_min_steady": min((n for at, n in held if load.t_all <= at <= w1), default=0),
        "failed_connect": load.failed_connect,
        "lat_ramp": _pcts([lat for at, lat in load.lat if at < load.t_all]),
        "lat_first_starts": _pcts([lat for at, lat in load.lat if load.t_all <= at < w0]),
        "lat_steady": _pcts(steady),
        "lat_wind_down": _pcts([lat for at, lat in load.lat if at > w1]),
        "lat_start": _pcts(load.start_lat), "profiles_received": load.profiles,
        "started": sorted(load.started), "stopped": sorted(load.stopped), "unconfirmed_stops": load.unconfirmed_stops,
    })


def _pcts(lat: list[float]) -> dict[str, float]:
    if not lat:
        return {}
    if len(lat) == 1:
        lat = lat * 2  # quantiles need two points
    q = statistics.quantiles(lat, n=100, method="inclusive")
    return {"p50_ms": q[49] * 1000, "p99_ms": q[98] * 1000, "max_ms": max(lat) * 1000, "n": len(lat)}


def client_main(port: int, passwords: dict[str, str], args: argparse.Namespace, out: Any) -> None:
    raise_nofile()
    try:
        import uvloop

        uvloop.run(run_chargers(port, passwords, args, out))
    except ImportError:
        asyncio.run(run_chargers(port, passwords, args, out))


# --- the gateway (this process) -----------------------------------------------------------------

async def serve_and_measure(engine: Any, passwords: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    sys.setswitchinterval(float(os.environ.get("SWITCH", "0.005")))
    import gc

    from api.ocpp import Gateway, GatewaySettings

    gc_pauses: list[float] = []
    gc_t: list[float] = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_t[0] = time.perf_counter()
        elif info.get("generation") == 2:
            gc_pauses.append(time.perf_counter() - gc_t[0])

    gc.callbacks.append(on_gc)
    lag: list[float] = []

    async def loop_lag() -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.05)
            lag.append(time.perf_counter() - t - 0.05)

    lag_task = asyncio.get_running_loop().create_task(loop_lag())
    gw = Gateway(engine, GatewaySettings(host="127.0.0.1", port=0, cost_update_interval_s=0))
    await gw.start()
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=client_main, args=(gw.port, passwords, args, out), daemon=True)
    cpu0 = time.process_time()
    t0 = time.monotonic()
    proc.start()
    loop = asyncio.get_running_loop()
    result = await loop.run_in_executor(None, out.get)
    await loop.run_in_executor(None, proc.join)
    wall = time.monotonic() - t0
    cpu = time.process_time() - cpu0
    t_fin = time.monotonic()
    await gw.idle(timeout=300)
    result["finalize_tail_s"] = time.monotonic() - t_fin
    # with every session stored: the whole work of the run, whatever was still left at its end
    result["server_cpu_all_s"] = time.process_time() - cpu0
    result["server_cpu_s"] = cpu
    result["server_wall_s"] = wall
    result["db_batches"], result["db_jobs"] = gw.db.batches, gw.db.jobs
    result["db_failed_batches"], result["db_busy_s"] = gw.db.failed_batches, gw.db.busy_s
    result["db_max_batch_ms"] = gw.db.max_batch_s * 1000
    result["db_slow_batches"] = sorted(gw.db.slow, reverse=True)[:10]
    result["server_lat"] = _pcts(gw.stats.latencies)
    ls = gw.load.stats
    result["load"] = {"recomputes": ls.recomputes, "profiles_sent": ls.profiles_sent, "max_sessions": ls.max_sessions,
                      "allocate_ms_mean": ls.allocate_s / ls.recomputes * 1000 if ls.recomputes else 0.0,
                      "allocate_ms_max": ls.max_allocate_s * 1000, "recompute_s_total": ls.recompute_s,
                      "increases_held": ls.increases_held}
    lag_task.cancel()
    gc.callbacks.remove(on_gc)
    result["gc_full_collections"] = len(gc_pauses)
    result["gc_full_max_ms"] = max(gc_pauses, default=0) * 1000
    result["loop_lag"] = _pcts(lag)
    await gw.stop()
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--chargers", type=int, default=5000)
    p.add_argument("--duration", type=float, default=60.0,
                   help="seconds of load once all chargers are connected (the first quarter spreads the first starts)")
    p.add_argument("--meter-interval", type=float, default=2.5,
                   help="seconds between MeterValues per charger (real chargers: 10 s or more)")
    p.add_argument("--meters-per-tx", type=int, default=40,
                   help="mean MeterValues per transaction (each between half and 1.5 times this)")
    p.add_argument("--heartbeat", type=float, default=30.0)
    p.add_argument("--database-url", default=os.environ.get("EVBILL_BENCH_DATABASE_URL", ""))
    p.add_argument("--capacity-kw", default="", help="the location's capacity: load management on (issue 18)")
    p.add_argument("--profile", default="", help="write a cProfile of the gateway process to this file")
    args = p.parse_args()
    nofile = raise_nofile()
    tmp = tempfile.mkdtemp(prefix="evbill-ocpp-bench-")
    url = args.database_url or f"sqlite:///{tmp}/bench.db"
    t = time.monotonic()
    engine, passwords = setup(url, args.chargers, args.capacity_kw)
    load_before = os.getloadavg()
    print(f"setup: {args.chargers} chargers registered in {time.monotonic() - t:.1f}s "
          f"(database {url.split('@')[-1]}, open files limit {nofile})", flush=True)
    prof = None
    if args.profile:
        import cProfile

        # EVBILL_PROFILE_CPU=1: the loop thread's CPU time, not wall time (a loaded machine's
        # preemptions otherwise land in whatever function was running)
        prof = cProfile.Profile(time.thread_time) if os.environ.get("EVBILL_PROFILE_CPU") else cProfile.Profile()
        prof.enable()
    try:
        import uvloop

        res = uvloop.run(serve_and_measure(engine, passwords, args))
    except ImportError:
        res = asyncio.run(serve_and_measure(engine, passwords, args))
    if prof is not None:
        prof.disable()
        prof.dump_stats(args.profile)
    # exactly once: every transaction the chargers completed is one stored session, no more
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from store.load import ChargingLimit
    from store.models import ChargingSession
    from store.ocpp import OcppTransaction

    with Session(engine) as db:
        sessions = db.execute(select(ChargingSession.external_id).where(ChargingSession.source == "ocpp")).scalars().all()
        by_status = dict(db.execute(select(OcppTransaction.status, func.count()).group_by(OcppTransaction.status)).all())
        rated = db.execute(select(func.count()).select_from(ChargingSession).where(
            ChargingSession.source == "ocpp", ChargingSession.status == "rated")).scalar()
        # load management: every profile sent stored, every one with its answer (or why none came)
        limits_by_status = dict(db.execute(select(ChargingLimit.status, func.count()).group_by(ChargingLimit.status)).all())
    stored_refs = {s.rsplit(":", 1)[1] for s in sessions}
    stopped = {str(t) for t in res["stopped"]}
    lost = stopped - stored_refs
    extra = len(sessions) - len(set(sessions))
    unexpected = stored_refs - stopped
    steady_rate = res["steady_msgs"] / res["steady_s"] if res["steady_s"] else 0.0
    per_charger_interval = args.meter_interval
    print(json.dumps({k: v for k, v in res.items() if k not in ("started", "stopped")}, indent=1, default=str))
    print()
    print(f"chargers:            {args.chargers} (connections held at peak {res['peak_connected']}, "
          f"min during steady state {res['held_min_steady']}, failed to connect {res['failed_connect']})")
    print(f"meter values:        every {per_charger_interval:g} s per charger (real: 10 s; time compressed "
          f"x{10 / per_charger_interval:g}), heartbeat every {args.heartbeat:g} s, "
          f"{args.meters_per_tx // 2}-{args.meters_per_tx * 3 // 2} readings per transaction")
    print(f"ramp-up:             {res['ramp_s']:.1f} s to connect all (handshake latency p50 "
          f"{res['lat_ramp'].get('p50_ms', 0):.1f} ms, p99 {res['lat_ramp'].get('p99_ms', 0):.1f} ms)")
    print(f"messages/s (steady): {steady_rate:,.0f} ({res['steady_msgs']:,} in {res['steady_s']:.1f} s); "
          f"total {res['msgs']:,} messages, {res['errors']} errors")
    for label, key in (("latency (steady)", "lat_steady"), ("first starts", "lat_first_starts"),
                       ("wind-down (stops)", "lat_wind_down")):
        d = res[key]
        print(f"{label + ':':<21}p50 {d.get('p50_ms', 0):.1f} ms, p99 {d.get('p99_ms', 0):.1f} ms, "
              f"max {d.get('max_ms', 0):.0f} ms over {d.get('n', 0):,} answers")
    st = res["lat_start"]
    print(f"start path:          p50 {st.get('p50_ms', 0):.1f} ms, p99 {st.get('p99_ms', 0):.1f} ms, "
          f"max {st.get('max_ms', 0):.0f} ms over {st.get('n', 0):,} StartTransactions")
    if args.capacity_kw:
        ld = res["load"]
        print(f"load management:     capacity {args.capacity_kw} kW for {args.chargers} EVSEs of 22 kW; "
              f"{ld['recomputes']:,} recomputes (up to {ld['max_sessions']:,} sessions), allocation "
              f"{ld['allocate_ms_mean']:.1f} ms mean / {ld['allocate_ms_max']:.1f} ms max, "
              f"{ld['profiles_sent']:,} profiles sent ({res['profiles_received']:,} received, "
              f"{ld['increases_held']:,} small increases held back), "
              f"{ld['recompute_s_total']:.1f} s in recomputes; profiles stored by answer {limits_by_status}")
    print(f"machine:             {os.cpu_count()} CPUs; load average {load_before[0]:.1f} before the run, "
          f"{os.getloadavg()[0]:.1f} after (other work on the machine competes with both processes); "
          f"client CPU {res['client_cpu_s']:.1f} s")
    print(f"server CPU:          {res['server_cpu_s']:.1f} s over {res['server_wall_s']:.1f} s wall; "
          f"{res['db_jobs']:,} writes in {res['db_batches']:,} commits")
    print(f"CPU per message:     {res['server_cpu_s'] / max(1, res['msgs']) * 1000:.3f} ms until the chargers were done, "
          f"{res['server_cpu_all_s'] / max(1, res['msgs']) * 1000:.3f} ms with every session stored "
          f"({res['server_cpu_all_s']:.1f} s, process time of the gateway over {res['msgs']:,} messages)")
    print(f"sessions stored:     {len(sessions):,} ({rated:,} rated) for {len(stopped):,} completed transactions; "
          f"lost {len(lost)}, duplicated {extra}, unexpected {len(unexpected)}; transactions by status {by_status}; "
          f"last sessions stored {res['finalize_tail_s']:.1f} s after the load ended")
    engine.dispose()
    return 0 if not lost and not extra else 1


if __name__ == "__main__":
    raise SystemExit(main())
