"""The ad-hoc pages' and receipts' words in German and English; numbers, money and dates by CLDR
(``runtime.documents.i18n``, as the console and the documents)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from runtime.documents.i18n import datetime_text, money_text, number_text

__all__ = ["LANGUAGES", "Words", "pick_language"]

LANGUAGES = ("de", "en")

_T: dict[str, tuple[str, str]] = {
    "title": ("Laden ohne Vertrag", "Charge without a contract"),
    "skip": ("Zum Inhalt springen", "Skip to content"),
    "charging_point": ("Ladepunkt", "Charging point"),
    "site": ("Standort", "Site"),
    "price": ("Preis", "Price"),
    "price_intro": ("Es gilt der Preis des aktuell gültigen Tarifs (Bruttopreise inkl. MwSt.):",
                    "The price of the tariff in force applies (gross, VAT included):"),
    "component": ("Bestandteil", "Component"),
    "unit_price": ("Preis", "Price"),
    "example": ("Beispiel: {kwh} kWh in {hours} Stunde kosten {gross}.", "Example: {kwh} kWh in {hours} hour cost {gross}."),
    "preauth": ("Vor dem Start reservieren wir {amount} auf Ihrer Karte. Abgebucht wird nur, was Sie laden; "
                "der Rest wird freigegeben.",
                "Before the start we reserve {amount} on your card. Only what you charge is taken; the rest "
                "is released."),
    "pay": ("Bezahlen und Laden starten", "Pay and start charging"),
    "pay_hosted": ("Weiter zur Zahlung", "Continue to payment"),
    "hosted_hint": ("Sie geben Ihre Karte auf der sicheren Zahlungsseite unseres Zahlungsdienstes ein und kommen "
                    "danach hierher zurück.",
                    "You enter your card on our payment provider's secure payment page and come back here afterwards."),
    "checkout_canceled": ("Die Zahlung wurde abgebrochen. Es wurde nichts belastet.",
                          "The payment was cancelled. Nothing was charged."),
    "st_hosted": ("Die Zahlung ist noch nicht abgeschlossen.", "The payment is not complete yet."),
    "continue_payment": ("Weiter zur Zahlungsseite", "Continue to the payment page"),
    "email": ("E-Mail-Adresse für den Beleg", "E-mail address for the receipt"),
    "email_hint": ("optional", "optional"),
    "card": ("Karte", "Card"),
    "card_hint": ("Testmodus des Zahlungsdienstes: Testkarte wählen", "Payment provider test mode: choose a test card"),
    "card_visa": ("Visa (genehmigt)", "Visa (approved)"),
    "card_declined": ("Karte abgelehnt", "Card declined"),
    "card_3ds": ("3-D Secure erforderlich", "3-D Secure required"),
    "card_token": ("Zahlungsmittel-Token des Zahlungsdienstes", "The payment provider's payment method token"),
    "accept": ("Ich akzeptiere den angezeigten Preis.", "I accept the price shown."),
    "language": ("Sprache", "Language"),
    "switch": ("Wechseln", "Switch"),
    "no_provider": ("An diesem Ladepunkt ist keine Kartenzahlung eingerichtet.",
                    "Card payment is not set up for this charging point."),
    "status": ("Status", "Status"),
    "st_created": ("Zahlung wird vorbereitet", "Preparing the payment"),
    "st_authorized": ("Zahlung reserviert, Ladepunkt wird gestartet", "Payment reserved, starting the charging point"),
    "st_action_required": ("Bitte bestätigen Sie die Zahlung bei Ihrer Bank.",
                           "Please confirm the payment with your bank."),
    "st_declined": ("Die Karte wurde abgelehnt. Es wurde nichts belastet.",
                    "The card was declined. Nothing was charged."),
    "st_starting": ("Bitte stecken Sie das Ladekabel ein: der Ladepunkt ist freigegeben.",
                    "Please plug in the cable: the charging point is unlocked."),
    "st_charging": ("Ladevorgang läuft", "Charging"),
    "st_stopped": ("Ladevorgang beendet, Abrechnung läuft", "Charging stopped, settling the payment"),
    "st_captured": ("Ladevorgang abgeschlossen und bezahlt", "Charging finished and paid"),
    "st_released": ("Ladevorgang ohne Kosten beendet; die Reservierung ist freigegeben.",
                    "Charging ended at no cost; the reservation is released."),
    "st_failed": ("Der Ladevorgang konnte nicht gestartet werden; die Reservierung ist freigegeben.",
                  "Charging could not be started; the reservation is released."),
    "st_canceled": ("Die Zahlung wurde abgebrochen.", "The payment was cancelled."),
    "confirm_bank": ("Zahlung bei der Bank bestätigen", "Confirm the payment with your bank"),
    "reload": ("Aktualisieren", "Refresh"),
    "auto_refresh": ("Diese Seite aktualisiert sich alle 10 Sekunden.", "This page refreshes every 10 seconds."),
    "cost_so_far": ("Bisherige Kosten", "Cost so far"),
    "energy": ("Energie", "Energy"),
    "started": ("Beginn", "Started"),
    "stopped": ("Ende", "Ended"),
    "stop": ("Laden beenden", "Stop charging"),
    "reserved": ("Reserviert", "Reserved"),
    "receipt": ("Beleg", "Receipt"),
    "receipt_pdf": ("Beleg als PDF", "Receipt (PDF)"),
    "receipt_no": ("Beleg-Nr.", "Receipt no."),
    "receipt_sent": ("Der Beleg wurde an {email} gesendet.", "The receipt was sent to {email}."),
    "date": ("Datum", "Date"),
    "quantity": ("Menge", "Quantity"),
    "net": ("Netto", "Net"),
    "vat": ("MwSt. {rate} %", "VAT {rate}%"),
    "total": ("Gesamt", "Total"),
    "paid_card": ("Bezahlt mit Karte", "Paid by card"),
    "released": ("Freigegeben", "Released"),
    "outstanding": ("Offen", "Outstanding"),
    "refunded": ("Erstattet", "Refunded"),
    "payment_ref": ("Zahlungsreferenz", "Payment reference"),
    "seller": ("Leistungserbringer", "Supplier"),
    "vat_id": ("USt-IdNr.", "VAT ID"),
    "mail_subject": ("Ihr Ladebeleg {number}", "Your charging receipt {number}"),
    "mail_body": ("Guten Tag,\n\nanbei Ihr Beleg {number} über {gross} für den Ladevorgang an {evse}.\n\n{seller}",
                  "Hello,\n\nattached is your receipt {number} for {gross} for charging at {evse}.\n\n{seller}"),
    "qr_sheet": ("QR-Codes zum Laden ohne Vertrag", "QR codes for charging without a contract"),
    "scan": ("Scannen, Preis sehen, mit Karte zahlen", "Scan, see the price, pay by card"),
    "error": ("Fehler", "Error"),
    "back": ("Zurück", "Back"),
}


class Words:
    def __init__(self, language: str) -> None:
        self.lang = language if language in LANGUAGES else "de"
        self._i = LANGUAGES.index(self.lang)

    def __call__(self, key: str, **kw: Any) -> str:
        text = _T[key][self._i]
        return text.format(**kw) if kw else text

    def line_names(self, lines: Any, currency: str) -> list[str]:
        """A charge's rated lines (dicts as stored) named as the invoice names them, in this language."""
        from types import SimpleNamespace

        from runtime.documents.from_invoice import rated_line_names

        return rated_line_names([SimpleNamespace(component=ln.get("component") or "", rule=ln.get("rule") or "",
                                                 description=ln.get("description") or "") for ln in lines or ()],
                                currency, self.lang)

    def unit(self, unit: str | None) -> str:
        from runtime.documents.pdf import unit_label

        return unit_label(unit or "", self.lang)

    def money(self, amount: Decimal | str | None, currency: str) -> str:
        if amount is None:
            return ""
        return money_text(Decimal(amount), currency, self.lang)

    def number(self, value: Decimal | str, places: int = 2) -> str:
        return number_text(Decimal(value), places, self.lang)

    def when(self, at: datetime | None, tz: str) -> str:
        """A moment in the site's time zone (the charger's local time)."""
        from zoneinfo import ZoneInfo

        return datetime_text(at.astimezone(ZoneInfo(tz or "UTC")), self.lang) if at is not None else ""


def pick_language(query: str | None, accept: str | None) -> str:
    if query in LANGUAGES:
        return query
    for part in (accept or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return "de"
