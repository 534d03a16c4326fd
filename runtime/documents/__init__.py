"""Documents: one internal model rendered into many formats (a document x format matrix).

``render(document, fmt)`` is the single entry point; ``FORMATS`` lists what it accepts. Pure: the
document carries every date and amount, nothing here reads the clock, a database or the network.
"""

from __future__ import annotations

from collections.abc import Callable

from runtime.documents import cii, ubl
from runtime.documents.formats import PEPPOL_UBL, XRECHNUNG_CII, XRECHNUNG_UBL
from runtime.documents.model import Document, DocumentError

__all__ = ["FORMATS", "MEDIA_TYPES", "DocumentError", "render"]


def _pdf(doc: Document) -> bytes:
    from runtime.documents.pdf import render_pdf

    return render_pdf(doc)


def _statement(doc: Document) -> bytes:
    from runtime.documents.pdf import render_pdf

    if not doc.statement:
        raise DocumentError("no_statement", f"document {doc.number} has no session statement")
    return render_pdf(doc, statement_only=True)


def _facturx(doc: Document) -> bytes:
    from runtime.documents.facturx import render_facturx

    return render_facturx(doc)


_RENDERERS: dict[str, Callable[[Document], bytes]] = {
    "xrechnung-ubl": lambda doc: ubl.build(doc, XRECHNUNG_UBL),
    "xrechnung-cii": lambda doc: cii.build(doc, XRECHNUNG_CII),
    "peppol-ubl": lambda doc: ubl.build(doc, PEPPOL_UBL),
    "facturx-pdf": _facturx,
    "pdf": _pdf,
    "statement-pdf": _statement,
}

FORMATS: tuple[str, ...] = tuple(_RENDERERS)

MEDIA_TYPES: dict[str, str] = {
    "xrechnung-ubl": "application/xml",
    "xrechnung-cii": "application/xml",
    "peppol-ubl": "application/xml",
    "facturx-pdf": "application/pdf",
    "pdf": "application/pdf",
    "statement-pdf": "application/pdf",
}


def render(document: Document, fmt: str) -> bytes:
    """Render ``document`` as ``fmt`` (one of ``FORMATS``); raises ``DocumentError`` with a stable
    code when the format cannot carry the document (e.g. self-billing in Peppol BIS Billing)."""
    try:
        renderer = _RENDERERS[fmt]
    except KeyError:
        raise DocumentError(
            "unknown_format", f"unknown format {fmt!r}, expected one of {', '.join(FORMATS)}"
        ) from None
    return renderer(document)
