"""Getting a rendering worker process ready before its first real document.

A month-end run renders thousands of documents per process, so everything that can be paid once
is paid here: WeasyPrint's import (~0.5 s), the parsed stylesheets per language, the font
configuration (fontconfig lookups), the Jinja templates, and one throw-away render that fills
WeasyPrint's and Pango's internal caches. ``warm_up`` also moves the long-lived objects out of
the cyclic garbage collector's way (``gc.freeze``) and makes young-generation collections rarer:
a render allocates hundreds of thousands of short-lived boxes, and default GC thresholds spend
~8 % of the CPU re-scanning them. Call it only in processes that mainly render documents.
"""

from __future__ import annotations

import gc
from datetime import date
from decimal import Decimal

__all__ = ["warm_up"]

_done = False


def warm_up(*, tune_gc: bool = True) -> None:
    global _done
    if _done:
        return
    from runtime.documents import pdf, render
    from runtime.documents.model import (
        Address,
        Buyer,
        Contact,
        Document,
        DocumentKind,
        ElectronicAddress,
        Line,
        PaymentMeans,
        Seller,
    )

    for language in ("de", "en"):
        pdf.stylesheet(language)
    pdf.font_config()
    address = Address("Street 1", "City", "12345", "DE")
    seller = Seller("Seller", address, ElectronicAddress("s@example.org"), Contact("S", "0", "s@example.org"),
                    vat_id="DE123456789", iban="DE02120300000000202051")
    doc = Document(
        kind=DocumentKind.INVOICE,
        number="WARM-UP", issue_date=date(2026, 1, 1), due_date=date(2026, 1, 15), currency="EUR",
        seller=seller, buyer=Buyer("Buyer", address, ElectronicAddress("b@example.org"), buyer_reference="B"),
        lines=(Line("1", "Warm-up", Decimal(1), "C62", Decimal(1)),), payment=PaymentMeans("58"),
    )
    for fmt in ("pdf", "facturx-pdf", "xrechnung-ubl", "xrechnung-cii"):
        render(doc, fmt)
    if tune_gc:
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)
    _done = True
