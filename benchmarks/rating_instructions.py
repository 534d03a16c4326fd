"""Rate N of benchmarks/rating.py's sessions with one of its tariffs, for a load-independent count of
instructions per session under valgrind (the machine is shared: wall-clock figures swing).

The rating loop runs inside ``itertools.starmap`` (nothing in rating uses it), so callgrind can
collect only there; the garbage collector is off during the loop, as in benchmarks/rating.py. The
tree whose code is rated is the one on PYTHONPATH, so two trees (e.g. main and a worktree of an
older commit, ``git worktree add --detach /tmp/old <commit>``) compare on the same sessions:

    PYTHONPATH=<tree> valgrind --tool=callgrind --collect-atstart=no --toggle-collect=starmap_next \\
        --callgrind-out-file=/tmp/cg.out python benchmarks/rating_instructions.py complex 2000
    grep summary /tmp/cg.out        # instructions in the loop; / 2000 = per session

It prints a digest of every result's lines, trace and volumes: the same digest on both trees means
the same outputs. (``callgrind_annotate /tmp/cg.out`` shows where the instructions go, per C function.)
Usage: python benchmarks/rating_instructions.py {simple,complex,indexed} [N]
"""

from __future__ import annotations

import gc
import hashlib
import sys
from itertools import starmap
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))  # after PYTHONPATH: the tree rated is PYTHONPATH's

from benchmarks.rating import SOURCE, make_sessions, spot_series
from dsl import CompiledRuleset, RatingContext


def main() -> None:
    tariff = sys.argv[1] if len(sys.argv) > 1 else "complex"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    rs = CompiledRuleset.from_source(SOURCE, "bench.evb")
    ctx = RatingContext(series={"spot_de": spot_series()}) if tariff == "indexed" else None
    sessions = make_sessions(max(n, 1))[:n]
    rs.rate(make_sessions(1, seed=99)[0], ctx, tariff)  # the first call's one-off work, outside the count
    gc.collect()
    gc.disable()
    results = list(starmap(rs.rate, [(s, ctx, tariff) for s in sessions]))
    gc.enable()
    digest = hashlib.sha256(repr([(r.lines, r.trace, r.energy_kwh, r.time_h, r.parking_h)
                                  for r in results]).encode()).hexdigest()[:16]
    print(f"{tariff} {n} sessions, outputs {digest}")


if __name__ == "__main__":
    main()
