"""OCPI CDR pricing, side by side with a public Python pricer (issue 17, part 1).

Generates N CDRs (default 200,000, seeded) against the OCPI 2.2.1 specification's complex tariff
(``../shared/conformance/ocpi/spec-2.2.1/examples/tariff_4_complex.json``): each CDR has 3 to 6
charging periods, charging ones with ENERGY, TIME, MAX_CURRENT and MAX_POWER dimensions, parking
ones with PARKING_TIME. Then it runs, as whole processes and alternately (so load from other
processes on the machine falls on both alike),

- ``evbill ocpi price --tariff T --cdrs F`` (all the OCPI CDR totals per CDR), and
- the peer: ocpi-tariffs (github Hamza-nabil/ocpi-tariffs-py @ e0ed4df, MIT), which computes only
  ``total_cost``, through a small driver (``PEER_DRIVER``: pydantic models, ``calculate_cdr_cost``,
  one JSON line per CDR),

checks that evbill's output is byte for byte the output the code printed before issue 17 changed
anything (sha256 per seed and size in ``REFERENCE``), and prints both rates and the ratio.

The peer: PyPI's ``ocpi-tariffs`` 0.1.0 has the same ``pyproject.toml`` as that commit, but its
wheel holds no code (``[tool.hatch.build] include`` names only ``py.typed``, so the wheel ships
``ocpi_tariffs/py.typed`` and nothing else). The benchmark therefore runs the peer from a source
checkout: ``--peer-src DIR`` (the checkout's ``src/``) or ``OCPI_TARIFFS_SRC``; a working installed
``ocpi_tariffs`` is used when there is one. Install its runtime dependency (pydantic, already an
evbill dependency) and nothing else; ``pip install ocpi-tariffs`` is not needed and does not help.
Getting the checkout (``PEER_HOWTO``):

    git clone https://github.com/Hamza-nabil/ocpi-tariffs-py /tmp/ocpi-tariffs-py
    git -C /tmp/ocpi-tariffs-py checkout e0ed4df
    python benchmarks/ocpi_price.py --peer-src /tmp/ocpi-tariffs-py/src

or, from a bare copy of the repository (a mirror without a work tree), ``mkdir /tmp/ocpi-tariffs-py &&
git --git-dir MIRROR archive e0ed4df | tar -x -C /tmp/ocpi-tariffs-py``, then the same ``--peer-src``.

Usage: python benchmarks/ocpi_price.py [N] [--seed S] [--rounds R] [--peer-src DIR]
       python benchmarks/ocpi_price.py N --seed S --write-reference   (prints the sha256 to keep)

Figures (2026-12-07 19:24-20:20 UTC, session 16, a new 2-core VM, nothing else running, load average 0.7-1.3): main
before the session (c1f1273) 47,159 CDRs/s (4.24 s, 8.07 CPU s), the peer 5,485/s: 8.60x. Session 16's code (the
timestamps read by integer arithmetic, clean parses kept on disk so start-up imports no Lark, the dimension loop
indexing instead of iterating; callgrind, 3,000 CDRs, warm: 192.2k -> 174.4k instructions per CDR; start-up on one
CDR 1,092M -> ~700M), --rounds 3: 19:43 UTC at a15da7b (186.6k per CDR) 55,894/s (3.58 s, 6.81 CPU s) against the
peer's 5,552/s (36.02 s): 10.07x; 20:18 UTC at ed2b4b2 (174.4k) 52,928/s (3.78 s, 7.16 CPU s) against 5,272/s
(37.94 s): 10.04x; identical to the reference. With the default 2 rounds: 21:06 UTC at ed2b4b2 54,301/s (3.68 s,
7.00 CPU s) against 5,294/s (37.78 s), 10.26x; 19:36 at 8551047 47,665/s against 4,802/s, 9.93x.
The VM's speed swings by 10-40 % between runs minutes apart (one command on 100,000 CDRs: 5.23 then 3.07 CPU s).

Figures (2026-12-07 17:08-17:14 UTC, session h17v2's code: the CDR file mapped, not read, before the workers
fork; load average 3.1-4.9, wall swinging 2-3x between runs): without the peer, --rounds 2, 5 alternating runs
each: main (c6333a0) best wall 3.56 s, median CPU 6.85 s; h17v best 3.34 s, median 6.40 CPU s; identical to the
reference. Serial seconds of one run (strace -f -tt timeline, load 4-5): main 0.71-0.86, h17v 0.45-0.46 (opening
the file to the first fork 0.21-0.44 -> 0.09).

Figures (2026-12-07, session h17v's code; the VM at load average 12-14, so only CPU time and instruction
counts compare): without the peer, 200,000 CDRs, 1 round each, alternately 16:56-17:03 UTC: main (c6333a0)
8.50 and 8.14 CPU s, h17v 8.00 and 7.87 CPU s, identical to the reference. Instructions (valgrind callgrind,
EVBILL_OCPI_WORKERS=1, the first 20,000 CDRs): the whole command 5,767M -> 5,474M, start-up 1,174M -> 1,097M,
per CDR 229.7k -> 218.8k.

Figures (2026-12-07, session h17p's code @ ac01542: output spooled by the workers, the fast path compiled
by mypyc; the VM at load average 10-18, so only CPU time and instruction counts compare): without the
peer, 200,000 CDRs, 2 rounds back to back, main (c978756) 10:46 UTC 8.51 CPU s (18.04 s wall), h17p
10:47 UTC 7.46 CPU s (14.47 s wall), identical to the reference; with the peer at load 11-18, one round:
main 9.27 CPU s, h17p 8.17 CPU s, the peer 29.9-33.3 CPU s (3.6x CPU). Instructions (valgrind): the
fast path 262.6k -> 236.3k per CDR, start-up 1,370M -> 1,177M, the parent of a 2-worker run on 20,000
CDRs 1,683M -> 1,289M.

Figures (2026-12-07 04:11-04:20 UTC, session h17h's code @ fb7c544, the fused totals; load average
14.5 falling to 9.5, the VM shared with other sessions; 200,000 CDRs, best of 2 alternating rounds):
                            CDRs/s    CPU s  CDRs/CPU s
    evbill ocpi price        5,441    16.74      11,944  (36.76 s wall, identical to the reference)
    ocpi-tariffs (peer)      1,355    71.95       2,780  (147.60 s wall, total_cost only)
    ratio                    4.02x                4.30x  (target >= 10x: not met)
The ratio's rise over h17f's is the day's machine, not the code: the peer took twice its CPU of
h17f's runs. Main's code (145e4fe) and this code (28abb08) alternated with the peer in one round
right after (04:22-04:27 UTC, load 5.4-6.2): main 5,623/s wall, 18.64 CPU s; h17h 5,376/s, 19.85
CPU s; the peer 1,182/s, 70.13 CPU s: main 4.76x wall / 3.76x CPU, h17h 4.55x / 3.53x -- alike
within the noise (CPU seconds of one tree swing by 1.5x between rounds at this load). By
instructions (valgrind, 1,000 CDRs after 10,000, load-independent) main prices a CDR in 328.0k
instructions, h17h (28abb08) in 265.3k (-19 %); the whole command in one process (20,000 CDRs,
EVBILL_OCPI_WORKERS=1, start-up included) 8,974M -> 7,892M instructions (-12 %).

Figures (2026-12-07 01:35-01:38 UTC, session h17f's final code; load average 6.6-7.9, 200,000 CDRs, best
of 2 alternating rounds):
                            CDRs/s    CPU s  CDRs/CPU s
    evbill ocpi price        9,876    14.15      14,133  (20.25 s wall, identical to the reference)
    ocpi-tariffs (peer)      3,600    32.92       6,075  (55.55 s wall, total_cost only)
    ratio                    2.74x                2.33x  (target >= 10x: not met)
an earlier run of nearly the same code at load 7.9-13.4: 1.06x wall (evbill's workers got a quarter of
a core by the clock), 2.37x CPU.

Figures (2026-12-06 22:04-22:08 UTC, session h17e's final code: the CDRs priced as the engine's
pieces; the 2-core VM shared with other sessions, load average 8.1-12.6, Python 3.11; 200,000 CDRs,
best of 2 alternating rounds):
                            CDRs/s    CPU s  CDRs/CPU s
    evbill ocpi price       12,641    10.21      19,590  (15.82 s wall, identical to the reference)
    ocpi-tariffs (peer)      3,574    23.10       8,657  (55.96 s wall, total_cost only)
    ratio                    3.54x                2.26x  (target >= 10x: not met)
earlier that evening at load 7-15: 1.78x-2.85x wall, 2.27x-2.31x CPU; main before session h17e, run
between those: 3,653/s (12,695 per CPU-second) vs 3,212/s (8,758): 1.14x wall, 1.45x CPU.

Earlier (session 6, load average 7-10):
                            CDRs/s    CPU s  CDRs/CPU s
    evbill ocpi price        3,864    24.23       8,253  (51.76 s wall, identical to the reference)
    ocpi-tariffs (peer)      2,041    41.77       4,788  (98.00 s wall, total_cost only)
    ratio                    1.89x                1.72x  (target >= 10x: not met)
and main before issue 17, run right after: evbill 1,339/s (3,424 per CPU-second), the peer 2,336/s,
0.57x wall, 0.75x CPU.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARIFF = ROOT.parent / "shared" / "conformance" / "ocpi" / "spec-2.2.1" / "examples" / "tariff_4_complex.json"

# sha256 of `evbill ocpi price` stdout for (seed, n), written with the code as it was before
# issue 17 (main @ 5212446): every later change must print exactly these bytes
REFERENCE: dict[tuple[int, int], str] = {
    (17, 2000): "ff9e51aa2321b80a25b10b6ab766a78b6d27390b0bb4b4c74e5c7bd81a4f6adf",
    (17, 20000): "97aaca713d7fb75ab8fba41c45908d2ea98190b0dc1fc659002f3633f9f960e9",
    (17, 200000): "7368d03752af13d2ca7042db1c312beea08855f8cf7446c43b48b6a486c0fdd0",
}

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def make_cdr(rnd: random.Random, i: int) -> dict[str, object]:
    start = T0 + timedelta(seconds=rnd.randrange(0, 365 * 86400))
    k = rnd.randint(3, 6)
    parked = rnd.choice((0, 0, 1, 1, 2))  # trailing parking periods
    periods = []
    t = start
    energy = charge_h = park_h = 0.0
    for j in range(k):
        secs = rnd.randrange(60, 5400)
        hours = round(secs / 3600, 6)
        if j >= k - parked:
            dims = [{"type": "PARKING_TIME", "volume": hours}]
            park_h += hours
        else:
            current = rnd.choice((10.0, 16.0, 16.0, 32.0, 32.0, 63.0))
            power = round(current * 230 * 3 / 1000, 2)
            kwh = round(power * hours * rnd.uniform(0.2, 1.0), 3)
            dims = [{"type": "ENERGY", "volume": kwh}, {"type": "TIME", "volume": hours},
                    {"type": "MAX_CURRENT", "volume": current}, {"type": "MAX_POWER", "volume": power}]
            energy += kwh
            charge_h += hours
        periods.append({"start_date_time": _iso(t), "dimensions": dims})
        t += timedelta(seconds=secs)
    return {
        "id": f"CDR{i:07d}", "start_date_time": _iso(start), "end_date_time": _iso(t), "currency": "EUR",
        "cdr_location": {"id": f"LOC{i % 97}", "country": "DE", "evse_id": f"DE*ALL*E{i % 13}",
                         "connector_power_type": "AC_3_PHASE"},
        "charging_periods": periods, "total_energy": round(energy, 3), "total_time": round(charge_h + park_h, 6),
        "total_parking_time": round(park_h, 6), "last_updated": _iso(t),
    }


def write_cdrs(path: Path, n: int, seed: int) -> None:
    rnd = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps(make_cdr(rnd, i), separators=(",", ":")) + "\n")


# The peer as a whole process: parse the tariff and each CDR with its pydantic models, price with
# calculate_cdr_cost, print the total_cost per CDR (what the peer computes).
PEER_DRIVER = r"""
import sys, json
from ocpi_tariffs.v2_2_1.models import Cdr, Tariff
from ocpi_tariffs.v2_2_1.tariff_calculator import calculate_cdr_cost
tariff = Tariff.model_validate_json(open(sys.argv[1], encoding="utf-8").read())
out = sys.stdout
with open(sys.argv[2], encoding="utf-8") as f:
    for line in f:
        if line.strip():
            cdr = Cdr.model_validate_json(line)
            p = calculate_cdr_cost(cdr, tariff)
            out.write(json.dumps({"id": cdr.id, "total_cost": {"excl_vat": str(p.excl_vat),
                                                                "incl_vat": str(p.incl_vat)}}) + "\n")
"""

EVBILL = "import sys; from api.cli import main; sys.exit(main())"
PEER_HOWTO = ("git clone https://github.com/Hamza-nabil/ocpi-tariffs-py /tmp/ocpi-tariffs-py && "
              "git -C /tmp/ocpi-tariffs-py checkout e0ed4df, then --peer-src /tmp/ocpi-tariffs-py/src")


def _peer_env(src: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _check_peer(env: dict[str, str]) -> None:
    probe = subprocess.run([sys.executable, "-c", "import ocpi_tariffs.v2_2_1.tariff_calculator"], env=env,
                           capture_output=True, text=True)
    if probe.returncode:
        raise SystemExit("the peer ocpi-tariffs is not importable: PyPI's 0.1.0 wheel ships no code; pass "
                         "--peer-src with the src/ folder of a github.com/Hamza-nabil/ocpi-tariffs-py checkout "
                         f"(or set OCPI_TARIFFS_SRC): {PEER_HOWTO}\n{probe.stderr.strip().splitlines()[-1:]}")


def _compile(*trees: str) -> None:
    """Both programs' modules compiled ahead, as installed packages have them: where
    PYTHONDONTWRITEBYTECODE is set, each run would otherwise compile its sources again."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", *trees], check=True,
                   stdout=subprocess.DEVNULL)


def _native(env: dict[str, str]) -> str:
    """evbill's fast path compiled as ``make install`` compiles it (``dsl.native``: mypyc), and which
    module the command will run: the compiled one, or the plain one where the build failed or
    ``EVBILL_OCPI_NATIVE=0``."""
    subprocess.run([sys.executable, "-m", "dsl.native"], env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    probe = subprocess.run([sys.executable, "-c", "from dsl import ocpi; print(ocpi._fast_module().__name__)"],
                           env=env, cwd=ROOT, check=True, capture_output=True, text=True)
    name = probe.stdout.strip()
    return f"{name} ({'compiled by mypyc' if name.endswith('_c') else 'plain Python'})"


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _run(cmd: list[str], env: dict[str, str], out: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and its workers)."""
    with out.open("wb") as f:
        c = _cpu()
        t = time.perf_counter()
        proc = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.PIPE, cwd=ROOT)
        elapsed = time.perf_counter() - t
        cpu = _cpu() - c
    if proc.returncode:
        raise SystemExit(f"{cmd[:4]} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    return elapsed, cpu


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", nargs="?", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--rounds", type=int, default=2, help="alternating runs of each (best is reported)")
    ap.add_argument("--peer-src", default=os.environ.get("OCPI_TARIFFS_SRC"),
                    help=f"the src/ folder of an ocpi-tariffs-py checkout (default: $OCPI_TARIFFS_SRC); {PEER_HOWTO}")
    ap.add_argument("--no-peer", action="store_true", help="evbill only (still checked against the reference)")
    ap.add_argument("--write-reference", action="store_true", help="run evbill once and print its sha256")
    ap.add_argument("--keep", type=Path, help="also copy evbill's output here")
    args = ap.parse_args()
    if not TARIFF.exists():
        raise SystemExit(f"{TARIFF}: missing (the shared conformance data)")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    peer_env = _peer_env(args.peer_src)
    with tempfile.TemporaryDirectory(prefix="ocpi_price_") as tmp:
        cdrs = Path(tmp) / "cdrs.jsonl"
        write_cdrs(cdrs, args.n, args.seed)
        ev_cmd = [sys.executable, "-c", EVBILL, "ocpi", "price", "--tariff", str(TARIFF), "--cdrs", str(cdrs)]
        ev_out, peer_out = Path(tmp) / "evbill.jsonl", Path(tmp) / "peer.jsonl"
        if args.write_reference:
            _run(ev_cmd, env, ev_out)
            print(f"    ({args.seed}, {args.n}): \"{_sha(ev_out)}\",")
            if args.keep:
                args.keep.write_bytes(ev_out.read_bytes())
            return
        expected = REFERENCE.get((args.seed, args.n))
        run_peer = not args.no_peer
        if run_peer:
            _check_peer(peer_env)
        _compile(*(str(ROOT / d) for d in ("api", "dsl", "runtime", "store", "workflows")),
                 *([args.peer_src] if run_peer and args.peer_src else []))
        fast = _native(env)
        print(f"pricing {args.n:,} CDRs (seed {args.seed}) of {TARIFF.name} as whole processes, "
              f"{args.rounds} alternating rounds, {os.cpu_count()} cores (Python {sys.version.split()[0]}; both "
              f"programs' bytecode compiled ahead; evbill's fast path: {fast})")
        best_e = best_p = cpu_e = cpu_p = float("inf")
        for _ in range(args.rounds):
            wall, cpu = _run(ev_cmd, env, ev_out)
            best_e, cpu_e = min(best_e, wall), min(cpu_e, cpu)
            sha = _sha(ev_out)
            if expected is None:
                print(f"  no reference for seed {args.seed}, n {args.n}: output sha256 {sha} (not checked)")
            elif sha != expected:
                raise SystemExit(f"evbill's output differs from the reference for seed {args.seed}, n {args.n}: "
                                 f"{sha} != {expected}")
            if run_peer:
                wall, cpu = _run([sys.executable, "-c", PEER_DRIVER, str(TARIFF), str(cdrs)], peer_env, peer_out)
                best_p, cpu_p = min(best_p, wall), min(cpu_p, cpu)
        if args.keep:
            args.keep.write_bytes(ev_out.read_bytes())
        lines = sum(1 for _ in ev_out.open("rb"))
        if lines != args.n:
            raise SystemExit(f"evbill printed {lines} lines for {args.n} CDRs")
        # wall time is what the target is about; CPU time (the process and its workers) says how
        # much of it was the machine being shared with other work
        rate_e = args.n / best_e
        print(f"{'':<22}{'CDRs/s':>12}{'CPU s':>9}{'CDRs/CPU s':>12}")
        print(f"{'evbill ocpi price':<22}{rate_e:>12,.0f}{cpu_e:>9.2f}{args.n / cpu_e:>12,.0f}  ({best_e:.2f} s wall, "
              f"all OCPI totals{', identical to the reference' if expected else ''})")
        if run_peer:
            rate_p = args.n / best_p
            print(f"{'ocpi-tariffs (peer)':<22}{rate_p:>12,.0f}{cpu_p:>9.2f}{args.n / cpu_p:>12,.0f}  ({best_p:.2f} s wall, "
                  "total_cost only)")
            print(f"{'ratio':<22}{rate_e / rate_p:>11.2f}x{'':>9}{cpu_p / cpu_e:>11.2f}x  (target >= 10x)")


if __name__ == "__main__":
    main()
