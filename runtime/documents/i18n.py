"""Numbers, money, percentages, dates and plural forms on documents, by CLDR rules (babel).

Every text a document prints that depends on the language goes through here, so a German
invoice reads ``1.234,56 €`` and ``01.10.2026``, an English one ``€1,234.56`` and ``1 Oct 2026``,
a French one ``1 234,56 €`` and a Dutch one ``€ 1.234,56``. Amounts are ``Decimal``; babel
formats them without going through float.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Final

from babel import Locale
from babel.dates import format_date, format_time
from babel.numbers import format_currency, format_decimal, format_percent

from runtime.money import minor_unit, quantize

__all__ = [
    "LANGUAGES",
    "date_text",
    "datetime_text",
    "locale_of",
    "money_text",
    "number_text",
    "plural",
    "price_text",
    "quantity_text",
    "rate_text",
    "sessions_text",
]

# the languages documents are issued in, and the CLDR locale each is formatted with (English
# documents use British conventions: day before month, as the rest of Europe reads dates)
_LOCALES: Final[dict[str, str]] = {"de": "de_DE", "en": "en_GB", "fr": "fr_FR", "nl": "nl_NL"}
LANGUAGES: Final[tuple[str, ...]] = tuple(_LOCALES)


@lru_cache(maxsize=8)
def locale_of(language: str) -> Locale:
    try:
        return Locale.parse(_LOCALES[language])
    except KeyError:
        raise ValueError(f"unsupported language {language!r}, expected one of {', '.join(LANGUAGES)}") from None


def _places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def number_text(value: Decimal, places: int, language: str) -> str:
    """Fixed-point text with the locale's separators (``1.234,560`` in German)."""
    pattern = "#,##0" + ("." + "0" * places if places > 0 else "")
    return format_decimal(quantize(value, places), format=pattern, locale=locale_of(language))


def money_text(value: Decimal, currency: str, language: str) -> str:
    """An amount in the currency's minor unit, as the locale writes money."""
    return _money_text(str(quantize(value, minor_unit(currency))), currency, language)


@lru_cache(maxsize=4096)
def _money_text(amount: str, currency: str, language: str) -> str:
    # keyed by the quantized amount's text (``-0.00`` is not ``0.00``): a document repeats its
    # amounts (a session's start fee on every row), and babel's ``format_currency`` looks up the
    # currency's names and the locale's pattern on every call (~4 % of a rendered invoice)
    return format_currency(Decimal(amount), currency, locale=locale_of(language))


def price_text(value: Decimal, currency: str, language: str) -> str:
    """A unit price: at least the currency's minor unit, up to 4 places because rated prices are
    often sub-cent (``0,4912 €``)."""
    places = max(minor_unit(currency), min(4, _places(value)))
    return format_currency(quantize(value, places), currency, locale=locale_of(language),
                           decimal_quantization=False)


def quantity_text(value: Decimal, language: str) -> str:
    return number_text(value, min(_places(value), 4), language)


def rate_text(rate: Decimal, language: str) -> str:
    """A VAT rate given in percent (``19`` -> ``19 %`` in German, ``19%`` in English)."""
    return format_percent(rate / 100, locale=locale_of(language), decimal_quantization=False)


def date_text(value: date, language: str) -> str:
    return format_date(value, "medium", locale=locale_of(language))


def datetime_text(value: datetime, language: str) -> str:
    return f"{date_text(value.date(), language)} {format_time(value, 'HH:mm', locale=locale_of(language))}"


def plural(count: int, forms: dict[str, str], language: str) -> str:
    """``forms`` by CLDR plural category (``one``, ``other``, ...; ``other`` is required), with
    ``{n}`` for the count: ``plural(1, {"one": "{n} Ladevorgang", "other": "{n} Ladevorgänge"}, "de")``."""
    category = locale_of(language).plural_form(count)
    return forms.get(category, forms["other"]).format(n=format_decimal(count, locale=locale_of(language)))


# "1 Ladevorgang", "2 Ladevorgänge": by CLDR plural category
_SESSIONS: Final[dict[str, dict[str, str]]] = {
    "de": {"one": "{n} Ladevorgang", "other": "{n} Ladevorgänge"},
    "en": {"one": "{n} session", "other": "{n} sessions"},
    "fr": {"one": "{n} recharge", "other": "{n} recharges"},
    "nl": {"one": "{n} laadsessie", "other": "{n} laadsessies"},
}


def sessions_text(count: int, language: str) -> str:
    return plural(count, _SESSIONS[language], language)
