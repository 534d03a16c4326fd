"""The receipt of an ad-hoc charge: a one-page PDF (WeasyPrint, the tenant's name, address, colours
and logo) and, when the driver gave an address, an e-mail with it (``EVBILL_SMTP_*``, as invoices)."""

from __future__ import annotations

import logging
from decimal import Decimal
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from sqlalchemy.orm import Session

from api.adhoc.i18n import Words
from store import adhoc as store
from store.adhoc import AdhocCharge
from store.models import Evse, Location, Tenant
from store.types import utcnow

__all__ = ["deliver_receipt", "receipt_context", "render_receipt"]

log = logging.getLogger("evbill.adhoc")


def receipt_context(db: Session, charge: AdhocCharge) -> dict[str, Any]:
    from api.console.branding import theme_of
    from store.documents import tenant_branding

    tenant = db.get(Tenant, charge.tenant_id)
    evse = db.get(Evse, charge.evse_id)
    loc = db.get(Location, evse.location_id) if evse is not None else None
    w = Words(charge.language)
    b = tenant_branding(getattr(tenant, "branding", None))
    tz = (loc.timezone if loc is not None else "") or (tenant.timezone if tenant is not None else "UTC")
    names = w.line_names(charge.lines, charge.currency)
    lines = [{"description": names[i],
              "quantity": f"{w.number(ln['quantity'], 3)} {w.unit(ln.get('unit'))}",
              "unit_price": w.money(ln.get("unit_price"), charge.currency) if ln.get("unit_price") else "",
              "net": w.money(ln.get("net_rounded") or ln.get("net"), charge.currency)} for i, ln in enumerate(charge.lines)]
    outstanding = (charge.gross or Decimal(0)) - (charge.captured or Decimal(0))
    return {"w": w, "charge": charge, "tenant": tenant, "evse": evse, "location": loc, "tz": tz, "lines": lines,
            "theme": theme_of(tenant), "logo": _logo_uri(b), "legal_lines": list(b.legal_lines),
            "taxes": [(w("vat", rate=w.number(g["rate"], 0 if Decimal(g["rate"]) == Decimal(g["rate"]).to_integral()
                                               else 1)), w.money(g["tax"], charge.currency))
                      for g in charge.tax_groups],
            "outstanding": w.money(outstanding, charge.currency) if outstanding > 0 else "",
            "issued": w.when(charge.stopped_at or utcnow(), tz)}


def _logo_uri(b: Any) -> str | None:
    from runtime.documents.pdf import logo_uri

    return logo_uri(b)


def render_receipt(db: Session, charge: AdhocCharge) -> bytes:
    from weasyprint import HTML  # type: ignore[import-untyped, unused-ignore]

    from api.adhoc.pages import environment
    from runtime.documents.pdf import RENDER_LOCK, font_config

    html = environment().get_template("receipt.html").render(**receipt_context(db, charge))
    with RENDER_LOCK:
        return bytes(HTML(string=html).write_pdf(font_config=font_config()))


def deliver_receipt(db: Session, charge: AdhocCharge) -> AdhocCharge:
    """Render the receipt once and send it to the driver's address (once: ``receipt_sent_at``).
    A failing mail server is logged and leaves the receipt on the page; it does not undo the charge."""
    if charge.receipt_pdf is None:
        pdf = render_receipt(db, charge)
        store.set_values(db.connection(), charge.id, receipt_pdf=pdf)
        db.commit()
        charge = store.by_key(db.connection(), charge.key) or charge
    if not charge.email or charge.receipt_sent_at is not None:
        return charge
    from store.documents import smtp_sender, smtp_settings_from_env

    settings = smtp_settings_from_env()
    if settings is None:
        return charge
    tenant = db.get(Tenant, charge.tenant_id)
    evse = db.get(Evse, charge.evse_id)
    w = Words(charge.language)
    msg = EmailMessage()
    seller = (tenant.legal_name or tenant.name) if tenant is not None else ""
    sender = settings.sender or (tenant.email if tenant is not None else "") or "billing@localhost"
    msg["From"], msg["To"] = sender, charge.email
    msg["Subject"] = w("mail_subject", number=charge.receipt_number)
    msg["Message-ID"] = make_msgid(charge.id, domain=sender.rsplit("@", 1)[-1])
    msg.set_content(w("mail_body", number=charge.receipt_number, gross=w.money(charge.gross, charge.currency),
                      evse=evse.evse_uid if evse is not None else "", seller=seller))
    assert charge.receipt_pdf is not None
    msg.add_attachment(charge.receipt_pdf, maintype="application", subtype="pdf",
                       filename=f"{charge.receipt_number}.pdf")
    try:
        smtp_sender(settings)(msg)
    except Exception:
        log.warning("sending receipt %s failed", charge.receipt_number, exc_info=True)
        return charge
    store.set_values(db.connection(), charge.id, receipt_sent_at=utcnow())
    db.commit()
    return store.by_key(db.connection(), charge.key) or charge
