"""``evbill serve``: the operator API on HOST:PORT with uvicorn.

SQLite under ``var/evbill.db`` unless ``EVBILL_DATABASE_URL`` names another database; migrations
run at start. On an empty database a first tenant with an admin key is created and the key is
written to ``var/admin-key.txt`` (shown once on the console), so the API is usable with no setup.

``--workers N`` (or ``EVBILL_API_WORKERS``; default 1) serves the API from N processes, each with
its own listening socket on the same port (``SO_REUSEPORT``: the kernel spreads connections over
them evenly, where one shared socket lets whichever process wakes first take most of them). The
OCPP gateway, Temporal and the worker stay in the parent, which restarts an API process that dies.
The processes share one small memory-mapped file (``api.shared``, under /dev/shm, removed when
the server stops; a single API process keeps the same state in its own memory): the auth
generation, so a key revoked or a user changed through any of them is refused by all of them from
the next request on, and the rate-limit buckets, so ``EVBILL_RATE_LIMIT`` holds for the server as a
whole. On PostgreSQL the server also LISTENs for the auth changes other servers make.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import socket
import tempfile
import time
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
        _stoppers.append(start_ocpp_gateway(args, engine).shutdown)
    if engine is not None and not getattr(args, "no_temporal", False):
        from workflows.billing.embedded import start_embedded

        start_embedded(engine)


# what ``start_side_services`` started that must stop before the database closes (the gateway)
_stoppers: list[Any] = []


def start_ocpp_gateway(args: argparse.Namespace, engine: Any) -> Any:
    """The OCPP gateway on its own event loop thread; TLS (security profile 2) when
    ``EVBILL_OCPP_CERT``/``EVBILL_OCPP_KEY`` name a PEM certificate and key."""
    from api.ocpp import GatewaySettings, start_gateway_thread

    cert = os.environ.get("EVBILL_OCPP_CERT") or None
    host = getattr(args, "ocpp_host", None) or os.environ.get("EVBILL_OCPP_HOST") or "127.0.0.1"
    settings = GatewaySettings(host=host, port=args.ocpp_port,
                               certfile=cert, keyfile=os.environ.get("EVBILL_OCPP_KEY") or None)
    gw, _ = start_gateway_thread(engine, settings)
    scheme = "wss" if cert else "ws"
    print(f"evbill OCPP gateway on {scheme}://{settings.host}:{gw.port}/ocpp/{{identity}} "
          f"(OCPP 1.6J and 2.0.1)", flush=True)
    return gw


def _settle_heap() -> None:
    # everything alive now (routes, schemas, SQLAlchemy metadata) lives as long as the process:
    # out of the collector's sight, a full collection no longer walks it in the middle of requests
    gc.collect()
    gc.freeze()


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A listening socket that other processes of this user may bind to the same port as well."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def api_process(host: str, port: int) -> None:
    """One API process of ``--workers N`` (started by ``multiprocessing``'s spawn)."""
    import uvicorn

    from api.app import Settings, create_app
    from api.logs import setup_logging
    from store.db import make_engine
    from workflows.billing.embedded import _die_with_parent

    _die_with_parent()
    setup_logging()
    engine = make_engine()
    app = create_app(Settings(engine=engine, migrate=False))
    sock = reuseport_socket(host, port)
    _settle_heap()
    uvicorn.Server(uvicorn.Config(app, log_config=None, log_level=None, access_log=False)).run(sockets=[sock])
    engine.dispose()


def run_api_processes(host: str, port: int, workers: int) -> int:
    """Start ``workers`` API processes and keep them running until SIGINT/SIGTERM."""
    import multiprocessing
    from multiprocessing.connection import wait

    ctx = multiprocessing.get_context("spawn")
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def start() -> tuple[Any, float]:
        proc = ctx.Process(target=api_process, args=(host, port), name="evbill-api")
        proc.start()
        return proc, time.monotonic()

    procs = [start() for _ in range(workers)]
    code = 0
    while not stopping:
        wait([p.sentinel for p, _ in procs], timeout=0.5)
        for i, (proc, started) in enumerate(procs):
            if proc.is_alive() or stopping:
                continue
            if time.monotonic() - started < 10:
                log.error("API process %s exited at start (code %s); stopping", proc.pid, proc.exitcode)
                stopping, code = True, 1
                break
            log.warning("API process %s exited (code %s); starting another", proc.pid, proc.exitcode)
            procs[i] = start()
    for proc, _ in procs:
        if proc.is_alive():
            proc.terminate()
    for proc, _ in procs:
        proc.join(timeout=20)
        if proc.is_alive():
            proc.kill()
    return code


def main(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import Settings, create_app
    from api.doctor import warn_at_start
    from api.logs import setup_logging
    from api.shared import ENV_VAR as SHARED_ENV
    from api.shared import SharedState, listen_for_auth_changes, new_file_path, remove_stale_files
    from store.db import database_url, make_engine, migrate

    workers = args.workers if getattr(args, "workers", None) else int(os.environ.get("EVBILL_API_WORKERS", "1"))
    if workers < 1 or (workers > 1 and args.port == 0):
        print("evbill serve: --workers needs a number >= 1 (and a fixed --port when above 1)", flush=True)
        return 2

    setup_logging()
    # what degrades this server, one line each (the database and ports fail loudly by themselves)
    warn_at_start(log, temporal=not getattr(args, "no_temporal", False))
    url = database_url()
    engine = make_engine(url)
    migrate(engine)
    key = ensure_first_tenant(engine)
    if key:
        print(f"created tenant 'default'; admin API key (also in {ADMIN_KEY_FILE}):\n  {key}", flush=True)
    start_side_services(args, engine)
    shown = url.split("@")[-1] if "@" in url else url
    print(f"evbill API on http://{args.host}:{args.port} (database {shown}"
          f"{f', {workers} processes' if workers > 1 else ''}); OpenAPI at /schema/openapi.json", flush=True)
    if workers == 1:
        # one process: its own memory will do (uvicorn ends the process with the signal that
        # stopped it, so nothing after uvicorn.run could remove a file)
        shared = SharedState.anonymous()
        listen_for_auth_changes(engine, shared)
        app = create_app(Settings(engine=engine, migrate=False, shared=shared))
        _settle_heap()
        # uvicorn stops on SIGTERM/SIGINT, then restores the handlers it found and raises the signal
        # again: with this one the process ends through the ``finally`` below instead of dying at once
        signal.signal(signal.SIGTERM, _exit_on_signal)
        try:
            # log_config=None: uvicorn keeps to the set-up above (api.logs) instead of installing its own
            uvicorn.run(app, host=args.host, port=args.port, log_config=None, log_level=None, access_log=False)
        except KeyboardInterrupt:
            pass
        finally:
            _stop_everything(engine)
        return 0
    shared_dir = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    for stale in remove_stale_files(shared_dir):
        log.info("removed %s, left by a server that was killed", stale)
    shared_path = new_file_path(shared_dir)
    shared = SharedState.create(shared_path)
    stop_listening = listen_for_auth_changes(engine, shared)
    os.environ["EVBILL_DATABASE_URL"] = url  # the API processes open the same database
    os.environ[SHARED_ENV] = shared_path
    try:
        return run_api_processes(args.host, args.port, workers)
    finally:
        stop_listening()
        shared.close()
        os.unlink(shared_path)
        _stop_everything(engine)


def _exit_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(0)


def _stop_everything(engine: Any) -> None:
    """A stopped server leaves ``var/`` as one file per database: the billing worker and the
    embedded Temporal server stop first, then the API's pool closes and SQLite folds its log."""
    from store.db import close_database
    from workflows.billing.embedded import stop_embedded

    try:
        while _stoppers:
            _stoppers.pop()()
        stop_embedded()
    finally:
        close_database(engine)
