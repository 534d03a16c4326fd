"""ZUGFeRD 2.x / Factur-X (profile EN 16931): a PDF/A-3 invoice with its CII XML embedded.

WeasyPrint writes the visible document as PDF/A-3b; the ``factur-x`` package then attaches the
CII as ``factur-x.xml`` (AFRelationship ``Alternative``: the XML is an equivalent of the page,
as ZUGFeRD asks for the EN 16931 profile) and writes the Factur-X XMP extension schema.
"""

from __future__ import annotations

from runtime.documents import cii, pdf
from runtime.documents.formats import FACTURX_CII
from runtime.documents.model import Document, DocumentKind

__all__ = ["render_facturx", "FACTURX_FILENAME", "AF_RELATIONSHIP"]

FACTURX_FILENAME = "factur-x.xml"
AF_RELATIONSHIP = "alternative"


def render_facturx(doc: Document, *, include_statement: bool = True) -> bytes:
    """PDF/A-3b bytes with the EN 16931 CII embedded; totals on the page equal the XML's."""
    from facturx import generate_from_binary  # type: ignore[import-untyped, unused-ignore]

    xml = cii.build(doc, FACTURX_CII)
    visible = pdf.render_pdf(doc, include_statement=include_statement, pdf_variant="pdf/a-3b")
    self_billing = doc.kind is DocumentKind.SELF_BILLING_CREDIT_NOTE
    issuer = doc.buyer.name if self_billing else doc.seller.legal_name
    title = pdf.LABELS[doc.language][doc.kind.value]
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
