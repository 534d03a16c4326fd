"""Open items: the receivables subledger's rules, as pure functions.

An open item is what one customer owes (an invoice) or is owed (a credit balance) in one currency.
Nothing about it is ever edited: every event appends entries, and what is open is the signed sum
of its entries. Payments, credit notes and credits are spread over items by ``allocate``, which
returns one entry per item it touches and puts what is left into a credit balance, so the entries
of one event always add up to the event's amount (nothing is lost or made up on the way).

Signs: positive is owed to the tenant. An invoice opens with ``+gross``; a payment, a credit note,
a write-off or goodwill takes off; a returned payment, the bank's return charge and a refund of a
credit balance put back on. A refund that the payee's bank sends back (a returned credit transfer)
takes off again: the credit it consumed is the customer's once more.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Final, Literal

from runtime.money import ZERO, CurrencyMismatch, minor_unit, quantize

__all__ = [
    "AGING_BUCKETS",
    "ENTRY_SIGNS",
    "Allocation",
    "Entry",
    "InsufficientCredit",
    "ItemView",
    "aging",
    "allocate",
    "available_credit",
    "open_amount",
    "signed",
    "take_credit",
    "written_off_vat",
]

EntryKind = Literal["invoice", "credit_note", "payment", "return", "return_charge", "refund", "write_off",
                    "goodwill", "credit_applied", "credit_used", "overpayment", "refund_return", "dunning_fee",
                    "interest", "flat_fee", "card_charge", "card_refund", "clearing_invoice", "netting"]

# the sign each kind of entry carries on the item it is booked to (amounts are given as magnitudes)
ENTRY_SIGNS: Final[dict[str, int]] = {
    "invoice": +1,          # an invoice's gross opens its item
    "credit_note": -1,      # a credit note takes off the invoice it corrects
    "payment": -1,          # money received (matched bank entry, collected direct debit)
    "return": +1,           # a payment taken back (R-transaction): owed again
    "return_charge": +1,    # the bank's fee for a return, passed on where the tenant's policy says so
    "refund": +1,           # a credit balance paid out: the customer is owed less
    "write_off": -1,        # given up
    "goodwill": -1,         # a goodwill credit
    "credit_applied": -1,   # a credit balance used against this item
    "credit_used": +1,      # ... and taken from the credit balance item (its open amount is negative)
    "overpayment": -1,      # what a payment left over: opens (or adds to) a credit balance item
    "refund_return": -1,    # a refund's transfer came back: the credit it consumed is open again
    "dunning_fee": +1,      # a dunning stage's fee opens an item of its own (runtime.dunning)
    "interest": +1,         # default interest charged by a dunning stage, an item of its own
    "flat_fee": +1,         # the flat fee for late payment (business debtors), an item of its own
    "card_charge": +1,      # an ad-hoc charge paid by card (issue 16), an item of its own
    "card_refund": -1,      # ... given back through the card provider: the charge is less by it
    "clearing_invoice": +1,  # an eMSP partner's clearing invoice (issue 15), an item of its own
    "netting": -1,          # settled against a host credit the customer (a partner) is owed (issue 15)
}

AGING_BUCKETS: Final = ("not_due", "0_30", "31_60", "61_90", "over_90")


def signed(kind: str, amount: Decimal) -> Decimal:
    """The signed effect of an entry of ``kind`` and magnitude ``amount`` on its item."""
    if amount < 0:
        raise ValueError(f"entry amounts are magnitudes, got {amount}")
    return ENTRY_SIGNS[kind] * amount


@dataclass(frozen=True, slots=True)
class Entry:
    """One appended change of one item: ``amount`` is a magnitude, ``kind`` gives the sign."""

    item_id: str
    kind: str
    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if self.kind not in ENTRY_SIGNS:
            raise ValueError(f"unknown entry kind {self.kind!r}")
        if not isinstance(self.amount, Decimal):
            raise TypeError("entry amounts are Decimal")
        if self.amount < 0:
            raise ValueError(f"entry amounts are magnitudes, got {self.amount}")

    @property
    def effect(self) -> Decimal:
        return ENTRY_SIGNS[self.kind] * self.amount


def open_amount(entries: Iterable[Entry], currency: str) -> Decimal:
    """What is open on an item: the signed sum of its entries (all in ``currency``)."""
    total = ZERO
    for e in entries:
        if e.currency != currency:
            raise CurrencyMismatch(f"an item in {currency} has an entry in {e.currency}")
        total += e.effect
    return total


@dataclass(frozen=True, slots=True)
class ItemView:
    """An item as allocation sees it: what is open on it, when it is due."""

    id: str
    open: Decimal
    currency: str
    due_date: date


@dataclass(frozen=True, slots=True)
class Allocation:
    """How one amount was spread: ``entries`` on the items it settled (each at most what was open
    on it), and ``left`` for a credit balance. ``sum(entries) + left == amount``."""

    amount: Decimal
    currency: str
    entries: tuple[Entry, ...] = field(default_factory=tuple)
    left: Decimal = ZERO

    @property
    def allocated(self) -> Decimal:
        return sum((e.amount for e in self.entries), ZERO)


def allocate(amount: Decimal, currency: str, items: Sequence[ItemView], kind: str = "payment",
             targets: Sequence[str] = ()) -> Allocation:
    """Spread ``amount`` (a magnitude that takes off, e.g. a payment) over the items that have
    something open: the ``targets`` first, in the order given (a remittance naming invoices), then
    the rest by due date, oldest first (ties by id, so the result does not depend on input order).
    Each item gets at most what is open on it; what is left is returned for a credit balance."""
    if amount < 0:
        raise ValueError("allocate takes a magnitude")
    if ENTRY_SIGNS[kind] != -1:
        raise ValueError(f"{kind!r} does not take off an item")
    for it in items:
        if it.currency != currency:
            raise CurrencyMismatch(f"cannot allocate {currency} to an item in {it.currency}")
    by_id = {it.id: it for it in items}
    unknown = [t for t in targets if t not in by_id]
    if unknown:
        raise KeyError(f"not among the items: {', '.join(unknown)}")
    first = [by_id[t] for t in dict.fromkeys(targets)]
    rest = sorted((it for it in items if it.id not in set(targets)), key=lambda it: (it.due_date, it.id))
    left = amount
    entries: list[Entry] = []
    for it in (*first, *rest):
        if left <= 0:
            break
        if it.open <= 0:
            continue
        take = min(it.open, left)
        entries.append(Entry(it.id, kind, take, currency))
        left -= take
    return Allocation(amount, currency, tuple(entries), left)


class InsufficientCredit(ValueError):
    """A refund of more than the credit there is to refund."""

    def __init__(self, wanted: Decimal, available: Decimal, currency: str) -> None:
        super().__init__(f"a refund of {wanted} {currency} exceeds the available credit of {available} {currency}")
        self.wanted, self.available, self.currency = wanted, available, currency


def available_credit(credits: Iterable[ItemView], currency: str) -> Decimal:
    """What can be refunded from ``credits``: the sum of what the customer has to its good on each
    (items with a negative open amount; others count nothing)."""
    total = ZERO
    for c in credits:
        if c.currency != currency:
            raise CurrencyMismatch(f"a refund in {currency} cannot use a credit in {c.currency}")
        if c.open < 0:
            total -= c.open
    return total


def take_credit(amount: Decimal, currency: str, credits: Sequence[ItemView]) -> Allocation:
    """A refund of ``amount`` spread over credit balance items (open amount below zero), oldest
    first (by date, then id): one ``refund`` entry per item, each at most that item's credit. The
    credit is consumed in full or not at all: more than ``available_credit`` raises
    ``InsufficientCredit``, so ``left`` is always zero and the entries add up to ``amount``."""
    if amount <= 0:
        raise ValueError("a refund is a positive amount")
    available = available_credit(credits, currency)
    if amount > available:
        raise InsufficientCredit(amount, available, currency)
    left = amount
    entries: list[Entry] = []
    for c in sorted((c for c in credits if c.open < 0), key=lambda c: (c.due_date, c.id)):
        if left <= 0:
            break
        take = min(-c.open, left)
        entries.append(Entry(c.id, "refund", take, currency))
        left -= take
    return Allocation(amount, currency, tuple(entries), left)


def aging(items: Iterable[ItemView], as_of: date) -> dict[str, Decimal]:
    """Aged receivables: what is open on items with something open, by days past their due date:
    ``not_due`` (due today or later), ``0_30`` (1 to 30 days overdue), ``31_60``, ``61_90``,
    ``over_90``. Credit balances (negative open amounts) are not receivables and are left out.
    One currency per call."""
    out = dict.fromkeys(AGING_BUCKETS, ZERO)
    currency = None
    for it in items:
        if currency is None:
            currency = it.currency
        elif it.currency != currency:
            raise CurrencyMismatch(f"aging mixes {currency} and {it.currency}")
        if it.open <= 0:
            continue
        days = (as_of - it.due_date).days
        if days <= 0:
            out["not_due"] += it.open
        elif days <= 30:
            out["0_30"] += it.open
        elif days <= 60:
            out["31_60"] += it.open
        elif days <= 90:
            out["61_90"] += it.open
        else:
            out["over_90"] += it.open
    return out


def written_off_vat(amount: Decimal, gross: Decimal, vat: Sequence[tuple[Decimal, Decimal]], currency: str,
                    before: Decimal = ZERO, corrected: Mapping[Decimal, Decimal] | None = None,
                    ) -> tuple[tuple[Decimal, Decimal], ...]:
    """The VAT a write-off of ``amount`` (gross) corrects, per rate: each rate group's VAT (``vat``:
    (rate, tax) per group of a ``gross`` document) in proportion to the share of the gross written
    off, rounded half-up to the currency's minor unit per rate, as a credit note's VAT is per rate
    group (German practice, § 17 (2) UStG: an uncollectable receivable reduces the VAT owed on it in
    proportion; a full write-off of an unpaid document corrects all of its VAT). Earlier write-offs
    of the same document (``before`` written off, ``corrected`` per rate) are counted in: each
    write-off corrects what the total written off so far owes less what was corrected already, so
    partial write-offs add up to the same VAT as one write-off of their sum."""
    if amount < 0 or gross < 0 or before < 0:
        raise ValueError("write-off and gross are magnitudes")
    total = before + amount
    if total > gross:
        raise ValueError(f"a write-off of {amount} {currency} exceeds the document's gross {gross} {currency}")
    if gross == 0 or amount == 0:
        return ()
    places = minor_unit(currency)
    done = corrected or {}
    out = ((rate, (tax if total == gross else quantize(tax * total / gross, places)) - done.get(rate, ZERO))
           for rate, tax in vat)
    return tuple((rate, tax) for rate, tax in out if tax != 0)
