"""The PDF as finance reads it (issue 11, defect 8): language, cap lines, totals on the page of
their lines, VAT categories in words, statements that reconcile, babel formatting, no overflow."""

from __future__ import annotations

import dataclasses
import io
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pypdf import PdfReader

from runtime.documents import render
from runtime.documents.demo import demo_documents, demo_invoice_input
from runtime.documents.from_invoice import (
    BilledLine,
    InvoiceInput,
    SessionFacts,
    document_from_invoice,
    reversal_of,
)
from runtime.documents.i18n import money_text, sessions_text
from runtime.documents.model import Document, Line
from runtime.documents.pdf import layout_pdf
from runtime.invoicing import PaymentTerms, assemble_invoice, period_ending
from runtime.rated import RatedLine
from runtime.rating import facts_minutes


def _pages(pdf: bytes) -> list[str]:
    reader = PdfReader(io.BytesIO(pdf))
    return [(p.extract_text() or "").replace("\u00a0", " ").replace("\u202f", " ") for p in reader.pages]


def _text(pdf: bytes) -> str:
    return "\n".join(_pages(pdf))


def _flat(text: str) -> str:
    """Text with line breaks as spaces: a description may wrap anywhere in its cell."""
    return " ".join(text.split())


def _german_b2c() -> Document:
    return document_from_invoice(demo_invoice_input("b2c", 20, "RE-2026-000001"))


# words an English page prints that must not appear on a German one (the rated texts of caps and
# rounding, the English labels)
ENGLISH = ("capped", "Parking", "Cap", "session", "sessions", "Rounding", "Invoice", "Total", "VAT",
           "Amount", "Allowance", "Charge", "Due", "Energy", "Start fee", "Discount", "reverse charge",
           "Quantity", "Unit price", "Description", "Service period")


@pytest.mark.parametrize("which", ["invoice", "credit_note", "statement"])
def test_german_documents_print_no_english(which: str) -> None:
    doc = _german_b2c()
    if which == "credit_note":
        doc = reversal_of(doc, "GS-2026-000009", date(2026, 11, 20))
    pdf = render(doc, "statement-pdf" if which == "statement" else "pdf")
    text = _text(pdf)
    found = [w for w in ENGLISH if re.search(rf"\b{re.escape(w)}\b", text)]
    assert not found, (found, text)


def test_one_cap_line_per_component_and_cap_in_the_documents_language() -> None:
    inp = demo_invoice_input("b2c", 20, "RE-2026-000001")
    caps = [ln for ln in inp.lines if ln.component == "cap"]
    assert len(caps) == 5  # five capped sessions
    doc = document_from_invoice(inp)
    cap_lines = [ln for ln in doc.lines if ln.name.startswith("Deckelung")]
    assert len(cap_lines) == 1
    (cap,) = cap_lines
    assert cap.name == "Deckelung Blockiergebühr"
    assert cap.net("EUR") == sum((ln.net for ln in caps), D(0))  # the exact sum, not a rounding of it
    text = _text(render(doc, "pdf"))
    invoice_page = _pages(render(dataclasses.replace(doc, statement=()), "pdf"))[0]
    assert "höchstens 12,00 € je Ladevorgang, 5 Ladevorgänge" in _flat(invoice_page)
    assert invoice_page.count("Deckelung") == 1
    assert "capped at" not in text
    # the capped component's line comes first, its cap right after it
    names = [ln.name for ln in doc.lines]
    assert names.index("Deckelung Blockiergebühr") == names.index("Blockiergebühr") + 1


def test_rounding_is_a_note_on_its_line_not_a_charge() -> None:
    doc = _german_b2c()
    energy = next(ln for ln in doc.lines if ln.name == "Energie")
    assert energy.allowances_charges and energy.allowances_charges[0].is_rounding  # the XML keeps it
    text = _text(render(doc, "pdf"))
    assert "Zuschlag:" not in text and "Nachlass:" not in text
    assert "je Ladevorgang gerundet: -0,01 €" in _flat(text)


def _long_invoice(n_lines: int) -> Document:
    doc = _german_b2c()
    extra = tuple(Line(str(100 + i), f"Servicepauschale Standort {i}", D(1), "C62", D("1.00") + D(i))
                  for i in range(n_lines))
    lines = tuple(dataclasses.replace(ln, id=str(k)) for k, ln in enumerate(doc.lines + extra, 1))
    return dataclasses.replace(doc, lines=lines, statement=())


# with the old layout, 1-5 and 32-36 extra lines left the totals (or their end) alone on page 2
@pytest.mark.parametrize("n_lines", [0, 2, 4, 9, 15, 21, 27, 32, 34, 36, 40])
def test_totals_block_stays_with_the_last_lines(n_lines: int) -> None:
    doc = _long_invoice(n_lines)
    pages = _pages(render(doc, "pdf"))
    last = doc.lines[-1].name
    on = [i for i, page in enumerate(pages) if last in page]
    assert len(on) == 1
    page = pages[on[0]]
    for label in ("Summe Positionen", "Nettobetrag", "USt. 19 % auf", "Gesamtbetrag", "Zahlbetrag"):
        assert label in page, (n_lines, label, pages)


@pytest.mark.parametrize(("language", "expected"), [
    ("de", "USt. 0 % (Steuerschuldnerschaft des Leistungsempfängers) auf"),
    ("en", "VAT 0% (reverse charge) on"),
])
def test_reverse_charge_prints_a_rate_in_words_not_the_category_code(language: str, expected: str) -> None:
    inp = demo_invoice_input("b2b_rc", 6, "RE-2026-000004")
    inp = dataclasses.replace(inp, customer=dataclasses.replace(inp.customer, language=language))
    text = _text(render(document_from_invoice(inp), "pdf"))
    assert expected in text
    assert not re.search(r"\bAE\b", text), text


def _statement_input(sessions: list[tuple[D, D, int]], rounding: str = "half_up") -> InvoiceInput:
    """An invoice with only session lines: per session (kWh, price per kWh, parking minutes)."""
    period = period_ending("monthly", 1, "Europe/Berlin", datetime(2026, 11, 1, 12, tzinfo=UTC))
    rated: list[RatedLine] = []
    facts: list[SessionFacts] = []
    for i, (kwh, price, parked) in enumerate(sessions):
        sid = f"S{i}"
        rated.append(RatedLine("start_fee", "Start fee", D(1), "session", D("0.35"), D("0.35"), D(19), "EUR", "r1", sid))
        rated.append(RatedLine("energy", "Energy", kwh, "kWh", price, kwh * price, D(19), "EUR", "r2", sid))
        if parked:
            fee = D(parked) * D("0.10")
            rated.append(RatedLine("parking", "Parking time", D(parked), "min", D("0.10"), fee, D(7), "EUR", "r3", sid))
        facts.append(SessionFacts(sid, datetime(2026, 10, 1, 6, tzinfo=UTC) + timedelta(hours=i), "Europe/Berlin",
                                  "Musterstadt Rathaus", "DE*SWM*E300*1", "DE-SWM-C4000", kwh, D(30), D(parked)))
    draft = assemble_invoice(account_id="a", currency="EUR", period=period, issue_date=date(2026, 11, 2),
                             terms=PaymentTerms("net", 14), period_lines=rated, rounding=rounding)
    lines = tuple(BilledLine(ln.seq, ln.kind, ln.component, ln.description, ln.quantity, ln.unit, ln.unit_price,
                             ln.net, ln.tax_rate, ln.session_id, ln.rule) for ln in draft.lines)
    base = demo_invoice_input("b2c", 1)
    return dataclasses.replace(base, lines=lines, net_total=draft.net_total, tax_total=draft.tax_total,
                               sessions=tuple(facts), rounding=rounding)


_session = st.tuples(
    st.decimals(min_value=D("0.001"), max_value=D(80), places=3),
    st.sampled_from([D("0.39"), D("0.4912"), D("0.59"), D("0.6649")]),
    st.sampled_from([0, 0, 17, 233]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_session, min_size=1, max_size=40), st.sampled_from(["half_up", "half_even"]))
def test_statement_totals_are_the_invoices(sessions: list[tuple[D, D, int]], rounding: str) -> None:
    doc = document_from_invoice(_statement_input(sessions, rounding))
    t = doc.totals
    rows = doc.statement
    assert sum((r.net for r in rows), D(0)) == t.net
    assert sum((r.tax for r in rows), D(0)) == t.tax
    assert sum((r.gross for r in rows), D(0)) == t.gross


def test_statement_page_shows_the_invoice_totals_and_rounds_like_it() -> None:
    # the demo's 20 sessions: per-session VAT rounding summed to 54,98 €, the invoice's VAT
    # (once on the rate group) is 54,99 €
    doc = _german_b2c()
    text = _text(render(doc, "statement-pdf"))
    t = doc.totals
    total_row = next(line for line in text.splitlines() if line.startswith("Summe (20 Ladevorgänge)"))
    for amount in (t.net, t.tax, t.gross):
        assert money_text(amount, "EUR", "de").replace("\u00a0", " ") in total_row, (amount, total_row)


def test_statement_reconciles_to_an_invoice_with_other_lines() -> None:
    doc = document_from_invoice(demo_invoice_input("b2b", 12, "RE-2026-000003"))  # services and a discount
    text = _text(render(doc, "statement-pdf"))
    last = next(line for line in text.splitlines() if line.startswith("Rechnungsbetrag RE-2026-000003"))
    for amount in (doc.totals.net, doc.totals.tax, doc.totals.gross):
        assert money_text(amount, "EUR", "de").replace("\u00a0", " ") in last
    assert "Weitere Positionen der Rechnung" in text


def test_one_session_is_singular() -> None:
    doc = document_from_invoice(_statement_input([(D(10), D("0.49"), 0)]))
    text = _text(render(doc, "statement-pdf"))
    assert "1 Ladevorgang" in text and "1 Ladevorgänge" not in text
    assert sessions_text(2, "de") == "2 Ladevorgänge"
    assert sessions_text(1, "en") == "1 session"
    assert sessions_text(0, "fr") == "0 recharge"  # French counts 0 as singular (CLDR)


@pytest.mark.parametrize(("language", "expected"), [
    ("de", "1.234,56 €"), ("en", "€1,234.56"), ("fr", "1 234,56 €"), ("nl", "€ 1.234,56")])
def test_amounts_are_formatted_by_the_locale(language: str, expected: str) -> None:
    def plain(s: str) -> str:
        return s.replace("\u00a0", " ").replace("\u202f", " ")

    assert plain(money_text(D("1234.56"), "EUR", language)) == expected
    inp = demo_invoice_input("b2c", 3)
    inp = dataclasses.replace(inp, customer=dataclasses.replace(inp.customer, language=language),
                              lines=inp.lines + (BilledLine(99, "service", "service", "Wallbox", D(1), "each",
                                                            D("1234.56"), D("1234.56"), D(19)),),
                              net_total=inp.net_total + D("1234.56"),
                              tax_total=_tax(inp.lines, D("1234.56")))
    text = _text(render(document_from_invoice(inp), "pdf"))
    assert expected in text


def _tax(lines: tuple[BilledLine, ...], extra: D) -> D:
    from runtime.money import tax_groups

    return sum((t for _, _, t in tax_groups([(ln.tax_rate, ln.net) for ln in lines] + [(D(19), extra)], "EUR")), D(0))


def _boxes(box: Any) -> list[Any]:
    out = [box]
    for child in getattr(box, "children", ()):
        out += _boxes(child)
    return out


@pytest.mark.parametrize("name", ["invoice-b2c-with-statement", "credit-note-reversal", "credit-note-partial",
                                  "invoice-b2b-facturx", "invoice-public-xrechnung"])
def test_nothing_overflows_the_info_box_or_the_page(name: str) -> None:
    doc = {n: d for n, d, _ in demo_documents()}[name]
    laid_out = layout_pdf(doc, include_statement=False)
    for page in laid_out.pages:
        root = page._page_box.children[0]  # the html box: the page's content area
        right = root.content_box_x() + root.width
        for box in _boxes(root):
            assert box.border_box_x() + box.border_width() <= right + 0.5, (name, type(box).__name__, box)
        infos = [b for b in _boxes(root) if "info" in (b.element.get("class", "").split() if b.element is not None
                                                        and b.element_tag == "div" else [])]
        for info in infos:
            inner = info.content_box_x() + info.width
            for box in _boxes(info)[1:]:
                assert box.border_box_x() + box.border_width() <= inner + 0.5, (name, box)


def test_parking_minutes_come_from_what_rating_measured() -> None:
    start = datetime(2026, 10, 1, 8, tzinfo=UTC)
    facts = {"id": "s1", "start": start.isoformat(), "end": (start + timedelta(minutes=654)).isoformat(),
             "charging_end": (start + timedelta(minutes=200)).isoformat(), "energy_kwh": "22"}
    assert facts_minutes(facts) == (D(200), D(454))
    assert facts_minutes({"id": "broken"}) is None
    assert facts_minutes(None) is None
