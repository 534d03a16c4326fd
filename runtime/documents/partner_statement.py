"""A partner statement as a PDF (issue 18): the statement's lines, then the charging energy and
revenue per cost centre and per site, each table adding up to the statement's revenue (the
apportionment of ``runtime.statements.breakdown``). In the partner's language (de, en), with the
tenant's letterhead and footer like the account statement.

The numbers are the issued statement's; this module only lays them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final

from runtime.documents.i18n import date_text, money_text, number_text, rate_text
from runtime.documents.model import Address, Branding, Seller
from runtime.money import ZERO
from runtime.statements import BreakdownRow

__all__ = ["PARTNER_STATEMENT_LABELS", "PartnerStatementDoc", "StatementRow", "render_partner_statement"]

PARTNER_STATEMENT_LABELS: Final[dict[str, dict[str, str]]] = {
    "de": {
        "title": "Partnerabrechnung", "number": "Nummer", "issued": "Ausgestellt am",
        "period": "Zeitraum", "partner": "Partner", "lines": "Abrechnungspositionen", "item": "Position",
        "sessions": "Ladevorgänge", "energy": "Energie (kWh)", "net": "Netto", "tax": "USt", "gross": "Brutto",
        "revenue": "Ladeumsatz, USt {rate}", "by_cost_centre": "Energie und Umsatz je Kostenstelle",
        "by_site": "Energie und Umsatz je Standort", "cost_centre": "Kostenstelle", "site": "Standort",
        "none": "ohne Kostenstelle", "total": "Summe", "payable": "Ihr Anteil",
        "reconciles": "Die Summen je Kostenstelle und je Standort ergeben den Ladeumsatz der Abrechnung: die "
                      "gerundeten Beträge jeder Umsatzzeile sind nach den genauen Umsätzen der Ladevorgänge "
                      "aufgeteilt (größter Rest).",
        "cost_centre_note": "Die Kostenstelle eines Ladevorgangs ist die seines Ladeausweises, sonst die seines "
                            "Vertrags, wie sie beim Speichern des Ladevorgangs galt.",
        "no_sessions": "Keine Ladevorgänge im Zeitraum.",
    },
    "en": {
        "title": "Partner statement", "number": "Statement number", "issued": "Issued on",
        "period": "Period", "partner": "Partner", "lines": "Statement lines", "item": "Item",
        "sessions": "Sessions", "energy": "Energy (kWh)", "net": "Net", "tax": "VAT", "gross": "Gross",
        "revenue": "Charging revenue, VAT {rate}", "by_cost_centre": "Energy and revenue per cost centre",
        "by_site": "Energy and revenue per site", "cost_centre": "Cost centre", "site": "Site",
        "none": "no cost centre", "total": "Total", "payable": "Your share",
        "reconciles": "The totals per cost centre and per site add up to the statement's charging revenue: each "
                      "revenue line's rounded amounts are apportioned by the sessions' exact revenue (largest "
                      "remainder).",
        "cost_centre_note": "A session's cost centre is its token's, else its contract's, as it was when the "
                            "session was stored.",
        "no_sessions": "No sessions in the period.",
    },
}

# share line kinds as a partner reads them (the statement's own descriptions are English)
_KINDS: Final[dict[str, dict[str, str]]] = {
    "de": {"share_percent": "Umsatzbeteiligung", "share_per_kwh": "Vergütung je kWh",
           "share_per_session": "Vergütung je Ladevorgang", "share_monthly_fee": "Monatliche Pauschale",
           "reimbursement": "Energieerstattung", "commission": "Provision",
           "share_correction": "Korrektur neu bewerteter Ladevorgang", "share_late_session": "Nachgemeldeter Ladevorgang"},
    "en": {"share_percent": "Revenue share", "share_per_kwh": "Share per kWh", "share_per_session": "Share per session",
           "share_monthly_fee": "Monthly fee", "reimbursement": "Energy reimbursement", "commission": "Commission",
           "share_correction": "Correction of a re-rated session", "share_late_session": "Late session"},
}


@dataclass(frozen=True)
class StatementRow:
    """One line of the statement as issued."""

    kind: str
    currency: str
    tax_rate: Decimal | None
    sessions: int
    energy_kwh: Decimal
    net: Decimal
    tax: Decimal
    gross: Decimal


@dataclass(frozen=True)
class PartnerStatementDoc:
    language: str
    number: str
    issued_at: datetime
    local_start: date
    local_end: date  # exclusive
    seller: Seller
    partner_name: str
    address: Address | None
    lines: tuple[StatementRow, ...]
    parts: tuple[BreakdownRow, ...]  # per cost centre, then per site
    payable: tuple[tuple[str, Decimal], ...] = ()  # per currency
    branding: Branding = field(default_factory=Branding)


def _context(doc: PartnerStatementDoc) -> dict[str, Any]:
    from runtime.documents.pdf import LABELS, logo_uri

    lang = doc.language
    labels = PARTNER_STATEMENT_LABELS[lang]

    def m(value: Decimal, cur: str) -> str:
        return money_text(value, cur, lang)

    def kwh(value: Decimal) -> str:
        return number_text(value, 3, lang)

    last = date.fromordinal(doc.local_end.toordinal() - 1)
    info = [(labels["number"], doc.number), (labels["issued"], date_text(doc.issued_at.date(), lang)),
            (labels["period"], f"{date_text(doc.local_start, lang)} – {date_text(last, lang)}")]
    lines = []
    for ln in doc.lines:
        text = (labels["revenue"].format(rate=rate_text(ln.tax_rate, lang)) if ln.kind == "revenue"
                and ln.tax_rate is not None else _KINDS[lang].get(ln.kind, ln.kind))
        lines.append({"text": text, "sessions": str(ln.sessions) if ln.sessions else "",
                      "kwh": kwh(ln.energy_kwh) if ln.energy_kwh else "", "net": m(ln.net, ln.currency),
                      "tax": m(ln.tax, ln.currency) if ln.kind == "revenue" else "",
                      "gross": m(ln.gross, ln.currency) if ln.kind == "revenue" else ""})
    tables = []
    for dim, title, head in (("cost_centre", labels["by_cost_centre"], labels["cost_centre"]),
                             ("site", labels["by_site"], labels["site"])):
        rows = [p for p in doc.parts if p.dimension == dim]
        for cur in sorted({p.currency for p in rows}):
            mine = [p for p in rows if p.currency == cur]
            body = [{"name": (p.key or labels["none"]) if dim == "cost_centre" else
                     (f"{p.label} ({p.key})" if p.label and p.label != p.key else p.key),
                     "sessions": str(p.sessions), "kwh": kwh(p.energy_kwh), "net": m(p.net, cur),
                     "tax": m(p.tax, cur), "gross": m(p.gross, cur)} for p in mine]
            total = {"sessions": str(sum(p.sessions for p in mine)),
                     "kwh": kwh(sum((p.energy_kwh for p in mine), ZERO)),
                     "net": m(sum((p.net for p in mine), ZERO), cur), "tax": m(sum((p.tax for p in mine), ZERO), cur),
                     "gross": m(sum((p.gross for p in mine), ZERO), cur)}
            tables.append({"title": title + (f" ({cur})" if len({p.currency for p in doc.parts}) > 1 else ""),
                           "head": head, "rows": body, "total": total})
    return {
        "doc": doc, "P": labels, "L": LABELS[lang], "lang": lang, "title": f"{labels['title']} {doc.number}",
        "logo": logo_uri(doc.branding), "branding": doc.branding, "issuer_name": doc.seller.legal_name,
        "issuer_address": doc.seller.address, "self_billing": False, "info": info, "lines": lines,
        "tables": tables, "payable": [(m(v, cur)) for cur, v in doc.payable],
    }


def render_partner_statement(doc: PartnerStatementDoc) -> bytes:
    """The statement as PDF bytes (the same statement renders the same bytes)."""
    from runtime.documents.pdf import _environment, render_letter_pdf

    if doc.language not in PARTNER_STATEMENT_LABELS:
        raise ValueError(f"unsupported language {doc.language!r}")
    html = _environment().get_template("partner_statement.html").render(**_context(doc))
    return render_letter_pdf(html, number=doc.number, language=doc.language, seller=doc.seller,
                             branding=doc.branding)
