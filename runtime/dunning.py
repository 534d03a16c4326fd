"""Dunning: which stage is due for a customer's overdue items, and what it charges.

Pure functions of (policy, items, today, what the case reached so far); the DunningWorkflow asks
them at every wake-up and stores what they answer. Nothing here reads a clock or a database.

The rules, as ``dunning`` blocks of a ruleset state them (``dsl.policies.dunning_policy``):

- An item is **overdue** once today is past its due date plus the policy's grace days. Items with
  nothing open, credit balances and disputed items are not dunned; with ``pause on dispute`` one
  disputed item pauses the whole case (the letter would list it).
- A case runs while what is overdue (invoices and the fees and interest charged before) adds up to
  at least the policy's minimum (``ignore below 5.00``); below it, the case ends.
- **Stage dates**: stage 1 waits its days from the oldest overdue item's due date plus the grace
  days; a later stage waits its days from the day the previous stage was reached (``from
  previous_stage``, the default) or from that due date (``from due_date``).
- **Fees**: a stage's fee is net; ``vat 19%`` adds VAT (a fee for a service), ``untaxed`` or no tax
  word keeps it outside the scope of VAT (in Germany a dunning fee is damages, § 288 (4) BGB).
- **Default interest** (§ 288 BGB): per year, the base rate plus the policy's points (5 for
  consumers, 9 for businesses in German law), simple interest on each overdue invoice's open
  amount, day by day from the day after its due date, actual/365, the base rate taken from the
  data (``BaseRate``, valid from/until) for each day. Each stage charges the days since the
  interest charged before (``InterestLine.start``/``end``); one rounding per line, half-up.
- **The flat fee** (§ 288 (5) BGB, 40 EUR) for business debtors where the policy says so: once per
  overdue invoice, with the first stage that is not a reminder.

Amounts are ``Decimal`` and every amount carries its currency; a case is in one currency.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Final, Literal

from runtime.money import ZERO, CurrencyMismatch, minor_unit, quantize

__all__ = [
    "ACTIONS",
    "GERMAN_BASE_RATES",
    "BaseRate",
    "BaseRateUnknown",
    "CaseState",
    "DunningPolicy",
    "DunningStage",
    "FeeCharge",
    "FlatFeeRule",
    "InterestLine",
    "InterestRule",
    "OverdueItem",
    "StagePlan",
    "Step",
    "base_rate_on",
    "debtor_kind",
    "fee_charge",
    "interest_for",
    "next_step",
    "overdue_items",
    "plan_stage",
    "select_policy",
]

ACTIONS: Final = ("block_tokens", "suspend_contract", "hand_over")
Debtor = Literal["consumers", "businesses"]
# receivable item kinds that dunning itself opens (collected and matched like invoices)
CHARGE_KINDS: Final = ("dunning_fee", "interest", "flat_fee")


class BaseRateUnknown(ValueError):
    """Interest was asked for a day the base-rate data does not cover."""

    def __init__(self, day: date) -> None:
        super().__init__(f"no base rate is known for {day.isoformat()}: add 'base rate N% valid FROM..UNTIL' "
                         "to the dunning policy")
        self.day = day


@dataclass(frozen=True, slots=True)
class BaseRate:
    """The base rate (percent per year) valid from ``valid_from`` until ``valid_until`` (exclusive;
    None: until further notice)."""

    rate: Decimal
    valid_from: date
    valid_until: date | None = None

    def covers(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_until is None or day < self.valid_until)


# Basiszinssatz (§ 247 BGB) as the Deutsche Bundesbank publishes it, each for a half-year. The
# table ends where our data ends: a later half-year is added by the policy (``base rate ...``)
# rather than assumed.
GERMAN_BASE_RATES: Final[tuple[BaseRate, ...]] = (
    BaseRate(Decimal("-0.88"), date(2016, 7, 1), date(2023, 1, 1)),
    BaseRate(Decimal("1.62"), date(2023, 1, 1), date(2023, 7, 1)),
    BaseRate(Decimal("3.12"), date(2023, 7, 1), date(2024, 1, 1)),
    BaseRate(Decimal("3.62"), date(2024, 1, 1), date(2024, 7, 1)),
    BaseRate(Decimal("3.37"), date(2024, 7, 1), date(2025, 1, 1)),
    BaseRate(Decimal("2.27"), date(2025, 1, 1), date(2025, 7, 1)),
    BaseRate(Decimal("1.27"), date(2025, 7, 1), date(2026, 1, 1)),
)


def base_rate_on(day: date, rates: Sequence[BaseRate]) -> Decimal:
    """The base rate in force on ``day``; the last rate listed that covers it wins (a policy's own
    rates come after the shipped table and override it)."""
    found: Decimal | None = None
    for r in rates:
        if r.covers(day):
            found = r.rate
    if found is None:
        raise BaseRateUnknown(day)
    return found


@dataclass(frozen=True, slots=True)
class DunningStage:
    number: int
    after_days: int
    anchor: str = "previous_stage"  # due_date | previous_stage (stage 1 always counts from the due date)
    reminder: bool = False
    fee: Decimal | None = None  # net
    fee_vat: Decimal | None = None  # percent; None: outside the scope of VAT
    approval: bool = False
    actions: tuple[str, ...] = ()

    @property
    def letter(self) -> str:
        return "reminder" if self.reminder else "dunning"


@dataclass(frozen=True, slots=True)
class InterestRule:
    points: Decimal  # percentage points over the base rate, per year
    debtors: str | None = None  # consumers | businesses | None: everyone


@dataclass(frozen=True, slots=True)
class FlatFeeRule:
    amount: Decimal
    debtors: str | None = None


@dataclass(frozen=True, slots=True)
class DunningPolicy:
    name: str
    stages: tuple[DunningStage, ...]
    currency: str = "EUR"
    title: str = ""
    minimum: Decimal = ZERO
    grace_days: int = 0
    interest: tuple[InterestRule, ...] = ()
    flat_fees: tuple[FlatFeeRule, ...] = ()
    groups: tuple[str, ...] = ()  # empty: the policy for customers no other policy names
    pause_on_dispute: bool = False
    escalate_after_days: int | None = None  # an approval task left this long is escalated
    base_rates: tuple[BaseRate, ...] = GERMAN_BASE_RATES
    # days a letter gives to pay when no later stage sets the pace
    final_days: int = 14

    def stage(self, number: int) -> DunningStage | None:
        return self.stages[number - 1] if 1 <= number <= len(self.stages) else None

    def interest_points(self, debtor: str) -> Decimal | None:
        """The points for this kind of debtor: a rule naming it wins over one for everyone."""
        general = None
        for r in self.interest:
            if r.debtors == debtor:
                return r.points
            if r.debtors is None:
                general = r.points
        return general

    def flat_fee(self, debtor: str) -> Decimal | None:
        general = None
        for f in self.flat_fees:
            if f.debtors == debtor:
                return f.amount
            if f.debtors is None:
                general = f.amount
        return general


def select_policy(policies: Sequence[DunningPolicy], groups: Iterable[str]) -> DunningPolicy | None:
    """The policy for a customer in ``groups``: the first naming one of them, else the first that
    names none (a fleet on net 60 gets its own, everyone else the standard one)."""
    gs = set(groups)
    for p in policies:
        if p.groups and gs & set(p.groups):
            return p
    return next((p for p in policies if not p.groups), None)


def debtor_kind(customer_kind: str) -> Debtor:
    """``business`` customers are businesses for § 288 BGB; everyone else a consumer."""
    return "businesses" if customer_kind == "business" else "consumers"


@dataclass(frozen=True, slots=True)
class OverdueItem:
    """An open item as dunning sees it: ``open`` is what is open today (signed sum of its entries)."""

    id: str
    number: str
    kind: str  # invoice | dunning_fee | interest | flat_fee | credit_balance
    currency: str
    open: Decimal
    due_date: date
    disputed: bool = False
    amount: Decimal = ZERO  # what it opened with (letters show it)
    issue_date: date | None = None


@dataclass(frozen=True, slots=True)
class CaseState:
    """What a case reached: the last stage (0: none yet) and the day it was reached, and until
    which day interest was charged per invoice item."""

    stage: int = 0
    stage_on: date | None = None
    interest_until: tuple[tuple[str, date], ...] = ()
    flat_fee_items: tuple[str, ...] = ()  # invoice items charged the flat fee already
    refused: bool = False  # the last stage's approval was refused: no escalation

    def interest_charged_until(self, item_id: str) -> date | None:
        for i, d in self.interest_until:
            if i == item_id:
                return d
        return None


StepKind = Literal["close", "wait", "paused", "stage", "done"]


@dataclass(frozen=True, slots=True)
class Step:
    """What the workflow does next. ``close``: nothing overdue at or above the minimum; ``wait``
    until ``on``; ``paused``: an item is disputed; ``stage``: reach stage ``stage`` today; ``done``:
    every stage was reached (or escalation refused), the case waits for payment."""

    kind: StepKind
    on: date | None = None
    stage: int = 0
    overdue: Decimal = ZERO
    currency: str = ""
    reason: str = ""


def overdue_items(policy: DunningPolicy, items: Iterable[OverdueItem], today: date) -> list[OverdueItem]:
    """The items a letter would list today: something open, past due plus grace, not disputed
    (oldest due first, then by id)."""
    out = []
    for it in items:
        if it.currency != policy.currency:
            raise CurrencyMismatch(f"a dunning case in {policy.currency} was given an item in {it.currency}",
                                   policy.currency, it.currency, it.id)
        if it.open > 0 and it.kind != "credit_balance" and not it.disputed \
                and it.due_date + timedelta(days=policy.grace_days) < today:
            out.append(it)
    out.sort(key=lambda i: (i.due_date, i.id))
    return out


def next_step(policy: DunningPolicy, items: Sequence[OverdueItem], today: date, case: CaseState) -> Step:
    """What is due for a case on ``today``."""
    cur = policy.currency
    if policy.pause_on_dispute and any(i.disputed and i.open > 0 for i in items):
        return Step("paused", currency=cur, reason="disputed")
    due = overdue_items(policy, items, today)
    total = sum((i.open for i in due), ZERO)
    # an item still within its grace days is not overdue yet: wait for it rather than closing
    later = [i for i in items if i.open > 0 and not i.disputed and i.kind != "credit_balance" and i not in due]
    if not due or total < policy.minimum or total <= 0:
        if due or not later:
            return Step("close", overdue=total, currency=cur,
                        reason="below_minimum" if due else "nothing_overdue")
        first = min(i.due_date for i in later) + timedelta(days=policy.grace_days + 1)
        return Step("wait", on=first, overdue=total, currency=cur, reason="not_yet_overdue")
    if case.refused:
        return Step("done", overdue=total, currency=cur, reason="approval_refused")
    nxt = policy.stage(case.stage + 1)
    if nxt is None:
        return Step("done", overdue=total, currency=cur, reason="last_stage_reached")
    on = stage_date(policy, nxt, due[0].due_date, case)
    if on > today:
        return Step("wait", on=on, stage=nxt.number, overdue=total, currency=cur)
    return Step("stage", on=today, stage=nxt.number, overdue=total, currency=cur)


def stage_date(policy: DunningPolicy, stage: DunningStage, oldest_due: date, case: CaseState) -> date:
    """The day ``stage`` is due, given the oldest overdue item's due date and the case so far."""
    from_due = oldest_due + timedelta(days=policy.grace_days + stage.after_days)
    if stage.number == 1 or stage.anchor == "due_date" or case.stage_on is None:
        return from_due
    return case.stage_on + timedelta(days=stage.after_days)


@dataclass(frozen=True, slots=True)
class FeeCharge:
    """A fee as an item of its own: ``net`` plus ``vat`` at ``vat_rate`` is ``gross`` (what the item
    opens with). ``treatment``: ``taxable`` or ``not_taxable`` (damages)."""

    kind: str  # dunning_fee | flat_fee
    net: Decimal
    vat_rate: Decimal | None
    vat: Decimal
    gross: Decimal
    currency: str
    treatment: str
    item_id: str = ""  # the invoice item a flat fee is for


def fee_charge(kind: str, net: Decimal, vat_rate: Decimal | None, currency: str, item_id: str = "") -> FeeCharge:
    places = minor_unit(currency)
    net = quantize(net, places)
    if vat_rate is None:
        return FeeCharge(kind, net, None, ZERO, net, currency, "not_taxable", item_id)
    vat = quantize(net * vat_rate / 100, places)
    return FeeCharge(kind, net, vat_rate, vat, net + vat, currency, "taxable", item_id)


@dataclass(frozen=True, slots=True)
class InterestPiece:
    start: date  # first day counted
    end: date  # last day counted
    days: int
    rate: Decimal  # percent per year: base rate + points


@dataclass(frozen=True, slots=True)
class InterestLine:
    """Interest on one item for the days ``start``..``end`` (both counted): ``basis`` is the exact
    sum of principal x rate (percent) x days, ``exact`` is ``basis / 36500`` at Decimal's precision,
    ``amount`` is rounded once from it to the currency's minor unit."""

    item_id: str
    number: str
    principal: Decimal
    currency: str
    start: date
    end: date
    pieces: tuple[InterestPiece, ...]
    basis: Decimal
    exact: Decimal
    amount: Decimal


def interest_for(item: OverdueItem, points: Decimal, start: date, end: date,
                 rates: Sequence[BaseRate]) -> InterestLine | None:
    """Simple interest on ``item.open`` for each day ``start``..``end`` at base rate + ``points``
    per year (actual/365), split where the base rate changes; None when there are no days."""
    if end < start or item.open <= 0:
        return None
    pieces: list[InterestPiece] = []
    day = start
    while day <= end:
        rate = base_rate_on(day, rates) + points
        run_end = day
        while run_end < end and base_rate_on(run_end + timedelta(days=1), rates) + points == rate:
            run_end += timedelta(days=1)
        pieces.append(InterestPiece(day, run_end, (run_end - day).days + 1, rate))
        day = run_end + timedelta(days=1)
    # a negative rate (base rate below minus the points) never pays the debtor
    basis = sum((item.open * max(p.rate, ZERO) * p.days for p in pieces), ZERO)
    exact = basis / Decimal(36500)
    amount = quantize(exact, minor_unit(item.currency))
    return InterestLine(item.id, item.number, item.open, item.currency, start, end, tuple(pieces), basis, exact,
                        amount)


@dataclass(frozen=True, slots=True)
class StagePlan:
    """What reaching a stage today means: the letter lists ``items`` (and the interest and fees
    charged now, which become items of their own), asks for ``total`` by ``pay_by``."""

    stage: int
    letter: str  # reminder | dunning
    today: date
    currency: str
    items: tuple[OverdueItem, ...]
    fee: FeeCharge | None
    flat_fees: tuple[FeeCharge, ...]
    interest: tuple[InterestLine, ...]
    approval: bool
    actions: tuple[str, ...]
    pay_by: date
    policy: str
    debtor: str
    overdue: Decimal = ZERO  # what the listed items have open
    total: Decimal = ZERO  # overdue + everything charged now
    interest_until: tuple[tuple[str, date], ...] = field(default_factory=tuple)

    @property
    def charged(self) -> Decimal:
        fees = (self.fee.gross if self.fee else ZERO) + sum((f.gross for f in self.flat_fees), ZERO)
        return fees + sum((i.amount for i in self.interest), ZERO)


def plan_stage(policy: DunningPolicy, stage_no: int, items: Sequence[OverdueItem], today: date, case: CaseState,
               debtor: str) -> StagePlan:
    """The letter, fees and interest of stage ``stage_no`` reached on ``today``."""
    st = policy.stage(stage_no)
    if st is None:
        raise ValueError(f"policy '{policy.name}' has no stage {stage_no}")
    due = overdue_items(policy, items, today)
    cur = policy.currency
    fee = fee_charge("dunning_fee", st.fee, st.fee_vat, cur) if st.fee else None
    flat: list[FeeCharge] = []
    flat_amount = policy.flat_fee(debtor)
    if flat_amount and not st.reminder:
        flat = [fee_charge("flat_fee", flat_amount, None, cur, i.id) for i in due
                if i.kind == "invoice" and i.id not in case.flat_fee_items]
    lines: list[InterestLine] = []
    until = dict(case.interest_until)
    points = policy.interest_points(debtor)
    if points is not None:
        for it in due:
            if it.kind != "invoice":
                continue  # no interest on fees or on interest (§ 289 BGB)
            charged = case.interest_charged_until(it.id)
            start = (charged or it.due_date) + timedelta(days=1)
            line = interest_for(it, points, start, today, policy.base_rates)
            if line is not None and line.amount > 0:
                lines.append(line)
                until[it.id] = today
    nxt = policy.stage(stage_no + 1)
    pay_by = today + timedelta(days=nxt.after_days if nxt is not None and nxt.after_days > 0 else policy.final_days)
    # what earlier letters charged and is still open is owed too, due or not yet (a fee falls due
    # on the letter's pay-by day, often the very day the next stage is reached): listed and in the total
    listed = due + [i for i in items if i.kind in CHARGE_KINDS and i.open > 0 and not i.disputed and i not in due]
    listed.sort(key=lambda i: (i.due_date, i.id))
    overdue = sum((i.open for i in listed), ZERO)
    plan = StagePlan(st.number, st.letter, today, cur, tuple(listed), fee, tuple(flat), tuple(lines), st.approval,
                     st.actions, pay_by, policy.name, debtor, overdue, ZERO, tuple(sorted(until.items())))
    return _with_total(plan)


def _with_total(p: StagePlan) -> StagePlan:
    return replace(p, total=p.overdue + p.charged)
