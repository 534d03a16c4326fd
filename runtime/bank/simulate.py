"""A camt.053.001.08 statement as a bank would send it, made from plain records: for the demo (the
bank's answer to its collections and transfers), the tests and the benchmark. Every file it
writes is valid against the official XSD (checked by ``parse_camt`` when read back)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

__all__ = ["SimEntry", "SimTransaction", "statement_xml"]

NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"


@dataclass(frozen=True, slots=True)
class SimTransaction:
    amount: Decimal
    end_to_end_id: str = "NOTPROVIDED"
    mandate_id: str = ""
    debtor_name: str = ""
    debtor_iban: str = ""
    remittance: str = ""
    creditor_ref: str = ""  # a structured creditor reference (RF...)
    return_reason: str = ""  # an EPC reason code: the transaction is a return
    charges: Decimal | None = None


@dataclass(frozen=True, slots=True)
class SimEntry:
    amount: Decimal
    credit: bool
    booking_date: date
    bank_ref: str
    transactions: Sequence[SimTransaction] = field(default_factory=tuple)
    bank_tx_code: str = ""  # Domn/Fmly/SubFmly; default by direction and return


def _el(parent: etree._Element, name: str, text: str | None = None, **attrs: str) -> etree._Element:
    e = etree.SubElement(parent, f"{{{NS}}}{name}", **attrs)
    if text is not None:
        e.text = text
    return e


def _amt(parent: etree._Element, name: str, amount: Decimal, currency: str) -> None:
    _el(parent, name, format(amount, "f"), Ccy=currency)


def _balance(stmt: etree._Element, code: str, amount: Decimal, currency: str, on: date) -> None:
    bal = _el(stmt, "Bal")
    _el(_el(_el(bal, "Tp"), "CdOrPrtry"), "Cd", code)
    _amt(bal, "Amt", abs(amount), currency)
    _el(bal, "CdtDbtInd", "CRDT" if amount >= 0 else "DBIT")
    _el(_el(bal, "Dt"), "Dt", on.isoformat())


def statement_xml(*, message_id: str, statement_id: str, sequence: int, created: datetime, account_iban: str,
                  currency: str, opening: Decimal, entries: Sequence[SimEntry], owner: str = "") -> bytes:
    """The statement's bytes; the closing balance is the opening plus the entries (as banks do)."""
    doc = etree.Element(f"{{{NS}}}Document", nsmap={None: NS})
    msg = _el(doc, "BkToCstmrStmt")
    hdr = _el(msg, "GrpHdr")
    _el(hdr, "MsgId", message_id)
    _el(hdr, "CreDtTm", created.isoformat(timespec="seconds"))
    stmt = _el(msg, "Stmt")
    _el(stmt, "Id", statement_id)
    _el(stmt, "ElctrncSeqNb", str(sequence))
    _el(stmt, "CreDtTm", created.isoformat(timespec="seconds"))
    acct = _el(stmt, "Acct")
    _el(_el(acct, "Id"), "IBAN", account_iban)
    _el(acct, "Ccy", currency)
    if owner:
        _el(_el(acct, "Ownr"), "Nm", owner)
    day = max((e.booking_date for e in entries), default=created.date())
    closing = opening + sum((e.amount if e.credit else -e.amount for e in entries), Decimal(0))
    _balance(stmt, "PRCD", opening, currency, min((e.booking_date for e in entries), default=day))
    _balance(stmt, "CLBD", closing, currency, day)
    for e in entries:
        n = _el(stmt, "Ntry")
        _amt(n, "Amt", e.amount, currency)
        _el(n, "CdtDbtInd", "CRDT" if e.credit else "DBIT")
        returned = any(t.return_reason for t in e.transactions)
        if returned:
            _el(n, "RvslInd", "true")
        _el(_el(n, "Sts"), "Cd", "BOOK")
        _el(_el(n, "BookgDt"), "Dt", e.booking_date.isoformat())
        _el(_el(n, "ValDt"), "Dt", e.booking_date.isoformat())
        _el(n, "AcctSvcrRef", e.bank_ref)
        code = e.bank_tx_code or ("PMNT/RDDT/UPDD" if returned else ("PMNT/RCDT/ESCT" if e.credit else "PMNT/ICDT/ESCT"))
        dom, fam, sub = code.split("/")
        d = _el(_el(n, "BkTxCd"), "Domn")
        _el(d, "Cd", dom)
        f = _el(d, "Fmly")
        _el(f, "Cd", fam)
        _el(f, "SubFmlyCd", sub)
        if not e.transactions:
            continue
        dtls = _el(n, "NtryDtls")
        if len(e.transactions) > 1:
            b = _el(dtls, "Btch")
            _el(b, "NbOfTxs", str(len(e.transactions)))
        for t in e.transactions:
            tx = _el(dtls, "TxDtls")
            refs = _el(tx, "Refs")
            _el(refs, "EndToEndId", t.end_to_end_id)
            if t.mandate_id:
                _el(refs, "MndtId", t.mandate_id)
            _amt(tx, "Amt", t.amount, currency)
            _el(tx, "CdtDbtInd", "CRDT" if e.credit else "DBIT")
            if t.charges is not None:
                _amt(_el(tx, "Chrgs"), "TtlChrgsAndTaxAmt", t.charges, currency)
            if t.debtor_name or t.debtor_iban:
                parties = _el(tx, "RltdPties")
                if t.debtor_name:
                    _el(_el(_el(parties, "Dbtr"), "Pty"), "Nm", t.debtor_name[:140])
                if t.debtor_iban:
                    _el(_el(_el(parties, "DbtrAcct"), "Id"), "IBAN", t.debtor_iban)
            if t.remittance or t.creditor_ref:
                rmt = _el(tx, "RmtInf")
                if t.remittance:
                    _el(rmt, "Ustrd", t.remittance[:140])
                if t.creditor_ref:
                    cri = _el(_el(rmt, "Strd"), "CdtrRefInf")
                    _el(_el(_el(cri, "Tp"), "CdOrPrtry"), "Cd", "SCOR")
                    _el(cri, "Ref", t.creditor_ref)
            if t.return_reason:
                _el(_el(_el(tx, "RtrInf"), "Rsn"), "Cd", t.return_reason)
    return etree.tostring(doc, xml_declaration=True, encoding="UTF-8", pretty_print=True)  # type: ignore[no-any-return]
