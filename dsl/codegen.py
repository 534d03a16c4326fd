"""Generate one specialised Python function per tariff: the compiled fast path.

The generic engine (``runtime.rating.rate_session``) is the reference: it handles every session
shape (CDR periods, meter values, reservations, energy thresholds). Most sessions, though, are
plain — start, end, charging end and kWh — and for those the compiler emits straight-line code:
rule selection becomes an ``if/elif`` chain of inlined conditions, prices and labels become
constants, and only the features the tariff uses are emitted. The generated function mirrors the
generic algorithm step by step, so both give identical results; a property test holds them to it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from dsl import ast as A
from runtime.rated import RatingResult
from runtime.rating import (
    UNIT_SIZE,
    DiscountProgram,
    PricedRule,
    RatingContext,
    RulesetMeta,
    TariffProgram,
)
from runtime.sessions import SessionFacts

__all__ = ["generate_plain"]

PlainFn = Callable[[SessionFacts, "RatingContext | None"], "RatingResult | None"]

_LOCAL = {"s": "s", "sod": "sod", "wd": "wd", "day": "day", "date": "date_", "kwh": "ZERO", "el": "el",
          "pw": "pw", "cur": "None", "resv": "None"}
_ENV_RE = re.compile(r"\be\.(s|sod|wd|day|date|kwh|el|pw|cur|resv)\b")


def _missing(name: str) -> Any:
    from runtime.rating import MissingPrice

    raise MissingPrice(f"price series '{name}' was not supplied")


def _local(expr: str) -> str:
    return _ENV_RE.sub(lambda m: _LOCAL[m.group(1)], expr)


class _Src:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 1

    def __call__(self, text: str) -> None:
        self.lines.append("    " * self.depth + text)

    def indent(self) -> _Src:
        self.depth += 1
        return self

    def dedent(self) -> None:
        self.depth -= 1


def generate_plain(prog: TariffProgram, conds: dict[str, list[A.Cond | None]], codegen_factory: Any,
                   discounts: Sequence[DiscountProgram], meta: RulesetMeta,
                   discount_conds: dict[str, A.Cond | None] | None = None,
                   prices: dict[str, list[A.PriceExpr]] | None = None) -> PlainFn:
    """Build the fast path for ``prog``. ``conds[kind][i]`` is the condition AST of
    ``prog.rules[kind][i]`` (None = unconditional); ``codegen_factory()`` gives an expression builder."""
    g = codegen_factory()
    ns: dict[str, Any] = {}
    rule_no: dict[int, int] = {}
    rule_list: list[PricedRule] = []

    def rule_const(r: PricedRule) -> int:
        if id(r) not in rule_no:
            rule_no[id(r)] = len(rule_list)
            rule_list.append(r)
        return rule_no[id(r)]

    def cond_expr(c: A.Cond | None) -> str:
        if c is None or (isinstance(c, A.Atom) and c.kind == "always"):
            return "True"
        return _local(g.expr(c))

    price_asts = prices or {}
    series_used: list[str] = []

    def price_src(e: A.PriceExpr, at: str) -> str:
        """The price expression as Python, evaluated in the same order as the compiled closures."""
        if isinstance(e, A.Num):
            name = f"K_{len(ns)}"
            ns[name] = e.value
            return name
        if isinstance(e, A.Index):
            if e.series not in series_used:
                series_used.append(e.series)
            i = series_used.index(e.series)
            return f"(SER{i} if SER{i} is not None else _missing({e.series!r})).at({at})"
        if isinstance(e, A.Neg):
            return f"(-{price_src(e.operand, at)})"
        return f"({price_src(e.left, at)} {e.op} {price_src(e.right, at)})"

    def price_of(kind: str, r: PricedRule, at: str) -> str:
        if r.price is not None:
            return f"P{rule_const(r)}"
        i = next(i for i, x in enumerate(prog.rules[kind]) if x is r)
        asts = price_asts.get(kind)
        if asts is None:
            k = rule_const(r)
            ns[f"PF{k}"] = r.price_fn
            return f"PF{k}({at}, ctx.series)"
        return price_src(asts[i], at)

    src = _Src()
    needs_time = prog.needs_local_time
    used_fields: set[str] = set()
    for kind_conds in conds.values():
        for c in kind_conds:
            if c is not None:
                used_fields.update(m.group(1) for m in _ENV_RE.finditer(g.expr(c)))
    direct = not prog.dynamic and not any(r.step for rs in prog.rules.values() for r in rs)
    any_step = any(r.step for rs in prog.rules.values() for r in rs)
    any_idle = any(r.grace_idle is not None for rs in prog.rules.values() for r in rs)
    any_cap = any(r.cap is not None for rs in prog.rules.values() for r in rs)
    mine = tuple(d for d in discounts if not d.tariffs or prog.name in d.tariffs)
    volumes = [("energy", "pe"), ("time", "pt"), ("parking", "pp")]

    src("if ctx is None:")
    src.indent()("ctx = DEFAULT_CTX")
    src.dedent()
    src("if ctx.reservation is not None or s.reservation is not None:")
    src.indent()("return None")
    src.dedent()
    src("sid = s.id")
    src("#SERIES#")
    src("start = _ms(s.start)")
    src("end = _ms(s.end)")
    src("ce = end if s.charging_end is None else max(start, min(_ms(s.charging_end), end))")
    src("pw = s.max_power_kw")
    tz_needed = needs_time or prog.dynamic or bool(mine)
    src("tzname = ctx.tz or s.timezone" + (" or TZNAME" if tz_needed else ""))
    src("if tzname:")  # an unknown zone is refused even when this tariff would not need it
    src.indent()("try:")
    src.indent()("tz = zone(tzname)")
    src.dedent()
    src("except Exception:")
    src.indent()("raise RatingError(f'session {sid!r}: unknown time zone {tzname!r}') from None")
    src.dedent()
    src.dedent()
    if not tz_needed:
        src("tz = None")
    if not direct:
        src("acc = {}")
    src("trace = []")
    if direct:
        src("lines = []")
        if any_cap:
            src("priced = []")
    if any_step:
        src("last = {}")
        src("kind_total = {}")
    if any_idle:
        src("idle_used = {}")

    if prog.dynamic:
        for var, spec in (("cuts_c", prog.charge_cuts), ("cuts_p", prog.park_cuts)):
            if not spec.any:
                src(f"{var} = ()")
            elif not spec.day_seconds and not spec.duration_ms and len(spec.series) == 1:
                # one price series and nothing else: its own interval starts are the cuts
                name = spec.series[0]
                if name not in series_used:
                    series_used.append(name)
                i = series_used.index(name)
                src(f"{var} = SER{i}.boundaries(start, end) if SER{i} is not None else []")
            elif not spec.day_seconds and not spec.series:
                # only offsets from the start (grace ends, duration rules): no calendar needed
                src(f"{var} = [t for t in ({', '.join(f'start + {d}' for d in spec.duration_ms)},) if t < end]")
            else:
                src(f"{var} = _boundaries(PROG.{var.replace('cuts_c', 'charge_cuts').replace('cuts_p', 'park_cuts')}, "
                    "start, end, tz, ctx)")

    def emit_local_time(at: str, group_needs: bool = True) -> None:
        if not (needs_time and group_needs):
            return
        src(f"dt = fromtimestamp({at} / 1000, tz)")
        if "sod" in used_fields:
            src("sod = dt.hour * 3600 + dt.minute * 60 + dt.second")
        if "wd" in used_fields:
            src("wd = dt.weekday()")
        if "date" in used_fields or "day" in used_fields:
            src("date_ = dt.date()")
        if "day" in used_fields:
            src("day = date_.toordinal()")

    def emit_piece_pricing(kinds: list[tuple[str, str]]) -> None:
        """Code pricing one piece ``pa..pb`` with volumes in the named locals."""
        spec = prog.park_cuts if kinds[0][0] == "parking" else prog.charge_cuts
        emit_local_time("pa", spec.needs_local_time)
        if spec.duration_ms or any(r.grace_ms is not None for k, _ in kinds for r in prog.rules.get(k, ())):
            src("el = pa - start")
        for kind, var in kinds:
            rules = prog.rules.get(kind, ())
            if not rules:
                continue
            src(f"if {var}:")
            src.indent()
            first = True
            for r, c in zip(rules, conds.get(kind, [])):
                k = rule_const(r)
                expr = cond_expr(c)
                src(("if " if first else "elif ") + f"{expr}:  # {r.label}")
                first = False
                src.indent()
                emit_volume(kind, var, r, k)
                src.dedent()
            src.dedent()

    def emit_volume(kind: str, var: str, r: PricedRule, k: int) -> None:
        size = UNIT_SIZE[r.unit]
        qty = (lambda v: v) if size == 1 else (lambda v: f"{v} / SIZE{k}")
        ns[f"SIZE{k}"] = size
        if r.grace_ms is not None or r.grace_idle is not None:
            src("free = ZERO")
            if r.grace_ms is not None:
                src(f"if el < {r.grace_ms}:")
                src.indent()("free = " + var)
                src.dedent()
            else:
                ns[f"IDLE{k}"] = r.grace_idle
                src(f"used = idle_used.get({k}, ZERO)")
                src(f"free = min({var}, max(ZERO, IDLE{k} - used))")
                src(f"idle_used[{k}] = used + {var}")
            src(f"billable = {var} - free")
            src("if free:")
            src.indent()(f"trace.append(TraceEntry({kind!r}, L{k}, pa, pb, {qty('free')}, ZERO, 'free (grace)'))")
            src.dedent()
            src("if billable:")
            src.indent()
        else:
            src(f"billable = {var}")
            src("if True:")
            src.indent()
        if r.price is not None:
            ns[f"P{k}"] = r.price
        src(f"price = {price_of(kind, r, 'pa')}")
        if direct:
            # one piece per component: the line can be written at once, in the generic line order
            from runtime import rating as R
            ns[f"T{k}"], ns[f"V{k}"], ns[f"U{k}"] = r.title, r.vat, R._UNIT_LABEL[r.unit]
            src(f"qty = {qty('billable')}")
            src(f"lines.append(RatedLine({kind!r}, T{k}, qty, U{k}, price, qty * price, V{k}, CUR, L{k}, sid, "
                f"{R._GROUP[kind]!r}))")
            src(f"trace.append(TraceEntry({kind!r}, L{k}, pa, pb, qty, price))")
            if any_cap:
                src(f"priced.append(RULES[{k}])")
            src.dedent()
            ns[f"L{k}"] = r.label
            return
        src(f"key = ({k}, price)")
        src("slot = acc.get(key)")
        src("if slot is None:")
        src.indent()(f"acc[key] = [{k}, price, billable]")
        src.dedent()
        src("else:")
        src.indent()("slot[2] += billable")
        src.dedent()
        if any_step:
            src(f"last[{kind!r}] = {k}")
            src(f"kind_total[{kind!r}] = kind_total.get({kind!r}, ZERO) + billable")
        src(f"trace.append(TraceEntry({kind!r}, L{k}, pa, pb, {qty('billable')}, price))")
        src.dedent()
        ns[f"L{k}"] = r.label

    def emit_segment(a: str, b: str, vols: dict[str, str], kinds: list[tuple[str, str]], cuts: str,
                     spec_any: bool, first_segment: bool) -> None:
        """Walk one base segment a..b, cutting it at ``cuts`` exactly as _Seg.split does; only
        volumes that some rule prices are cut (totals come from the measured volumes)."""
        priced = [(k, v) for k, v in kinds if prog.rules.get(k)]
        vols = {v: init for v, init in vols.items() if any(v == pv for _, pv in priced)}
        if not priced:
            return
        if not spec_any:  # nothing can change inside this segment: it is one piece
            for var, init in vols.items():
                src(f"{var} = {init}")
            src(f"pa = {a}")
            src(f"pb = {b}")
            emit_piece_pricing(priced)
            return
        src(f"a = {a}")
        src(f"b = {b}")
        for var, init in vols.items():
            src(f"r_{var} = {init}")
        src(f"cuts = {cuts}")
        src("ncuts = len(cuts)")
        src("j = 0")
        if not first_segment:  # cuts lie strictly inside the session: none is before its start
            src("while j < ncuts and cuts[j] <= a:")
            src.indent()("j += 1")
            src.dedent()
        src("while True:")
        src.indent()
        src("if j < ncuts and cuts[j] < b:")
        src.indent()
        src("t = cuts[j]")
        src("num = Decimal(t - a)")
        src("den = Decimal(b - a)")
        for var in vols:
            src(f"{var} = r_{var} * num / den if r_{var} else ZERO")
            src(f"r_{var} = r_{var} - {var}")
        src("pa = a")
        src("pb = t")
        src("a = t")
        src("j += 1")
        src("done = False")
        src.dedent()
        src("else:")
        src.indent()
        for var in vols:
            src(f"{var} = r_{var}")
        src("pa = a")
        src("pb = b")
        src("done = True")
        src.dedent()
        emit_piece_pricing(priced)
        src("if done:")
        src.indent()("break")
        src.dedent()
        src.dedent()

    src("tot_e = s.energy_kwh")
    src("tot_t = _sec(ce - start)")
    src("tot_p = _sec(end - ce) if ce < end else ZERO")
    emit_segment("start", "ce", {"pe": "tot_e", "pt": "tot_t"}, volumes[:2], "cuts_c",
                 prog.charge_cuts.any, True)
    if prog.rules.get("parking"):
        src("if ce < end:")
        src.indent()
        emit_segment("ce", "end", {"pp": "tot_p"}, volumes[2:], "cuts_p", prog.park_cuts.any, False)
        src.dedent()

    if any_step:
        src("for kind, k in last.items():")
        src.indent()
        src("step = STEP[k]")
        src("if not step or (kind == 'time' and kind_total.get('parking')):")
        src.indent()("continue")
        src.dedent()
        src("total = kind_total[kind]")
        src("rounded = (total / step).to_integral_value(rounding=ROUND_CEILING) * step")
        src("if rounded > total:")
        src.indent()
        src("for key in reversed(list(acc)):")
        src.indent()
        src("if key[0] == k:")
        src.indent()
        src("acc[key][2] += rounded - total")
        src("size = SIZES[k]")
        src("trace.append(TraceEntry(kind, LABELS[k], end, end, (rounded - total) / size, key[1], "
            "f'step {step / size} {UNITS[k]}'))")
        src("break")
        src.dedent()
        src.dedent()
        src.dedent()
        src.dedent()

    if not direct:
        src("lines = []")
        if any_cap:
            src("capped = {}")
        src("for k, price, vol in acc.values():")
        src.indent()
        src("kind, title, label, unit, size, vat, group = INFO[k]")
        src("qty = vol if size == ONE else vol / size")
        src("net = qty * price")
        src("lines.append(RatedLine(kind, title, qty, unit, price, net, vat, CUR, label, sid, group))")
        if any_cap:
            src("if CAPS[k] is not None:")
            src.indent()("capped[k] = capped.get(k, ZERO) + net")
            src.dedent()
        src.dedent()

    # once-per-session fees, evaluated at the session start
    flat_kinds = [k for k in ("start_fee", "flat") if prog.rules.get(k)]
    if flat_kinds:
        flat_fields: set[str] = set()
        for kind in flat_kinds:
            for c in conds[kind]:
                if c is not None:
                    flat_fields.update(m.group(1) for m in _ENV_RE.finditer(g.expr(c)))
        emit_local_time("start", bool(flat_fields & {"sod", "wd", "day", "date"}))
        src("el = 0")
        for kind in flat_kinds:
            first = True
            for r, c in zip(prog.rules[kind], conds[kind]):
                k = rule_const(r)
                ns[f"L{k}"] = r.label
                src(("if " if first else "elif ") + f"{cond_expr(c)}:  # {r.label}")
                first = False
                src.indent()
                if r.price is not None:
                    ns[f"P{k}"] = r.price
                src(f"price = {price_of(kind, r, 'start')}")
                ns[f"T{k}"] = r.title
                ns[f"V{k}"] = r.vat
                src(f"lines.append(RatedLine({kind!r}, T{k}, ONE, 'session', price, price, V{k}, CUR, L{k}, sid, "
                    f"'fixed'))")
                src(f"trace.append(TraceEntry({kind!r}, L{k}, start, start, ONE, price))")
                src.dedent()

    if any_cap and direct:
        src("apply_caps(lines, trace, priced, CUR, sid, end)")
    elif any_cap:
        # as apply_caps: each capped rule in the order it first priced, what its lines add up to
        src("for k, got in capped.items():")
        src.indent()
        src("if got > CAPS[k]:")
        src.indent()
        src("excess = got - CAPS[k]")
        src("kind, title, label, unit, size, vat, group = INFO[k]")
        src("lines.append(RatedLine('cap', f'{title}: capped at {CAPS[k]}', ONE, 'each', -excess, -excess, vat, CUR, "
            "label, sid, group))")
        src("trace.append(TraceEntry('cap', label, end, end, ONE, -excess, f'at most {CAPS[k]}'))")
        src.dedent()
        src.dedent()
    if prog.min_price is not None or prog.max_price is not None:
        src("_clamp(PROG, lines, trace, CUR, sid, end)")
    consumed = "()"
    if mine:
        # a cheap necessary test per discount (its code and a condition that needs no clock);
        # only when one passes does the full discount logic run
        tests = []
        dconds = discount_conds or {}
        for d in mine:
            c = dconds.get(d.name)
            parts = []
            if d.code is not None:
                ns[f"CODE_{d.order}"] = d.code
                parts.append(f"CODE_{d.order} in s.promo_codes")
            if c is not None and not d.needs_time:
                parts.append(cond_expr(c))
            tests.append(" and ".join(f"({x})" for x in parts) or "True")
        src("el = 0")
        src("consumed = ()")
        src(f"if {' or '.join(f'({t})' for t in tests)}:")
        src.indent()
        src("found = []")
        src("env = Env(s, None)")
        src("env.pw = s.max_power_kw")
        if not tz_needed:
            src("tz = zone(tzname or TZNAME)")
        src("_apply_discounts(PROG, MINE, s, env, start, tz, ctx, lines, trace, found, CUR, end)")
        src("consumed = tuple(found)")
        src.dedent()
        consumed = "consumed"
    src("return RatingResult(sid, RSNAME, ctx.version or VERSION, SHA, NAME, CUR, "
        f"tuple(lines), tuple(trace), tot_e, tot_t / 3600, tot_p / 3600, {consumed})")

    from runtime import rating as R
    from runtime.rated import RatedLine, TraceEntry

    info = []
    for r in rule_list:
        size = UNIT_SIZE[r.unit]
        info.append((r.kind, r.title, r.label, R._UNIT_LABEL[r.unit], size, r.vat, R._GROUP[r.kind]))
    ns.update(
        INFO=tuple(info), RULES=tuple(rule_list), CAPS=tuple(r.cap for r in rule_list), _missing=_missing, STEP=tuple(r.step for r in rule_list),
        SIZES=tuple(UNIT_SIZE[r.unit] for r in rule_list), UNITS=tuple(r.unit for r in rule_list),
        LABELS=tuple(r.label for r in rule_list), PROG=prog, MINE=mine, META=meta, NAME=prog.name,
        RSNAME=meta.name, VERSION=meta.version, SHA=meta.sha256,
        CUR=prog.currency, TZNAME=prog.timezone, ZERO=Decimal(0), ONE=Decimal(1), Decimal=Decimal,
        ROUND_CEILING="ROUND_CEILING", DEFAULT_CTX=RatingContext(), RatedLine=RatedLine, TraceEntry=TraceEntry,
        RatingResult=RatingResult, apply_caps=R.apply_caps, _clamp=R._clamp, _apply_discounts=R._apply_discounts,
        Env=R.Env, zone=R.zone, RatingError=R.RatingError,
        _ms=R._ms, _sec=R._sec, _boundaries=R._boundaries, fromtimestamp=datetime.fromtimestamp,
    )
    ns.update(g.consts)
    ser_lines = [f"    SER{i} = ctx.series.get({name!r})" for i, name in enumerate(series_used)]
    body = [x for line in src.lines for x in (ser_lines if line.strip() == "#SERIES#" else [line])]
    code = "def rate_plain(s, ctx):\n" + "\n".join(body) + "\n"
    exec(compile(code, f"<tariff {prog.name}>", "exec"), ns)
    fn: PlainFn = ns["rate_plain"]
    fn.__doc__ = code  # the generated source, for anyone debugging a price
    return fn
