"""The console's words in German and English, and its numbers, money and dates by CLDR rules
(babel, through the same helpers the documents use: ``runtime.documents.i18n``)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from babel import Locale, UnknownLocaleError

from runtime.documents.i18n import (
    date_text,
    datetime_text,
    locale_of,
    money_text,
    number_text,
    price_text,
    quantity_text,
    rate_text,
)

__all__ = ["LANGUAGES", "Texts", "add_texts", "negotiate"]

LANGUAGES = ("de", "en")

_T: dict[str, tuple[str, str]] = {
    # (German, English)
    "console": ("Konsole", "Console"),
    "skip": ("Zum Inhalt springen", "Skip to content"),
    "sign_in": ("Anmelden", "Sign in"),
    "sign_out": ("Abmelden", "Sign out"),
    "email": ("E-Mail-Adresse", "E-mail address"),
    "password": ("Passwort", "Password"),
    "tenant": ("Mandant", "Tenant"),
    "choose_tenant": ("Die Adresse gehört zu mehreren Mandanten: bitte wählen.",
                      "This address belongs to several tenants: please choose one."),
    "bad_credentials": ("E-Mail-Adresse oder Passwort ist falsch.", "The e-mail address or password is wrong."),
    "too_many_attempts": ("Zu viele Fehlversuche. Bitte später erneut versuchen.",
                          "Too many failed attempts. Please try again later."),
    "expired_form": ("Das Formular ist abgelaufen. Bitte erneut senden.", "The form has expired. Please send it again."),
    "signed_out": ("Sie sind abgemeldet.", "You are signed out."),
    "language": ("Sprache", "Language"),
    "switch": ("Wechseln", "Switch"),
    "main_nav": ("Hauptnavigation", "Main navigation"),
    "dashboard": ("Übersicht", "Dashboard"),
    "inbox": ("Finanz-Eingang", "Finance inbox"),
    "invoices": ("Rechnungen", "Invoices"),
    "customers": ("Kunden", "Customers"),
    "api_docs": ("API-Referenz", "API reference"),
    "signed_in_as": ("Angemeldet als", "Signed in as"),
    "role": ("Rolle", "Role"),
    "role_admin": ("Administration", "Administrator"),
    "role_operator": ("Betrieb", "Operator"),
    "role_analyst": ("Preisanalyse", "Pricing analyst"),
    "role_approver": ("Freigabe", "Approver"),
    "role_auditor": ("Prüfung", "Auditor"),
    "role_partner": ("Partner", "Partner"),
    "nothing_for_role": ("Für Ihre Rolle gibt es in der Konsole noch keine Seiten.",
                         "The console has no pages for your role yet."),
    "forbidden": ("Diese Seite oder Aktion ist Ihrer Rolle nicht erlaubt.", "Your role may not see this page or do this."),
    "not_found": ("Nicht gefunden.", "Not found."),
    "error": ("Fehler", "Error"),
    # dashboard
    "period": ("Zeitraum", "Period"),
    "month": ("Monat", "Month"),
    "show": ("Anzeigen", "Show"),
    "revenue": ("Umsatz (netto)", "Revenue (net)"),
    "energy": ("Energie", "Energy"),
    "sessions": ("Ladevorgänge", "Sessions"),
    "per_day": ("pro Tag", "per day"),
    "per_site": ("pro Standort", "per site"),
    "pick_site": ("Ein Standort zeigt seine Tage in den Diagrammen.", "Pick a site to see its days in the charts."),
    "days_of_site": ("Die Diagramme zeigen die Tage von {site}.", "The charts show the days of {site}."),
    "all_sites": ("Alle Standorte", "All sites"),
    "site": ("Standort", "Site"),
    "day": ("Tag", "Day"),
    "open_receivables": ("Offene Forderungen", "Open receivables"),
    "overdue": ("davon überfällig", "of which overdue"),
    "open_items": ("offene Posten", "open items"),
    "held_invoices": ("Angehaltene Rechnungen", "Held invoices"),
    "unmatched_entries": ("Nicht zugeordnete Bankbuchungen", "Unmatched bank entries"),
    "unrated": ("nicht bewertete Ladevorgänge", "unrated sessions"),
    "to_inbox": ("Zum Finanz-Eingang", "Go to the finance inbox"),
    "to_bank": ("Zu den Bankbuchungen", "Go to the bank entries"),
    "no_sessions": ("Keine bewerteten Ladevorgänge in diesem Zeitraum.", "No rated sessions in this period."),
    "total": ("Summe", "Total"),
    "chart_of": ("Diagramm: {what} pro Tag, {start} bis {end}", "Chart: {what} per day, {start} to {end}"),
    # inbox
    "held_title": ("Angehaltene Rechnungen zur Freigabe", "Held invoices to approve"),
    "bank_title": ("Bankbuchungen zum Zuordnen", "Bank entries to match"),
    "nothing_held": ("Keine angehaltene Rechnung.", "No held invoice."),
    "nothing_unmatched": ("Keine offene Bankbuchung.", "No bank entry to match."),
    "reasons": ("Gründe", "Reasons"),
    "previous_period": ("Vorperiode", "Previous period"),
    "none": ("keine", "none"),
    "account": ("Abrechnungskonto", "Billing account"),
    "customer": ("Kunde", "Customer"),
    "net": ("Netto", "Net"),
    "gross": ("Brutto", "Gross"),
    "note": ("Notiz (optional)", "Note (optional)"),
    "approve": ("Freigeben", "Approve"),
    "reject": ("Ablehnen", "Reject"),
    "reject_reason": ("Grund der Ablehnung", "Reason for rejecting"),
    "view_invoice": ("Rechnungsentwurf ansehen", "View the draft invoice"),
    "read_only": ("Nur lesen: Ihre Rolle darf hier nicht entscheiden.", "Read only: your role may not decide here."),
    "four_eyes_hint": ("Vier Augen: wer eine Rechnung angepasst hat, gibt sie nicht selbst frei.",
                       "Four eyes: whoever adjusted an invoice does not approve it."),
    "booked_on": ("Buchungstag", "Booking date"),
    "payer": ("Zahler", "Payer"),
    "remittance": ("Verwendungszweck", "Remittance information"),
    "amount": ("Betrag", "Amount"),
    "match": ("Zuordnen", "Match"),
    "match_to": ("Abrechnungskonto für diese Zahlung", "Billing account this payment belongs to"),
    "invoice_numbers": ("Rechnungsnummern (optional, durch Komma getrennt)",
                        "Invoice numbers (optional, separated by commas)"),
    "learn_payer": ("Zahler für künftige Zahlungen merken", "Remember the payer for future payments"),
    "choose": ("– bitte wählen –", "– please choose –"),
    "msg_approved": ("Die Rechnung ist freigegeben.", "The invoice is approved."),
    "msg_rejected": ("Die Rechnung ist abgelehnt.", "The invoice is rejected."),
    "msg_matched": ("Die Bankbuchung ist zugeordnet und als Zahlung gebucht.",
                    "The bank entry is matched and booked as a payment."),
    "runs_title": ("Lastschrift- und Auszahlungsläufe zur Freigabe", "Collection and payout runs to approve"),
    "nothing_runs": ("Kein Lauf wartet auf Freigabe.", "No run awaits approval."),
    "four_eyes_runs": ("Vier Augen: wer einen Lauf gestartet oder eine Zahlung darin angefordert hat, gibt ihn nicht "
                       "selbst frei.", "Four eyes: whoever started a run, or requested a payment in it, does not "
                       "approve it."),
    "collection_run": ("Lastschriftlauf (SEPA)", "Direct debit run (SEPA)"),
    "payout_run": ("Auszahlungslauf (SEPA)", "Payout run (SEPA)"),
    "creditor_account": ("Gläubigerkonto", "Creditor account"),
    "as_of": ("Stichtag", "As of"),
    "run_items": ("Posten", "Items"),
    "debtors": ("Kunden", "Customers"),
    "payees": ("Empfänger", "Payees"),
    "dunning_title": ("Mahnstufen zur Freigabe", "Dunning stages to approve"),
    "nothing_dunning": ("Keine Mahnstufe wartet auf Freigabe.", "No dunning stage awaits approval."),
    "stage_n": ("Stufe {n}", "Stage {n}"),
    "clearing_title": ("Strittige CDRs der eMSP-Abrechnung", "Disputed CDRs of eMSP clearing"),
    "nothing_clearing": ("Kein strittiger CDR wartet auf Entscheidung.", "No disputed CDR awaits a decision."),
    "clearing_month": ("Monat", "Month"),
    "cdr": ("CDR", "CDR"),
    "dispute_reason": ("Begründung des Partners", "The partner's reason"),
    "ours": ("Unser Betrag (netto)", "Our amount (net)"),
    "proposed": ("Vorschlag (netto)", "Proposed (net)"),
    "resolution": ("Entscheidung", "Resolution"),
    "resolve_accept": ("Vorschlag annehmen", "Accept theirs"),
    "resolve_keep": ("Unseren Betrag behalten", "Keep ours"),
    "resolve_adjust": ("Anpassen auf", "Adjust to"),
    "adjust_amount": ("Betrag (netto, bei Anpassen)", "Amount (net, when adjusting)"),
    "resolve": ("Entscheiden", "Resolve"),
    "msg_dispute_resolved": ("Der strittige CDR ist entschieden.", "The disputed CDR is resolved."),
    "err_amount_required": ("Zum Anpassen einen Betrag angeben.", "Adjusting needs an amount."),
    "batches_title": ("Buchungsstapel nicht an das ERP übertragen", "Posting batches not delivered to the ERP"),
    "nothing_batches": ("Jeder Buchungsstapel ist übertragen.", "Every posting batch is delivered."),
    "batch_n": ("Buchungsstapel {n}", "Posting batch {n}"),
    "batch_hint": ("Nach Korrektur des SFTP-Ziels erneut übertragen (POST /accounting/batches/{id}/deliver); "
                   "die Aufgabe schließt sich, sobald der Stapel übertragen ist.",
                   "Deliver it again once the SFTP target is fixed (POST /accounting/batches/{id}/deliver); "
                   "the task closes itself when the batch is delivered."),
    "letter": ("Schreiben", "Letter"),
    "letter_reminder": ("Zahlungserinnerung", "Payment reminder"),
    "letter_dunning": ("Mahnung", "Dunning letter"),
    "planned_on": ("Geplant am", "Planned on"),
    "overdue_amount": ("Überfällig", "Overdue"),
    "charges": ("Gebühren und Zinsen", "Fees and interest"),
    "msg_run_approved": ("Der Lauf ist freigegeben.", "The run is approved."),
    "msg_run_rejected": ("Der Lauf ist abgelehnt.", "The run is rejected."),
    "msg_stage_approved": ("Die Mahnstufe ist freigegeben.", "The dunning stage is approved."),
    "msg_stage_rejected": ("Die Mahnstufe ist abgelehnt.", "The dunning stage is rejected."),
    "err_not_waiting": ("Dies wartet nicht mehr auf eine Entscheidung.", "This no longer awaits a decision."),
    "err_four_eyes": ("Vier-Augen-Prinzip: Sie haben diese Rechnung angepasst, jemand anderes muss sie freigeben.",
                      "Four eyes: you adjusted this invoice, someone else must approve it."),
    "err_four_eyes_collection_run": ("Vier-Augen-Prinzip: Sie haben diesen Lauf gestartet, jemand anderes muss ihn "
                                     "freigeben.", "Four eyes: you started this run, someone else must approve it."),
    "err_four_eyes_payout_run": ("Vier-Augen-Prinzip: Sie haben diesen Lauf gestartet oder eine Zahlung darin "
                                 "angefordert, jemand anderes muss ihn freigeben.",
                                 "Four eyes: you started this run or requested a payment in it, someone else must "
                                 "approve it."),
    "err_task_closed": ("Diese Aufgabe ist bereits entschieden.", "This task has already been decided."),
    "err_reason_required": ("Bitte einen Grund angeben.", "Please give a reason."),
    "err_account_required": ("Bitte ein Abrechnungskonto wählen.", "Please choose a billing account."),
    # hold reasons, from a reason's kind and its parameters (runtime.invoicing.HoldReason)
    "hold_total": ("Bruttosumme {gross} liegt über der Grenze von {limit}.", "Gross total {gross} is above the limit of {limit}."),
    "hold_jump": ("Netto um {percent} gegenüber der Vorperiode gestiegen ({previous} → {current}), mehr als {limit}.",
                  "Net rose by {percent} against the previous period ({previous} → {current}), more than {limit}."),
    "hold_flag": ("Das Abrechnungskonto ist markiert: „{flag}“.", "The billing account is flagged '{flag}'."),
    "hold_manual": ("Manuell angehalten.", "Held by hand."),
    "hold_manual_reason": ("Manuell angehalten: {reason}", "Held by hand: {reason}"),
    "hold_unpriced_service": (
        "Serviceposten {item_id} nennt den Service „{service}“, den Tarifversion {version} nicht bepreist: er fehlt in "
        "diesem Entwurf (dem Posten einen eigenen Preis geben, ihn vor dieser Periode beenden oder eine Version mit dem "
        "Service veröffentlichen, dann neu erstellen; eine Freigabe rechnet die Periode ohne ihn ab).",
        "Service item {item_id} names service '{service}', which ruleset version {version} does not price: it is left "
        "off this draft (give the item a price of its own, end it before this period, or publish a version with the "
        "service, then re-assemble; approving bills the period without it)."),
    "hold_meter_signature_invalid": (
        "Die signierten Messdaten der Ladevorgänge {refs} ließen sich nicht prüfen ({why}): vor dem Versand ansehen "
        "(eine Freigabe rechnet sie wie bewertet ab).",
        "The signed meter data of sessions {refs} could not be verified ({why}): review them before the invoice goes "
        "out (approving bills them as rated)."),
    "hold_meter_mismatch": (
        "Die abgerechnete Energie der Ladevorgänge {refs} stimmt nicht mit den signierten Zählerständen überein "
        "({why}): vor dem Versand ansehen (eine Freigabe rechnet sie wie bewertet ab).",
        "The billed energy of sessions {refs} does not equal the signed meter readings ({why}): review them before "
        "the invoice goes out (approving bills them as rated)."),
    "meter_why_bad_signature": ("Signatur ungültig", "signature invalid"),
    "meter_why_unknown_key": ("Schlüssel des Zählers unbekannt", "the meter's key is unknown"),
    "meter_why_revoked_key": ("Schlüssel des Zählers widerrufen", "the meter's key is revoked"),
    "meter_why_no_signed_data": ("keine signierten Daten für einen eichrechtskonformen Tarif",
                                 "no signed data for a legal-for-trade tariff"),
    "meter_title": ("Signierte Messdaten (Eichrecht)", "Signed meter data (Eichrecht)"),
    "mc_verified": ("geprüft", "verified"),
    "mc_unsigned": ("nicht signiert", "not signed"),
    "mc_meter_signature_invalid": ("Signatur nicht prüfbar", "signature not verified"),
    "mc_meter_mismatch": ("weicht ab", "does not match"),
    "meter_reason": ("Grund", "Reason"),
    "meter_serial": ("Zähler", "Meter"),
    "signed_readings": ("Signierte Zählerstände", "Signed readings"),
    "public_key": ("Öffentlicher Schlüssel", "Public key"),
    "signed_records": ("Signierte Datensätze", "Signed records"),
    "meter_why_reading_status": ("der Zähler meldet den Messwert als nicht in Ordnung (Status {status})",
                                 "the meter marks the reading as not good (status {status})"),
    "meter_why_energy_differs": ("signiert {signed} kWh, abgerechnet {billed} kWh",
                                 "signed {signed} kWh, billed {billed} kWh"),
    "hold_currency_session": ("Ladevorgänge {refs} in {cur} bewertet{amount}", "Sessions {refs} rated in {cur}{amount}"),
    "hold_currency_late_session": ("Nachgereichte Ladevorgänge {refs} in {cur} bewertet{amount}",
                                   "Late sessions {refs} rated in {cur}{amount}"),
    "hold_currency_correction": ("Neubewertungen der Ladevorgänge {refs} in {cur}{amount}",
                                 "Re-ratings of sessions {refs} in {cur}{amount}"),
    "hold_currency_service_item": ("Serviceposten {refs} in {cur} bepreist{amount}",
                                   "Service items {refs} priced in {cur}{amount}"),
    "hold_currency_ruleset_version": ("Tarifversion {refs} bepreist in {cur}: Grundgebühr, Freikontingente und "
                                      "Staffeln{amount}", "Ruleset version {refs} prices in {cur}: the base fee, "
                                      "allowances and tiers{amount}"),
    "hold_currency_tail": (", das Konto rechnet aber in {acur} ab: nicht umgerechnet und in diesem Entwurf "
                           "weggelassen (in {acur} neu bewerten bzw. bepreisen oder die Währung des Kontos "
                           "korrigieren, dann neu erstellen; eine Freigabe rechnet die Periode ohne sie ab).",
                           ", but the account bills in {acur}: left off this draft, not converted (re-rate or "
                           "price them in {acur} or correct the account's currency, then re-assemble; approving "
                           "bills the period without them)."),
    "hold_net_of": (" (netto {net})", " (net {net})"),
    # invoices
    "number": ("Nummer", "Number"),
    "status": ("Status", "Status"),
    "kind": ("Art", "Kind"),
    "issue_date": ("Rechnungsdatum", "Issue date"),
    "due_date": ("Fällig am", "Due date"),
    "service_period": ("Leistungszeitraum", "Service period"),
    "no_invoices": ("Noch keine Rechnungen.", "No invoices yet."),
    "next_page": ("Nächste Seite", "Next page"),
    "all": ("alle", "all"),
    "filter": ("Filtern", "Filter"),
    "lines": ("Positionen", "Lines"),
    "description": ("Beschreibung", "Description"),
    "quantity": ("Menge", "Quantity"),
    "position": ("Pos.", "Item"),
    "unit_price": ("Einzelpreis", "Unit price"),
    "tax_rate": ("USt.", "VAT"),
    "pdf_preview": ("PDF-Vorschau", "PDF preview"),
    "download_pdf": ("PDF herunterladen", "Download the PDF"),
    "no_pdf": ("Zu dieser Rechnung gibt es noch kein PDF.", "This invoice has no PDF yet."),
    "back": ("Zurück", "Back"),
    "status_draft": ("Entwurf", "draft"),
    "status_held": ("angehalten", "held"),
    "status_finalized": ("festgeschrieben", "finalized"),
    "status_rejected": ("abgelehnt", "rejected"),
    "kind_invoice": ("Rechnung", "invoice"),
    "kind_credit_note": ("Gutschrift", "credit note"),
    "kind_self_billing_credit_note": ("Gutschrift an Standortpartner", "self-billing credit note"),
    "kind_dunning_letter": ("Mahnschreiben", "dunning letter"),
    # the document archive
    "documents": ("Dokumente", "Documents"),
    "no_documents": ("Noch keine Dokumente.", "No documents yet."),
    "document_date": ("Belegdatum", "Document date"),
    "format": ("Format", "Format"),
    "delivery": ("Versand", "Delivery"),
    "open_pdf": ("PDF öffnen", "Open the PDF"),
    "delivery_none": ("nicht angefordert", "not requested"),
    "delivery_pending": ("wartet", "queued"),
    "delivery_sending": ("wird gesendet", "sending"),
    "delivery_sent": ("gesendet", "sent"),
    "delivery_failed": ("fehlgeschlagen, wird wiederholt", "failed, retrying"),
    "delivery_unknown": ("unklar, bitte prüfen", "unknown, please check"),
    "delivery_abandoned": ("aufgegeben", "abandoned"),
    # customers
    "name": ("Name", "Name"),
    "city": ("Ort", "City"),
    "country": ("Land", "Country"),
    "search": ("Suche", "Search"),
    "search_customers": ("Kunden suchen (Name, Nummer, E-Mail)", "Search customers (name, number, e-mail)"),
    "no_customers": ("Keine Kunden gefunden.", "No customers found."),
    "customer_since": ("Kunde seit", "Customer since"),
}


def add_texts(texts: dict[str, tuple[str, str]]) -> None:
    """More (German, English) words, from a page module of its own; a key is said once only."""
    twice = {k for k in set(texts) & set(_T) if texts[k] != _T[k]}
    if twice:
        raise ValueError(f"console texts defined twice: {sorted(twice)}")
    _T.update(texts)


def negotiate(accept_language: str | None) -> str:
    """The console language for a browser's Accept-Language header (German unless it prefers English)."""
    prefs = []
    for part in (accept_language or "").split(","):
        tag, _, q = part.strip().partition(";q=")
        if tag:
            try:
                prefs.append((float(q or 1), tag.replace("-", "_")))
            except ValueError:
                continue
    ordered = [tag for _q, tag in sorted(prefs, key=lambda p: -p[0])]
    try:
        found = Locale.negotiate(ordered, list(LANGUAGES), sep="_")
    except (UnknownLocaleError, ValueError):
        found = None
    return found.language if found else "de"


class Texts:
    """What a template calls ``t``: ``t('inbox')``, ``t.money(amount, 'EUR')``, ``t.date(d)``."""

    def __init__(self, language: str) -> None:
        self.language = language if language in LANGUAGES else "de"
        self._i = LANGUAGES.index(self.language)

    def __call__(self, key: str, **kw: Any) -> str:
        pair = _T.get(key)
        text = pair[self._i] if pair else key
        return text.format(**kw) if kw else text

    def money(self, value: Decimal | str | int, currency: str) -> str:
        return money_text(Decimal(str(value)), currency, self.language)

    def number(self, value: Decimal | int, places: int = 0) -> str:
        return number_text(Decimal(value), places, self.language)

    def kwh(self, value: Decimal) -> str:
        return f"{number_text(value, 1, self.language)} kWh"

    def date(self, value: date | None) -> str:
        return date_text(value, self.language) if value else ""

    def datetime(self, value: datetime | None) -> str:
        return datetime_text(value, self.language) if value else ""

    def line_names(self, lines: Any, currency: str) -> list[str]:
        from runtime.documents.from_invoice import rated_line_names

        return rated_line_names(list(lines), currency, self.language)

    def terms(self, terms: str) -> str:
        """Payment terms as the invoice says them (``net 14``: "Zahlbar innerhalb von 14 Tagen ohne Abzug")."""
        from runtime.documents.from_invoice import terms_text

        return terms_text(terms, self.language)

    def period(self, start: date | None, end: date | None) -> str:
        """A billing period as documents print it: first and last day (billing stores the end
        exclusive, the day after the last)."""
        if not start or not end:
            return ""
        return f"{self.date(start)} – {self.date(max(start, end - timedelta(days=1)))}"

    def price(self, value: Decimal, currency: str) -> str:
        return price_text(Decimal(str(value)), currency, self.language)

    def quantity(self, value: Decimal) -> str:
        return quantity_text(value, self.language)

    def rate(self, value: Decimal) -> str:
        return rate_text(value, self.language)

    def unit(self, value: str | None) -> str:
        """A line's unit as the invoice PDF prints it (``session`` -> ``Stk.``/``pcs``, ``h`` -> ``Std.``)."""
        from runtime.documents.pdf import unit_label

        return unit_label(value or "", self.language)

    def month(self, value: date) -> str:
        from babel.dates import format_date

        return format_date(value, "LLLL y", locale=locale_of(self.language))

    @staticmethod
    def iban(value: str) -> str:
        """In groups of four, as it is printed and read aloud."""
        compact = "".join(value.split())
        return " ".join(compact[i:i + 4] for i in range(0, len(compact), 4))

    def meter_why(self, code: str, signed_kwh: Any = None, session_kwh: Any = None) -> str:
        """Why a session's signed meter data failed its check (``runtime.ocmf.MeterCheck.reason``)."""
        if code.startswith("reading_status_"):
            return self("meter_why_reading_status", status=code.removeprefix("reading_status_"))
        if code == "energy_differs" and signed_kwh:
            return self("meter_why_energy_differs", signed=signed_kwh, billed=session_kwh)
        return self(f"meter_why_{code}") if f"meter_why_{code}" in _T else code

    def reason(self, r: Any) -> str:
        """A hold reason in this language, from its kind and parameters; the stored (English)
        message for a kind, or a reason, this console does not know how to say."""
        if not isinstance(r, dict):
            return str(r)
        kind = str(r.get("kind", ""))
        fallback = str(r.get("message") or r.get("detail") or r.get("name") or kind)
        try:
            return self._reason(kind, r) or fallback
        except (KeyError, ValueError, ArithmeticError, TypeError):
            return fallback

    def _reason(self, kind: str, r: dict[str, Any]) -> str | None:
        if kind == "total":
            cur = r["currency"]
            return self("hold_total", gross=self.money(r["gross"], cur), limit=self.money(r["limit"], cur))
        if kind == "jump":
            cur = r["currency"]
            return self("hold_jump", percent=self.rate(Decimal(r["percent"])),
                        previous=self.money(r["previous_net"], cur), current=self.money(r["current_net"], cur),
                        limit=self.rate(Decimal(r["limit_percent"])))
        if kind == "flag":
            return self("hold_flag", flag=r["flag"])
        if kind == "manual":
            reason = r.get("reason")
            if reason is None:  # reasons stored before they carried their parameters
                message = str(r.get("message") or "")
                reason = message.removeprefix("manual hold").removeprefix(": ") if message.startswith(
                    "manual hold") else str(r.get("detail") or "")
            return self("hold_manual_reason", reason=reason) if reason else self("hold_manual")
        if kind == "unpriced_service":
            return self("hold_unpriced_service", item_id=r["item_id"], service=r["service"],
                        version=r.get("ruleset_version") or "–")
        if kind in ("meter_signature_invalid", "meter_mismatch"):
            refs = ", ".join(x for x in str(r.get("sessions", "")).split(",") if x)
            whys = [self.meter_why(code, r.get("signed_kwh"), r.get("session_kwh"))
                    for code in dict.fromkeys(x for x in str(r.get("reasons", "")).split(",") if x)]
            return self(f"hold_{kind}", refs=refs, why=", ".join(whys) or "–")
        if kind == "currency_mismatch":
            source, cur = r["source"], r["currency"]
            if f"hold_currency_{source}" not in _T:
                return None
            amount = self("hold_net_of", net=self.money(r["net"], cur)) if r.get("net") else ""
            refs = ", ".join(x for x in str(r.get("refs", "")).split(",") if x)
            return (self(f"hold_currency_{source}", refs=refs, cur=cur, amount=amount)
                    + self("hold_currency_tail", acur=r["account_currency"]))
        return None

    def status(self, value: str) -> str:
        return self(f"status_{value}") if f"status_{value}" in _T else value

    def kind(self, value: str) -> str:
        return self(f"kind_{value}") if f"kind_{value}" in _T else value

    def role(self, value: str) -> str:
        return self(f"role_{value}") if f"role_{value}" in _T else value
