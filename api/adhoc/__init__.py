"""Ad-hoc charging with card payment (issue 16): a public page per EVSE (``/charge/{evse_id}``, the
target of a printable QR code) shows the price of the ruleset in force, reserves a
pre-authorization on the card through the payment provider (``api.payments``), starts the charger
over OCPP with a one-time id tag, shows the cost so far, captures the final amount at the stop
(the rest is released), books it on the open items and hands out the receipt (PDF, e-mail).

``service`` the steps, ``pages`` the public pages and the provider's webhook, ``api`` the
operator's routes (a charge, a refund, the QR sheet of a site), ``receipt`` and ``qr`` the
documents, ``i18n`` the words. The charges are stored by ``store.adhoc``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["HTML_ROUTES", "lifespan_hooks", "routers"]

STATIC = Path(__file__).resolve().parent.parent / "static" / "adhoc"

# the public pages by who may call them (the route-walk tests classify them with this)
HTML_ROUTES: dict[str, str] = {
    "GET /charge/{evse_id:str}": "public",
    "POST /charge/{evse_id:str}": "public",
    "GET /charge/sessions/{key:str}": "public",
    "POST /charge/sessions/{key:str}/stop": "public",
    "GET /charge/sessions/{key:str}/receipt.pdf": "public",
    "GET /charge/{evse_id:str}/qr.svg": "public",
    "POST /payments/webhooks/{provider_name:str}": "public",
    "GET /adhoc/static/{file_path:path}": "public",
}


def routers() -> list[Any]:
    from litestar import Router
    from litestar.static_files import create_static_files_router

    from api.adhoc.api import router
    from api.adhoc.pages import handlers

    pages = Router(path="/", route_handlers=handlers, include_in_schema=False)
    static = create_static_files_router(path="/adhoc/static", directories=[STATIC], include_in_schema=False,
                                        name="adhoc_static")
    return [router, pages, static]


def lifespan_hooks() -> tuple[Any, Any]:
    """(on_startup, on_shutdown) of the app: with a payment provider configured, a sweeper thread
    settles open charges every ``EVBILL_ADHOC_SWEEP_S`` seconds (default 30; 0 turns it off), so a
    charge is captured even when its driver never looks at the page again."""
    import os

    stoppers: list[Any] = []

    def start(app: Any) -> None:
        from api.adhoc.pages import provider_of_app
        from api.adhoc.service import start_sweeper

        interval = float(os.environ.get("EVBILL_ADHOC_SWEEP_S", "30") or 0)
        provider = provider_of_app(app)
        if provider is not None and interval > 0:
            stoppers.append(start_sweeper(app.state.sessions, provider, interval))

    def stop() -> None:
        while stoppers:
            stoppers.pop()()

    return start, stop
