"""Meaning for ``billing``, ``hold``, ``service``, ``payments`` and ``dunning`` policy blocks.

The grammar gives each policy kind its own statements (typed nodes in ``dsl.ast``) and the checker
reports what does not fit (E212 statement, E206 time zone, E303 percentage, E310 value); this
module turns the kinds the billing cycle needs into the runtime's frozen values
(``runtime.invoicing``). It reads checked rulesets: a compiled ruleset carries the result
(``CompiledRuleset.policies``), read once per content hash. Accepted forms::

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
    payments sepa "Direct debit" {
      method sepa_direct_debit           # an account without a contract pays so (bank_transfer, card, invoice)
      pre_notification 5 days            # the invoice's debit date is at least 5 days after it
      lead_time 5 days                   # a collection run takes items due within 5 days
      minimum amount 1.00                # smaller open items are not debited
      return charge bank_fee             # a return costs the customer the bank's fee
      return charge 3.00 for AM04, MS02  # ... a flat 3.00 for these EPC reason codes
      return charge none for MD06        # ... nothing for these
    }

A recurring service item that starts or ends inside a period is billed pro rata by its local days
in the period (``prorate daily``, the default); ``prorate none`` bills it in full for any day. It
is written per block (a ``prorate none`` statement applies to every item below it) or per item.

    dunning standard "Standard dunning" {
      stage 1 after 7 days reminder      # from the oldest overdue item's due date (+ grace)
      stage 2 after 14 days fee 5.00     # from the previous stage; 'from due_date' to count from the due date
      stage 3 after 14 days fee 10.00 vat 19%, approval required then block_tokens and hand_over
      ignore below 5.00                  # a case runs while at least this is overdue
      grace 3 days
      interest 9 points over base rate for businesses   # 'for consumers'; without: everyone
      base rate 1.27% valid 2025-07-01..2026-01-01       # added to runtime.dunning.GERMAN_BASE_RATES
      flat fee 40 for businesses         # § 288 (5) BGB, once per overdue invoice
      for group fleet                    # customers of these groups; a block without: everyone else
      pause on dispute
      escalate after 2 days              # a stage approval task left this long is escalated
    }

A stage fee without a tax word (or with ``untaxed``) is outside the scope of VAT (damages).

A service item is known to billing accounts as ``<block>.<item>`` (``supervision.ac_charger``).
Its VAT rate is the item's own, else the block's, else the ruleset's if its tariffs agree on one
(the default tariff's when there is one); failing all of those it is 0% with warning W003.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from types import MappingProxyType

from dsl import ast as A
from dsl.checker import TIME_UNITS, check_policies
from dsl.diagnostics import Diagnostic
from runtime.bank.payments import PAYMENT_METHODS, PaymentsPolicy, ReturnChargeRule
from runtime.dunning import (
    GERMAN_BASE_RATES,
    BaseRate,
    DunningPolicy,
    DunningStage,
    FlatFeeRule,
    InterestRule,
)
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

__all__ = ["Policies", "billing_policy", "dunning_policy", "hold_policy", "interpret_policies", "payments_policy",
           "read_policies", "service_policy", "service_warnings"]


@dataclass(frozen=True, slots=True)
class Policies:
    billing: tuple[BillingPolicy, ...]
    holds: tuple[HoldPolicy, ...]
    # "<block>.<item>" -> price, in source order
    services: Mapping[str, ServicePrice] = field(default_factory=lambda: MappingProxyType({}))
    payments: tuple[PaymentsPolicy, ...] = ()
    dunning: tuple[DunningPolicy, ...] = ()

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

    def payments_named(self, name: str | None = None) -> PaymentsPolicy | None:
        """The payments policy (the first block, or the one named)."""
        for p in self.payments:
            if name is None or p.name == name:
                return p
        return None


def _duration(d: A.Duration) -> timedelta | None:
    unit = TIME_UNITS.get(d.unit.value)
    if unit is None or d.amount.value <= 0:
        return None  # reported by the checker
    return timedelta(seconds=int(d.amount.value * unit))


def billing_policy(pol: A.Policy) -> BillingPolicy:
    cycle, cut_off, tz, terms = "monthly", 1, "", PaymentTerms()
    for st in pol.statements:
        if isinstance(st, A.BillingCycle) and st.cycle.value in CYCLES:
            cycle = st.cycle.value
        elif isinstance(st, A.CutOff) and st.day.value == st.day.value.to_integral_value() \
                and 1 <= st.day.value <= 28:
            cut_off = int(st.day.value)
        elif isinstance(st, A.BillingZone):
            tz = st.zone.value
        elif isinstance(st, A.Terms):
            days = int(st.days.value) if st.days is not None else 0
            terms = PaymentTerms(st.kind, days)
    return BillingPolicy(pol.name, cycle, cut_off, tz, terms)


def hold_policy(pol: A.Policy) -> HoldPolicy:
    rules: list[HoldRule] = []
    auto: timedelta | None = None
    escalate: timedelta | None = timedelta(hours=48)
    for st in pol.statements:
        if isinstance(st, A.HoldWhen):
            if st.kind == "total" and st.amount is not None:
                rules.append(HoldRule("total", amount=st.amount.value))
            elif st.kind == "jump" and st.percent is not None:
                rules.append(HoldRule("jump", percent=st.percent.value))
            elif st.kind == "flag" and st.flag is not None:
                rules.append(HoldRule("flag", flag=st.flag.value))
        elif isinstance(st, A.AutoRelease):
            auto = _duration(st.after)
        elif isinstance(st, A.Escalate):
            escalate = _duration(st.after) or escalate
    approval = bool(pol.of(A.Approval))
    # without auto-release there is no way out but a person: approval is then implied
    return HoldPolicy(pol.name, tuple(rules), approval or auto is None, auto, escalate)


def _whole_days(d: A.Duration, lo: int) -> int | None:
    if d.unit.value not in ("day", "days", "d") or d.amount.value != d.amount.value.to_integral_value():
        return None  # reported by the checker
    days = int(d.amount.value)
    return days if lo <= days <= 60 else None


def payments_policy(pol: A.Policy) -> PaymentsPolicy:
    """A ``payments`` block; a statement the checker refuses is left out (the value stays None)."""
    from runtime.bank.payments import RETURN_CHARGE_WORDS, RETURN_REASONS

    method: str | None = None
    pre: int | None = None
    lead: int | None = None
    minimum: Decimal | None = None
    charges: list[ReturnChargeRule] = []
    for st in pol.statements:
        if isinstance(st, A.PaymentMethod) and method is None and st.method.value in PAYMENT_METHODS:
            method = st.method.value
        elif isinstance(st, A.PaymentWindow) and st.kind == "pre_notification" and pre is None:
            pre = _whole_days(st.after, 0)
        elif isinstance(st, A.PaymentWindow) and st.kind == "lead_time" and lead is None:
            lead = _whole_days(st.after, 1)
        elif isinstance(st, A.CollectionMinimum) and minimum is None and st.amount.value >= 0:
            minimum = st.amount.value
        elif isinstance(st, A.ReturnCharge):
            if st.named is not None and st.named.value not in RETURN_CHARGE_WORDS:
                continue
            if st.amount is not None and st.amount.value < 0:
                continue
            reasons = tuple(n.value for n in st.reasons if n.value in RETURN_REASONS)
            if st.reasons and not reasons:
                continue
            charges.append(ReturnChargeRule(st.amount.value if st.amount is not None else None,
                                            st.named is not None and st.named.value == "bank_fee", reasons,
                                            f"payments {pol.name}, line {st.span.line}"))
    return PaymentsPolicy(pol.name, method, pre, lead, minimum, tuple(charges))


def _days(d: A.Duration) -> int:
    """A dunning wait in whole days (a wait given in hours counts the days it touches)."""
    td = _duration(d)
    return math.ceil(td.total_seconds() / 86400) if td is not None else 0


def dunning_policy(pol: A.Policy, currency: str = "EUR") -> DunningPolicy:
    """A ``dunning`` block as the runtime applies it (``runtime.dunning``)."""
    stages = tuple(DunningStage(
        int(st.number.value), _days(st.after), st.anchor.value if st.anchor is not None else "previous_stage",
        st.reminder, st.fee.value if st.fee is not None else None,
        st.fee_vat.value if st.fee_vat is not None and not st.fee_untaxed else None, st.approval,
        tuple(a.value for a in st.actions)) for st in pol.of(A.Stage))
    minimum = pol.of(A.MinimumAmount)
    grace = pol.of(A.Grace)
    groups = pol.of(A.ForGroups)
    escalate = pol.of(A.Escalate)
    rates = tuple(BaseRate(st.rate.value, date.fromisoformat(st.valid_from),
                           date.fromisoformat(st.valid_until) if st.valid_until else None)
                  for st in pol.of(A.BaseRate))
    return DunningPolicy(
        pol.name, stages, currency, pol.title, minimum[0].amount.value if minimum else Decimal(0),
        _days(grace[0].after) if grace else 0,
        tuple(InterestRule(st.points.value, st.debtors.value if st.debtors else None) for st in pol.of(A.Interest)),
        tuple(FlatFeeRule(st.amount.value, st.debtors.value if st.debtors else None) for st in pol.of(A.FlatFee)),
        tuple(g.value for g in groups[0].groups) if groups else (), bool(pol.of(A.PauseOnDispute)),
        _days(escalate[0].after) if escalate else None, GERMAN_BASE_RATES + rates)


def _ruleset_vat(rs: A.Ruleset) -> Decimal | None:
    """The VAT rate a service inherits when neither it nor its block names one."""
    if rs.default_tariff is not None:
        for t in rs.tariffs:
            if t.name == rs.default_tariff.value:
                return t.vat
    rates = {t.vat for t in rs.tariffs}
    return rates.pop() if len(rates) == 1 else None


def service_policy(pol: A.Policy, inherited_vat: Decimal | None = None) -> list[ServicePrice]:
    """The items of one ``service`` block, priced (the block's ``vat`` applies to all its items, a
    block-level ``prorate`` to the items below it)."""
    vats = pol.of(A.ServiceVat)
    block_vat = vats[-1].rate.value if vats else None
    block_prorate = "daily"
    out: list[ServicePrice] = []
    seen: set[str] = set()
    for st in pol.statements:
        if isinstance(st, A.Prorate) and st.mode.value in PRORATIONS:
            block_prorate = st.mode.value
        elif isinstance(st, A.ServiceItem) and st.name.value not in seen and st.per.value in PRICE_PERIODS:
            seen.add(st.name.value)
            rate = st.vat.value if st.vat is not None else block_vat if block_vat is not None else inherited_vat
            prorate = st.prorate.value if st.prorate is not None and st.prorate.value in PRORATIONS else block_prorate
            title = st.description or f"{pol.title}: {st.name.value.replace('_', ' ')}"
            out.append(ServicePrice(f"{pol.name}.{st.name.value}", title, st.price.value, st.per.value,
                                    rate if rate is not None else Decimal(0),
                                    f"service {pol.name}.{st.name.value}, line {st.span.line}", prorate))
    return out


def _has_no_vat(pol: A.Policy, inherited: Decimal | None) -> bool:
    if inherited is not None or pol.of(A.ServiceVat):
        return False
    return any(st.vat is None for st in pol.of(A.ServiceItem))


def service_warnings(ruleset: A.Ruleset, filename: str = "<ruleset>") -> list[Diagnostic]:
    """W003 for a service block whose items fall back to 0% VAT."""
    blocks = [p for p in ruleset.policies if p.kind == "service"]
    inherited = _ruleset_vat(ruleset) if blocks else None
    return [Diagnostic("W003", "warning", f"service '{pol.name}' has no VAT rate; its lines carry 0%", pol.name_span,
                       "add 'vat 19%' to the block (or 'vat 0%' to say so explicitly)", filename)
            for pol in blocks if _has_no_vat(pol, inherited)]


def read_policies(ruleset: A.Ruleset) -> Policies:
    """Billing, hold, service, payments and dunning policies of a checked ruleset."""
    services: dict[str, ServicePrice] = {}
    blocks = [p for p in ruleset.policies if p.kind == "service"]
    inherited = _ruleset_vat(ruleset) if blocks else None
    for pol in blocks:
        # a service price is in its ruleset's currency: billing refuses to add it to an invoice in another
        services.update((sp.name, replace(sp, currency=ruleset.currency)) for sp in service_policy(pol, inherited))
    return Policies(tuple(billing_policy(p) for p in ruleset.policies if p.kind == "billing"),
                    tuple(hold_policy(p) for p in ruleset.policies if p.kind == "hold"),
                    MappingProxyType(services),
                    tuple(payments_policy(p) for p in ruleset.policies if p.kind == "payments"),
                    tuple(dunning_policy(p, ruleset.currency) for p in ruleset.policies if p.kind == "dunning"))


def interpret_policies(ruleset: A.Ruleset, filename: str = "<ruleset>") -> tuple[Policies, list[Diagnostic]]:
    """The policies of a ruleset and the checker's diagnostics on its policy blocks. A compiled
    ruleset has them already (``CompiledRuleset.policies``); this is for an AST on its own."""
    return read_policies(ruleset), check_policies(ruleset, filename) + service_warnings(ruleset, filename)
