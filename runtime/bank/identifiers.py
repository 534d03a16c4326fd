"""Bank identifiers, checked by the libraries that know them: IBANs and BICs by schwifty (the BIC of
an IBAN from its bank code where schwifty's registry knows it), SEPA creditor identifiers (AT-02)
by python-stdnum. The one place evbill checks them: the API's master-data types
(``api.validation``), mandates and creditor accounts, contracts synced into mandates.

Each check has python-stdnum's shape: the value in compact form, or ``InvalidIdentifier`` (a
``ValueError``) carrying the library's own reason, which callers pass on in their 422 answers.
"""

from __future__ import annotations

__all__ = [
    "InvalidIdentifier",
    "bic_of_iban",
    "check_bic",
    "check_creditor_id",
    "check_iban",
    "iban_and_bic",
    "iban_in_sepa_zone",
]


class InvalidIdentifier(ValueError):
    """``kind`` (IBAN, BIC, SEPA creditor identifier) ``value`` refused for ``reason`` (the
    library's words)."""

    def __init__(self, kind: str, value: str, reason: str) -> None:
        super().__init__(f"not a valid {kind}: {reason}")
        self.kind, self.value, self.reason = kind, value, reason


def check_iban(value: str) -> str:
    """An IBAN with valid check digits and its country's length and format, in compact upper case
    (``de89 3704 …`` becomes ``DE8937040044…``)."""
    from schwifty import IBAN  # type: ignore[import-untyped, unused-ignore]
    from schwifty.exceptions import SchwiftyException  # type: ignore[import-untyped, unused-ignore]

    try:
        return str(IBAN(value).compact)
    except SchwiftyException as exc:
        raise InvalidIdentifier("IBAN", value, str(exc)) from None


def bic_of_iban(iban: str) -> str:
    """The BIC schwifty's bank registry gives the IBAN's bank code; ``""`` where it knows none (or
    one that does not parse: the IBAN is then used alone, as SEPA allows)."""
    from schwifty import IBAN
    from schwifty.exceptions import SchwiftyException

    try:
        bic = IBAN(iban).bic
    except SchwiftyException:
        return ""
    return str(bic.compact) if bic is not None else ""


def iban_and_bic(value: str) -> tuple[str, str]:
    """The checked IBAN (compact) and the BIC derived from it (``""`` when unknown)."""
    iban = check_iban(value)
    return iban, bic_of_iban(iban)


def iban_in_sepa_zone(iban: str) -> bool:
    from schwifty import IBAN

    return bool(IBAN(iban).in_sepa_zone)


def check_bic(value: str) -> str:
    """A BIC (8 or 11 characters, a known country), compact upper case."""
    from schwifty import BIC
    from schwifty.exceptions import SchwiftyException

    try:
        return str(BIC(value).compact)
    except SchwiftyException as exc:
        raise InvalidIdentifier("BIC", value, str(exc)) from None


def check_creditor_id(value: str) -> str:
    """A SEPA creditor identifier (``DE98ZZZ09999999999``) in compact form."""
    from stdnum.eu import at_02  # type: ignore[import-untyped, unused-ignore]
    from stdnum.exceptions import ValidationError  # type: ignore[import-untyped, unused-ignore]

    try:
        return str(at_02.validate(value))
    except ValidationError as exc:
        raise InvalidIdentifier("SEPA creditor identifier", value, str(exc)) from None
