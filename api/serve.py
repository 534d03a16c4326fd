"""``evbill serve``: the operator API on HOST:PORT with uvicorn.

SQLite under ``var/evbill.db`` unless ``EVBILL_DATABASE_URL`` names another database; migrations
run at start. On an empty database a first tenant with an admin key is created and the key is
written to ``var/admin-key.txt`` (shown once on the console), so the API is usable with no setup.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

log = logging.getLogger("evbill.serve")

ADMIN_KEY_FILE = Path("var") / "admin-key.txt"


def ensure_first_tenant(engine: Any) -> str | None:
    """Create the first tenant and admin key on an empty database; returns the key if created."""
    from store.models import Tenant
    from store.tenants import bootstrap_tenant

    with Session(engine) as db:
        if db.execute(select(func.count()).select_from(Tenant)).scalar():
            return None
        _, cred = bootstrap_tenant(db, os.environ.get("EVBILL_TENANT_NAME", "default"))
    ADMIN_KEY_FILE.parent.mkdir(parents=True, exist_ok=True)
    ADMIN_KEY_FILE.write_text(cred.key + "\n")
    os.chmod(ADMIN_KEY_FILE, 0o600)
    return cred.key


def start_side_services(args: argparse.Namespace, engine: Any = None) -> None:
    """Hook for the OCPP gateway (``api/ocpp``, on ``args.ocpp_port``) and the embedded Temporal
    server and worker (``workflows``; skipped with ``--no-temporal``). Later issues fill it in;
    the API does not depend on either."""
    if engine is not None and getattr(args, "ocpp_port", 0):
        start_ocpp_gateway(args, engine)
    if engine is not None and not getattr(args, "no_temporal", False):
        from workflows.billing.embedded import start_embedded

        start_embedded(engine)


def start_ocpp_gateway(args: argparse.Namespace, engine: Any) -> Any:
    """The OCPP gateway on its own event loop thread; TLS (security profile 2) when
    ``EVBILL_OCPP_CERT``/``EVBILL_OCPP_KEY`` name a PEM certificate and key."""
    from api.ocpp import GatewaySettings, start_gateway_thread

    cert = os.environ.get("EVBILL_OCPP_CERT") or None
    settings = GatewaySettings(host=os.environ.get("EVBILL_OCPP_HOST", "0.0.0.0"), port=args.ocpp_port,
                               certfile=cert, keyfile=os.environ.get("EVBILL_OCPP_KEY") or None)
    gw, _ = start_gateway_thread(engine, settings)
    scheme = "wss" if cert else "ws"
    print(f"evbill OCPP gateway on {scheme}://{settings.host}:{gw.port}/ocpp/{{charge_point_id}} "
          f"(OCPP 1.6J and 2.0.1)", flush=True)
    return gw


def main(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import Settings, create_app
    from store.db import database_url, make_engine, migrate

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    url = database_url()
    engine = make_engine(url)
    migrate(engine)
    key = ensure_first_tenant(engine)
    if key:
        print(f"created tenant 'default'; admin API key (also in {ADMIN_KEY_FILE}):\n  {key}", flush=True)
    start_side_services(args, engine)
    app = create_app(Settings(engine=engine, migrate=False))
    shown = url.split("@")[-1] if "@" in url else url
    print(f"evbill API on http://{args.host}:{args.port} (database {shown}); "
          f"OpenAPI at /schema/openapi.json", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=False)
    engine.dispose()
    return 0
