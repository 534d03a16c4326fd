"""The tenant's payments policy as the runtime uses it: how an account pays by default, how long
before a direct debit the customer is notified, which items a collection run takes, the smallest
amount worth a debit, and what a returned debit costs the customer.

It is read from a ruleset's ``payments`` block (``dsl.policies``); a value the block does not state
is ``None`` and the caller falls back to its own setting (the creditor account's lead time and
return-charge switch, the SEPA rulebook's 14 days of pre-notification).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Final

__all__ = [
    "DEFAULT_PRE_NOTIFICATION_DAYS",
    "PAYMENT_METHODS",
    "RETURN_CHARGE_WORDS",
    "RETURN_REASONS",
    "PaymentsPolicy",
    "ReturnChargeRule",
    "prenotified_date",
]

# the contract's spellings (``api.areas.customers``)
PAYMENT_METHODS: Final = ("sepa_direct_debit", "bank_transfer", "card", "invoice")
# the EPC SDD rulebook's reason codes for R-transactions (returns, refusals, rejects, refunds)
RETURN_REASONS: Final = ("AC01", "AC04", "AC06", "AC13", "AG01", "AG02", "AM04", "AM05", "BE05", "CNOR", "DNOR",
                         "FF01", "MD01", "MD02", "MD06", "MD07", "MS02", "MS03", "RC01", "RR01", "RR02", "RR03",
                         "RR04", "SL01")
# ``return charge bank_fee``: the fee the bank took; ``return charge none``: nothing
RETURN_CHARGE_WORDS: Final = ("bank_fee", "none")
# without an agreement the SEPA Core rulebook wants the notice 14 calendar days before the debit;
# the invoice is the notice, the contract's terms the agreement: a tenant whose terms say less
# states its period in the payments policy (see ``prenotified_date``)
DEFAULT_PRE_NOTIFICATION_DAYS: Final = 14


@dataclass(frozen=True, slots=True)
class ReturnChargeRule:
    """``amount`` a flat charge, else the bank's fee (``bank_fee``) or nothing (``none``);
    ``reasons`` the EPC codes it applies to (empty: any return)."""

    amount: Decimal | None = None
    bank_fee: bool = False
    reasons: tuple[str, ...] = ()
    source: str = ""  # "payments sepa, line 7"

    def charge(self, bank_fee: Decimal) -> Decimal:
        if self.amount is not None:
            return self.amount
        return bank_fee if self.bank_fee else Decimal(0)


@dataclass(frozen=True, slots=True)
class PaymentsPolicy:
    name: str = ""
    method: str | None = None
    pre_notification_days: int | None = None
    lead_time_days: int | None = None
    minimum: Decimal | None = None
    return_charges: tuple[ReturnChargeRule, ...] = ()

    def return_charge_rule(self, reason: str) -> ReturnChargeRule | None:
        """The rule for a return with ``reason``: one naming the code wins over one for any
        return, whatever their order; None when the policy says nothing about it."""
        code = reason.strip().upper()
        for r in self.return_charges:
            if code and code in r.reasons:
                return r
        for r in self.return_charges:
            if not r.reasons:
                return r
        return None

    def return_charge(self, reason: str, bank_fee: Decimal) -> Decimal | None:
        """What the customer is charged for a return (None: the policy does not say)."""
        rule = self.return_charge_rule(reason)
        return None if rule is None else rule.charge(bank_fee)


def prenotified_date(due_date: date, issue_date: date, pre_notification_days: int | None) -> date:
    """The day a direct debit is collected, as the invoice notifies it: its due date, but never
    sooner after the invoice (the notice) than the policy's pre-notification period. Without a
    period in the policy it is the due date (the payment terms are the agreement)."""
    if pre_notification_days is None:
        return due_date
    return max(due_date, issue_date + timedelta(days=pre_notification_days))
