"""A reader for DATEV EXTF files, written from the format description (not from our writer), so
the golden tests check what a DATEV import would see: Windows-1252, records ended by CR LF,
fields separated by semicolons with text in double quotes; record 1 the 31-field header, record 2
the column names, then one record per booking (or per debtor) with exactly as many fields.
It refuses a file that breaks these rules and checks the booking fields' shapes."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date

HEADER_FIELDS = (
    "Kennzeichen", "Versionsnummer", "Datenkategorie", "Formatname", "Formatversion", "Erzeugt am", "Importiert",
    "Herkunft", "Exportiert von", "Importiert von", "Berater", "Mandant", "WJ-Beginn", "Sachkontenlänge",
    "Datum vom", "Datum bis", "Bezeichnung", "Diktatkürzel", "Buchungstyp", "Rechnungslegungszweck",
    "Festschreibung", "WKZ", "reserviert 1", "Derivatskennzeichen", "reserviert 2", "reserviert 3", "SKR",
    "Branchenlösungs-Id", "reserviert 4", "reserviert 5", "Anwendungsinformation",
)
CATEGORIES = {"21": "Buchungsstapel", "16": "Debitoren/Kreditoren"}


class NotExtf(ValueError):
    pass


@dataclass
class Extf:
    header: dict[str, str]
    columns: list[str]
    rows: list[dict[str, str]]


def read_extf(data: bytes) -> Extf:
    text = data.decode("cp1252")  # a character outside Windows-1252 could not be in the file
    if not text.endswith("\r\n") or "\n" in text.replace("\r\n", ""):
        raise NotExtf("records end with CR LF")
    records = list(csv.reader(io.StringIO(text, newline=""), delimiter=";", quotechar='"', strict=True))
    if len(records) < 2:
        raise NotExtf("a header record and a column record at least")
    head = records[0]
    if len(head) != len(HEADER_FIELDS):
        raise NotExtf(f"the header has {len(HEADER_FIELDS)} fields, this one {len(head)}")
    header = dict(zip(HEADER_FIELDS, head, strict=True))
    if header["Kennzeichen"] != "EXTF" or header["Versionsnummer"] != "700":
        raise NotExtf(f"not an EXTF 700 file: {head[:2]}")
    if CATEGORIES.get(header["Datenkategorie"]) != header["Formatname"]:
        raise NotExtf(f"category {header['Datenkategorie']} is not {header['Formatname']!r}")
    if not re.fullmatch(r"\d{17}", header["Erzeugt am"]):
        raise NotExtf("'Erzeugt am' is YYYYMMDDHHMMSSFFF")
    for f in ("WJ-Beginn",) + (("Datum vom", "Datum bis") if header["Datenkategorie"] == "21" else ()):
        date(int(header[f][:4]), int(header[f][4:6]), int(header[f][6:]))
    length = int(header["Sachkontenlänge"])
    if not 4 <= length <= 8:
        raise NotExtf("Sachkontenlänge is 4 to 8")
    columns = records[1]
    rows = []
    for n, rec in enumerate(records[2:], 3):
        if len(rec) != len(columns):
            raise NotExtf(f"record {n} has {len(rec)} fields, the columns are {len(columns)}")
        row = dict(zip(columns, rec, strict=True))
        if header["Datenkategorie"] == "21":
            _booking(row, n, length, header)
        elif not re.fullmatch(rf"[1-9]\d{{{length}}}", row["Konto"]):
            raise NotExtf(f"record {n}: a debtor account has {length + 1} digits")
        rows.append(row)
    return Extf(header, columns, rows)


def _booking(row: dict[str, str], n: int, length: int, header: dict[str, str]) -> None:
    if not re.fullmatch(r"\d{1,10},\d{2}", row["Umsatz (ohne Soll/Haben-Kz)"]):
        raise NotExtf(f"record {n}: Umsatz is positive with a decimal comma")
    if row["Umsatz (ohne Soll/Haben-Kz)"] == "0,00":
        raise NotExtf(f"record {n}: an Umsatz of zero")
    if row["Soll/Haben-Kennzeichen"] not in ("S", "H"):
        raise NotExtf(f"record {n}: S or H")
    for f in ("Konto", "Gegenkonto (ohne BU-Schlüssel)"):
        if not re.fullmatch(rf"\d{{1,{length + 1}}}", row[f]):
            raise NotExtf(f"record {n}: {f} {row[f]!r} is at most {length + 1} digits")
    if row["Konto"] == row["Gegenkonto (ohne BU-Schlüssel)"]:
        raise NotExtf(f"record {n}: account and contra account are the same")
    if not re.fullmatch(r"\d{0,4}", row["BU-Schlüssel"]):
        raise NotExtf(f"record {n}: a BU key is up to 4 digits")
    d = row["Belegdatum"]
    if not re.fullmatch(r"\d{4}", d):
        raise NotExtf(f"record {n}: Belegdatum is DDMM")
    start, end = header["Datum vom"], header["Datum bis"]
    on = date(int(start[:4]), int(d[2:]), int(d[:2]))
    if not (date(int(start[:4]), int(start[4:6]), int(start[6:])) <= on
            <= date(int(end[:4]), int(end[4:6]), int(end[6:]))):
        raise NotExtf(f"record {n}: Belegdatum {d} outside the batch's dates")
    if not re.fullmatch(r"[A-Za-z0-9$&%*+\-/]{0,36}", row["Belegfeld 1"]):
        raise NotExtf(f"record {n}: Belegfeld 1 {row['Belegfeld 1']!r}")
    if len(row["Buchungstext"]) > 60:
        raise NotExtf(f"record {n}: Buchungstext is at most 60 characters")
