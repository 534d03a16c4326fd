"""Semantic checks on a parsed ruleset. Returns diagnostics; never raises for bad input."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal

from dsl import ast as A
from dsl.diagnostics import Diagnostic, suggest
from runtime.money import MINOR_UNITS, ROUNDING_MODES
from runtime.tax import exemption

# a typo is most likely one of the currencies charging businesses bill in: among all ISO 4217 codes
# a three-letter typo is as close to many exotic ones ('EUX' to 'UGX' as to 'EUR')
_COMMON_CURRENCIES = ("EUR", "CHF", "GBP", "USD", "SEK", "NOK", "DKK", "PLN", "CZK", "HUF", "RON", "BGN",
                      "ISK", "JPY", "CAD", "AUD", "NZD", "TRY", "RSD", "UAH", "CNY", "INR", "BRL", "MXN", "ZAR")

__all__ = ["TOKEN_TYPES", "check", "check_policies", "walk_atoms"]

TOKEN_TYPES = ("rfid", "app", "emaid", "adhoc", "adhoc_user", "app_user", "ad_hoc", "other", "card", "plug_and_charge",
               "credit_card", "qr")
_ENERGY_UNITS = ("kWh", "Wh", "MWh")
_TIME_UNITS = ("min", "h", "s", "days")
_VOLUME_UNITS = {"energy": _ENERGY_UNITS, "time": _TIME_UNITS, "parking": _TIME_UNITS,
                 "reservation": _TIME_UNITS}

# closed sets of spellings in policy statements (the grammar reads them as names, so that a typo
# gets a suggestion here rather than a bare syntax error)
TIME_UNITS: dict[str, int] = {"minute": 60, "minutes": 60, "min": 60, "hour": 3600, "hours": 3600, "h": 3600,
                              "day": 86400, "days": 86400, "d": 86400}
DUNNING_ANCHORS = ("due_date", "previous_stage")
DUNNING_ACTIONS = ("block_tokens", "suspend_contract", "hand_over")
DEBTORS = ("consumers", "businesses")
SHARE_PER = {"kWh": "per_kwh", "kwh": "per_kwh", "session": "per_session", "sessions": "per_session",
             "month": "monthly_fee"}
COMMISSION_PER = ("session", "transaction", "kWh", "month")
PARTIES = {"charge": ("host", "emsp"), "pay": ("partner", "host", "emsp")}


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
    def __init__(self, rs: A.Ruleset, filename: str, partial: frozenset[str] = frozenset()):
        self.rs = rs
        self.partial = partial
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
            from dsl.policies import service_warnings  # the VAT a service inherits is billing's rule

            self.out.extend(service_warnings(rs, self.file))
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
        items += [(p.kind, p.name, p.name_span) for p in self.rs.policies]
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
        if t.vat is not None and t.vat_class is not None:
            self.err("E310", f"tariff '{t.name}' states its VAT twice", tspans.get("vat_class", t.span),
                     f"'vat {t.vat_class}' takes the location country's rate on the day; drop it or "
                     f"the fixed 'vat {t.vat}%'")
        for key, bound in (("min_price", t.min_price), ("max_price", t.max_price)):
            classes = t.vat_class is not None or any(cd.vat_class for r in t.rules for cd in r.components)
            if bound is not None and bound[1] is not None and classes:
                self.err("E310", f"'{key} ... incl' needs a fixed VAT rate, not a rate class",
                         tspans.get(key, t.span), "state the tariff's VAT as a number, e.g. 'vat 19%'")
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
        elif t.vat is None and t.vat_class is None and not all(
                cd.vat is not None or cd.vat_class is not None for r in t.rules for cd in r.components):
            self.warn("W003", f"tariff '{t.name}' has no VAT rate; its lines carry 0%", t.name_span,
                      "add 'vat 19%' (or 'vat 0%' to say so explicitly)")
        if t.legal_for_trade and priced_any and not any(cd.kind == "energy" for r in t.rules for cd in r.components):
            self.warn("W006", f"tariff '{t.name}' is legal_for_trade but prices no energy", tspans["legal_for_trade"],
                      "the signed readings change no amount; sessions without valid signed data are held all the same")
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
            if cd.vat_class is not None:
                self.err("E310", f"'{cd.kind}' states its VAT twice", opt_span.get("vat_class", cd.span),
                         "give a rate ('vat 7%') or a class ('vat reduced'), not both")
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
        if d.percent is None and d.fixed is None and f"discount:{d.name}" not in self.partial:
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
        getattr(self, f"_policy_{pol.kind}")(pol)

    def _once(self, pol: A.Policy, what: str, stmts: Iterable[A.PolicyStmt]) -> None:
        """A statement that sets one thing of the block may be written once."""
        items = list(stmts)
        for extra in items[1:]:
            self.err("E212", f"{pol.kind} '{pol.name}' states its {what} twice", extra.span,
                     f"the first is on line {items[0].span.line}; keep one")

    def _choice(self, n: A.Named, allowed: Iterable[str], what: str) -> bool:
        options = tuple(allowed)
        if n.value in options:
            return True
        self.err("E310", f"unknown {what} '{n.value}'", n.span,
                 suggest(n.value, options) or f"use one of: {', '.join(options)}")
        return False

    def _whole(self, n: A.Num, lo: int, hi: int, what: str) -> None:
        if n.value != n.value.to_integral_value():
            self.err("E310", f"{what} must be a whole number, found '{n.value}'", n.span)
        elif not lo <= n.value <= hi:
            self.err("E310", f"{what} {n.value} is out of range", n.span, f"use {lo}..{hi}")

    def _duration(self, d: A.Duration) -> None:
        if self._choice(d.unit, TIME_UNITS, "time unit") and d.amount.value <= 0:
            self.err("E310", f"a waiting time must be positive, found '{d.amount.value}'", d.amount.span)

    def _groups(self, names: Iterable[A.Named]) -> None:
        for n in names:
            self.used_groups.add(n.value)
            if n.value not in self.groups:
                self.err("E201", f"unknown customer group '{n.value}'", n.span,
                         suggest(n.value, self.groups) or f"declare it: 'groups {n.value}'")

    def _price(self, e: A.PriceExpr) -> None:
        for ix in _index_refs(e):
            self.used_series.add(ix.series)
            if ix.series not in self.series:
                self.err("E203", f"unknown price series '{ix.series}'", ix.span,
                         suggest(ix.series, self.series) or f"declare it: 'series {ix.series}'")

    def _valid(self, start: str | None, end: str | None, span: A.Span) -> None:
        if start and end and end <= start:
            self.err("E306", f"validity {start}..{end} is empty", span, "the end date is exclusive")

    def _policy_billing(self, pol: A.Policy) -> None:
        from runtime.invoicing import CYCLES

        self._once(pol, "cycle", pol.of(A.BillingCycle))
        self._once(pol, "cut-off day", pol.of(A.CutOff))
        self._once(pol, "time zone", pol.of(A.BillingZone))
        self._once(pol, "payment terms", pol.of(A.Terms))
        for st in pol.statements:
            if isinstance(st, A.BillingCycle):
                if st.cycle.value not in CYCLES:
                    self.err("E310", f"unknown billing cycle '{st.cycle.value}'", st.cycle.span,
                             suggest(st.cycle.value, CYCLES) or f"use one of: {', '.join(CYCLES)}")
            elif isinstance(st, A.CutOff):
                self._whole(st.day, 1, 28, "cut-off day")
            elif isinstance(st, A.BillingZone):
                self._zone(st.zone.value, st.zone.span)
            elif isinstance(st, A.Terms) and st.days is not None:
                self._whole(st.days, 0, 365, "payment terms of")

    def _policy_hold(self, pol: A.Policy) -> None:
        self._once(pol, "auto-release", pol.of(A.AutoRelease))
        self._once(pol, "escalation", pol.of(A.Escalate))
        for st in pol.statements:
            if isinstance(st, A.HoldWhen) and st.kind in ("total", "jump") and st.op not in (">", ">="):
                self.err("E310", f"a hold rule holds above a threshold: use '>' or '>=', not '{st.op}'", st.span)
            elif isinstance(st, A.HoldWhen) and st.kind == "jump" and st.percent is not None \
                    and st.percent.value <= 0:
                # a jump against the previous period may well exceed 100%: no upper bound
                self.err("E303", f"a jump threshold must be positive, found '{st.percent.value}%'", st.percent.span)
            elif isinstance(st, (A.AutoRelease, A.Escalate)):
                self._duration(st.after)
        if bool(pol.of(A.Approval)) and bool(pol.of(A.AutoRelease)):
            self.err("E212", "a hold policy cannot both require approval and release on its own", pol.span,
                     "keep either 'approval required' or 'auto_release after N days'")

    def _policy_dunning(self, pol: A.Policy) -> None:
        stages = pol.of(A.Stage)
        whole = f"dunning:{pol.name}" not in self.partial
        if not stages and whole:
            self.err("E212", f"dunning '{pol.name}' has no stage", pol.name_span,
                     "add e.g. 'stage 1 after 7 days reminder'")
        for i, st in enumerate(stages, start=1):
            if st.number.value != i and whole:
                self.err("E310", f"stage {st.number.value} should be stage {i}", st.number.span,
                         "number the stages 1, 2, 3, ... in the order they run")
            self._duration(st.after)
            if st.anchor is not None:
                self._choice(st.anchor, DUNNING_ANCHORS, "waiting start")
            if st.fee is not None and st.fee.value < 0:
                self.err("E310", "a dunning fee cannot be negative", st.fee.span)
            if st.fee_vat is not None:
                self._percent(st.fee_vat.value, st.fee_vat.span)
            for a in st.actions:
                self._choice(a, DUNNING_ACTIONS, "dunning action")
            self._options_once(f"stage {st.number.value}", st.opt_spans)
        self._once(pol, "minimum amount", pol.of(A.MinimumAmount))
        self._once(pol, "grace period", pol.of(A.Grace))
        self._once(pol, "customer groups", pol.of(A.ForGroups))
        for st2 in pol.statements:
            if isinstance(st2, A.MinimumAmount) and st2.amount.value < 0:
                self.err("E310", "a minimum amount cannot be negative", st2.amount.span)
            elif isinstance(st2, (A.Grace, A.Escalate)):
                self._duration(st2.after)
            elif isinstance(st2, (A.Interest, A.FlatFee)) and st2.debtors is not None:
                self._choice(st2.debtors, DEBTORS, "kind of debtor")
            elif isinstance(st2, A.Interest) and st2.points.value > 100:
                self.err("E310", f"{st2.points.value} points over the base rate is out of range", st2.points.span,
                         "German law sets 5 (consumers) or 9 (businesses)")
            elif isinstance(st2, A.ForGroups):
                self._groups(st2.groups)
            elif isinstance(st2, A.BaseRate):
                if not -20 <= st2.rate.value <= 50:
                    self.err("E310", f"a base rate of {st2.rate.value}% is out of range", st2.rate.span,
                             "the base rate is a percentage per year, e.g. 'base rate 1.27% valid 2025-07-01..'")
                if st2.valid_until is not None and st2.valid_until <= st2.valid_from:
                    self.err("E310", f"the base rate's validity ends before it starts ({st2.valid_from}.."
                             f"{st2.valid_until})", st2.span)

    def _policy_tax(self, pol: A.Policy) -> None:
        seen: dict[tuple[str, str], list[A.VatRate]] = {}
        for st in pol.statements:
            if isinstance(st, A.VatRate):
                if len(st.country.value) != 2 or not st.country.value.isupper():
                    self.err("E310", f"'{st.country.value}' is not a country code", st.country.span,
                             "use a two-letter ISO 3166 code such as DE")
                self._percent(st.rate.value, st.rate.span)
                self._valid(st.valid_from, st.valid_until, st.span)
                for other in seen.get((st.country.value, st.category), []):
                    if _dates_overlap(other.valid_from, other.valid_until, st.valid_from, st.valid_until):
                        self.err("E310", f"two {st.category} rates for {st.country.value} apply at the same time",
                                 st.span, f"the other is on line {other.span.line}; give each a 'valid FROM..UNTIL'")
                        break
                seen.setdefault((st.country.value, st.category), []).append(st)
            elif isinstance(st, (A.ReverseCharge, A.TaxExempt)):
                self._groups(st.groups)
                if isinstance(st, A.TaxExempt) and st.code:
                    try:
                        exemption(st.code)
                    except ValueError:
                        self.err("E310", f"'{st.code}' is not the VATEX code of an exemption", st.span,
                                 "e.g. VATEX-EU-132 (Article 132), VATEX-EU-143, VATEX-EU-148; reverse charge "
                                 "and exports are decided per customer, not stated")

    def _policy_revenue_share(self, pol: A.Policy) -> None:
        terms: dict[str, A.PolicyStmt] = {}

        def term(key: str, st: A.PolicyStmt) -> None:
            if key in terms:
                self.err("E212", f"'{st.text()}' repeats a term of this block", st.span,
                         f"the first is on line {terms[key].span.line}; state each term once")
            else:
                terms[key] = st

        for st in pol.statements:
            if isinstance(st, A.HostShare) and st.percent is not None:
                if st.percent.value > 100:
                    self.err("E310", f"a share of {st.percent.value}% is out of range", st.percent.span,
                             "use 0%..100%")
                term("percent", st)
            elif isinstance(st, A.HostShare) and st.per is not None:
                if self._choice(st.per, SHARE_PER, "share unit"):
                    term(SHARE_PER[st.per.value], st)
            elif isinstance(st, A.EnergyPrice):
                self._energy_price(st)
                if st.condition is None:
                    term("reimburse", st)
            elif isinstance(st, A.CommissionRef):
                blocks = {p.name for p in self.rs.policies if p.kind == "commission"}
                for n in st.names:
                    if n.value not in blocks:
                        self._unknown("E202", "commission", n, blocks)

    def _energy_price(self, st: A.EnergyPrice) -> None:
        self._price(st.price)
        if st.condition is not None:
            self._cond(st.condition)

    def _policy_reimbursement(self, pol: A.Policy) -> None:
        for st in pol.statements:
            if isinstance(st, A.EnergyPrice):
                self._energy_price(st)
            elif isinstance(st, A.ForGroups):
                self._groups(st.groups)
            elif isinstance(st, A.Validity):
                self._valid(st.valid_from, st.valid_until, st.span)
        self._once(pol, "validity", pol.of(A.Validity))
        self._once(pol, "price without a condition", [st for st in pol.of(A.EnergyPrice) if st.condition is None])
        if not pol.of(A.EnergyPrice) and f"reimbursement:{pol.name}" not in self.partial:
            self.err("E212", f"reimbursement '{pol.name}' has no price", pol.name_span,
                     "add e.g. 'energy at 0.30 per kWh'")

    def _policy_commission(self, pol: A.Policy) -> None:
        before = len(self.out)
        self._once(pol, "validity", pol.of(A.Validity))
        for st in pol.statements:
            if isinstance(st, A.Commission):
                if st.per is not None:
                    self._choice(st.per, COMMISSION_PER, "commission unit")
                if st.percent is not None:
                    self._percent(st.percent.value, st.percent.span)
                if st.condition is not None:
                    self._cond(st.condition)
                if st.per is not None and st.per.value == "month" and st.condition is not None:
                    self.err("E212", f"'{st.text()}' is a monthly flat fee, which no session condition can select",
                             st.condition.span, "drop the 'for ...' part, or charge per session or per kWh")
            elif isinstance(st, A.Party):
                self._choice(st.party, PARTIES[st.direction], f"party to {st.direction}")
            elif isinstance(st, A.Validity):
                self._valid(st.valid_from, st.valid_until, st.span)
        self._once(pol, "party", pol.of(A.Party))
        # what the block lacks as a whole, once what it holds is in order
        if f"commission:{pol.name}" not in self.partial and len(self.out) == before:
            if not pol.of(A.Commission):
                self.err("E212", f"commission '{pol.name}' has no amount", pol.name_span,
                         "add e.g. '0.30 per session', '0.02 per kWh', '50.00 per month' or '5% of net revenue'")
            if not pol.of(A.Party):
                self.err("E212", f"commission '{pol.name}' does not say who pays whom", pol.name_span,
                         "add 'charge host' (the host pays it) or 'pay host' / 'pay partner NAME' (it is paid), "
                         "or 'charge emsp' / 'pay emsp' for eMSP clearing")

    def _policy_service(self, pol: A.Policy) -> None:
        from runtime.invoicing import PRICE_PERIODS, PRORATIONS

        seen: dict[str, A.Span] = {}
        for st in pol.statements:
            if isinstance(st, A.ServiceVat):
                self._percent(st.rate.value, st.rate.span)
            elif isinstance(st, A.Prorate):
                self._proration(st.mode, PRORATIONS)
            elif isinstance(st, A.ServiceItem):
                if st.name.value in seen:
                    self.err("E204", f"service item '{st.name.value}' is defined twice in service '{pol.name}'",
                             st.name.span, f"the first definition is on line {seen[st.name.value].line}")
                    continue
                seen[st.name.value] = st.name.span
                if st.price.value < 0:
                    self.err("E310", f"a service price cannot be negative, found '{st.price.value}'", st.price.span,
                             "give credits as a period discount on the billing account")
                if st.per.value not in PRICE_PERIODS:
                    periods = [p for p in PRICE_PERIODS if p != "each"]
                    self.err("E310", f"unknown price period '{st.per.value}'", st.per.span,
                             suggest(st.per.value, periods) or "use per month, per quarter, per year or each")
                if st.vat is not None:
                    self._percent(st.vat.value, st.vat.span)
                if st.prorate is not None:
                    self._proration(st.prorate, PRORATIONS)
                self._options_once(f"service item '{st.name.value}'", st.opt_spans)

    def _policy_payments(self, pol: A.Policy) -> None:
        from runtime.bank.payments import PAYMENT_METHODS, RETURN_CHARGE_WORDS, RETURN_REASONS

        self._once(pol, "payment method", pol.of(A.PaymentMethod))
        self._once(pol, "pre-notification", [w for w in pol.of(A.PaymentWindow) if w.kind == "pre_notification"])
        self._once(pol, "lead time", [w for w in pol.of(A.PaymentWindow) if w.kind == "lead_time"])
        self._once(pol, "minimum amount", pol.of(A.CollectionMinimum))
        charged: dict[str, A.ReturnCharge] = {}  # reason code ("" for any return) -> first statement
        for st in pol.statements:
            if isinstance(st, A.PaymentMethod):
                self._choice(st.method, PAYMENT_METHODS, "payment method")
            elif isinstance(st, A.PaymentWindow):
                self._days(st.after, 1 if st.kind == "lead_time" else 0, 60,
                           "a lead time" if st.kind == "lead_time" else "a pre-notification")
            elif isinstance(st, A.CollectionMinimum) and st.amount.value < 0:
                self.err("E310", "a minimum amount cannot be negative", st.amount.span)
            elif isinstance(st, A.ReturnCharge):
                if st.named is not None:
                    self._choice(st.named, RETURN_CHARGE_WORDS, "return charge")
                for n in st.reasons:
                    if n.value not in RETURN_REASONS:
                        self.err("E310", f"unknown return reason code '{n.value}'", n.span,
                                 suggest(n.value.upper(), RETURN_REASONS)
                                 or "use an EPC reason code such as AM04, MD06 or MS02")
                for key in [n.value for n in st.reasons] or [""]:
                    if key in charged:
                        what = f"for {key}" if key else "for any return"
                        self.err("E212", f"payments '{pol.name}' states the return charge {what} twice", st.span,
                                 f"the first is on line {charged[key].span.line}; keep one")
                    else:
                        charged[key] = st

    def _days(self, d: A.Duration, lo: int, hi: int, what: str) -> None:
        """A period counted in whole calendar days."""
        if d.unit.value not in ("day", "days", "d"):
            close = suggest(d.unit.value, ("days",)) if d.unit.value not in TIME_UNITS else None
            self.err("E310", f"{what} is counted in days, found '{d.unit.value}'", d.unit.span,
                     close or f"write e.g. '{_n(d.amount.value)} days'")
            return
        self._whole(d.amount, lo, hi, f"{what} of")

    def _options_once(self, what: str, opt_spans: tuple[tuple[str, A.Span], ...]) -> None:
        first: dict[str, A.Span] = {}
        for key, span in opt_spans:
            if key in first:
                self.err("E212", f"{what} states '{key}' twice", span,
                         f"the first is at column {first[key].col}; keep one")
            else:
                first[key] = span

    def _proration(self, mode: A.Named, allowed: Iterable[str]) -> None:
        options = tuple(allowed)
        if mode.value not in options:
            self.err("E310", f"unknown proration '{mode.value}'", mode.span,
                     suggest(mode.value, options) or "use prorate daily (by days of the period) or prorate none")


def _n(d: Decimal) -> str:
    from dsl.printer import num

    return num(d)


def _dates_overlap(a0: str | None, a1: str | None, b0: str | None, b1: str | None) -> bool:
    lo = max(a0 or "", b0 or "")
    hi = min(a1 or "9999-12-31", b1 or "9999-12-31")
    return lo < hi


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
    return set(range(s, 1440)) | set(range(e))


def check(rs: A.Ruleset, filename: str = "<ruleset>", partial: frozenset[str] = frozenset()) -> list[Diagnostic]:
    """``partial``: blocks ("discount:d") that lost statements to syntax errors; what they lack
    as a whole is not reported."""
    return _Checker(rs, filename, partial).run()


def check_policies(rs: A.Ruleset, filename: str = "<ruleset>") -> list[Diagnostic]:
    """The checker's findings on policy blocks alone."""
    c = _Checker(rs, filename)
    for pol in rs.policies:
        c._policy(pol)
    return c.out
