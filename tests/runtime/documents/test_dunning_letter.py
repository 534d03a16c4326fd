"""Dunning letters as finance and the customer read them: read back with pdftotext in each
language, the items, fees, interest and flat fee with their totals, the tenant's branding."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from runtime.documents.dunning_letter import ChargeLine, DunningLetterDoc, LetterItem, render_dunning_letter
from runtime.documents.model import Address
from tests.runtime.documents.helpers import pdf_text
from tests.runtime.documents.samples import BRANDING, SELLER


def _doc(language: str, letter: str = "dunning", stage: int = 3) -> DunningLetterDoc:
    return DunningLetterDoc(
        language=language, currency="EUR", stage=stage, letter=letter, dated=date(2026, 4, 8),
        pay_by=date(2026, 4, 22), case_number="D-K-10001-260311", seller=SELLER, customer_name="Flotte GmbH",
        customer_number="K-10001", address=Address("Hauptstr. 1", "Köln", "50667", "DE"),
        items=(LetterItem("INV-000001", "invoice", date(2026, 2, 15), date(2026, 3, 1), D("1000.00"), D("1000.00")),
               LetterItem("MG-0000000001-2", "dunning_fee", date(2026, 3, 25), date(2026, 4, 1), D("5.00"),
                          D("5.00"))),
        charges=(ChargeLine("dunning_fee", D("11.90"), D("10.00"), D(19)),
                 ChargeLine("interest", D("4.22"), number="INV-000001", start=date(2026, 3, 26),
                            end=date(2026, 4, 8), days=14, rate=D(11)),
                 ChargeLine("flat_fee", D("40.00"), number="INV-000001")),
        overdue=D("1005.00"), charged=D("56.12"), total=D("1061.12"), actions=("block_tokens",), branding=BRANDING,
        notice=2)


@pytest.mark.parametrize(("language", "words"), [
    ("de", ["2. Mahnung", "Kundennummer", "K-10001", "INV-000001", "1.000,00", "Mahngebühr (zzgl. 19 % USt.)",
            "11,90", "Verzugszinsen INV-000001", "14 Tage zu 11 % p. a.", "Verzugspauschale", "40,00",
            "1.061,12", "22.04.2026", "Ihre Ladekarten sind gesperrt", "nicht umsatzsteuerbar"]),
    ("en", ["Dunning notice 2", "Customer number", "1,000.00", "Dunning fee (plus 19% VAT)", "Default interest",
            "14 days at 11% p.a.", "Late payment flat fee", "1,061.12", "your charging cards are blocked"]),
    ("fr", ["Relance n° 2", "Frais de relance", "Intérêts de retard", "Indemnité forfaitaire", "Montant à payer"]),
    ("nl", ["2e aanmaning", "Aanmaningskosten", "Vertragingsrente", "Forfaitaire vergoeding", "Te betalen"]),
])
def test_letter_reads_back(language: str, words: list[str]) -> None:
    text = " ".join(pdf_text(render_dunning_letter(_doc(language))).split())
    for w in words:
        assert w in text, (w, text)
    assert SELLER.legal_name in text and "Flotte GmbH" in text
    assert "evbill" not in text.lower()  # white-label


def test_a_reminder_charges_nothing_and_says_so() -> None:
    doc = _doc("de", "reminder", 1)
    doc = DunningLetterDoc(**{**doc.__dict__, "charges": (), "charged": D(0), "total": D("1005.00"), "actions": (),
                              "notice": 0})
    text = " ".join(pdf_text(render_dunning_letter(doc)).split())
    assert "Zahlungserinnerung" in text and "Mit diesem Schreiben berechnet" not in text
    assert "bis zum 22.04.2026" in text and "gegenstandslos" in text
    with pytest.raises(ValueError):
        render_dunning_letter(DunningLetterDoc(**{**doc.__dict__, "language": "xx"}))


@pytest.mark.parametrize(("language", "note"), [("de", "inkl. Rücklastschriftkosten"),
                                                ("en", "incl. return charges"),
                                                ("fr", "frais de rejet inclus"),
                                                ("nl", "incl. stornokosten")])
def test_an_invoice_open_beyond_its_amount_says_why(language: str, note: str) -> None:
    """A returned direct debit's bank fee is added to the invoice's item (store.receivables): the
    letter says so where the open amount exceeds the invoice's, and only there."""
    doc = _doc(language, "reminder", 1)
    returned = LetterItem("INV-000001", "invoice", date(2026, 2, 15), date(2026, 3, 1), D("1000.00"), D("1003.00"))
    doc = DunningLetterDoc(**{**doc.__dict__, "items": (returned, doc.items[1]), "charges": (), "charged": D(0),
                              "overdue": D("1008.00"), "total": D("1008.00"), "actions": (), "notice": 0})
    text = " ".join(pdf_text(render_dunning_letter(doc)).split())
    assert note in text and text.count(note) == 1
    plain = " ".join(pdf_text(render_dunning_letter(_doc(language))).split())
    assert note not in plain


def test_letters_rendered_from_many_threads_at_once_come_out_whole_and_identical() -> None:
    """Activities render letters from worker threads; WeasyPrint's font configuration is shared by
    the process and not made for concurrent use (CI once saw a worker abort inside fontconfig).
    Eight threads rendering at once get the bytes one thread gets."""
    from concurrent.futures import ThreadPoolExecutor

    docs = [_doc(lang) for lang in ("de", "en", "fr", "nl")] * 2
    alone = [render_dunning_letter(d) for d in docs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(render_dunning_letter, docs))
    assert together == alone
    assert all(b.startswith(b"%PDF-") for b in together)


@pytest.mark.parametrize(("language", "personal", "impersonal"), [
    ("de", "Guten Tag Erika Muster,", "Sehr geehrte Damen und Herren,"),
    ("en", "Dear Erika Muster,", "Dear Sir or Madam,"),
    ("fr", "Bonjour Erika Muster,", "Madame, Monsieur,"),
    ("nl", "Beste Erika Muster,", "Geachte heer, mevrouw,"),
])
def test_a_private_person_is_greeted_by_name(language: str, personal: str, impersonal: str) -> None:
    doc = _doc(language)
    person = " ".join(pdf_text(render_dunning_letter(DunningLetterDoc(
        **{**doc.__dict__, "customer_name": "Erika Muster", "addressee": "Erika Muster"}))).split())
    business = " ".join(pdf_text(render_dunning_letter(doc)).split())
    assert personal in person and impersonal not in person
    assert impersonal in business and "Erika" not in business
