"""Eichrecht on the session statement: a session with signed meter data carries its records and
the meter's public key as text and QR codes (for the S.A.F.E. Transparenzsoftware); the codes decode
to exactly what the charger sent."""

from __future__ import annotations

import base64
import dataclasses
import re
from pathlib import Path

from runtime.documents.pdf import render_html, render_pdf
from tests.ocmf_signer import Meter
from tests.runtime.documents.samples import make


def _doc(tmp: Path | None = None) -> tuple[object, list[str], str]:
    m = Meter(serial="EMH-STATEMENT")
    records = [m.record([("2026-10-01T07:30:00,000+0200 S", "B", "1234.567")]),
               m.record([("2026-10-01T08:05:00,000+0200 S", "E", "1256.012")])]
    doc = make("b2c", "de", sessions=3)
    rows = list(doc.statement)  # type: ignore[attr-defined]
    rows[0] = dataclasses.replace(rows[0], signed_data=tuple(records), public_key=m.public_key_hex)
    return dataclasses.replace(doc, statement=tuple(rows)), records, m.public_key_hex  # type: ignore[type-var]


def test_statement_prints_signed_data_key_and_qr_codes() -> None:
    doc, records, key = _doc()
    html = render_html(doc)  # type: ignore[arg-type]
    assert "Signierte Messdaten (Eichrecht)" in html and "Transparenzsoftware" in html
    for raw in records:
        assert raw.replace('"', "&#34;") in html or raw.replace('"', "&quot;") in html
    assert key in html
    # one QR per record and one for the key, only for the session that has signed data
    assert len(re.findall(r'<img class="qr" src="data:image/svg\+xml', html)) == 3
    assert html.count('class="signed-head"') == 1


def test_qr_codes_carry_the_exact_text() -> None:
    import segno

    doc, records, key = _doc()
    html = render_html(doc)  # type: ignore[arg-type]
    # the codes are built from the records themselves: the same text makes the same matrix
    for text in [*records, key]:
        expected = segno.make(text, error="l", micro=False).svg_data_uri(scale=2, border=2)
        assert expected.replace("&", "&amp;") in html or expected in html


def test_the_pdf_renders(tmp_path: Path) -> None:
    doc, _, _ = _doc()
    pdf = render_pdf(doc)  # type: ignore[arg-type]
    assert pdf[:5] == b"%PDF-"
    (tmp_path / "signed.pdf").write_bytes(pdf)
    out = Path("/tmp/h18a_signed.pdf")
    out.write_bytes(pdf)
    assert base64.b64encode(pdf)
