"""The web console at ``/console``: people sign in with an e-mail and a password (argon2id,
``store.console``), get a session cookie, and see the pages their role may open, in German or
English, in their tenant's colours and logo. Served by the API's own app (``evbill serve``, same
port); every asset comes from the package (``api/static/console``: htmx, vendored with its
licence, and the stylesheet), none from a CDN.

``routers()`` gives the pages (behind ``ConsoleAuthMiddleware``) and the static files;
``template_config()`` the Jinja2 environment Litestar renders them with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["HTML_ROUTES", "routers", "template_config"]

HERE = Path(__file__).resolve().parent
STATIC = HERE.parent / "static" / "console"

# what a browser gets with every console page: only our own origin, no inline script or style
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "object-src 'self'; frame-src 'self'; frame-ancestors 'self'; base-uri 'none'; "
                               "form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "SAMEORIGIN",
}


def template_config() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
    from litestar.plugins.jinja import JinjaTemplateEngine
    from litestar.template.config import TemplateConfig

    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(env))


def routers() -> list[Any]:
    from litestar import Router
    from litestar.datastructures import ResponseHeader
    from litestar.middleware.base import DefineMiddleware
    from litestar.static_files import create_static_files_router

    from api.console import adhoc, load, portal, records, reservations, rulesets
    from api.console.pages import exception_handlers, handlers, public_handlers
    from api.console.session import ConsoleAuthMiddleware

    headers = [ResponseHeader(name=k, value=v) for k, v in SECURITY_HEADERS.items()]
    pages = Router(path="/", route_handlers=[*public_handlers, *handlers, *rulesets.handlers, *portal.handlers,
                                                *records.handlers, *adhoc.handlers,
                                                *reservations.handlers, *load.handlers], include_in_schema=False,
                   middleware=[DefineMiddleware(ConsoleAuthMiddleware)], exception_handlers=exception_handlers(),
                   response_headers=headers)
    static = create_static_files_router(path="/console/static", directories=[STATIC], include_in_schema=False,
                                        name="console_static")
    # static files (htmx, the stylesheet) go out with Litestar's content types and no page headers
    return [pages, static]


# the console's routes by who may call them (the route-walk tests classify them with this)
HTML_ROUTES: dict[str, str] = {
    "GET /console/sign-in": "public",
    "POST /console/sign-in": "public",
    "GET /console/theme.css": "public",
    "GET /console/logo": "public",
    "GET /console/static/{file_path:path}": "public",
    "POST /console/sign-out": "session",
    "POST /console/language": "session",
    "GET /console": "session",
    "GET /console/dashboard": "read",
    "GET /console/inbox": "console_finance",
    "POST /console/inbox/tasks/{task_id:str}/approve": "billing_decide",
    "POST /console/inbox/tasks/{task_id:str}/reject": "billing_decide",
    "POST /console/inbox/tasks/{task_id:str}/adjust": "billing_adjust",
    "POST /console/inbox/bank-entries/{entry_id:str}/match": "bank_write",
    "POST /console/inbox/collection-runs/{collection_run_id:str}/approve": "collections_decide",
    "POST /console/inbox/collection-runs/{collection_run_id:str}/reject": "collections_decide",
    "POST /console/inbox/payout-runs/{payout_run_id:str}/approve": "payouts_decide",
    "POST /console/inbox/payout-runs/{payout_run_id:str}/reject": "payouts_decide",
    "POST /console/inbox/dunning-cases/{case_id:str}/approve": "dunning_decide",
    "POST /console/inbox/dunning-cases/{case_id:str}/reject": "dunning_decide",
    "POST /console/inbox/clearing-disputes/{dispute_id:str}/resolve": "clearing_resolve",
    "GET /console/invoices": "billing_read",
    "GET /console/documents": "billing_read",
    "GET /console/invoices/{invoice_id:str}": "billing_read",
    "GET /console/documents/{document_id:str}/pdf": "billing_read",
    "GET /console/customers": "read",
}


def _more_routes() -> None:
    from api.console.adhoc import HTML_ROUTES as ADHOC
    from api.console.load import HTML_ROUTES as LOAD
    from api.console.portal import HTML_ROUTES as PORTAL
    from api.console.records import HTML_ROUTES as RECORDS
    from api.console.reservations import HTML_ROUTES as RESERVATIONS
    from api.console.rulesets import HTML_ROUTES as RULESETS

    HTML_ROUTES.update(RULESETS)
    HTML_ROUTES.update(PORTAL)
    HTML_ROUTES.update(RECORDS)
    HTML_ROUTES.update(ADHOC)
    HTML_ROUTES.update(RESERVATIONS)
    HTML_ROUTES.update(LOAD)


_more_routes()
