"""Checked AST -> rating programs. Compiled once per ruleset content (cached by sha256).

Conditions become generated Python predicates over the segment environment (``runtime.rating.Env``)
so the hot path runs plain bytecode with constants bound as defaults, not an AST interpreter.
A ``CompiledRuleset`` keeps its source and sha256: only ``(name, version, sha)`` needs to travel.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from decimal import Decimal, getcontext
from fnmatch import translate
from typing import TYPE_CHECKING, Any

from dsl import ast as A
from dsl.checker import check, walk_atoms
from dsl.diagnostics import Diagnostic, render_all
from dsl.parsed import parse_cached, shift_lines
from dsl.printer import cond_text
from runtime.rated import RatingResult
from runtime.rating import (
    UNIT_SIZE,
    CutSpec,
    DiscountProgram,
    Env,
    PeriodResult,
    PiecesFn,
    PricedRule,
    PriceSeries,
    ProductProgram,
    RateFn,
    RatingContext,
    RatingError,
    RulesetMeta,
    TariffProgram,
    TotalsFn,
    fused_totals,
    rate_period,
    specialised,
)
from runtime.sessions import SessionFacts
from runtime.tax import CLASS_PLACEHOLDERS, RateUnknown, resolve_classes, stated_rates

if TYPE_CHECKING:  # read when first asked for: a command that only rates (evbill ocpi price) skips their imports
    from dsl.policies import Policies

__all__ = ["CompileResult", "CompiledRuleset", "RulesetError", "cache_info", "compile_ruleset"]

_DYNAMIC_ATOMS = {"time", "days", "date", "holiday", "power", "current", "energy", "duration"}


class RulesetError(ValueError):
    """Raised by ``CompiledRuleset.from_source`` when the source has errors (rendered text)."""


class CompileResult:
    __slots__ = ("diagnostics", "filename", "ruleset", "source")

    def __init__(self, ruleset: CompiledRuleset | None, diagnostics: list[Diagnostic], source: str, filename: str):
        self.ruleset = ruleset
        self.diagnostics = diagnostics
        self.source = source
        self.filename = filename

    @property
    def ok(self) -> bool:
        return self.ruleset is not None

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    def render(self) -> str:
        return render_all(self.diagnostics, self.source)


class CompiledRuleset:
    """A checked, compiled ruleset. Immutable; rate() is a pure function."""

    def __init__(self, ast: A.Ruleset, source: str, sha256: str, tariffs: Mapping[str, TariffProgram],
                 discounts: Sequence[DiscountProgram], products: Mapping[str, ProductProgram],
                 default_tariff: str | None):
        self.ast = ast
        self.source = source
        self.sha256 = sha256
        self.name = ast.name
        self.currency = ast.currency
        self.timezone = ast.timezone
        self.version = ast.version
        self.rounding = ast.rounding
        self.tariffs = dict(tariffs)
        self.discounts = tuple(discounts)
        self.products = dict(products)
        self.default_tariff = default_tariff
        self.meta = RulesetMeta(ast.name, ast.version, sha256, ast.currency, ast.timezone, ast.rounding)
        # per tariff: the rating engine specialised for it (runtime.rating.specialised), built once;
        # ``piece_engines`` are the same steps on sessions already cut into pieces (OCPI CDR files),
        # None for a tariff that does not allow it or whose VAT rates depend on the session
        built = {name: specialised(prog, self.discounts, self.meta) for name, prog in self.tariffs.items()}
        self.engines: dict[str, RateFn] = {name: sp.rate for name, sp in built.items()}
        self._policies: Policies | None = None
        # rate classes ('vat standard'): resolved per session from its location's country and day
        self.vat_classes = any(t.vat_class is not None or any(cd.vat_class is not None for r in t.rules
                                                              for cd in r.components) for t in ast.tariffs)
        self.stated_rates = stated_rates(st for p in ast.policies if p.kind == "tax" for st in p.of(A.VatRate))
        self.piece_engines: dict[str, PiecesFn | None] = {
            name: None if self.vat_classes else sp.pieces for name, sp in built.items()}
        self._totals: dict[tuple[str, bool], TotalsFn | None] = {}
        # the tariffs whose result is the engine's own (not legal for trade, no rate classes): rate()
        # calls their engine directly
        self._direct: dict[str, RateFn] = {} if self.vat_classes else {
            name: fn for name, fn in self.engines.items() if not self.tariffs[name].legal_for_trade}

    def totals_engine(self, tariff: str, *, charging_time: bool = True) -> TotalsFn | None:
        """The tariff's pieces path fused with the group totals (``runtime.rating.fused_totals``:
        one generated function, made at the first call), or None where it has none (then
        ``piece_engines``); ``charging_time=False``: without the charging hours (None)."""
        key = (tariff, charging_time)
        if key not in self._totals:
            prog = self.tariffs[tariff]
            self._totals[key] = None if self.vat_classes or self.piece_engines.get(tariff) is None else \
                fused_totals(prog, self.discounts, charging_time=charging_time)
        return self._totals[key]

    @property
    def policies(self) -> Policies:
        """Billing, hold, service and payments policies, read once (the ruleset lives in the compile cache)."""
        if self._policies is None:
            from dsl.policies import read_policies

            self._policies = read_policies(self.ast)
        return self._policies

    @property
    def tariff_names(self) -> tuple[str, ...]:
        return tuple(self.tariffs)

    @property
    def product_names(self) -> tuple[str, ...]:
        return tuple(self.products)

    @classmethod
    def from_source(cls, source: str, filename: str = "<ruleset>") -> CompiledRuleset:
        res = compile_ruleset(source, filename)
        if res.ruleset is None:
            raise RulesetError(res.render())
        return res.ruleset

    def tariff_for(self, s: SessionFacts, tariff: str | None = None) -> TariffProgram:
        if tariff is not None:
            try:
                return self.tariffs[tariff]
            except KeyError:
                raise KeyError(f"ruleset '{self.name}' has no tariff '{tariff}'") from None
        if s.product:
            p = self.products.get(s.product)
            if p is not None and p.tariff:
                return self.tariffs[p.tariff]
        if self.default_tariff:
            return self.tariffs[self.default_tariff]
        if not self.tariffs:
            raise KeyError(f"ruleset '{self.name}' has no tariff")
        return next(iter(self.tariffs.values()))

    def rate(self, session: SessionFacts, ctx: RatingContext | None = None, tariff: str | None = None) -> RatingResult:
        if tariff is not None and (direct := self._direct.get(tariff)) is not None:
            return direct(session, ctx)
        name = tariff if tariff is not None and tariff in self.engines else self.tariff_for(session, tariff).name
        legal = self.tariffs[name].legal_for_trade
        res = self.engines[name](session.signed_only() if legal else session, ctx)
        if legal:
            res = dataclasses.replace(res, legal_for_trade=True)
        if self.vat_classes:
            res = self._resolve_vat_classes(res, session)
        return res

    def _resolve_vat_classes(self, res: RatingResult, session: SessionFacts) -> RatingResult:
        """The rate classes' placeholders replaced by the location country's rates on the session's
        local day; a session whose country has no rate of the class cannot be rated."""
        from zoneinfo import ZoneInfo

        on = session.start.astimezone(ZoneInfo(session.timezone or self.timezone)).date()
        try:
            lines = resolve_classes(res.lines, session.country, on, self.stated_rates)
        except RateUnknown as e:
            raise RatingError(f"session {session.id!r}: {e}") from None
        return dataclasses.replace(res, lines=lines)

    def rate_many(self, sessions: Sequence[SessionFacts], ctx: RatingContext | None = None,
                  tariff: str | None = None) -> list[RatingResult]:
        """Rate sessions in order, carrying discount uses and promotion budgets from one to the next."""
        ctx = ctx or RatingContext()
        uses: dict[tuple[str, str], int] = {}
        period: dict[str, int] = {}
        budget: dict[str, Decimal] = dict(ctx.budget_used)
        out = []
        for s in sorted(sessions, key=lambda x: x.start):
            c = RatingContext(series=ctx.series, tz=ctx.tz, version=ctx.version, reservation=ctx.reservation,
                              uses={k[1]: v for k, v in uses.items() if k[0] == s.customer_id} | dict(ctx.uses),
                              period_uses=period | dict(ctx.period_uses), budget_used=budget)
            r = self.rate(s, c, tariff)
            for name, amount in r.consumed:
                uses[(s.customer_id, name)] = uses.get((s.customer_id, name), 0) + 1
                period[name] = period.get(name, 0) + 1
                budget[name] = budget.get(name, Decimal(0)) + amount
            out.append(r)
        return out

    def rate_period(self, results: Sequence[RatingResult], product: str | None = None, months: int = 1,
                    goodwill: Decimal = Decimal(0)) -> PeriodResult:
        p = self.products.get(product) if product else None
        if product and p is None:
            raise KeyError(f"ruleset '{self.name}' has no product '{product}'")
        return rate_period(results, p, self.currency, months, goodwill)


# ---------------------------------------------------------------- cache
# The one compiled-ruleset cache of the process (the API, the workflows' activities, partner
# statements and policy readers all compile through ``compile_ruleset``): keyed by the content's
# sha256 alone, least recently used out first. A file name only labels diagnostics, so a hit under
# another name gets its diagnostics relabelled rather than a second compilation.
_CACHE: OrderedDict[str, CompileResult] = OrderedDict()
_CACHE_LOCK = threading.Lock()
CACHE_SIZE = 128


def compile_ruleset(source: str, filename: str = "<ruleset>") -> CompileResult:
    """Parse, check and compile. Never raises for bad input: errors come back as diagnostics."""
    sha = hashlib.sha256(source.encode("utf-8")).hexdigest()
    with _CACHE_LOCK:
        hit = _CACHE.get(sha)
        if hit is not None:
            _CACHE.move_to_end(sha)
    if hit is not None:
        if hit.filename == filename:
            return hit
        return CompileResult(hit.ruleset, [dataclasses.replace(d, file=filename) for d in hit.diagnostics],
                             source, filename)
    res = _compile(source, filename, sha)
    with _CACHE_LOCK:
        _CACHE[sha] = res
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return res


def cache_info() -> tuple[int, int]:
    """(entries, bound) of the compiled-ruleset cache."""
    with _CACHE_LOCK:
        return len(_CACHE), CACHE_SIZE


def _compile(source: str, filename: str, sha: str) -> CompileResult:
    outcome = parse_cached(source, filename)
    if outcome.ruleset is None:
        return CompileResult(None, outcome.diagnostics, source, filename)
    diags = shift_lines(check(outcome.ruleset, filename, outcome.partial), -outcome.line_shift)
    if outcome.diagnostics:
        # Recovered from a syntax or value error: keep the checker's findings, except names
        # that only look unknown because their block did not parse.
        lost = {f"'{n}'" for n in outcome.lost_names}
        diags = outcome.diagnostics + [
            d for d in diags
            if d.is_error and not (d.code.startswith("E2") and any(n in d.message for n in lost))
        ]
    diags.sort(key=lambda d: (d.span.line, d.span.col, d.code))
    if any(d.is_error for d in diags):
        return CompileResult(None, diags, source, filename)
    return CompileResult(_Compiler(outcome.ruleset, source, sha).build(), diags, source, filename)


# ---------------------------------------------------------------- code generation
class _Codegen:
    """Builds a Python expression for a condition, with constants passed as default arguments."""

    def __init__(self, rs: A.Ruleset):
        self.rs = rs
        self.consts: dict[str, Any] = {}

    def const(self, value: Any) -> str:
        name = f"_k{len(self.consts)}"
        self.consts[name] = value
        return name

    def expr(self, c: A.Cond) -> str:
        if isinstance(c, A.And):
            return "(" + " and ".join(self.expr(x) for x in _order(c.items)) + ")"
        if isinstance(c, A.Or):
            return "(" + " or ".join(self.expr(x) for x in c.items) + ")"
        if isinstance(c, A.Not):
            return f"(not {self.expr(c.item)})"
        return self.atom(c)

    def atom(self, a: A.Atom) -> str:
        k, args = a.kind, a.args
        if k == "always":
            return "True"
        if k == "time":
            s, e = _sod(str(args[0])), _sod(str(args[1]))
            if s == e:
                return "True"
            if s < e:
                return f"({s} <= e.sod < {e})"
            return f"(e.sod >= {s} or e.sod < {e})"
        if k == "days":
            return f"(e.wd in {self.const(frozenset(int(str(x)) for x in args))})"
        if k == "date":
            lo = date.fromisoformat(str(args[0])).toordinal()
            if args[1] is None:
                return f"(e.day >= {lo})"
            hi = date.fromisoformat(str(args[1])).toordinal()
            return f"({lo} <= e.day < {hi})"
        if k == "holiday":
            region = str(args[0]) or self.rs.holidays
            return f"{self.const(_holiday_checker(region))}(e.date)"
        if k == "ac":
            return "(e.s.power_type == 'AC')"
        if k == "dc":
            return "(e.s.power_type == 'DC')"
        if k in ("power", "current"):
            attr = "pw" if k == "power" else "cur"
            op, value = str(args[0]), args[1]
            # an unknown power or current does not rule a tariff element out (as in OCPI)
            return f"(e.{attr} is None or e.{attr} {_pyop(op)} {self.const(value)})"
        if k == "energy":
            op, value, unit = str(args[0]), args[1], str(args[2])
            assert isinstance(value, Decimal)
            return f"(e.kwh {_pyop(op)} {self.const(value * UNIT_SIZE[unit])})"
        if k == "duration":
            op, value, unit = str(args[0]), args[1], str(args[2])
            assert isinstance(value, Decimal)
            ms = int(value * UNIT_SIZE[unit] * 1000)
            return f"(e.el {_pyop(op)} {ms})"
        if k in ("location", "site", "evse", "partner", "country"):
            attr = {"location": "location_id", "site": "site_id", "evse": "evse_id", "partner": "partner",
                    "country": "country"}[k]
            return f"{self.const(_matcher([str(x) for x in args], k == 'country'))}(e.s.{attr})"
        if k == "group":
            return f"(not e.s.customer_groups.isdisjoint({self.const(frozenset(str(x) for x in args))}))"
        if k == "product":
            return f"(e.s.product in {self.const(frozenset(str(x) for x in args))})"
        if k == "token":
            return f"(e.s.token_type in {self.const(frozenset(str(x).lower() for x in args))})"
        if k == "roaming":
            return "e.s.roaming"
        if k == "local":
            return "(not e.s.roaming)"
        if k == "reservation":
            return "(e.resv is not None)"
        if k == "reservation_expires":
            return "(e.resv == 'RESERVATION_EXPIRES')"
        if k == "code":
            return f"({self.const(str(args[0]))} in e.s.promo_codes)"
        raise AssertionError(f"unhandled condition {k}")

    def function(self, c: A.Cond) -> Callable[[Env], bool]:
        body = self.expr(c)
        params = "".join(f", {n}={n}" for n in self.consts)
        src = f"def pred(e{params}):\n    return bool({body})\n"
        ns: dict[str, Any] = dict(self.consts)
        exec(compile(src, f"<condition {cond_text(c)}>", "exec"), ns)
        fn: Callable[[Env], bool] = ns["pred"]
        fn.__doc__ = cond_text(c)
        # the expression and its constants, for the engine to inline a rule table's conditions
        # into one function (runtime.rating._chooser)
        fn.expr_source = (body, {n: v for n, v in self.consts.items() if re.search(rf"\b{n}\b", body)})  # type: ignore[attr-defined]
        return fn


def _order(items: tuple[A.Cond, ...]) -> list[A.Cond]:
    """Cheap session-level tests first: they usually decide a conjunction."""
    def cost(c: A.Cond) -> int:
        return 1 if any(a.kind in _DYNAMIC_ATOMS for a in walk_atoms(c)) else 0
    return sorted(items, key=cost)


def _pyop(op: str) -> str:
    return "==" if op == "=" else op


def _sod(t: str) -> int:
    h, m = t.split(":")
    return int(h) * 3600 + int(m) * 60


def _matcher(patterns: list[str], upper: bool) -> Callable[[str], bool]:
    exact = frozenset(p.upper() if upper else p for p in patterns if not any(ch in p for ch in "*?["))
    globs = [p for p in patterns if any(ch in p for ch in "*?[")]
    rx = re.compile("|".join(translate(p) for p in globs)) if globs else None

    def match(value: str) -> bool:
        v = value.upper() if upper else value
        return v in exact or (rx is not None and rx.match(v) is not None)

    return match


_HOLIDAY_CACHE: dict[str, Callable[[date | None], bool]] = {}


def _holiday_checker(region: str) -> Callable[[date | None], bool]:
    if region in _HOLIDAY_CACHE:
        return _HOLIDAY_CACHE[region]
    import holidays

    country, _, sub = region.partition("-")
    cal = holidays.country_holidays(country, subdiv=sub or None)

    def is_holiday(d: date | None) -> bool:
        return d is not None and d in cal

    _HOLIDAY_CACHE[region] = is_holiday
    return is_holiday


def _missing_series(name: str) -> Any:
    from runtime.rating import MissingPrice

    raise MissingPrice(f"price series '{name}' was not supplied")


def _price_fn(e: A.PriceExpr) -> tuple[Decimal | None, Callable[[int, Mapping[str, PriceSeries]], Decimal] | None]:
    """A constant price, or a function of (epoch ms, series) for indexed prices: the expression
    compiled into one Python function (operands evaluated left to right, as written)."""
    consts: dict[str, Any] = {"_missing": _missing_series}

    def const(value: Any) -> str:
        name = f"_k{len(consts)}"
        consts[name] = value
        return name

    def src(x: A.PriceExpr) -> str:
        if isinstance(x, A.Num):
            return const(x.value)
        if isinstance(x, A.Index):
            if value_of_index is not None:
                return value_of_index
            name = const(x.series)
            # a PriceSeries is always true: ``or`` reaches _missing only when the series is absent
            return f"(ser.get({name}) or _missing({name})).at(ms)"
        if isinstance(x, A.Neg):
            return f"(-{src(x.operand)})"
        assert x.op in ("+", "-", "*", "/")
        return f"({src(x.left)} {x.op} {src(x.right)})"

    value_of_index: str | None = None
    if _one_index(e) and not isinstance(e, A.Index):
        # one series value and constants: the price of each value object, computed once per decimal
        # context (the caller's, by identity: a context changed in place is not noticed, and evbill
        # changes none) and kept: the same Decimal each time, its hash computed once (rating groups
        # amounts by price; a Decimal's hash costs more than the arithmetic)
        lookup = src(A.Index(_series_of(e)[0], e.span))
        value_of_index = "v"
        body = src(e)
        consts.update(_memo={}, _context=getcontext, _id=id, _MEMO_SIZE=_PRICE_MEMO)
        params = "".join(f", {n}={n}" for n in consts)
        code = (f"def price(ms, ser{params}):\n"
                f"    v = {lookup}\n"
                "    got = _memo.get(_id(v))\n"
                "    c = _context()\n"
                "    if got is not None and got[0] is v and got[1] is c:\n"
                "        return got[2]\n"
                f"    p = {body}\n"
                "    if len(_memo) >= _MEMO_SIZE:\n"
                "        _memo.clear()\n"
                "    _memo[_id(v)] = (v, c, p)  # v is held: its id is not reused while the entry lives\n"
                "    return p\n")
    else:
        body = src(e)
        params = "".join(f", {n}={n}" for n in consts)
        code = f"def price(ms, ser{params}):\n    return {body}\n"
    ns: dict[str, Any] = dict(consts)
    exec(compile(code, "<price expression>", "exec"), ns)
    fn: Callable[[int, Mapping[str, PriceSeries]], Decimal] = ns["price"]
    if not _has_index(e):
        return fn(0, {}), None
    return None, fn


_PRICE_MEMO = 4096  # prices kept per indexed price expression (one per series value seen)


def _one_index(e: A.PriceExpr) -> bool:
    """One series value, constants, and no division (whose error, by a zero constant, would
    otherwise come before a missing series' error)."""
    def divides(x: A.PriceExpr) -> bool:
        if isinstance(x, A.BinOp):
            return x.op == "/" or divides(x.left) or divides(x.right)
        return isinstance(x, A.Neg) and divides(x.operand)
    return len(_series_of(e)) == 1 and not divides(e)


def _has_index(e: A.PriceExpr) -> bool:
    if isinstance(e, A.Index):
        return True
    if isinstance(e, A.BinOp):
        return _has_index(e.left) or _has_index(e.right)
    if isinstance(e, A.Neg):
        return _has_index(e.operand)
    return False


def _series_of(e: A.PriceExpr) -> list[str]:
    if isinstance(e, A.Index):
        return [e.series]
    if isinstance(e, A.BinOp):
        return _series_of(e.left) + _series_of(e.right)
    if isinstance(e, A.Neg):
        return _series_of(e.operand)
    return []


class _Compiler:
    def __init__(self, rs: A.Ruleset, source: str, sha: str):
        self.rs = rs
        self.source = source
        self.sha = sha

    def build(self) -> CompiledRuleset:
        rs = self.rs
        tariffs = {t.name: self.tariff(t) for t in rs.tariffs}
        discounts = [self.discount(d, i) for i, d in enumerate(rs.discounts)]
        products = {p.name: self.product(p) for p in rs.products}
        compiled = CompiledRuleset(rs, self.source, self.sha, tariffs, discounts, products,
                                   rs.default_tariff.value if rs.default_tariff else None)
        return compiled

    def tariff(self, t: A.Tariff) -> TariffProgram:
        rs = self.rs
        vat = t.vat if t.vat is not None else (
            CLASS_PLACEHOLDERS[t.vat_class] if t.vat_class is not None else Decimal(0))
        by_kind: dict[str, list[PricedRule]] = {}
        energies: set[Decimal] = set()
        needs_time = needs_power = False
        # where a price can change, per volume group: charging volumes (energy, time, reservation)
        # are cut only at their rules' boundaries, parking time only at the parking rules'
        group_of = {"energy": "charge", "time": "charge", "reservation": "charge", "parking": "park"}
        spec: dict[str, dict[str, set[Any]]] = {g: {"day": set(), "dur": set(), "series": set(), "time": set()}
                                                for g in ("charge", "park")}
        for idx, rule in enumerate(t.rules):
            pred = None
            r_day: set[int] = set()
            r_dur: set[int] = set()
            r_time = False
            if rule.condition is not None and not (isinstance(rule.condition, A.Atom)
                                                   and rule.condition.kind == "always"):
                pred = _Codegen(rs).function(rule.condition)
                for a in walk_atoms(rule.condition):
                    if a.kind == "time":
                        r_day.update((_sod(str(a.args[0])) % 86400, _sod(str(a.args[1])) % 86400))
                        r_time = True
                    elif a.kind in ("days", "date", "holiday"):
                        r_day.add(0)
                        r_time = True
                    elif a.kind == "duration":
                        v = a.args[1]
                        assert isinstance(v, Decimal)
                        r_dur.add(int(v * UNIT_SIZE[str(a.args[2])] * 1000))
                    elif a.kind == "energy":
                        v = a.args[1]
                        assert isinstance(v, Decimal)
                        energies.add(v * UNIT_SIZE[str(a.args[2])])
                    elif a.kind in ("power", "current"):
                        needs_power = True
            needs_time = needs_time or r_time
            for cd in rule.components:
                const, fn = _price_fn(cd.price)
                grace_ms = grace_idle = None
                if cd.after is not None:
                    amount, unit, idle = cd.after
                    if idle:
                        grace_idle = amount * UNIT_SIZE[unit]
                    else:
                        grace_ms = int(amount * UNIT_SIZE[unit] * 1000)
                group = group_of.get(cd.kind)
                if group is not None:
                    g = spec[group]
                    g["day"].update(r_day)
                    g["dur"].update(r_dur)
                    if grace_ms is not None:
                        g["dur"].add(grace_ms)
                    g["series"].update(_series_of(cd.price))
                    if r_time:
                        g["time"].add(True)
                step = cd.step[0] * UNIT_SIZE[cd.step[1]] if cd.step is not None else None
                label = f"tariff {t.name}, line {cd.span.line}: " + (
                    rule.label if rule.condition is not None else "base")
                title = cd.title or _default_title(cd, rule)
                by_kind.setdefault(cd.kind, []).append(PricedRule(
                    kind=cd.kind, label=label, title=title, predicate=pred, price=const, price_fn=fn,
                    unit=cd.unit, vat=cd.vat if cd.vat is not None else (
                        CLASS_PLACEHOLDERS[cd.vat_class] if cd.vat_class is not None else vat), step=step,
                    grace_ms=grace_ms, grace_idle=grace_idle, cap=cd.cap, rule_index=idx))

        def cut_spec(g: dict[str, set[Any]]) -> CutSpec:
            return CutSpec(tuple(sorted(g["day"])), tuple(sorted(g["dur"])), tuple(sorted(g["series"])),
                           bool(g["time"]))

        charge, park = cut_spec(spec["charge"]), cut_spec(spec["park"])
        dynamic = bool(energies or charge.any or park.any)
        return TariffProgram(
            name=t.name, title=t.title, currency=rs.currency, timezone=rs.timezone,
            rules={k: tuple(v) for k, v in by_kind.items()}, vat=vat, min_price=t.min_price, max_price=t.max_price,
            charge_cuts=charge, park_cuts=park, energy_kwh=tuple(sorted(energies)), dynamic=dynamic,
            needs_local_time=needs_time, needs_power=needs_power, legal_for_trade=t.legal_for_trade)

    def discount(self, d: A.Discount, order: int) -> DiscountProgram:
        pred = _Codegen(self.rs).function(d.condition) if d.condition is not None else None
        return DiscountProgram(
            name=d.name, title=d.title, label=f"discount {d.name}, line {d.span.line}", target=d.target,
            percent=d.percent, fixed=d.fixed, predicate=pred,
            valid_from=date.fromisoformat(d.valid_from).toordinal() if d.valid_from else None,
            valid_until=date.fromisoformat(d.valid_until).toordinal() if d.valid_until else None,
            once=d.once, exclusive=d.exclusive, priority=d.priority, code=d.code, budget=d.budget,
            budget_uses=d.budget_uses, tariffs=frozenset(n.value for n in d.tariffs), order=order,
            needs_time=any(a.kind in ("time", "days", "date", "holiday") for a in walk_atoms(d.condition)))

    def product(self, p: A.Product) -> ProductProgram:
        vat = p.vat
        if vat is None and p.tariff is not None:
            t = next((t for t in self.rs.tariffs if t.name == p.tariff.value), None)
            vat = t.vat if t is not None else None
        return ProductProgram(
            name=p.name, title=p.title, tariff=p.tariff.value if p.tariff else None, fee=p.fee,
            included_kwh=p.included_kwh, included_sessions=p.included_sessions, tier_mode=p.tier_mode,
            tiers=tuple((t.lower, t.upper, t.price) for t in p.tiers), vat=vat if vat is not None else Decimal(0),
            label=f"product {p.name}, line {p.span.line}")


_TITLES = {"start_fee": "Start fee", "flat": "Flat fee", "energy": "Energy", "time": "Charging time",
           "parking": "Parking time", "reservation": "Reservation time", "reservation_fee": "Reservation fee"}


def _default_title(cd: A.ComponentDef, rule: A.Rule) -> str:
    base = _TITLES[cd.kind]
    if rule.condition is not None:
        return f"{base} ({cond_text(rule.condition)})"
    return base

