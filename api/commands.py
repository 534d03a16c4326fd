"""``evbill check``, ``evbill rate`` and ``evbill ocpi ...``: thin doors onto dsl and runtime."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

from dsl import CompiledRuleset, PriceSeries, RatingContext, compile_ruleset
from runtime.rating import RatingError
from runtime.sessions import SessionFacts, SessionInputError, parse_datetime


def _err(msg: str) -> None:
    print(f"evbill: {msg}", file=sys.stderr)


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        _err(f"{path}: no such file")
    except IsADirectoryError:
        _err(f"{path}: is a directory")
    except UnicodeDecodeError:
        _err(f"{path}: not UTF-8 text")
    except OSError as exc:
        _err(f"{path}: {exc.strerror}")
    return None


def check(args: argparse.Namespace) -> int:
    failed = False
    for path in args.files:
        text = _read(path)
        if text is None:
            failed = True
            continue
        res = compile_ruleset(text, path)
        if args.json:
            for d in res.diagnostics:
                print(json.dumps(d.to_dict()))
        elif res.diagnostics:
            print(res.render(), file=sys.stderr)
        if not res.ok:
            failed = True
        elif not args.json:
            rs = res.ruleset
            assert rs is not None
            n_err = len(res.errors)
            n_warn = len(res.diagnostics) - n_err
            print(f"{path}: ok: ruleset '{rs.name}' ({len(rs.tariffs)} tariffs, {len(rs.discounts)} discounts, "
                  f"{len(rs.products)} products, {len(rs.ast.policies)} policies), {n_warn} warnings, "
                  f"sha256 {rs.sha256[:12]}")
    return 1 if failed else 0


def load_series_csv(name: str, text: str) -> PriceSeries:
    """CSV rows of ``start,value`` (ISO timestamp with offset, decimal); a header row is allowed."""
    points = []
    for i, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or row[0].startswith("#"):
            continue
        if i == 1 and not row[0][:1].isdigit():
            continue
        if len(row) < 2:
            raise ValueError(f"series {name}, row {i}: expected 'start,value'")
        try:
            points.append((parse_datetime(row[0].strip(), "start"), Decimal(row[1].strip())))
        except (SessionInputError, InvalidOperation) as exc:
            raise ValueError(f"series {name}, row {i}: {exc}") from None
    return PriceSeries.from_points(name, points)


def _series_args(specs: list[str]) -> dict[str, PriceSeries] | None:
    out: dict[str, PriceSeries] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name:
            _err(f"--series expects NAME=FILE.csv, found {spec!r}")
            return None
        text = _read(path)
        if text is None:
            return None
        try:
            out[name] = load_series_csv(name, text)
        except ValueError as exc:
            _err(str(exc))
            return None
    return out


def _lines(stream: IO[str]) -> Iterator[tuple[int, str]]:
    for n, line in enumerate(stream, start=1):
        if line.strip():
            yield n, line


def rate(args: argparse.Namespace) -> int:
    text = _read(args.ruleset)
    if text is None:
        return 1
    res = compile_ruleset(text, args.ruleset)
    if res.diagnostics:
        print(res.render(), file=sys.stderr)
    if res.ruleset is None:
        return 1
    rs = res.ruleset
    if args.tariff and args.tariff not in rs.tariffs:
        _err(f"ruleset '{rs.name}' has no tariff '{args.tariff}' (it has: {', '.join(rs.tariffs) or 'none'})")
        return 1
    series = _series_args(args.series)
    if series is None:
        return 1
    ctx = RatingContext(series=series)
    try:
        stream: IO[str] = sys.stdin if args.sessions == "-" else open(args.sessions, encoding="utf-8")  # noqa: SIM115 - closed below, stdin is not
    except OSError as exc:
        _err(f"{args.sessions}: {exc.strerror}")
        return 1
    failures = 0
    sessions: list[SessionFacts] = []
    with stream:
        for n, line in _lines(stream):
            try:
                raw = json.loads(line)
                s = SessionFacts.from_dict(raw)
                if args.period:
                    sessions.append(s)
                    continue
                out: dict[str, Any] = rs.rate(s, ctx, args.tariff).to_dict()
            except json.JSONDecodeError as exc:
                out = {"line": n, "error": f"not valid JSON: {exc.msg} at column {exc.colno}"}
            except (SessionInputError, RatingError, KeyError, TypeError, ValueError) as exc:
                msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
                out = {"line": n, "error": str(msg)}
            if "error" in out:
                failures += 1
                _err(f"{args.sessions}:{n}: {out['error']}")
            print(json.dumps(out), flush=False)
    if args.period:
        failures += _rate_period(rs, sessions, ctx, args.tariff)
    sys.stdout.flush()
    return 1 if failures else 0


def _rate_period(rs: CompiledRuleset, sessions: list[SessionFacts], ctx: RatingContext, tariff: str | None) -> int:
    results = rs.rate_many(sessions, ctx, tariff)
    for r in results:
        print(json.dumps(r.to_dict()))
    by_account: dict[tuple[str, str], list[Any]] = {}
    for s, r in zip(sorted(sessions, key=lambda x: x.start), results):
        by_account.setdefault((s.customer_id, s.product), []).append(r)
    for (customer, product), rs_results in sorted(by_account.items()):
        p = rs.rate_period(rs_results, product if product in rs.products else None)
        d = p.to_dict()
        d["customer_id"] = customer
        print(json.dumps({"period": d}))
    return 0


def ocpi_import(args: argparse.Namespace) -> int:
    from dsl.ocpi import OcpiError, import_tariff, load_json

    text = _read(args.tariff)
    if text is None:
        return 1
    try:
        print(import_tariff(load_json(text)), end="")
    except json.JSONDecodeError as exc:
        _err(f"{args.tariff}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")
        return 1
    except OcpiError as exc:
        _err(f"{args.tariff}: {exc}")
        return 1
    return 0


def ocpi_price(args: argparse.Namespace) -> int:
    from dsl.ocpi import price_cdrs_cli

    return price_cdrs_cli(args)

