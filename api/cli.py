"""The ``evbill`` command line: the project's stable public interface (DESIGN.md).

Each subcommand lives in its own module and is imported lazily, so ``evbill check`` does not pay
for Litestar or Temporal imports.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence


def _lazy(module: str, func: str = "main") -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        import importlib

        return int(getattr(importlib.import_module(module), func)(args) or 0)

    return run


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("evbill")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


class _VersionAction(argparse.Action):
    """``--version``, looking the version up only when asked (importlib.metadata costs every other
    command tens of milliseconds of start-up)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str = "show program's version number and exit") -> None:
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        parser._print_message(f"evbill {_version()}\n", sys.stdout)
        parser.exit()


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; given the ``command`` about to be parsed and defined here (not in
    the admin, bank, prices or rates modules), without importing those modules (their imports and
    parsers are a tenth of ``evbill ocpi price``'s start-up): the same parser for that command."""
    p = argparse.ArgumentParser(prog="evbill", description="Open billing server for EV charging")
    p.add_argument("--version", action=_VersionAction)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("serve", help="API on :8000, OCPP on :9000, worker, embedded Temporal and SQLite")
    s.add_argument("--host", default=os.environ.get("EVBILL_HOST") or "127.0.0.1",
                   help="API interface (default: EVBILL_HOST or 127.0.0.1)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--ocpp-host", default=None,
                   help="OCPP gateway interface (default: EVBILL_OCPP_HOST or 127.0.0.1; 0.0.0.0 for all)")
    s.add_argument("--ocpp-port", type=int, default=9000)
    s.add_argument("--no-temporal", action="store_true", help="do not start Temporal or the worker")
    s.add_argument("--workers", type=int, default=None, metavar="N",
                   help="API processes sharing the port (default: EVBILL_API_WORKERS or 1)")
    s.set_defaults(func=_lazy("api.serve"))

    s = sub.add_parser("demo", help="a whole simulated month on the embedded defaults; artefacts in ./out/")
    s.add_argument("--out", default="out")
    s.add_argument("--sessions", type=int, default=3000, help="sessions to simulate")
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--serve", action="store_true",
                   help="afterwards keep serving the demo's database (API, console, Temporal) until Ctrl-C; "
                        "prints the console's address and a sign-in")
    s.add_argument("--port", type=int, default=8000, help="API and console port with --serve (default 8000)")
    s.add_argument("--ocpp-port", type=int, default=9000, help="OCPP port with --serve (0: none)")
    s.set_defaults(func=_lazy("api.demo"))

    s = sub.add_parser("doctor", help="check what a running evbill depends on; each with ok or the fix")
    s.add_argument("--host", default=None, help="API interface to check (default: EVBILL_HOST or 127.0.0.1)")
    s.add_argument("--port", type=int, default=8000, help="API port to check (default 8000)")
    s.add_argument("--ocpp-host", default=None, help="OCPP interface (default: EVBILL_OCPP_HOST or 127.0.0.1)")
    s.add_argument("--ocpp-port", type=int, default=9000, help="OCPP port to check (default 9000)")
    s.add_argument("--json", action="store_true", help="the checks as one JSON object")
    s.set_defaults(func=_lazy("api.doctor"))

    s = sub.add_parser("check", help="compile rulesets and print diagnostics; exit 1 on errors")
    s.add_argument("files", nargs="+", metavar="FILE")
    s.add_argument("--json", action="store_true", help="diagnostics as JSON lines")
    s.set_defaults(func=_lazy("api.commands", "check"))

    s = sub.add_parser("rate", help="rate sessions (JSON lines) with a ruleset; one JSON line per session")
    s.add_argument("--ruleset", required=True, metavar="FILE")
    s.add_argument("--tariff", metavar="NAME")
    s.add_argument("--sessions", required=True, metavar="FILE.jsonl", help="'-' reads standard input")
    s.add_argument("--series", action="append", default=[], metavar="NAME=FILE.csv",
                   help="price series for index(NAME): CSV of 'start,value' rows (UTC ISO start)")
    s.add_argument("--period", action="store_true",
                   help="also rate the sessions as one billing period (products, tiers, discounts)")
    s.set_defaults(func=_lazy("api.commands", "rate"))

    o = sub.add_parser("ocpi", help="OCPI 2.2.1 tariff tools")
    osub = o.add_subparsers(dest="ocpi_command", required=True, metavar="COMMAND")
    s = osub.add_parser("import-tariff", help="print the DSL ruleset equivalent to an OCPI tariff")
    s.add_argument("tariff", metavar="TARIFF.json")
    s.set_defaults(func=_lazy("api.commands", "ocpi_import"))
    s = osub.add_parser("price", help="price OCPI CDRs through the DSL")
    s.add_argument("--tariff", required=True, metavar="TARIFF.json")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--cdr", metavar="CDR.json")
    g.add_argument("--cdrs", metavar="CDRS.jsonl")
    s.add_argument("--tz", metavar="ZONE", help="evaluate restriction times in this IANA zone (default UTC)")
    s.add_argument("--reservation-expired", action="store_true",
                   help="price the reservation as expired (RESERVATION_EXPIRES elements)")
    s.set_defaults(func=_lazy("api.commands", "ocpi_price"))

    if command is not None and command in sub.choices:
        return p
    from api import admin_cli, bank_cli, prices_cli, rates_cli

    admin_cli.add_parsers(sub, _lazy)
    bank_cli.add_parsers(sub, _lazy)
    prices_cli.add_parsers(sub, _lazy)
    rates_cli.add_parsers(sub, _lazy)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
