"""The Litestar application factory.

``create_app(settings)`` wires the database (migrated to head), API-key auth, the per-area routers,
problem+json errors and the OpenAPI document at ``/schema/openapi.json``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from litestar import Litestar
from litestar.config.app import AppConfig  # noqa: F401  (kept for typed extension points)
from litestar.datastructures import State
from litestar.middleware.base import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from sqlalchemy import Engine

from api import adhoc, apidocs, console
from api.areas import (
    accounting,
    audit,
    bank,
    billing,
    clearing,
    collections,
    customers,
    documents,
    dunning,
    invoices,
    load,
    ocpi,
    ocpp,
    partners,
    payouts,
    pricing,
    receivables,
    reservations,
    rulesets,
    sessions,
    sites,
    tenancy,
    tokens,
)
from api.auth import ApiKeyMiddleware, KeyCache, RateLimiter
from api.errors import exception_handlers
from api.openapi import align_component_schemas, document_alternative_media
from api.shared import SharedState
from api.tokens import signing_secret
from store.db import ReadBatcher, RowReader, make_engine, migrate, session_factory

__all__ = ["Settings", "create_app"]


@dataclass
class Settings:
    database_url: str | None = None  # None: EVBILL_DATABASE_URL or SQLite under var/
    schema: str | None = None  # PostgreSQL schema (tests isolate runs this way)
    migrate: bool = True
    engine: Engine | None = None
    debug: bool = False
    engine_options: dict[str, Any] = field(default_factory=dict)
    threads: int = int(os.environ.get("EVBILL_API_THREADS", "8"))
    jwt_secret: str | None = None  # None: EVBILL_JWT_SECRET or var/jwt-secret (api.tokens)
    # requests/s per API key; None: EVBILL_RATE_LIMIT (unset: no limit); see api.auth.RateLimiter
    rate_limit: RateLimiter | None = field(default_factory=RateLimiter.from_env)
    # what the API processes of one server share (auth generation, rate buckets); None:
    # EVBILL_API_SHARED (set by `evbill serve`), else this process's own
    shared: SharedState | None = None


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings()
    engine = settings.engine or make_engine(settings.database_url, schema=settings.schema,
                                            **settings.engine_options)
    if settings.migrate:
        migrate(engine)
    # reads need no transaction: on PostgreSQL autocommit saves the BEGIN and ROLLBACK round trips
    # per request (SQLite has no round trips, and switching its isolation level costs two PRAGMAs)
    read_engine = engine if engine.dialect.name == "sqlite" else engine.execution_options(isolation_level="AUTOCOMMIT")
    row_reader = RowReader(engine)
    shared = settings.shared or SharedState.from_env()
    state = State({"engine": engine, "sessions": session_factory(engine), "row_reader": row_reader,
                   # one round trip per batch of concurrent by-id reads; SQLite has no round trips
                   "read_batcher": ReadBatcher(row_reader) if engine.dialect.name == "postgresql" else None,
                   "read_sessions": session_factory(read_engine), "key_cache": KeyCache(shared),
                   "jwt_secret": settings.jwt_secret or signing_secret(),
                   "rate_limiter": settings.rate_limit.sharing(shared) if settings.rate_limit else None})
    openapi = OpenAPIConfig(
        title="evbill operator API", version="0.1.0",
        description="Back office of evbill: customers, contracts, tokens, sites, partners, rulesets, "
                    "price series, sessions and the audit log. Money is always a decimal string.",
        path="/schema", render_plugins=apidocs.render_plugins(),
        components=Components(security_schemes={
            "bearer": SecurityScheme(type="http", scheme="bearer",
                                     description="an API key, or a signed token from POST /auth/token"),
            "apiKey": SecurityScheme(type="apiKey", name="X-API-Key", security_scheme_in="header"),
        }),
        security=[{"bearer": []}, {"apiKey": []}],
        use_handler_docstrings=False,
    )
    def limit_threads() -> None:
        # sync handlers run in anyio's thread pool; 40 threads fighting over the GIL make every
        # request slower under load, a handful keep the database busy without the convoy
        import anyio.to_thread

        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads

    # the console has its own sign-in (a session cookie, api.console.session), not API keys; the
    # ad-hoc pages are public (a driver scans a QR code), the provider's webhooks are signed
    auth = DefineMiddleware(ApiKeyMiddleware, exclude=["^/schema", "^/health", "^/console", "^/charge/",
                                                       "^/adhoc/static/", "^/payments/webhooks/", "^/ocpi/"])
    from api.health import health
    from api.logs import AccessLogMiddleware, access_log_enabled

    adhoc_start, adhoc_stop = adhoc.lifespan_hooks()
    app = Litestar(
        route_handlers=[health, apidocs.static_router(), tenancy.router, tokens.router, customers.router, sites.router,
                        partners.router, rulesets.router, pricing.router, sessions.router, audit.router, ocpp.router, load.router, documents.router,
                        billing.router, invoices.router, receivables.router,
                        bank.router, collections.router, payouts.router, clearing.router, ocpi.ocpi_router, ocpi.admin_router, dunning.router, accounting.router,
                        reservations.router,
                        *console.routers(), *adhoc.routers()],
        template_config=console.template_config(),
        # the access line is outermost, so it sees the status of refused requests (401, 429) too
        middleware=[*([AccessLogMiddleware] if access_log_enabled() else []), auth],
        exception_handlers=exception_handlers,
        openapi_config=openapi,
        state=state,
        # Litestar would encode Decimal as a JSON number; money stays a string
        type_encoders={Decimal: lambda d: format(d, "f")},
        request_max_body_size=25_000_000,
        debug=settings.debug,
        on_startup=[limit_threads, adhoc_start],
        # the process's logging belongs to the command that runs the app (api/logs.py): Litestar's
        # default would replace the root handlers with its own format and put the root at INFO
        logging_config=None,
        on_shutdown=[adhoc_stop, row_reader.close, *([engine.dispose] if settings.engine is None else [])],
    )
    align_component_schemas(app)
    document_alternative_media(app)
    return app
