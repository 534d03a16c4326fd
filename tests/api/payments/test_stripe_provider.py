"""The Stripe adapter against a local server speaking Stripe's wire format (api/payments/sandbox.py):
Stripe's SDK builds every request and reads every answer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal

import pytest

from api.payments import provider_from_env
from api.payments.sandbox import API_KEY, WEBHOOK_SECRET, StripeWire, signature, stripe_wire
from api.payments.stripe_provider import StripeProvider
from runtime.money import Money
from runtime.payments_provider import ProviderError, WebhookRejected, from_minor, to_minor


@pytest.fixture(scope="module")
def wire() -> Iterator[StripeWire]:
    with stripe_wire() as w:
        yield w


@pytest.fixture()
def provider(wire: StripeWire) -> StripeProvider:
    return StripeProvider(API_KEY, webhook_secret=WEBHOOK_SECRET, api_base=wire.base, max_network_retries=0)


def eur(text: str) -> Money:
    return Money(Decimal(text), "EUR")


def test_authorize_capture_less_releases_the_rest(wire: StripeWire, provider: StripeProvider) -> None:
    auth = provider.authorize(eur("50.00"), reference="adh_1", description="Ad-hoc charge", payment_method="pm_card_visa",
                              return_url="http://127.0.0.1/charge/x", idempotency_key="adh_1:authorize")
    assert (auth.status, auth.amount, auth.reference.startswith("pi_")) == ("authorized", eur("50.00"), True)
    _m, _p, body = wire.calls("POST", "/v1/payment_intents")[-1]
    # what went over the wire: Stripe's form encoding, manual capture, our reference in the metadata
    assert body["amount"] == "5000" and body["currency"] == "eur" and body["capture_method"] == "manual"
    assert body["confirm"] == "true" and body["payment_method_types"] == ["card"]
    assert body["metadata"] == {"evbill_reference": "adh_1"}
    # the same idempotency key gives the same reservation, not a second one
    again = provider.authorize(eur("50.00"), reference="adh_1", description="Ad-hoc charge",
                               payment_method="pm_card_visa", return_url="http://127.0.0.1/charge/x",
                               idempotency_key="adh_1:authorize")
    assert again.reference == auth.reference
    assert provider.retrieve(auth.reference).status == "authorized"
    cap = provider.capture(auth.reference, eur("12.34"), idempotency_key="adh_1:capture")
    assert (cap.captured, cap.released) == (eur("12.34"), eur("37.66"))
    assert wire.calls("POST", f"/v1/payment_intents/{auth.reference}/capture")[-1][2] == {"amount_to_capture": "1234"}
    assert wire.intents[auth.reference]["status"] == "succeeded"
    # capturing again: Stripe refuses (state), the adapter says so with Stripe's code
    with pytest.raises(ProviderError) as err:
        provider.capture(auth.reference, eur("1.00"), idempotency_key="adh_1:capture2")
    assert err.value.code == "payment_intent_unexpected_state"
    # more than reserved is refused by the provider, never silently capped
    other = provider.authorize(eur("10.00"), reference="adh_2", description="x", payment_method="pm_card_visa",
                               return_url="http://x", idempotency_key="adh_2:authorize")
    with pytest.raises(ProviderError) as err:
        provider.capture(other.reference, eur("10.01"), idempotency_key="adh_2:capture")
    assert err.value.code == "amount_too_large"


def test_cancel_and_capture_of_nothing(wire: StripeWire, provider: StripeProvider) -> None:
    auth = provider.authorize(eur("30.00"), reference="adh_3", description="x", payment_method="pm_card_visa",
                              return_url="http://x", idempotency_key="adh_3:authorize")
    out = provider.cancel(auth.reference, idempotency_key="adh_3:cancel")
    assert out.status == "canceled"
    assert wire.intents[auth.reference]["status"] == "canceled"
    # a session that delivered nothing: capturing zero releases everything (Stripe cannot capture 0)
    auth = provider.authorize(eur("30.00"), reference="adh_4", description="x", payment_method="pm_card_visa",
                              return_url="http://x", idempotency_key="adh_4:authorize")
    cap = provider.capture(auth.reference, eur("0.00"), idempotency_key="adh_4:capture")
    assert (cap.captured, cap.released) == (eur("0.00"), eur("30.00"))
    assert wire.intents[auth.reference]["status"] == "canceled"


def test_declined_and_3ds(provider: StripeProvider) -> None:
    auth = provider.authorize(eur("50.00"), reference="adh_5", description="x", payment_method="pm_card_chargeDeclined",
                              return_url="http://x", idempotency_key="adh_5:authorize")
    assert (auth.status, auth.decline_code, auth.message) == ("declined", "generic_decline", "Your card was declined.")
    assert auth.reference.startswith("pi_")
    auth = provider.authorize(eur("50.00"), reference="adh_6", description="x",
                              payment_method="pm_card_authenticationRequired", return_url="http://back",
                              idempotency_key="adh_6:authorize")
    assert auth.status == "action_required" and auth.redirect_url and "/3ds/" in auth.redirect_url
    with pytest.raises(ProviderError) as err:
        provider.authorize(eur("50.00"), reference="adh_7", description="x", payment_method="pm_nonsense",
                           return_url="http://x", idempotency_key="adh_7:authorize")
    assert err.value.code == "resource_missing"


def test_refund_in_parts(wire: StripeWire, provider: StripeProvider) -> None:
    auth = provider.authorize(eur("40.00"), reference="adh_8", description="x", payment_method="pm_card_visa",
                              return_url="http://x", idempotency_key="adh_8:authorize")
    provider.capture(auth.reference, eur("20.00"), idempotency_key="adh_8:capture")
    r1 = provider.refund(auth.reference, eur("5.50"), idempotency_key="adh_8:refund:1", reason="slow charging")
    assert (r1.amount, r1.status, r1.payment_reference) == (eur("5.50"), "succeeded", auth.reference)
    body = wire.calls("POST", "/v1/refunds")[-1][2]
    assert body == {"payment_intent": auth.reference, "amount": "550", "reason": "requested_by_customer",
                    "metadata": {"evbill_reason": "slow charging"}}
    # a retried request with the same key is the same refund
    assert provider.refund(auth.reference, eur("5.50"), idempotency_key="adh_8:refund:1").reference == r1.reference
    with pytest.raises(ProviderError) as err:
        provider.refund(auth.reference, eur("14.51"), idempotency_key="adh_8:refund:2")
    assert err.value.code == "amount_too_large"
    assert provider.refund(auth.reference, eur("14.50"), idempotency_key="adh_8:refund:3").amount == eur("14.50")


def test_webhook_signature(wire: StripeWire, provider: StripeProvider) -> None:
    pi = {"id": "pi_abc", "object": "payment_intent", "status": "requires_capture", "amount": 5000, "currency": "eur"}
    payload = wire.event("payment_intent.amount_capturable_updated", pi)
    ev = provider.parse_webhook(payload, {"Stripe-Signature": signature(payload)})
    assert (ev.type, ev.payment_reference, ev.status) == ("payment_intent.amount_capturable_updated", "pi_abc",
                                                         "authorized")
    refund = wire.event("charge.refunded", {"id": "ch_1", "object": "charge", "payment_intent": "pi_abc",
                                            "amount_refunded": 1250, "currency": "eur"})
    ev = provider.parse_webhook(refund, {"stripe-signature": signature(refund)})
    assert (ev.payment_reference, ev.status, ev.refunded_total) == ("pi_abc", None, eur("12.50"))
    bad = [
        {"Stripe-Signature": signature(payload, secret="whsec_someone_else")},  # wrong secret
        {"Stripe-Signature": signature(payload, timestamp=int(time.time()) - 3600)},  # too old: a replay
        {"Stripe-Signature": "t=1,v1=00"},
        {},  # no header
    ]
    for headers in bad:
        with pytest.raises(WebhookRejected):
            provider.parse_webhook(payload, headers)
    # the body changed after signing
    with pytest.raises(WebhookRejected):
        provider.parse_webhook(payload.replace(b"5000", b"9000"), {"Stripe-Signature": signature(payload)})
    with pytest.raises(WebhookRejected):
        StripeProvider(API_KEY, api_base=wire.base).parse_webhook(payload, {"Stripe-Signature": signature(payload)})


def test_unreachable_and_bad_key(wire: StripeWire) -> None:
    down = StripeProvider(API_KEY, api_base="http://127.0.0.1:9", max_network_retries=0)
    with pytest.raises(ProviderError) as err:
        down.retrieve("pi_x")
    assert err.value.code == "provider_unavailable" and err.value.retryable
    wrong = StripeProvider("sk_test_wrong", api_base=wire.base, max_network_retries=0)
    with pytest.raises(ProviderError) as err:
        wrong.retrieve("pi_x")
    assert err.value.code == "provider_not_configured"


def test_minor_units_and_env() -> None:
    assert to_minor(eur("12.34")) == 1234 and from_minor(1234, "eur") == eur("12.34")
    assert to_minor(Money(Decimal(500), "JPY")) == 500
    with pytest.raises(ValueError):
        to_minor(eur("0.001"))
    assert provider_from_env({}) is None
    p = provider_from_env({"EVBILL_STRIPE_SECRET_KEY": API_KEY, "EVBILL_STRIPE_API_BASE": "http://127.0.0.1:1"})
    assert p is not None and p.name == "stripe"
    with pytest.raises(ValueError):
        provider_from_env({"EVBILL_PAYMENT_PROVIDER": "paypal"})


def _pay_on_page(url: str, card: str = "visa") -> tuple[int, str]:
    """The driver on Checkout's page (the local server's): (status, Location) without following."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=10)
    conn.request("POST", parts.path, body=f"card={card}", headers={"Content-Type": "application/x-www-form-urlencoded"})
    res = conn.getresponse()
    res.read()
    return res.status, res.getheader("Location") or ""


def test_checkout_session_reserves_and_captures(wire: StripeWire) -> None:
    """Stripe Checkout: the hosted page reserves (manual capture); until paid the session is the
    reference (pending, with its page), then the PaymentIntent is; expiring charges nothing."""
    provider = StripeProvider(API_KEY, webhook_secret=WEBHOOK_SECRET, api_base=wire.base, max_network_retries=0,
                              hosted_page=True)
    assert provider.hosted_origin == wire.base and provider.uses_hosted_page
    page = provider.hosted_page(eur("50.00"), reference="adh_c1", description="Alpha: DE*EVB*E1",
                                success_url="https://evbill.test/charge/sessions/k1?lang=de",
                                cancel_url="https://evbill.test/charge/sessions/k1?lang=de&checkout=canceled",
                                idempotency_key="adh_c1:hosted_page", language="de", email="d@example.com")
    assert page.reference.startswith("cs_test_") and page.url == f"{wire.base}/pay/{page.reference}"
    [(_m, _p, body, headers)] = [r for r in wire.requests if r[0] == "POST" and r[1] == "/v1/checkout/sessions"]
    assert headers["idempotency-key"] == "adh_c1:hosted_page"
    assert body["mode"] == "payment" and body["payment_intent_data"]["capture_method"] == "manual"
    assert body["line_items"] == [{"quantity": "1", "price_data": {"currency": "eur", "unit_amount": "5000",
                                                                   "product_data": {"name": "Alpha: DE*EVB*E1"}}}]
    assert body["metadata"]["evbill_reference"] == "adh_c1" and body["client_reference_id"] == "adh_c1"
    assert body["success_url"] == "https://evbill.test/charge/sessions/k1?lang=de&session_id={CHECKOUT_SESSION_ID}"
    assert (body["locale"], body["customer_email"]) == ("de", "d@example.com")
    assert 3500 < int(body["expires_at"]) - time.time() <= 3600  # an hour, not Stripe's default day
    # the same request again (a lost answer): the same session
    again = provider.hosted_page(eur("50.00"), reference="adh_c1", description="Alpha: DE*EVB*E1",
                                 success_url="https://evbill.test/x", cancel_url="https://evbill.test/y",
                                 idempotency_key="adh_c1:hosted_page", language="de")
    assert again.reference == page.reference

    waiting = provider.retrieve(page.reference)
    assert (waiting.status, waiting.redirect_url, waiting.amount) == ("pending", page.url, eur("50.00"))
    assert _pay_on_page(page.url, "declined")[0] == 200  # a declined card stays on the page
    status, location = _pay_on_page(page.url)
    assert (status, location) == (303, f"https://evbill.test/charge/sessions/k1?lang=de&session_id={page.reference}")
    auth = provider.retrieve(page.reference)
    assert auth.status == "authorized" and auth.reference.startswith("pi_") and auth.amount == eur("50.00")
    assert wire.intents[auth.reference]["metadata"]["evbill_reference"] == "adh_c1"
    cap = provider.capture(auth.reference, eur("5.36"), idempotency_key="adh_c1:capture")
    assert (cap.captured, cap.released) == (eur("5.36"), eur("44.64"))
    with pytest.raises(ProviderError):  # a paid session cannot be expired
        provider.cancel(page.reference, idempotency_key="adh_c1:hosted_cancel")

    left = provider.hosted_page(eur("50.00"), reference="adh_c2", description="x", success_url="https://evbill.test/s",
                                cancel_url="https://evbill.test/c", idempotency_key="adh_c2:hosted_page", language="en")
    gone = provider.cancel(left.reference, idempotency_key="adh_c2:hosted_cancel")
    assert (gone.status, gone.reference) == ("canceled", left.reference)
    assert provider.retrieve(left.reference).status == "canceled"
    assert _pay_on_page(left.url)[0] == 404

    # the webhook of a completed session names the session (the charge waits under its id)
    completed = wire.event("checkout.session.completed", wire.sessions[page.reference])
    ev = provider.parse_webhook(completed, {"Stripe-Signature": signature(completed)})
    assert (ev.payment_reference, ev.status) == (page.reference, "authorized")
    expired = wire.event("checkout.session.expired", wire.sessions[left.reference])
    assert provider.parse_webhook(expired, {"Stripe-Signature": signature(expired)}).status == "canceled"


def test_hosted_page_by_key_and_setting() -> None:
    from runtime.payments_provider import hosted_page_of

    base = {"EVBILL_STRIPE_API_BASE": "http://127.0.0.1:1"}
    live = provider_from_env({**base, "EVBILL_STRIPE_SECRET_KEY": "sk_live_abc"})
    assert hosted_page_of(live) is live and live.hosted_origin == "http://127.0.0.1:1"  # type: ignore[union-attr]
    assert hosted_page_of(provider_from_env({"EVBILL_STRIPE_SECRET_KEY": "rk_live_abc"})).hosted_origin == \
        "https://checkout.stripe.com"  # type: ignore[union-attr]
    assert hosted_page_of(provider_from_env({**base, "EVBILL_STRIPE_SECRET_KEY": API_KEY})) is None
    test_hosted = provider_from_env({**base, "EVBILL_STRIPE_SECRET_KEY": API_KEY, "EVBILL_PAYMENT_HOSTED_PAGE": "1"})
    assert hosted_page_of(test_hosted) is test_hosted
    assert hosted_page_of(provider_from_env({**base, "EVBILL_STRIPE_SECRET_KEY": "sk_live_abc",
                                             "EVBILL_PAYMENT_HOSTED_PAGE": "0"})) is None
    with pytest.raises(ValueError):
        provider_from_env({**base, "EVBILL_STRIPE_SECRET_KEY": API_KEY, "EVBILL_PAYMENT_HOSTED_PAGE": "maybe"})
