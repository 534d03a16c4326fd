"""The public ad-hoc pages (no sign-in: a driver scans a QR code at the charger) and the payment
provider's webhook. Pages answer in German or English (``?lang=``, else the browser's preference),
wear the tenant's name, colours and logo (the console's ``theme.css`` and ``logo``), and carry the
console's Content Security Policy: no inline script or style, every asset from our origin. Forms
post and redirect; the status page refreshes itself with a ``<meta http-equiv="refresh">``.

Bad requests (an unknown EVSE, an unknown charge, a form without the price accepted, a webhook
with a bad signature) answer 4xx: an HTML page for browsers, ``application/problem+json`` for
everyone else.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import anyio
from litestar import Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect

from api.adhoc import service
from api.adhoc.i18n import LANGUAGES, Words, pick_language
from api.errors import problem
from runtime.payments_provider import PaymentProvider, WebhookRejected
from store import adhoc as store

__all__ = ["environment", "handlers", "provider_of", "provider_of_app"]

HERE = Path(__file__).resolve().parent
Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]

# Stripe's test payment methods: offered only when the provider runs with a test key
TEST_CARDS = (("pm_card_visa", "card_visa"), ("pm_card_chargeDeclined", "card_declined"),
              ("pm_card_authenticationRequired", "card_3ds"))


@lru_cache(maxsize=1)
def environment() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    return Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def provider_of(request: Request[Any, Any, Any]) -> PaymentProvider | None:
    """The app's payment provider: set on ``app.state.payment_provider`` (tests), else from the
    environment (``api.payments.provider_from_env``), looked up once per app."""
    return provider_of_app(request.app)


def provider_of_app(app: Any) -> PaymentProvider | None:
    state = app.state
    if "payment_provider" not in state:
        from api.payments import provider_from_env

        state.payment_provider = provider_from_env()
    out: PaymentProvider | None = state.payment_provider
    return out


def _headers() -> dict[str, str]:
    from api.console import SECURITY_HEADERS

    return dict(SECURITY_HEADERS)


def _page(template: str, status: int = 200, **ctx: Any) -> Response[str]:
    html = environment().get_template(template).render(**ctx)
    return Response(html, status_code=status, media_type="text/html; charset=utf-8", headers=_headers())


def _wants_html(request: Request[Any, Any, Any]) -> bool:
    return request.accept.best_match(["text/html", "application/json", "application/problem+json"],
                                     default="application/json") == "text/html"


def _refusal(request: Request[Any, Any, Any], exc: service.AdhocError, lang: str) -> Response[Any]:
    if not _wants_html(request):
        return problem(exc.status, exc.code, exc.message)
    w = Words(lang)
    return _page("error.html", exc.status, w=w, lang=lang, theme=_neutral_theme(), tenant_id="", code=exc.code,
                 message=exc.message, back=request.headers.get("referer") if _same_origin(request, "referer") else None)


def _neutral_theme() -> Any:
    from api.console.branding import theme_of

    return theme_of(None)


def _same_origin(request: Request[Any, Any, Any], header: str = "origin") -> bool:
    value = request.headers.get(header)
    if not value:
        return False
    return urlsplit(value).netloc == request.headers.get("host", "")


def _lang(request: Request[Any, Any, Any], query: str | None) -> str:
    return pick_language(query, request.headers.get("accept-language"))


def _public_base(request: Request[Any, Any, Any]) -> str:
    import os

    return (os.environ.get("EVBILL_PUBLIC_URL") or str(request.base_url)).rstrip("/")


# --- the QR page ---------------------------------------------------------------------------------

@get("/charge/{evse_id:str}", include_in_schema=False)
async def charge_page(request: Request[Any, Any, Any], evse_id: str, lang: str | None = None) -> Response[Any]:
    language = _lang(request, lang)

    def run() -> Response[Any]:
        with request.app.state.read_sessions() as db:
            try:
                place = service.place_of(db, evse_id[:40])
                preview = service.price_preview(db, place)
            except service.AdhocError as exc:
                return _refusal(request, exc, language)
            return _charge_form(request, place, preview, language)

    return await anyio.to_thread.run_sync(run)


def _charge_form(request: Request[Any, Any, Any], place: service.EvsePlace, preview: service.PricePreview,
                 language: str, status: int = 200, error: str = "") -> Response[Any]:
    from api.console.branding import theme_of

    w = Words(language)
    provider = provider_of(request)
    preauth = service.preauth_amount(preview.currency)
    comps = [{"description": _component_text(c["component"], c["description"], language), "unit": _UNIT.get(language, _UNIT["en"]).get(c["unit"], c["unit"]),
              "price": w.money(_gross(c["unit_price"], c.get("tax_rate")), preview.currency)
              if c["unit_price"] is not None else ""} for c in preview.components]
    return _page("charge.html", status, w=w, lang=language, languages=LANGUAGES, theme=theme_of(place.tenant),
                 tenant_id=place.tenant.id, place=place, components=comps, currency=preview.currency,
                 example=w("example", kwh=w.number(preview.example["energy_kwh"], 0), hours=preview.example["hours"],
                           gross=w.money(preview.example["gross"], preview.currency)),
                 preauth=w("preauth", amount=w.money(preauth, preview.currency)), provider=provider,
                 test_cards=TEST_CARDS if getattr(provider, "test_mode", False) else (), error=error,
                 here=f"/charge/{place.evse.id}")


_WINDOW = re.compile(r"\btime (\d{1,2}:\d{2})\.\.(\d{1,2}:\d{2})")
_CLOCK = {"de": "{start}–{end} Uhr", "en": "{start}–{end}"}
# what a price is per, on the driver's page ("0,60 € / Ladevorgang")
_UNIT = {"de": {"session": "Ladevorgang", "each": "Ladevorgang", "min": "Min.", "h": "Std.", "kWh": "kWh"},
         "en": {"session": "session", "each": "session", "min": "min", "h": "h", "kWh": "kWh"}}


def _component_text(component: str, description: str, language: str) -> str:
    """A priced component as the invoice names it in the page's language, with the time window
    its rule applies in ("Energie (22:00–06:00 Uhr)"), not the ruleset's English text."""
    from runtime.documents.from_invoice import component_label

    name = component_label(component, language)
    window = _WINDOW.search(description or "")
    if window:
        name += f" ({_CLOCK.get(language, _CLOCK['en']).format(start=window.group(1), end=window.group(2))})"
    return name


def _gross(unit_price: Any, rate: Any) -> Any:
    from decimal import Decimal

    if unit_price is None:
        return None
    price = Decimal(str(unit_price))
    return price * (1 + Decimal(str(rate or 0)) / 100)


@post("/charge/{evse_id:str}", include_in_schema=False, status_code=303)
async def pay(request: Request[Any, Any, Any], evse_id: str, data: Form) -> Response[Any]:
    form_lang = data.get("lang") or ""
    language = form_lang if form_lang in LANGUAGES else _lang(request, None)
    if request.headers.get("origin") and not _same_origin(request):
        return _refusal(request, service.AdhocError("cross_origin", "the form must come from this site", 403), language)
    provider = provider_of(request)
    email = (data.get("email") or "").strip()
    method = (data.get("payment_method") or "").strip() or None

    def run() -> Response[Any]:
        with request.app.state.sessions() as db:
            try:
                place = service.place_of(db, evse_id[:40])
                if provider is None:
                    raise service.AdhocError("payments_not_configured", "card payment is not set up here", 409)
                if data.get("accept") != "yes":
                    raise service.AdhocError("price_not_accepted", "accept the price to start", 422)
                if email:
                    from api.validation import check_email

                    try:
                        email_ok = check_email(email)
                    except ValueError as exc:
                        raise service.AdhocError("invalid_email", str(exc), 422) from None
                else:
                    email_ok = ""
                if method is not None and (len(method) > 100 or not method.replace("_", "").isalnum()):
                    raise service.AdhocError("invalid_payment_method", "not a payment method token", 422)
                charge = service.start_payment(
                    db, provider, place, email=email_ok, language=language, payment_method=method,
                    return_url=f"{_public_base(request)}/charge/sessions/{{key}}?lang={language}")
            except service.AdhocError as exc:
                return _refusal(request, exc, language)
            return Redirect(f"/charge/sessions/{charge.key}?lang={language}", status_code=303)

    return await anyio.to_thread.run_sync(run)


# --- the driver's charge -------------------------------------------------------------------------

def _charge_of(db: Any, key: str) -> store.AdhocCharge:
    charge = store.by_key(db.connection(), key[:64]) if key else None
    if charge is None:
        raise service.AdhocError("charge_not_found", "no such charge", 404)
    return charge


@get("/charge/sessions/{key:str}", include_in_schema=False)
async def charge_status(request: Request[Any, Any, Any], key: str, lang: str | None = None) -> Response[Any]:
    provider = provider_of(request)

    def run() -> Response[Any]:
        from api.console.branding import theme_of
        from store.models import Evse, Location, Tenant

        with request.app.state.sessions() as db:
            try:
                charge = _charge_of(db, key)
            except service.AdhocError as exc:
                return _refusal(request, exc, _lang(request, lang))
            charge = service.refresh(db, provider, charge)
            language = lang if lang in LANGUAGES else charge.language
            w = Words(language)
            tenant, evse = db.get(Tenant, charge.tenant_id), db.get(Evse, charge.evse_id)
            loc = db.get(Location, evse.location_id) if evse is not None else None
            tz = loc.timezone if loc is not None else "UTC"
            cost = service.cost_so_far(db, charge) if charge.status == "charging" else None
            running = charge.status in ("created", "authorized", "starting", "charging", "stopped")
            return _page("status.html", w=w, lang=language, theme=theme_of(tenant), tenant_id=charge.tenant_id,
                         charge=charge, evse=evse, location=loc, tz=tz, running=running,
                         cost=w.money(cost.get("gross_total"), charge.currency) if cost and cost.get("gross_total") else "",
                         energy=w.number(cost["energy_kwh"], 3) if cost else "",
                         redirect_url=charge.message if charge.status == "action_required" else "",
                         here=f"/charge/sessions/{charge.key}")

    return await anyio.to_thread.run_sync(run)


@post("/charge/sessions/{key:str}/stop", include_in_schema=False, status_code=303)
async def stop_charge(request: Request[Any, Any, Any], key: str) -> Response[Any]:
    def run() -> Response[Any]:
        with request.app.state.sessions() as db:
            try:
                if request.headers.get("origin") and not _same_origin(request):
                    raise service.AdhocError("cross_origin", "the form must come from this site", 403)
                charge = _charge_of(db, key)
                service.stop(db, charge)
            except service.AdhocError as exc:
                return _refusal(request, exc, _lang(request, None))
            return Redirect(f"/charge/sessions/{charge.key}", status_code=303)

    return await anyio.to_thread.run_sync(run)


@get("/charge/sessions/{key:str}/receipt.pdf", include_in_schema=False)
async def receipt_pdf(request: Request[Any, Any, Any], key: str) -> Response[Any]:
    def run() -> Response[Any]:
        with request.app.state.sessions() as db:
            try:
                charge = _charge_of(db, key)
                if charge.receipt_number == "":
                    raise service.AdhocError("no_receipt_yet", "the receipt is made when charging has finished", 409)
            except service.AdhocError as exc:
                return _refusal(request, exc, _lang(request, None))
            if charge.receipt_pdf is None:
                from api.adhoc.receipt import deliver_receipt

                charge = deliver_receipt(db, charge)
            assert charge.receipt_pdf is not None
            return Response(charge.receipt_pdf, media_type="application/pdf",
                            headers={"Content-Disposition": f'inline; filename="{charge.receipt_number}.pdf"',
                                     "X-Content-Type-Options": "nosniff"})

    return await anyio.to_thread.run_sync(run)


@get("/charge/{evse_id:str}/qr.svg", include_in_schema=False)
async def qr_svg(request: Request[Any, Any, Any], evse_id: str) -> Response[Any]:
    from api.adhoc.qr import qr_svg as make

    def run() -> Response[Any]:
        with request.app.state.read_sessions() as db:
            try:
                place = service.place_of(db, evse_id[:40])
            except service.AdhocError as exc:
                return _refusal(request, exc, _lang(request, None))
        return Response(make(f"{_public_base(request)}/charge/{place.evse.id}"), media_type="image/svg+xml",
                        headers={"Content-Security-Policy": "sandbox", "Cache-Control": "max-age=3600"})

    return await anyio.to_thread.run_sync(run)


# --- the provider's webhook ----------------------------------------------------------------------

@post("/payments/webhooks/{provider_name:str}", include_in_schema=False, status_code=200)
async def webhook(request: Request[Any, Any, Any], provider_name: str) -> Response[Any]:
    """Verified with the provider's own scheme (Stripe: ``Stripe-Signature``); a verified event
    about one of our reservations moves its charge on (``service.refresh``) and is answered 200,
    anything unverifiable 400 and changes nothing."""
    provider = provider_of(request)
    if provider is None or provider.name != provider_name:
        return problem(404, "no_such_provider", f"no payment provider {provider_name!r} is configured")
    payload = await request.body()
    headers = dict(request.headers)

    def run() -> Response[Any]:
        try:
            event = provider.parse_webhook(payload, headers)
        except WebhookRejected as exc:
            return problem(400, "webhook_rejected", str(exc))
        if event.payment_reference is None:
            return Response({"received": True, "matched": False})
        with request.app.state.sessions() as db:
            charge = store.by_payment(db.connection(), provider.name, event.payment_reference)
            if charge is None:
                return Response({"received": True, "matched": False})
            if event.refunded_total is not None:
                charge = service.record_refunded_total(db, charge, event.refunded_total, event.event_id)
            elif event.status == "authorized" and charge.status == "action_required":
                charge = service.refresh(db, provider, charge)
            elif event.status in ("declined", "canceled") and charge.status in ("action_required", "created"):
                store.set_values(db.connection(), charge.id, expect=(charge.status,), status=event.status)
                db.commit()
            return Response({"received": True, "matched": True, "charge_status": _status(db, charge)})

    return await anyio.to_thread.run_sync(run)


def _status(db: Any, charge: store.AdhocCharge) -> str:
    now = store.by_key(db.connection(), charge.key)
    return now.status if now is not None else charge.status


handlers = [charge_page, pay, charge_status, stop_charge, receipt_pdf, qr_svg, webhook]
