"""SQL lives in store/: the billing controllers, the partner-statement, receivables, bank and
collections controllers and the workflows' activities build no statements of their own; they call
store functions (issue 11, the house in order)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLACES = [*sorted((ROOT / "api" / "areas" / "billing").glob("*.py")),
          ROOT / "api" / "areas" / "statements.py", ROOT / "api" / "areas" / "receivables.py",
          ROOT / "api" / "areas" / "bank.py", ROOT / "api" / "areas" / "payouts.py",
          ROOT / "api" / "areas" / "collections.py", *sorted((ROOT / "workflows").rglob("*.py"))]
STATEMENT = re.compile(r"(?<![\w.])(select|insert|update|delete|text|bindparam)\(|\b(conn|db)\.execute\(")


def test_no_sql_outside_store() -> None:
    hits = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}" for p in PLACES
            for i, line in enumerate(p.read_text().splitlines(), 1)
            if STATEMENT.search(line) and not line.lstrip().startswith("#")]
    assert hits == []
