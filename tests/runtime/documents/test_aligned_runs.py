"""Amount columns printed as one text run per row (``pdf._aligned``): the columns line up by the
font's advance widths, the header fits its cell, and the PDF shows the texts themselves."""

from __future__ import annotations

import io
import re
from decimal import Decimal

from fontTools.ttLib import TTFont
from pypdf import PdfReader

from runtime.documents import render
from runtime.documents.demo import demo_invoice_input
from runtime.documents.from_invoice import document_from_invoice
from runtime.documents.pdf import _aligned, money_text

DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans{}.ttf"


def _advance(font: TTFont):  # type: ignore[no-untyped-def]
    cmap, hmtx, upm = font.getBestCmap(), font["hmtx"], font["head"].unitsPerEm
    return lambda text: sum(hmtx[cmap[ord(c)]][0] for c in text) / upm


def _right_edges(run: str, width) -> list[float]:  # type: ignore[no-untyped-def]
    """Distances (em) from the run's right end to each column's right end."""
    parts = [p for p in re.split("([\u2007\u2008\u200a]+)", run) if p]
    edges, right = [], 0.0
    for part in reversed(parts):
        if not re.fullmatch("[\u2007\u2008\u200a]+", part):
            edges.append(right)
        right += width(part)
    return edges[::-1]


def test_columns_line_up_by_the_fonts_widths_with_minus_signs_and_thousands():
    regular = _advance(TTFont(DEJAVU.format("")))
    bold = _advance(TTFont(DEJAVU.format("-Bold")))
    amounts = [Decimal(7), Decimal(-153), Decimal("1234.5"), Decimal(-1569)]
    columns = [["Einzelpreis"] + [money_text(a, "EUR", "de") for a in amounts],
               ["USt."] + ["19 %", "19 %", "7 %", "–"],
               ["Betrag"] + [money_text(-a, "EUR", "de") for a in amounts]]
    head, *rows = _aligned(columns, 2, 8.6 / 7.8)
    edges = [_right_edges(r, regular) for r in rows]
    for row in edges[1:]:
        for a, b in zip(row, edges[0]):
            assert abs(a - b) < 0.11  # em: a twentieth per padded column to its right (hair-space rounding)
    # the header in bold at 7.8 pt: each label ends at or right of its column's end (never past
    # the run's width: it does not leave its cell), and within the width of a letter
    head_edges = [e * 7.8 / 8.6 for e in _right_edges(head, bold)]
    assert len(head_edges) == 3
    for h, e in zip(head_edges, edges[0]):
        assert -0.05 <= e - h < 0.9
    assert bold(head) * 7.8 <= regular(rows[0]) * 8.6 + 0.5


def test_the_invoice_line_table_prints_price_vat_and_amount_of_every_line():
    doc = document_from_invoice(demo_invoice_input("b2b", sessions=5, number="RE-2026-000009"))
    pdf = render(doc, "pdf")
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    text = re.sub(r"[\u00a0\u2007\u2008\u200a]+", " ", text)
    for line in doc.lines:
        net = money_text(line.net(doc.currency), "EUR", "de")
        assert re.search(rf"19 % +{re.escape(net)}".replace("\u00a0", " "), text), net


def _number_ends(run: str, width) -> list[float]:  # type: ignore[no-untyped-def]
    """Distances (em) from the run's right end to the right end of each number in it."""
    return [width(run[match.end():]) for match in re.finditer(r"[0-9][0-9.,]*", run)]


def _statement_runs(case: str, sessions: int):  # type: ignore[no-untyped-def]
    from runtime.documents.pdf import LABELS, _statement_rows

    doc = document_from_invoice(demo_invoice_input(case, sessions=sessions, number="RE-2026-000060"))
    rows, totals = _statement_rows(doc, LABELS[doc.language], lambda v: money_text(v, doc.currency, doc.language))
    return doc, totals["amounts_head"], [r["amounts"] for r in rows], totals


def test_the_statements_usage_and_amounts_line_up_and_fit_their_cell():
    """Token, charging / parking minutes, energy, net, VAT and gross: one run per session; the
    numbers' right ends line up (the token before them need not), the sum row's energy ends where
    the sessions' do, and the widest run of a 60-session statement stays inside its 101 mm cell."""
    regular = _advance(TTFont(DEJAVU.format("")))
    bold = _advance(TTFont(DEJAVU.format("-Bold")))
    _doc, head, rows, totals = _statement_runs("b2b", 60)
    # where each number ends (em from the run's right end): minutes, minutes, energy, net, VAT, gross
    numbers = [_number_ends(r, regular)[-6:] for r in rows]
    for row in numbers[1:]:
        for a, b in zip(row, numbers[0]):
            assert abs(a - b) < 0.11
    total = _number_ends(totals["amounts"], regular)
    assert len(total) == 4 and all(abs(a - b) < 0.11 for a, b in zip(total, numbers[0][-4:]))  # energy, amounts
    mm = 6.6 * 25.4 / 72  # the statement's font size, per em
    assert max(regular(r) for r in rows + [totals["amounts"]]) * mm < 101 - 2  # less the cell's padding
    assert bold(head) * mm < 101 - 2


def test_the_statement_pdf_prints_every_sessions_token_minutes_and_energy():
    doc = document_from_invoice(demo_invoice_input("b2b", sessions=20, number="RE-2026-000009"))
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(render(doc, "statement-pdf"))).pages)
    text = re.sub(r"[\u00a0\u2007\u2008\u200a ]+", " ", text)
    from runtime.documents.i18n import number_text

    for r in doc.statement:
        usage = (f"{r.token} · {number_text(r.charging_minutes, 0, 'de')} / "
                 f"{number_text(r.parking_minutes, 0, 'de')} min · {number_text(r.energy_kwh, 3, 'de')}")
        assert usage in text, usage
