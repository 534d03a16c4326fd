"""VAT by country and date, as data, and the treatment of a customer (pure: no clock, no network).

``vat_rate(country, rate_class, on)`` chooses from the EU-27 rate table (``eu_rates.csv`` beside
this file: standard and main reduced rate per member state with validity dates, e.g. Germany's
16 % / 5 % from 2020-07-01 to 2020-12-31) or from rows a ruleset's ``tax`` policy states, which
win. The table is data: a rate change is a new row with its ``valid_from``, the old row gets its
``valid_until`` (exclusive).

``customer_treatment`` decides reverse charge and exports the way the invoice and the e-invoice
state them: a business customer in another EU member state than the supply, with a VAT ID whose
format and checksum python-stdnum accepts (and that the optional online check, a seam for VIES,
does not refuse), gets reverse charge (category AE, VATEX-EU-AE); a business customer outside the
EU with a tax ID (python-stdnum's check for its country where it has one, e.g. Switzerland's
CHE-… MWST, the United Kingdom's GB…) gets a supply outside the scope of EU VAT (category O,
VATEX-EU-O: the place of a B2B service is where the customer is established); everyone else is
taxed at the rate of the supply's country. ``exemption`` is a ruleset's ``exempt`` statement as a
treatment (category E with its VATEX code, VATEX-EU-132 unless the ruleset names one).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, Final

__all__ = [
    "CLASS_PLACEHOLDERS",
    "EU_MEMBERS",
    "RATE_CLASSES",
    "UNTAXED_CATEGORIES",
    "RateRow",
    "RateUnknown",
    "Treatment",
    "VatIdCheck",
    "customer_treatment",
    "eu_rates",
    "exemption",
    "resolve_classes",
    "stated_rates",
    "valid_vat_id",
    "vat_rate",
]

RATE_CLASSES: Final = ("standard", "reduced")
EU_MEMBERS: Final = frozenset({
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT", "LT", "LU",
    "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK"})
# VAT IDs of Greece start with EL, not its ISO code
_VAT_PREFIX: Final = {"GR": "EL"}


class RateUnknown(LookupError):
    """No rate of that class for that country on that day."""


@dataclass(frozen=True, slots=True)
class RateRow:
    country: str  # ISO 3166 alpha-2
    rate_class: str  # standard | reduced
    rate: Decimal  # percent
    valid_from: date | None = None  # inclusive; None: always before
    valid_until: date | None = None  # exclusive; None: until further notice

    def applies(self, country: str, rate_class: str, on: date) -> bool:
        return (self.country == country and self.rate_class == rate_class
                and (self.valid_from is None or self.valid_from <= on)
                and (self.valid_until is None or on < self.valid_until))


@cache
def eu_rates() -> tuple[RateRow, ...]:
    """The shipped EU-27 table (``eu_rates.csv``)."""
    rows = []
    with (Path(__file__).parent / "eu_rates.csv").open(encoding="utf-8", newline="") as f:
        for r in csv.DictReader(line for line in f if not line.startswith("#")):
            rows.append(RateRow(r["country"], r["class"], Decimal(r["rate"]),
                                date.fromisoformat(r["valid_from"]) if r["valid_from"] else None,
                                date.fromisoformat(r["valid_until"]) if r["valid_until"] else None))
    return tuple(rows)


def vat_rate(country: str, rate_class: str, on: date, stated: Iterable[RateRow] = ()) -> Decimal:
    """The rate of ``rate_class`` in ``country`` on ``on``: a row the ruleset states first, then
    the shipped table. Raises ``RateUnknown``."""
    if rate_class not in RATE_CLASSES:
        raise RateUnknown(f"no VAT rate class {rate_class!r} (known: {', '.join(RATE_CLASSES)})")
    country = country.upper()
    for rows in (tuple(stated), eu_rates()):
        for r in rows:
            if r.applies(country, rate_class, on):
                return r.rate
    raise RateUnknown(f"no {rate_class} VAT rate for {country or 'a session without a country'} on {on.isoformat()}")


# an online check of a VAT ID (VIES): True valid, False refused, None could not tell (offline)
VatIdCheck = Callable[[str], "bool | None"]


def valid_vat_id(vat_id: str, country: str | None = None, online: VatIdCheck | None = None) -> bool:
    """A VAT ID python-stdnum accepts (format and checksum), of ``country`` when given, that the
    online check (when given) does not refuse."""
    from stdnum.eu import vat as eu_vat  # type: ignore[import-untyped, unused-ignore]

    if not vat_id or not eu_vat.is_valid(vat_id):
        return False
    compact = str(eu_vat.compact(vat_id))
    if country is not None and compact[:2] != _VAT_PREFIX.get(country.upper(), country.upper()):
        return False
    return online is None or online(compact) is not False


@dataclass(frozen=True, slots=True)
class Treatment:
    """How a customer's supply is taxed: ``category`` (UNTDID 5305: S standard/reduced rate, AE
    reverse charge, O outside the scope, E exempt), the VATEX code and the reason a ruleset states
    (empty: the documents say the category's own text in their language)."""

    category: str
    vatex: str | None = None
    reason: str | None = None

    @property
    def taxed(self) -> bool:
        return self.category == "S"


# the exemption reason codes (CEF VATEX code list) that go with category E; the untaxed
# categories the chart of accounts maps revenue under instead of a rate (no VAT line)
_EXEMPT_CODES: Final = re.compile(
    r"VATEX-EU-(79-C|132(-1[A-Q])?|143(-1[A-L])?|148(-[A-G])?|151(-1[A-E])?|309|D|F|I|J)|VATEX-FR-(FRANCHISE|CNWVAT)")
UNTAXED_CATEGORIES: Final = ("AE", "O", "E")


def exemption(code: str = "", reason: str = "") -> Treatment:
    """A ruleset's ``exempt`` as a treatment: category E, ``code`` (default VATEX-EU-132) and the
    reason it states. Raises ``ValueError`` for a code that is not an exemption's."""
    code = code or "VATEX-EU-132"
    if not _EXEMPT_CODES.fullmatch(code):
        raise ValueError(f"{code!r} is not a VATEX code of an exemption (e.g. VATEX-EU-132, VATEX-EU-132-1B)")
    return Treatment("E", code, reason or None)


def _third_country_tax_id(vat_id: str, country: str) -> bool:
    """A tax ID of a business outside the EU: python-stdnum's check for that country's VAT number
    or business ID where it has one (CH: the UID, with or without MWST; GB, NO, …), else any ID given."""
    from stdnum import get_cc_module  # type: ignore[import-untyped, unused-ignore]

    if not vat_id.strip():
        return False
    modules = [m for m in (get_cc_module(country.lower(), kind) for kind in ("vat", "uid")) if m is not None]
    return not modules or any(m.is_valid(vat_id) for m in modules)


def customer_treatment(supply_country: str, customer_country: str, is_business: bool, vat_id: str | None,
                       online: VatIdCheck | None = None) -> Treatment:
    """Reverse charge, export or taxed (see the module's text)."""
    supply, cust = supply_country.upper(), (customer_country or supply_country).upper()
    if not is_business or cust == supply:
        return Treatment("S")
    if cust in EU_MEMBERS:
        if supply in EU_MEMBERS and valid_vat_id(vat_id or "", cust, online):
            return Treatment("AE", "VATEX-EU-AE")
        return Treatment("S")
    if supply in EU_MEMBERS and _third_country_tax_id(vat_id or "", cust):
        return Treatment("O", "VATEX-EU-O")
    return Treatment("S")


# A rate class travels through rating as a placeholder rate (a negative percent, which no stated
# rate can be) and is replaced by the location country's rate on the session's day once the
# session is rated (``resolve_classes``): the engine stays one code path for fixed rates and classes.
CLASS_PLACEHOLDERS: Final = {"standard": Decimal(-1), "reduced": Decimal(-2)}
_CLASS_OF: Final = {v: k for k, v in CLASS_PLACEHOLDERS.items()}


def resolve_classes(lines: tuple[Any, ...], country: str, on: date,
                    stated: Iterable[RateRow] = ()) -> tuple[Any, ...]:
    """``lines`` (``runtime.rated.RatedLine``) with each rate-class placeholder replaced by the
    rate of ``country`` on ``on``. Raises ``RateUnknown`` (naming country, class and day)."""
    rows = tuple(stated)
    out = []
    for ln in lines:
        cls = _CLASS_OF.get(ln.tax_rate)
        out.append(ln if cls is None else ln._replace(tax_rate=vat_rate(country, cls, on, rows)))
    return tuple(out)


def stated_rates(statements: Iterable[Any]) -> tuple[RateRow, ...]:
    """A ruleset's ``tax`` policy rows (``dsl.ast.VatRate``: country, category, rate, validity)."""
    out = []
    for st in statements:
        if st.category in RATE_CLASSES:
            out.append(RateRow(st.country.value, st.category, st.rate.value,
                               date.fromisoformat(st.valid_from) if st.valid_from else None,
                               date.fromisoformat(st.valid_until) if st.valid_until else None))
    return tuple(out)
