"""``evbill prices import NAME FILE``: a day-ahead price file into the server's database.

Reads the file as ``POST /price-series/{name}/prices`` does (``runtime.series.read_prices``) and
prints one JSON object: ``{"series_id", "name", "unit", "lines", "imported", "unchanged", "first",
"end"}``, or ``{"file", "error", "line"}`` on standard output with exit 1 when the file is refused
(nothing is stored then). A series that does not exist yet is created (``--unit``, default
``per MWh`` as day-ahead prices are published; ``--currency`` EUR; its resolution from the file).
Importing the same file again stores nothing and exits 0.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any


def add_parsers(sub: Any, lazy: Any) -> None:
    p = sub.add_parser("prices", help="price series: import day-ahead price files")
    psub = p.add_subparsers(dest="prices_command", required=True, metavar="COMMAND")
    s = psub.add_parser("import", help="import a CSV of hourly or 15-minute prices into series NAME; one JSON line")
    s.add_argument("name", metavar="NAME", help="the series, as rulesets name it in index(NAME)")
    s.add_argument("file", metavar="FILE", help="CSV: timestamp,price per interval ('-' reads standard input)")
    s.add_argument("--tenant", help="tenant id or name (needed when there are several)")
    s.add_argument("--unit", choices=("per MWh", "per kWh"), default="per MWh",
                   help="the unit of a series created by this import (default: per MWh)")
    s.add_argument("--currency", default="EUR", help="the currency of a series created by this import")
    s.set_defaults(func=lazy("api.prices_cli", "prices_import"))


def prices_import(args: argparse.Namespace) -> int:
    from sqlalchemy.orm import Session

    from api.admin_cli import CliError, _tenant
    from runtime.series import SeriesFileError, read_prices
    from store import prices as P
    from store.audit import Actor, append_audit
    from store.db import database_url, make_engine, migrate
    from store.errors import DomainError
    from store.models import PriceSeries
    from store.types import new_id

    if not re.fullmatch(r"[a-z][a-z0-9_]*", args.name) or len(args.name) > 100:
        print(f"evbill: {args.name!r} is not a series name (lower-case letters, digits, '_')", file=sys.stderr)
        return 1
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        print(json.dumps({"file": args.file, "error": f"cannot read the file: {exc}", "line": None}))
        return 1
    engine = make_engine(database_url())
    try:
        migrate(engine)
        with Session(engine) as db:
            try:
                tenant = _tenant(db, args.tenant)
            except CliError as exc:
                print(f"evbill: {exc}", file=sys.stderr)
                return 1
            series = P.series_by_id_or_name(db, tenant.id, args.name)
            try:
                points, _ = read_prices(text, resolution=timedelta(minutes=series.resolution_minutes)
                                        if series is not None else None)
                if series is None:
                    minutes = int((points[0].end - points[0].start).total_seconds() // 60)
                    series = PriceSeries(id=new_id("ps"), tenant_id=tenant.id, name=args.name, unit=args.unit,
                                         currency=args.currency, resolution_minutes=minutes,
                                         description=f"imported from {Path(args.file).name}")
                    db.add(series)
                    db.flush()
                res = P.import_points(db, tenant.id, series, points)
            except SeriesFileError as exc:
                print(json.dumps({"file": args.file, "error": exc.reason, "line": exc.line}))
                return 1
            except DomainError as exc:
                print(json.dumps({"file": args.file, "error": exc.message, "line": exc.extra.get("line")}))
                return 1
            if res.imported:
                append_audit(db, Actor(tenant.id, "cli", "admin"), "price_series.import", "price_series",
                             series.id, None, res.to_dict() | {"file": args.file})
            db.commit()
            print(json.dumps(res.to_dict()), flush=True)
    finally:
        engine.dispose()
    return 0
