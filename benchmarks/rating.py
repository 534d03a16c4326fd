"""Rating throughput: compiled DSL vs. hand-written Python computing the same prices.

Rates N synthetic sessions (default 100,000) on one core for three tariffs and prints sessions/s
and the ratio to a hand-written function that produces the same lines (every session's amounts
are compared, so the two really compute the same prices):

- simple:  start fee + energy
- complex: night window wrapping midnight (split pro rata), employee rate, blocking fee after a
           grace period with a cap, a 10 % group discount, and graduated energy tiers over each
           account's billing period
- indexed: energy at an hourly spot price x 1.10 + 0.12, split at every hour

Targets (issue 2): simple >= 100,000 sessions/s, complex >= 25,000 sessions/s, compiled no slower
than hand-written.  Usage: python benchmarks/rating.py [N]

Issue 17 floor (today's figures then): simple 221k, complex 58k, indexed 83k sessions/s. On
2026-12-06 the machine was shared (load average 7-10) and these wall-clock figures swung by 2x
between runs (main: simple 46k-71k); CPU time, best of 5, main and the one-algorithm engine
interleaved over this file's sessions: main simple 144k-152k, complex 49k-52k, indexed 53k-55k;
the engine simple 122k-126k, complex 42k-44k, indexed 48k (84-88 %, below the floor). Later that
day (load average 1.1-2.6), 100,000 sessions, CPU time, best of 5, trees back to back, two runs:
the generated code simple 148k-156k, complex 51k-52k, indexed 59k-60k; the engine after session
h17b's changes simple 144k-147k, complex 45k-46k, indexed 55k-56k (93-99 %, 87-89 %, 92-94 %).
Session h17f (2026-12-07, load average 6-16, 10,000 sessions, rate() only, CPU time best of 5, trees back
to back, four rounds): per round against the generated code simple 97-113 %, complex 83-97 %, indexed
83-100 % (median 104 %, 89 %, 96 %; main before 92 %, 80 %, 91 %). Instructions per session (valgrind,
load-independent): generated code simple 60.3k, complex 140.4k, indexed 149.8k; main before 61.5k,
161.3k, 156.3k; after 53.7k, 138.6k, 149.8k.
Session h17u (2026-12-07): rates now come from CPU time (best of the runs; the median run and the best
wall time beside it), the previous run's results are freed before the next run and each tariff's before
the next tariff (complex's 100,000 results used to be freed inside its timed run while simple's 200,000
were still alive), and the method and hash seed are printed. Instructions per session are the
load-independent comparison (``benchmarks/rating_instructions.py``; docs/plan.md, session 14).
"""

from __future__ import annotations

import gc
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dsl import CompiledRuleset, PriceSeries, RatingContext
from runtime.rated import RatedLine, RatingResult, TraceEntry
from runtime.rating import PeriodResult
from runtime.sessions import SessionFacts

SOURCE = """ruleset bench currency EUR timezone Europe/Berlin
groups employees, new_customers
series spot_de

tariff simple "Simple" { vat 19%; start_fee 0.35; energy 0.49 per kWh }

tariff complex "Complex" {
  vat 19%
  start_fee 0.35
  energy 0.49 per kWh
  parking 0.10 per min after 240 min, at most 12.00
  when group employees { energy 0.25 per kWh; start_fee 0 }
  when time 22:00..06:00 { energy 0.39 per kWh }
}

tariff indexed "Indexed" { vat 19%; energy index(spot_de) * 1.10 + 0.12 per kWh }

discount promo "10% off energy" { 10% off energy; for group new_customers; tariffs complex }

product fleet "Fleet" {
  tariff complex
  energy graduated { 0..500 kWh at 0.45; 500..2000 kWh at 0.40; 2000.. kWh at 0.35 }
}
"""

D = Decimal
ZERO, ONE = D(0), D(1)
BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def make_sessions(n: int, seed: int = 1) -> list[SessionFacts]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        start = T0 + timedelta(minutes=rnd.randrange(0, 60 * 24 * 28))
        dur = rnd.randrange(10, 600)
        charge = rnd.randrange(5, dur + 1)
        groups = rnd.choice([(), (), ("employees",), ("new_customers",)])
        out.append(SessionFacts(
            id=f"s{i}", start=start, end=start + timedelta(minutes=dur),
            charging_end=start + timedelta(minutes=charge), energy_kwh=D(rnd.randrange(100, 60000)) / 1000,
            customer_id=f"c{i % 1000}", customer_groups=frozenset(groups), product="fleet"))
    return out


def spot_series() -> PriceSeries:
    rnd = random.Random(2)
    return PriceSeries.from_points("spot_de", [(T0 + timedelta(hours=h), D(rnd.randrange(-20, 300)) / 1000)
                                               for h in range(24 * 30)])


# ---------------------------------------------------------------- hand-written equivalents
def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def _result(s: SessionFacts, tariff: str, lines: list[RatedLine], trace: list[TraceEntry],
            time_s: Decimal, park_s: Decimal) -> RatingResult:
    return RatingResult(s.id, "bench", "", "", tariff, "EUR", tuple(lines), tuple(trace), s.energy_kwh,
                        time_s / 3600, park_s / 3600)


def hand_simple(s: SessionFacts) -> RatingResult:
    start, end = _ms(s.start), _ms(s.end)
    ce = min(_ms(s.charging_end), end) if s.charging_end else end
    kwh = s.energy_kwh
    price = D("0.49")
    fee = D("0.35")
    vat = D(19)
    lines = [RatedLine("energy", "Energy", kwh, "kWh", price, kwh * price, vat, "EUR", "energy", s.id, "energy"),
             RatedLine("start_fee", "Start fee", ONE, "session", fee, fee, vat, "EUR", "start fee", s.id, "fixed")]
    trace = [TraceEntry("energy", "energy", start, ce, kwh, price), TraceEntry("start_fee", "fee", start, start, ONE, fee)]
    return _result(s, "simple", lines, trace, D(ce - start) / 1000, D(end - ce) / 1000)


def _night_cuts(start: int, end: int) -> list[int]:
    cuts = []
    day = datetime.fromtimestamp(start / 1000, BERLIN).date() - timedelta(days=1)
    last = datetime.fromtimestamp(end / 1000, BERLIN).date() + timedelta(days=1)
    while day <= last:
        for hour in (6, 22):
            t = _ms(datetime(day.year, day.month, day.day, hour, tzinfo=BERLIN))
            if start < t < end:
                cuts.append(t)
        day += timedelta(days=1)
    return sorted(cuts)


def hand_complex(s: SessionFacts) -> RatingResult:
    start, end = _ms(s.start), _ms(s.end)
    ce = min(_ms(s.charging_end), end) if s.charging_end else end
    vat = D(19)
    lines: list[RatedLine] = []
    trace: list[TraceEntry] = []
    employee = "employees" in s.customer_groups
    kwh = s.energy_kwh
    energy_net = ZERO
    if employee:
        p = D("0.25")
        lines.append(RatedLine("energy", "Energy", kwh, "kWh", p, kwh * p, vat, "EUR", "employees", s.id, "energy"))
        trace.append(TraceEntry("energy", "employees", start, ce, kwh, p))
        energy_net = kwh * p
    else:
        # split the charging stretch at local 06:00 and 22:00, energy pro rata
        cuts = [t for t in _night_cuts(start, end) if t < ce]
        bounds = [start] + cuts + [ce]
        by_price: dict[Decimal, Decimal] = {}
        rest = kwh
        a = start
        for i, b in enumerate(bounds[1:]):
            part = rest if i == len(bounds) - 2 else kwh * D(b - a) / D(ce - start)
            rest -= part
            hour = datetime.fromtimestamp(a / 1000, BERLIN).hour
            p = D("0.39") if hour >= 22 or hour < 6 else D("0.49")
            if part:
                by_price[p] = by_price.get(p, ZERO) + part
                trace.append(TraceEntry("energy", "energy", a, b, part, p))
            a = b
        for p, q in by_price.items():
            lines.append(RatedLine("energy", "Energy", q, "kWh", p, q * p, vat, "EUR", "energy", s.id, "energy"))
            energy_net += q * p
    park_start = max(ce, start + 240 * 60_000)
    if end > park_start:
        minutes = D(end - park_start) / 60_000
        p = D("0.10")
        net = minutes * p
        lines.append(RatedLine("parking", "Parking", minutes, "min", p, net, vat, "EUR", "parking", s.id, "parking"))
        trace.append(TraceEntry("parking", "parking", park_start, end, minutes, p))
        if net > 12:
            lines.append(RatedLine("cap", "cap", ONE, "each", 12 - net, 12 - net, vat, "EUR", "parking", s.id,
                                   "parking"))
    if not employee:
        fee = D("0.35")
        lines.append(RatedLine("start_fee", "Start fee", ONE, "session", fee, fee, vat, "EUR", "fee", s.id, "fixed"))
    if "new_customers" in s.customer_groups and energy_net > 0:
        d = energy_net * 10 / 100
        lines.append(RatedLine("discount", "promo", ONE, "each", -d, -d, vat, "EUR", "promo", s.id, ""))
    return _result(s, "complex", lines, trace, D(ce - start) / 1000, D(end - ce) / 1000)


def hand_period(results: Sequence[RatingResult]) -> Decimal:
    """Graduated tiers over an account's month, replacing the sessions' energy lines."""
    kwh = sum((r.energy_kwh for r in results), ZERO)
    total = sum((ln.net for r in results for ln in r.lines if ln.component != "energy"), ZERO)
    for lo, hi, p in ((D(0), D(500), D("0.45")), (D(500), D(2000), D("0.40")), (D(2000), None, D("0.35"))):
        if kwh > lo:
            total += ((min(kwh, hi) if hi is not None else kwh) - lo) * p
    return total


def make_hand_indexed(series: PriceSeries) -> Callable[[SessionFacts], RatingResult]:
    def hand_indexed(s: SessionFacts) -> RatingResult:
        start, end = _ms(s.start), _ms(s.end)
        ce = min(_ms(s.charging_end), end) if s.charging_end else end
        vat = D(19)
        kwh = s.energy_kwh
        bounds = [start] + series.boundaries(start, ce) + [ce]
        by_price: dict[Decimal, Decimal] = {}
        trace = []
        rest = kwh
        for i, (a, b) in enumerate(pairwise(bounds)):
            part = rest if i == len(bounds) - 2 else kwh * D(b - a) / D(ce - start)
            rest -= part
            p = series.at(a) * D("1.10") + D("0.12")
            by_price[p] = by_price.get(p, ZERO) + part
            trace.append(TraceEntry("energy", "energy", a, b, part, p))
        lines = [RatedLine("energy", "Energy", q, "kWh", p, q * p, vat, "EUR", "energy", s.id, "energy")
                 for p, q in by_price.items()]
        return _result(s, "indexed", lines, trace, D(ce - start) / 1000, D(end - ce) / 1000)
    return hand_indexed


# ---------------------------------------------------------------- measurement
REPEAT = 5
METHOD = ("{r} timed runs per tariff and side, compiled and hand-written alternating; each run in this process on one "
          "core with the collector off; rates from the CPU time of the best run (time.process_time; the machine's other "
          "load moves it far less than the wall clock), then the median run's CPU time and the best run's wall time")


class Timing(NamedTuple):
    best_cpu: float
    median_cpu: float
    best_wall: float


def _once(fn: Callable[[], object]) -> tuple[float, float, object]:
    gc.collect()
    gc.disable()
    try:
        c, t = time.process_time(), time.perf_counter()
        out = fn()
        return time.process_time() - c, time.perf_counter() - t, out
    finally:
        gc.enable()


def compare(compiled: Callable[[], object], hand: Callable[[], object]) -> tuple[Timing, object, Timing, object]:
    """REPEAT runs each, the two alternating so that load from other processes on the machine falls on
    both alike; per side the best and median CPU time and the best wall time (``METHOD``)."""
    cpu_c: list[float] = []
    cpu_h: list[float] = []
    wall_c: list[float] = []
    wall_h: list[float] = []
    out_c: object = None
    out_h: object = None
    for _ in range(REPEAT):
        out_c = out_h = None  # the previous run's results are freed before the next run, not during it
        c, w, out_c = _once(compiled)
        cpu_c.append(c)
        wall_c.append(w)
        c, w, out_h = _once(hand)
        cpu_h.append(c)
        wall_h.append(w)
    return (Timing(min(cpu_c), statistics.median(cpu_c), min(wall_c)), out_c,
            Timing(min(cpu_h), statistics.median(cpu_h), min(wall_h)), out_h)


def same_prices(a: Sequence[RatingResult], b: Sequence[RatingResult], what: str) -> None:
    bad = [(x.session_id, x.net_unrounded, y.net_unrounded) for x, y in zip(a, b)
           if abs(x.net_unrounded - y.net_unrounded) > D("1e-20")]
    if bad:
        raise SystemExit(f"{what}: compiled and hand-written disagree on {len(bad)} sessions, e.g. {bad[:3]}")


def main() -> None:
    global REPEAT
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    REPEAT = int(sys.argv[2]) if len(sys.argv) > 2 else REPEAT
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    rs = CompiledRuleset.from_source(SOURCE, "bench.evb")
    series = spot_series()
    ctx = RatingContext(series={"spot_de": series})
    sessions = make_sessions(n)
    hand_indexed = make_hand_indexed(series)
    print(f"rating {n:,} synthetic sessions on one core (Python {sys.version.split()[0]}, PYTHONHASHSEED="
          f"{os.environ.get('PYTHONHASHSEED', 'random')})")
    print(METHOD.format(r=REPEAT))
    print(f"{'tariff':<10}{'compiled/s':>14}{'median':>10}{'wall':>10}{'hand/s':>14}{'median':>10}{'wall':>10}"
          f"{'ratio':>8}  target")
    rows = []

    def compiled(tariff: str, c: RatingContext | None = None) -> Callable[[], list[RatingResult]]:
        return lambda: [rs.rate(s, c, tariff) for s in sessions]

    t_c, res_c, t_h, res_h = compare(compiled("simple"), lambda: [hand_simple(s) for s in sessions])
    same_prices(res_c, res_h, "simple")  # type: ignore[arg-type]
    rows.append(("simple", t_c, t_h, 100_000))
    del res_c, res_h  # each tariff starts from the same heap

    # complex: every session, then each account's month with graduated tiers
    def compiled_complex() -> list[PeriodResult]:
        results = [rs.rate(s, None, "complex") for s in sessions]
        by_acc: dict[str, list[RatingResult]] = {}
        for s, r in zip(sessions, results):
            by_acc.setdefault(s.customer_id, []).append(r)
        return [rs.rate_period(v, "fleet") for v in by_acc.values()]

    def hand_complex_all() -> list[Decimal]:
        results = [hand_complex(s) for s in sessions]
        by_acc: dict[str, list[RatingResult]] = {}
        for s, r in zip(sessions, results):
            by_acc.setdefault(s.customer_id, []).append(r)
        return [hand_period(v) for v in by_acc.values()]

    t_c, per_c, t_h, per_h = compare(compiled_complex, hand_complex_all)
    same_prices([rs.rate(s, None, "complex") for s in sessions[:5000]],
                [hand_complex(s) for s in sessions[:5000]], "complex sessions")
    diffs = [a.net_unrounded - b for a, b in zip(per_c, per_h)]  # type: ignore[union-attr, operator, arg-type]
    if any(abs(x) > D("1e-18") for x in diffs):
        raise SystemExit(f"complex periods disagree: {diffs[:3]}")
    rows.append(("complex", t_c, t_h, 25_000))
    del per_c, per_h, diffs

    t_c, res_c, t_h, res_h = compare(compiled("indexed", ctx), lambda: [hand_indexed(s) for s in sessions])
    same_prices(res_c, res_h, "indexed")  # type: ignore[arg-type]
    rows.append(("indexed", t_c, t_h, 0))

    for name, tc, th, target in rows:
        rate_c, rate_h = n / tc.best_cpu, n / th.best_cpu
        verdict = ""
        if target:
            verdict = f">= {target:,}/s {'met' if rate_c >= target else 'MISSED'}"
        verdict += f"; {'not slower' if rate_c >= rate_h else 'SLOWER'} than hand-written"
        print(f"{name:<10}{rate_c:>14,.0f}{n / tc.median_cpu:>10,.0f}{n / tc.best_wall:>10,.0f}"
              f"{rate_h:>14,.0f}{n / th.median_cpu:>10,.0f}{n / th.best_wall:>10,.0f}{rate_c / rate_h:>8.2f}  {verdict}")

if __name__ == "__main__":
    main()
