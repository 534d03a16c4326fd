"""camt files read as the bank sends them: every schema-valid sample of the conformance kit
imports, every schema-invalid one is refused with element and line, and a batch booking keeps
its transactions apart."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from runtime.bank.camt import CamtError, parse_camt

KIT = Path(__file__).resolve().parents[3].parent / "shared" / "conformance" / "einvoice" / "examples" / "camt"
needs_kit = pytest.mark.skipif(not KIT.is_dir(), reason=f"conformance kit not found at {KIT}")
VALID = sorted(p for p in KIT.rglob("*.xml") if "_schema-invalid-fixtures" not in p.parts) if KIT.is_dir() else []
INVALID = sorted(KIT.rglob("_schema-invalid-fixtures/*.xml")) if KIT.is_dir() else []


@needs_kit
def test_the_kit_has_samples() -> None:
    assert len(VALID) >= 25 and len(INVALID) >= 8


@needs_kit
@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_every_schema_valid_sample_imports(path: Path) -> None:
    statements = parse_camt(path.read_bytes())
    assert statements
    for st in statements:
        assert st.message_type in ("camt.052", "camt.053", "camt.054") and st.message_id
        for e in st.entries:
            assert e.amount >= 0 and e.currency and e.transactions


@needs_kit
@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_schema_invalid_samples_are_refused_with_element_and_line(path: Path) -> None:
    with pytest.raises(CamtError) as err:
        parse_camt(path.read_bytes())
    assert err.value.line and err.value.element and "{urn:" not in err.value.message


@needs_kit
def test_german_bank_statement_details() -> None:
    [st] = parse_camt((KIT / "viafintech-camt_parser" / "053" / "valid_example_v4.xml").read_bytes())
    assert st.format == "camt.053.001.04" and st.account_iban and len(st.entries) == 13
    assert st.balance_difference() == 0  # opening + booked entries = closing
    batch = [e for e in st.entries if len(e.transactions) > 1]
    assert batch, "the sample has batch bookings"
    for e in batch:
        ids = [t.end_to_end_id for t in e.transactions]
        amounts = [t.amount for t in e.transactions]
        assert all(a is not None for a in amounts)
        assert sum(amounts, Decimal(0)) == e.amount, (ids, amounts, e.amount)


def test_not_xml_and_not_camt() -> None:
    with pytest.raises(CamtError) as err:
        parse_camt(b"<Document><oops></Document>")
    assert err.value.line == 1 and "well-formed" in err.value.message
    with pytest.raises(CamtError) as err:
        parse_camt(b'<?xml version="1.0"?>\n<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.008.001.08"/>')
    assert "not a camt" in err.value.message and err.value.element == "Document"


def test_a_return_with_reason_and_charges_is_read() -> None:
    xml = """<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">
 <BkToCstmrStmt>
  <GrpHdr><MsgId>M1</MsgId><CreDtTm>2026-12-10T10:00:00+01:00</CreDtTm></GrpHdr>
  <Stmt>
   <Id>S1</Id><ElctrncSeqNb>7</ElctrncSeqNb><CreDtTm>2026-12-10T10:00:00+01:00</CreDtTm>
   <Acct><Id><IBAN>DE89370400440532013000</IBAN></Id><Ccy>EUR</Ccy></Acct>
   <Bal><Tp><CdOrPrtry><Cd>PRCD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">100.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-12-09</Dt></Dt></Bal>
   <Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">84.17</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-12-10</Dt></Dt></Bal>
   <Ntry>
    <Amt Ccy="EUR">15.83</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>
    <BookgDt><Dt>2026-12-10</Dt></BookgDt><ValDt><Dt>2026-12-10</Dt></ValDt><AcctSvcrRef>R-1</AcctSvcrRef>
    <BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RDDT</Cd><SubFmlyCd>UPDD</SubFmlyCd></Fmly></Domn></BkTxCd>
    <NtryDtls><TxDtls>
     <Refs><EndToEndId>INV-000001-1</EndToEndId><MndtId>M-0001</MndtId></Refs>
     <Amt Ccy="EUR">15.83</Amt><CdtDbtInd>DBIT</CdtDbtInd>
     <Chrgs><TtlChrgsAndTaxAmt Ccy="EUR">3.00</TtlChrgsAndTaxAmt></Chrgs>
     <RltdPties><Dbtr><Pty><Nm>Erika Mustermann</Nm></Pty></Dbtr><DbtrAcct><Id><IBAN>DE02120300000000202051</IBAN></Id></DbtrAcct></RltdPties>
     <RtrInf><Rsn><Cd>MD06</Cd></Rsn><AddtlInf>refund request by the debtor</AddtlInf></RtrInf>
    </TxDtls></NtryDtls>
   </Ntry>
  </Stmt>
 </BkToCstmrStmt>
</Document>"""
    [st] = parse_camt(xml.encode())
    [e] = st.entries
    assert e.is_return and not e.credit and e.amount == Decimal("15.83") and e.bank_tx_code == "PMNT/RDDT/UPDD"
    [t] = e.transactions
    assert (t.end_to_end_id, t.mandate_id, t.return_reason, t.charges) == ("INV-000001-1", "M-0001", "MD06", Decimal("3.00"))
    assert t.debtor_name == "Erika Mustermann" and t.debtor_iban == "DE02120300000000202051"
    assert st.balance_difference() == 0
