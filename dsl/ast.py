"""The ruleset AST: small frozen dataclasses, each carrying the source span it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Union

__all__ = [
    "Span", "Num", "Index", "BinOp", "Neg", "PriceExpr", "Atom", "And", "Or", "Not", "Cond",
    "ComponentDef", "Rule", "Tariff", "Discount", "Tier", "Product", "PolicyWord", "PolicyStmt",
    "Policy", "Ruleset", "Named",
]


@dataclass(frozen=True, slots=True)
class Span:
    line: int
    col: int
    end_line: int
    end_col: int

    @staticmethod
    def unknown() -> Span:
        return Span(1, 1, 1, 1)


@dataclass(frozen=True, slots=True)
class Named:
    """A name as written, with where it was written (for 'unknown name' diagnostics)."""

    value: str
    span: Span


# ---------------------------------------------------------------- price expressions
@dataclass(frozen=True, slots=True)
class Num:
    value: Decimal
    span: Span


@dataclass(frozen=True, slots=True)
class Index:
    series: str
    span: Span


@dataclass(frozen=True, slots=True)
class BinOp:
    op: str  # + - * /
    left: PriceExpr
    right: PriceExpr
    span: Span


@dataclass(frozen=True, slots=True)
class Neg:
    operand: PriceExpr
    span: Span


PriceExpr = Union[Num, Index, BinOp, Neg]


# ---------------------------------------------------------------- conditions
@dataclass(frozen=True, slots=True)
class Atom:
    """One condition. ``kind`` names it (time, days, date, holiday, ac, dc, power, current,
    energy, duration, location, site, evse, country, group, product, token, partner, roaming,
    local, reservation, reservation_expires, code, always); ``args`` are its operands."""

    kind: str
    args: tuple[object, ...]
    span: Span
    names: tuple[Named, ...] = ()


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Cond, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Cond, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Not:
    item: Cond
    span: Span


Cond = Union[Atom, And, Or, Not]


# ---------------------------------------------------------------- tariffs
@dataclass(frozen=True, slots=True)
class ComponentDef:
    kind: str  # start_fee, flat, energy, time, parking, reservation, reservation_fee
    price: PriceExpr
    unit: str  # kWh, Wh, MWh, min, h, s, session
    span: Span
    title: str = ""
    step: tuple[Decimal, str] | None = None  # (amount, unit as written)
    after: tuple[Decimal, str, bool] | None = None  # (amount, unit, idle) grace
    cap: Decimal | None = None
    vat: Decimal | None = None
    opt_spans: tuple[tuple[str, Span], ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    """A ``when`` block (condition set) or the tariff's unconditional lines (condition None)."""

    condition: Cond | None
    components: tuple[ComponentDef, ...]
    span: Span
    label: str  # "when time 22:00..06:00" or "base"


@dataclass(frozen=True, slots=True)
class Tariff:
    name: str
    title: str
    rules: tuple[Rule, ...]  # when blocks in source order, then the base rule
    span: Span
    vat: Decimal | None = None
    min_price: tuple[Decimal, Decimal | None] | None = None  # (excl, incl)
    max_price: tuple[Decimal, Decimal | None] | None = None
    name_span: Span = field(default_factory=Span.unknown)
    opt_spans: tuple[tuple[str, Span], ...] = ()


# ---------------------------------------------------------------- discounts
@dataclass(frozen=True, slots=True)
class Discount:
    name: str
    title: str
    span: Span
    percent: Decimal | None = None
    fixed: Decimal | None = None
    target: str = "session"
    condition: Cond | None = None
    valid_from: str | None = None  # ISO date, inclusive
    valid_until: str | None = None  # ISO date, exclusive
    once: str = "session"  # customer, period, session (= every session)
    exclusive: bool = False
    priority: int = 0
    code: str | None = None
    budget: Decimal | None = None
    budget_uses: bool = False
    tariffs: tuple[Named, ...] = ()
    name_span: Span = field(default_factory=Span.unknown)
    clause_spans: tuple[tuple[str, Span], ...] = ()


# ---------------------------------------------------------------- products
@dataclass(frozen=True, slots=True)
class Tier:
    lower: Decimal
    upper: Decimal | None
    price: Decimal
    span: Span


@dataclass(frozen=True, slots=True)
class Product:
    name: str
    title: str
    span: Span
    tariff: Named | None = None
    fee: tuple[Decimal, str] | None = None  # (amount, month|quarter|year)
    included_kwh: Decimal | None = None
    included_sessions: int | None = None
    tier_mode: str | None = None  # graduated | volume
    tiers: tuple[Tier, ...] = ()
    vat: Decimal | None = None
    name_span: Span = field(default_factory=Span.unknown)


# ---------------------------------------------------------------- policies
@dataclass(frozen=True, slots=True)
class PolicyWord:
    kind: str  # word, number, percent, date, time, string, cmp, op, index
    value: str
    span: Span


@dataclass(frozen=True, slots=True)
class PolicyStmt:
    words: tuple[PolicyWord, ...]
    span: Span

    def text(self) -> str:
        return " ".join(w.value if w.kind != "index" else f"index({w.value})" for w in self.words)


@dataclass(frozen=True, slots=True)
class Policy:
    kind: str  # tax, billing, hold, dunning, revenue_share, commission, service, reimbursement
    name: str
    title: str
    statements: tuple[PolicyStmt, ...]
    span: Span


# ---------------------------------------------------------------- ruleset
@dataclass(frozen=True, slots=True)
class Ruleset:
    name: str
    currency: str
    timezone: str
    span: Span
    version: str = ""
    rounding: str = "half_up"
    holidays: str = ""  # default region for `holiday`, e.g. DE-BE
    groups: tuple[Named, ...] = ()
    partners: tuple[Named, ...] = ()
    series: tuple[Named, ...] = ()
    default_tariff: Named | None = None
    tariffs: tuple[Tariff, ...] = ()
    discounts: tuple[Discount, ...] = ()
    products: tuple[Product, ...] = ()
    policies: tuple[Policy, ...] = ()
    header_spans: tuple[tuple[str, Span], ...] = ()
