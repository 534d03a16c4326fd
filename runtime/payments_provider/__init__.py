"""The payment-provider port: what evbill asks of a card acquirer, whoever it is.

Ad-hoc charging (issue 16) reserves a pre-authorization amount on the driver's card before the
charger starts, captures the final amount when the session stops (the provider releases the rest),
cancels a reservation nobody charged on, and refunds a captured payment in part or whole. A
provider's webhooks are verified by the adapter and come back as one ``WebhookEvent`` shape.

Adapters live outside the pure core (they talk to the network): ``api.payments`` has the Stripe
adapter on Stripe's official SDK; Unzer, Payone or Adyen adapters implement the same
``PaymentProvider`` protocol (their pre-authorization/capture/reversal/refund calls map one to one).

A provider may also offer its own payment page (``HostedPaymentPage``: Stripe Checkout; Unzer's
Payment Page, Payone's and Adyen's hosted pages are the same idea): the driver is sent there, the
card details never touch our pages, and the page comes back to ours. Its reference is a reservation
reference like any other: ``retrieve`` of it answers ``pending`` while the driver is on the page and,
once paid, the reservation with the payment's own ``reference`` (which replaces it); ``cancel`` of
it closes the page.

Amounts cross the port as ``Money`` (Decimal and currency); the adapters convert to the provider's
minor units with ``to_minor``/``from_minor``, which refuse amounts finer than the currency allows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, Protocol

from runtime.money import Money, minor_unit

__all__ = [
    "Authorization",
    "AuthorizationStatus",
    "Capture",
    "HostedPayment",
    "HostedPaymentPage",
    "PaymentProvider",
    "ProviderError",
    "Refund",
    "WebhookEvent",
    "WebhookRejected",
    "from_minor",
    "hosted_page_of",
    "to_minor",
]

# what a reservation is, provider-neutral: ``authorized`` (money reserved, capturable),
# ``action_required`` (the driver must confirm with the card issuer: 3-D Secure at ``redirect_url``),
# ``declined``, ``canceled`` (released), ``captured``, ``pending`` (the provider has not decided)
AuthorizationStatus = Literal["authorized", "action_required", "declined", "canceled", "captured", "pending"]


class ProviderError(Exception):
    """The provider refused a request or could not be reached. ``code`` is stable and snake_case
    (``card_declined``, ``provider_unavailable``, ...); ``message`` is the provider's own text."""

    def __init__(self, code: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


class WebhookRejected(Exception):
    """A webhook whose signature, timestamp or body does not check out: answer 400, change nothing."""


@dataclass(frozen=True, slots=True)
class Authorization:
    provider: str
    reference: str  # the provider's id of the reservation (a Stripe PaymentIntent id)
    status: AuthorizationStatus
    amount: Money  # reserved (for ``captured``: what was captured)
    redirect_url: str | None = None  # where the driver confirms (``action_required``)
    decline_code: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True)
class HostedPayment:
    reference: str  # the provider's id of the page's session (Stripe: a Checkout Session ``cs_...``)
    url: str  # where the driver pays (the provider's origin)


@dataclass(frozen=True, slots=True)
class Capture:
    reference: str
    captured: Money
    released: Money  # reserved but not taken: given back to the card


@dataclass(frozen=True, slots=True)
class Refund:
    reference: str  # the provider's refund id
    payment_reference: str
    amount: Money
    status: str  # succeeded | pending | failed


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    provider: str
    event_id: str
    type: str  # the provider's event type (``payment_intent.amount_capturable_updated``)
    payment_reference: str | None  # the reservation it is about, if any
    status: AuthorizationStatus | None  # what it tells about the reservation, in our terms
    data: dict[str, Any] = field(default_factory=dict)
    # a refund event: everything refunded on the payment so far (a refund made in the provider's
    # own dashboard reaches the books this way; one we made ourselves adds nothing new)
    refunded_total: Money | None = None


class PaymentProvider(Protocol):
    name: str

    def authorize(self, amount: Money, *, reference: str, description: str, payment_method: str | None,
                  return_url: str, idempotency_key: str, metadata: dict[str, str] | None = None) -> Authorization:
        """Reserve ``amount`` on the card (no money moves yet)."""
        ...

    def retrieve(self, payment_reference: str) -> Authorization:
        """The reservation as the provider sees it now (after a redirect or a webhook)."""
        ...

    def capture(self, payment_reference: str, amount: Money, *, idempotency_key: str) -> Capture:
        """Take ``amount`` (at most the reserved amount) and release the rest."""
        ...

    def cancel(self, payment_reference: str, *, idempotency_key: str) -> Authorization:
        """Release the whole reservation (nothing charged)."""
        ...

    def refund(self, payment_reference: str, amount: Money, *, idempotency_key: str,
               reason: str = "") -> Refund:
        """Give back part or all of a captured payment."""
        ...

    def parse_webhook(self, payload: bytes, headers: dict[str, str]) -> WebhookEvent:
        """Verify a webhook (signature and age) and read it; raises ``WebhookRejected``."""
        ...


class HostedPaymentPage(Protocol):
    """The capability of a provider whose own page takes the card (PaymentProvider besides)."""

    # True when ad-hoc charging sends drivers to the provider's page instead of asking for a
    # payment method on ours (Stripe: always with a live key; by configuration with a test key)
    uses_hosted_page: bool
    # the origin the page lives on: our page's Content Security Policy lets its form lead there
    hosted_origin: str

    def hosted_page(self, amount: Money, *, reference: str, description: str, success_url: str, cancel_url: str,
                    idempotency_key: str, language: str, email: str = "",
                    metadata: dict[str, str] | None = None) -> HostedPayment:
        """Open the provider's page reserving ``amount`` (capture later); ``success_url`` and
        ``cancel_url`` lead back to our pages."""
        ...

    def is_hosted_reference(self, reference: str) -> bool:
        """Whether ``reference`` names a hosted page's session (not yet the payment itself)."""
        ...


def hosted_page_of(provider: object) -> HostedPaymentPage | None:
    """The provider as a hosted payment page when it has one and ad-hoc charging is to use it."""
    if getattr(provider, "uses_hosted_page", False) and callable(getattr(provider, "hosted_page", None)):
        return provider  # type: ignore[return-value]
    return None


def to_minor(amount: Money) -> int:
    """``Money('12.34', 'EUR')`` -> 1234; refuses fractions of the currency's minor unit."""
    places = minor_unit(amount.currency)
    scaled = amount.amount.scaleb(places)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount.amount} {amount.currency} has more than {places} decimal places")
    return int(scaled)


def from_minor(value: int, currency: str) -> Money:
    places = minor_unit(currency)
    return Money(Decimal(value).scaleb(-places), currency.upper())
