"""The payment text under the totals (for a direct debit the SEPA pre-notification: terms line and
a four-line box) stays on the page of the totals whenever it fits there, and is never split; the
PDF is read back page by page with pdftotext, and where the notice did go over, the layout shows
that the totals' page had no room for it (with the old stylesheet the demo's INV-000004 left its
notice alone on page 2 with a third of page 1 empty)."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from runtime.documents import render
from runtime.documents.demo import demo_invoice_input
from runtime.documents.from_invoice import document_from_invoice
from runtime.documents.model import Document, Line
from runtime.documents.pdf import layout_pdf

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext (poppler-utils) is missing; "
                                                                          "make system installs it")

MM = 25.4 / 96  # CSS px -> mm
PAGE_BOTTOM = 297 - 34  # A4 less the bottom margin of style.css's @page
NOTES_GAP = 4  # style.css: .notes { margin-top: 4mm } (dropped at the top of a new page)


def _invoice(n_lines: int) -> Document:
    """The SEPA demo invoice without its statement, with ``n_lines`` more lines."""
    doc = document_from_invoice(demo_invoice_input("b2c", 4, "RE-2026-000001"))
    extra = tuple(Line(str(100 + i), f"Servicepauschale Standort {i}", D(1), "C62", D("1.00") + D(i))
                  for i in range(n_lines))
    lines = tuple(dataclasses.replace(ln, id=str(k)) for k, ln in enumerate(doc.lines + extra, 1))
    return dataclasses.replace(doc, lines=lines, statement=())


def _pages(pdf: bytes, tmp_path: Path) -> list[str]:
    path = tmp_path / "doc.pdf"
    path.write_bytes(pdf)
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    count = int(next(ln.split()[1] for ln in info.splitlines() if ln.startswith("Pages:")))
    return [" ".join(subprocess.run(["pdftotext", "-f", str(i), "-l", str(i), str(path), "-"], capture_output=True,
                                    text=True, check=True).stdout.split()) for i in range(1, count + 1)]


def _boxes(doc: Document) -> dict[str, list[tuple[int, float, float]]]:
    """(page, top mm, bottom mm) of the totals block and the notice, as laid out."""
    found: dict[str, list[tuple[int, float, float]]] = {"totals-block": [], "notice": []}

    def walk(box: Any, page: int) -> None:
        el = getattr(box, "element", None)
        cls = el.get("class") if el is not None else None
        if cls in found and box.element_tag == "div":
            found[cls].append((page, box.position_y * MM, (box.position_y + box.margin_height()) * MM))
            return
        for child in getattr(box, "children", ()):
            walk(child, page)

    for n, page in enumerate(layout_pdf(doc, include_statement=False).pages):
        walk(page._page_box, n)
    return found


@pytest.mark.parametrize("n_lines", range(24))
def test_the_debit_notice_stays_with_the_totals_when_it_fits(n_lines: int, tmp_path: Path) -> None:
    doc = _invoice(n_lines)
    pages = _pages(render(doc, "pdf"), tmp_path)
    totals = [i for i, text in enumerate(pages) if "Zahlbetrag" in text]
    notice = [i for i, text in enumerate(pages) if "SEPA-Lastschrift" in text or "Mandatsreferenz" in text
              or "ausreichende Deckung" in text]
    assert len(totals) == 1 and len(notice) == 1, (totals, notice, pages)  # never split
    assert "Zahlbar innerhalb von 14 Tagen" in pages[notice[0]]  # the terms line goes with it
    boxes = _boxes(doc)
    [(t_page, _, t_bottom)] = boxes["totals-block"]
    [(n_page, n_top, n_bottom)] = boxes["notice"]
    assert (t_page, n_page) == (totals[0], notice[0])
    if notice[0] != totals[0]:
        # it went over only because it did not fit under the totals (to a twentieth of a millimetre:
        # WeasyPrint adds up line heights in Pango's units, these figures are the boxes' sums in
        # mm; with 4 more lines the notice would end 0.004 mm above the limit here and goes over)
        assert t_bottom + NOTES_GAP + (n_bottom - n_top) > PAGE_BOTTOM - 0.05, (n_lines, t_bottom, n_bottom - n_top)


def test_the_demo_case_keeps_its_notice_on_page_one(tmp_path: Path) -> None:
    """INV-000004 of ``evbill demo``: the totals end about 33 mm above the footer."""
    for n_lines in range(24):
        doc = _invoice(n_lines)
        [(t_page, _, t_bottom)] = _boxes(doc)["totals-block"]
        if t_page == 0 and 225 <= t_bottom <= 232:
            break
    else:
        pytest.fail("no invoice in the sweep ends its totals where the demo's did")
    pages = _pages(render(doc, "pdf"), tmp_path)
    assert "Zahlbetrag" in pages[0] and "Mandatsreferenz: MANDATE-100234" in pages[0], pages


def test_the_tenants_legal_lines_are_in_the_footer_of_every_page(tmp_path: Path) -> None:
    """Register court, register number and managing directors stand in the footer's company
    column on every page, one part per line and none twice, never as a body line that a page
    break could leave alone on an empty page."""
    from runtime.documents.model import Branding

    branding = Branding(legal_lines=("Musterstadt GmbH · Amtsgericht Musterstadt HRB 1234",
                                     "Geschäftsführung: Dr. A. Beispiel"))
    doc = dataclasses.replace(_invoice(30), branding=branding)
    pages = _pages(render(doc, "pdf"), tmp_path)
    assert len(pages) >= 2
    for text in pages:
        assert text.count("Amtsgericht Musterstadt HRB 1234") == 1
        assert text.count("Geschäftsführung: Dr. A. Beispiel") == 1
    # after the notice nothing but the footer: the legal lines are not a paragraph of the body
    last = pages[-1]
    assert last.index("Amtsgericht Musterstadt HRB 1234") > last.index(doc.seller.address.street)
