"""``evbill bank import FILE...``: camt statements into the server's database, one JSON object per
file on standard output (DESIGN.md's CLI contract): ``{"file", "statement_id", "format",
"entries", "matched", "partially_matched", "unmatched", "returns", "duplicates"}`` or
``{"file", "error"}``. Exit 0 when every file was imported or was already there, 1 when one was
refused. Each file is its own transaction: a refused file leaves nothing behind.

When ``TEMPORAL_ADDRESS`` names the Temporal server, the open dunning cases of the customers the
import paid are signalled (``changed``) at the end, as the API's import does; without it they see
the payments at their next wake-up (a stage's day, or within a day when paused or finished)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_parsers(sub: Any, lazy: Any) -> None:
    b = sub.add_parser("bank", help="bank files: import camt statements")
    bsub = b.add_subparsers(dest="bank_command", required=True, metavar="COMMAND")
    s = bsub.add_parser("import", help="import camt.052/053/054 files; one JSON line per file")
    s.add_argument("files", nargs="+", metavar="FILE")
    s.add_argument("--tenant", help="tenant id or name (needed when there are several)")
    s.set_defaults(func=lazy("api.bank_cli", "bank_import"))


def bank_import(args: argparse.Namespace) -> int:
    from sqlalchemy.orm import Session

    from api.admin_cli import CliError, _tenant
    from runtime.bank.camt import CamtError
    from store import bank as BK
    from store.audit import Actor, append_audit
    from store.db import database_url, make_engine, migrate
    from store.types import utcnow

    engine = make_engine(database_url())
    failed = paid = False
    since = utcnow()
    try:
        migrate(engine)
        with Session(engine) as db:
            try:
                tenant_id = _tenant(db, args.tenant).id
            except CliError as exc:
                print(f"evbill: {exc}", file=sys.stderr)
                return 1
        for name in args.files:
            out: dict[str, Any] = {"file": name}
            try:
                data = Path(name).read_bytes()
                with Session(engine) as db:
                    res = BK.import_file(db.connection(), tenant_id, data, "cli")
                    if res["duplicates"] < res["entries"]:
                        append_audit(db, Actor(tenant_id, "cli", "admin"), "bank_statement.import",
                                     "bank_statement", res["statement_id"] or "", None,
                                     {k: v for k, v in res.items() if k != "warnings"} | {"file": name})
                    db.commit()
                out |= res
                paid = paid or bool(res["duplicates"] < res["entries"] and (res["matched"] or res["partially_matched"]))
            except CamtError as exc:
                failed = True
                out["error"] = exc.to_dict()
            except OSError as exc:
                failed = True
                out["error"] = {"message": f"cannot read the file: {exc.strerror}", "element": "", "line": None}
            print(json.dumps(out, default=str), flush=True)
        if paid:
            _tell_paid_cases(engine, tenant_id, since)
    finally:
        engine.dispose()
    return 1 if failed else 0


def _tell_paid_cases(engine: Any, tenant_id: str, since: Any) -> list[str]:
    """Signal the open dunning cases of the customers paid since ``since`` (best effort)."""
    import asyncio
    import logging
    import os

    from store import dunning as DN

    address = os.environ.get("TEMPORAL_ADDRESS", "").strip()
    if not address:
        return []
    with engine.connect() as conn:
        cases = DN.open_cases_paid_since(conn, tenant_id, since)
    if not cases:
        return []

    async def tell() -> list[str]:
        from temporalio.client import Client

        from api.areas.dunning import signal_cases

        client = await asyncio.wait_for(Client.connect(address), 10)
        return await signal_cases(client, cases, "bank statement (cli)")

    try:
        return asyncio.run(tell())
    except Exception as exc:  # noqa: BLE001 - the payments are booked; the cases see them later
        logging.getLogger("evbill.dunning").warning("open dunning cases not signalled after the import: %s", exc)
        return []
