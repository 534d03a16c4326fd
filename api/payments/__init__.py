"""Payment-provider adapters (the ``runtime.payments_provider.PaymentProvider`` port) and the
choice of one from the environment.

``stripe_provider.StripeProvider`` is built on Stripe's official SDK. ``provider_from_env()``
gives the configured provider or None (ad-hoc charging then says it takes no card payments):
``EVBILL_PAYMENT_PROVIDER=stripe`` (the default when ``EVBILL_STRIPE_SECRET_KEY`` is set),
``EVBILL_STRIPE_WEBHOOK_SECRET`` (``whsec_...``) for ``POST /payments/webhooks/stripe``, and
``EVBILL_STRIPE_API_BASE`` to point the SDK at another address (the tests' local server), and
``EVBILL_PAYMENT_HOSTED_PAGE`` (``auto``, the default: the provider's hosted payment page — Stripe
Checkout — with a live key, a payment method on our page with a test key; ``1`` always; ``0`` never).
Unzer, Payone or Adyen would be one module each here, picked by the same variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from runtime.payments_provider import PaymentProvider

__all__ = ["provider_from_env"]


def provider_from_env(environ: Mapping[str, str] | None = None) -> PaymentProvider | None:
    env = os.environ if environ is None else environ
    kind = env.get("EVBILL_PAYMENT_PROVIDER", "").strip().lower()
    key = env.get("EVBILL_STRIPE_SECRET_KEY", "").strip()
    if kind in ("", "stripe") and key:
        from api.payments.stripe_provider import StripeProvider

        return StripeProvider(key, webhook_secret=env.get("EVBILL_STRIPE_WEBHOOK_SECRET", "").strip() or None,
                              api_base=env.get("EVBILL_STRIPE_API_BASE", "").strip() or None,
                              hosted_page=_hosted_page(env))
    if kind not in ("", "stripe", "none"):
        raise ValueError(f"EVBILL_PAYMENT_PROVIDER {kind!r} is not supported (stripe)")
    return None


def _hosted_page(env: Mapping[str, str]) -> bool | None:
    value = env.get("EVBILL_PAYMENT_HOSTED_PAGE", "").strip().lower()
    if value in ("", "auto"):
        return None
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"EVBILL_PAYMENT_HOSTED_PAGE {value!r} is not one of auto, 1, 0")
