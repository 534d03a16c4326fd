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

__all__ = ["HTML_ROUTES", "routers"]

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
