"""Eichrecht on the session statement: a session with signed meter data carries its records and
the meter's public key as text and as a QR code of the S.A.F.E. Transparenzsoftware's XML container
(a code per record and one for the key when the container does not fit in one code). The codes are
read back from the rendered PDF with a barcode reader (zxing-cpp) and must give exactly what the
charger sent, verifiable with the key they carry."""

from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path

import pytest
from lxml import etree

from runtime.documents.pdf import render_html, render_pdf
from runtime.ocmf import parse, transparency_xml, verify
from tests.ocmf_signer import Meter
from tests.runtime.documents.samples import make


def _doc(n_records: int = 2, curve: str = "secp256r1") -> tuple[object, list[str], str]:
    m = Meter(serial="EMH-STATEMENT", curve=curve)
    records = [m.record([("2026-10-01T07:30:00,000+0200 S", "B", "1234.567")])]
    for i in range(n_records - 2):
        records.append(m.record([(f"2026-10-01T07:{40 + i}:00,000+0200 S", "C", f"{1240 + i}.000")]))
    records.append(m.record([("2026-10-01T08:05:00,000+0200 S", "E", "1256.012")]))
    doc = make("b2c", "de", sessions=3)
    rows = list(doc.statement)  # type: ignore[attr-defined]
    rows[0] = dataclasses.replace(rows[0], signed_data=tuple(records), public_key=m.public_key_hex)
    return dataclasses.replace(doc, statement=tuple(rows)), records, m.public_key_hex  # type: ignore[type-var]


def _codes(pdf: bytes, tmp: Path) -> list[str]:
    """Every QR code on the PDF's pages, as a reader decodes it from a 300 dpi scan."""
    import zxingcpp
    from PIL import Image

    (tmp / "s.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "300", "-png", str(tmp / "s.pdf"), str(tmp / "p")], check=True)
    texts: list[str] = []
    for page in sorted(tmp.glob("p*.png")):
        texts += [b.text for b in zxingcpp.read_barcodes(Image.open(page), formats=zxingcpp.BarcodeFormat.QRCode)]
    return texts


def test_transparency_xml_is_the_container_the_software_reads() -> None:
    m = Meter()
    begin = m.record([("2026-10-01T07:30:00,000+0200 S", "B", "1.000")])
    end = m.record([("2026-10-01T08:00:00,000+0200 S", "E", "2.500")])
    root = etree.fromstring(transparency_xml([begin, end], m.public_key_hex).encode())
    assert root.tag == "values"
    values = root.findall("value")
    assert [v.get("transactionId") for v in values] == ["1", "2"]
    assert [v.get("context") for v in values] == ["Transaction.Begin", "Transaction.End"]
    for v, raw in zip(values, (begin, end), strict=True):
        sd = v.find("signedData")
        assert sd is not None and sd.get("format") == "OCMF" and sd.get("encoding") == "plain"
        assert sd.text == raw  # byte for byte, no whitespace around it
        pk = v.find("publicKey")
        assert pk is not None and pk.get("encoding") == "hex" and pk.text == m.public_key_hex
        assert verify(parse(sd.text), pk.text) == ""  # "" = the signature holds


def test_statement_prints_signed_data_key_and_one_container_code() -> None:
    doc, records, key = _doc()
    html = render_html(doc)  # type: ignore[arg-type]
    assert "Signierte Messdaten (Eichrecht)" in html and "XML-Datei für die Transparenzsoftware" in html
    for raw in records:
        assert raw.replace('"', "&#34;") in html or raw.replace('"', "&quot;") in html
    assert key in html
    # one code for the session's container, only for the session that has signed data
    assert len(re.findall(r'<img class="qr qr-container" src="data:image/svg\+xml', html)) == 1
    assert len(re.findall(r'<img class="qr', html)) == 1
    assert html.count('class="signed-head"') == 1
    # named as the statement's row names the session (start, charge point, energy), no internal id
    from runtime.documents.i18n import datetime_text, number_text

    row = doc.statement[0]  # type: ignore[attr-defined]
    head = f"Ladevorgang {datetime_text(row.started_at, 'de')} · {row.evse} · {number_text(row.energy_kwh, 3, 'de')} kWh"
    assert f'<div class="signed-head">{head}</div>' in html.replace("&#42;", "*")
    assert row.session_id not in html


def test_the_code_on_the_pdf_reads_back_as_the_container(tmp_path: Path) -> None:
    doc, records, key = _doc()
    pdf = render_pdf(doc)  # type: ignore[arg-type]
    codes = _codes(pdf, tmp_path)
    assert codes == [transparency_xml(records, key)]
    root = etree.fromstring(codes[0].encode())
    for v in root.findall("value"):
        assert verify(parse(v.findtext("signedData") or ""), v.findtext("publicKey") or "") == ""  # "" = the signature holds


@pytest.mark.parametrize("curve", ["secp384r1"])
def test_too_long_for_one_code_prints_a_code_per_record_and_the_key(tmp_path: Path, curve: str) -> None:
    doc, records, key = _doc(n_records=7, curve=curve)
    html = render_html(doc)  # type: ignore[arg-type]
    assert "qr-container" not in html
    assert len(re.findall(r'<img class="qr" src="data:image/svg\+xml', html)) == len(records) + 1
    codes = _codes(render_pdf(doc), tmp_path)  # type: ignore[arg-type]
    assert sorted(codes) == sorted([*records, key])
