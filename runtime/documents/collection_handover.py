"""The hand-over of a dunning case to a collection agency: one CSV (a line per claim, what agencies
import) and one JSON document (the whole file: the debtor's master data, the claims, fees, interest,
the letters sent and the stages reached), built from what the case stored. Pure: the store hands in
the facts, this module only lays them out. Amounts are decimal strings with their currency."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["CSV_COLUMNS", "Claim", "HandOver", "handover_csv", "handover_json"]

CSV_COLUMNS = ("case_number", "debtor_number", "debtor_name", "debtor_kind", "street", "postal_code", "city",
               "country", "email", "claim_number", "claim_kind", "issue_date", "due_date", "amount", "open",
               "currency", "last_letter_date", "stage")


@dataclass(frozen=True, slots=True)
class Claim:
    """One open item handed over: an invoice, or a fee, interest or flat fee the case charged."""

    number: str
    kind: str  # invoice | dunning_fee | interest | flat_fee
    issue_date: str  # ISO date ("" when unknown)
    due_date: str
    amount: str
    open: str
    currency: str


@dataclass(frozen=True, slots=True)
class HandOver:
    case_id: str
    case_number: str
    stage: int
    handed_over_on: str  # ISO date
    creditor: dict[str, str]
    debtor: dict[str, str]  # number, name, kind, street, postal_code, city, country, email, language
    currency: str
    claims: tuple[Claim, ...]
    total_open: str
    stages: tuple[dict[str, Any], ...] = ()  # stage, letter, reached_on, fee, interest, charged, total
    letters: tuple[dict[str, str], ...] = ()  # stage, name, sent_on, sha256
    fees: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    interest: tuple[dict[str, Any], ...] = field(default_factory=tuple)


def handover_csv(h: HandOver) -> bytes:
    """A line per claim, semicolon-separated, UTF-8 with BOM (what German spreadsheet tools open)."""
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=";", lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    last = max((lt["sent_on"] for lt in h.letters), default="")
    d = h.debtor
    for c in h.claims:
        w.writerow((h.case_number, d.get("number", ""), d.get("name", ""), d.get("kind", ""), d.get("street", ""),
                    d.get("postal_code", ""), d.get("city", ""), d.get("country", ""), d.get("email", ""), c.number,
                    c.kind, c.issue_date, c.due_date, c.amount, c.open, c.currency, last, h.stage))
    return ("\ufeff" + buf.getvalue()).encode()


def handover_json(h: HandOver) -> bytes:
    doc = asdict(h)
    doc["format"] = "evbill.collection_handover/1"
    return json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True).encode()
