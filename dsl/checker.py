"""Semantic checks on a parsed ruleset. Returns diagnostics; never raises for bad input."""

from __future__ import annotations

from decimal import Decimal
from typing import Iterable, Iterator

from dsl import ast as A
from dsl.diagnostics import Diagnostic, suggest
from runtime.money import MINOR_UNITS, ROUNDING_MODES

# a typo is most likely one of the currencies charging businesses bill in: among all ISO 4217 codes
# a three-letter typo is as close to many exotic ones ('EUX' to 'UGX' as to 'EUR')
_COMMON_CURRENCIES = ("EUR", "CHF", "GBP", "USD", "SEK", "NOK", "DKK", "PLN", "CZK", "HUF", "RON", "BGN",
                      "ISK", "JPY", "CAD", "AUD", "NZD", "TRY", "RSD", "UAH", "CNY", "INR", "BRL", "MXN", "ZAR")

__all__ = ["check", "TOKEN_TYPES", "walk_atoms"]

TOKEN_TYPES = ("rfid", "app", "emaid", "adhoc", "adhoc_user", "app_user", "ad_hoc", "other", "card", "plug_and_charge",
               "credit_card", "qr")
_ENERGY_UNITS = ("kWh", "Wh", "MWh")
_TIME_UNITS = ("min", "h", "s", "days")
_VOLUME_UNITS = {"energy": _ENERGY_UNITS, "time": _TIME_UNITS, "parking": _TIME_UNITS,
                 "reservation": _TIME_UNITS}

# policy kinds and the words a statement may start with (their full structure is checked by the
# issues that give them meaning; unknown leading words are reported now so typos surface early)
POLICY_STARTS: dict[str, tuple[str, ...]] = {
    "tax": ("country", "vat", "reduced", "reverse_charge", "exempt", "zero", "from", "rate"),
    "billing": ("cycle", "cut_off", "payment_terms", "terms", "timezone", "day", "series", "currency",
                "invoice", "hold", "format", "group", "net", "end_of_month", "auto_release", "approval"),
    "hold": ("when", "hold", "auto_release", "approval", "escalate", "release", "threshold", "jump", "flag"),
    "dunning": ("stage", "ignore", "minimum", "fee", "interest", "escalate", "pause", "approval"),
    "revenue_share": ("sites", "site", "locations", "location", "host", "reimburse", "payout", "partner",
                      "statement", "commission", "minimum", "fee", "net", "of"),
    "commission": ("per", "monthly", "partner", "profile", "site", "sites", "badge", "rate", "flat", "for"),
    "service": ("dc_charger", "ac_charger", "sim", "rfid_card", "maintenance", "installation", "charger",
                "fee", "product", "per", "item", "vat", "prorate"),
    "reimbursement": ("sites", "site", "host", "energy", "rate", "reimburse", "for", "per", "index"),
}


def walk_atoms(c: A.Cond | None) -> Iterator[A.Atom]:
    if c is None:
        return
    if isinstance(c, A.Atom):
        yield c
    elif isinstance(c, (A.And, A.Or)):
        for x in c.items:
            yield from walk_atoms(x)
    else:
        yield from walk_atoms(c.item)


def _index_refs(e: A.PriceExpr) -> Iterator[A.Index]:
    if isinstance(e, A.Index):
        yield e
    elif isinstance(e, A.BinOp):
        yield from _index_refs(e.left)
        yield from _index_refs(e.right)
    elif isinstance(e, A.Neg):
        yield from _index_refs(e.operand)


class _Checker:
    def __init__(self, rs: A.Ruleset, filename: str):
        self.rs = rs
        self.file = filename
        self.out: list[Diagnostic] = []
        self.groups = {g.value for g in rs.groups}
        self.partners = {p.value for p in rs.partners}
        self.series = {s.value for s in rs.series}
        self.tariffs = {t.name for t in rs.tariffs}
        self.products = {p.name for p in rs.products}
        self.used_groups: set[str] = set()
        self.used_series: set[str] = set()

    def err(self, code: str, msg: str, span: A.Span, hint: str | None = None) -> None:
        self.out.append(Diagnostic(code, "error", msg, span, hint, self.file))

    def warn(self, code: str, msg: str, span: A.Span, hint: str | None = None) -> None:
        self.out.append(Diagnostic(code, "warning", msg, span, hint, self.file))

    def header_span(self, key: str) -> A.Span:
        for k, sp in self.rs.header_spans:
            if k == key:
                return sp
        return self.rs.span

    # ------------------------------------------------------------ entry
    def run(self) -> list[Diagnostic]:
        rs = self.rs
        if not rs.currency:
            self.err("E304", "the ruleset names no currency", self.header_span("name"),
                     "add 'currency EUR' after the ruleset name")
        elif rs.currency not in MINOR_UNITS:
            self.err("E304", f"unknown currency '{rs.currency}'", self.header_span("currency"),
                     suggest(rs.currency, _COMMON_CURRENCIES) or suggest(rs.currency, MINOR_UNITS)
                     or "use an ISO 4217 code such as EUR")
        if not rs.timezone:
            self.err("E206", "the ruleset names no time zone", self.header_span("name"),
                     "add 'timezone Europe/Berlin' (an IANA zone) after the ruleset name")
        else:
            self._zone(rs.timezone, self.header_span("timezone"))
        if rs.rounding not in ROUNDING_MODES:
            self.err("E210", f"unknown rounding mode '{rs.rounding}'", self.header_span("rounding"),
                     suggest(rs.rounding, ROUNDING_MODES) or f"use one of: {', '.join(ROUNDING_MODES)}")
        if rs.holidays:
            self._region(rs.holidays, self.header_span("holidays"))
        self._duplicates()
        if rs.default_tariff and rs.default_tariff.value not in self.tariffs:
            self._unknown("E202", "tariff", rs.default_tariff, self.tariffs)
        for t in rs.tariffs:
            self._tariff(t)
        for d in rs.discounts:
            self._discount(d)
        for p in rs.products:
            self._product(p)
        for pol in rs.policies:
            self._policy(pol)
        if any(p.kind == "service" for p in rs.policies):
            from dsl.policies import service_diagnostics  # the billing cycle reads service blocks

            self.out.extend(service_diagnostics(rs, self.file))
        for g in rs.groups:
            if g.value not in self.used_groups:
                self.warn("W005", f"customer group '{g.value}' is declared but never used", g.span)
        for s in rs.series:
            if s.value not in self.used_series:
                self.warn("W005", f"price series '{s.value}' is declared but never used", s.span)
        return self.out

    def _zone(self, name: str, span: A.Span) -> None:
        from zoneinfo import ZoneInfo, available_timezones

        try:
            ZoneInfo(name)
        except Exception:  # noqa: BLE001 - any failure means the zone is unusable
            self.err("E206", f"unknown time zone '{name}'", span,
                     suggest(name, available_timezones()) or "use an IANA zone such as Europe/Berlin")

    def _region(self, region: str, span: A.Span) -> None:
        import holidays

        country, _, sub = region.partition("-")
        supported = holidays.list_supported_countries()
        if country not in supported:
            self.err("E207", f"unknown holiday region '{region}'", span,
                     suggest(country, supported) or "use a country code such as DE or DE-BE")
        elif sub and sub not in supported[country]:
            close = suggest(sub, supported[country])
            subs = ", ".join(supported[country][:12])
            self.err("E207", f"unknown holiday region '{region}'", span,
                     close.replace("'", f"'{country}-", 1) if close else f"subdivisions of {country}: {subs}")

    def _unknown(self, code: str, what: str, n: A.Named, known: Iterable[str]) -> None:
        self.err(code, f"unknown {what} '{n.value}'", n.span, suggest(n.value, known))

    def _duplicates(self) -> None:
        seen: dict[str, A.Span] = {}
        items: list[tuple[str, str, A.Span]] = []
        items += [("tariff", t.name, t.name_span) for t in self.rs.tariffs]
        items += [("discount", d.name, d.name_span) for d in self.rs.discounts]
        items += [("product", p.name, p.name_span) for p in self.rs.products]
        items += [(p.kind, p.name, p.span) for p in self.rs.policies]
        for kind, name, span in items:
            key = f"{kind}:{name}"
            if key in seen:
                self.err("E204", f"{kind} '{name}' is defined twice", span,
                         f"the first definition is on line {seen[key].line}")
            else:
                seen[key] = span

    # ------------------------------------------------------------ tariffs
    def _tariff(self, t: A.Tariff) -> None:
        priced_any = False
        tspans = dict(t.opt_spans)
        if t.vat is not None:
            self._percent(t.vat, tspans.get("vat", t.span))
        seen_unconditional: dict[str, A.Span] = {}
        prev_conds: dict[str, list[tuple[A.Cond, A.Span]]] = {}
        for rule in t.rules:
            kinds: dict[str, A.Span] = {}
            if rule.condition is not None:
                self._cond(rule.condition)
            for cd in rule.components:
                priced_any = True
                if cd.kind in kinds:
                    self.err("E211", f"'{cd.kind}' is defined twice in one rule", cd.span,
                             f"the first is on line {kinds[cd.kind].line}; only the first would ever apply")
                    continue
                kinds[cd.kind] = cd.span
                self._component(cd)
                if rule.condition is not None:
                    if cd.kind in seen_unconditional:
                        self.warn("W001", f"this '{cd.kind}' rule can never apply", cd.span,
                                  f"an unconditional rule on line {seen_unconditional[cd.kind].line} comes first")
                    elif _is_always(rule.condition):
                        seen_unconditional[cd.kind] = cd.span
                    else:
                        for pc, psp in prev_conds.get(cd.kind, []):
                            if _same_or_wider(pc, rule.condition):
                                self.warn("W001", f"this '{cd.kind}' rule can never apply", cd.span,
                                          f"the rule on line {psp.line} matches whenever this one does")
                                break
                            if _overlap(pc, rule.condition):
                                self.warn("W002", f"'{cd.kind}' rules overlap: the rule on line {psp.line} "
                                                  "wins where both match", cd.span)
                                break
                        prev_conds.setdefault(cd.kind, []).append((rule.condition, cd.span))
        if not priced_any:
            self.warn("W004", f"tariff '{t.name}' prices nothing", t.name_span,
                      "add a component such as 'energy 0.49 per kWh'")
        elif t.vat is None and not all(cd.vat is not None for r in t.rules for cd in r.components):
            self.warn("W003", f"tariff '{t.name}' has no VAT rate; its lines carry 0%", t.name_span,
                      "add 'vat 19%' (or 'vat 0%' to say so explicitly)")
        for key, bound in (("min_price", t.min_price), ("max_price", t.max_price)):
            if bound is not None and bound[0] < 0:
                self.err("E310", f"{key} cannot be negative", tspans.get(key, t.span))
        if t.min_price and t.max_price and t.min_price[0] > t.max_price[0]:
            self.err("E308", f"min_price {t.min_price[0]} is above max_price {t.max_price[0]}",
                     tspans.get("max_price", t.span), f"the minimum is set on line {tspans['min_price'].line}")

    def _component(self, cd: A.ComponentDef) -> None:
        for ix in _index_refs(cd.price):
            self.used_series.add(ix.series)
            if ix.series not in self.series:
                self.err("E203", f"unknown price series '{ix.series}'", ix.span,
                         suggest(ix.series, self.series) or f"declare it: 'series {ix.series}'")
        allowed = _VOLUME_UNITS.get(cd.kind)
        if allowed is not None and cd.unit not in allowed:
            want = "kWh, Wh or MWh" if allowed is _ENERGY_UNITS else "min, h, s or days"
            self.err("E301", f"'{cd.kind}' must be priced per {want}, found 'per {cd.unit}'", cd.span)
        opt_span = dict(cd.opt_spans)
        if cd.step is not None:
            amount, unit = cd.step
            if allowed is None:
                self.err("E302", f"'{cd.kind}' is charged once per session and takes no step", opt_span["step"])
            elif unit not in allowed:
                self.err("E302", f"the step of '{cd.kind}' must be in {'/'.join(allowed)}, found '{unit}'",
                         opt_span["step"])
            elif amount <= 0:
                self.err("E310", "a step must be greater than zero", opt_span["step"])
        if cd.after is not None:
            amount, unit, idle = cd.after
            if allowed is None:
                self.err("E302", f"'{cd.kind}' is charged once per session and takes no grace period",
                         opt_span["after"])
            elif (idle and unit not in allowed) or (not idle and unit not in _TIME_UNITS):
                self.err("E302", f"the grace of '{cd.kind}' must be in {'/'.join(allowed)}", opt_span["after"])
        if cd.vat is not None:
            self._percent(cd.vat, opt_span.get("vat", cd.span))
        if cd.cap is not None and cd.cap < 0:
            self.err("E310", "a cap cannot be negative", opt_span.get("cap", cd.span))

    def _percent(self, p: Decimal, span: A.Span) -> None:
        if not (0 <= p <= 100):
            self.err("E303", f"percentage {p}% is out of range", span, "use 0% to 100%")

    # ------------------------------------------------------------ conditions
    def _cond(self, c: A.Cond) -> None:
        for a in walk_atoms(c):
            if a.kind == "group":
                for n in a.names:
                    self.used_groups.add(n.value)
                    if n.value not in self.groups:
                        self.err("E201", f"unknown customer group '{n.value}'", n.span,
                                 suggest(n.value, self.groups) or f"declare it: 'groups {n.value}'")
            elif a.kind == "product":
                for n in a.names:
                    if n.value not in self.products:
                        self._unknown("E205", "product", n, self.products)
            elif a.kind == "partner" and self.partners:
                for n in a.names:
                    if not any(ch in n.value for ch in "*?") and n.value not in self.partners:
                        self._unknown("E208", "partner", n, self.partners)
            elif a.kind == "token":
                for n in a.names:
                    if n.value.lower() not in TOKEN_TYPES:
                        self.err("E209", f"unknown token type '{n.value}'", n.span,
                                 suggest(n.value.lower(), TOKEN_TYPES) or f"use one of: {', '.join(TOKEN_TYPES[:5])}")
            elif a.kind == "holiday":
                if a.names:
                    self._region(a.names[0].value, a.names[0].span)
                elif not self.rs.holidays:
                    self.err("E207", "'holiday' needs a region", a.span,
                             "write 'holiday DE-BE' or declare 'holidays DE-BE' in the ruleset header")
            elif a.kind == "date":
                start, end = a.args
                if end is not None and str(end) <= str(start):
                    self.err("E306", f"date range {start}..{end} is empty", a.span, "the end date is exclusive")
            elif a.kind in ("power", "current", "energy", "duration"):
                op = a.args[0]
                if a.kind == "energy" and a.args[2] not in _ENERGY_UNITS:
                    self.err("E301", f"energy is measured in kWh, found '{a.args[2]}'", a.span)
                if a.kind == "duration" and a.args[2] not in _TIME_UNITS:
                    self.err("E301", f"duration is measured in min, h or s, found '{a.args[2]}'", a.span)
                if op in ("=", "!=") and a.kind in ("energy", "duration"):
                    self.err("E310", f"'{a.kind} {op}' compares continuous quantities exactly", a.span,
                             "use >=, >, < or <=")

    # ------------------------------------------------------------ discounts
    def _discount(self, d: A.Discount) -> None:
        spans = dict(d.clause_spans)
        if d.percent is None and d.fixed is None:
            self.err("E309", f"discount '{d.name}' has no amount", d.name_span,
                     "add e.g. '10% off energy' or '2.00 off session'")
        if d.percent is not None:
            self._percent(d.percent, spans.get("percent", d.span))
        if d.condition is not None:
            self._cond(d.condition)
        if d.valid_from and d.valid_until and d.valid_until <= d.valid_from:
            self.err("E306", f"validity {d.valid_from}..{d.valid_until} is empty",
                     spans.get("valid_from", d.span), "the end date is exclusive")
        for n in d.tariffs:
            if n.value not in self.tariffs:
                self._unknown("E202", "tariff", n, self.tariffs)
        if d.budget is not None and d.budget <= 0:
            self.err("E310", "a budget must be greater than zero", spans.get("budget", d.span))

    # ------------------------------------------------------------ products
    def _product(self, p: A.Product) -> None:
        if p.tariff is not None and p.tariff.value not in self.tariffs:
            self._unknown("E202", "tariff", p.tariff, self.tariffs)
        if p.vat is not None:
            self._percent(p.vat, p.span)
        if p.tiers:
            expect = Decimal(0)
            for i, tier in enumerate(p.tiers):
                if tier.lower != expect:
                    self.err("E307", f"tier starts at {tier.lower} kWh but the previous one ends at {expect} kWh",
                             tier.span, "tiers must start at 0 and each start where the previous ends")
                    break
                if tier.upper is None:
                    if i != len(p.tiers) - 1:
                        self.err("E307", "an open-ended tier must be the last one", tier.span)
                    break
                if tier.upper <= tier.lower:
                    self.err("E306", f"tier {tier.lower}..{tier.upper} is empty", tier.span)
                    break
                expect = tier.upper

    # ------------------------------------------------------------ policies
    def _policy(self, pol: A.Policy) -> None:
        starts = POLICY_STARTS.get(pol.kind, ())
        for st in pol.statements:
            first = st.words[0]
            if first.kind == "word" and starts and first.value not in starts:
                self.err("E212", f"unknown {pol.kind} statement '{first.value}'", first.span,
                         suggest(first.value, starts) or f"statements start with: {', '.join(starts[:8])}")
            for w in st.words:
                if w.kind == "index":
                    self.used_series.add(w.value)
                    if w.value not in self.series:
                        self.err("E203", f"unknown price series '{w.value}'", w.span,
                                 suggest(w.value, self.series) or f"declare it: 'series {w.value}'")
                elif w.kind == "percent" and not (pol.kind == "hold" and first.value in ("hold", "when")):
                    # a hold rule's jump against the previous period may well exceed 100%
                    self._percent(Decimal(w.value.rstrip("%")), w.span)


def _is_always(c: A.Cond) -> bool:
    return isinstance(c, A.Atom) and c.kind == "always"


def _same_or_wider(first: A.Cond, later: A.Cond) -> bool:
    """True when ``first`` certainly matches whenever ``later`` does (so ``later`` is unreachable)."""
    from dsl.printer import cond_text

    if cond_text(first) == cond_text(later):
        return True
    if isinstance(later, A.And):
        return any(cond_text(first) == cond_text(x) for x in later.items)
    return False


def _overlap(a: A.Cond, b: A.Cond) -> bool:
    """Two plain time windows that share some minutes (a common analyst slip)."""
    if isinstance(a, A.Atom) and isinstance(b, A.Atom) and a.kind == b.kind == "time":
        ma, mb = _minutes(a), _minutes(b)
        return bool(ma & mb)
    return False


def _minutes(a: A.Atom) -> set[int]:
    def m(t: object) -> int:
        h, mm = str(t).split(":")
        return int(h) * 60 + int(mm)

    s, e = m(a.args[0]), m(a.args[1])
    if s == e:
        return set(range(1440))
    if s < e:
        return set(range(s, e))
    return set(range(s, 1440)) | set(range(0, e))


def check(rs: A.Ruleset, filename: str = "<ruleset>") -> list[Diagnostic]:
    return _Checker(rs, filename).run()
