"""The ruleset AST: small frozen dataclasses, each carrying the source span it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypeVar, Union

__all__ = [
    "And",
    "Approval",
    "Atom",
    "AutoRelease",
    "BaseRate",
    "BillingCycle",
    "BillingZone",
    "BinOp",
    "CollectionMinimum",
    "Commission",
    "CommissionRef",
    "ComponentDef",
    "Cond",
    "CutOff",
    "Discount",
    "Duration",
    "EnergyPrice",
    "Escalate",
    "FlatFee",
    "ForGroups",
    "Grace",
    "HoldWhen",
    "HostShare",
    "Index",
    "Interest",
    "MinimumAmount",
    "Named",
    "Neg",
    "Not",
    "Num",
    "Or",
    "PartnerRef",
    "Party",
    "PauseOnDispute",
    "PaymentMethod",
    "PaymentWindow",
    "Policy",
    "PolicyStmt",
    "PriceExpr",
    "Product",
    "Prorate",
    "ReturnCharge",
    "ReverseCharge",
    "Rule",
    "Ruleset",
    "ServiceItem",
    "ServiceVat",
    "Sites",
    "Span",
    "Stage",
    "Tariff",
    "TaxExempt",
    "Terms",
    "Tier",
    "Validity",
    "VatRate",
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
    vat_class: str | None = None  # "standard" | "reduced" instead of ``vat``


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
    vat_class: str | None = None  # "standard" | "reduced": the location country's rate on the day
    # Eichrecht: energy is billed from the signed start and end readings only (``runtime.ocmf``);
    # a session without verified signed data is held for review
    legal_for_trade: bool = False


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
# Each policy kind has its own statements (``evbill.lark``); a block keeps them in source order.
# Values with a closed set of spellings (a cycle, a time unit, an action) are kept as ``Named`` so
# the checker can point at them and suggest the right one.
class _Stmt:
    """Base of policy statements: ``text()`` is the statement in canonical form (``dsl.printer``)."""

    __slots__ = ()

    def text(self) -> str:
        from dsl.printer import policy_stmt_text

        return policy_stmt_text(self)  # type: ignore[arg-type]  # every subclass is a PolicyStmt


_S = TypeVar("_S")


@dataclass(frozen=True, slots=True)
class Duration:
    amount: Num
    unit: Named  # minutes, hours, days, ... as written
    span: Span


# billing
@dataclass(frozen=True, slots=True)
class BillingCycle(_Stmt):
    cycle: Named  # monthly | quarterly | ad_hoc
    span: Span


@dataclass(frozen=True, slots=True)
class CutOff(_Stmt):
    day: Num  # 1..28
    span: Span


@dataclass(frozen=True, slots=True)
class BillingZone(_Stmt):
    zone: Named
    span: Span


@dataclass(frozen=True, slots=True)
class Terms(_Stmt):
    kind: str  # net | end_of_month
    days: Num | None  # None: end_of_month + 0
    span: Span


# hold
@dataclass(frozen=True, slots=True)
class HoldWhen(_Stmt):
    kind: str  # total | jump | flag
    span: Span
    op: str = ""  # total, jump: the comparison as written
    amount: Num | None = None  # total: gross amount
    percent: Num | None = None  # jump: against the previous period
    flag: Named | None = None


@dataclass(frozen=True, slots=True)
class Approval(_Stmt):
    """``approval required`` (hold blocks; dunning stages carry their own flag)."""

    span: Span


@dataclass(frozen=True, slots=True)
class AutoRelease(_Stmt):
    after: Duration
    span: Span


@dataclass(frozen=True, slots=True)
class Escalate(_Stmt):
    after: Duration
    span: Span


# dunning
@dataclass(frozen=True, slots=True)
class Stage(_Stmt):
    number: Num
    after: Duration  # waiting time
    span: Span
    anchor: Named | None = None  # due_date | previous_stage; None: stage 1 from the due date, later ones from the previous stage
    reminder: bool = False  # a friendly reminder letter rather than a dunning notice
    fee: Num | None = None
    fee_vat: Num | None = None  # the fee's VAT rate (None: see fee_untaxed)
    fee_untaxed: bool = False  # said explicitly: the fee is damages, outside the scope of VAT
    approval: bool = False
    actions: tuple[Named, ...] = ()  # block_tokens | suspend_contract | hand_over
    opt_spans: tuple[tuple[str, Span], ...] = ()


@dataclass(frozen=True, slots=True)
class MinimumAmount(_Stmt):
    """``ignore below 5.00`` / ``minimum amount 5.00``: no dunning below this overdue amount."""

    amount: Num
    span: Span


@dataclass(frozen=True, slots=True)
class Grace(_Stmt):
    after: Duration
    span: Span


@dataclass(frozen=True, slots=True)
class Interest(_Stmt):
    """Default interest: ``interest 9 points over base rate for businesses``."""

    points: Num
    span: Span
    debtors: Named | None = None  # consumers | businesses; None: every debtor


@dataclass(frozen=True, slots=True)
class FlatFee(_Stmt):
    """``flat fee 40 for businesses`` (the lump sum for late payment by business debtors)."""

    amount: Num
    span: Span
    debtors: Named | None = None


@dataclass(frozen=True, slots=True)
class BaseRate(_Stmt):
    """``base rate 1.27% valid 2025-07-01..2026-01-01``: the base rate default interest is added
    to, as data with its validity (dates ISO, the end exclusive; added to the shipped table)."""

    rate: Num  # percent per year; may be negative
    span: Span
    valid_from: str = ""
    valid_until: str | None = None


@dataclass(frozen=True, slots=True)
class ForGroups(_Stmt):
    """The customer groups a dunning policy or a reimbursement applies to."""

    groups: tuple[Named, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class PauseOnDispute(_Stmt):
    span: Span


# tax
@dataclass(frozen=True, slots=True)
class VatRate(_Stmt):
    country: Named
    category: str  # standard (written vat or standard) | reduced | zero
    rate: Num
    span: Span
    valid_from: str | None = None  # ISO date, inclusive
    valid_until: str | None = None  # ISO date, exclusive


@dataclass(frozen=True, slots=True)
class ReverseCharge(_Stmt):
    """B2B customers abroad (with a VAT id) are invoiced without VAT; restricted to groups if named."""

    span: Span
    groups: tuple[Named, ...] = ()
    note: str = ""


@dataclass(frozen=True, slots=True)
class TaxExempt(_Stmt):
    """Customers (of the groups, if named) are invoiced without VAT: category E with the VATEX
    ``code`` (VATEX-EU-132 unless stated) and the ``note`` as the reason the documents print."""

    span: Span
    groups: tuple[Named, ...] = ()
    note: str = ""
    code: str = ""


# revenue share, reimbursement, commission
@dataclass(frozen=True, slots=True)
class Sites(_Stmt):
    patterns: tuple[Named, ...]  # location codes (globs)
    span: Span


@dataclass(frozen=True, slots=True)
class HostShare(_Stmt):
    """``host gets 30% of net revenue`` or ``host gets 0.05 per kWh`` (session, month)."""

    span: Span
    percent: Num | None = None
    amount: Num | None = None
    per: Named | None = None


@dataclass(frozen=True, slots=True)
class EnergyPrice(_Stmt):
    """``energy at index(spot_de) + 0.02 per kWh [when COND]``: a reimbursement price."""

    price: PriceExpr
    unit: str  # kWh, Wh, MWh
    span: Span
    condition: Cond | None = None


@dataclass(frozen=True, slots=True)
class PartnerRef(_Stmt):
    partner: Named
    span: Span


@dataclass(frozen=True, slots=True)
class CommissionRef(_Stmt):
    """``commission booking_fee, sales_acme`` in a revenue share: those commission blocks apply to
    the partner's statements under it."""

    names: tuple[Named, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Commission(_Stmt):
    """``0.30 per session [for COND]`` (transaction, kWh, month) or ``5% of net revenue [for COND]``."""

    span: Span
    amount: Num | None = None
    per: Named | None = None
    percent: Num | None = None
    condition: Cond | None = None


@dataclass(frozen=True, slots=True)
class Party(_Stmt):
    """Who pays whom: ``charge host`` / ``charge emsp DE-ABC`` / ``pay partner acme``."""

    direction: str  # charge | pay
    party: Named  # host | emsp | partner
    span: Span
    id: Named | None = None


@dataclass(frozen=True, slots=True)
class Validity(_Stmt):
    valid_from: str
    valid_until: str | None  # exclusive
    span: Span


# service
@dataclass(frozen=True, slots=True)
class ServiceVat(_Stmt):
    rate: Num
    span: Span


@dataclass(frozen=True, slots=True)
class Prorate(_Stmt):
    mode: Named  # daily | none
    span: Span


@dataclass(frozen=True, slots=True)
class ServiceItem(_Stmt):
    name: Named
    price: Num  # may be negative as written; the checker refuses that
    per: Named  # each | month | quarter | year (as written)
    span: Span
    description: str = ""
    vat: Num | None = None
    prorate: Named | None = None
    named_item: bool = False  # written 'item NAME ...'
    opt_spans: tuple[tuple[str, Span], ...] = ()


# payments
@dataclass(frozen=True, slots=True)
class PaymentMethod(_Stmt):
    """``method sepa_direct_debit``: how an account pays when its contract does not say."""

    method: Named  # sepa_direct_debit | transfer
    span: Span


@dataclass(frozen=True, slots=True)
class PaymentWindow(_Stmt):
    """``pre_notification 5 days`` (the debit notice comes at least this long before the debit)
    or ``lead_time 5 days`` (a collection run takes items due within this long)."""

    kind: str  # pre_notification | lead_time
    after: Duration
    span: Span


@dataclass(frozen=True, slots=True)
class CollectionMinimum(_Stmt):
    """``minimum amount 1.00``: an open item below this is not collected by direct debit."""

    amount: Num
    span: Span


@dataclass(frozen=True, slots=True)
class ReturnCharge(_Stmt):
    """``return charge 3.00`` / ``return charge bank_fee`` / ``return charge none for MD06``: what a
    returned direct debit costs the customer, for the EPC reason codes named (none: any reason)."""

    span: Span
    amount: Num | None = None  # a flat charge
    named: Named | None = None  # bank_fee (the fee the bank took) | none
    reasons: tuple[Named, ...] = ()


PolicyStmt = Union[
    BillingCycle, CutOff, BillingZone, Terms, HoldWhen, Approval, AutoRelease, Escalate, Stage, MinimumAmount,
    Grace, Interest, FlatFee, BaseRate, ForGroups, PauseOnDispute, VatRate, ReverseCharge, TaxExempt, Sites,
    HostShare, EnergyPrice, PartnerRef, CommissionRef, Commission, Party, Validity, ServiceVat, Prorate, ServiceItem,
    PaymentMethod, PaymentWindow, CollectionMinimum, ReturnCharge,
]


@dataclass(frozen=True, slots=True)
class Policy:
    kind: str  # tax, billing, hold, dunning, revenue_share, commission, service, reimbursement, payments
    name: str
    title: str
    statements: tuple[PolicyStmt, ...]
    span: Span
    name_span: Span = field(default_factory=Span.unknown)

    def of(self, kind: type[_S]) -> tuple[_S, ...]:
        """The statements of one type, in source order."""
        return tuple(s for s in self.statements if isinstance(s, kind))


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
