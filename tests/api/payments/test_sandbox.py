"""The card sandbox as ``evbill demo`` uses it (``api.demo.card_sandbox``): started only when the
environment configures no payment provider, the Stripe adapter pointed at it (Checkout page on),
the environment as it was once the demo ends, and the sandbox gone with it."""

from __future__ import annotations

import os
import re
from decimal import Decimal

import httpx
import pytest

from api.demo import card_sandbox
from api.payments import provider_from_env
from api.payments.sandbox import API_KEY
from api.payments.stripe_provider import StripeProvider
from runtime.money import Money
from runtime.payments_provider import hosted_page_of

VARS = ("EVBILL_PAYMENT_PROVIDER", "EVBILL_STRIPE_SECRET_KEY", "EVBILL_STRIPE_API_BASE",
        "EVBILL_STRIPE_WEBHOOK_SECRET", "EVBILL_PAYMENT_HOSTED_PAGE")


@pytest.fixture(autouse=True)
def no_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARS:
        monkeypatch.delenv(name, raising=False)


def test_the_demo_pays_through_the_sandbox_when_nothing_is_configured() -> None:
    with card_sandbox() as line:
        assert line is not None
        found = re.match(r"card payments: local sandbox at (http://127\.0\.0\.1:\d+), test card 4242 4242 4242 4242",
                         line)
        assert found, line
        base = found.group(1)
        assert os.environ["EVBILL_STRIPE_API_BASE"] == base and os.environ["EVBILL_STRIPE_SECRET_KEY"] == API_KEY
        provider = provider_from_env()
        assert isinstance(provider, StripeProvider) and provider.test_mode and provider.webhook_secret
        hosted = hosted_page_of(provider)
        assert hosted is not None and hosted.hosted_origin == base
        page = hosted.hosted_page(Money(Decimal("50.00"), "EUR"), reference="adh_demo", description="Demo: E1",
                                  success_url="http://127.0.0.1:1/ok", cancel_url="http://127.0.0.1:1/back",
                                  idempotency_key="adh_demo:hosted_page", language="de")
        assert page.url == f"{base}/pay/{page.reference}"
        shown = httpx.get(page.url)
        assert shown.status_code == 200 and "evbill card sandbox" in shown.text and "Pay 50.00 EUR" in shown.text
        paid = httpx.post(page.url, data={"card": "visa"})
        assert paid.status_code == 303 and paid.headers["location"] == f"http://127.0.0.1:1/ok?session_id={page.reference}"
        assert provider.retrieve(page.reference).status == "authorized"
    # the environment as before, the sandbox stopped
    assert not any(name in os.environ for name in VARS)
    with pytest.raises(httpx.ConnectError):
        httpx.get(page.url, timeout=2)


def test_a_configured_provider_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVBILL_STRIPE_SECRET_KEY", "sk_live_real_one")
    with card_sandbox() as line:
        assert line is None and os.environ["EVBILL_STRIPE_SECRET_KEY"] == "sk_live_real_one"
        assert "EVBILL_STRIPE_API_BASE" not in os.environ
    monkeypatch.delenv("EVBILL_STRIPE_SECRET_KEY")
    monkeypatch.setenv("EVBILL_PAYMENT_PROVIDER", "none")  # card payments off on purpose
    with card_sandbox() as line:
        assert line is None and provider_from_env() is None
