"""The journal's rules, as pure functions: what entry a financial event posts, and that it balances.

A journal entry is built whole from the facts of one event (an invoice or credit note with its
revenue per kind and VAT rate, a payment, a return and its charge, a credit balance used) and is
checked balanced before anyone writes it: debit = credit in every currency (beancount refuses a
transaction whose postings do not sum to zero; so do we). Lines are signed while they are built
(positive = debit) and carry their side and a magnitude once built.

The receivable side of every event comes from the open items' own entries (``runtime.receivables``):
an entry on an invoice item moves the debtor account, an entry on a credit balance item the
customer credit account, by the entry's effect. So the journal's receivable balances equal the open
items by construction, and the reconciliation test checks it stays so.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Final

from runtime.money import ZERO

__all__ = [
    "EVENT_ROLES",
    "FX_ROLES",
    "LINE_REVENUE_KINDS",
    "REVENUE_KINDS",
    "EventFacts",
    "JournalEntry",
    "JournalLine",
    "Leg",
    "Unbalanced",
    "balances",
    "check_balanced",
    "legs",
    "revenue_kind",
    "reversal",
    "vat_treatment",
]

# the events that post today, and the roles (what an account is for) each one's lines can name
EVENT_ROLES: Final[dict[str, tuple[str, ...]]] = {
    "invoice": ("debtor", "customer_credit", "revenue", "vat"),
    "credit_note": ("debtor", "customer_credit", "revenue", "vat"),
    "payment": ("debtor", "customer_credit", "bank"),
    "return": ("debtor", "bank", "return_charge"),
    "credit_applied": ("debtor", "customer_credit"),
    # a credit balance paid out (issue 12's refunds): owed to the customer until the transfer leaves,
    # then cleared by the payout; a returned transfer puts the credit back
    "refund": ("customer_credit", "payout"),
    "refund_return": ("customer_credit", "payout"),
    # charges a dunning stage opens as items of their own (issue 13): a fee (outside the scope of
    # VAT as damages, or with VAT where the policy says so), default interest, the flat fee
    "dunning_fee": ("debtor", "customer_credit", "dunning_income", "vat"),
    "interest": ("debtor", "customer_credit", "interest_income"),
    "flat_fee": ("debtor", "customer_credit", "dunning_income"),
    # ad-hoc charges paid by card (issue 16): the receipt's revenue and VAT on an item of its own
    # (the card payment is a plain payment); a refund through the card provider takes revenue and
    # VAT back and pays the money out (the item's charge and its payment both shrink by it)
    "card_charge": ("debtor", "customer_credit", "revenue", "vat"),
    "card_refund": ("debtor", "customer_credit", "revenue", "vat", "bank"),
    # an eMSP partner's clearing invoice (issue 15): the roaming CDRs' revenue and VAT (none under
    # reverse charge) on an item of its own, paid by transfer (a plain payment)
    "clearing_invoice": ("debtor", "customer_credit", "revenue", "vat"),
    # issue 15: a host's self-billing credit note is the tenant's purchase (revenue share, energy
    # reimbursement: an expense, with input VAT where the host charges VAT) owed to the partner
    # until the payout run's file pays it (the payout clearing account, as refunds); a returned
    # transfer makes it owed again
    # a host in another EU member state on reverse charge bills no VAT: the tenant owes it (§ 13b
    # UStG) and deducts it at once, self-assessed input VAT against self-assessed output VAT
    "host_credit_note": ("expense", "input_vat", "partner_payable", "input_vat_13b", "vat_13b"),
    "host_payout": ("partner_payable", "payout"),
    "host_payout_return": ("partner_payable", "payout"),
    # a host credit netted against what the partner owes as a customer (its agreement's terms
    # ``netting``): the partner payable is settled against the debtor instead of by transfer
    "partner_netting": ("debtor", "customer_credit", "partner_payable"),
    # a receivable given up (finance's write-off): the debtor is credited, the net is a bad-debt
    # expense and the VAT share is corrected (German practice, § 17 (2) UStG: an uncollectable
    # receivable reduces the VAT owed on it in proportion)
    "write_off": ("debtor", "bad_debt", "vat"),
}

# an exchange difference (a foreign-currency item settled at another day's rate than it was booked
# at) can be part of any event that takes off or pays out items booked before: a line in the
# functional currency only, its document-currency amount zero
FX_ROLES: Final[tuple[str, ...]] = ("fx_gain", "fx_loss")
_RECEIVABLE_ROLES: Final = frozenset({"debtor", "customer_credit"})

# an invoice line's kind -> the revenue kind its net is booked as
LINE_REVENUE_KINDS: Final[dict[str, str]] = {
    "session": "charging", "late": "charging", "adjustment": "charging",
    "fee": "subscription", "service": "service", "discount": "discount", "manual": "other",
}
REVENUE_KINDS: Final[tuple[str, ...]] = ("charging", "subscription", "service", "discount", "other")

# the item kind an open-items entry sits on -> the role of the account it moves
_ITEM_ROLES: Final[dict[str, str]] = {"invoice": "debtor", "credit_balance": "customer_credit"}


class Unbalanced(ValueError):
    """An entry whose debits and credits differ in some currency: never written."""


def revenue_kind(line_kind: str) -> str:
    try:
        return LINE_REVENUE_KINDS[line_kind]
    except KeyError:
        raise ValueError(f"no revenue kind for invoice lines of kind {line_kind!r}") from None


def vat_treatment(rate: Decimal) -> str:
    """A VAT rate as the chart of accounts names it: ``19``, ``7``, ``16``, ``0``, ``5.5``."""
    if rate < 0:
        raise ValueError(f"a negative VAT rate {rate}")
    text = format(rate.normalize(), "f")
    return text


@dataclass(frozen=True, slots=True)
class EventFacts:
    """What the journal needs of one financial event.

    ``item_effects`` are the event's open-items entries as (item kind, signed effect on the item);
    ``revenue`` the invoice's nets per (revenue kind, VAT rate) and ``vat`` its VAT per rate (both
    signed as on the document: a credit note's are negative); ``bank`` what reached (positive) or
    left (negative) the bank or clearing account; ``return_charge`` a passed-on bank charge."""

    kind: str
    currency: str
    item_effects: tuple[tuple[str, Decimal], ...] = ()
    revenue: tuple[tuple[str, Decimal, Decimal], ...] = ()
    vat: tuple[tuple[Decimal, Decimal], ...] = ()
    bank: Decimal = ZERO
    return_charge: Decimal = ZERO
    payout: Decimal = ZERO  # a refund's transfer owed (negative) or come back (positive)
    income: Decimal = ZERO  # a dunning charge's net income (dunning_income or interest_income)
    # a host credit note: the net expense (a write-off: its net loss, booked as bad_debt), the input VAT per rate (both positive on a note, negative
    # on a correction that takes more back than it states) and the partner payable (negative: owed)
    expense: Decimal = ZERO
    input_vat: tuple[tuple[Decimal, Decimal], ...] = ()
    partner_payable: Decimal = ZERO
    # the VAT a reverse-charge host credit note leaves the tenant to self-assess, per rate
    # (rate, tax): booked as input VAT and as output VAT alike, so the entry stays net
    self_assessed: tuple[tuple[Decimal, Decimal], ...] = ()
    # a document in a currency other than the tenant's functional one: every line is valued in
    # ``functional`` too, the receivable lines at the rate of their item's day (``item_rates``, one
    # per ``item_effects``), the rest at ``rate`` (the document date's); what differs is booked as
    # an exchange difference
    functional: str = ""
    rate: Decimal | None = None
    rate_date: date | None = None
    item_rates: tuple[Decimal, ...] = ()
    # an invoice billed without VAT by its treatment (``runtime.tax.Treatment``: AE reverse charge,
    # O outside the scope, E exempt): its 0 % revenue is mapped under that treatment, not "0"
    treatment: str = ""

    @property
    def foreign(self) -> bool:
        return bool(self.functional) and self.functional != self.currency and self.rate is not None


@dataclass(frozen=True, slots=True)
class Leg:
    """One signed line before accounts are known: a role and its dimensions (positive = debit)."""

    role: str
    amount: Decimal
    revenue_kind: str = ""
    vat: str = ""
    functional: Decimal = ZERO  # signed as ``amount``, in the functional currency (foreign documents)


def legs(f: EventFacts) -> tuple[Leg, ...]:
    """The signed lines of an event's entry, by role (same role and dimensions merged, zeros
    dropped), checked balanced. Raises ``Unbalanced`` when the facts do not add up."""
    if f.kind not in EVENT_ROLES:
        raise ValueError(f"no journal rule for events of kind {f.kind!r}")
    foreign = f.foreign
    if foreign and f.item_rates and len(f.item_rates) != len(f.item_effects):
        raise ValueError("one item rate per item effect")
    raw: list[Leg] = [Leg(_ITEM_ROLES[k], eff) for k, eff in f.item_effects]
    for kind, rate, net in f.revenue:
        raw.append(Leg("revenue", -net, kind, f.treatment if f.treatment and rate == 0 else vat_treatment(rate)))
    for rate, tax in f.vat:
        raw.append(Leg("vat", -tax, "", vat_treatment(rate)))
    if f.bank:
        raw.append(Leg("bank", f.bank))
    if f.return_charge:
        raw.append(Leg("return_charge", -f.return_charge))
    if f.payout:
        raw.append(Leg("payout", f.payout))
    if f.income:
        raw.append(Leg("interest_income" if f.kind == "interest" else "dunning_income", -f.income))
    if f.expense:
        raw.append(Leg("bad_debt" if f.kind == "write_off" else "expense", f.expense))
    for rate, tax in f.input_vat:
        raw.append(Leg("input_vat", tax, "", vat_treatment(rate)))
    if f.partner_payable:
        raw.append(Leg("partner_payable", f.partner_payable))
    for rate, tax in f.self_assessed:
        raw.append(Leg("input_vat_13b", tax, "", vat_treatment(rate)))
        raw.append(Leg("vat_13b", -tax, "", vat_treatment(rate)))
    if foreign:
        from runtime.accounting.fx import to_functional

        assert f.rate is not None
        n_items = len(f.item_effects)
        raw = [Leg(lg.role, lg.amount, lg.revenue_kind, lg.vat,
                   to_functional(lg.amount, f.item_rates[i] if i < n_items and f.item_rates else f.rate,
                                 f.functional)) for i, lg in enumerate(raw)]
    merged: dict[tuple[str, str, str], list[Decimal]] = {}
    for lg in raw:
        if lg.role not in EVENT_ROLES[f.kind]:
            raise ValueError(f"a {f.kind} event has no {lg.role} line")
        k = (lg.role, lg.revenue_kind, lg.vat)
        got = merged.get(k)
        if got is None:
            merged[k] = [lg.amount, lg.functional]
        else:
            got[0] += lg.amount
            got[1] += lg.functional
    out = [Leg(r, a, rk, v, fa) for (r, rk, v), (a, fa) in merged.items() if a != 0 or fa != 0]
    total = sum((lg.amount for lg in out), ZERO)
    if total != 0:
        raise Unbalanced(f"a {f.kind} event's lines add up to {total} {f.currency}, not zero")
    if foreign:
        off = -sum((lg.functional for lg in out), ZERO)
        # receivable lines keep the value their items were booked at (each item entry at its
        # item's rate), so the journal's receivables in the functional currency stay what was booked
        others = [i for i, lg in enumerate(out) if lg.role not in _RECEIVABLE_ROLES]
        if off and others and all(r == f.rate for r in f.item_rates):
            # one rate for every line: only rounding cents, carried by the largest other line
            i = max(others, key=lambda j: abs(out[j].functional))
            lg = out[i]
            out[i] = Leg(lg.role, lg.amount, lg.revenue_kind, lg.vat, lg.functional + off)
        elif off:
            # items booked at another day's rate: the difference is an exchange gain or loss
            out.append(Leg("fx_loss" if off > 0 else "fx_gain", ZERO, functional=off))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class JournalLine:
    account: str
    side: str  # debit | credit
    amount: Decimal  # a magnitude
    currency: str
    role: str = ""
    revenue_kind: str = ""
    vat: str = ""
    bu_key: str = ""
    # the amount in the tenant's functional currency, on the line's side (foreign documents only;
    # an exchange difference has this and a zero ``amount``)
    functional: Decimal | None = None

    def __post_init__(self) -> None:
        if self.side not in ("debit", "credit"):
            raise ValueError(f"a line is debit or credit, not {self.side!r}")
        if not isinstance(self.amount, Decimal) or self.amount < 0 or (
                self.amount == 0 and not (self.role in FX_ROLES and self.functional)):
            raise ValueError(f"a line's amount is a positive Decimal, got {self.amount!r}")
        if not self.account:
            raise ValueError("a line names its account")

    @property
    def signed(self) -> Decimal:
        return self.amount if self.side == "debit" else -self.amount

    @property
    def signed_functional(self) -> Decimal:
        f = self.functional if self.functional is not None else ZERO
        return f if self.side == "debit" else -f


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One balanced entry: the source document it books, its document date (the event's) and the
    posting date (the document date, or the first day of the next open period when the document's
    period is closed)."""

    source_kind: str  # the event: invoice | credit_note | payment | return | credit_applied
    source_id: str  # the receivable event (or correction) it books
    document: str  # the document number (invoice, credit note, bank reference)
    document_date: date
    posting_date: date
    text: str
    lines: tuple[JournalLine, ...] = field(default_factory=tuple)
    corrects: str = ""  # the entry a correction reverses
    # a foreign-currency document: the tenant's functional currency, and the reference rate of the
    # document date (foreign units per functional unit) with the day it was published for
    functional_currency: str = ""
    rate: Decimal | None = None
    rate_date: date | None = None

    def __post_init__(self) -> None:
        check_balanced(self.lines)
        if self.posting_date < self.document_date and not self.corrects:
            raise ValueError("an entry is never posted before its document date")


def check_balanced(lines: Sequence[JournalLine]) -> None:
    if not lines:
        raise Unbalanced("an entry has lines")
    by_currency: dict[str, Decimal] = {}
    for ln in lines:
        by_currency[ln.currency] = by_currency.get(ln.currency, ZERO) + ln.signed
    off = {c: s for c, s in by_currency.items() if s != 0}
    if off:
        raise Unbalanced("debit and credit differ: " + ", ".join(f"{s} {c}" for c, s in sorted(off.items())))
    if any(ln.functional is not None for ln in lines):
        functional = sum((ln.signed_functional for ln in lines), ZERO)
        if functional != 0:
            raise Unbalanced(f"debit and credit differ by {functional} in the functional currency")


def balances(lines: Iterable[JournalLine]) -> dict[tuple[str, str], Decimal]:
    """Signed balance (debit positive) per (account, currency)."""
    out: dict[tuple[str, str], Decimal] = {}
    for ln in lines:
        k = (ln.account, ln.currency)
        out[k] = out.get(k, ZERO) + ln.signed
    return out


def reversal(entry: JournalEntry, source_id: str, posting_date: date, text: str) -> JournalEntry:
    """The correction of ``entry``: the same lines on the other side, naming what it corrects."""
    lines = tuple(JournalLine(ln.account, "credit" if ln.side == "debit" else "debit", ln.amount, ln.currency,
                              ln.role, ln.revenue_kind, ln.vat, ln.bu_key, ln.functional) for ln in entry.lines)
    return JournalEntry(entry.source_kind, source_id, entry.document, entry.document_date, posting_date, text,
                        lines, corrects=entry.source_id, functional_currency=entry.functional_currency,
                        rate=entry.rate, rate_date=entry.rate_date)
