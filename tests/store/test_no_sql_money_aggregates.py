"""Guard (issue 11, defect 2): SQL SUM/AVG over the exact-decimal text columns adds floats on
SQLite, and MAX/MIN compare them as text. Money and quantities are aggregated as Decimal in Python."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# MAX over integer sequence/version numbers is exact and allowed
# integer sequences, and the digits of account numbers (never money)
# and timestamps (UTCDateTime: one ISO text format on SQLite, so text order is time order; never money)
ALLOWED_MAX = ("number_seq", "RulesetVersion.version", "SessionRating.seq", "posting_batch.c.number",
               "accounting_debtor.c.account", "ChargingLimit.sent_at", "func.max(ad.at)", "func.max(tx.created_at)")


def test_no_sql_sum_or_avg_in_server_code() -> None:
    hits = [f"{p.relative_to(ROOT)}:{i}" for d in ("store", "api", "workflows") for p in (ROOT / d).rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"func\.(sum|avg|total)\(", line)]
    assert hits == []


def test_sql_max_min_only_over_integer_sequences() -> None:
    hits = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}" for d in ("store", "api", "workflows")
            for p in (ROOT / d).rglob("*.py") for i, line in enumerate(p.read_text().splitlines(), 1)
            if re.search(r"func\.(max|min)\(", line) and not any(a in line for a in ALLOWED_MAX)]
    assert hits == []
