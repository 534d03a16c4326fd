"""Eichrecht benchmark (issue 18): what checking a session's signed meter data costs.

Makes N meters' keys and each a begin and an end OCMF record as chargers send them
(``tests.ocmf_signer``), then runs ``runtime.ocmf.check_session`` on every session (parse both
records, verify both ECDSA signatures, compare the signed energy) and prints wall and CPU time
per session, per curve. No target in the issue; the figure says what the gateway's finalization
pays per legal-for-trade session.

Measured 2026-12-06 21:32 UTC by session h18a, load average 6.9 (2 cores shared): two records per
session, secp256r1 0.23 ms wall / 0.13 ms CPU per session, secp384r1 1.70 / 0.75 ms,
brainpool256r1 1.44 / 0.54 ms.

Usage: PYTHONPATH=. python benchmarks/ocmf_verify.py [--sessions 2000] [--curves secp256r1,secp384r1,...]
"""

from __future__ import annotations

import argparse
import os
import time
from decimal import Decimal

from runtime.ocmf import check_session
from tests.ocmf_signer import Meter


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=2000)
    ap.add_argument("--curves", default="secp256r1,secp384r1,brainpool256r1")
    a = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}; {a.sessions} sessions per curve")
    for curve in a.curves.split(","):
        meters = [Meter(serial=f"M-{i}", curve=curve) for i in range(min(a.sessions, 50))]
        sessions = []
        for i in range(a.sessions):
            m = meters[i % len(meters)]
            recs = [m.record([("2026-12-01T09:00:00,000+0100 S", "B", "1000.000")]),
                    m.record([("2026-12-01T10:00:00,000+0100 S", "E", f"{1000 + i % 40}.500")])]
            sessions.append((recs, {m.serial: (m.public_key_hex, False)}, Decimal(f"{i % 40}.5")))
        w0, c0 = time.perf_counter(), time.process_time()
        ok = sum(check_session(r, k, e).check == "verified" for r, k, e in sessions)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        assert ok == a.sessions, ok
        print(f"{curve:16s} {wall:6.2f} s wall, {cpu:6.2f} s CPU: {wall / a.sessions * 1000:.3f} ms per session "
              f"({cpu / a.sessions * 1000:.3f} ms CPU)")


if __name__ == "__main__":
    main()
