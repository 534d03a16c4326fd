"""ZUGFeRD 2.x / Factur-X (profile EN 16931): a PDF/A-3 invoice with its CII XML embedded.

WeasyPrint writes the visible document as PDF/A-3b and embeds the CII in the same pass: the
attachment ``factur-x.xml`` (MIME ``text/xml``, AFRelationship ``Alternative``: the XML is an
equivalent of the page, as ZUGFeRD asks for the EN 16931 profile, listed in the catalog's /AF)
and the Factur-X XMP extension schema with its ``fx:`` properties. One pass instead of writing
the PDF and re-writing it with pypdf saves ~25 ms a document; every date is the document's, so
the same document renders the same bytes (it is archived with its SHA-256).
"""

from __future__ import annotations

import base64
import re
from datetime import datetime, time
from typing import Any

from runtime.documents import cii, pdf
from runtime.documents.formats import FACTURX_CII
from runtime.documents.model import Document, DocumentKind

__all__ = ["AF_RELATIONSHIP", "FACTURX_FILENAME", "FX_NAMESPACE", "render_facturx"]

FACTURX_FILENAME = "factur-x.xml"
AF_RELATIONSHIP = "Alternative"
FX_NAMESPACE = "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#"

_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_PROPERTIES = (
    ("DocumentFileName", "The name of the embedded XML document"),
    ("DocumentType", "The type of the hybrid document in capital letters, e.g. INVOICE or ORDER"),
    ("Version", "The actual version of the standard applying to the embedded XML document"),
    ("ConformanceLevel", "The conformance level of the embedded XML document"),
)


def _fx_descriptions() -> bytes:
    """The PDF/A extension schema that declares the ``fx:`` properties, and their values."""
    props = "".join(
        f'<rdf:li rdf:parseType="Resource"><pdfaProperty:name>{name}</pdfaProperty:name>'
        f"<pdfaProperty:valueType>Text</pdfaProperty:valueType>"
        f"<pdfaProperty:category>external</pdfaProperty:category>"
        f"<pdfaProperty:description>{text}</pdfaProperty:description></rdf:li>"
        for name, text in _PROPERTIES
    )
    return (
        f'<rdf:Description xmlns:rdf="{_RDF}" rdf:about="" '
        f'xmlns:pdfaExtension="http://www.aiim.org/pdfa/ns/extension/" '
        f'xmlns:pdfaSchema="http://www.aiim.org/pdfa/ns/schema#" '
        f'xmlns:pdfaProperty="http://www.aiim.org/pdfa/ns/property#">'
        f'<pdfaExtension:schemas><rdf:Bag><rdf:li rdf:parseType="Resource">'
        f"<pdfaSchema:schema>Factur-X PDFA Extension Schema</pdfaSchema:schema>"
        f"<pdfaSchema:namespaceURI>{FX_NAMESPACE}</pdfaSchema:namespaceURI>"
        f"<pdfaSchema:prefix>fx</pdfaSchema:prefix>"
        f"<pdfaSchema:property><rdf:Seq>{props}</rdf:Seq></pdfaSchema:property>"
        f"</rdf:li></rdf:Bag></pdfaExtension:schemas></rdf:Description>"
        f'<rdf:Description xmlns:rdf="{_RDF}" rdf:about="" xmlns:fx="{FX_NAMESPACE}">'
        f"<fx:DocumentType>INVOICE</fx:DocumentType>"
        f"<fx:DocumentFileName>{FACTURX_FILENAME}</fx:DocumentFileName>"
        f"<fx:Version>1.0</fx:Version>"
        f"<fx:ConformanceLevel>EN 16931</fx:ConformanceLevel>"
        f"</rdf:Description>"
    ).encode()


_FX = _fx_descriptions()
_PDFAID = re.compile(rb'<rdf:Description rdf:about="" pdfaid:part="(\d)" pdfaid:conformance="(\w)" />')


def _with_fx(original: Any) -> Any:
    """WeasyPrint's own RDF (pdfaid, dc, xmp dates) with the Factur-X descriptions added inside
    the one ``rdf:RDF`` element XMP allows."""

    def generate(variant: Any, version: Any, conformance: Any) -> bytes:
        rdf = original(variant, version, conformance)
        assert isinstance(rdf, bytes)
        # the PDF/A identification as elements, the form Factur-X validators and readers expect
        rdf = _PDFAID.sub(lambda m: b'<rdf:Description rdf:about=""><pdfaid:part>' + m[1]
                          + b"</pdfaid:part><pdfaid:conformance>" + m[2]
                          + b"</pdfaid:conformance></rdf:Description>", rdf)
        head, sep, tail = rdf.rpartition(b"</rdf:RDF>")
        if not sep:
            raise ValueError("unexpected XMP from WeasyPrint: no closing rdf:RDF")
        return head + _FX + sep + tail

    return generate


_VARIANT = "pdf/a-3b (factur-x)"  # contains "pdf/a": WeasyPrint picks the PDF/A output intent by that


def _variant() -> str:
    """WeasyPrint's PDF/A-3b, with its /AF array de-duplicated: WeasyPrint 70 lists an attachment
    once from the EmbeddedFiles name tree and again from its Filespec object."""
    import weasyprint.pdf as wpdf  # type: ignore[import-untyped, unused-ignore]

    if _VARIANT not in wpdf.VARIANTS:
        base, properties = wpdf.VARIANTS["pdf/a-3b"]

        def pdfa3b_facturx(pdf_: Any, *args: Any, **kwargs: Any) -> None:
            base(pdf_, *args, **kwargs)
            refs = pdf_.catalog.get("AF")
            if refs is not None:
                unique = list(dict.fromkeys(refs))
                refs.clear()
                refs.extend(unique)

        wpdf.VARIANTS[_VARIANT] = (pdfa3b_facturx, properties)
    return _VARIANT


def render_facturx(doc: Document, *, include_statement: bool = True) -> bytes:
    """PDF/A-3b bytes with the EN 16931 CII embedded; totals on the page equal the XML's."""
    from weasyprint import Attachment  # type: ignore[import-untyped, unused-ignore]

    xml = cii.build(doc, FACTURX_CII)
    laid_out = pdf.layout_pdf(doc, include_statement=include_statement)
    self_billing = doc.kind is DocumentKind.SELF_BILLING_CREDIT_NOTE
    issuer = doc.buyer.name if self_billing else doc.seller.legal_name
    title = pdf.LABELS[doc.language][doc.kind.value]
    # naive on purpose: WeasyPrint formats attachment dates as UTC ('...Z') without converting
    moment = datetime.combine(doc.issue_date, time(0, 0))
    stamp = f"{doc.issue_date.isoformat()}T00:00:00+00:00"
    md = laid_out.metadata
    md.title = f"{issuer}: {title} {doc.number}"
    md.authors = [issuer]
    md.description = f"{title} {doc.number} {doc.issue_date.isoformat()}"
    md.keywords = ["Factur-X", "ZUGFeRD", title]
    md.created = md.modified = stamp
    md.attachments = [Attachment(
        url="data:text/xml;base64," + base64.b64encode(xml).decode("ascii"),
        name=FACTURX_FILENAME, description="Factur-X XML file", created=moment, modified=moment,
        relationship=AF_RELATIONSHIP,
    )]
    md.generate_rdf_metadata = _with_fx(md.generate_rdf_metadata)
    return pdf.write_pdf(doc, laid_out, _variant())
