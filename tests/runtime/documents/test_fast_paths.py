"""WeasyPrint's line drawing, font descriptions, Pango contexts and percentages done with less work
(``runtime.documents.fast_paths``): every document renders the bytes WeasyPrint's own functions
render — invoices and statements in two languages, the statement's tables of 20 and 60 sessions,
line by line, and an HTML page with what those do not use (% and calc() lengths, right-to-left
and underlined text, an ellipsis)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from runtime.documents import fast_paths, render
from runtime.documents.demo import demo_invoice_input
from runtime.documents.from_invoice import document_from_invoice
from tests.runtime.documents.test_shared_styles import _digests

FORMATS = ("facturx-pdf", "statement-pdf", "pdf")


@contextmanager
def _weasyprints_own_functions() -> Iterator[None]:
    fast_paths.uninstall()
    try:
        yield
    finally:
        assert fast_paths.install()


def _installed() -> None:
    render(document_from_invoice(demo_invoice_input("b2b", sessions=2, number="RE-2026-000001")), "pdf")
    if not fast_paths._original:
        pytest.fail("fast_paths is not installed (another WeasyPrint than fast_paths._VERSION?)")


def test_documents_render_the_same_bytes_with_the_fast_paths_functions() -> None:
    _installed()
    with _weasyprints_own_functions():
        own = _digests(FORMATS)
    fast_paths._descriptions.clear()
    fast_paths._struts.clear()
    fast_paths._plain.clear()
    fast = _digests(FORMATS)
    assert fast_paths._descriptions  # the shared font descriptions were used
    assert fast_paths._struts  # the struts kept per style
    assert fast_paths._plain  # and the styles without backgrounds
    assert fast == own


def test_the_fast_line_drawing_writes_weasyprints_operators() -> None:
    """Line by line, the text operators of the fast loop are WeasyPrint's (a stream of its own per
    function, on the same laid-out document)."""
    from weasyprint.draw import text as draw_text  # type: ignore[import-untyped, unused-ignore]

    from runtime.documents import pdf

    _installed()
    doc = document_from_invoice(demo_invoice_input("b2c_en", sessions=20, number="RE-2026-000002"))
    drawn: list[tuple[bytes, bytes]] = []
    own = fast_paths._original["draw_first_line"]

    def both(stream, textbox, text_overflow, block_ellipsis, matrix):  # type: ignore[no-untyped-def]
        start, current_font = len(stream.stream), stream._current_font
        result = own(stream, textbox, text_overflow, block_ellipsis, matrix)
        theirs = stream.stream[start:]
        del stream.stream[start:]
        stream._current_font = current_font
        mine = fast_paths._draw_first_line(stream, textbox, text_overflow, block_ellipsis, matrix)
        drawn.append((b"".join(map(bytes, theirs)), b"".join(map(bytes, stream.stream[start:]))))
        assert result == mine == []
        return mine

    draw_text.draw_first_line = both
    try:
        pdf.render_pdf(doc)
    finally:
        fast_paths.install()
    assert len(drawn) > 100
    assert all(theirs == mine for theirs, mine in drawn)
    assert sum(b"Tj" in mine or b"TJ" in mine for _, mine in drawn) > 100


_PERCENTAGES = """<!DOCTYPE html><html lang="de"><head><style>
@page { size: A5; margin: 5% 4% }
div.a { width: 60%; min-width: 10%; max-width: 90%; height: 20%; min-height: 5%; max-height: 50%;
  margin: 2% 3% 4% 5%; padding: 1% 2% 3% 4%; box-sizing: border-box; border: 2px solid #000 }
div.b { width: calc(50% - 10px); margin-left: calc(10% + 3px); padding-top: 1.5%; height: 30px }
div.c { position: absolute; left: 10%; top: 5%; width: 30%; padding: 2% }
table { width: 80%; margin: 0 auto } td { width: 25%; padding: 1% } td.t { border-collapse: collapse }
p { text-decoration: underline; direction: rtl; font-language-override: "TRK" }
div.r { border: 1px solid #000; border-radius: 20% 4px; display: inline-block }
</style></head><body>
<div class="a">Prozent <b>fett</b> und Text, der umbricht, weil er länger ist als die Box breit ist.</div>
<div class="b">calc() und Zeichen ‒ ✓ ½ ﬁ</div><div class="c">absolut</div>
<table><tr><td>1</td><td class="t">zwei</td></tr></table><p>Unterstrichen rechts nach links</p>
<p style="font-language-override: normal; text-overflow: ellipsis; overflow: hidden; white-space: nowrap; width: 20mm">
Ellipse nach wenigen Zeichen abgeschnitten</p>
<div style="text-align: justify; width: 40mm">Blocksatz verteilt den Rest der Zeile auf die Leerzeichen zwischen
den Wörtern, außer in der letzten Zeile.</div>
<div class="r">abgerundet</div><div class="r">abgerundet, länger als die Zeile davor</div>
<div style="background: #eee; border-radius: 10%; width: 30%">Hintergrund</div>
<div style="visibility: hidden; border-radius: 3px">versteckt</div>
<div style="white-space: pre; word-spacing: 2px">Zeile eins\nZeile zwei\u2029dritte\r\nvierte</div>
<div style="white-space: pre-line; letter-spacing: 0.5px; width: 30mm">Zeilen   mit\nUmbruch und langen Wörtern</div>
</body></html>"""


def test_percentages_calc_and_other_text_render_weasyprints_bytes() -> None:
    """Lengths in % and calc() on margins, paddings, widths, heights, their limits and positions,
    border-box sizing, a page in %, underlined right-to-left text, an ellipsis, justified text,
    preserved line and paragraph breaks, rounded corners and backgrounds: what the documents above
    do not exercise."""
    from weasyprint import HTML  # type: ignore[import-untyped, unused-ignore]

    from runtime.documents import pdf

    _installed()

    def write() -> bytes:
        result = HTML(string=_PERCENTAGES).write_pdf(font_config=pdf.font_config(), pdf_identifier=b"x")
        assert isinstance(result, bytes)
        return result

    with _weasyprints_own_functions():
        own = write()
    assert write() == own


def _pango_layouts_made(doc_format: str) -> int:
    """How many Pango layouts rendering a 20-session invoice makes (``Layout.setup`` calls)."""
    from weasyprint.text import line_break  # type: ignore[import-untyped, unused-ignore]

    doc = document_from_invoice(demo_invoice_input("b2b", sessions=20, number="RE-2026-000003"))
    setup = line_break.Layout.setup
    made = [0]

    def counted(self, style):  # type: ignore[no-untyped-def]
        made[0] += 1
        setup(self, style)

    line_break.Layout.setup = counted
    try:
        render(doc, doc_format)
    finally:
        line_break.Layout.setup = setup
    return made[0]


def test_a_broken_lines_pango_layout_is_drawn_without_shaping_it_again() -> None:
    """Parked layouts: drawing takes the layout its line was broken with, so rendering makes about
    half the Pango layouts WeasyPrint makes (one per line broken instead of one more per line drawn)."""
    from weasyprint.text import line_break  # type: ignore[import-untyped, unused-ignore]

    _installed()
    fast = _pango_layouts_made("facturx-pdf")
    line_break.Layout.deactivate = fast_paths._original["deactivate"]
    line_break.Layout.reactivate = fast_paths._original["reactivate"]
    try:
        own = _pango_layouts_made("facturx-pdf")
    finally:
        assert fast_paths.install()
    assert own > 200
    assert fast < own * 0.6


def test_drawing_a_parked_layout_leaves_it_as_it_was_laid_out() -> None:
    """A parked layout is drawn without a setter called on it (Pango's serial unchanged), so Pango
    does not lay its text out again: single-paragraph mode is asked for only when the text has a
    paragraph separator."""
    from weasyprint.draw import text as draw_text  # type: ignore[import-untyped, unused-ignore]
    from weasyprint.text import line_break  # type: ignore[import-untyped, unused-ignore]
    from weasyprint.text.ffi import ffi, pango  # type: ignore[import-untyped, unused-ignore]

    if not hasattr(pango, "pango_layout_get_serial"):
        ffi.cdef("guint pango_layout_get_serial (PangoLayout *layout);")
    _installed()
    reactivate, draw = line_break.Layout.reactivate, draw_text.draw_first_line
    parked: set[int] = set()
    serials: list[tuple[int, int]] = []

    def reactivated(self, style):  # type: ignore[no-untyped-def]
        if self in fast_paths._parked:
            parked.add(id(self))
        reactivate(self, style)

    def drawn(stream, textbox, *args):  # type: ignore[no-untyped-def]
        layout = textbox.pango_layout
        before = pango.pango_layout_get_serial(layout.layout)
        result = draw(stream, textbox, *args)
        if id(layout) in parked:
            serials.append((before, pango.pango_layout_get_serial(layout.layout)))
        return result

    line_break.Layout.reactivate, draw_text.draw_first_line = reactivated, drawn
    try:
        render(document_from_invoice(demo_invoice_input("b2c", sessions=20, number="RE-2026-000004")), "facturx-pdf")
    finally:
        line_break.Layout.reactivate, draw_text.draw_first_line = reactivate, draw
    assert len(serials) > 100
    assert all(before == after for before, after in serials)


def test_the_parked_layouts_are_bounded_and_what_was_let_go_is_made_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """With room for only 8 parked layouts the oldest go first: their lines are shaped again to be
    drawn, and the documents are byte for byte WeasyPrint's."""
    _installed()
    with _weasyprints_own_functions():
        own = _digests(("statement-pdf", "facturx-pdf"))
    unbounded = _pango_layouts_made("facturx-pdf")
    monkeypatch.setattr(fast_paths, "_PARKED_LIMIT", 8)
    fast_paths._parked.clear()
    bounded = _pango_layouts_made("facturx-pdf")
    assert len(fast_paths._parked) <= 8
    assert bounded > unbounded + 100
    assert _digests(("statement-pdf", "facturx-pdf")) == own
