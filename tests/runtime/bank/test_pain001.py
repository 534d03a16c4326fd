"""pain.001.001.09 as the bank receives it: valid against the shipped XSD and the conformance kit's
validate.py (XSD plus its NbOfTxs/CtrlSum checks), one payment-information block per (execution
date, category purpose), the same bytes when built again from the same run, EndToEndIds the debit
matching finds; a file the XSD refuses never leaves the builder."""

from __future__ import annotations

import os
import sys
from datetime import UTC, date, datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from runtime.bank.camt import BankEntry, BankTransaction
from runtime.bank.matching import match_debit
from runtime.bank.pain001 import (
    PAIN001_VERSION,
    Debtor,
    Pain001Error,
    Transfer,
    build_pain001,
    transfer_end_to_end_id,
    validate_pain001,
)

KIT = Path(os.environ.get("EVBILL_EINVOICE_KIT", "/work/shared/conformance/einvoice"))
DEBTOR = Debtor("Ladestrom GmbH & Co. KG", "DE02120300000000202051", "")
NS = {"p": f"urn:iso:std:iso:20022:tech:xsd:{PAIN001_VERSION}"}


def _tx(ref: str, amount: str, day: date = date(2026, 12, 2), **kw: Any) -> Transfer:
    return Transfer(transfer_end_to_end_id(ref, 1), D(amount), "EUR", day, kw.pop("name", "Jörg Müller"),
                    "DE89370400440532013000", kw.pop("bic", ""), f"Refund {ref}", **kw)


TXS = [_tx("pbl_01a0000000000001", "12.83"), _tx("pbl_01a0000000000002", "0.01", bic="COBADEFFXXX"),
       _tx("pbl_01a0000000000003", "40.00", date(2026, 12, 3)),
       _tx("pbl_01a0000000000004", "7.10", category_purpose="SUPP", name="Hotel Adler_GmbH")]


def _kit() -> Any:
    sys.path.insert(0, str(KIT))
    try:
        from validate import Validator  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(KIT))
    return Validator()


def test_file_is_valid_grouped_and_reproducible(tmp_path: Path) -> None:
    made = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    data = build_pain001(message_id="pyr_0001", created=made, debtor=DEBTOR, txs=TXS)
    validate_pain001(data)
    root = etree.fromstring(data)
    blocks = [(b.findtext("p:ReqdExctnDt/p:Dt", namespaces=NS), b.findtext("p:PmtTpInf/p:CtgyPurp/p:Cd", namespaces=NS),
               b.findtext("p:NbOfTxs", namespaces=NS), b.findtext("p:CtrlSum", namespaces=NS))
              for b in root.iterfind(".//p:PmtInf", NS)]
    assert blocks == [("2026-12-02", None, "2", "12.84"), ("2026-12-02", "SUPP", "1", "7.10"),
                      ("2026-12-03", None, "1", "40.00")]
    assert root.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:MsgId", namespaces=NS) == "pyr_0001"
    assert root.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:CtrlSum", namespaces=NS) == "59.94"
    assert root.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:NbOfTxs", namespaces=NS) == "4"
    assert root.findtext(".//p:DbtrAgt/p:FinInstnId/p:Othr/p:Id", namespaces=NS) == "NOTPROVIDED"
    # IBAN-only payee: no creditor agent; with a BIC: BICFI
    assert [t.findtext("p:CdtrAgt/p:FinInstnId/p:BICFI", namespaces=NS)
            for t in root.iterfind(".//p:CdtTrfTxInf", NS)] == [None, "COBADEFFXXX", None, None]
    e2e = [e.text for e in root.iterfind(".//p:EndToEndId", NS)]
    assert e2e == ["pbl01a0000000000001-T1", "pbl01a0000000000002-T1", "pbl01a0000000000004-T1",
                   "pbl01a0000000000003-T1"]
    assert all(e is not None and len(e) <= 35 for e in e2e)
    assert b"<Nm>Jorg Muller</Nm>" in data and b"<Nm>Hotel Adler GmbH</Nm>" in data  # the SEPA character set
    assert b"Ladestrom GmbH Co. KG" in data
    assert data == build_pain001(message_id="pyr_0001", created=made, debtor=DEBTOR, txs=TXS)
    if (KIT / "validate.py").exists():
        path = tmp_path / "pain001.xml"
        path.write_bytes(data)
        rep = _kit().validate(str(path))
        assert rep.valid, rep.summary()


@pytest.mark.skipif(not (KIT / "validate.py").exists(), reason="the conformance kit is not on this machine")
def test_the_kit_refuses_what_our_validator_refuses(tmp_path: Path) -> None:
    """The same bytes with a transaction count that lies: the kit says no (so its yes above means
    something), and a wrong IBAN is refused by our XSD check before a file is returned."""
    data = build_pain001(message_id="pyr_0002", created=datetime(2026, 12, 1, tzinfo=UTC), debtor=DEBTOR,
                         txs=TXS[:1])
    broken = data.replace(b"<NbOfTxs>1</NbOfTxs>", b"<NbOfTxs>2</NbOfTxs>", 1)
    path = tmp_path / "broken.xml"
    path.write_bytes(broken)
    assert not _kit().validate(str(path)).valid
    with pytest.raises(Pain001Error, match="line"):
        build_pain001(message_id="pyr_0003", created=datetime(2026, 12, 1, tzinfo=UTC), debtor=DEBTOR,
                      txs=[Transfer("X-T1", D("1.00"), "EUR", date(2026, 12, 2), "A", "not an iban", "", "x")])
    with pytest.raises(ValueError):
        build_pain001(message_id="pyr_0004", created=datetime(2026, 12, 1, tzinfo=UTC), debtor=DEBTOR, txs=[])
    with pytest.raises(ValueError):
        build_pain001(message_id="pyr_0005", created=datetime(2026, 12, 1, tzinfo=UTC), debtor=DEBTOR,
                      txs=[_tx("pbl_x", "0.00")])


def test_end_to_end_ids_are_short_and_tell_attempts_apart() -> None:
    first, second = transfer_end_to_end_id("pbl_01a24b273e4600009bf5626748", 1), \
        transfer_end_to_end_id("pbl_01a24b273e4600009bf5626748", 2)
    assert first != second and first.endswith("-T1") and len(first) <= 35
    assert transfer_end_to_end_id("x" * 60, 12).endswith("-T12") and len(transfer_end_to_end_id("x" * 60, 12)) == 35


def _debit(e2e: str) -> tuple[BankEntry, BankTransaction]:
    tx = BankTransaction(D("12.83"), "EUR", end_to_end_id=e2e)
    return BankEntry(D("12.83"), "EUR", False, "BOOK", date(2026, 12, 3), None, "", "R1", False, "PMNT/ICDT/ESCT",
                     "", (tx,)), tx


def test_a_debit_matches_our_transfer_by_end_to_end_id_only() -> None:
    transfers = {"pbl01a0000000000001-T1": "pbl_1"}
    m = match_debit(*_debit("pbl01a0000000000001-T1"), D("12.83"), transfers)
    assert (m.rule, m.item_ids) == ("end_to_end_id", ("pbl_1",)) and "our credit transfer" in m.reason
    for other in ("pbl01a0000000000001-T2", "NOTPROVIDED", ""):
        assert match_debit(*_debit(other), D("12.83"), transfers).rule == "none"
