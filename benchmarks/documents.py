"""Benchmark: complete month-end invoices (PDF with a 20-session statement + e-invoice XML).

One complete invoice = the Factur-X PDF/A-3 (invoice page(s) + session statement, CII embedded)
plus the XRechnung UBL XML. Rendering is pure CPU, so documents are spread over one process per
core; each worker warms up (imports WeasyPrint, parses the stylesheet) before the clock starts.

    .venv/bin/python benchmarks/documents.py [--count 200] [--workers 2] [--sessions 20]
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime.documents import render
from runtime.documents.model import Document
from tests.runtime.documents.samples import make

FORMATS = ("facturx-pdf", "xrechnung-ubl")


def _document(i: int, sessions: int) -> Document:
    case = ("b2c", "b2b_domestic", "mixed_vat", "allowance_charge")[i % 4]
    doc = make(case, sessions=sessions)
    return dataclasses.replace(doc, number=f"RE-2026-{i:06d}")


def _warm_up(sessions: int) -> None:
    doc = _document(0, sessions)
    for fmt in FORMATS:
        render(doc, fmt)


def _render_one(args: tuple[int, int]) -> tuple[int, float, float]:
    i, sessions = args
    doc = _document(i, sessions)
    start, cpu_start = time.perf_counter(), time.process_time()
    size = sum(len(render(doc, fmt)) for fmt in FORMATS)
    return size, time.perf_counter() - start, time.process_time() - cpu_start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--sessions", type=int, default=20)
    args = parser.parse_args(argv)

    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(args.workers, initializer=_warm_up, initargs=(args.sessions,)) as pool:
        # make sure every worker has finished its warm-up before timing
        pool.map(_warm_up, [args.sessions] * args.workers, chunksize=1)
        start = time.perf_counter()
        results = pool.map(_render_one, [(i, args.sessions) for i in range(args.count)],
                           chunksize=4)
        wall = time.perf_counter() - start

    per_doc = sorted(r[1] for r in results)
    cpu = sorted(r[2] for r in results)
    cpu_median = cpu[len(cpu) // 2]
    total_bytes = sum(r[0] for r in results)
    rate = args.count / wall
    print(f"complete invoices (facturx-pdf with {args.sessions}-session statement + xrechnung-ubl)")
    print(f"workers={args.workers} count={args.count} wall={wall:.2f}s")
    print(f"throughput: {rate:.1f} documents/s, {1000 * wall / args.count:.1f} ms per document "
          f"(wall), {1000 * per_doc[len(per_doc) // 2]:.1f} ms median per document per worker, "
          f"p90 {1000 * per_doc[int(len(per_doc) * 0.9)]:.1f} ms")
    print(f"cpu: {1000 * cpu_median:.1f} ms median CPU per document -> {args.workers / cpu_median:.1f} "
          f"documents/s if {args.workers} cores were idle (other load on the machine inflates wall)")
    try:
        print(f"load average during run: {os.getloadavg()[0]:.2f}")
    except OSError:
        pass
    print(f"output: {total_bytes / args.count / 1024:.0f} KiB per invoice")
    print(f"10,000 invoices would take {10_000 / rate / 60:.1f} min; target >= 10 documents/s: "
          f"{'met' if rate >= 10 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
