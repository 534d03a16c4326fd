"""Meaning for ``billing`` and ``hold`` policy blocks.

The parser keeps policy statements as generic word lists (``A.PolicyStmt``); this module turns the
two kinds the billing cycle needs into the runtime's frozen values (``runtime.invoicing``) and
reports statements it cannot read as diagnostics with the existing stable codes (E212 unknown
statement, E206 unknown time zone, E303 percentage, E310 value out of range), so no new golden
files are needed. Accepted forms::

    billing monthly {
      cycle monthly                      # monthly | quarterly | ad_hoc
      cut_off day 1                      # 1..28, local midnight in the zone below
      timezone Europe/Berlin             # optional; default: the account's zone
      payment_terms net 14               # or: end_of_month + 60
    }
    hold standard "Finance review" {
      hold when total > 5000.00          # gross total of the invoice
      hold when jump > 50% against previous
      hold when flag manual_review
      approval required                  # or: auto_release after 3 days
      escalate after 48 hours            # hours | days | minutes
    }
    service supervision "Charger supervision" {
      vat 19%                            # for every item below; optional
      ac_charger 9.00 per month          # per month | per quarter | per year
      dc_charger 19.00 per month "DC charger supervision"
      rfid_card 5.00 each                # a one-off charge, billed in the period it starts
      item app_support 120.00 per year, vat 7%   # 'item NAME' for names of your own
      sim 2.50 per month, prorate none   # billed in full for any day of a period
    }

A recurring service item that starts or ends inside a period is billed pro rata by its local days
in the period (``prorate daily``, the default); ``prorate none`` bills it in full for any day. It
is written per block (a ``prorate none`` statement applies to every item below it) or per item.

A service item is known to billing accounts as ``<block>.<item>`` (``supervision.ac_charger``).
Its VAT rate is the item's own, else the block's, else the ruleset's if its tariffs agree on one
(the default tariff's when there is one); failing all of those it is 0% with warning W003.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from types import MappingProxyType

from dsl import ast as A
from dsl.diagnostics import Diagnostic, suggest
from runtime.invoicing import (
    CYCLES,
    PRICE_PERIODS,
    PRORATIONS,
    BillingPolicy,
    HoldPolicy,
    HoldRule,
    PaymentTerms,
    ServicePrice,
)

__all__ = ["Policies", "billing_policy", "hold_policy", "interpret_policies", "service_diagnostics",
           "service_policy"]

_UNITS = {"minute": 60, "minutes": 60, "min": 60, "hour": 3600, "hours": 3600, "h": 3600,
          "day": 86400, "days": 86400, "d": 86400}


@dataclass(frozen=True, slots=True)
class Policies:
    billing: tuple[BillingPolicy, ...]
    holds: tuple[HoldPolicy, ...]
    # "<block>.<item>" -> price, in source order
    services: Mapping[str, ServicePrice] = field(default_factory=lambda: MappingProxyType({}))

    def billing_named(self, name: str | None) -> BillingPolicy | None:
        for b in self.billing:
            if name is None or b.name == name or b.cycle == name:
                return b
        return None

    def hold_named(self, name: str | None = None) -> HoldPolicy | None:
        for h in self.holds:
            if name is None or h.name == name:
                return h
        return None


class _Reader:
    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.diags: list[Diagnostic] = []

    def err(self, code: str, msg: str, span: A.Span, hint: str | None = None) -> None:
        self.diags.append(Diagnostic(code, "error", msg, span, hint, self.filename))

    def expect(self, st: A.PolicyStmt, shape: str) -> None:
        self.err("E212", f"cannot read '{st.text()}'", st.span, f"expected: {shape}")

    def int_in(self, w: A.PolicyWord, lo: int, hi: int, what: str) -> int | None:
        if w.kind != "number" or not w.value.isdigit():
            self.err("E310", f"{what} must be a whole number, found '{w.value}'", w.span)
            return None
        n = int(w.value)
        if not lo <= n <= hi:
            self.err("E310", f"{what} {n} is out of range", w.span, f"use {lo}..{hi}")
            return None
        return n

    def duration(self, words: tuple[A.PolicyWord, ...], st: A.PolicyStmt, shape: str) -> timedelta | None:
        # "<n> <unit>"
        if len(words) != 2 or words[0].kind != "number" or words[1].kind != "word":
            self.expect(st, shape)
            return None
        unit = words[1].value.lower()
        if unit not in _UNITS:
            self.err("E310", f"unknown time unit '{words[1].value}'", words[1].span,
                     suggest(unit, _UNITS) or "use minutes, hours or days")
            return None
        try:
            n = Decimal(words[0].value)
        except InvalidOperation:
            self.expect(st, shape)
            return None
        if n <= 0:
            self.err("E310", f"a waiting time must be positive, found '{words[0].value}'", words[0].span)
            return None
        return timedelta(seconds=int(n * _UNITS[unit]))


def _words(st: A.PolicyStmt) -> list[str]:
    return [w.value for w in st.words]


def billing_policy(pol: A.Policy, r: _Reader) -> BillingPolicy:
    cycle, cut_off, tz, terms = "monthly", 1, "", PaymentTerms()
    for st in pol.statements:
        ws = st.words
        head = ws[0].value
        if head == "cycle":
            if len(ws) == 2 and ws[1].value in CYCLES:
                cycle = ws[1].value
            elif len(ws) == 2:
                r.err("E310", f"unknown billing cycle '{ws[1].value}'", ws[1].span,
                      suggest(ws[1].value, CYCLES) or f"use one of: {', '.join(CYCLES)}")
            else:
                r.expect(st, "cycle monthly | quarterly | ad_hoc")
        elif head == "cut_off":
            rest = ws[1:]
            if rest and rest[0].value == "day":
                rest = rest[1:]
            if len(rest) == 1:
                n = r.int_in(rest[0], 1, 28, "cut-off day")
                cut_off = n if n is not None else cut_off
            else:
                r.expect(st, "cut_off day N (1..28)")
        elif head == "timezone":
            name = "".join(w.value for w in ws[1:])
            if not name:
                r.expect(st, "timezone Europe/Berlin")
                continue
            try:
                from zoneinfo import ZoneInfo

                ZoneInfo(name)
                tz = name
            except Exception:  # noqa: BLE001 - any failure means the zone is unusable
                r.err("E206", f"unknown time zone '{name}'", ws[1].span, "use an IANA zone such as Europe/Berlin")
        elif head in ("payment_terms", "terms", "net", "end_of_month"):
            rest = ws[1:] if head in ("payment_terms", "terms") else ws
            text = " ".join(w.value for w in rest)
            try:
                terms = PaymentTerms.parse(text)
                if terms.days > 365:
                    r.err("E310", f"payment terms of {terms.days} days are out of range", rest[-1].span,
                          "use 0..365 days")
            except ValueError:
                r.expect(st, "payment_terms net N | end_of_month + N")
        else:
            # other billing words (series, format, ...) belong to later issues; the checker
            # already rejects unknown leading words
            continue
    return BillingPolicy(pol.name, cycle, cut_off, tz, terms)


def hold_policy(pol: A.Policy, r: _Reader) -> HoldPolicy:
    rules: list[HoldRule] = []
    approval: bool | None = None
    auto: timedelta | None = None
    escalate: timedelta | None = timedelta(hours=48)
    for st in pol.statements:
        ws = st.words
        vals = _words(st)
        if vals[:2] == ["hold", "when"] or vals[:1] == ["when"]:
            body = ws[2:] if vals[0] == "hold" else ws[1:]
            bv = [w.value for w in body]
            if len(body) == 3 and bv[0] == "total" and body[1].kind == "cmp" and bv[1] in (">", ">="):
                if body[2].kind != "number":
                    r.err("E310", f"a total threshold must be an amount, found '{bv[2]}'", body[2].span)
                    continue
                rules.append(HoldRule("total", amount=Decimal(bv[2])))
            elif len(body) >= 3 and bv[0] == "jump" and body[1].kind == "cmp" and bv[1] in (">", ">="):
                if body[2].kind != "percent":
                    r.err("E310", f"a jump threshold must be a percentage, found '{bv[2]}'", body[2].span,
                          "write it like 50%")
                    continue
                tail = bv[3:]
                if tail not in ([], ["against", "previous"], ["against", "previous", "period"]):
                    r.expect(st, "hold when jump > P% against previous")
                    continue
                pct = Decimal(bv[2].rstrip("%"))
                if pct <= 0:
                    r.err("E303", f"a jump threshold must be positive, found '{bv[2]}'", body[2].span)
                    continue
                rules.append(HoldRule("jump", percent=pct))
            elif len(body) == 2 and bv[0] == "flag" and body[1].kind == "word":
                rules.append(HoldRule("flag", flag=bv[1]))
            else:
                r.expect(st, "hold when total > AMOUNT | jump > P% against previous | flag NAME")
        elif vals[0] == "approval":
            if vals[1:] == ["required"]:
                approval = True
            else:
                r.expect(st, "approval required")
        elif vals[0] == "auto_release":
            if vals[1:2] == ["after"]:
                auto = r.duration(ws[2:], st, "auto_release after N days")
            else:
                r.expect(st, "auto_release after N days")
        elif vals[0] == "escalate":
            if vals[1:2] == ["after"]:
                escalate = r.duration(ws[2:], st, "escalate after N hours")
            else:
                r.expect(st, "escalate after N hours")
        elif vals[0] in ("hold", "threshold", "jump", "flag", "release", "when"):
            r.expect(st, "hold when total > AMOUNT | jump > P% against previous | flag NAME")
    if approval and auto is not None:
        r.err("E212", "a hold policy cannot both require approval and release on its own", pol.span,
              "keep either 'approval required' or 'auto_release after N days'")
    # without auto-release there is no way out but a person: approval is then implied
    return HoldPolicy(pol.name, tuple(rules), approval if approval is not None else auto is None, auto, escalate)


_SERVICE_SHAPE = 'NAME PRICE per month|quarter|year | each ["description"] [vat P%] [prorate daily|none]'
_PER_WORDS = tuple(p for p in PRICE_PERIODS if p != "each")


def _ruleset_vat(rs: A.Ruleset) -> Decimal | None:
    """The VAT rate a service inherits when neither it nor its block names one."""
    if rs.default_tariff is not None:
        for t in rs.tariffs:
            if t.name == rs.default_tariff.value:
                return t.vat
    rates = {t.vat for t in rs.tariffs}
    return rates.pop() if len(rates) == 1 else None


def service_policy(pol: A.Policy, r: _Reader, inherited_vat: Decimal | None = None) -> list[ServicePrice]:
    """The items of one ``service`` block, priced."""
    block_vat: Decimal | None = None
    block_prorate = "daily"
    items: list[tuple[A.PolicyStmt, A.PolicyWord, list[A.PolicyWord], str]] = []
    for st in pol.statements:
        ws = [w for w in st.words if w.kind != "sep"]
        if not ws:
            continue
        if ws[0].value == "vat" and ws[0].kind == "word":
            rate = _vat(ws[1:], st, r, "vat P%")
            block_vat = rate if rate is not None else block_vat
        elif ws[0].value == "prorate" and ws[0].kind == "word":
            block_prorate = _prorate(ws[1:], st, r, "prorate daily | none") or block_prorate
        elif ws[0].value == "item" and ws[0].kind == "word":
            if len(ws) < 2 or ws[1].kind != "word":
                r.expect(st, "item " + _SERVICE_SHAPE)
                continue
            items.append((st, ws[1], ws[2:], block_prorate))
        elif ws[0].kind == "word" and ws[0].value != "per":
            items.append((st, ws[0], ws[1:], block_prorate))
        else:
            r.expect(st, _SERVICE_SHAPE)
    out: list[ServicePrice] = []
    seen: dict[str, A.Span] = {}
    warned = False
    for st, name, rest, inherited_prorate in items:
        if name.value in seen:
            r.err("E204", f"service item '{name.value}' is defined twice in service '{pol.name}'", name.span,
                  f"the first definition is on line {seen[name.value].line}")
            continue
        seen[name.value] = name.span
        read = _service_item(st, name, rest, r)
        if read is None:
            continue
        price, per, description, vat, prorate = read
        rate = vat if vat is not None else block_vat if block_vat is not None else inherited_vat
        if rate is None:
            rate = Decimal(0)
            if not warned:
                warned = True
                r.diags.append(Diagnostic(
                    "W003", "warning", f"service '{pol.name}' has no VAT rate; its lines carry 0%", pol.span,
                    "add 'vat 19%' to the block (or 'vat 0%' to say so explicitly)", r.filename))
        title = description or f"{pol.title}: {name.value.replace('_', ' ')}"
        out.append(ServicePrice(f"{pol.name}.{name.value}", title, price, per, rate,
                                f"service {pol.name}.{name.value}, line {st.span.line}",
                                prorate or inherited_prorate))
    return out


def _vat(ws: list[A.PolicyWord], st: A.PolicyStmt, r: _Reader, shape: str) -> Decimal | None:
    if len(ws) != 1:
        r.expect(st, shape)
        return None
    if ws[0].kind != "percent":
        r.err("E310", f"a VAT rate must be a percentage, found '{ws[0].value}'", ws[0].span, "write it like 19%")
        return None
    return Decimal(ws[0].value.rstrip("%"))  # its range is the checker's (E303)


def _prorate(ws: list[A.PolicyWord], st: A.PolicyStmt, r: _Reader, shape: str) -> str | None:
    if len(ws) != 1:
        r.expect(st, shape)
        return None
    if ws[0].kind != "word" or ws[0].value not in PRORATIONS:
        r.err("E310", f"unknown proration '{ws[0].value}'", ws[0].span,
              suggest(ws[0].value, PRORATIONS) or "use prorate daily (by days of the period) or prorate none")
        return None
    return ws[0].value


def _service_item(st: A.PolicyStmt, name: A.PolicyWord, rest: list[A.PolicyWord],
                  r: _Reader) -> tuple[Decimal, str, str, Decimal | None, str | None] | None:
    """``PRICE per month|quarter|year | each ["description"] [vat P%] [prorate daily|none]`` after
    the item's name (the options in either order)."""
    if not rest:
        r.expect(st, _SERVICE_SHAPE)
        return None
    if rest[0].kind == "op" and rest[0].value == "-":
        r.err("E310", f"a service price cannot be negative, found '-{rest[1].value if len(rest) > 1 else ''}'",
              rest[0].span, "give credits as a period discount on the billing account")
        return None
    if rest[0].kind != "number":
        r.err("E310", f"a service price must be an amount, found '{rest[0].value}'", rest[0].span,
              f"expected: {_SERVICE_SHAPE}")
        return None
    try:
        price = Decimal(rest[0].value)
    except InvalidOperation:
        r.expect(st, _SERVICE_SHAPE)
        return None
    tail = rest[1:]
    if tail and tail[0].kind == "word" and tail[0].value == "each":
        per, tail = "each", tail[1:]
    elif len(tail) >= 2 and tail[0].kind == "word" and tail[0].value == "per":
        if tail[1].value not in _PER_WORDS:
            r.err("E310", f"unknown price period '{tail[1].value}'", tail[1].span,
                  suggest(tail[1].value, _PER_WORDS) or "use per month, per quarter, per year or each")
            return None
        per, tail = tail[1].value, tail[2:]
    else:
        r.err("E212", f"service item '{name.value}' has no price period", rest[0].span,
              "add 'per month', 'per quarter', 'per year' or 'each' after the price")
        return None
    description = ""
    if tail and tail[0].kind == "string":
        description, tail = tail[0].value, tail[1:]
    vat: Decimal | None = None
    prorate: str | None = None
    while tail:
        option = tail[0].value if tail[0].kind == "word" else ""
        if option == "vat" and vat is None:
            vat = _vat(tail[1:2], st, r, _SERVICE_SHAPE)
            if vat is None:
                return None
        elif option == "prorate" and prorate is None:
            prorate = _prorate(tail[1:2], st, r, _SERVICE_SHAPE)
            if prorate is None:
                return None
        else:
            r.expect(st, _SERVICE_SHAPE)
            return None
        tail = tail[2:]
    return price, per, description, vat, prorate


def _services(ruleset: A.Ruleset, r: _Reader) -> Mapping[str, ServicePrice]:
    services: dict[str, ServicePrice] = {}
    blocks = [p for p in ruleset.policies if p.kind == "service" and p.statements]
    inherited = _ruleset_vat(ruleset) if blocks else None
    for pol in blocks:
        # a service price is in its ruleset's currency: billing refuses to add it to an invoice in another
        services.update((p.name, replace(p, currency=ruleset.currency)) for p in service_policy(pol, r, inherited))
    return MappingProxyType(services)


def service_diagnostics(ruleset: A.Ruleset, filename: str = "<ruleset>") -> list[Diagnostic]:
    """What the checker reports about ``service`` blocks (billing reads them at every cycle)."""
    r = _Reader(filename)
    _services(ruleset, r)
    return r.diags


# a ruleset version is read once per process, not once per billing account
_MEMO: OrderedDict[tuple[int, str], tuple[A.Ruleset, Policies, tuple[Diagnostic, ...]]] = OrderedDict()
_MEMO_LOCK = threading.Lock()


def interpret_policies(ruleset: A.Ruleset, filename: str = "<ruleset>") -> tuple[Policies, list[Diagnostic]]:
    """Billing, hold and service policies of a (checked) ruleset, with diagnostics for what does
    not read."""
    key = (id(ruleset), filename)
    with _MEMO_LOCK:
        hit = _MEMO.get(key)
        # the memo holds the AST itself, so its id cannot be reused while the entry lives
        if hit is not None and hit[0] is ruleset:
            _MEMO.move_to_end(key)
            return hit[1], list(hit[2])
    r = _Reader(filename)
    billing: list[BillingPolicy] = []
    holds: list[HoldPolicy] = []
    for pol in ruleset.policies:
        if not pol.statements:
            continue
        if pol.kind == "billing":
            billing.append(billing_policy(pol, r))
        elif pol.kind == "hold":
            holds.append(hold_policy(pol, r))
    out = Policies(tuple(billing), tuple(holds), _services(ruleset, r))
    with _MEMO_LOCK:
        _MEMO[key] = (ruleset, out, tuple(r.diags))
        if len(_MEMO) > 64:
            _MEMO.popitem(last=False)
    return out, r.diags
