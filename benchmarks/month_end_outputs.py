"""Digests of what month-end wrote into a billed SQLite database, comparable across code versions:
``python benchmarks/month_end_outputs.py billed.db`` (a database ``month_end_batch.py --keep`` left).

Billing the same seeded database with two trees must give the same rows: invoices, their lines
and billed sessions, the number series, receivable items, events and entries, journal entries and
lines, collection schedules. Random ids (``inv_``, ``itm_``, ``rcv_``, ``jnl_``, ``jln_``, ``sch_``)
are replaced by stable keys (an invoice by its account and cycle key, an item by its invoice, an
event by its key, a journal entry by its source, a journal line by its entry and line number) and
write timestamps (``created_at``) are dropped; everything else, integer ids included, is compared
as written. Prints each table's row count and sha256 of its sorted rows, then one digest of all.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import sys
from typing import Any

TABLES = ("billing_invoice", "billing_invoice_line", "billing_session", "billing_number_series", "receivable_item",
          "receivable_event", "receivable_entry", "journal_entry", "journal_line", "collection_schedule")
_ID = re.compile(r"\b(?:inv|itm|rcv|jnl|jln|sch)_[0-9a-z]+\b")
_DROPPED = ("created_at",)


def digests(path: str) -> dict[str, tuple[int, str]]:
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    rows = {t: [dict(r) for r in db.execute(f"select * from {t}")] for t in TABLES}
    key: dict[str, str] = {}
    for r in rows["billing_invoice"]:
        key[r["id"]] = f"invoice({r['account_id']}|{r['cycle_key']})"

    def sub(v: Any) -> Any:
        if isinstance(v, str):
            return _ID.sub(lambda m: key[m.group(0)], v)
        return v

    for r in rows["receivable_item"]:
        key[r["id"]] = f"item({sub(r['invoice_id'] or '')}|{r['kind']}|{r['number']})"
    for r in rows["receivable_event"]:
        key[r["id"]] = f"event({sub(r['key'])})"
    for r in rows["journal_entry"]:
        key[r["id"]] = f"entry({sub(r['source_id'])})"
    for r in rows["journal_line"]:
        key[r["id"]] = f"jline({sub(r['entry_id'])}|{r['line_no']})"
    for r in rows["collection_schedule"]:
        key[r["id"]] = f"schedule({sub(r.get('item_id') or '')}|{sub(r.get('invoice_id') or '')})"
    out = {}
    for t, rs in rows.items():
        text = sorted(json.dumps({k: sub(v) for k, v in r.items() if k not in _DROPPED}, sort_keys=True) for r in rs)
        out[t] = (len(text), hashlib.sha256("\n".join(text).encode()).hexdigest())
    return out


def main() -> int:
    got = digests(sys.argv[1])
    for t, (n, h) in got.items():
        print(f"{t:24s} {n:8d} rows  {h}")
    print("all", hashlib.sha256(json.dumps(got, sort_keys=True).encode()).hexdigest())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
