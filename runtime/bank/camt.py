"""Bank statements in ISO 20022 camt: account reports (camt.052), statements (camt.053) and
debit/credit notifications (camt.054), every version .001.01 to .001.14, read into plain records.

A file is checked against the official XSD of its own message version first (shipped in
``xsd/``, as the ISO 20022 registration authority publishes them); a file that is not well-formed
or not schema-valid is refused with the element and line, and nothing of it is read. Then each
entry (``Ntry``) becomes a ``BankEntry`` with its transactions (``TxDtls``): a batch booking (one
entry, several transactions with their own EndToEndIds) keeps its transactions apart, so each can
be matched on its own. Versions differ in small ways (a party's name under ``Pty`` from .08 on, a
booking date as ``Dt`` or ``DtTm``, the account servicer's reference in ``Refs``); the reader
takes elements by local name and path, never by namespace, so one reader serves them all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

__all__ = [
    "BankEntry",
    "BankStatement",
    "BankTransaction",
    "CamtError",
    "parse_camt",
]

_XSD_DIR = Path(__file__).with_name("xsd")
_NS = re.compile(r"^urn:iso:std:iso:20022:tech:xsd:(camt\.05[234])\.001\.(\d\d)$")
_KINDS = {"camt.052": ("BkToCstmrAcctRpt", "Rpt"), "camt.053": ("BkToCstmrStmt", "Stmt"),
          "camt.054": ("BkToCstmrDbtCdtNtfctn", "Ntfctn")}


class CamtError(ValueError):
    """A file that cannot be imported: not XML, not a camt message, or not valid against its XSD.
    ``element`` and ``line`` say where (when known)."""

    def __init__(self, message: str, *, element: str = "", line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.element = element
        self.line = line

    def to_dict(self) -> dict[str, Any]:
        return {"message": self.message, "element": self.element, "line": self.line}


@dataclass(frozen=True, slots=True)
class BankTransaction:
    """One transaction of an entry (``TxDtls``); an entry without details has one made of the entry."""

    amount: Decimal | None  # the transaction's own amount, when the bank gives one
    currency: str
    end_to_end_id: str = ""
    instruction_id: str = ""
    mandate_id: str = ""
    account_servicer_ref: str = ""
    debtor_name: str = ""
    debtor_iban: str = ""
    creditor_name: str = ""
    creditor_iban: str = ""
    remittance: tuple[str, ...] = ()  # unstructured lines
    creditor_refs: tuple[str, ...] = ()  # structured creditor references (RF... or others)
    return_reason: str = ""  # RtrInf/Rsn/Cd (AC04, MD06, ...) or its proprietary code
    return_reason_text: str = ""
    charges: Decimal | None = None  # charges on a return, when reported (TtlChrgsAndTaxAmt or Chrgs/Amt)


@dataclass(frozen=True, slots=True)
class BankEntry:
    amount: Decimal  # a magnitude; ``credit`` gives the direction
    currency: str
    credit: bool
    status: str  # BOOK, PDNG, INFO
    booking_date: date | None
    value_date: date | None
    entry_ref: str  # NtryRef
    account_servicer_ref: str  # AcctSvcrRef
    reversal: bool  # RvslInd: a booking reversed (a return shown as such)
    bank_tx_code: str  # Domn/Fmly/SubFmly, e.g. PMNT/RDDT/ESDD; proprietary code when no ISO one
    additional_info: str
    transactions: tuple[BankTransaction, ...] = field(default_factory=tuple)
    line: int = 0  # where the entry starts in the file

    @property
    def is_return(self) -> bool:
        """A direct debit or transfer that came back: a debit with a return reason, a reversal,
        or an ISO bank transaction code of a return family."""
        if self.reversal or any(t.return_reason for t in self.transactions):
            return True
        parts = self.bank_tx_code.split("/")
        return len(parts) >= 3 and parts[2] in ("UPDD", "RRTN", "PRDD", "RPCR", "ARET")


@dataclass(frozen=True, slots=True)
class BankStatement:
    message_type: str  # camt.052 | camt.053 | camt.054
    version: str  # "02", "08", ...
    message_id: str
    created_at: datetime | None
    statement_id: str  # Stmt/Rpt/Ntfctn Id
    sequence: str  # ElctrncSeqNb or LglSeqNb
    account_iban: str
    account_other_id: str
    currency: str
    opening: Decimal | None  # OPBD / PRCD balance, signed
    closing: Decimal | None  # CLBD balance, signed
    entries: tuple[BankEntry, ...]

    @property
    def format(self) -> str:
        return f"{self.message_type}.001.{self.version}"

    def balance_difference(self) -> Decimal | None:
        """closing - (opening + booked entries), or None when a balance is missing: not zero means
        the balances do not add up."""
        if self.opening is None or self.closing is None:
            return None
        moved = sum((e.amount if e.credit else -e.amount for e in self.entries if e.status == "BOOK"), Decimal(0))
        return self.closing - (self.opening + moved)


@lru_cache(maxsize=64)
def _schema(kind: str, version: str) -> etree.XMLSchema | None:
    path = _XSD_DIR / f"{kind}.001.{version}.xsd"
    if not path.exists():
        return None
    return etree.XMLSchema(etree.parse(str(path)))


def _local(el: Any) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


# children by local name in any namespace, found by lxml itself: a statement of 50,000 entries
# asks a few million times, and comparing each child's QName in Python took most of its import
def _kids(el: Any, name: str) -> list[Any]:
    return list(el.iterchildren("{*}" + name))


def _kid(el: Any, *path: str) -> Any:
    cur = el
    for name in path:
        if cur is None:
            return None
        cur = next(cur.iterchildren("{*}" + name), None)
    return cur


def _first_kids(el: Any) -> dict[str, Any]:
    """Each child's local name -> the first child of that name: one pass over the children where
    an entry or a transaction asks for many of them."""
    out: dict[str, Any] = {}
    for c in el:
        tag = c.tag
        if isinstance(tag, str):
            out.setdefault(tag[tag.rfind("}") + 1:], c)
    return out


def _text(el: Any, *path: str) -> str:
    node = _kid(el, *path) if path else el
    return (node.text or "").strip() if node is not None else ""


def _dec(node: Any, where: str) -> Decimal:
    try:
        return Decimal((node.text or "").strip())
    except InvalidOperation:
        raise CamtError(f"not an amount: {node.text!r}", element=where, line=node.sourceline) from None


def _date(el: Any) -> date | None:
    """A ``Dt`` or ``DtTm`` child (BookgDt, ValDt) as a date."""
    if el is None:
        return None
    d = _text(el, "Dt")
    if d:
        return date.fromisoformat(d[:10])
    dt = _text(el, "DtTm")
    if dt:
        return datetime.fromisoformat(dt).date()
    return None


def _party_name(el: Any) -> str:
    """A party's name: ``Nm`` directly (up to .07) or under ``Pty`` (.08 on)."""
    if el is None:
        return ""
    return _text(el, "Nm") or _text(el, "Pty", "Nm")


def _iban(acct: Any) -> str:
    return _text(acct, "Id", "IBAN")


def _balance(stmt: Any, *codes: str) -> Decimal | None:
    for bal in _kids(stmt, "Bal"):
        code = _text(bal, "Tp", "CdOrPrtry", "Cd") or _text(bal, "Tp", "CdOrPrtry", "Prtry")
        if code in codes:
            amt = _dec(_kid(bal, "Amt"), "Bal/Amt")
            return amt if _text(bal, "CdtDbtInd") != "DBIT" else -amt
    return None


def _tx_code(code: Any) -> str:
    """The entry's bank transaction code (its ``BkTxCd``) as Domain/Family/SubFamily, else the
    proprietary code."""
    domn = _kid(code, "Domn")
    if domn is not None:
        fmly = _kid(domn, "Fmly")
        return "/".join(x for x in (_text(domn, "Cd"), _text(fmly, "Cd"), _text(fmly, "SubFmlyCd")) if x)
    return _text(code, "Prtry", "Cd")


def _transaction(tx: Any, currency: str) -> BankTransaction:
    k = _first_kids(tx)
    amt_el = k.get("Amt")
    if amt_el is None:
        amt_el = _kid(k.get("AmtDtls"), "TxAmt", "Amt")
    amount = _dec(amt_el, "TxDtls/Amt") if amt_el is not None else None
    ccy = amt_el.get("Ccy", currency) if amt_el is not None else currency
    rmt = k.get("RmtInf")
    ustrd = tuple(_text(u) for u in _kids(rmt, "Ustrd")) if rmt is not None else ()
    refs: list[str] = []
    if rmt is not None:
        for strd in _kids(rmt, "Strd"):
            ref = _text(strd, "CdtrRefInf", "Ref")
            if ref:
                refs.append(ref)
            refs.extend(_text(r, "Nb") for r in _kids(strd, "RfrdDocInf") if _text(r, "Nb"))
            refs.extend(_text(a) for a in _kids(strd, "AddtlRmtInf") if _text(a))
    parties = k.get("RltdPties")
    party = _first_kids(parties) if parties is not None else {}
    rtr = k.get("RtrInf")
    reason = (_text(rtr, "Rsn", "Cd") or _text(rtr, "Rsn", "Prtry")) if rtr is not None else ""
    reason_text = " ".join(_text(a) for a in _kids(rtr, "AddtlInf")) if rtr is not None else ""
    charges = None
    chrgs = k.get("Chrgs")
    if chrgs is not None:
        total = _kid(chrgs, "TtlChrgsAndTaxAmt")
        if total is not None:
            charges = _dec(total, "Chrgs/TtlChrgsAndTaxAmt")
        else:
            parts = [_kid(r, "Amt") for r in _kids(chrgs, "Rcrd")] + ([_kid(chrgs, "Amt")] if _kid(chrgs, "Amt") is not None else [])
            if any(p is not None for p in parts):
                charges = sum((_dec(p, "Chrgs/Amt") for p in parts if p is not None), Decimal(0))
    ids = k.get("Refs")
    refs_of = _first_kids(ids) if ids is not None else {}
    return BankTransaction(
        amount=amount, currency=ccy,
        end_to_end_id=_text(refs_of.get("EndToEndId")), instruction_id=_text(refs_of.get("InstrId")),
        mandate_id=_text(refs_of.get("MndtId")), account_servicer_ref=_text(refs_of.get("AcctSvcrRef")),
        debtor_name=_party_name(party.get("Dbtr")), debtor_iban=_iban(party.get("DbtrAcct")),
        creditor_name=_party_name(party.get("Cdtr")), creditor_iban=_iban(party.get("CdtrAcct")),
        remittance=tuple(u for u in ustrd if u), creditor_refs=tuple(refs), return_reason=reason,
        return_reason_text=reason_text, charges=charges)


def _entry(ntry: Any) -> BankEntry:
    k = _first_kids(ntry)
    amt_el = k.get("Amt")
    if amt_el is None:
        raise CamtError("an entry without an amount", element="Ntry", line=ntry.sourceline)
    currency = amt_el.get("Ccy", "")
    sts = k.get("Sts")
    status = _text(sts, "Cd") or _text(sts)
    txs: list[BankTransaction] = []
    for dtls in _kids(ntry, "NtryDtls"):
        for tx in _kids(dtls, "TxDtls"):
            txs.append(_transaction(tx, currency))
    if not txs:
        txs.append(BankTransaction(amount=None, currency=currency))
    return BankEntry(
        amount=_dec(amt_el, "Ntry/Amt"), currency=currency, credit=_text(k.get("CdtDbtInd")) == "CRDT",
        status=status, booking_date=_date(k.get("BookgDt")), value_date=_date(k.get("ValDt")),
        entry_ref=_text(k.get("NtryRef")), account_servicer_ref=_text(k.get("AcctSvcrRef")),
        reversal=_text(k.get("RvslInd")).lower() == "true", bank_tx_code=_tx_code(k.get("BkTxCd")),
        additional_info=_text(k.get("AddtlNtryInf")), transactions=tuple(txs), line=ntry.sourceline or 0)


def parse_camt(data: bytes) -> list[BankStatement]:
    """Every statement (report, notification) of a camt file, after checking the file against its
    version's XSD. Raises ``CamtError`` naming the element and line of the first problem."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True, remove_comments=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        line = exc.lineno or None
        raise CamtError(f"not well-formed XML: {exc.msg}", line=line) from None
    m = _NS.match(etree.QName(root).namespace or "")
    if _local(root) != "Document" or m is None:
        raise CamtError(f"not a camt.052/053/054 document (root {etree.QName(root).text!r})",
                        element=_local(root), line=root.sourceline)
    kind, version = m.group(1), m.group(2)
    schema = _schema(kind, version)
    if schema is None:
        raise CamtError(f"{kind}.001.{version} is not a supported version", element="Document", line=root.sourceline)
    if not schema.validate(root):
        err = schema.error_log.filter_from_errors()[0] if schema.error_log.filter_from_errors() else schema.error_log.last_error
        named = re.search(r"Element '(?:\{[^}]*\})?([\w.-]+)'", err.message)
        element = named.group(1) if named else ""
        text = re.sub(r"\{urn:[^}]*\}", "", err.message)
        raise CamtError(f"not valid against {kind}.001.{version}: {text}", element=element, line=err.line)
    msg_el, stmt_name = _KINDS[kind]
    # .001.01 messages name the element with their version (BkToCstmrAcctRptV01)
    msg = next((c for c in root if _local(c).startswith(msg_el)), None)
    if msg is None:
        raise CamtError(f"no {msg_el} in the document", element="Document", line=root.sourceline)
    header = _kid(msg, "GrpHdr")
    created = _text(header, "CreDtTm")
    out = []
    for stmt in _kids(msg, stmt_name):
        acct = _kid(stmt, "Acct")
        currency = _text(acct, "Ccy")
        entries = tuple(_entry(n) for n in _kids(stmt, "Ntry"))
        if not currency and entries:
            currency = entries[0].currency
        out.append(BankStatement(
            message_type=kind, version=version, message_id=_text(header, "MsgId"),
            created_at=datetime.fromisoformat(created) if created else None,
            statement_id=_text(stmt, "Id"), sequence=_text(stmt, "ElctrncSeqNb") or _text(stmt, "LglSeqNb"),
            account_iban=_iban(acct), account_other_id=_text(acct, "Id", "Othr", "Id"), currency=currency,
            opening=_balance(stmt, "OPBD", "PRCD", "OPAV"), closing=_balance(stmt, "CLBD", "CLAV"),
            entries=entries))
    return out
