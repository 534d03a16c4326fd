"""pain.008 as the bank receives it: both versions valid against the shipped XSD and the conformance
kit's validate.py, one payment-information block per (scheme, sequence type, collection date),
amendment fields for a changed mandate, EndToEndIds the matching can recognise; the mandate rules
(sequence types, expiry after 36 months)."""

from __future__ import annotations

import os
import sys
from datetime import UTC, date, datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from runtime.bank.identifiers import check_creditor_id, iban_and_bic
from runtime.bank.pain008 import (
    CollectionTx,
    Creditor,
    Pain008Error,
    build_pain008,
    build_pain008_tree,
    end_to_end_id,
    mandate_expired,
    render_pain008,
    sequence_after_return,
    sequence_after_submission,
    validate_pain008,
)

KIT = Path(os.environ.get("EVBILL_EINVOICE_KIT", "/work/shared/conformance/einvoice"))
CRED = Creditor("Ladestrom GmbH & Co. KG", "DE02120300000000202051", "BYLADEM1001", "DE98ZZZ09999999999")


def _tx(e2e: str, amount: str, seq: Any = "RCUR", day: date = date(2026, 12, 15), scheme: Any = "CORE",
        **kw: Any) -> CollectionTx:
    return CollectionTx(e2e, D(amount), "EUR", day, seq, scheme, f"M-{e2e}", date(2026, 1, 5), "Jörg Müller-Lüdenscheidt",
                        "DE89370400440532013000", kw.pop("bic", ""), e2e.rsplit("-", 1)[0], **kw)


TXS = [_tx("INV-000001-C1", "12.83", "FRST"), _tx("INV-000002-C1", "40.00"), _tx("INV-000003-C1", "7.10"),
       _tx("INV-000004-C1", "9.99", "RCUR", date(2026, 12, 20), bic="COBADEFFXXX"),
       _tx("INV-000005-C1", "1.00", "RCUR", scheme="B2B", original_mandate_id="OLD-REF",
           original_debtor_iban="DE75512108001245126199")]


@pytest.mark.parametrize("version", ["pain.008.001.08", "pain.008.001.02"])
def test_file_is_valid_and_grouped(version: str, tmp_path: Path) -> None:
    data = build_pain008(message_id="col_0001", created=datetime(2026, 12, 10, 9, 30, tzinfo=UTC), creditor=CRED,
                         txs=TXS, version=version)
    validate_pain008(data, version)
    root = etree.fromstring(data)
    ns = {"p": f"urn:iso:std:iso:20022:tech:xsd:{version}"}
    blocks = [(b.findtext("p:PmtTpInf/p:LclInstrm/p:Cd", namespaces=ns), b.findtext("p:PmtTpInf/p:SeqTp", namespaces=ns),
               b.findtext("p:ReqdColltnDt", namespaces=ns), b.findtext("p:NbOfTxs", namespaces=ns),
               b.findtext("p:CtrlSum", namespaces=ns)) for b in root.iterfind(".//p:PmtInf", ns)]
    assert blocks == [("B2B", "RCUR", "2026-12-15", "1", "1.00"), ("CORE", "FRST", "2026-12-15", "1", "12.83"),
                      ("CORE", "RCUR", "2026-12-15", "2", "47.10"), ("CORE", "RCUR", "2026-12-20", "1", "9.99")]
    assert root.findtext(".//p:GrpHdr/p:CtrlSum", namespaces=ns) == "70.92"
    assert root.findtext(".//p:GrpHdr/p:NbOfTxs", namespaces=ns) == "5"
    amended = root.find(".//p:MndtRltdInf[p:AmdmntInd]", ns)
    assert amended is not None and amended.findtext("p:AmdmntInfDtls/p:OrgnlMndtId", namespaces=ns) == "OLD-REF"
    assert amended.findtext("p:AmdmntInfDtls/p:OrgnlDbtrAcct/p:Id/p:IBAN", namespaces=ns) == "DE75512108001245126199"
    assert [e.text for e in root.iterfind(".//p:EndToEndId", ns)] == [
        "INV-000005-C1", "INV-000001-C1", "INV-000002-C1", "INV-000003-C1", "INV-000004-C1"]
    assert b"<Nm>Jorg Muller-Ludenscheidt</Nm>" in data  # the SEPA character set: accents dropped
    assert b"Ladestrom GmbH Co. KG" in data  # '&' is not in it
    # the same run built again is the same bytes (the archive can be checked against a rebuild)
    assert data == build_pain008(message_id="col_0001", created=datetime(2026, 12, 10, 9, 30, tzinfo=UTC),
                                 creditor=CRED, txs=TXS, version=version)
    if (KIT / "validate.py").exists():
        sys.path.insert(0, str(KIT))
        try:
            from validate import Validator  # type: ignore[import-not-found]
        finally:
            sys.path.remove(str(KIT))
        path = tmp_path / "pain.xml"
        path.write_bytes(data)
        rep = Validator().validate(str(path))
        assert rep.valid, rep.summary()


def test_invalid_values_are_refused() -> None:
    with pytest.raises(Pain008Error):  # an IBAN the XSD pattern refuses
        build_pain008(message_id="x", created=datetime(2026, 12, 10, tzinfo=UTC),
                      creditor=Creditor("C", "not an iban", "", "DE98ZZZ09999999999"), txs=TXS[:1])
    with pytest.raises(ValueError, match="at least one"):
        build_pain008(message_id="x", created=datetime(2026, 12, 10, tzinfo=UTC), creditor=CRED, txs=[])
    with pytest.raises(ValueError):
        iban_and_bic("DE89370400440532013001")
    with pytest.raises(ValueError):
        check_creditor_id("DE00ZZZ09999999999")
    assert iban_and_bic("de89 3704 0044 0532 0130 00") == ("DE89370400440532013000", "COBADEFFXXX")


def test_mandate_rules() -> None:
    assert end_to_end_id("INV-000123", 1) == "INV-000123-C1"
    assert len(end_to_end_id("X" * 50, 12)) == 35 and end_to_end_id("X" * 50, 12).endswith("-C12")
    assert sequence_after_submission("FRST") == ("RCUR", False)
    assert sequence_after_submission("RCUR") == ("RCUR", False)
    assert sequence_after_submission("FNAL") == ("FNAL", True) and sequence_after_submission("OOFF")[1]
    assert sequence_after_return("FRST", "RCUR") == "FRST" and sequence_after_return("RCUR", "RCUR") == "RCUR"
    signed = date(2023, 2, 28)
    assert not mandate_expired(signed, None, date(2026, 2, 28))
    assert mandate_expired(signed, None, date(2026, 3, 1))
    assert not mandate_expired(signed, date(2025, 1, 10), date(2027, 12, 1))


# any text a mandate, a payer or a run may carry, XML's own characters too (and, for the creditor's
# message id, a control character XML cannot carry)
_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]) | st.sampled_from("&<>\"'\r\n\t"),
                max_size=12)
_TX = st.builds(
    CollectionTx, _TEXT, st.decimals(min_value=D("0.01"), max_value=D("99999.99"), places=2), st.sampled_from(["EUR"]),
    st.dates(date(2026, 1, 1), date(2026, 1, 4)), st.sampled_from(["FRST", "RCUR", "OOFF", "FNAL"]),
    st.sampled_from(["CORE", "B2B"]), _TEXT, st.just(date(2025, 1, 5)), _TEXT, _TEXT, _TEXT, _TEXT, _TEXT, _TEXT)


@settings(max_examples=200, deadline=None)
@given(txs=st.lists(_TX, min_size=1, max_size=6), name=_TEXT, bic=_TEXT, message_id=_TEXT | st.just("col\x02"),
       version=st.sampled_from(["pain.008.001.08", "pain.008.001.02"]))
def test_text_writer_writes_the_lxml_trees_bytes(txs: list[CollectionTx], name: str, bic: str, message_id: str,
                                                  version: str) -> None:
    """The file is written as text for speed; it must be byte for byte what the lxml tree gives
    (an archived file is built again from its run and compared), and refuse what lxml refuses."""
    cred = Creditor(name, "DE02120300000000202051", bic, "DE98ZZZ09999999999")
    args: dict[str, Any] = dict(message_id=message_id, created=datetime(2026, 12, 10, 9, 30, 5, 123, tzinfo=UTC),
                                creditor=cred, txs=txs, version=version)
    try:
        want = build_pain008_tree(**args)
    except ValueError:
        with pytest.raises(ValueError):
            render_pain008(**args)
        return
    assert render_pain008(**args) == want
