"""The renderer parses its templates' HTML with expat (``pdf._tree``) instead of WeasyPrint's HTML5
parser: the tree must be the one the HTML5 parser builds, element for element, text for text, for
every template's output, and anything expat would read differently goes to the HTML5 parser."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from decimal import Decimal as D
from typing import Any
from xml.etree import ElementTree

import pytest
import tinyhtml5

from runtime.documents import pdf, render
from runtime.documents.account_statement import (
    AccountStatementDoc,
    Booking,
    OpenItemLine,
    render_account_statement,
)
from runtime.documents.demo import demo_documents
from runtime.documents.dunning_letter import render_dunning_letter
from runtime.documents.model import Address
from runtime.documents.partner_statement import PartnerStatementDoc, StatementRow, render_partner_statement
from runtime.statements import BreakdownRow

from .samples import BRANDING, CASES, SELLER, make
from .test_dunning_letter import _doc as dunning_doc
from .test_signed_statement import _doc as signed_doc


def _shape(e: ElementTree.Element) -> tuple[Any, ...]:
    return (e.tag, e.attrib, e.text or None, e.tail or None, [_shape(child) for child in e])


def _html5(html: str) -> tuple[Any, ...]:
    return _shape(tinyhtml5.parse(html, namespace_html_elements=False))


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every HTML text the renderer lays out while the test runs."""
    texts: list[str] = []
    original = pdf._html

    def recording(html: str) -> Any:
        texts.append(html)
        return original(html)

    monkeypatch.setattr(pdf, "_html", recording)
    return texts


def test_every_template_parses_as_the_html5_parser_parses_it(seen: list[str]) -> None:
    for _name, doc, formats in demo_documents():
        for fmt in formats:
            if "pdf" in fmt:
                render(doc, fmt)
    for case in CASES:
        for language in ("de", "en"):
            render(make(case, language=language, sessions=2), "facturx-pdf")
    for n in (2, 6):  # the signed data's container in one QR code, and a code per record
        render(signed_doc(n)[0], "pdf")  # type: ignore[arg-type]
    for language in ("de", "en"):
        for letter, stage in (("dunning", 1), ("dunning", 3), ("reminder", 1)):
            render_dunning_letter(dunning_doc(language, letter, stage))
    address = Address("Hafenstraße 1", "Hamburg", "20457", "DE")
    for language in ("de", "en"):
        render_account_statement(AccountStatementDoc(
            language=language, currency="EUR", as_of=date(2026, 11, 30), seller=SELLER,
            customer_name="Flotte <GmbH> & Co. \"KG\"", customer_number="K-1", address=address,
            opening=D(0), closing=D("119.00"),
            bookings=(Booking(date(2026, 11, 2), "invoice", "RE-1", "", D("119.00"), D(0), D("119.00")),),
            open_items=(OpenItemLine("RE-1", date(2026, 11, 2), date(2026, 11, 16), D("119.00"), D("119.00")),),
            start=date(2026, 11, 1), end=date(2026, 12, 1), branding=BRANDING))
        render_partner_statement(PartnerStatementDoc(
            language=language, number="PS-1", issued_at=datetime(2026, 12, 1, 8, 0), local_start=date(2026, 11, 1),
            local_end=date(2026, 12, 1), seller=SELLER, partner_name="Hotel Adler", address=address,
            lines=(StatementRow("share_percent", "EUR", D(19), 12, D("240.5"), D("50.00"), D("9.50"), D("59.50")),),
            parts=(BreakdownRow("cost_centre", "", "", "EUR", 12, D("240.5"), D("50.00"), D("9.50"), D("59.50")),
                   BreakdownRow("site", "S1", "Hotel Adler", "EUR", 12, D("240.5"), D("50.00"), D("9.50"),
                                D("59.50"))),
            payable=(("EUR", D("59.50")),), branding=BRANDING))
    assert len(seen) > 30
    for html in seen:
        tree = pdf._tree(html)
        assert tree is not None
        assert _shape(tree) == _html5(html)


@pytest.mark.parametrize("name", [
    "Müller \x0c GmbH",  # a character XML 1.0 forbids
    "Müller\nGmbH",  # in an attribute (the author's name), XML would turn the line break into a space
])
def test_what_expat_would_read_otherwise_goes_to_the_html5_parser(name: str) -> None:
    doc = make("b2c", sessions=1)
    doc = dataclasses.replace(doc, seller=dataclasses.replace(doc.seller, legal_name=name))
    html = pdf.render_html(doc)
    assert pdf._tree(html) is None
    assert render(doc, "pdf").startswith(b"%PDF")


def test_a_table_without_tbody_gets_the_one_html5_opens() -> None:
    html = ("<!DOCTYPE html>\n<html><head><title>t</title></head>\n<body><table>\n<tr><td>a</td></tr>\n"
            "<tr><td>b<br>c</td></tr>\n</table>\n<p>x</p></body>\n</html>\n")
    tree = pdf._tree(html)
    assert tree is not None
    assert _shape(tree) == _html5(html)
