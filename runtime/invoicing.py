"""Invoice assembly: a pure function from a billing account's period to a draft invoice.

Like Kill Bill's ``InvoiceGenerator`` the same code serves real runs, dry runs and replays: no
database, clock or network here. The caller (an activity) gathers rated sessions, products,
service items, manual postings and corrections, and persists what comes back.

Rules it keeps (DESIGN.md "Money, tax and time"):
- every invoice line is rounded once, to the currency's minor unit; totals are sums of rounded lines;
- VAT is computed once per rate group, on the sum of that group's rounded lines;
- corrections (re-rating deltas, late sessions) are new lines referencing what they correct; a
  finalized invoice is never edited. A draft whose total is negative becomes a credit note;
- an invoice is in one currency: every amount put on it is checked against it (``Money``,
  ``CurrencyMismatch``). The caller sets aside what was priced in another currency
  (``split_currencies``) and the draft is held for it (``currency_mismatch``), never converted.

Billing and hold policies are plain values here; ``dsl.policies`` builds them from rulesets.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from runtime.money import ZERO, Money, minor_unit, quantize, quantum, require_currency, tax_groups
from runtime.rated import RatedLine, RatingResult
from runtime.tax import Treatment

__all__ = [
    "APPROVAL_REQUIRED",
    "CYCLES",
    "PRICE_PERIODS",
    "PRORATIONS",
    "BillingPolicy",
    "Comparison",
    "Correction",
    "CurrencySplit",
    "ForeignAmount",
    "HoldPolicy",
    "HoldReason",
    "HoldRule",
    "InvoiceDraft",
    "InvoiceLine",
    "LateSession",
    "ManualPosting",
    "MeterFinding",
    "PaymentTerms",
    "Period",
    "PeriodDiscount",
    "ServiceBill",
    "ServiceItem",
    "ServicePrice",
    "ServiceSubscription",
    "TaxGroup",
    "UnpricedService",
    "ad_hoc_period",
    "assemble_invoice",
    "bill_services",
    "compare_periods",
    "document_dates",
    "draft_to_dict",
    "evaluate_holds",
    "period_after",
    "period_ending",
    "split_currencies",
]

CYCLES = ("monthly", "quarterly", "ad_hoc")
_CYCLE_MONTHS = {"monthly": 1, "quarterly": 3}


# ---------------------------------------------------------------- policies as values
@dataclass(frozen=True, slots=True)
class PaymentTerms:
    """``net N``: due N days after issue; ``end_of_month + N``: N days after the end of the issue month."""

    kind: str = "net"  # net | end_of_month
    days: int = 14

    def due_date(self, issued: date) -> date:
        if self.kind == "end_of_month":
            last = calendar.monthrange(issued.year, issued.month)[1]
            return date(issued.year, issued.month, last) + timedelta(days=self.days)
        return issued + timedelta(days=self.days)

    def text(self) -> str:
        return f"net {self.days}" if self.kind == "net" else f"end_of_month + {self.days}"

    @staticmethod
    def parse(text: str) -> PaymentTerms:
        """The account column's spelling (``net 14``, ``end_of_month + 60``, ``eom+30``)."""
        t = " ".join(text.replace("+", " + ").split()).lower()
        parts = t.split(" ")
        if len(parts) == 2 and parts[0] == "net" and parts[1].isdigit():
            return PaymentTerms("net", int(parts[1]))
        if len(parts) == 3 and parts[0] in ("end_of_month", "eom") and parts[1] == "+" and parts[2].isdigit():
            return PaymentTerms("end_of_month", int(parts[2]))
        if len(parts) == 1 and parts[0] in ("end_of_month", "eom"):
            return PaymentTerms("end_of_month", 0)
        raise ValueError(f"unknown payment terms '{text}': expected 'net N' or 'end_of_month + N'")


def document_dates(kind: str, terms: PaymentTerms, at: datetime, timezone: str) -> tuple[date, date]:
    """(issue date, due date) of an invoice or credit note finalized at ``at`` (aware).

    The issue date is the day of finalization in the issuer's (tenant's) zone, never the end of the
    billing period: the service period is a separate fact of the document. An invoice is due after
    its payment terms; a credit note is refunded, not collected, so nothing falls due after the
    issue day (the document shows no due date; the row keeps the issue day for the open items)."""
    issued = at.astimezone(ZoneInfo(timezone)).date()
    return issued, (terms.due_date(issued) if kind == "invoice" else issued)


@dataclass(frozen=True, slots=True)
class BillingPolicy:
    name: str = "default"
    cycle: str = "monthly"  # monthly | quarterly | ad_hoc
    cut_off_day: int = 1  # periods start at local midnight of this day of the month
    timezone: str = ""  # "" = the account's zone
    payment_terms: PaymentTerms = PaymentTerms()


@dataclass(frozen=True, slots=True)
class HoldRule:
    kind: str  # total | jump | flag
    amount: Decimal | None = None  # total: hold when the invoice's gross total is above this
    percent: Decimal | None = None  # jump: hold when net rose by more than this against the previous period
    flag: str = ""  # flag: hold when the account carries this flag

    def text(self) -> str:
        if self.kind == "total":
            return f"total > {self.amount}"
        if self.kind == "jump":
            return f"jump > {self.percent}% against previous"
        return f"flag {self.flag}"


@dataclass(frozen=True, slots=True)
class HoldPolicy:
    name: str = "default"
    rules: tuple[HoldRule, ...] = ()
    # a held invoice waits for an approver unless auto_release is set and approval is not required
    approval_required: bool = True
    auto_release_after: timedelta | None = None
    escalate_after: timedelta | None = timedelta(hours=48)


# ---------------------------------------------------------------- periods
@dataclass(frozen=True, slots=True)
class Period:
    """``[start, end)`` in UTC, derived from local midnights of ``timezone`` (DST-correct)."""

    start: datetime
    end: datetime
    local_start: date
    local_end: date  # exclusive
    timezone: str
    cycle: str = "monthly"

    @property
    def key(self) -> str:
        """A stable name for idempotency (one invoice per account and key)."""
        return f"{self.cycle}:{self.local_start.isoformat()}..{self.local_end.isoformat()}"

    @property
    def months(self) -> int:
        return _CYCLE_MONTHS.get(self.cycle, 1)

    def to_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(),
                "local_start": self.local_start.isoformat(), "local_end": self.local_end.isoformat(),
                "timezone": self.timezone, "cycle": self.cycle}

    @staticmethod
    def from_dict(d: Mapping[str, str]) -> Period:
        return Period(datetime.fromisoformat(d["start"]), datetime.fromisoformat(d["end"]),
                      date.fromisoformat(d["local_start"]), date.fromisoformat(d["local_end"]),
                      d["timezone"], d.get("cycle", "monthly"))


def _local_midnight_utc(d: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(d, time(0), tzinfo=tz).astimezone(UTC)


def _add_months(y: int, m: int, n: int) -> tuple[int, int]:
    k = y * 12 + (m - 1) + n
    return k // 12, k % 12 + 1


def _make(ls: date, le: date, tzname: str, cycle: str) -> Period:
    tz = ZoneInfo(tzname)
    return Period(_local_midnight_utc(ls, tz), _local_midnight_utc(le, tz), ls, le, tzname, cycle)


def period_ending(cycle: str, cut_off_day: int, tzname: str, at: datetime) -> Period:
    """The period whose cut-off is the latest one at or before ``at`` (a schedule fires at cut-off
    and bills the period that just closed)."""
    if cycle not in _CYCLE_MONTHS:
        raise ValueError(f"cycle '{cycle}' has no cut-off; use ad_hoc_period")
    if not 1 <= cut_off_day <= 28:
        raise ValueError("cut-off day must be between 1 and 28")
    step = _CYCLE_MONTHS[cycle]
    local = at.astimezone(ZoneInfo(tzname)).date()
    y, m = local.year, local.month
    if cycle == "quarterly":
        m = ((m - 1) // 3) * 3 + 1
    end = date(y, m, cut_off_day)
    if end > local:
        y, m = _add_months(y, m, -step)
        end = date(y, m, cut_off_day)
    sy, sm = _add_months(end.year, end.month, -step)
    return _make(date(sy, sm, cut_off_day), end, tzname, cycle)


def period_after(p: Period, cut_off_day: int | None = None) -> Period:
    day = cut_off_day or p.local_end.day
    step = _CYCLE_MONTHS.get(p.cycle, 1)
    y, m = _add_months(p.local_end.year, p.local_end.month, step)
    return _make(p.local_end, date(y, m, day), p.timezone, p.cycle)


def ad_hoc_period(start: date, end: date, tzname: str) -> Period:
    if end <= start:
        raise ValueError("an ad-hoc period must end after it starts")
    return _make(start, end, tzname, "ad_hoc")


# ---------------------------------------------------------------- inputs
@dataclass(frozen=True, slots=True)
class ServiceItem:
    """A recurring service product (supervised charger, SIM, RFID cards) billed per period."""

    description: str
    quantity: Decimal
    unit_price: Decimal
    tax_rate: Decimal
    unit: str = "each"
    product: str = ""
    # the price's currency: a ruleset service's is its ruleset's; "" is an explicit price, given
    # in the account's (the invoice's) currency
    currency: str = ""
    item_id: str = ""  # the account's service item it bills ("" for items made by hand)


# how many months a service price covers; "each" is a one-off charge
PRICE_PERIODS = {"month": 1, "quarter": 3, "year": 12, "each": 0}
# how a recurring service is billed for a period it covers only in part: by its days in the
# period (daily), or in full for any day (none)
PRORATIONS = ("daily", "none")


@dataclass(frozen=True, slots=True)
class ServicePrice:
    """A service product as a ruleset prices it (``service supervision { ac_charger 9.00 per month }``)."""

    name: str  # "<block>.<item>", e.g. "supervision.ac_charger"
    description: str
    price: Decimal  # net, per ``per``
    per: str  # month | quarter | year | each
    tax_rate: Decimal
    rule: str = ""  # where the price is written ("service supervision, line 23"), for the audit trail
    prorate: str = "daily"  # daily | none (PRORATIONS)
    currency: str = ""  # the ruleset's (``dsl.policies`` sets it); "" = the invoice's


@dataclass(frozen=True, slots=True)
class ServiceSubscription:
    """A service product an account takes, from ``valid_from`` to ``valid_to`` (exclusive): either a
    ruleset's service by name (``service``), priced by the ruleset the cycle uses, or an explicit
    ``unit_price`` per ``per`` with its ``tax_rate``."""

    id: str
    service: str
    description: str
    quantity: Decimal
    unit_price: Decimal | None
    tax_rate: Decimal | None
    per: str
    valid_from: date
    valid_to: date | None = None


@dataclass(frozen=True, slots=True)
class UnpricedService:
    """A service item naming a service the cycle's ruleset version does not price: it is left off
    the draft, and the draft is held for finance (``evaluate_holds``) instead of guessing a price."""

    item_id: str
    service: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class ServiceBill:
    """The service lines of one period, and the items that could not be priced."""

    items: tuple[ServiceItem, ...] = ()
    unpriced: tuple[UnpricedService, ...] = ()


def _covered(s: ServiceSubscription, period: Period) -> tuple[date, date]:
    """The local days ``[first, end)`` of the period the subscription covers."""
    end = period.local_end if s.valid_to is None else min(s.valid_to, period.local_end)
    return max(s.valid_from, period.local_start), end


def bill_services(subscriptions: Iterable[ServiceSubscription], period: Period,
                  catalogue: Mapping[str, ServicePrice] | None) -> ServiceBill:
    """The service lines of one period, in the subscriptions' order.

    A recurring item's price is scaled from its own ``per`` to the period's length (9.00 per month
    is 27.00 on a quarterly invoice, 120.00 per year is 10.00 a month). An item that starts or ends
    inside the period is billed pro rata by its local days in the period (14 of 30 days: 9.00 ×
    14/30 = 4.20), and its line names the days it covers; a ruleset service with ``prorate none``
    is billed in full for any day. The price stays exact (one division) until the invoice rounds
    the line. A one-off item (``each``) is billed once, in the period its ``valid_from`` falls in.

    An item naming a service the catalogue does not have is not billed but returned in
    ``unpriced``: the caller holds the draft rather than bill it at a guessed price."""
    months = period.months
    unit = "quarter" if months == 3 else "month"
    days = (period.local_end - period.local_start).days
    out: list[ServiceItem] = []
    unpriced: list[UnpricedService] = []
    for s in subscriptions:
        if s.valid_from >= period.local_end or (s.valid_to is not None and s.valid_to <= period.local_start):
            continue
        prorate, cur = "daily", ""
        if s.service:
            p = (catalogue or {}).get(s.service)
            if p is None:
                unpriced.append(UnpricedService(s.id, s.service, s.description))
                continue
            price, per, rate, description, rule, prorate, cur = p.price, p.per, p.tax_rate, \
                s.description or p.description, p.rule or f"service {p.name}", p.prorate, p.currency
        else:
            if s.unit_price is None or s.tax_rate is None:
                raise ValueError(f"service item {s.id} has neither a ruleset service nor a price")
            price, per, rate, description, rule = s.unit_price, s.per, s.tax_rate, s.description, f"service item {s.id}"
        if per not in PRICE_PERIODS:
            raise ValueError(f"service item {s.id}: unknown price period '{per}'")
        if per == "each":
            if period.local_start <= s.valid_from:
                out.append(ServiceItem(description, s.quantity, price, rate, "each", rule, cur, s.id))
            continue
        first, end = _covered(s, period)
        covered = (end - first).days
        if prorate == "none" or covered >= days:
            out.append(ServiceItem(description, s.quantity, price * months / PRICE_PERIODS[per], rate, unit, rule,
                                   cur, s.id))
            continue
        last = end - timedelta(days=1)
        out.append(ServiceItem(
            f"{description} ({first.isoformat()} to {last.isoformat()}, {covered} of {days} days)", s.quantity,
            price * months * covered / (PRICE_PERIODS[per] * days), rate, unit, rule, cur, s.id))
    return ServiceBill(tuple(out), tuple(unpriced))


@dataclass(frozen=True, slots=True)
class PeriodDiscount:
    """A discount on the period's subtotal per VAT group: ``percent`` or a fixed ``amount``."""

    description: str
    percent: Decimal | None = None
    amount: Decimal | None = None
    tax_rate: Decimal | None = None  # fixed amounts need the group they reduce


@dataclass(frozen=True, slots=True)
class ManualPosting:
    """An adjustment a finance user adds to a held invoice (net amount, may be negative)."""

    id: str
    description: str
    amount: Decimal
    tax_rate: Decimal
    author: str


@dataclass(frozen=True, slots=True)
class Correction:
    """A session billed on a finalized invoice whose current rating differs from the billed one."""

    session_id: str
    rating_id: str  # the current rating
    billed_rating_id: str
    invoice_id: str
    invoice_number: str
    billed_net: Mapping[Decimal, Decimal]  # per VAT rate, rounded as billed
    lines: tuple[RatedLine, ...]  # the current rating's lines
    billed_currency: str = ""  # the corrected invoice's currency ("" = this invoice's)


@dataclass(frozen=True, slots=True)
class LateSession:
    """A rated session from a period that was already invoiced without it."""

    session_id: str
    rating_id: str
    period_key: str
    lines: tuple[RatedLine, ...]


@dataclass(frozen=True, slots=True)
class ForeignAmount:
    """Something of an account's period priced in a currency other than the account's: left off
    the draft, which is held for it (``currency_mismatch``) instead of adding it into a total of
    another currency or converting it at a rate nobody agreed to."""

    source: str  # session | late_session | correction | service_item | ruleset_version
    ref: str  # the session, service item or ruleset version
    currency: str
    net: Decimal | None = None  # its exact net in its own currency (None: no amount of its own)
    description: str = ""


@dataclass(frozen=True, slots=True)
class CurrencySplit:
    """The inputs of a draft in the invoice's currency, and what was set aside (``foreign``)."""

    results: tuple[RatingResult, ...] = ()
    late: tuple[LateSession, ...] = ()
    corrections: tuple[Correction, ...] = ()
    services: tuple[ServiceItem, ...] = ()
    foreign: tuple[ForeignAmount, ...] = ()


def _foreign_lines(currency: str, lines: Iterable[RatedLine]) -> str:
    """The currency of the first line not in ``currency`` ("" when all are in it)."""
    return next((ln.currency for ln in lines if ln.currency != currency), "")


def split_currencies(currency: str, *, results: Iterable[RatingResult] = (), late: Iterable[LateSession] = (),
                     corrections: Iterable[Correction] = (),
                     services: Iterable[ServiceItem] = ()) -> CurrencySplit:
    """Set aside what an account's period holds in another currency than ``currency`` (the
    account's): sessions rated by a ruleset in another currency, late sessions and re-ratings of
    them, corrections of invoices written in another currency, service items priced by a ruleset
    in another currency. Everything else is returned as given, in order; ``assemble_invoice``
    refuses (``CurrencyMismatch``) whatever is still foreign."""
    kept_r, kept_l, kept_c, kept_s, foreign = [], [], [], [], []
    for r in results:
        other = r.currency if r.currency != currency else _foreign_lines(currency, r.lines)
        if other:
            foreign.append(ForeignAmount("session", r.session_id, other, sum((ln.net for ln in r.lines), ZERO)))
        else:
            kept_r.append(r)
    for ls in late:
        other = _foreign_lines(currency, ls.lines)
        if other:
            foreign.append(ForeignAmount("late_session", ls.session_id, other, sum((ln.net for ln in ls.lines), ZERO),
                                         ls.period_key))
        else:
            kept_l.append(ls)
    for c in corrections:
        other = _foreign_lines(currency, c.lines) or (c.billed_currency if c.billed_currency not in ("", currency)
                                                      else "")
        if other:
            foreign.append(ForeignAmount("correction", c.session_id, other,
                                         sum((ln.net for ln in c.lines), ZERO), f"billed on {c.invoice_number}"))
        else:
            kept_c.append(c)
    for sv in services:
        if sv.currency not in ("", currency):
            foreign.append(ForeignAmount("service_item", sv.item_id or sv.product, sv.currency,
                                         sv.quantity * sv.unit_price, sv.description))
        else:
            kept_s.append(sv)
    return CurrencySplit(tuple(kept_r), tuple(kept_l), tuple(kept_c), tuple(kept_s), tuple(foreign))


# ---------------------------------------------------------------- output
class InvoiceLine(NamedTuple):
    """One line of an invoice. Immutable; a NamedTuple (not a frozen dataclass, whose ``__init__``
    sets each of its 14 fields through ``object.__setattr__``) because month-end makes ~200 per
    account: ``InvoiceLine._make`` costs a tenth of that."""

    seq: int
    kind: str  # session | fee | service | discount | late | adjustment | manual
    component: str
    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    net: Decimal  # rounded once, here
    net_unrounded: Decimal
    tax_rate: Decimal
    session_id: str = ""
    rating_id: str = ""
    rule: str = ""
    corrects: str = ""  # invoice number (and session) this line corrects

    def to_dict(self) -> dict[str, Any]:
        return {k: (format(v, "f") if isinstance(v, Decimal) else v) for k, v in zip(self._fields, self, strict=True)}


@dataclass(frozen=True, slots=True)
class TaxGroup:
    rate: Decimal
    net: Decimal
    tax: Decimal
    # an untaxed supply's treatment (``runtime.tax.Treatment``): AE, O or E, its VATEX code and the
    # reason the ruleset states; empty for a taxed (or plain 0 %) group
    category: str = ""
    vatex: str = ""
    reason: str = ""

    def to_dict(self) -> dict[str, str]:
        d = {"rate": format(self.rate, "f"), "net": format(self.net, "f"), "tax": format(self.tax, "f")}
        if self.category:
            d.update(category=self.category, vatex=self.vatex, reason=self.reason)
        return d


@dataclass(frozen=True, slots=True)
class MeterFinding:
    """A session on the draft whose signed meter data failed its check (Eichrecht, ``runtime.ocmf``):
    ``kind`` ``meter_signature_invalid`` or ``meter_mismatch``, ``reason`` the check's detail."""

    session_id: str
    kind: str
    reason: str
    signed_kwh: Decimal | None = None
    session_kwh: Decimal | None = None


@dataclass(frozen=True, slots=True)
class InvoiceDraft:
    account_id: str
    currency: str
    period: Period
    kind: str  # invoice | credit_note
    issue_date: date
    due_date: date
    lines: tuple[InvoiceLine, ...]
    tax_groups: tuple[TaxGroup, ...]
    sessions: int
    energy_kwh: Decimal
    corrects: tuple[str, ...] = ()  # invoice numbers corrected by lines of this draft
    # service items left off because the ruleset does not price them: they hold the draft
    unpriced: tuple[UnpricedService, ...] = ()
    # what was priced in another currency and left off: it holds the draft (currency_mismatch)
    foreign: tuple[ForeignAmount, ...] = ()
    # sessions whose signed meter data failed its check: they hold the draft for a person
    meter: tuple[MeterFinding, ...] = ()
    # the sum of the lines' nets, added up once (month-end asks for it and the gross several
    # times per draft of ~200 lines)
    _net: Decimal = field(init=False, repr=False, compare=False, default=ZERO)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_net", sum((ln.net for ln in self.lines), ZERO))

    @property
    def net_total(self) -> Decimal:
        return self._net

    @property
    def tax_total(self) -> Decimal:
        return sum((g.tax for g in self.tax_groups), ZERO)

    @property
    def gross_total(self) -> Decimal:
        return self.net_total + self.tax_total

    @property
    def empty(self) -> bool:
        """Nothing to bill and nothing for finance to look at."""
        return not self.lines and not self.unpriced and not self.foreign


def _tax_groups(lines: Iterable[InvoiceLine], currency: str, mode: str,
                treatment: Treatment | None = None) -> tuple[TaxGroup, ...]:
    untaxed = treatment is not None and not treatment.taxed
    return tuple(TaxGroup(r, n, t, *((treatment.category, treatment.vatex or "", treatment.reason or "")
                                     if untaxed and treatment is not None and r == 0 else ()))
                 for r, n, t in tax_groups(((ln.tax_rate, ln.net) for ln in lines), currency, mode))


_SESSION_KINDS = {"base_fee": "fee", "included": "fee", "tier": "fee", "goodwill": "discount"}


def assemble_invoice(
    *, account_id: str, currency: str, period: Period, issue_date: date, terms: PaymentTerms,
    period_lines: Sequence[RatedLine], sessions: int = 0, energy_kwh: Decimal = ZERO,
    services: Sequence[ServiceItem] = (), discounts: Sequence[PeriodDiscount] = (),
    postings: Sequence[ManualPosting] = (), late: Sequence[LateSession] = (),
    corrections: Sequence[Correction] = (), rounding: str = "half_up",
    unpriced: Sequence[UnpricedService] = (),
    foreign: Sequence[ForeignAmount] = (),
    reverse_charge: bool = False,
    treatment: Treatment | None = None,
) -> InvoiceDraft:
    """The draft invoice of one account and period.

    ``period_lines`` are what ``CompiledRuleset.rate_period`` returned for the period's sessions
    (session lines, base fees, allowances, tiers, goodwill). Everything else is added after them in
    a fixed order, so the same inputs always give the same lines (replays compare equal).

    Every amount must be in ``currency``: one in another raises ``CurrencyMismatch`` (naming what
    carried it) instead of being added into the total. Set such inputs aside first with
    ``split_currencies`` and pass them as ``foreign``: the draft carries them and is held.

    ``reverse_charge``: the customer owes the VAT (a business in another EU member state with a
    valid VAT ID, where the ruleset's tax policy says ``reverse_charge``): every line at 0 %; its
    documents state category AE with VATEX-EU-AE. ``treatment`` (``runtime.tax.Treatment``) says
    the same for every untaxed treatment: AE, O (a business outside the EU) or E (the ruleset's
    ``exempt``): every line at 0 %, and the tax group names the category, VATEX code and reason."""
    if reverse_charge and treatment is None:
        treatment = Treatment("AE", "VATEX-EU-AE")
    reverse_charge = treatment is not None and not treatment.taxed
    places = minor_unit(currency)
    out: list[InvoiceLine] = []

    def add(kind: str, component: str, description: str, quantity: Decimal, unit: str, unit_price: Decimal,
            net: Money, rate: Decimal, session_id: str = "", rating_id: str = "", rule: str = "",
            corrects: str = "") -> None:
        require_currency(currency, net.currency, f"{kind} line '{description}'"
                                                 + (f" of session {session_id}" if session_id else ""))
        out.append(InvoiceLine(len(out) + 1, kind, component, description, quantity, unit, unit_price,
                               quantize(net.amount, places, rounding), net.amount, ZERO if reverse_charge else rate,
                               session_id, rating_id, rule, corrects))

    kinds = _SESSION_KINDS
    new = tuple.__new__  # a line is made by ``tuple.__new__`` alone (``_make`` adds a call and a length check)
    exp, rounding_mode = quantum(places, rounding)
    checked = False
    for ln in period_lines:
        net_amount = ln.net
        if not checked or ln.currency != currency or not isinstance(net_amount, Decimal):
            # the checked way (its error names the line); after the first line in the invoice's
            # currency, that currency is known to be a valid code
            add(kinds.get(ln.component, "session"), ln.component, ln.description, ln.quantity, ln.unit,
                ln.unit_price, ln.money(), ln.tax_rate, ln.session_id, "", ln.rule)
            checked = ln.currency == currency
            continue
        # month-end adds ~200 of these per account: the same line as ``add`` makes, without a
        # ``Money`` per line (an amount in the invoice's currency needs no conversion or check)
        out.append(new(InvoiceLine, (len(out) + 1, kinds.get(ln.component, "session"), ln.component,
                                     ln.description, ln.quantity, ln.unit, ln.unit_price,
                                     net_amount.quantize(exp, rounding=rounding_mode), net_amount,
                                     ZERO if reverse_charge else ln.tax_rate, ln.session_id, "", ln.rule, "")))
    for s in services:
        add("service", "service", s.description, s.quantity, s.unit, s.unit_price,
            Money(s.quantity * s.unit_price, s.currency or currency), s.tax_rate, rule=s.product)
    for ls in late:
        for ln in ls.lines:
            add("late", ln.component, f"{ln.description} (late session, {ls.period_key})", ln.quantity, ln.unit,
                ln.unit_price, ln.money(), ln.tax_rate, ls.session_id, ls.rating_id, ln.rule)
    corrected: list[str] = []
    for c in corrections:
        # the delta per VAT rate between what was billed (rounded) and the current rating (rounded
        # line by line, as it would have been billed): the customer pays or gets back the difference;
        # both sides must be in this invoice's currency (a delta across currencies is no amount)
        require_currency(currency, c.billed_currency or currency, f"invoice {c.invoice_number}")
        now: dict[Decimal, Money] = {}
        for ln in c.lines:
            require_currency(currency, ln.currency, f"re-rating of session {c.session_id}")
            now[ln.tax_rate] = now.get(ln.tax_rate, Money.zero(currency)) + ln.money().rounded(rounding)
        for rate in sorted(set(now) | set(c.billed_net)):
            delta = now.get(rate, Money.zero(currency)) - Money(c.billed_net.get(rate, ZERO), currency)
            if delta:
                add("adjustment", "rerating", f"re-rating of session {c.session_id} billed on {c.invoice_number}",
                    Decimal(1), "each", delta.amount, delta, rate, c.session_id, c.rating_id, "",
                    f"{c.invoice_number}/{c.session_id}")
        if c.invoice_number not in corrected:
            corrected.append(c.invoice_number)
    # period discounts reduce what came before them, group by group; a fixed discount is set on the
    # account (in its currency), a posting on this invoice: both are in the invoice's currency
    for d in discounts:
        groups: dict[Decimal, Decimal] = {}
        for il in out:
            if il.kind != "adjustment":
                groups[il.tax_rate] = groups.get(il.tax_rate, ZERO) + il.net
        if d.percent is not None:
            for rate, base in sorted(groups.items()):
                if base > 0:
                    amt = base * d.percent / 100
                    add("discount", "discount", d.description, Decimal(1), "each", -amt, Money(-amt, currency),
                        rate)
        elif d.amount is not None:
            rate = d.tax_rate if d.tax_rate is not None else (max(groups, key=lambda r: groups[r]) if groups else ZERO)
            amt = min(d.amount, max(groups.get(rate, ZERO), ZERO))
            if amt > 0:
                add("discount", "discount", d.description, Decimal(1), "each", -amt, Money(-amt, currency), rate)
    for p in postings:
        add("manual", "manual", p.description, Decimal(1), "each", p.amount, Money(p.amount, currency), p.tax_rate,
            rule=p.author, corrects=p.id)
    tax_groups = _tax_groups(out, currency, rounding, treatment)
    net = sum((il.net for il in out), ZERO)
    kind = "credit_note" if net < 0 else "invoice"
    # a credit note is paid out, not collected: its "due date" is the issue date (``document_dates``)
    due = terms.due_date(issue_date) if kind == "invoice" else issue_date
    return InvoiceDraft(account_id, currency, period, kind, issue_date, due, tuple(out), tax_groups, sessions,
                        energy_kwh, tuple(corrected), tuple(unpriced), tuple(foreign))


# ---------------------------------------------------------------- holds
@dataclass(frozen=True, slots=True)
class Comparison:
    """This period against the previous one, as finance sees it on a held invoice."""

    current_net: Decimal
    previous_net: Decimal | None
    change: Decimal | None
    change_percent: Decimal | None  # None when there is no previous period or it was zero

    def to_dict(self) -> dict[str, str | None]:
        def s(v: Decimal | None) -> str | None:
            return None if v is None else format(v, "f")
        return {"current_net": s(self.current_net), "previous_net": s(self.previous_net),
                "change": s(self.change), "change_percent": s(self.change_percent)}


def compare_periods(current_net: Decimal, previous_net: Decimal | None) -> Comparison:
    if previous_net is None:
        return Comparison(current_net, None, None, None)
    change = current_net - previous_net
    pct = None if previous_net == 0 else quantize(change * 100 / abs(previous_net), 2)
    return Comparison(current_net, previous_net, change, pct)


@dataclass(frozen=True, slots=True)
class HoldReason:
    kind: str  # total | jump | flag | manual | unpriced_service | currency_mismatch
    message: str
    # the reason's parameters, for the task and for texts in other languages (the console renders a
    # reason from ``kind`` and these; ``message`` is the English text, kept for kinds a reader does not know):
    # total: gross, currency, limit · jump: percent, previous_net, current_net, currency, limit_percent ·
    # flag: flag · manual: reason · unpriced_service: item_id, service, ruleset_version ·
    # meter_signature_invalid / meter_mismatch: sessions, reasons, signed_kwh?, session_kwh? ·
    # currency_mismatch: source, currency, account_currency, refs, net?, ruleset_version?
    details: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "message": self.message, **dict(self.details)}


# hold reasons no policy may release on its own: a person must approve or reject
APPROVAL_REQUIRED = frozenset({"unpriced_service", "currency_mismatch", "meter_signature_invalid", "meter_mismatch"})

_METER_TEXT = {
    "meter_signature_invalid": "the signed meter data of session{s} {refs} could not be verified ({why})",
    "meter_mismatch": "the billed energy of session{s} {refs} does not equal the signed meter readings ({why})",
}


def _meter_reasons(draft: InvoiceDraft) -> list[HoldReason]:
    """One reason per kind of failed meter check (Eichrecht): the sessions are on the draft, but a
    person looks at them before they are billed (approve bills them as rated; reject, re-rate or
    adjust otherwise)."""
    out = []
    for kind, text in _METER_TEXT.items():
        items = [m for m in draft.meter if m.kind == kind]
        if not items:
            continue
        refs = [m.session_id for m in items]
        why = ", ".join(sorted({m.reason for m in items if m.reason})) or "no detail"
        shown = ", ".join(refs[:10]) + (f" and {len(refs) - 10} more" if len(refs) > 10 else "")
        details: list[tuple[str, str]] = [("sessions", ",".join(refs)),
                                          ("reasons", ",".join(m.reason for m in items))]
        one = items[0]
        if kind == "meter_mismatch" and one.signed_kwh is not None and one.session_kwh is not None:
            details += [("signed_kwh", format(one.signed_kwh, "f")), ("session_kwh", format(one.session_kwh, "f"))]
        message = (text.format(s="s" if len(refs) > 1 else "", refs=shown, why=why)
                   + ": review them before the invoice goes out (approving bills them as rated)")
        out.append(HoldReason(kind, message, tuple(details)))
    return out

# what a ``currency_mismatch`` reason says was left off, and what fixes it, per source
_FOREIGN_TEXT = {
    "session": ("session{s} {refs} rated in {cur}", "re-rate {them} in {acur} or correct the account's currency",
                "{they} come{s1} back as late sessions on the next invoice until billable in {acur}"),
    "late_session": ("late session{s} {refs} rated in {cur}", "re-rate {them} in {acur}",
                     "{they} come{s1} back on the next invoice until billable in {acur}"),
    "correction": ("re-rating{s} of session{s} {refs} in {cur}", "re-rate {them} in {acur}",
                   "{they} come{s1} back on the next invoice until billable in {acur}"),
    "service_item": ("service item{s} {refs} priced in {cur}",
                     ("give {them} a price of {its} own, end {them} before this period, or publish a ruleset "
                      "version in {acur}"), "{they} {are} not billed for this period later"),
}


def _foreign_reasons(draft: InvoiceDraft) -> list[HoldReason]:
    """One ``currency_mismatch`` reason per source and currency of what ``draft`` left off."""
    groups: dict[tuple[str, str], list[ForeignAmount]] = {}
    for f in draft.foreign:
        groups.setdefault((f.source, f.currency), []).append(f)
    out = []
    acur = draft.currency
    for (source, cur), items in groups.items():
        refs = [f.ref for f in items]
        details: list[tuple[str, str]] = [("source", source), ("currency", cur), ("account_currency", acur),
                                          ("refs", ",".join(refs))]
        nets = [f.net for f in items if f.net is not None]
        if nets:
            details.append(("net", format(sum(nets, ZERO), "f")))
        if source == "ruleset_version":
            what = f"the base fee, allowances and tiers of product '{items[0].description}'" \
                if items[0].description else "no product fee of it"
            message = (f"ruleset version {refs[0]} prices in {cur}, but the account bills in {acur}: {what} "
                       f"{'are' if items[0].description else 'is'} left off this draft (publish a version in "
                       f"{acur} or correct the account's currency, then re-assemble; approving bills the period "
                       f"without them)")
            details.append(("ruleset_version", refs[0]))
        else:
            many = len(refs) > 1
            shown = ", ".join(refs[:10]) + (f" and {len(refs) - 10} more" if len(refs) > 10 else "")
            words = {"s": "s" if many else "", "s1": "" if many else "s", "them": "them" if many else "it",
                     "they": "they" if many else "it", "its": "their" if many else "its",
                     "are": "are" if many else "is", "refs": shown, "cur": cur, "acur": acur}
            left, fix, later = (t.format(**words) for t in _FOREIGN_TEXT[source])
            amount = f" (net {format(sum(nets, ZERO), 'f')} {cur})" if nets else ""
            message = (f"{left}{amount}, but the account bills in {acur}: left off this draft, not converted "
                       f"({fix}, then re-assemble; approving bills the period without {words['them']}, and "
                       f"{later})")
        out.append(HoldReason("currency_mismatch", message, tuple(details)))
    return out


def evaluate_holds(draft: InvoiceDraft, policy: HoldPolicy, comparison: Comparison,
                   flags: frozenset[str] = frozenset(), manual_holds: Sequence[str] = (),
                   ruleset_version: str = "") -> tuple[HoldReason, ...]:
    """Why this draft must wait for finance (empty: it may be finalized at once).

    Every service item the ruleset version (``ruleset_version``, for the message) does not price,
    and everything priced in another currency than the account's (``InvoiceDraft.foreign``, one
    ``currency_mismatch`` reason per source and currency), holds the draft whatever the policy
    says, and ``APPROVAL_REQUIRED`` keeps an auto-releasing policy from letting it go unseen."""
    out: list[HoldReason] = []
    version = ruleset_version or "(none)"
    for u in draft.unpriced:
        out.append(HoldReason(
            "unpriced_service",
            f"service item {u.item_id} names service '{u.service}', which ruleset version {version} does not "
            f"price: it is left off this draft (give the item a price of its own, end it before this period, or "
            f"publish a version with the service, then re-assemble; approving bills the period without it)",
            (("item_id", u.item_id), ("service", u.service), ("ruleset_version", version))))
    out.extend(_foreign_reasons(draft))
    out.extend(_meter_reasons(draft))
    for r in policy.rules:
        if r.kind == "total" and r.amount is not None and draft.gross_total > r.amount:
            out.append(HoldReason("total", f"gross total {draft.gross_total} {draft.currency} is above {r.amount}",
                                  (("gross", format(draft.gross_total, "f")), ("currency", draft.currency),
                                   ("limit", format(r.amount, "f")))))
        elif (r.kind == "jump" and r.percent is not None and comparison.change_percent is not None
              and comparison.change_percent > r.percent):
            out.append(HoldReason("jump", f"net rose {comparison.change_percent}% against the previous period "
                                          f"({comparison.previous_net} -> {comparison.current_net}), "
                                          f"more than {r.percent}%",
                                  (("percent", format(comparison.change_percent, "f")),
                                   ("previous_net", format(comparison.previous_net, "f")),
                                   ("current_net", format(comparison.current_net, "f")),
                                   ("currency", draft.currency), ("limit_percent", format(r.percent, "f")))))
        elif r.kind == "flag" and r.flag in flags:
            out.append(HoldReason("flag", f"the account is flagged '{r.flag}'", (("flag", r.flag),)))
    for reason in manual_holds:
        out.append(HoldReason("manual", f"manual hold: {reason}" if reason else "manual hold", (("reason", reason),)))
    return tuple(out)


def draft_to_dict(d: InvoiceDraft) -> dict[str, Any]:
    return {"account_id": d.account_id, "currency": d.currency, "period": d.period.to_dict(), "kind": d.kind,
            "issue_date": d.issue_date.isoformat(), "due_date": d.due_date.isoformat(),
            "net": format(d.net_total, "f"), "tax": format(d.tax_total, "f"), "gross": format(d.gross_total, "f"),
            "tax_groups": [g.to_dict() for g in d.tax_groups],
            "lines": [ln.to_dict() for ln in d.lines], "corrects": list(d.corrects)}

