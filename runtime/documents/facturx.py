"""ZUGFeRD 2.x / Factur-X (profile EN 16931): a PDF/A-3 invoice with its CII XML embedded.

WeasyPrint writes the visible document as PDF/A-3b; the ``factur-x`` package then attaches the
CII as ``factur-x.xml`` (AFRelationship ``Alternative``: the XML is an equivalent of the page,
as ZUGFeRD asks for the EN 16931 profile) and writes the Factur-X XMP extension schema.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, time
from typing import Any

from runtime.documents import cii, pdf
from runtime.documents.formats import FACTURX_CII
from runtime.documents.model import Document, DocumentKind

__all__ = ["AF_RELATIONSHIP", "FACTURX_FILENAME", "render_facturx"]

FACTURX_FILENAME = "factur-x.xml"
AF_RELATIONSHIP = "alternative"


_CLOCK_LOCK = threading.Lock()


@contextmanager
def _document_clock(moment: datetime) -> Iterator[None]:
    """Make the factur-x package stamp ``moment`` instead of reading the clock.

    The package timestamps the XMP and the attachment with ``datetime.now()``; a finalized
    document is stored with its SHA-256 and must render to the same bytes again, so the stamps
    come from the document's issue date. If a future package version renames these private
    helpers, we fall back to its own clock rather than fail.
    """
    import facturx.facturx as impl  # type: ignore[import-untyped, unused-ignore]

    names = ("_get_pdf_timestamp", "_get_metadata_timestamp")
    if not all(hasattr(impl, name) for name in names):
        yield
        return
    original_pdf = impl._get_pdf_timestamp

    def pdf_timestamp(date: Any = None) -> Any:
        return original_pdf(date if date is not None else moment)

    def metadata_timestamp() -> str:
        return moment.strftime("%Y-%m-%dT%H:%M:%S+00:00")

    with _CLOCK_LOCK:
        saved = {name: getattr(impl, name) for name in names}
        impl._get_pdf_timestamp = pdf_timestamp
        impl._get_metadata_timestamp = metadata_timestamp
        try:
            yield
        finally:
            for name, value in saved.items():
                setattr(impl, name, value)


def render_facturx(doc: Document, *, include_statement: bool = True) -> bytes:
    """PDF/A-3b bytes with the EN 16931 CII embedded; totals on the page equal the XML's."""
    from facturx import generate_from_binary  # type: ignore[import-untyped, unused-ignore]

    xml = cii.build(doc, FACTURX_CII)
    visible = pdf.render_pdf(doc, include_statement=include_statement, pdf_variant="pdf/a-3b")
    self_billing = doc.kind is DocumentKind.SELF_BILLING_CREDIT_NOTE
    issuer = doc.buyer.name if self_billing else doc.seller.legal_name
    title = pdf.LABELS[doc.language][doc.kind.value]
    moment = datetime.combine(doc.issue_date, time(0, 0), tzinfo=UTC)
    with _document_clock(moment):
        result = generate_from_binary(
            visible,
            xml,
            flavor="factur-x",
            level="en16931",
            # the XSD check costs ~30 ms; the CII builder's output is proven by the conformance tests
            check_xsd=False,
            pdf_metadata={
                "author": issuer,
                "keywords": "Factur-X, ZUGFeRD, " + title,
                "title": f"{issuer}: {title} {doc.number}",
                "subject": f"{title} {doc.number} {doc.issue_date.isoformat()}",
            },
            lang="de-DE" if doc.language == "de" else "en-GB",
            afrelationship=AF_RELATIONSHIP,
        )
    assert isinstance(result, bytes)
    return result
