"""Posting batches as files: DATEV "Buchungsstapel" (EXTF, data category 21) and
"Debitoren/Kreditoren" (category 16), a generic CSV and JSON lines with every field named.

DATEV's format as its public readers describe it (the DATEV format description, ledermann/datev,
alyf-de/erpnext_datev): Windows-1252, fields separated by semicolons, lines ended by CR LF; record
1 is the header (31 fields: ``EXTF``, version 700, category, format name, format version, created
at, ..., consultant, client, fiscal year start, account length, date from, date to, description,
..., currency, ..., SKR), record 2 names the columns, then one record per booking: the amount
without sign and a decimal comma, ``S``/``H`` for the account's side, account and contra account
in the chart's lengths, the BU key, Belegdatum as ``DDMM`` (the year is the batch's), Belegfeld 1
the document number. Text fields are quoted, numbers are not.

A journal entry with several lines becomes one record per line against the entry's main account
(the customer's, else the bank's), so every record is a debit/credit pair as DATEV books them.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final

from runtime.accounting.chart import Chart
from runtime.accounting.journal import JournalEntry, JournalLine
from runtime.money import allocate, minor_unit

__all__ = [
    "BOOKING_COLUMNS",
    "DEBTOR_COLUMNS",
    "ENTRY_FIELDS",
    "GENERIC_FIELDS",
    "LINE_FIELDS",
    "DatevHeader",
    "Debtor",
    "NumberedEntry",
    "buchungsstapel",
    "datev_rows",
    "debitoren",
    "generic_csv",
    "json_lines",
]

DATEV_VERSION: Final = 700
BOOKING_FORMAT: Final = ("21", "Buchungsstapel", "9")
DEBTOR_FORMAT: Final = ("16", "Debitoren/Kreditoren", "5")

BOOKING_COLUMNS: Final[tuple[str, ...]] = (
    "Umsatz (ohne Soll/Haben-Kz)", "Soll/Haben-Kennzeichen", "WKZ Umsatz", "Kurs", "Basis-Umsatz",
    "WKZ Basis-Umsatz", "Konto", "Gegenkonto (ohne BU-Schlüssel)", "BU-Schlüssel", "Belegdatum", "Belegfeld 1",
    "Belegfeld 2", "Skonto", "Buchungstext", "Postensperre", "Diverse Adressnummer", "Geschäftspartnerbank",
    "Sachverhalt", "Zinssperre", "Beleglink",
    *(f"Beleginfo - {w} {i}" for i in range(1, 9) for w in ("Art", "Inhalt")),
    "KOST1 - Kostenstelle", "KOST2 - Kostenstelle", "KOST-Menge", "EU-Mitgliedstaat u. USt-IdNr.", "EU-Steuersatz",
    "Abw. Versteuerungsart", "Sachverhalt L+L", "Funktionsergänzung L+L", "BU 49 Hauptfunktionstyp",
    "BU 49 Hauptfunktionsnummer", "BU 49 Funktionsergänzung",
    *(f"Zusatzinformation - {w} {i}" for i in range(1, 21) for w in ("Art", "Inhalt")),
    "Stück", "Gewicht", "Zahlweise", "Forderungsart", "Veranlagungsjahr", "Zugeordnete Fälligkeit", "Skontotyp",
    "Auftragsnummer", "Buchungstyp", "USt-Schlüssel (Anzahlungen)", "EU-Mitgliedstaat (Anzahlungen)",
    "Sachverhalt L+L (Anzahlungen)", "EU-Steuersatz (Anzahlungen)", "Erlöskonto (Anzahlungen)", "Herkunft-Kz",
    "Leerfeld", "KOST-Datum", "SEPA-Mandatsreferenz", "Skontosperre", "Gesellschaftername", "Beteiligtennummer",
    "Identifikationsnummer", "Zeichnernummer", "Postensperre bis", "Bezeichnung SoBil-Sachverhalt",
    "Kennzeichen SoBil-Buchung", "Festschreibung", "Leistungsdatum", "Datum Zuord. Steuerperiode",
)


def _bank_block(i: int) -> tuple[str, ...]:
    return (f"Bankleitzahl {i}", f"Bankbezeichnung {i}", f"Bankkonto-Nummer {i}", f"Länderkennzeichen {i}",
            f"IBAN {i}", f"Leerfeld {i}", f"SWIFT-Code {i}", f"Abw. Kontoinhaber {i}", f"Kennz. Haupt-Bankverb. {i}",
            f"Bankverb. {i} Gültig von", f"Bankverb. {i} Gültig bis")


DEBTOR_COLUMNS: Final[tuple[str, ...]] = (
    "Konto", "Name (Adressatentyp Unternehmen)", "Unternehmensgegenstand", "Name (Adressatentyp natürl. Person)",
    "Vorname (Adressatentyp natürl. Person)", "Name (Adressatentyp keine Angabe)", "Adressatentyp",
    "Kurzbezeichnung", "EU-Land", "EU-USt-IdNr.", "Anrede", "Titel/Akad. Grad", "Adelstitel", "Namensvorsatz",
    "Adressart", "Straße", "Postfach", "Postleitzahl", "Ort", "Land", "Versandzusatz", "Adresszusatz",
    "Abweichende Anrede", "Abw. Zustellbezeichnung 1", "Abw. Zustellbezeichnung 2", "Kennz. Korrespondenzadresse",
    "Adresse Gültig von", "Adresse Gültig bis", "Telefon", "Bemerkung (Telefon)", "Telefon Geschäftsleitung",
    "Bemerkung (Telefon GL)", "E-Mail", "Bemerkung (E-Mail)", "Internet", "Bemerkung (Internet)", "Fax",
    "Bemerkung (Fax)", "Sonstige", "Bemerkung (Sonstige)",
    *(c for i in range(1, 6) for c in _bank_block(i)),
    "Leerfeld 11", "Briefanrede", "Grußformel", "Kundennummer", "Steuernummer", "Sprache", "Ansprechpartner",
    "Vertreter", "Sachbearbeiter", "Diverse-Konto", "Ausgabeziel", "Währungssteuerung", "Kreditlimit (Debitor)",
    "Zahlungsbedingung", "Fälligkeit in Tagen (Debitor)", "Skonto in Prozent (Debitor)",
)

# the booking columns that hold numbers (written unquoted); every other non-empty field is text
_NUMERIC: Final = frozenset({"Umsatz (ohne Soll/Haben-Kz)", "Kurs", "Basis-Umsatz", "Konto",
                             "Gegenkonto (ohne BU-Schlüssel)", "Belegdatum", "Festschreibung", "Adressatentyp"})


@dataclass(frozen=True, slots=True)
class DatevHeader:
    consultant: int  # Beraternummer (1001–9999999)
    client: int  # Mandantennummer (1–99999)
    fiscal_year_start: date
    date_from: date
    date_to: date
    description: str
    created_at: datetime
    exported_by: str = "evbill"
    currency: str = "EUR"
    locked: bool = False  # Festschreibung: the batch's period is closed


@dataclass(frozen=True, slots=True)
class NumberedEntry:
    """An entry as a batch carries it: its number in the journal."""

    number: int
    entry: JournalEntry


@dataclass(frozen=True, slots=True)
class Debtor:
    account: str
    number: str  # the customer number
    name: str
    company: bool
    street: str = ""
    postal_code: str = ""
    city: str = ""
    country: str = ""
    vat_id: str = ""
    email: str = ""


def _q(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _amount(value: Decimal, currency: str) -> str:
    places = minor_unit(currency)
    return format(value.quantize(Decimal(1).scaleb(-places)), "f").replace(".", ",")


_INDEX: dict[tuple[str, ...], dict[str, int]] = {}


def _record(columns: tuple[str, ...], values: Mapping[str, str]) -> str:
    """One record: every column in order, empty where ``values`` has nothing (a batch writes tens
    of thousands of 116-field records: only the fields that are set are looked at)."""
    index = _INDEX.get(columns)
    if index is None:
        index = _INDEX[columns] = {c: i for i, c in enumerate(columns)}
    out = [""] * len(columns)
    for col, v in values.items():
        out[index[col]] = v if (v == "" or col in _NUMERIC) else _q(v)
    return ";".join(out)


def _header(h: DatevHeader, fmt: tuple[str, str, str], chart: Chart, bookings: bool) -> str:
    fields = [
        _q("EXTF"), str(DATEV_VERSION), fmt[0], _q(fmt[1]), fmt[2],
        h.created_at.strftime("%Y%m%d%H%M%S") + f"{h.created_at.microsecond // 1000:03d}",
        "", _q("EV"), _q(h.exported_by[:25]), "",
        str(h.consultant), str(h.client), h.fiscal_year_start.strftime("%Y%m%d"), str(chart.account_length),
        h.date_from.strftime("%Y%m%d") if bookings else "", h.date_to.strftime("%Y%m%d") if bookings else "",
        _q(h.description[:30]) if bookings else "", "", "1" if bookings else "", "0" if bookings else "",
        ("1" if h.locked else "0") if bookings else "", _q(h.currency) if bookings else "",
        "", "", "", "", _q(chart.skr), "", "", "", "",
    ]
    assert len(fields) == 31
    return ";".join(fields)


def _main(entry: JournalEntry) -> JournalLine:
    for role in ("debtor", "customer_credit", "bank"):
        for ln in entry.lines:
            if ln.role == role:
                return ln
    return entry.lines[0]


_SELF_ASSESSED: Final = ("input_vat_13b", "vat_13b")


def _self_assessed(lines: list[JournalLine], automatic: bool, main: JournalLine) -> list[JournalLine]:
    """Reverse-charge VAT the tenant self-assesses (§ 13b UStG), as DATEV gets it: where the chart
    gives it a tax key (BU-Schlüssel) and the batch leaves VAT to DATEV, the input and output VAT
    lines are not sent and the record of the net (the payable against the expense) carries the key,
    so DATEV posts both and fills the VAT return's boxes for the base; otherwise the lines are sent
    as they are, without a key (DATEV would post them again)."""
    sa = [ln for ln in lines if ln.role in _SELF_ASSESSED]
    if not sa:
        return lines
    keys = {ln.bu_key for ln in sa}
    payables = [ln for ln in lines if ln.role == "partner_payable"]
    if automatic and len(keys) == 1 and "" not in keys and main.role == "expense" and len(payables) == 1:
        key = keys.pop()
        return [replace(ln, bu_key=key) if ln.role == "partner_payable" else ln
                for ln in lines if ln.role not in _SELF_ASSESSED]
    return [replace(ln, bu_key="") if ln.role in _SELF_ASSESSED else ln for ln in lines]


def _folded(entry: JournalEntry, chart: Chart) -> list[JournalLine]:
    """The lines as DATEV gets them: with automatic revenue accounts, each VAT line is spread over
    the revenue lines of its rate (pro rata, to the cent) and not sent on its own; self-assessed
    reverse-charge VAT as ``_self_assessed`` says."""
    lines = _self_assessed(list(entry.lines), chart.datev_vat == "automatic", _main(entry))
    if chart.datev_vat != "automatic":
        return lines
    out = [ln for ln in lines if ln.role != "vat"]
    for vat in (ln for ln in lines if ln.role == "vat"):
        idx = [i for i, ln in enumerate(out) if ln.role == "revenue" and ln.vat == vat.vat]
        weights = [out[i].signed for i in idx]
        if not idx or sum(weights) == 0:
            out.append(vat)
            continue
        parts = allocate(vat.signed, weights, minor_unit(vat.currency))
        fparts = (allocate(vat.signed_functional, weights, minor_unit(entry.functional_currency or vat.currency))
                  if vat.functional is not None else [None] * len(idx))
        for i, part, fpart in zip(idx, parts, fparts, strict=True):
            ln = out[i]
            gross = ln.signed + part
            debit = gross > 0
            functional = None
            if fpart is not None:
                fgross = ln.signed_functional + fpart
                functional = fgross if debit else -fgross
            out[i] = JournalLine(ln.account, "debit" if debit else "credit", abs(gross), ln.currency, ln.role,
                                 ln.revenue_kind, ln.vat, ln.bu_key, functional)
    return out


def _currency_fields(e: JournalEntry, ln: JournalLine) -> dict[str, str]:
    """Umsatz in the document's currency (WKZ Umsatz); for a foreign-currency line also the rate
    (Kurs: foreign units per unit of the functional currency, as the ECB quotes it) and the amount
    in the functional currency (Basis-Umsatz, WKZ Basis-Umsatz). An exchange difference has no
    foreign amount: it is booked in the functional currency alone."""
    if ln.functional is None or not e.functional_currency:
        return {"Umsatz (ohne Soll/Haben-Kz)": _amount(ln.amount, ln.currency), "WKZ Umsatz": ln.currency}
    if ln.amount == 0:
        return {"Umsatz (ohne Soll/Haben-Kz)": _amount(ln.functional, e.functional_currency),
                "WKZ Umsatz": e.functional_currency}
    assert e.rate is not None
    return {"Umsatz (ohne Soll/Haben-Kz)": _amount(ln.amount, ln.currency), "WKZ Umsatz": ln.currency,
            "Kurs": format(e.rate.quantize(Decimal("0.000001")), "f").replace(".", ","),
            "Basis-Umsatz": _amount(ln.functional, e.functional_currency),
            "WKZ Basis-Umsatz": e.functional_currency}


def datev_rows(entries: Iterable[NumberedEntry], chart: Chart) -> list[dict[str, str]]:
    """One booking record per line against the entry's main account (fields by column name)."""
    rows: list[dict[str, str]] = []
    for ne in entries:
        e = ne.entry
        main = _main(e)
        late = e.posting_date != e.document_date
        for ln in _folded(e, chart):
            if ln is main or (ln.account == main.account and ln.role == main.role):
                continue
            # the record books ``ln`` on the contra side: the main account takes the other side
            row = {
                **_currency_fields(e, ln),
                "Soll/Haben-Kennzeichen": "H" if ln.side == "debit" else "S",
                "Konto": main.account,
                "Gegenkonto (ohne BU-Schlüssel)": ln.account,
                "BU-Schlüssel": ln.bu_key,
                # DATEV reads Belegdatum within the batch's dates: a late event carries its posting
                # date there and its document date in Beleginfo 1
                "Belegdatum": e.posting_date.strftime("%d%m"),
                "Belegfeld 1": _belegfeld(e.document),
                "Buchungstext": e.text[:60],
                "Beleginfo - Art 1": "Journal" if not late else "Belegdatum",
                "Beleginfo - Inhalt 1": str(ne.number) if not late else e.document_date.strftime("%d.%m.%Y"),
                "Beleginfo - Art 2": "Quelle",
                "Beleginfo - Inhalt 2": f"{e.source_kind} {e.source_id}"[:210],
            }
            rows.append(row)
    return rows


def _belegfeld(document: str) -> str:
    # Belegfeld 1: up to 36 characters of letters, digits and $ & % * + - / (DATEV's OPOS key)
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789$&%*+-/")
    return "".join(c if c in allowed else "-" for c in document)[:36]


def buchungsstapel(entries: Sequence[NumberedEntry], chart: Chart, header: DatevHeader) -> bytes:
    lines = [_header(header, BOOKING_FORMAT, chart, True), ";".join(BOOKING_COLUMNS)]
    lines += [_record(BOOKING_COLUMNS, r) for r in datev_rows(entries, chart)]
    return ("\r\n".join(lines) + "\r\n").encode("cp1252", errors="replace")


def debitoren(debtors: Sequence[Debtor], chart: Chart, header: DatevHeader) -> bytes:
    lines = [_header(header, DEBTOR_FORMAT, chart, False), ";".join(DEBTOR_COLUMNS)]
    for d in debtors:
        values = {"Konto": d.account, "Adressatentyp": "2" if d.company else "1",
                  "Kurzbezeichnung": d.name[:15], "EU-USt-IdNr.": d.vat_id[2:] if d.vat_id else "",
                  "EU-Land": d.vat_id[:2] if d.vat_id else "", "Adressart": "STR" if d.street else "",
                  "Straße": d.street[:36], "Postleitzahl": d.postal_code[:10], "Ort": d.city[:30],
                  "Land": d.country[:2], "E-Mail": d.email[:60], "Kundennummer": d.number[:15]}
        values["Name (Adressatentyp Unternehmen)" if d.company else "Name (Adressatentyp keine Angabe)"] = d.name[:50]
        lines.append(_record(DEBTOR_COLUMNS, values))
    return ("\r\n".join(lines) + "\r\n").encode("cp1252", errors="replace")


# the entry's fields, then its lines' (a foreign-currency entry names the functional currency and
# the rate of its document date; each of its lines the amount in the functional currency)
ENTRY_FIELDS: Final = ("entry", "source_kind", "source_id", "document", "document_date", "posting_date", "text",
                       "corrects", "functional_currency", "rate", "rate_date")
LINE_FIELDS: Final = ("line", "account", "side", "amount", "currency", "role", "revenue_kind", "vat", "bu_key",
                      "functional_amount")
GENERIC_FIELDS: Final = ENTRY_FIELDS + LINE_FIELDS


def _line_dicts(ne: NumberedEntry) -> list[dict[str, Any]]:
    e = ne.entry
    # the entry's fields once, each line's after them (GENERIC_FIELDS' order)
    head = {"entry": ne.number, "source_kind": e.source_kind, "source_id": e.source_id, "document": e.document,
            "document_date": e.document_date.isoformat(), "posting_date": e.posting_date.isoformat(),
            "text": e.text, "corrects": e.corrects, "functional_currency": e.functional_currency,
            "rate": format(e.rate, "f") if e.rate is not None else "",
            "rate_date": e.rate_date.isoformat() if e.rate_date is not None else ""}
    return [{**head, "line": i, "account": ln.account, "side": ln.side, "amount": format(ln.amount, "f"),
             "currency": ln.currency, "role": ln.role, "revenue_kind": ln.revenue_kind, "vat": ln.vat,
             "bu_key": ln.bu_key, "functional_amount": format(ln.functional, "f") if ln.functional is not None else ""}
            for i, ln in enumerate(e.lines, 1)]


def generic_csv(entries: Iterable[NumberedEntry]) -> bytes:
    """UTF-8, comma-separated, a header row naming every field, one row per journal line."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(GENERIC_FIELDS)
    for ne in entries:
        # a line's dict is built in GENERIC_FIELDS' order (a batch writes tens of thousands of rows:
        # DictWriter's per-field lookup cost more than the rest)
        w.writerows([d.values() for d in _line_dicts(ne)])
    return buf.getvalue().encode("utf-8")


def json_lines(entries: Iterable[NumberedEntry]) -> bytes:
    """One JSON object per entry with its lines; amounts as decimal strings."""
    out = []
    for ne in entries:
        lines = _line_dicts(ne)
        head = {k: lines[0][k] for k in ENTRY_FIELDS}
        head["lines"] = [{k: ln[k] for k in LINE_FIELDS} for ln in lines]
        out.append(json.dumps(head, ensure_ascii=False, sort_keys=False))
    return ("\n".join(out) + "\n").encode("utf-8") if out else b""
