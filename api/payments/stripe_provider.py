"""The Stripe adapter: PaymentIntents with ``capture_method=manual`` on Stripe's official SDK.

authorize -> ``PaymentIntent.create(confirm=true, capture_method=manual)`` (status
``requires_capture`` once the card issuer reserved the amount, ``requires_action`` with a redirect
for 3-D Secure); capture -> ``capture(amount_to_capture=...)`` (Stripe releases the rest); a
capture of nothing -> ``cancel``; refund -> ``Refund.create(payment_intent=...)``; webhooks ->
``stripe.Webhook.construct_event`` (the ``Stripe-Signature`` header: ``t=...,v1=HMAC-SHA256``,
five minutes' tolerance). Every write carries an idempotency key, so a retried request after a
lost answer never reserves, captures or refunds twice.
"""

from __future__ import annotations

import json
from typing import Any

import stripe

from runtime.money import Money
from runtime.payments_provider import (
    Authorization,
    AuthorizationStatus,
    Capture,
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
}


def _get(obj: Any, key: str, default: Any = None) -> Any:
    try:
        value = obj[key]
    except (KeyError, TypeError, IndexError):
        return default
    return default if value is None else value


class StripeProvider:
    name = "stripe"

    def __init__(self, api_key: str, *, webhook_secret: str | None = None, api_base: str | None = None,
                 max_network_retries: int = 2, webhook_tolerance_s: int = 300) -> None:
        options: dict[str, Any] = {"max_network_retries": max_network_retries}
        if api_base:
            options["base_addresses"] = {"api": api_base.rstrip("/")}
        self.client = stripe.StripeClient(api_key, **options)
        # Stripe's test keys take its test payment methods (``pm_card_visa``...): the ad-hoc page
        # offers them only then
        self.test_mode = api_key.startswith(("sk_test_", "rk_test_"))
        self.webhook_secret = webhook_secret
        self.webhook_tolerance_s = webhook_tolerance_s

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
            return self._authorization(self.client.v1.payment_intents.retrieve(payment_reference))
        except stripe.StripeError as exc:
            raise self._failure(exc) from exc

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
        if _get(obj, "object") == "payment_intent":
            ref = str(_get(obj, "id", "")) or None
        elif _get(obj, "payment_intent"):
            ref = str(_get(obj, "payment_intent"))
        refunded = None
        if kind == "charge.refunded" and _get(obj, "amount_refunded") is not None:
            refunded = from_minor(int(_get(obj, "amount_refunded")), str(_get(obj, "currency", "eur")))
        return WebhookEvent("stripe", str(event.id), kind, ref, _EVENTS.get(kind), obj if isinstance(obj, dict) else {},
                            refunded_total=refunded)
