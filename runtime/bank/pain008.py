"""SEPA direct debits: the mandate rules the system keeps (sequence types, expiry, amendments) and
the pain.008 customer direct debit initiation, as pure functions.

The file is built here with lxml rather than with ``sepaxml``: sepaxml writes neither the
amendment fields (``AmdmntInd``, ``OrgnlMndtId``, ``OrgnlDbtrAcct``) nor a scheme (CORE/B2B) per
payment-information block, and it stamps the wall clock and random ids into the file, while an
archived collection file must be the same bytes when it is built again from the same run. Both
pain.008.001.08 (the default) and .001.02 (for banks that still want it) are written, one
payment-information block per (scheme, sequence type, collection date), and every file is checked
against the official XSD shipped in ``xsd/`` before anyone sees it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Final, Literal

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

__all__ = [
    "ATTENTION_REASONS",
    "PAIN_VERSIONS",
    "CollectionTx",
    "Creditor",
    "Pain008Error",
    "build_pain008",
    "build_pain008_tree",
    "end_to_end_id",
    "mandate_expired",
    "render_pain008",
    "sequence_after_return",
    "sequence_after_submission",
    "validate_pain008",
]

PAIN_VERSIONS: Final = ("pain.008.001.08", "pain.008.001.02")
SequenceType = Literal["FRST", "RCUR", "OOFF", "FNAL"]
# EPC reason codes after which the mandate is not collected again until someone fixed it:
# no valid mandate (MD01), the debtor disputes the collection (MD06), the account is wrong (AC04)
ATTENTION_REASONS: Final = frozenset({"MD01", "MD06", "AC04"})
_XSD_DIR = Path(__file__).with_name("xsd")
# the SEPA character set (EPC guidelines); everything else becomes a space or is dropped
_SEPA_TEXT = re.compile(r"[^A-Za-z0-9/\-?:().,'+ ]")


class Pain008Error(ValueError):
    """A file that does not pass its XSD (a bug or a value the builder should have refused)."""


@dataclass(frozen=True, slots=True)
class Creditor:
    name: str
    iban: str
    bic: str  # empty: NOTPROVIDED (IBAN-only, allowed since 2016)
    creditor_id: str  # the SEPA creditor identifier (AT-02)


@dataclass(frozen=True, slots=True)
class CollectionTx:
    end_to_end_id: str
    amount: Decimal
    currency: str
    collection_date: date
    sequence: SequenceType
    scheme: Literal["CORE", "B2B"]
    mandate_id: str
    mandate_signed_on: date
    debtor_name: str
    debtor_iban: str
    debtor_bic: str
    remittance: str  # the invoice number
    original_mandate_id: str = ""  # amendments: the reference before it changed
    original_debtor_iban: str = ""  # ... and the IBAN before it changed


def end_to_end_id(number: str, attempt: int) -> str:
    """The EndToEndId of the ``attempt``-th collection of an invoice: its number and ``-C<n>``,
    so the bank's statement names the invoice to a reader and to the matching rule, and a second
    collection after a return is told apart from the first."""
    suffix = f"-C{attempt}"
    return _clean(number)[: 35 - len(suffix)] + suffix


def _clean(text: str) -> str:
    """Text in the SEPA character set: letters with accents lose them (``ö`` -> ``o``, ``ß`` ->
    ``ss``, as the EPC conversion table does), anything else outside the set becomes a space."""
    ascii_ = unicodedata.normalize("NFKD", text.replace("ß", "ss")).encode("ascii", "ignore").decode()
    return " ".join(_SEPA_TEXT.sub(" ", ascii_).split())


def _add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    for day in (d.day, 30, 29, 28):
        try:
            return date(year, month, day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def mandate_expired(signed_on: date, last_collection_on: date | None, on: date) -> bool:
    """The rulebook's expiry: a mandate not collected for 36 months may not be used any more
    (counted from the last collection, or from the signature when it was never used)."""
    return _add_months(last_collection_on or signed_on, 36) < on


def sequence_after_submission(sequence: str) -> tuple[str, bool]:
    """The mandate's next sequence type once a collection of ``sequence`` was submitted, and
    whether the mandate is used up (a one-off or a final collection)."""
    if sequence == "FRST":
        return "RCUR", False
    if sequence in ("OOFF", "FNAL"):
        return sequence, True
    return "RCUR", False


def sequence_after_return(collected: str, current: str) -> str:
    """A returned first collection makes the next one a first again (the debtor bank never saw a
    completed first); other returns leave the sequence as it is."""
    return "FRST" if collected == "FRST" else current


def _amount(a: Decimal) -> str:
    return format(a.quantize(Decimal("0.01")), "f")


def _blocks(txs: Sequence[CollectionTx]) -> list[tuple[tuple[str, str, date], list[CollectionTx]]]:
    """The payment-information blocks: transactions by (scheme, sequence type, collection date),
    blocks in that order, transactions in the order given."""
    order = {"FRST": 0, "RCUR": 1, "OOFF": 2, "FNAL": 3}
    blocks: dict[tuple[str, str, date], list[CollectionTx]] = {}
    for t in txs:
        blocks.setdefault((t.scheme, t.sequence, t.collection_date), []).append(t)
    return [(k, blocks[k]) for k in sorted(blocks, key=lambda k: (k[0], order[k[1]], k[2]))]


# characters XML 1.0 cannot carry (lxml refuses them too)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _x(text: str) -> str:
    """Element text escaped as libxml2 writes it."""
    if _NOT_XML.search(text):
        raise ValueError("All strings must be XML compatible: Unicode or ASCII, no NULL bytes or control characters")
    if "&" in text or "<" in text or ">" in text or "\r" in text:
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    return text


def _xa(text: str) -> str:
    """An attribute value escaped as libxml2 writes it."""
    return _x(text).replace('"', "&quot;").replace("\n", "&#10;").replace("\t", "&#9;")


def build_pain008(*, message_id: str, created: datetime, creditor: Creditor, txs: Sequence[CollectionTx],
                  version: str = "pain.008.001.08") -> bytes:
    """The file's bytes: a group header, then one payment-information block per (scheme, sequence
    type, collection date) in that order, transactions in the order given; checked against the
    XSD (``Pain008Error``)."""
    data = render_pain008(message_id=message_id, created=created, creditor=creditor, txs=txs, version=version)
    validate_pain008(data, version)
    return data


def render_pain008(*, message_id: str, created: datetime, creditor: Creditor, txs: Sequence[CollectionTx],
                   version: str = "pain.008.001.08") -> bytes:
    """``build_pain008`` without the XSD check, written as text: the same bytes as
    ``build_pain008_tree``'s lxml tree, pretty-printed, in a fraction of the time (a collection
    run of 100,000 items is some 75 MB)."""
    if version not in PAIN_VERSIONS:
        raise ValueError(f"unsupported pain.008 version {version!r} (one of {', '.join(PAIN_VERSIONS)})")
    if not txs:
        raise ValueError("a collection file needs at least one transaction")
    v08 = version.endswith(".08")
    bic_tag = "BICFI" if v08 else "BIC"

    def fin(ind: str, bic: str) -> str:
        if bic:
            return f"{ind}<FinInstnId>\n{ind}  <{bic_tag}>{_x(bic)}</{bic_tag}>\n{ind}</FinInstnId>\n"
        return (f"{ind}<FinInstnId>\n{ind}  <Othr>\n{ind}    <Id>NOTPROVIDED</Id>\n{ind}  </Othr>\n"
                f"{ind}</FinInstnId>\n")

    def acct(ind: str, name: str, iban: str) -> str:
        return f"{ind}<{name}>\n{ind}  <Id>\n{ind}    <IBAN>{_x(iban)}</IBAN>\n{ind}  </Id>\n{ind}</{name}>\n"

    cred_name = _x(_clean(creditor.name)[:70])
    out = [
        "<?xml version='1.0' encoding='UTF-8'?>\n",
        f'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:{version}">\n',
        "  <CstmrDrctDbtInitn>\n",
        "    <GrpHdr>\n",
        f"      <MsgId>{_x(message_id[:35])}</MsgId>\n",
        f"      <CreDtTm>{created.replace(microsecond=0, tzinfo=None).isoformat()}</CreDtTm>\n",
        f"      <NbOfTxs>{len(txs)}</NbOfTxs>\n",
        f"      <CtrlSum>{_amount(sum((t.amount for t in txs), Decimal(0)))}</CtrlSum>\n",
        f"      <InitgPty>\n        <Nm>{cred_name}</Nm>\n      </InitgPty>\n",
        "    </GrpHdr>\n",
    ]
    creditor_part = (
        f"      <Cdtr>\n        <Nm>{cred_name}</Nm>\n      </Cdtr>\n"
        + acct("      ", "CdtrAcct", creditor.iban)
        + "      <CdtrAgt>\n" + fin("        ", creditor.bic) + "      </CdtrAgt>\n"
        + "      <ChrgBr>SLEV</ChrgBr>\n"
        + "      <CdtrSchmeId>\n        <Id>\n          <PrvtId>\n            <Othr>\n"
        + f"              <Id>{_x(creditor.creditor_id)}</Id>\n"
        + "              <SchmeNm>\n                <Prtry>SEPA</Prtry>\n              </SchmeNm>\n"
        + "            </Othr>\n          </PrvtId>\n        </Id>\n      </CdtrSchmeId>\n")
    no_bic = "        <DbtrAgt>\n" + fin("          ", "") + "        </DbtrAgt>\n"
    for n, ((scheme, seq, day), block) in enumerate(_blocks(txs), start=1):
        out.append(
            "    <PmtInf>\n"
            f"      <PmtInfId>{_x(message_id[:30])}-{n}</PmtInfId>\n"
            "      <PmtMtd>DD</PmtMtd>\n"
            "      <BtchBookg>true</BtchBookg>\n"
            f"      <NbOfTxs>{len(block)}</NbOfTxs>\n"
            f"      <CtrlSum>{_amount(sum((t.amount for t in block), Decimal(0)))}</CtrlSum>\n"
            "      <PmtTpInf>\n"
            "        <SvcLvl>\n          <Cd>SEPA</Cd>\n        </SvcLvl>\n"
            f"        <LclInstrm>\n          <Cd>{_x(scheme)}</Cd>\n        </LclInstrm>\n"
            f"        <SeqTp>{_x(seq)}</SeqTp>\n"
            "      </PmtTpInf>\n"
            f"      <ReqdColltnDt>{day.isoformat()}</ReqdColltnDt>\n" + creditor_part)
        for t in block:
            amendment = ""
            if t.original_mandate_id or t.original_debtor_iban:
                amendment = "            <AmdmntInd>true</AmdmntInd>\n            <AmdmntInfDtls>\n"
                if t.original_mandate_id:
                    amendment += f"              <OrgnlMndtId>{_x(t.original_mandate_id)}</OrgnlMndtId>\n"
                if t.original_debtor_iban:
                    amendment += acct("              ", "OrgnlDbtrAcct", t.original_debtor_iban)
                amendment += "            </AmdmntInfDtls>\n"
            agent = ("        <DbtrAgt>\n" + fin("          ", t.debtor_bic) + "        </DbtrAgt>\n"
                     if t.debtor_bic else no_bic)
            out.append(
                "      <DrctDbtTxInf>\n"
                f"        <PmtId>\n          <EndToEndId>{_x(t.end_to_end_id[:35])}</EndToEndId>\n        </PmtId>\n"
                f'        <InstdAmt Ccy="{_xa(t.currency)}">{_amount(t.amount)}</InstdAmt>\n'
                "        <DrctDbtTx>\n          <MndtRltdInf>\n"
                f"            <MndtId>{_x(t.mandate_id)}</MndtId>\n"
                f"            <DtOfSgntr>{t.mandate_signed_on.isoformat()}</DtOfSgntr>\n"
                f"{amendment}"
                "          </MndtRltdInf>\n        </DrctDbtTx>\n"
                f"{agent}"
                f"        <Dbtr>\n          <Nm>{_x((_clean(t.debtor_name) or 'NOTPROVIDED')[:70])}</Nm>\n        </Dbtr>\n"
                f"        <DbtrAcct>\n          <Id>\n            <IBAN>{_x(t.debtor_iban)}</IBAN>\n"
                "          </Id>\n        </DbtrAcct>\n"
                f"        <RmtInf>\n          <Ustrd>{_x((_clean(t.remittance) or t.end_to_end_id)[:140])}</Ustrd>\n"
                "        </RmtInf>\n"
                "      </DrctDbtTxInf>\n")
        out.append("    </PmtInf>\n")
    out.append("  </CstmrDrctDbtInitn>\n</Document>\n")
    return "".join(out).encode("utf-8")


def build_pain008_tree(*, message_id: str, created: datetime, creditor: Creditor, txs: Sequence[CollectionTx],
                  version: str = "pain.008.001.08") -> bytes:
    """The same bytes as ``render_pain008``, built as an lxml tree: the reference the text writer
    is tested against (ten times slower: 10.4 s for 100,000 transactions against 0.8 s)."""
    if version not in PAIN_VERSIONS:
        raise ValueError(f"unsupported pain.008 version {version!r} (one of {', '.join(PAIN_VERSIONS)})")
    if not txs:
        raise ValueError("a collection file needs at least one transaction")
    v08 = version.endswith(".08")
    ns = f"urn:iso:std:iso:20022:tech:xsd:{version}"

    def el(parent: etree._Element, name: str, text: str | None = None, **attrs: str) -> etree._Element:
        e = etree.SubElement(parent, f"{{{ns}}}{name}", **attrs)
        if text is not None:
            e.text = text
        return e

    def agent(parent: etree._Element, name: str, bic: str) -> None:
        fin = el(el(parent, name), "FinInstnId")
        if bic:
            el(fin, "BICFI" if v08 else "BIC", bic)
        else:
            el(el(fin, "Othr"), "Id", "NOTPROVIDED")

    def account(parent: etree._Element, name: str, iban: str) -> None:
        el(el(el(parent, name), "Id"), "IBAN", iban)

    def scheme_id(parent: etree._Element, name: str) -> None:
        othr = el(el(el(el(parent, name), "Id"), "PrvtId"), "Othr")
        el(othr, "Id", creditor.creditor_id)
        el(el(othr, "SchmeNm"), "Prtry", "SEPA")

    doc = etree.Element(f"{{{ns}}}Document", nsmap={None: ns})
    root = el(doc, "CstmrDrctDbtInitn")
    hdr = el(root, "GrpHdr")
    el(hdr, "MsgId", message_id[:35])
    el(hdr, "CreDtTm", created.replace(microsecond=0, tzinfo=None).isoformat())
    el(hdr, "NbOfTxs", str(len(txs)))
    el(hdr, "CtrlSum", _amount(sum((t.amount for t in txs), Decimal(0))))
    el(el(hdr, "InitgPty"), "Nm", _clean(creditor.name)[:70])
    order = {"FRST": 0, "RCUR": 1, "OOFF": 2, "FNAL": 3}
    blocks: dict[tuple[str, str, date], list[CollectionTx]] = {}
    for t in txs:
        blocks.setdefault((t.scheme, t.sequence, t.collection_date), []).append(t)
    for n, key in enumerate(sorted(blocks, key=lambda k: (k[0], order[k[1]], k[2])), start=1):
        scheme, seq, day = key
        block = blocks[key]
        pmt = el(root, "PmtInf")
        el(pmt, "PmtInfId", f"{message_id[:30]}-{n}")
        el(pmt, "PmtMtd", "DD")
        el(pmt, "BtchBookg", "true")
        el(pmt, "NbOfTxs", str(len(block)))
        el(pmt, "CtrlSum", _amount(sum((t.amount for t in block), Decimal(0))))
        tp = el(pmt, "PmtTpInf")
        el(el(tp, "SvcLvl"), "Cd", "SEPA")
        el(el(tp, "LclInstrm"), "Cd", scheme)
        el(tp, "SeqTp", seq)
        el(pmt, "ReqdColltnDt", day.isoformat())
        el(el(pmt, "Cdtr"), "Nm", _clean(creditor.name)[:70])
        account(pmt, "CdtrAcct", creditor.iban)
        agent(pmt, "CdtrAgt", creditor.bic)
        el(pmt, "ChrgBr", "SLEV")
        scheme_id(pmt, "CdtrSchmeId")
        for t in block:
            tx = el(pmt, "DrctDbtTxInf")
            el(el(tx, "PmtId"), "EndToEndId", t.end_to_end_id[:35])
            el(tx, "InstdAmt", _amount(t.amount), Ccy=t.currency)
            mri = el(el(tx, "DrctDbtTx"), "MndtRltdInf")
            el(mri, "MndtId", t.mandate_id)
            el(mri, "DtOfSgntr", t.mandate_signed_on.isoformat())
            if t.original_mandate_id or t.original_debtor_iban:
                el(mri, "AmdmntInd", "true")
                dtls = el(mri, "AmdmntInfDtls")
                if t.original_mandate_id:
                    el(dtls, "OrgnlMndtId", t.original_mandate_id)
                if t.original_debtor_iban:
                    account(dtls, "OrgnlDbtrAcct", t.original_debtor_iban)
            agent(tx, "DbtrAgt", t.debtor_bic)
            el(el(tx, "Dbtr"), "Nm", (_clean(t.debtor_name) or "NOTPROVIDED")[:70])
            account(tx, "DbtrAcct", t.debtor_iban)
            el(el(tx, "RmtInf"), "Ustrd", (_clean(t.remittance) or t.end_to_end_id)[:140])
    data: bytes = etree.tostring(doc, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return data


@lru_cache(maxsize=4)
def _schema(version: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(_XSD_DIR / f"{version}.xsd")))


def validate_pain008(data: bytes, version: str) -> None:
    """Raise ``Pain008Error`` naming the first error's line when ``data`` is not valid."""
    schema = _schema(version)
    doc = etree.fromstring(data)
    if not schema.validate(doc):
        err = schema.error_log.last_error
        raise Pain008Error(f"{version} invalid at line {err.line}: {err.message}")
