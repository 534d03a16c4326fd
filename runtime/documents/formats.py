"""The format axis of the document x format matrix: syntax plus specification identifier."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from runtime.documents.model import Document, DocumentError, DocumentKind

__all__ = [
    "EN16931_ID",
    "FACTURX_CII",
    "PEPPOL_ID",
    "PEPPOL_PROFILE",
    "PEPPOL_UBL",
    "XRECHNUNG_CII",
    "XRECHNUNG_ID",
    "XRECHNUNG_UBL",
    "XmlFormat",
    "amount_text",
    "check_format",
]

XRECHNUNG_ID = "urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0"
PEPPOL_ID = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
PEPPOL_PROFILE = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
EN16931_ID = "urn:cen.eu:en16931:2017"  # Factur-X / ZUGFeRD profile EN 16931 ("COMFORT")


@dataclass(frozen=True)
class XmlFormat:
    name: str
    syntax: str  # "ubl" or "cii"
    customization_id: str
    profile_id: str | None = None
    # XRechnung and Peppol need BT-10 and both electronic addresses; Factur-X EN 16931 does not
    requires_routing: bool = True
    # Peppol BIS Billing has no self-billing code (389); it lives in a separate Peppol BIS
    allows_self_billing: bool = True
    # Peppol allows one document note only (PEPPOL-EN16931-R002)
    max_notes: int = 99
    # Peppol routes on participant ids; e-mail ("EM") is not in its EAS list (PEPPOL-EN16931-CL008)
    email_endpoints: bool = True


# XRechnung 3.0 embeds Peppol's PEPPOL-EN16931-R001, so it needs a business process (BT-23) too
XRECHNUNG_UBL = XmlFormat("xrechnung-ubl", "ubl", XRECHNUNG_ID, PEPPOL_PROFILE)
XRECHNUNG_CII = XmlFormat("xrechnung-cii", "cii", XRECHNUNG_ID, PEPPOL_PROFILE)
PEPPOL_UBL = XmlFormat(
    "peppol-ubl", "ubl", PEPPOL_ID, PEPPOL_PROFILE, allows_self_billing=False, max_notes=1,
    email_endpoints=False,
)
FACTURX_CII = XmlFormat("facturx-cii", "cii", EN16931_ID, requires_routing=False)


def amount_text(value: Decimal, places: int = 2) -> str:
    """Fixed-point text for XML amounts (never exponent notation)."""
    return f"{value:.{places}f}"


def check_format(doc: Document, fmt: XmlFormat) -> None:
    """Refuse, with a stable code, what the specification would reject, instead of guessing."""
    if doc.kind is DocumentKind.SELF_BILLING_CREDIT_NOTE and not fmt.allows_self_billing:
        raise DocumentError(
            "self_billing_not_supported",
            f"{fmt.name} has no self-billing type code; use xrechnung-ubl or xrechnung-cii",
        )
    if fmt.requires_routing and not doc.buyer.buyer_reference:
        raise DocumentError(
            "buyer_reference_required",
            f"{fmt.name} needs a buyer reference (BT-10, the Leitweg-ID for public buyers)",
        )
    if not fmt.email_endpoints:
        for role, address in (("seller", doc.seller.electronic_address),
                              ("buyer", doc.buyer.electronic_address)):
            if address.scheme == "EM":
                raise DocumentError(
                    "participant_id_required",
                    f"{fmt.name} needs a participant id for the {role} (e.g. 9930 VAT or 0088 GLN),"
                    f" not an e-mail address",
                )
    if (doc.kind is DocumentKind.INVOICE and doc.totals.payable > 0
            and doc.due_date is None and not doc.payment_terms):
        raise DocumentError("payment_terms_required", "a due date or payment terms are needed")
