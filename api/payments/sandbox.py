"""The card sandbox: a local stand-in acquirer that answers Stripe's SDK in Stripe's wire format,
for demos and offline trials (``evbill demo`` starts one when no payment provider is configured)
and for the tests, which have no internet.

Test cards only: no card number is ever asked for or stored, no money moves, and nothing leaves
the machine — it listens on 127.0.0.1 and keeps everything in memory for as long as it runs.
Point the Stripe adapter at it with ``sandbox_environment(wire)`` (``EVBILL_STRIPE_SECRET_KEY``,
``EVBILL_STRIPE_API_BASE``, ``EVBILL_STRIPE_WEBHOOK_SECRET``, ``EVBILL_PAYMENT_HOSTED_PAGE=1``);
a real provider configured by those variables never goes near it.

Requests arrive form-encoded (``amount=5000&currency=eur&payment_method_types[0]=card&metadata[k]=v``)
with ``Authorization: Bearer sk_test_...`` and an ``Idempotency-Key`` on writes; answers are the
JSON objects Stripe sends (``{"id": "pi_...", "object": "payment_intent", "status":
"requires_capture", ...}``) and, for failures, ``{"error": {"type": "card_error", ...}}`` with
Stripe's status codes (402 for a declined card, 400 for an invalid request, 404 for a missing
object). Stripe's own test payment methods decide the outcome: ``pm_card_visa`` reserves,
``pm_card_chargeDeclined`` is declined, ``pm_card_authenticationRequired`` needs 3-D Secure.

Stripe Checkout: ``/v1/checkout/sessions`` (create, retrieve with ``expand[]=payment_intent``,
expire) and the hosted page itself at ``/pay/{session}`` (no API key: a browser's page): a form
with a test card (Visa 4242 reserves, the declined card stays on the page) that completes the
session (a PaymentIntent in ``requires_capture`` with the session's ``payment_intent_data``) and
answers 303 to the ``success_url`` with ``{CHECKOUT_SESSION_ID}`` filled in, and a cancel link
answering 303 to the ``cancel_url``.

``webhook(...)`` signs an event with the SDK's own scheme (``Stripe-Signature: t=...,v1=...``).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import stripe

API_KEY = "sk_test_evbill_local"
WEBHOOK_SECRET = "whsec_evbill_local_test_secret"


# the sandbox's Checkout page: plain, readable on a phone, unmistakably not a real acquirer's
_STYLE = ("body{font-family:system-ui,sans-serif;margin:0;background:#f4f4f6;color:#1a1a1a}"
          ".sandbox{margin:0;padding:.75rem 1rem;background:#fff3c4;border-bottom:2px solid #c99a00}"
          "main{max-width:26rem;margin:1.5rem auto;padding:1.25rem;background:#fff;border-radius:8px;"
          "box-shadow:0 1px 3px #0002}h1{font-size:1.4rem;margin-top:0}fieldset{border:1px solid #ccc;"
          "border-radius:6px;margin:0 0 1rem}label{display:block;padding:.4rem 0}"
          "button{width:100%;padding:.8rem;font-size:1rem;font-weight:600;color:#fff;background:#3a3aa8;"
          "border:0;border-radius:6px}a{color:#3a3aa8}[role=alert]{color:#a4000f;font-weight:600}")


def _nest(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding back to a dict: ``a[b]=1`` -> {"a": {"b": "1"}}, ``a[0]=x`` -> {"a": ["x"]}."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        cur: Any = out
        for i, p in enumerate(parts):
            last = i == len(parts) - 1
            nxt_is_index = not last and parts[i + 1].isdigit()
            if isinstance(cur, list):
                idx = int(p)
                while len(cur) <= idx:
                    cur.append(None)
                if last:
                    cur[idx] = value
                else:
                    if cur[idx] is None:
                        cur[idx] = [] if nxt_is_index else {}
                    cur = cur[idx]
            else:
                if last:
                    cur[p] = value
                else:
                    cur = cur.setdefault(p, [] if nxt_is_index else {})
    return out


@dataclass
class StripeWire:
    port: int = 0
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    idempotent: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def calls(self, method: str | None = None, prefix: str = "") -> list[tuple[str, str, dict[str, Any]]]:
        return [(m, p, b) for m, p, b, _h in self.requests if (method is None or m == method) and p.startswith(prefix)]

    # --- the API ----------------------------------------------------------------------------------

    def handle(self, method: str, path: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if headers.get("authorization") != f"Bearer {API_KEY}":
            return 401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}}
        key = headers.get("idempotency-key")
        if method == "POST" and key and key in self.idempotent:
            return self.idempotent[key]
        status, out = self._route(method, path, body)
        if method == "POST" and key:
            self.idempotent[key] = (status, out)
        return status, out

    def _route(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        parts = [p for p in path.split("?")[0].split("/") if p]
        if parts[:2] == ["v1", "payment_intents"]:
            if len(parts) == 2 and method == "POST":
                return self._create(body)
            pi = self.intents.get(parts[2]) if len(parts) > 2 else None
            if pi is None:
                return 404, {"error": {"type": "invalid_request_error", "code": "resource_missing",
                                       "message": f"No such payment_intent: '{parts[2] if len(parts) > 2 else ''}'"}}
            if len(parts) == 3 and method == "GET":
                return 200, pi
            if len(parts) == 4 and parts[3] == "capture" and method == "POST":
                return self._capture(pi, body)
            if len(parts) == 4 and parts[3] == "cancel" and method == "POST":
                if pi["status"] not in ("requires_capture", "requires_payment_method", "requires_action",
                                        "requires_confirmation"):
                    return 400, self._state_error(pi, "cancel")
                pi.update(status="canceled", amount_capturable=0, canceled_at=int(time.time()),
                          cancellation_reason=body.get("cancellation_reason"))
                return 200, pi
        if parts == ["v1", "refunds"] and method == "POST":
            return self._refund(body)
        if parts[:3] == ["v1", "checkout", "sessions"]:
            if len(parts) == 3 and method == "POST":
                return self._create_session(body)
            cs = self.sessions.get(parts[3]) if len(parts) > 3 else None
            if cs is None:
                return 404, {"error": {"type": "invalid_request_error", "code": "resource_missing",
                                       "message": f"No such checkout.session: '{parts[3] if len(parts) > 3 else ''}'"}}
            if len(parts) == 4 and method == "GET":
                out = dict(cs)
                if "payment_intent" in (body.get("expand") or []) and cs["payment_intent"]:
                    out["payment_intent"] = self.intents[cs["payment_intent"]]
                return 200, out
            if len(parts) == 5 and parts[4] == "expire" and method == "POST":
                if cs["status"] != "open":
                    return 400, {"error": {"type": "invalid_request_error", "code": "checkout_session_unexpected_state",
                                           "message": f"Only Checkout Sessions with a status in [\"open\"] can be "
                                                      f"expired. This session has a status of {cs['status']}."}}
                cs.update(status="expired", url=None)
                return 200, cs
        return 404, {"error": {"type": "invalid_request_error", "message": f"Unrecognized request URL ({method}: {path})"}}

    def _create_session(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        items = body.get("line_items") or []
        if body.get("mode") != "payment" or not items or not body.get("success_url"):
            return 400, {"error": {"type": "invalid_request_error", "code": "parameter_missing",
                                   "message": "Missing required param: mode, line_items or success_url."}}
        price = items[0]["price_data"]
        sid = "cs_test_" + secrets.token_hex(24)
        cs: dict[str, Any] = {
            "id": sid, "object": "checkout.session", "mode": "payment", "status": "open", "payment_status": "unpaid",
            "amount_total": int(price["unit_amount"]) * int(items[0].get("quantity", 1)),
            "currency": price["currency"], "client_reference_id": body.get("client_reference_id"),
            "customer_email": body.get("customer_email"), "locale": body.get("locale"),
            "metadata": body.get("metadata", {}), "payment_intent": None, "livemode": False,
            "success_url": body["success_url"], "cancel_url": body.get("cancel_url"),
            "payment_intent_data": body.get("payment_intent_data", {}),  # kept for the tests; Stripe does not echo it
            "url": f"{self.base}/pay/{sid}", "created": int(time.time()),
        }
        self.sessions[sid] = cs
        return 200, cs

    def hosted(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        """Checkout's page: GET shows it, POST pays with the chosen card, ``/cancel`` goes back."""
        parts = [p for p in path.split("?")[0].split("/") if p]
        cs = self.sessions.get(parts[1]) if len(parts) > 1 else None
        if cs is None or cs["status"] != "open":
            return 404, {"Content-Type": "text/plain"}, b"This checkout session is no longer available."
        if len(parts) == 3 and parts[2] == "cancel":
            return 303, {"Location": cs["cancel_url"]}, b""
        error = ""
        if method == "POST":
            if body.get("card") == "visa":
                pid = "pi_" + secrets.token_hex(12)
                data = cs["payment_intent_data"]
                self.intents[pid] = {
                    "id": pid, "object": "payment_intent", "amount": cs["amount_total"],
                    "amount_capturable": cs["amount_total"] if data.get("capture_method") == "manual" else 0,
                    "amount_received": 0 if data.get("capture_method") == "manual" else cs["amount_total"],
                    "currency": cs["currency"], "capture_method": data.get("capture_method", "automatic"),
                    "client_secret": f"{pid}_secret_{secrets.token_hex(8)}", "created": int(time.time()),
                    "description": data.get("description"), "livemode": False, "metadata": data.get("metadata", {}),
                    "next_action": None, "last_payment_error": None, "payment_method": "pm_card_visa",
                    "payment_method_types": ["card"],
                    "status": "requires_capture" if data.get("capture_method") == "manual" else "succeeded",
                    "latest_charge": "ch_" + secrets.token_hex(12)}
                cs.update(status="complete", payment_intent=pid, url=None)
                return 303, {"Location": cs["success_url"].replace("{CHECKOUT_SESSION_ID}", cs["id"])}, b""
            error = "<p role=alert>Your card was declined.</p>"
        amount = f"{cs['amount_total'] / 100:.2f} {cs['currency'].upper()}"
        page = (f"<!doctype html><html lang=en><meta charset=utf-8>"
                f"<meta name=viewport content='width=device-width, initial-scale=1'><title>Checkout</title>"
                f"<style>{_STYLE}</style><p class=sandbox><strong>evbill card sandbox</strong>: a local stand-in "
                f"for the card acquirer. Test cards only; no money moves and nothing leaves this machine.</p>"
                f"<main><h1>Pay {escape(amount)}</h1>{error}"
                f"<form method=post action=/pay/{cs['id']}><fieldset><legend>Test card</legend>"
                f"<label><input type=radio name=card value=visa checked> Visa 4242 4242 4242 4242</label>"
                f"<label><input type=radio name=card value=declined> Declined card</label></fieldset>"
                f"<button type=submit>Reserve {escape(amount)}</button></form>"
                f"<p><a href=/pay/{cs['id']}/cancel>Cancel and go back</a></p></main></html>")
        return 200, {"Content-Type": "text/html; charset=utf-8"}, page.encode()

    @staticmethod
    def _state_error(pi: dict[str, Any], action: str) -> dict[str, Any]:
        return {"error": {"type": "invalid_request_error", "code": "payment_intent_unexpected_state",
                          "message": f"This PaymentIntent could not be {action}d because it has a status of "
                                     f"{pi['status']}.", "payment_intent": pi}}

    def _create(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if "amount" not in body or "currency" not in body:
            return 400, {"error": {"type": "invalid_request_error", "code": "parameter_missing",
                                   "message": "Missing required param: amount."}}
        pid = "pi_" + secrets.token_hex(12)
        pi: dict[str, Any] = {
            "id": pid, "object": "payment_intent", "amount": int(body["amount"]), "amount_capturable": 0,
            "amount_received": 0, "currency": body["currency"], "capture_method": body.get("capture_method", "automatic"),
            "client_secret": f"{pid}_secret_{secrets.token_hex(8)}", "created": int(time.time()),
            "description": body.get("description"), "livemode": False, "metadata": body.get("metadata", {}),
            "next_action": None, "last_payment_error": None, "payment_method": body.get("payment_method"),
            "payment_method_types": body.get("payment_method_types", ["card"]), "status": "requires_payment_method",
            "latest_charge": None,
        }
        self.intents[pid] = pi
        if body.get("confirm") != "true":
            return 200, pi
        pm = body.get("payment_method", "")
        if pm == "pm_card_chargeDeclined":
            err = {"type": "card_error", "code": "card_declined", "decline_code": "generic_decline",
                   "message": "Your card was declined.", "payment_method": {"id": pm}}
            pi["last_payment_error"] = err
            return 402, {"error": {**err, "payment_intent": pi}}
        if pm == "pm_card_authenticationRequired":
            pi.update(status="requires_action", next_action={"type": "redirect_to_url", "redirect_to_url": {
                "url": f"{self.base}/3ds/{pid}", "return_url": body.get("return_url")}})
            return 200, pi
        if pm != "pm_card_visa":
            return 400, {"error": {"type": "invalid_request_error", "code": "resource_missing",
                                   "message": f"No such PaymentMethod: '{pm}'", "param": "payment_method"}}
        pi.update(status="requires_capture" if pi["capture_method"] == "manual" else "succeeded",
                  amount_capturable=pi["amount"] if pi["capture_method"] == "manual" else 0,
                  latest_charge="ch_" + secrets.token_hex(12))
        return 200, pi

    def _capture(self, pi: dict[str, Any], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if pi["status"] != "requires_capture":
            return 400, self._state_error(pi, "capture")
        amount = int(body.get("amount_to_capture", pi["amount_capturable"]))
        if amount > pi["amount_capturable"]:
            return 400, {"error": {"type": "invalid_request_error", "code": "amount_too_large",
                                   "param": "amount_to_capture",
                                   "message": "The amount to capture must not exceed the capturable amount."}}
        pi.update(status="succeeded", amount_received=amount, amount_capturable=0)
        return 200, pi

    def _refund(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        pi = self.intents.get(body.get("payment_intent", ""))
        if pi is None or pi["status"] != "succeeded":
            return 400, {"error": {"type": "invalid_request_error", "code": "charge_not_refundable" if pi else
                                   "resource_missing", "message": "This PaymentIntent has nothing to refund."}}
        done = sum(r["amount"] for r in self.refunds.values() if r["payment_intent"] == pi["id"])
        amount = int(body.get("amount", pi["amount_received"] - done))
        if amount > pi["amount_received"] - done:
            return 400, {"error": {"type": "invalid_request_error", "code": "amount_too_large", "param": "amount",
                                   "message": "Refund amount is greater than unrefunded amount on charge."}}
        rid = "re_" + secrets.token_hex(12)
        r = {"id": rid, "object": "refund", "amount": amount, "currency": pi["currency"], "payment_intent": pi["id"],
             "charge": pi["latest_charge"], "status": "succeeded", "reason": body.get("reason"),
             "metadata": body.get("metadata", {}), "created": int(time.time())}
        self.refunds[rid] = r
        return 200, r

    # --- webhooks ---------------------------------------------------------------------------------

    def event(self, kind: str, obj: dict[str, Any]) -> bytes:
        return json.dumps({"id": "evt_" + secrets.token_hex(12), "object": "event", "api_version": stripe.api_version,
                           "created": int(time.time()), "type": kind, "livemode": False,
                           "data": {"object": obj}, "pending_webhooks": 1, "request": {"id": None}}).encode()


def signature(payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header the SDK's own scheme computes."""
    return str(stripe.WebhookSignature.generate_signature_header(payload.decode(), secret, timestamp))


def sandbox_environment(wire: StripeWire) -> dict[str, str]:
    """The environment that points ``api.payments.provider_from_env`` at this sandbox, its
    Checkout page included."""
    return {"EVBILL_PAYMENT_PROVIDER": "stripe", "EVBILL_STRIPE_SECRET_KEY": API_KEY,
            "EVBILL_STRIPE_API_BASE": wire.base, "EVBILL_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "EVBILL_PAYMENT_HOSTED_PAGE": "1"}


@contextmanager
def stripe_wire() -> Iterator[StripeWire]:
    """The sandbox on a free port of 127.0.0.1 until the block ends."""
    wire = StripeWire()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            query = self.path.split("?", 1)[1] if "?" in self.path else ""
            body = _nest(parse_qsl(raw or query, keep_blank_values=True))
            headers = {k.lower(): v for k, v in self.headers.items()}
            if self.path.startswith("/pay/"):  # Checkout's page: a browser, no API key
                with wire.lock:
                    code, extra, page = wire.hosted(method, self.path, body)
                self.send_response(code)
                for k, v in {**extra, "Content-Length": str(len(page))}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(page)
                return
            with wire.lock:
                wire.requests.append((method, self.path, body, headers))
                status, out = wire.handle(method, self.path, body, headers)
            data = json.dumps(out).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Request-Id", "req_" + secrets.token_hex(8))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    wire.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield wire
    finally:
        server.shutdown()
        server.server_close()
