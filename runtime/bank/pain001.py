"""SEPA credit transfers: the pain.001.001.09 customer credit transfer initiation that pays out
refunds now and host credits later (issue 15), as a pure function.

Written with lxml like ``pain008``, not with ``sepaxml`` (which can write .001.09): sepaxml stamps
the wall clock into ``CreDtTm`` and random ids into ``MsgId`` and ``PmtInfId`` when the object is
made, so the file could not carry the run's own message id (the bank's statement echoes it) nor be
built again byte for byte from an archived run; it also has no category purpose per block (host
payouts want ``SUPP``), no IBAN-only ``NOTPROVIDED`` debtor agent, and its ``clean`` only drops
accents where the EPC set also excludes ``&``, ``_`` and the like. Every file is checked against
the official XSD (``xsd/pain.001.001.09.xsd``, the ISO 20022 one the conformance kit carries)
before anyone sees it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Final

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from runtime.bank.pain008 import _amount, _clean

__all__ = [
    "PAIN001_VERSION",
    "Debtor",
    "Pain001Error",
    "Transfer",
    "build_pain001",
    "transfer_end_to_end_id",
    "validate_pain001",
]

PAIN001_VERSION: Final = "pain.001.001.09"
_XSD_DIR = Path(__file__).with_name("xsd")


class Pain001Error(ValueError):
    """A file that does not pass its XSD (a bug or a value the builder should have refused)."""


@dataclass(frozen=True, slots=True)
class Debtor:
    """The tenant's account the money leaves from."""

    name: str
    iban: str
    bic: str  # empty: NOTPROVIDED (IBAN-only)


@dataclass(frozen=True, slots=True)
class Transfer:
    end_to_end_id: str
    amount: Decimal
    currency: str
    execution_date: date
    creditor_name: str
    creditor_iban: str
    creditor_bic: str  # empty: left out (IBAN-only, the SEPA default)
    remittance: str  # what the payee reads: the refund's reference
    category_purpose: str = ""  # ISO ExternalCategoryPurpose1Code for the block, e.g. SUPP (empty: none)


def transfer_end_to_end_id(reference: str, attempt: int) -> str:
    """The EndToEndId of the ``attempt``-th transfer of a payable: its reference and ``-T<n>``, so a
    debit on the statement names the payable to a reader and to the matching rule, and a transfer
    sent again after a return is told apart from the first (collections end in ``-C<n>``)."""
    suffix = f"-T{attempt}"
    return _clean(reference).replace(" ", "")[: 35 - len(suffix)] + suffix


def build_pain001(*, message_id: str, created: datetime, debtor: Debtor, txs: Sequence[Transfer]) -> bytes:
    """The file's bytes: a group header, then one payment-information block per (execution date,
    category purpose) in that order, transactions in the order given."""
    if not txs:
        raise ValueError("a credit transfer file needs at least one transaction")
    for t in txs:
        if t.amount <= 0:
            raise ValueError(f"a credit transfer of {t.amount} ({t.end_to_end_id}): amounts are positive")
    ns = f"urn:iso:std:iso:20022:tech:xsd:{PAIN001_VERSION}"

    def el(parent: etree._Element, name: str, text: str | None = None, **attrs: str) -> etree._Element:
        e = etree.SubElement(parent, f"{{{ns}}}{name}", **attrs)
        if text is not None:
            e.text = text
        return e

    def account(parent: etree._Element, name: str, iban: str) -> None:
        el(el(el(parent, name), "Id"), "IBAN", iban)

    doc = etree.Element(f"{{{ns}}}Document", nsmap={None: ns})
    root = el(doc, "CstmrCdtTrfInitn")
    hdr = el(root, "GrpHdr")
    el(hdr, "MsgId", message_id[:35])
    el(hdr, "CreDtTm", created.replace(microsecond=0, tzinfo=None).isoformat())
    el(hdr, "NbOfTxs", str(len(txs)))
    el(hdr, "CtrlSum", _amount(sum((t.amount for t in txs), Decimal(0))))
    el(el(hdr, "InitgPty"), "Nm", _clean(debtor.name)[:70])
    blocks: dict[tuple[date, str], list[Transfer]] = {}
    for t in txs:
        blocks.setdefault((t.execution_date, t.category_purpose), []).append(t)
    for n, key in enumerate(sorted(blocks), start=1):
        day, purpose = key
        block = blocks[key]
        pmt = el(root, "PmtInf")
        el(pmt, "PmtInfId", f"{message_id[:30]}-{n}")
        el(pmt, "PmtMtd", "TRF")
        el(pmt, "BtchBookg", "true")
        el(pmt, "NbOfTxs", str(len(block)))
        el(pmt, "CtrlSum", _amount(sum((t.amount for t in block), Decimal(0))))
        tp = el(pmt, "PmtTpInf")
        el(el(tp, "SvcLvl"), "Cd", "SEPA")
        if purpose:
            el(el(tp, "CtgyPurp"), "Cd", purpose)
        el(el(pmt, "ReqdExctnDt"), "Dt", day.isoformat())
        el(el(pmt, "Dbtr"), "Nm", _clean(debtor.name)[:70])
        account(pmt, "DbtrAcct", debtor.iban)
        fin = el(el(pmt, "DbtrAgt"), "FinInstnId")
        if debtor.bic:
            el(fin, "BICFI", debtor.bic)
        else:
            el(el(fin, "Othr"), "Id", "NOTPROVIDED")
        el(pmt, "ChrgBr", "SLEV")
        for t in block:
            tx = el(pmt, "CdtTrfTxInf")
            el(el(tx, "PmtId"), "EndToEndId", t.end_to_end_id[:35])
            el(el(tx, "Amt"), "InstdAmt", _amount(t.amount), Ccy=t.currency)
            if t.creditor_bic:
                el(el(el(tx, "CdtrAgt"), "FinInstnId"), "BICFI", t.creditor_bic)
            el(el(tx, "Cdtr"), "Nm", (_clean(t.creditor_name) or "NOTPROVIDED")[:70])
            account(tx, "CdtrAcct", t.creditor_iban)
            el(el(tx, "RmtInf"), "Ustrd", (_clean(t.remittance) or t.end_to_end_id)[:140])
    data: bytes = etree.tostring(doc, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    validate_pain001(data)
    return data


@lru_cache(maxsize=1)
def _schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(_XSD_DIR / f"{PAIN001_VERSION}.xsd")))


def validate_pain001(data: bytes) -> None:
    """Raise ``Pain001Error`` naming the first error's line when ``data`` is not valid."""
    schema = _schema()
    doc = etree.fromstring(data)
    if not schema.validate(doc):
        err = schema.error_log.last_error
        raise Pain001Error(f"{PAIN001_VERSION} invalid at line {err.line}: {err.message}")
