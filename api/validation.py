"""Master data checked by the libraries that know it, as pydantic types every area shares.

Time zones by the IANA database (``zoneinfo``), currencies by ISO 4217 and countries by ISO 3166
(``pycountry``), IBANs and BICs by schwifty, VAT IDs and SEPA creditor identifiers by
python-stdnum (bank identifiers through ``runtime.bank.identifiers``, the one check mandates and
creditor accounts use too). A value of the right shape that the library refuses (``Mars/Olympus``,
``XYZ``, an IBAN whose check digits do not add up) fails with one of ``MASTER_DATA_CODES`` as its
pydantic error type and the library's reason as its message; ``api.errors`` answers such a request 422
naming each field, while a body of the wrong shape stays a 400 ``validation_failed``.

Each check has the python-stdnum shape (``check_x(value) -> compact value`` or an error) so the
services can use them on values that did not come through a schema (a merged PATCH, a stored row).
An empty string means "not given" wherever the field's default is ``""``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any, NoReturn

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from runtime.bank import identifiers as bank_ids

__all__ = [
    "MASTER_DATA_CODES",
    "Bic",
    "Country",
    "CreditorId",
    "Currency",
    "Email",
    "Iban",
    "Timezone",
    "VatId",
    "check_bic",
    "check_country",
    "check_creditor_id",
    "check_currency",
    "check_email",
    "check_iban",
    "check_timezone",
    "check_vat_id",
]

# the pydantic error types of the checks below: api.errors answers them 422, not 400
MASTER_DATA_CODES = frozenset({
    "unknown_timezone", "unknown_currency", "unknown_country", "invalid_iban", "invalid_bic",
    "invalid_vat_id", "invalid_creditor_id", "invalid_email",
})


def _fail(code: str, message: str) -> NoReturn:
    # no context: pydantic leaves the message as it is (braces in user input stay braces)
    raise PydanticCustomError(code, message)


# ------------------------------------------------------------------------------------ time zone
@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    import zoneinfo

    # "localtime" is the host's zone and "Factory" tzdata's placeholder: neither is a place
    return frozenset(zoneinfo.available_timezones() - {"localtime", "Factory"})


def check_timezone(value: str) -> str:
    """An IANA time zone name that ``zoneinfo`` can load (``Europe/Berlin``, ``UTC``)."""
    if value not in _zones():
        from difflib import get_close_matches

        near = get_close_matches(value, sorted(_zones()), n=1)
        hint = f": did you mean {near[0]!r}?" if near else " (an IANA name such as 'Europe/Berlin')"
        _fail("unknown_timezone", f"unknown IANA time zone {value!r}{hint}")
    return value


# ------------------------------------------------------------------------------------ currency
# ISO 4217 codes that are no money an invoice can be in: precious metals, bond-market and
# accounting units, funds codes, and the codes reserved for tests (XTS) and "no currency" (XXX)
_NOT_TENDER = frozenset({
    "XAG", "XAU", "XPD", "XPT", "XBA", "XBB", "XBC", "XBD", "XDR", "XSU", "XUA", "XAD", "XTS", "XXX",
    "BOV", "CHE", "CHW", "CLF", "COU", "MXV", "USN", "UYI", "UYW",
})


@lru_cache(maxsize=1)
def _currencies() -> frozenset[str]:
    import pycountry

    return frozenset(c.alpha_3 for c in pycountry.currencies) - _NOT_TENDER


def check_currency(value: str) -> str:
    """An active ISO 4217 currency one can invoice in (``EUR``, ``CHF``; not ``XYZ``, ``XTS``)."""
    if value not in _currencies():
        why = "is not a currency one can invoice in" if value in _NOT_TENDER else "is not an ISO 4217 currency"
        _fail("unknown_currency", f"{value!r} {why}")
    return value


# ------------------------------------------------------------------------------------ country
# Kosovo: user-assigned in ISO 3166, yet what the EU, SWIFT and IBANs use for it
_EXTRA_COUNTRIES = frozenset({"XK"})


@lru_cache(maxsize=1)
def _countries() -> frozenset[str]:
    import pycountry

    return frozenset(c.alpha_2 for c in pycountry.countries) | _EXTRA_COUNTRIES


def check_country(value: str) -> str:
    """An ISO 3166-1 alpha-2 country code, or ``""`` (not given)."""
    if value and value not in _countries():
        _fail("unknown_country", f"{value!r} is not an ISO 3166-1 alpha-2 country code")
    return value


# ------------------------------------------------------------------------------------ bank details
def check_iban(value: str) -> str:
    """An IBAN with valid check digits and its country's length and format, in compact upper
    case (``de89 3704 …`` becomes ``DE8937040044…``); ``""`` stays ``""``."""
    if not value:
        return value
    try:
        return bank_ids.check_iban(value)
    except bank_ids.InvalidIdentifier as exc:
        _fail("invalid_iban", f"invalid IBAN {value!r}: {_lower_first(exc.reason)}")


def bic_of_iban(iban: str) -> str:
    """The BIC schwifty's bank registry knows for ``iban``; ``""`` where it knows none."""
    return bank_ids.bic_of_iban(iban)


def check_bic(value: str) -> str:
    """A BIC (8 or 11 characters, a known country), compact upper case; ``""`` stays ``""``."""
    if not value:
        return value
    try:
        return bank_ids.check_bic(value)
    except bank_ids.InvalidIdentifier as exc:
        _fail("invalid_bic", f"invalid BIC {value!r}: {_lower_first(exc.reason)}")


def check_creditor_id(value: str) -> str:
    """A SEPA creditor identifier (``DE98ZZZ09999999999``), checked by python-stdnum."""
    if not value:
        return value
    try:
        return bank_ids.check_creditor_id(value)
    except bank_ids.InvalidIdentifier as exc:
        _fail("invalid_creditor_id", f"invalid SEPA creditor identifier {value!r}: "
                                     f"{_lower_first(exc.reason.rstrip('.'))}")


# ------------------------------------------------------------------------------------ VAT ID
# countries outside the EU VAT area whose VAT module python-stdnum names otherwise
_VAT_MODULES = {"no": "mva", "is": "vsk"}


def check_vat_id(value: str) -> str:
    """A VAT identification number with its country prefix: EU numbers (``DE136695976``,
    ``EL…``, ``XI…``) by ``stdnum.eu.vat``, others by the country's python-stdnum module (CH, GB,
    NO, ...). A country python-stdnum has no VAT module for is taken as given."""
    if not value:
        return value
    from stdnum.eu import vat as eu_vat
    from stdnum.exceptions import ValidationError
    from stdnum.util import clean, get_cc_module

    compact = clean(value, " -./").upper().strip()
    cc = compact[:2]
    try:
        if cc.lower() in eu_vat.MEMBER_STATES or cc == "EL":  # EL: Greece's VAT prefix
            return str(eu_vat.validate(compact))
        if not cc.isalpha() or cc not in _countries():
            _fail("invalid_vat_id", f"invalid VAT ID {value!r}: it must start with the country code, "
                                    f"e.g. 'DE136695976'")
        module = get_cc_module(cc.lower(), _VAT_MODULES.get(cc.lower(), "vat"))
        if module is None:
            if not 4 <= len(compact) <= 16 or not compact.isalnum():
                _fail("invalid_vat_id", f"invalid VAT ID {value!r}: the number has an invalid format")
            return compact
        number = str(module.validate(compact))
        # some modules drop the prefix (GB) and others keep it (CHE...): store it with the prefix
        return number if number.startswith(cc) else cc + number
    except ValidationError as exc:
        _fail("invalid_vat_id", f"invalid VAT ID {value!r}: {_reason(exc)}")


# ------------------------------------------------------------------------------------ e-mail
def check_email(value: str) -> str:
    """One address ``local@domain`` with a dot-free-or-dotted domain, no spaces; ``""`` stays."""
    if not value:
        return value
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in value) or domain.startswith(".") \
            or domain.endswith(".") or ".." in domain:
        _fail("invalid_email", f"invalid e-mail address {value!r}")
    return value


def _reason(exc: Exception) -> str:
    # python-stdnum's messages are sentences ("The number's checksum ... is invalid."): make them
    # read as the second half of ours
    return _lower_first(str(exc).rstrip("."))


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _doc(description: str, *examples: str, **kw: Any) -> Any:
    return Field(description=description, examples=list(examples), **kw)


Timezone = Annotated[str, _doc("IANA time zone", "Europe/Berlin", min_length=1, max_length=64),
                     AfterValidator(check_timezone)]
Currency = Annotated[str, _doc("ISO 4217 currency", "EUR", pattern=r"^[A-Z]{3}$", min_length=3, max_length=3),
                     AfterValidator(check_currency)]
Country = Annotated[str, _doc("ISO 3166-1 alpha-2", "DE", pattern=r"^([A-Z]{2})?$", max_length=2),
                    AfterValidator(check_country)]
Iban = Annotated[str, _doc("IBAN, checked (check digits, the country's length and format) and stored "
                           "compact", "DE89370400440532013000", max_length=42), AfterValidator(check_iban)]
Bic = Annotated[str, _doc("BIC (8 or 11 characters)", "COBADEFFXXX", max_length=11), AfterValidator(check_bic)]
VatId = Annotated[str, _doc("VAT ID with its country prefix, checked by python-stdnum", "DE136695976",
                            max_length=30), AfterValidator(check_vat_id)]
CreditorId = Annotated[str, _doc("SEPA creditor identifier", "DE98ZZZ09999999999", max_length=35),
                       AfterValidator(check_creditor_id)]
Email = Annotated[str, _doc("e-mail address", "billing@example.com", max_length=200), AfterValidator(check_email)]
