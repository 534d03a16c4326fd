"""Reading totals back out of UBL, CII and PDF text, independently of the builders."""

from __future__ import annotations

import io
import re
from decimal import Decimal

from lxml import etree
from pypdf import PdfReader

from runtime.documents.pdf import LABELS

UBL_TOTALS = {
    "line_total": "LineExtensionAmount",
    "net": "TaxExclusiveAmount",
    "gross": "TaxInclusiveAmount",
    "prepaid": "PrepaidAmount",
    "payable": "PayableAmount",
    "allowance_total": "AllowanceTotalAmount",
    "charge_total": "ChargeTotalAmount",
}
CII_TOTALS = {
    "line_total": "LineTotalAmount",
    "net": "TaxBasisTotalAmount",
    "tax": "TaxTotalAmount",
    "gross": "GrandTotalAmount",
    "prepaid": "TotalPrepaidAmount",
    "payable": "DuePayableAmount",
    "allowance_total": "AllowanceTotalAmount",
    "charge_total": "ChargeTotalAmount",
}
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
RAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"


def xml_totals(xml: bytes) -> dict[str, Decimal]:
    root = etree.fromstring(xml)
    out: dict[str, Decimal] = {k: Decimal(0) for k in ("prepaid", "allowance_total", "charge_total")}
    if root.tag.endswith("CrossIndustryInvoice"):
        summ = root.find(f".//{{{RAM}}}SpecifiedTradeSettlementHeaderMonetarySummation")
        assert summ is not None
        for key, tag in CII_TOTALS.items():
            el = summ.find(f"{{{RAM}}}{tag}")
            if el is not None:
                out[key] = Decimal(el.text or "")
        out["vat_groups"] = Decimal(len(root.findall(
            f".//{{{RAM}}}ApplicableHeaderTradeSettlement/{{{RAM}}}ApplicableTradeTax")))
        return out
    lmt = root.find(f"{{{CAC}}}LegalMonetaryTotal")
    assert lmt is not None
    for key, tag in UBL_TOTALS.items():
        el = lmt.find(f"{{{CBC}}}{tag}")
        if el is not None:
            out[key] = Decimal(el.text or "")
    tax = root.find(f"{{{CAC}}}TaxTotal/{{{CBC}}}TaxAmount")
    assert tax is not None
    out["tax"] = Decimal(tax.text or "")
    out["vat_groups"] = Decimal(len(root.findall(f"{{{CAC}}}TaxTotal/{{{CAC}}}TaxSubtotal")))
    return out


def pdf_text(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    return "\n".join(page.extract_text() or "" for page in reader.pages).replace("\u00a0", " ")


def parse_amount(text: str, language: str) -> Decimal:
    t = text.replace("€", "").replace(" ", "").strip()
    if language == "de":
        t = t.replace(".", "").replace(",", ".")
    else:
        t = t.replace(",", "")
    return Decimal(t)


_AMOUNT = r"(-?€?-?[\d.,]+(?: €)?)"


def pdf_totals(pdf: bytes, language: str, credit_note: bool = False) -> dict[str, Decimal]:
    """Totals as printed on the page, found by their labels."""
    labels = LABELS[language]
    text = pdf_text(pdf)
    due = labels["payable_credit"] if credit_note else labels["payable"]
    out: dict[str, Decimal] = {}
    for key, label in (("line_total", labels["line_total"]), ("net", labels["net"]),
                       ("gross", labels["gross"]), ("payable", due)):
        found = re.findall(rf"^{re.escape(label)} {_AMOUNT}$", text, re.MULTILINE)
        assert len(found) == 1, (label, text)
        out[key] = parse_amount(found[0], language)
    prepaid = re.findall(rf"^{re.escape(labels['prepaid'])} {_AMOUNT}$", text, re.MULTILINE)
    out["prepaid"] = -parse_amount(prepaid[0], language) if prepaid else Decimal(0)
    vat_prefix = labels["vat_on"].split(" ")[0]
    joiner = " auf " if language == "de" else " on "
    vat_lines = re.findall(rf"^{re.escape(vat_prefix)} .*{joiner}.* {_AMOUNT}$", text, re.MULTILINE)
    out["tax"] = sum((parse_amount(v, language) for v in vat_lines), Decimal(0))
    out["vat_groups"] = Decimal(len(vat_lines))
    return out
