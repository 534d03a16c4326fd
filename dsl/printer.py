"""AST -> canonical DSL text. The OCPI importer prints through here, and ``parse(print(x))``
gives back an equivalent ruleset (a property test holds us to that)."""

from __future__ import annotations

from decimal import Decimal

from dsl import ast as A

__all__ = ["cond_text", "num", "policy_stmt_text", "price_text", "print_ruleset"]

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def num(d: Decimal) -> str:
    """A decimal as the DSL writes numbers: plain digits, no exponent, no sign for zero."""
    if d == d.to_integral_value():
        return str(abs(d).quantize(Decimal(1))) if d == 0 else str(d.quantize(Decimal(1)))
    return format(d.normalize(), "f")


def price_text(e: A.PriceExpr, parent_prec: int = 0) -> str:
    if isinstance(e, A.Num):
        return num(e.value) if e.value >= 0 else f"-{num(-e.value)}"
    if isinstance(e, A.Index):
        return f"index({e.series})"
    if isinstance(e, A.Neg):
        return f"-{price_text(e.operand, 3)}"
    prec = 1 if e.op in "+-" else 2
    left = price_text(e.left, prec)
    right = price_text(e.right, prec + 1)
    text = f"{left} {e.op} {right}"
    return f"({text})" if prec < parent_prec else text


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _word(s: str) -> str:
    import re

    return s if re.fullmatch(r"[A-Za-z_*?][A-Za-z0-9_*?\-]*", s) else _quote(s)


def _days_text(days: tuple[int, ...]) -> str:
    ds = sorted(set(days))
    if ds == [0, 1, 2, 3, 4]:
        return "weekdays"
    if ds == [5, 6]:
        return "weekend"
    parts: list[str] = []
    i = 0
    while i < len(ds):
        j = i
        while j + 1 < len(ds) and ds[j + 1] == ds[j] + 1:
            j += 1
        parts.append(_DAYS[ds[i]] if i == j else f"{_DAYS[ds[i]]}..{_DAYS[ds[j]]}")
        i = j + 1
    return "days " + " ".join(parts)


def cond_text(c: A.Cond, parent: str = "") -> str:
    if isinstance(c, A.And):
        t = " and ".join(cond_text(x, "and") for x in c.items)
        return f"({t})" if parent == "not" else t
    if isinstance(c, A.Or):
        t = " or ".join(cond_text(x, "or") for x in c.items)
        return f"({t})" if parent in ("and", "not") else t
    if isinstance(c, A.Not):
        return "not " + cond_text(c.item, "not")
    k, a = c.kind, c.args
    if k == "time":
        return f"time {a[0]}..{a[1]}"
    if k == "days":
        return _days_text(tuple(int(x) for x in a))  # type: ignore[call-overload]
    if k == "date":
        return f"date {a[0]}..{a[1] or ''}"
    if k == "holiday":
        return f"holiday {a[0]}" if a and a[0] else "holiday"
    if k in ("power", "current", "energy", "duration"):
        value = a[1]
        assert isinstance(value, Decimal)
        return f"{k} {a[0]} {num(value)} {a[2]}"
    if k in ("location", "site", "evse", "country", "group", "product", "token", "partner", "code"):
        return f"{k} " + " ".join(_word(str(x)) for x in a)
    return k  # ac, dc, roaming, local, reservation, reservation_expires, always


def _component_text(cd: A.ComponentDef) -> str:
    parts = [cd.kind, price_text(cd.price)]
    if cd.unit != "session":
        parts += ["per", cd.unit]
    if cd.title:
        parts.append(_quote(cd.title))
    if cd.step is not None:
        parts += ["step", num(cd.step[0]), cd.step[1]]
    if cd.after is not None:
        parts += ["after", num(cd.after[0]), cd.after[1]] + (["idle"] if cd.after[2] else [])
    if cd.vat is not None:
        parts += ["vat", f"{num(cd.vat)}%"]
    if cd.vat_class is not None:
        parts += ["vat", cd.vat_class]
    text = " ".join(parts)
    if cd.cap is not None:
        text += f", at most {num(cd.cap)}"
    return text


def _tariff_text(t: A.Tariff) -> list[str]:
    out = [f"tariff {t.name} {_quote(t.title)} {{"]
    if t.vat is not None:
        out.append(f"  vat {num(t.vat)}%")
    if t.vat_class is not None:
        out.append(f"  vat {t.vat_class}")
    if t.legal_for_trade:
        out.append("  legal_for_trade")
    for r in t.rules:
        if r.condition is None:
            out += [f"  {_component_text(cd)}" for cd in r.components]
        else:
            body = "; ".join(_component_text(cd) for cd in r.components)
            out.append(f"  when {cond_text(r.condition)} {{ {body} }}")
    for key, val in (("min_price", t.min_price), ("max_price", t.max_price)):
        if val is not None:
            out.append(f"  {key} {num(val[0])}" + (f" incl {num(val[1])}" if val[1] is not None else ""))
    out.append("}")
    return out


def _discount_text(d: A.Discount) -> list[str]:
    out = [f"discount {d.name} {_quote(d.title)} {{"]
    if d.percent is not None:
        out.append(f"  {num(d.percent)}% off {d.target}")
    elif d.fixed is not None:
        out.append(f"  {num(d.fixed)} off {d.target}")
    if d.condition is not None:
        out.append(f"  for {cond_text(d.condition)}")
    if d.valid_from:
        out.append(f"  valid {d.valid_from}..{d.valid_until or ''}")
    out.append("  every session" if d.once == "session" else f"  once per {d.once}")
    out.append("  exclusive" if d.exclusive else "  combinable")
    if d.priority:
        out.append(f"  priority {d.priority}")
    if d.code:
        out.append(f"  code {_word(d.code)}")
    if d.budget is not None:
        out.append(f"  budget {num(d.budget)}" + (" uses" if d.budget_uses else ""))
    if d.tariffs:
        out.append("  tariffs " + " ".join(n.value for n in d.tariffs))
    out.append("}")
    return out


def _product_text(p: A.Product) -> list[str]:
    out = [f"product {p.name} {_quote(p.title)} {{"]
    if p.tariff:
        out.append(f"  tariff {p.tariff.value}")
    if p.fee:
        out.append(f"  fee {num(p.fee[0])} per {p.fee[1]}")
    if p.included_kwh is not None:
        out.append(f"  includes {num(p.included_kwh)} kWh")
    if p.included_sessions is not None:
        out.append(f"  includes {p.included_sessions} sessions")
    if p.tier_mode:
        out.append(f"  energy {p.tier_mode} {{")
        for t in p.tiers:
            upper = num(t.upper) if t.upper is not None else ""
            out.append(f"    {num(t.lower)}..{upper} kWh at {num(t.price)}")
        out.append("  }")
    if p.vat is not None:
        out.append(f"  vat {num(p.vat)}%")
    out.append("}")
    return out


def _policy_text(p: A.Policy) -> list[str]:
    out = [f"{p.kind} {p.name} {_quote(p.title)} {{"]
    # in a revenue share an energy price reads 'reimburse energy at ...' (its text() is the price alone)
    out += ["  " + ("reimburse " if p.kind == "revenue_share" and isinstance(st, A.EnergyPrice) else "")
            + policy_stmt_text(st) for st in p.statements]
    out.append("}")
    return out


def _n(d: Decimal) -> str:
    """A policy number as written (10.00 stays 10.00: amounts keep their decimals)."""
    text = str(d)
    return text if "E" not in text else num(d)


def _dur(d: A.Duration) -> str:
    return f"{_n(d.amount.value)} {d.unit.value}"


def _names(ns: tuple[A.Named, ...], sep: str = " ") -> str:
    return sep.join(_word(n.value) for n in ns)


def _validity(start: str | None, end: str | None) -> str:
    return f"valid {start}..{end or ''}" if start else ""


def policy_stmt_text(st: A.PolicyStmt) -> str:
    """One policy statement in canonical form (also ``st.text()``)."""
    parts: list[str]
    if isinstance(st, A.BillingCycle):
        return f"cycle {st.cycle.value}"
    if isinstance(st, A.CutOff):
        return f"cut_off day {_n(st.day.value)}"
    if isinstance(st, A.BillingZone):
        return f"timezone {st.zone.value}"
    if isinstance(st, A.Terms):
        if st.kind == "net":
            return f"payment_terms net {_n(st.days.value) if st.days else 0}"
        return "payment_terms end_of_month" + (f" + {_n(st.days.value)}" if st.days else "")
    if isinstance(st, A.HoldWhen):
        if st.kind == "total" and st.amount is not None:
            return f"hold when total {st.op} {_n(st.amount.value)}"
        if st.kind == "jump" and st.percent is not None:
            return f"hold when jump {st.op} {_n(st.percent.value)}% against previous"
        return f"hold when flag {st.flag.value if st.flag else ''}"
    if isinstance(st, A.Approval):
        return "approval required"
    if isinstance(st, A.AutoRelease):
        return f"auto_release after {_dur(st.after)}"
    if isinstance(st, A.Escalate):
        return f"escalate after {_dur(st.after)}"
    if isinstance(st, A.Stage):
        parts = [f"stage {_n(st.number.value)} after {_dur(st.after)}"]
        if st.anchor is not None:
            parts.append(f"from {st.anchor.value}")
        if st.reminder:
            parts.append("reminder")
        if st.fee is not None:
            parts.append(f"fee {_n(st.fee.value)}")
            if st.fee_vat is not None:
                parts.append(f"vat {_n(st.fee_vat.value)}%")
            elif st.fee_untaxed:
                parts.append("untaxed")
        if st.approval:
            parts.append("approval required")
        if st.actions:
            parts.append("then " + _names(st.actions, " and "))
        return " ".join(parts)
    if isinstance(st, A.MinimumAmount):
        return f"ignore below {_n(st.amount.value)}"
    if isinstance(st, A.Grace):
        return f"grace {_dur(st.after)}"
    if isinstance(st, A.Interest):
        return f"interest {_n(st.points.value)} points over base rate" + (
            f" for {st.debtors.value}" if st.debtors else "")
    if isinstance(st, A.FlatFee):
        return f"flat fee {_n(st.amount.value)}" + (f" for {st.debtors.value}" if st.debtors else "")
    if isinstance(st, A.BaseRate):
        return f"base rate {_n(st.rate.value)}% {_validity(st.valid_from, st.valid_until)}"
    if isinstance(st, A.ForGroups):
        return "for groups " + _names(st.groups, ", ")
    if isinstance(st, A.PauseOnDispute):
        return "pause on dispute"
    if isinstance(st, A.VatRate):
        kind = "vat" if st.category == "standard" else st.category
        return " ".join(x for x in (f"country {st.country.value} {kind} {_n(st.rate.value)}%",
                                    _validity(st.valid_from, st.valid_until)) if x)
    if isinstance(st, (A.ReverseCharge, A.TaxExempt)):
        parts = ["reverse_charge" if isinstance(st, A.ReverseCharge) else "exempt"]
        if st.groups:
            parts.append("for groups " + _names(st.groups, ", "))
        if isinstance(st, A.TaxExempt) and st.code:
            parts.append(st.code)
        if st.note:
            parts.append(_quote(st.note))
        return " ".join(parts)
    if isinstance(st, A.Sites):
        return "sites " + _names(st.patterns)
    if isinstance(st, A.HostShare):
        if st.percent is not None:
            return f"host gets {_n(st.percent.value)}% of net revenue"
        return f"host gets {_n(st.amount.value) if st.amount else 0} per {st.per.value if st.per else ''}"
    if isinstance(st, A.EnergyPrice):
        text = f"energy at {price_text(st.price)} per {st.unit}"
        return text + (f" when {cond_text(st.condition)}" if st.condition is not None else "")
    if isinstance(st, A.PartnerRef):
        return f"partner {_word(st.partner.value)}"
    if isinstance(st, A.CommissionRef):
        return "commission " + _names(st.names, ", ")
    if isinstance(st, A.Commission):
        if st.percent is not None:
            text = f"{_n(st.percent.value)}% of net revenue"
        else:
            text = f"{_n(st.amount.value) if st.amount else 0} per {st.per.value if st.per else ''}"
        return text + (f" for {cond_text(st.condition)}" if st.condition is not None else "")
    if isinstance(st, A.Party):
        return f"{st.direction} {st.party.value}" + (f" {_word(st.id.value)}" if st.id else "")
    if isinstance(st, A.Validity):
        return _validity(st.valid_from, st.valid_until)
    if isinstance(st, A.ServiceVat):
        return f"vat {_n(st.rate.value)}%"
    if isinstance(st, A.Prorate):
        return f"prorate {st.mode.value}"
    if isinstance(st, A.ServiceItem):
        price = _n(st.price.value)
        parts = [f"item {st.name.value}" if st.named_item else st.name.value, price,
                 "each" if st.per.value == "each" else f"per {st.per.value}"]
        if st.description:
            parts.append(_quote(st.description))
        if st.vat is not None:
            parts.append(f"vat {_n(st.vat.value)}%")
        if st.prorate is not None:
            parts.append(f"prorate {st.prorate.value}")
        return " ".join(parts)
    if isinstance(st, A.PaymentMethod):
        return f"method {st.method.value}"
    if isinstance(st, A.PaymentWindow):
        return f"{st.kind} {_dur(st.after)}"
    if isinstance(st, A.CollectionMinimum):
        return f"minimum amount {_n(st.amount.value)}"
    if isinstance(st, A.ReturnCharge):
        what = _n(st.amount.value) if st.amount is not None else st.named.value if st.named else "none"
        return f"return charge {what}" + (" for " + _names(st.reasons, ", ") if st.reasons else "")
    raise TypeError(f"not a policy statement: {st!r}")


def print_ruleset(rs: A.Ruleset) -> str:
    head = f"ruleset {rs.name} currency {rs.currency} timezone {rs.timezone}"
    if rs.version:
        head += f" version {_quote(rs.version)}"
    if rs.rounding != "half_up":
        head += f" rounding {rs.rounding}"
    if rs.holidays:
        head += f" holidays {rs.holidays}"
    out = [head]
    if rs.groups:
        out.append("groups " + ", ".join(g.value for g in rs.groups))
    if rs.partners:
        out.append("partners " + ", ".join(p.value for p in rs.partners))
    for s in rs.series:
        out.append(f"series {s.value}")
    if rs.default_tariff:
        out.append(f"default tariff {rs.default_tariff.value}")
    for t in rs.tariffs:
        out += [""] + _tariff_text(t)
    for d in rs.discounts:
        out += [""] + _discount_text(d)
    for p in rs.products:
        out += [""] + _product_text(p)
    for pol in rs.policies:
        out += [""] + _policy_text(pol)
    return "\n".join(out) + "\n"
