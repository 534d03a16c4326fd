"""The Stripe adapter: PaymentIntents with ``capture_method=manual`` on Stripe's official SDK.

authorize -> ``PaymentIntent.create(confirm=true, capture_method=manual)`` (status
``requires_capture`` once the card issuer reserved the amount, ``requires_action`` with a redirect
for 3-D Secure); capture -> ``capture(amount_to_capture=...)`` (Stripe releases the rest); a
capture of nothing -> ``cancel``; refund -> ``Refund.create(payment_intent=...)``; webhooks ->
``stripe.Webhook.construct_event`` (the ``Stripe-Signature`` header: ``t=...,v1=HMAC-SHA256``,
five minutes' tolerance). Hosted page (Stripe Checkout, ``HostedPaymentPage``) -> a Checkout
Session in ``mode=payment`` with ``payment_intent_data.capture_method=manual``; its id (``cs_...``)
is the reference until the driver has paid, then ``retrieve`` answers the PaymentIntent
(``requires_capture``) and the rest is as above; ``cancel`` of a session expires it. Every write carries an idempotency key, so a retried request after a
lost answer never reserves, captures or refunds twice.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

import stripe

from runtime.money import Money
from runtime.payments_provider import (
    Authorization,
    AuthorizationStatus,
    Capture,
    HostedPayment,
    ProviderError,
    Refund,
    WebhookEvent,
    WebhookRejected,
    from_minor,
    to_minor,
)

__all__ = ["StripeProvider"]

_STATUS: dict[str, AuthorizationStatus] = {
    "requires_capture": "authorized",
    "requires_action": "action_required",
    "requires_payment_method": "declined",
    "requires_confirmation": "pending",
    "processing": "pending",
    "canceled": "canceled",
    "succeeded": "captured",
}

_EVENTS: dict[str, AuthorizationStatus] = {
    "payment_intent.amount_capturable_updated": "authorized",
    "payment_intent.requires_action": "action_required",
    "payment_intent.payment_failed": "declined",
    "payment_intent.canceled": "canceled",
    "payment_intent.succeeded": "captured",
    # Checkout: the driver paid on the hosted page (with manual capture the session's
    # payment_status stays "unpaid": the money is reserved, not taken), or left it to expire
    "checkout.session.completed": "authorized",
    "checkout.session.async_payment_succeeded": "authorized",
    "checkout.session.async_payment_failed": "declined",
    "checkout.session.expired": "canceled",
}

CHECKOUT_ORIGIN = "https://checkout.stripe.com"
CHECKOUT_TTL_S = 3600  # Stripe accepts 30 minutes to 24 hours


def _get(obj: Any, key: str, default: Any = None) -> Any:
    try:
        value = obj[key]
    except (KeyError, TypeError, IndexError):
        return default
    return default if value is None else value


class StripeProvider:
    name = "stripe"

    def __init__(self, api_key: str, *, webhook_secret: str | None = None, api_base: str | None = None,
                 max_network_retries: int = 2, webhook_tolerance_s: int = 300, hosted_page: bool | None = None,
                 hosted_origin: str | None = None) -> None:
        options: dict[str, Any] = {"max_network_retries": max_network_retries}
        if api_base:
            options["base_addresses"] = {"api": api_base.rstrip("/")}
        self.client = stripe.StripeClient(api_key, **options)
        # Stripe's test keys take its test payment methods (``pm_card_visa``...): the ad-hoc page
        # offers them only then
        self.test_mode = api_key.startswith(("sk_test_", "rk_test_"))
        self.webhook_secret = webhook_secret
        self.webhook_tolerance_s = webhook_tolerance_s
        # a live key never asks the driver for a payment method on our page: Stripe's card form
        # (its script) cannot come from our origin, so the driver pays on Stripe Checkout
        live = api_key.startswith(("sk_live_", "rk_live_"))
        self.uses_hosted_page = live if hosted_page is None else hosted_page
        if hosted_origin is None:  # Checkout's own origin; a local server in tests serves its page itself
            hosted_origin = "{0.scheme}://{0.netloc}".format(urlsplit(api_base)) if api_base else CHECKOUT_ORIGIN
        self.hosted_origin = hosted_origin

    # --- helpers ----------------------------------------------------------------------------------

    def _authorization(self, pi: Any, message: str = "", decline_code: str = "") -> Authorization:
        currency = str(_get(pi, "currency", "eur")).upper()
        status = _STATUS.get(str(_get(pi, "status", "")), "pending")
        amount = int(_get(pi, "amount_received", 0)) if status == "captured" else int(_get(pi, "amount", 0))
        redirect = _get(_get(_get(pi, "next_action", {}), "redirect_to_url", {}), "url")
        error = _get(pi, "last_payment_error", {})
        return Authorization("stripe", str(_get(pi, "id", "")), status, from_minor(amount, currency),
                             redirect_url=redirect if status == "action_required" else None,
                             decline_code=decline_code or str(_get(error, "decline_code", "") or _get(error, "code", "")),
                             message=message or str(_get(error, "message", "")))

    @staticmethod
    def _failure(exc: stripe.StripeError) -> ProviderError:
        if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError):
            return ProviderError("provider_unavailable", str(exc.user_message or exc), retryable=True)
        if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
            return ProviderError("provider_not_configured", str(exc.user_message or exc))
        code = str(getattr(exc, "code", "") or "provider_error")
        return ProviderError(code, str(exc.user_message or exc),
                             retryable=(exc.http_status or 0) >= 500)

    # --- the port ---------------------------------------------------------------------------------

    def authorize(self, amount: Money, *, reference: str, description: str, payment_method: str | None,
                  return_url: str, idempotency_key: str, metadata: dict[str, str] | None = None) -> Authorization:
        params: dict[str, Any] = {
            "amount": to_minor(amount), "currency": amount.currency.lower(), "capture_method": "manual",
            "payment_method_types": ["card"], "description": description[:1000],
            "metadata": {"evbill_reference": reference, **(metadata or {})},
        }
        if payment_method:
            params.update(payment_method=payment_method, confirm=True, return_url=return_url)
        try:
            pi = self.client.v1.payment_intents.create(params=params,  # type: ignore[arg-type]
                                                       options={"idempotency_key": idempotency_key})
        except stripe.CardError as exc:
            # a decline is an answer, not a failure: the PaymentIntent exists and says why
            err = _get(exc.json_body, "error", {})
            pi_body = _get(err, "payment_intent", {})
            return Authorization("stripe", str(_get(pi_body, "id", "")), "declined", amount,
                                 decline_code=str(_get(err, "decline_code", "") or exc.code or "card_declined"),
                                 message=str(exc.user_message or exc))
        except stripe.StripeError as exc:
            raise self._failure(exc) from exc
        return self._authorization(pi)

    def retrieve(self, payment_reference: str) -> Authorization:
        try:
            if self.is_hosted_reference(payment_reference):
                return self._checkout_authorization(self.client.v1.checkout.sessions.retrieve(
                    payment_reference, params={"expand": ["payment_intent"]}))
            return self._authorization(self.client.v1.payment_intents.retrieve(payment_reference))
        except stripe.StripeError as exc:
            raise self._failure(exc) from exc

    # --- the hosted page (Stripe Checkout) -------------------------------------------------------

    @staticmethod
    def is_hosted_reference(reference: str) -> bool:
        return reference.startswith("cs_")

    def hosted_page(self, amount: Money, *, reference: str, description: str, success_url: str, cancel_url: str,
                    idempotency_key: str, language: str, email: str = "",
                    metadata: dict[str, str] | None = None) -> HostedPayment:
        meta = {"evbill_reference": reference, **(metadata or {})}
        params: dict[str, Any] = {
            "mode": "payment", "client_reference_id": reference, "metadata": meta,
            "line_items": [{"quantity": 1, "price_data": {
                "currency": amount.currency.lower(), "unit_amount": to_minor(amount),
                "product_data": {"name": description[:250]}}}],
            "payment_method_types": ["card"],
            "payment_intent_data": {"capture_method": "manual", "description": description[:1000], "metadata": meta},
            # Stripe fills in the session's id on the way back
            "success_url": success_url + ("&" if "?" in success_url else "?") + "session_id={CHECKOUT_SESSION_ID}",
            "cancel_url": cancel_url,
            "locale": language if language in ("de", "en", "fr", "nl") else "auto",
            # a page left unpaid closes after an hour (Stripe's default is a day), and the sweep
            # that asks about waiting charges stops asking
            "expires_at": int(time.time()) + CHECKOUT_TTL_S,
        }
        if email:
            params["customer_email"] = email
        try:
            session = self.client.v1.checkout.sessions.create(params=params,  # type: ignore[arg-type]
                                                              options={"idempotency_key": idempotency_key})
        except stripe.StripeError as exc:
            raise self._failure(exc) from exc
        url = str(_get(session, "url", ""))
        if not url:
            raise ProviderError("provider_error", "Stripe Checkout gave no page address")
        return HostedPayment(str(_get(session, "id", "")), url)

    def _checkout_authorization(self, session: Any) -> Authorization:
        """A Checkout Session as the reservation it stands for: ``pending`` (with its page) while
        open, the PaymentIntent once complete, ``canceled`` once expired."""
        sid = str(_get(session, "id", ""))
        currency = str(_get(session, "currency", "eur")).upper()
        total = from_minor(int(_get(session, "amount_total", 0)), currency)
        status = str(_get(session, "status", ""))
        pi = _get(session, "payment_intent")
        if status == "complete" and pi:
            if isinstance(pi, str):
                pi = self.client.v1.payment_intents.retrieve(pi)
            return self._authorization(pi)
        if status == "expired":
            return Authorization("stripe", sid, "canceled", total, message="the payment page expired")
        return Authorization("stripe", sid, "pending", total, redirect_url=_get(session, "url"))

    def capture(self, payment_reference: str, amount: Money, *, idempotency_key: str) -> Capture:
        try:
            if amount.amount <= 0:
                pi = self.client.v1.payment_intents.cancel(payment_reference,
                                                           options={"idempotency_key": idempotency_key})
            else:
                pi = self.client.v1.payment_intents.capture(
                    payment_reference, params={"amount_to_capture": to_minor(amount)},
                    options={"idempotency_key": idempotency_key})
        except stripe.StripeError as exc:
            raise self._failure(exc) from exc
        currency = str(_get(pi, "currency", amount.currency)).upper()
        reserved, received = int(_get(pi, "amount", 0)), int(_get(pi, "amount_received", 0))
        return Capture(str(_get(pi, "id", payment_reference)), from_minor(received, currency),
                       from_minor(reserved - received, currency))

    def cancel(self, payment_reference: str, *, idempotency_key: str) -> Authorization:
        try:
            if self.is_hosted_reference(payment_reference):
                session = self.client.v1.checkout.sessions.expire(payment_reference,
                                                                  options={"idempotency_key": idempotency_key})
                return self._checkout_authorization(session)
            pi = self.client.v1.payment_intents.cancel(payment_reference, options={"idempotency_key": idempotency_key})
        except stripe.StripeError as exc:
            raise self._failure(exc) from exc
        return self._authorization(pi)

    def refund(self, payment_reference: str, amount: Money, *, idempotency_key: str, reason: str = "") -> Refund:
        params: dict[str, Any] = {"payment_intent": payment_reference, "amount": to_minor(amount),
                                  "reason": "requested_by_customer"}
        if reason:
            params["metadata"] = {"evbill_reason": reason[:500]}
        try:
            r = self.client.v1.refunds.create(params=params,  # type: ignore[arg-type]
                                              options={"idempotency_key": idempotency_key})
        except stripe.StripeError as exc:
            raise self._failure(exc) from exc
        currency = str(_get(r, "currency", amount.currency)).upper()
        return Refund(str(_get(r, "id", "")), payment_reference, from_minor(int(_get(r, "amount", 0)), currency),
                      str(_get(r, "status", "pending")))

    def parse_webhook(self, payload: bytes, headers: dict[str, str]) -> WebhookEvent:
        if not self.webhook_secret:
            raise WebhookRejected("no webhook secret is configured (EVBILL_STRIPE_WEBHOOK_SECRET)")
        header = next((v for k, v in headers.items() if k.lower() == "stripe-signature"), None)
        try:
            event = stripe.Webhook.construct_event(payload, header, self.webhook_secret,
                                                   tolerance=self.webhook_tolerance_s)
        except stripe.SignatureVerificationError as exc:
            raise WebhookRejected(f"signature: {exc.user_message or exc}") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise WebhookRejected(f"not a Stripe event: {exc}") from exc
        body = json.loads(payload)
        obj = _get(_get(body, "data", {}), "object", {})
        kind = str(_get(body, "type", ""))
        ref: str | None = None
        if _get(obj, "object") == "checkout.session":
            # the charge waits under the session's id until its payment is known
            ref = str(_get(obj, "id", "")) or None
        elif _get(obj, "object") == "payment_intent":
            ref = str(_get(obj, "id", "")) or None
        elif _get(obj, "payment_intent"):
            ref = str(_get(obj, "payment_intent"))
        refunded = None
        if kind == "charge.refunded" and _get(obj, "amount_refunded") is not None:
            refunded = from_minor(int(_get(obj, "amount_refunded")), str(_get(obj, "currency", "eur")))
        return WebhookEvent("stripe", str(event.id), kind, ref, _EVENTS.get(kind), obj if isinstance(obj, dict) else {},
                            refunded_total=refunded)
