"""Matching incoming bank transactions to open items: an ordered list of small rules, each
returning a match with its reason, so the answer can tell the operator which rule matched.

The order (issue 12): our direct debit by EndToEndId; the invoice number or the RF creditor
reference (ISO 11649) in the remittance information, structured or free text, tolerant of spaces
and OCR slips; a debtor IBAN or name already linked to an account (learned from manual matches);
the one open item of exactly the amount among the payer's or, failing that, all open items.

Outgoing (debit) transactions have rules of their own (``DEBIT_RULES``): a debit whose EndToEndId
is one of our credit transfers (a refund, later a host payout) is that transfer, paid.

Everything here is pure: the store hands in an index of open items and what it has learned, and
books what the rules decide.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Final, TypeVar

from stdnum import iso11649  # type: ignore[import-untyped, unused-ignore]
from stdnum.iso7064 import mod_97_10  # type: ignore[import-untyped, unused-ignore]

from runtime.bank.camt import BankEntry, BankTransaction

_K = TypeVar("_K")

__all__ = [
    "DEBIT_RULES",
    "RULES",
    "Match",
    "MatchIndex",
    "OpenItemRef",
    "creditor_reference",
    "match_debit",
    "match_transaction",
    "normalise_name",
]


def creditor_reference(number: str) -> str:
    """The RF creditor reference (ISO 11649) of an invoice number: ``RF`` + check digits + the
    number's letters and digits (``INV-000001`` -> ``RF69INV000001``)."""
    ref = _rf_body(number)
    rf = f"RF{mod_97_10.calc_check_digits(ref + 'RF')}{ref}"
    assert iso11649.is_valid(rf), rf
    return rf


def normalise_name(name: str) -> str:
    """A payer's name compared loosely: no accents, case, punctuation or repeated spaces."""
    s = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().upper()
    return " ".join(re.sub(r"[^A-Z0-9 ]", " ", s).split())


@dataclass(frozen=True, slots=True)
class OpenItemRef:
    item_id: str
    account_id: str
    customer_id: str
    number: str
    open: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class Match:
    rule: str  # end_to_end_id | reference | known_payer | amount | none
    account_id: str | None
    item_ids: tuple[str, ...] = ()  # the items it pays first (a known payer or a remittance)
    reason: str = ""


@dataclass
class MatchIndex:
    """What the rules look things up in: open items by number and RF reference, our collections
    by EndToEndId, and the payers learned from manual matches (IBAN and normalised name).

    A statement import builds it once and tells it, after each booking, what is open now
    (``update_open``): a settled item leaves it, a partly paid one is found by its new amount.
    Where two items share a number or RF reference, the one given last is found (as a dict built
    from the items would)."""

    items: Sequence[OpenItemRef]
    collections: Mapping[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)  # e2e -> (account, items)
    payer_iban: Mapping[str, str] = field(default_factory=dict)  # IBAN -> account
    payer_name: Mapping[str, str] = field(default_factory=dict)  # normalised name -> account
    number_prefixes: Sequence[str] = ("INV-", "CN-", "CLR-")
    by_amount: dict[tuple[str, Decimal], list[OpenItemRef]] = field(init=False)
    _refs: dict[str, OpenItemRef] = field(init=False)
    _keys: dict[str, tuple[str, str]] = field(init=False)  # item id -> (squashed number, RF body)
    _by_number: dict[str, list[OpenItemRef]] = field(init=False)
    # by the RF reference's body (the number's letters and digits): the check digits are computed
    # only for a body a text names, not for every open item up front
    _by_rf_body: dict[str, list[OpenItemRef]] = field(init=False)
    _pattern: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        self._refs, self._keys, self._by_number, self._by_rf_body, self.by_amount = {}, {}, {}, {}, {}
        for i in self.items:
            self._add(i)
        # a prefix, then digits where OCR may have read O for 0 and I or l for 1, spaces anywhere
        alts = "|".join(r"\s*".join(map(re.escape, _squash(p))) for p in self.number_prefixes if _squash(p))
        # a lookahead, so a number's OCR-tolerant digits cannot swallow the next number's prefix
        self._pattern = re.compile(rf"(?=({alts})[\s\-_/.:]*([0-9OIl][0-9OIl\s]{{0,14}}))", re.IGNORECASE)

    def _add(self, i: OpenItemRef) -> None:
        self._refs[i.item_id] = i
        if i.number:
            number = _squash(i.number)
            # for an ASCII number the RF body is the squashed number (cut to 21): no second regex
            body = number[:21] if i.number.isascii() else _rf_body(i.number)
            self._keys[i.item_id] = (number, body)
            self._by_number.setdefault(number, []).append(i)
            if body:
                self._by_rf_body.setdefault(body, []).append(i)
        if i.open > 0:
            self.by_amount.setdefault((i.currency, i.open), []).append(i)

    def update_open(self, item_id: str, open_now: Decimal) -> None:
        """What is open on an indexed item now (after a booking): settled (nothing or less than
        nothing open), it leaves the index; else it is found by its new open amount."""
        old = self._refs.get(item_id)
        if old is None or old.open == open_now:
            return
        _drop(self.by_amount, (old.currency, old.open), old)
        number, body = self._keys.get(item_id, ("", ""))
        if open_now <= 0:
            del self._refs[item_id]
            self._keys.pop(item_id, None)
            _drop(self._by_number, number, old)
            _drop(self._by_rf_body, body, old)
            return
        new = replace(old, open=open_now)
        self._refs[item_id] = new
        self.by_amount.setdefault((new.currency, new.open), []).append(new)
        for table, key in ((self._by_number, number), (self._by_rf_body, body)):
            refs = table.get(key)
            if refs:
                refs[:] = [new if r is old else r for r in refs]

    def _by_rf(self, ref: str) -> OpenItemRef | None:
        refs = self._by_rf_body.get(ref[4:])
        if not refs or ref[2:4] != mod_97_10.calc_check_digits(ref[4:] + "RF"):
            return None
        return refs[-1]

    def numbers_in(self, texts: Iterable[str]) -> list[OpenItemRef]:
        """Open items whose invoice number or RF reference a text names, in the order named."""
        found: dict[str, OpenItemRef] = {}
        for text in texts:
            squashed = re.sub(r"\s", "", text).upper()
            for m in re.finditer(r"RF\d\d[0-9A-Z]{1,21}", squashed):
                for end in range(len(m.group(0)), 4, -1):  # the reference may run into the next word
                    hit = self._by_rf(m.group(0)[:end])
                    if hit is not None:
                        found.setdefault(hit.item_id, hit)
                        break
            for m in self._pattern.finditer(text):
                prefix = _squash(m.group(1))
                for digits in _digit_readings(m.group(2)):
                    refs = self._by_number.get(prefix + digits)
                    if refs:
                        found.setdefault(refs[-1].item_id, refs[-1])
                        break
        return list(found.values())


def _rf_body(number: str) -> str:
    """What follows ``RF`` and the check digits in the number's creditor reference."""
    return _NOT_ALNUM.sub("", number).upper()[:21]


def _drop(table: dict[_K, list[OpenItemRef]], key: _K, ref: OpenItemRef) -> None:
    refs = table.get(key)
    if refs is None:
        return
    refs[:] = [r for r in refs if r is not ref]
    if not refs:
        del table[key]


def _digit_readings(raw: str) -> list[str]:
    """The ways to read the digits after an invoice prefix, likeliest first: the first word as
    written, then with the following words joined on (``0000 01``), then shorter (``000001/2026``
    leaves ``000001``). O is read as 0, I and l as 1."""
    words = [w.upper().replace("O", "0").replace("I", "1").replace("L", "1") for w in raw.split()]
    out = ["".join(words[:n]) for n in range(1, len(words) + 1)]
    out += [words[0][:n] for n in range(len(words[0]) - 1, 0, -1)] if words else []
    return out


_NOT_UPPER_ALNUM: Final = re.compile(r"[^0-9A-Z]")
_NOT_ALNUM: Final = re.compile(r"[^0-9A-Za-z]")


def _squash(s: str) -> str:
    return _NOT_UPPER_ALNUM.sub("", s.upper())


Rule = Callable[[BankEntry, BankTransaction, Decimal, MatchIndex], Match | None]


def _by_end_to_end(entry: BankEntry, tx: BankTransaction, amount: Decimal, ix: MatchIndex) -> Match | None:
    hit = ix.collections.get(tx.end_to_end_id) if tx.end_to_end_id not in ("", "NOTPROVIDED") else None
    if hit is None:
        return None
    return Match("end_to_end_id", hit[0], hit[1], f"our direct debit {tx.end_to_end_id}")


def _by_reference(entry: BankEntry, tx: BankTransaction, amount: Decimal, ix: MatchIndex) -> Match | None:
    texts = [*tx.creditor_refs, *tx.remittance, entry.additional_info]
    hits = ix.numbers_in(t for t in texts if t)
    if not hits:
        return None
    accounts = {h.account_id for h in hits}
    if len(accounts) > 1:
        return None  # names invoices of several accounts: a person decides
    return Match("reference", hits[0].account_id, tuple(h.item_id for h in hits),
                 "the remittance names " + ", ".join(h.number for h in hits))


def _by_known_payer(entry: BankEntry, tx: BankTransaction, amount: Decimal, ix: MatchIndex) -> Match | None:
    iban = tx.debtor_iban.replace(" ", "").upper()
    if iban and iban in ix.payer_iban:
        return Match("known_payer", ix.payer_iban[iban], (), f"IBAN {iban} pays for this account")
    name = normalise_name(tx.debtor_name)
    if name and name in ix.payer_name:
        return Match("known_payer", ix.payer_name[name], (), f"payer {tx.debtor_name!r} pays for this account")
    return None


def _by_amount(entry: BankEntry, tx: BankTransaction, amount: Decimal, ix: MatchIndex) -> Match | None:
    hits = ix.by_amount.get((tx.currency or entry.currency, amount), [])
    if len(hits) != 1:
        return None  # none, or several open items of that amount: not a match
    h = hits[0]
    return Match("amount", h.account_id, (h.item_id,), f"the only open item of {amount} {h.currency} ({h.number})")


RULES: Final[tuple[tuple[str, Rule], ...]] = (
    ("end_to_end_id", _by_end_to_end),
    ("reference", _by_reference),
    ("known_payer", _by_known_payer),
    ("amount", _by_amount),
)


def match_transaction(entry: BankEntry, tx: BankTransaction, amount: Decimal, ix: MatchIndex) -> Match:
    """The first rule that matches this credit transaction, or ``Match("none", None)``."""
    for _name, rule in RULES:
        m = rule(entry, tx, amount, ix)
        if m is not None:
            return m
    return Match("none", None, (), "no rule matched")


DebitRule = Callable[[BankEntry, BankTransaction, Decimal, Mapping[str, str]], Match | None]


def _by_our_transfer(entry: BankEntry, tx: BankTransaction, amount: Decimal,
                     transfers: Mapping[str, str]) -> Match | None:
    e2e = tx.end_to_end_id
    payable_id = transfers.get(e2e) if e2e not in ("", "NOTPROVIDED") else None
    if payable_id is None:
        return None
    return Match("end_to_end_id", None, (payable_id,), f"our credit transfer {e2e}")


DEBIT_RULES: Final[tuple[tuple[str, DebitRule], ...]] = (
    ("end_to_end_id", _by_our_transfer),
)


def match_debit(entry: BankEntry, tx: BankTransaction, amount: Decimal, transfers: Mapping[str, str]) -> Match:
    """The first rule that matches this debit transaction to one of our transfers (``transfers``:
    EndToEndId -> payable id; ``item_ids`` of the answer holds the payable), or ``Match("none", None)``."""
    for _name, rule in DEBIT_RULES:
        m = rule(entry, tx, amount, transfers)
        if m is not None:
            return m
    return Match("none", None, (), "no rule matched")
